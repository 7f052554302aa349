//! Behaviour profiles: where Heroku's behaviour is not documented, the simulator offers each
//! plausible variant as data, and the runner's end-to-end suite must pass under every one.
//!
//! A profile is a named starting point ([`Profile`]); a scenario's `[behaviour]` table may
//! pick one and override single knobs:
//!
//! ```toml
//! [behaviour]
//! profile = "lagging"          # optimistic | in-place | lagging | sparse | strict
//! data_lag_seconds = 0.5       # optional overrides of the profile's knobs
//! ```
//!
//! `upshift sim serve --profile NAME` picks one from the command line, and
//! `GET|PUT /__sim/behaviour` reads or switches it at runtime (`{"profile": "in-place"}`).
//! Knobs that shape a redis-server's command line ([`Behaviour::restricted_commands`]) apply
//! to servers started after the switch, e.g. the new server of the next plan change.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The built-in profiles.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Profile {
    /// The simulator as it was first built: during a plan change the add-on is `provisioning`
    /// on the target plan, the Data API describes the serving (old) database and `/wait` says
    /// `preparing` until the config var has moved to the new server.
    #[default]
    Optimistic,
    /// Issue 11, 5(b): the add-on reports `provisioned` on the target plan (and the Data API
    /// `available` on it) as soon as the change is accepted, while the migration still runs
    /// and the OLD server stays behind the config var until the switch. Heroku does not
    /// document the add-on's state during a plan change; a check of "state + plan" alone
    /// would verify the old server and restore the writers onto it (the 2016 Enketo loss).
    /// And 5(f): the switch is a promotion behind the same host, so the URL does not change
    /// ([`Behaviour::keep_url`]): the old and the new server are told apart by what they
    /// are, never by where they are.
    InPlace,
    /// Issue 11, 5(d): the Data API (`plan`, `Status`, `/wait`) lags the Platform API: it
    /// keeps describing the old database for [`Behaviour::data_lag`] after the switch.
    Lagging,
    /// Issue 11, 5(e) and 7: `/wait` answers `{"waiting?": false}` with no `message` (as in
    /// the Heroku CLI's own test fixtures) and database bodies carry only `addon_id`, `name`,
    /// `plan` and what the Heroku CLI reads without a guard (`resource_url`,
    /// `prefer_native_tls`, `info`).
    Sparse,
    /// Issue 11, 3: `CONFIG`, `CLIENT`, `DEBUG`, `MONITOR` and `OBJECT` are refused, as
    /// managed Redis services do (Heroku refuses `CONFIG`; some providers also `CLIENT`). The
    /// simulator keeps its own control through secret renamed commands. Attaching under a
    /// name another add-on holds is refused, even with `confirm`: detach first.
    Strict,
    /// Issue 11, 5(c): the add-on keeps naming its OLD plan (state `provisioning`) until the
    /// switch, then flips to the target at once. A client that re-reads the add-on after a lost
    /// answer must take "provisioning" as "the change landed", not send it again.
    LateFlip,
    /// The most faithful guess at Heroku today, every undocumented point taken the way public
    /// sources lean: TLS only (as every profile but `optimistic`); the add-on is `provisioning` on the target during a change (what
    /// `heroku addons:wait` waits out); the Data API lags the switch by about a second;
    /// bodies are sparse as in the Heroku CLI's fixtures; a scaled-down dyno keeps running
    /// for 2 s after SIGTERM (Heroku allows 30; a Node app exits at once); a new dyno warms its
    /// pools over 2 s; the platform's monitoring reads every server.
    Heroku,
}

impl Profile {
    /// Every built-in, in documentation order.
    pub const ALL: [Self; 7] = [
        Self::Optimistic,
        Self::InPlace,
        Self::Lagging,
        Self::Sparse,
        Self::Strict,
        Self::LateFlip,
        Self::Heroku,
    ];

    /// The profile's name as written in TOML and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Optimistic => "optimistic",
            Self::InPlace => "in-place",
            Self::Lagging => "lagging",
            Self::Sparse => "sparse",
            Self::Strict => "strict",
            Self::LateFlip => "late-flip",
            Self::Heroku => "heroku",
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Profile {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown behaviour profile `{s}`; known: {}",
                    Self::ALL.map(Profile::name).join(", ")
                )
            })
    }
}

/// The scenario's `[behaviour]` table: a profile and optional overrides of its knobs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BehaviourSpec {
    #[serde(default)]
    pub profile: Profile,
    /// Overrides [`Behaviour::provisioned_at_once`].
    #[serde(default)]
    pub provisioned_at_once: Option<bool>,
    /// Overrides [`Behaviour::data_lag`], in seconds.
    #[serde(default)]
    pub data_lag_seconds: Option<f64>,
    /// Overrides [`Behaviour::sparse_bodies`].
    #[serde(default)]
    pub sparse_bodies: Option<bool>,
    /// Overrides [`Behaviour::restricted_commands`].
    #[serde(default)]
    pub restricted_commands: Option<bool>,
    /// Overrides [`Behaviour::client_ramp`], in seconds.
    #[serde(default)]
    pub client_ramp_seconds: Option<f64>,
    /// Overrides [`Behaviour::stop_grace`], in seconds (Heroku allows up to 30).
    #[serde(default)]
    pub stop_grace_seconds: Option<f64>,
    /// Overrides [`Behaviour::attach_replaces`].
    #[serde(default)]
    pub attach_replaces: Option<bool>,
    /// Overrides [`Behaviour::platform_monitor`].
    #[serde(default)]
    pub platform_monitor: Option<bool>,
    /// Overrides [`Behaviour::tls`].
    #[serde(default)]
    pub tls: Option<bool>,
    /// Overrides [`Behaviour::ha_standby`].
    #[serde(default)]
    pub ha_standby: Option<bool>,
    /// Overrides [`Behaviour::keep_url`].
    #[serde(default)]
    pub keep_url: Option<bool>,
}

impl BehaviourSpec {
    /// A profile with no overrides.
    pub fn of(profile: Profile) -> Self {
        Self {
            profile,
            ..Self::default()
        }
    }

    /// The knobs: the profile's, then the overrides.
    pub fn resolve(&self) -> Behaviour {
        let mut b = Behaviour::of(self.profile);
        if let Some(v) = self.provisioned_at_once {
            b.provisioned_at_once = v;
        }
        if let Some(s) = self.data_lag_seconds {
            b.data_lag = Duration::from_secs_f64(s.max(0.0));
        }
        if let Some(v) = self.sparse_bodies {
            b.sparse_bodies = v;
        }
        if let Some(v) = self.restricted_commands {
            b.restricted_commands = v;
        }
        if let Some(s) = self.client_ramp_seconds {
            b.client_ramp = Duration::from_secs_f64(s.clamp(0.0, 600.0));
        }
        if let Some(s) = self.stop_grace_seconds {
            b.stop_grace = Duration::from_secs_f64(s.clamp(0.0, 30.0));
        }
        if let Some(v) = self.attach_replaces {
            b.attach_replaces = v;
        }
        if let Some(v) = self.platform_monitor {
            b.platform_monitor = v;
        }
        if let Some(v) = self.tls {
            b.tls = v;
        }
        if let Some(v) = self.ha_standby {
            b.ha_standby = v;
        }
        if let Some(v) = self.keep_url {
            b.keep_url = v;
        }
        b
    }

    /// Checks what TOML cannot.
    ///
    /// # Errors
    /// A message naming the bad knob.
    pub fn validate(&self) -> Result<(), String> {
        match (self.data_lag_seconds, self.client_ramp_seconds) {
            (Some(s), _) if !(s.is_finite() && (0.0..=600.0).contains(&s)) => {
                Err("behaviour.data_lag_seconds must be between 0 and 600".into())
            }
            (_, Some(s)) if !(s.is_finite() && (0.0..=600.0).contains(&s)) => {
                Err("behaviour.client_ramp_seconds must be between 0 and 600".into())
            }
            _ => match self.stop_grace_seconds {
                Some(s) if !(s.is_finite() && (0.0..=30.0).contains(&s)) => Err(
                    "behaviour.stop_grace_seconds must be between 0 and 30 (Heroku's limit)".into(),
                ),
                _ => Ok(()),
            },
        }
    }
}

/// The knobs a profile sets.
// Independent knobs of a profile, not a state in disguise.
#[allow(clippy::struct_excessive_bools)]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Behaviour {
    pub profile: Profile,
    /// A plan change reports `provisioned` on the target plan at once (Platform and Data API)
    /// while the migration runs behind it.
    pub provisioned_at_once: bool,
    /// How long after the switch the Data API still describes the old database.
    #[serde(serialize_with = "secs")]
    pub data_lag: Duration,
    /// `/wait` without `message`; database bodies without optional fields.
    pub sparse_bodies: bool,
    /// New redis-servers refuse `CONFIG`, `CLIENT`, `DEBUG`, `MONITOR` and `OBJECT`.
    pub restricted_commands: bool,
    /// A dyno that comes up opens its connections one by one over this long, as an app's
    /// pools warm up on real traffic; zero opens them all at once.
    #[serde(serialize_with = "secs")]
    pub client_ramp: Duration,
    /// A scaled-down dyno gets SIGTERM and keeps running (writing, listed as `up`) for this
    /// long before it exits, as Heroku allows a process up to 30 s to shut down; zero stops it
    /// at once.
    #[serde(serialize_with = "secs")]
    pub stop_grace: Duration,
    /// During a plan change the add-on names its old plan until the switch.
    pub plan_flips_at_end: bool,
    /// `POST /addon-attachments` with `confirm` (the app's name) replaces another add-on's
    /// attachment of the same name in one release, so the config var moves from one URL to
    /// the other with no gap. Undocumented: when off (the `strict` profile), a taken name is
    /// refused and the caller must detach first (the var is missing in between).
    pub attach_replaces: bool,
    /// The platform's own connection to each server issues PING and INFO every 1.5 s, as
    /// Heroku's monitoring does; it is never a writer.
    pub platform_monitor: bool,
    /// New add-ons (and a scenario's add-ons without their own `tls`) serve TLS only: config
    /// vars hold `rediss://` URLs with a certificate from the simulator's throwaway CA and the
    /// Data API says `prefer_native_tls: true`. Heroku: "All Key-Value Store plans require
    /// TLS connections" (<https://devcenter.heroku.com/articles/heroku-redis-version-upgrade>).
    /// Off only in `optimistic`, the simulator as first built, whose plain `redis://` keeps
    /// the many tests that start from it quick to set up and easy to inspect with `redis-cli`.
    pub tls: bool,
    /// An add-on on an HA plan (premium, private, shield) has a second redis-server, its
    /// standby, replicating from the primary: the primary's `CLIENT LIST` shows the link as
    /// `flags=S cmd=replconf`, and it takes one of the plan's connections. On in every profile:
    /// HA is documented for these plans (Dev Center, heroku-redis-maintenance), not one of the
    /// undocumented points a profile varies, and the drain must be right with it present.
    pub ha_standby: bool,
    /// A plan change ends with the NEW server behind the OLD URL (same host, port and
    /// password), as an in-place promotion behind one host would, instead of a new URL in the
    /// config var. Heroku does not say which it does (issue 11, 5(f)): Dev Center only says that
    /// add-on providers may change their config vars at any time (config-vars), which allows
    /// both, and its version upgrades "promote" a follower, which may well sit behind one host.
    /// With the same URL there is no config var change, so (the simplest faithful guess) no
    /// release and no restart: connections to the old server drop when it stops and the app's
    /// clients reconnect to the same URL on their own; connections already open to the new
    /// server survive. On in `in-place` only: every other profile changes the URL, as the
    /// simulator always did, so both answers stay under test.
    pub keep_url: bool,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// The `heroku` profile's SIGTERM grace: how long a stopping Node dyno keeps running.
pub const HEROKU_STOP_GRACE: Duration = Duration::from_secs(2);
/// The `heroku` profile's pool warm-up after a dyno starts.
pub const HEROKU_CLIENT_RAMP: Duration = Duration::from_secs(2);

/// The `lagging` profile's delay: about 1-2 s on Heroku's scale of minutes, kept short so the
/// simulator's seconds-long plan changes stay quick.
pub const LAGGING_DATA_LAG: Duration = Duration::from_millis(1200);

impl Behaviour {
    /// A built-in profile's knobs.
    pub fn of(profile: Profile) -> Self {
        let mut b = Self {
            profile,
            provisioned_at_once: false,
            data_lag: Duration::ZERO,
            sparse_bodies: false,
            restricted_commands: false,
            client_ramp: Duration::ZERO,
            stop_grace: Duration::ZERO,
            plan_flips_at_end: false,
            attach_replaces: true,
            platform_monitor: true,
            tls: true,
            ha_standby: true,
            keep_url: false,
        };
        match profile {
            Profile::Optimistic => b.tls = false,
            Profile::InPlace => {
                b.provisioned_at_once = true;
                b.keep_url = true;
            }
            Profile::Lagging => b.data_lag = LAGGING_DATA_LAG,
            Profile::Sparse => b.sparse_bodies = true,
            Profile::Strict => {
                b.restricted_commands = true;
                b.attach_replaces = false;
            }
            Profile::LateFlip => b.plan_flips_at_end = true,
            Profile::Heroku => {
                b.data_lag = LAGGING_DATA_LAG;
                b.sparse_bodies = true;
                b.stop_grace = HEROKU_STOP_GRACE;
                b.client_ramp = HEROKU_CLIENT_RAMP;
            }
        }
        b
    }
}

impl Default for Behaviour {
    fn default() -> Self {
        Self::of(Profile::Optimistic)
    }
}

#[cfg(test)]
mod tests {
    use super::{BehaviourSpec, Profile};

    #[test]
    fn names_round_trip_and_unknown_ones_list_the_built_ins() {
        for p in Profile::ALL {
            assert_eq!(p.name().parse::<Profile>(), Ok(p));
        }
        let err = "heroku-ish".parse::<Profile>().unwrap_err();
        assert!(err.contains("in-place, lagging"), "{err}");
    }

    #[test]
    fn tls_is_on_in_every_profile_but_optimistic_and_can_be_turned_off() {
        for p in Profile::ALL {
            assert_eq!(
                BehaviourSpec::of(p).resolve().tls,
                p != Profile::Optimistic,
                "{p}"
            );
        }
        let plain: BehaviourSpec = toml::from_str("profile = \"heroku\"\ntls = false\n").unwrap();
        assert!(!plain.resolve().tls);
        let tls: BehaviourSpec = toml::from_str("tls = true\n").unwrap();
        assert!(tls.resolve().tls && tls.profile == Profile::Optimistic);
    }

    #[test]
    fn the_url_is_kept_in_in_place_only_and_can_be_overridden() {
        for p in Profile::ALL {
            assert_eq!(
                BehaviourSpec::of(p).resolve().keep_url,
                p == Profile::InPlace,
                "{p}"
            );
        }
        let kept: BehaviourSpec =
            toml::from_str("profile = \"heroku\"\nkeep_url = true\n").unwrap();
        assert!(kept.resolve().keep_url);
        let moved: BehaviourSpec =
            toml::from_str("profile = \"in-place\"\nkeep_url = false\n").unwrap();
        let b = moved.resolve();
        assert!(!b.keep_url && b.provisioned_at_once);
    }

    #[test]
    fn overrides_apply_on_top_of_the_profile() {
        let spec: BehaviourSpec = toml::from_str(
            "profile = \"lagging\"\ndata_lag_seconds = 0.25\nsparse_bodies = true\n",
        )
        .unwrap();
        let b = spec.resolve();
        assert_eq!(b.profile, Profile::Lagging);
        assert_eq!(b.data_lag.as_millis(), 250);
        assert!(b.sparse_bodies && !b.provisioned_at_once && !b.restricted_commands);
        assert!(
            BehaviourSpec {
                data_lag_seconds: Some(-1.0),
                ..BehaviourSpec::default()
            }
            .validate()
            .is_err()
        );
    }
}
