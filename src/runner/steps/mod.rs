//! One module per step of a playbook, in the manner of mini-redis' `src/cmd/*.rs`: the driver
//! (`runner::driver`) asks the engine for the next [`Action`](crate::engine::Action) and calls
//! that step's one entry point, `run`.
//!
//! # How a step is shaped
//! - **Context in.** `run(ctx: &StepCtx, log: &mut Ledger, ..)` gets a read-only [`StepCtx`]:
//!   the runner (client, config, reporter, interrupts), the request, and `Known`, what the run
//!   has learned so far (the capture, the snapshots, the old servers, the write marks). A step
//!   never mutates the run: nothing passes between steps through shared mutable maps.
//! - **Records to the ledger, at once.** A fact the journal keeps (a captured formation, an
//!   acknowledged PATCH, a snapshot file) goes to `Ledger::record` the moment the step knows
//!   it, before the step's next call can fail or the process can die: that is the journal-first
//!   rule the crash tests hold the runner to. The driver folds those records into `Known` with
//!   the same function a resumed run replays the journal through (`Known::absorb`), so a fresh
//!   run and a resumed one cannot disagree about what is known.
//! - **Typed output out.** What the journal does not keep comes back as the step's own type
//!   (`Drained { marks }`, `Guarded { blocked, window }`); the driver stores it. Facts a step
//!   learns per add-on that must survive its later failure (a verify's report, the plan a settle
//!   found) go to `Ledger::learn`.
//! - **Idempotent, re-derived.** Every step re-reads the platform before it writes and is safe
//!   to repeat after a crash (a `# Guarantees` section says how); its compensation sits in the
//!   same module, or beside it when it is a procedure of its own (`settle`, the change-plan
//!   step's).
//!
//! A strategy is a playbook whose actions name modules here. The live swap added five, shaped
//! the same way: `provision_new` (and `destroy`), `copy_live` (and `restore_notifications`),
//! `catch_up`, `move_attachments` (and `move_back`) and `retire_old`, sharing `live`; per
//! action, its entry in the engine's fixed registry (`engine::Action`, with its compensation),
//! its module, and one arm in the driver's dispatch (`ActiveRun::perform`,
//! `ActiveRun::compensate`). Nothing else in the runner changed.

pub(super) mod capture;
pub(super) mod catch_up;
pub(super) mod change_plan;
pub(super) mod copy_live;
mod formation;
pub(super) mod guard;
pub(super) mod health;
mod live;
pub(super) mod maintenance;
pub(super) mod move_attachments;
pub(super) mod provision_new;
pub(super) mod restore_formation;
pub(super) mod retire_old;
pub(super) mod scale;
pub(super) mod settle;
pub(super) mod snapshot;
pub(super) mod verify;
pub(super) mod wait_drained;
pub(super) mod wait_provisioned;
mod writes;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::ledger::Known;
pub(super) use super::target::Target;
use super::{RunEvent, Runner, StepError};
use crate::events::Reporter;
use crate::heroku::Client;
use crate::plan::RunRequest;
use crate::plan::facts::Capture;
use crate::verify::RedisUrl;

/// What every step reads: who runs, what was asked, what is known. Read-only by construction.
pub(super) struct StepCtx<'a> {
    pub runner: &'a Runner,
    pub request: &'a RunRequest,
    pub run_id: &'a str,
    pub known: &'a Known,
}

/// Paces a wait: adaptive delays, a deadline, interrupts.
pub(super) struct Pacer {
    delay: Duration,
    pub deadline: Instant,
    abortable: bool,
    /// Keep `delay` as it is (fast Redis polls that cost no API call).
    fixed: bool,
}

impl Pacer {
    /// A pacer that polls every `delay` without backing off (no API call involved).
    pub fn fixed(delay: Duration, deadline: Instant, abortable: bool) -> Self {
        Self {
            delay,
            deadline,
            abortable,
            fixed: true,
        }
    }
}

impl StepCtx<'_> {
    pub fn client(&self) -> &Client {
        &self.runner.client
    }

    pub fn config(&self) -> &super::RunnerConfig {
        &self.runner.config
    }

    pub fn report(&self, event: &RunEvent) {
        self.runner.reporter.report(event);
    }

    pub fn app(&self) -> &str {
        &self.request.app
    }

    /// The captured facts; every step after the capture needs them.
    pub fn capture(&self) -> Result<&Capture, StepError> {
        self.known
            .capture
            .as_ref()
            .ok_or_else(|| StepError::failed("no captured facts in this run's journal"))
    }

    /// The add-ons of the run, as the capture found them (none before the capture).
    pub fn targets(&self) -> Vec<Target> {
        self.known.targets(self.request)
    }

    /// A pacer for a wait of `timeout`; an `abortable` one ends at the first interrupt.
    pub fn pacer(&self, timeout: Duration, abortable: bool) -> Pacer {
        Pacer {
            delay: self.config().poll.initial,
            deadline: Instant::now() + timeout,
            abortable,
            fixed: false,
        }
    }

    /// Sleeps until the next poll. `Ok(false)` when the deadline has passed.
    pub async fn pace(&self, pacer: &mut Pacer) -> Result<bool, StepError> {
        let now = Instant::now();
        if now >= pacer.deadline {
            return Ok(false);
        }
        let until = (now + pacer.delay).min(pacer.deadline);
        // The wait races the interrupts rather than polling them: the first ends an abortable
        // wait (roll back), the second any wait (leave resumable).
        let interrupts = &self.runner.interrupts;
        tokio::select! {
            biased;
            () = interrupts.reached(if pacer.abortable { 1 } else { 2 }) => {
                return Err(if interrupts.count() >= 2 {
                    StepError::Interrupted
                } else {
                    StepError::Aborted
                });
            }
            () = tokio::time::sleep(until.saturating_duration_since(now)) => {}
        }
        if !pacer.fixed {
            pacer.delay = self
                .config()
                .poll
                .next(pacer.delay, self.client().rate_limit_remaining());
        }
        Ok(true)
    }

    /// The Redis URL of a target as the app's config var says now (it changes with a plan
    /// change). The URL is a secret: it lives only in memory.
    pub async fn current_url(&self, target: &Target) -> Result<RedisUrl, StepError> {
        let vars = self.client().config_vars(self.app()).await?;
        let var = target
            .url_var
            .as_deref()
            .ok_or_else(|| StepError::failed(format!("{} lists no config var", target.label)))?;
        let raw = vars.get(var).ok_or_else(|| {
            StepError::failed(format!(
                "config var {var} of {} is not set on {}",
                target.label,
                self.app()
            ))
        })?;
        let url = raw
            .parse::<RedisUrl>()
            .map_err(|e| StepError::failed(format!("config var {var}: {e}")))?;
        // heroku-redis has only database 0 (the guard admits no other service): a URL naming
        // another leads to a server, or a part of one, that is not this add-on's (hostile
        // pass 5: an empty db 3 of a foreign server was "repaired" from the snapshot).
        if url.db() != 0 {
            return Err(StepError::NotTheAddons {
                addon: target.name.clone(),
                message: format!(
                    "config var {var} of {} names database {} ({}/{}), but a heroku-redis \
                     add-on has only database 0: the URL does not lead to {}'s data, and \
                     upshift neither verifies nor repairs it as such. Check the add-ons' \
                     attachments and config vars (`heroku addons -a {}`, `heroku config -a {}`)",
                    target.label,
                    url.db(),
                    url.endpoint(),
                    url.db(),
                    target.label,
                    self.app(),
                    self.app()
                ),
            });
        }
        let shared = shared_server(&vars.0, var, &target.own_vars, &url).await;
        // Only a var another add-on exposes proves the URL wrong: one the app's owner set by
        // hand to the same URL is a copy (one call to the platform, in that rare case only).
        let owner = match shared {
            Some(other) => self
                .client()
                .addons(self.app())
                .await?
                .into_iter()
                .find(|a| a.name != target.name && a.config_vars.iter().any(|v| v == other))
                .map(|a| (other, a.name)),
            None => None,
        };
        if let Some((other, owner)) = owner {
            return Err(StepError::NotTheAddons {
                addon: target.name.clone(),
                message: format!(
                    "config var {var} of {} leads to the same Redis server ({}) as {other}, \
                     which add-on {owner} exposes: that server is {owner}'s, not proven to be \
                     {}'s, and upshift neither verifies nor repairs it as such. Check the \
                     add-ons' attachments and config vars (`heroku addons -a {}`, \
                     `heroku config -a {}`)",
                    target.label,
                    url.endpoint(),
                    target.label,
                    self.app(),
                    self.app()
                ),
            });
        }
        Ok(url)
    }

    /// Key counts for the reporter while a verifier pass runs over `subject`.
    pub fn progress(&self, subject: &str) -> KeysProgress {
        KeysProgress {
            reporter: self.runner.reporter.clone(),
            subject: subject.to_owned(),
            total: AtomicU64::new(0),
            done: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
        }
    }
}

/// The first config var other than `var` and the add-on's own that holds a Redis URL leading
/// to the same server (host, port and database) as `url`. Hosts match by name, or else by
/// address: `localhost` and `127.0.0.1`, or two DNS names of one machine, are one server.
///
/// Why: a different `run_id` from the old server's proves only that the server is not the old
/// one. A config var pointing at another add-on's Redis (a moved attachment, a credential
/// rotation gone wrong) passed as "the new server", and verify then "repaired" that add-on's
/// data from this one's snapshot (hostile pass 4). Two add-ons never share a server, so a
/// shared endpoint is proof the URL is wrong. A name that does not resolve proves nothing
/// either way and is not taken as shared.
async fn shared_server<'a>(
    vars: &'a std::collections::BTreeMap<String, String>,
    var: &str,
    own: &[String],
    url: &RedisUrl,
) -> Option<&'a str> {
    let others: Vec<(&'a str, RedisUrl)> = vars
        .iter()
        .filter(|(name, _)| name.as_str() != var && !own.iter().any(|o| o == *name))
        .filter_map(|(name, value)| Some((name.as_str(), value.parse::<RedisUrl>().ok()?)))
        .filter(|(_, other)| other.port() == url.port() && other.db() == url.db())
        .collect();
    if let Some((name, _)) = others
        .iter()
        .find(|(_, other)| other.host().eq_ignore_ascii_case(url.host()))
    {
        return Some(name);
    }
    if others.is_empty() {
        return None;
    }
    let mine = addresses(url).await;
    for (name, other) in others {
        if !mine.is_disjoint(&addresses(&other).await) {
            return Some(name);
        }
    }
    None
}

/// The addresses a URL's host resolves to; none when it does not resolve within 5 s.
async fn addresses(url: &RedisUrl) -> std::collections::HashSet<std::net::IpAddr> {
    let lookup = tokio::net::lookup_host((url.host(), url.port()));
    match tokio::time::timeout(Duration::from_secs(5), lookup).await {
        Ok(Ok(found)) => found.map(|a| a.ip()).collect(),
        _ => std::collections::HashSet::new(),
    }
}

/// Forwards the verifier's key counts to the reporter.
pub(super) struct KeysProgress {
    reporter: Arc<dyn Reporter>,
    subject: String,
    total: AtomicU64,
    done: AtomicU64,
    /// Value bytes read, for the summary's "bytes verified".
    bytes: AtomicU64,
}

impl KeysProgress {
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

impl crate::verify::Progress for KeysProgress {
    fn total(&self, keys: u64) {
        self.total.store(keys, Ordering::Relaxed);
    }
    fn advance(&self, keys: u64, bytes: u64) {
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        let done = self.done.fetch_add(keys, Ordering::Relaxed) + keys;
        self.reporter.report(&RunEvent::Keys {
            subject: self.subject.clone(),
            done,
            total: self.total.load(Ordering::Relaxed),
        });
    }
}

/// The Data API's `/wait` in words; Heroku may leave `message` out (issue 11, 5(e)).
pub(super) fn wait_text(wait: &crate::heroku::models::RedisWait) -> String {
    match (wait.message.is_empty(), wait.waiting) {
        (false, _) => wait.message.clone(),
        (true, true) => "waiting".into(),
        (true, false) => "not waiting".into(),
    }
}

pub(super) fn duration_text(d: Duration) -> String {
    crate::playbook::duration::format(d)
}

#[cfg(test)]
mod tests {
    use super::shared_server;
    use crate::verify::RedisUrl;

    fn vars(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// Two names of one server are one server: `localhost` resolves to the address another
    /// add-on's URL names (hostile pass 4 left this open: the check compared host text).
    #[tokio::test]
    async fn a_url_naming_another_add_ons_server_by_another_name_is_shared() {
        let url: RedisUrl = "redis://h:secret@127.0.0.1:7777".parse().unwrap();
        let v = vars(&[
            ("CACHE_URL", "redis://h:other@localhost:7777"),
            ("MAIN_URL", "redis://h:secret@127.0.0.1:7777"),
        ]);
        assert_eq!(
            shared_server(&v, "MAIN_URL", &[], &url).await,
            Some("CACHE_URL")
        );
        // The add-on's own other vars are no proof; another port or database is another server.
        assert_eq!(
            shared_server(&v, "MAIN_URL", &["CACHE_URL".into()], &url).await,
            None
        );
        let v = vars(&[
            ("CACHE_URL", "redis://h:other@localhost:7778"),
            ("DB1_URL", "redis://h:other@localhost:7777/1"),
            ("NOWHERE_URL", "redis://h:x@name.invalid:7777"),
            ("NOT_A_URL", "web"),
        ]);
        assert_eq!(shared_server(&v, "MAIN_URL", &[], &url).await, None);
    }
}
