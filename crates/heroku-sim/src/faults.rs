//! Faults: injected failures of the HTTP API, of provisioning, of the data migration and of
//! dynos. Armed from the scenario, `POST /__sim/faults` or [`crate::Simulator::inject`].

use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::timeline::lock;

/// One fault to inject. Serialised with a `kind` tag (snake case), as in scenario files
/// (`[[faults]] kind = "http" …`) and the admin API (`{"kind": "http", …}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// Answer an HTTP error instead of serving the call: 429 `rate_limit` (with `Retry-After`)
    /// or 5xx `internal_server_error`, on the `nth` matching call (1 = the next one) and the
    /// `times - 1` matching calls after it.
    Http {
        #[serde(default)]
        method: Option<String>,
        /// Path pattern: `*` matches one segment, `**` the rest, `{name}` is like `*`.
        path: String,
        status: u16,
        #[serde(default = "one")]
        nth: u32,
        #[serde(default = "one")]
        times: u32,
        /// Seconds in `Retry-After` (429 only; default 1).
        #[serde(default)]
        retry_after: Option<u64>,
    },
    /// Close the TCP connection without an answer.
    DropConnection {
        #[serde(default)]
        method: Option<String>,
        path: String,
        #[serde(default = "one")]
        nth: u32,
        #[serde(default = "one")]
        times: u32,
    },
    /// The next plan change (of `addon`, or of any add-on) takes `extra_seconds` longer.
    SlowProvisioning {
        #[serde(default)]
        addon: Option<String>,
        extra_seconds: f64,
    },
    /// The next plan change fails after the usual time; the add-on stays on its old plan.
    FailProvisioning {
        #[serde(default)]
        addon: Option<String>,
        #[serde(default)]
        message: Option<String>,
    },
    /// The next plan change loses `count` keys (with `prefix`, only keys that start with it):
    /// deleted on the new server after the sync, before the switch-over.
    LoseKeys {
        #[serde(default)]
        addon: Option<String>,
        count: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prefix: Option<String>,
    },
    /// The next plan change alters the values of `count` string keys on the new server.
    ChangeKeys {
        #[serde(default)]
        addon: Option<String>,
        count: u32,
    },
    /// After the next plan change switches over, the new server refuses the credentials in
    /// the config var (its password changes, as an ACL or credential rotation gone wrong
    /// would): nothing can read or repair it through the URL the app will use.
    UnreadableAfterSwitch {
        #[serde(default)]
        addon: Option<String>,
    },
    /// After the next plan change switches over, the new server refuses every write (its
    /// memory limit drops below what it holds, with `noeviction`, as a plan too small for the
    /// data would): reads work, so a verify sees the data, but a repair cannot write it back.
    RefuseWritesAfterSwitch {
        #[serde(default)]
        addon: Option<String>,
    },
    /// When the next plan change switches over, the add-on's config var is set to the URL of
    /// the add-on `other` (by name or attachment) instead of the new server's: a config var
    /// pointing at another add-on's Redis, as a moved attachment or a credential rotation gone
    /// wrong would leave it. The server behind it is a different process from the old one,
    /// with someone else's data.
    UrlOfAnotherAfterSwitch {
        #[serde(default)]
        addon: Option<String>,
        other: String,
    },
    /// When the next plan change ends (switches over, or fails and stays on the old plan),
    /// the add-on's config var is set to `url`: a server no other config var of the app
    /// names (a TCP forwarder to another add-on's Redis, another app's add-on, a retired or
    /// foreign server), so no address comparison can tell it is not the add-on's.
    UrlAfterChange {
        #[serde(default)]
        addon: Option<String>,
        url: String,
    },
    /// Serve the call, then close the connection without sending the answer: the write lands
    /// on the platform but the client never learns it did (a proxy timeout, a reset).
    LoseResponse {
        #[serde(default)]
        method: Option<String>,
        path: String,
        #[serde(default = "one")]
        nth: u32,
        #[serde(default = "one")]
        times: u32,
    },
    /// The next scale-down of `process_type` leaves `dynos` of its dynos running as rogues: the
    /// platform no longer lists them, but they keep their connections and keep writing.
    IgnoreScaleDown {
        process_type: String,
        #[serde(default = "one")]
        dynos: u32,
    },
    /// Answer 200 with a body that never ends (`[` then spaces), as a hostile or broken
    /// server or proxy could: with `chunked`, streamed without a length; otherwise with a
    /// `Content-Length` of 1 TB.
    EndlessBody {
        #[serde(default)]
        method: Option<String>,
        path: String,
        #[serde(default)]
        chunked: bool,
        #[serde(default = "one")]
        nth: u32,
        #[serde(default = "one")]
        times: u32,
    },
    /// Serve the call, then answer it as a partial list (206) with a `Next-Range`: with
    /// `repeat`, the same `Next-Range` every time (the range never advances); otherwise one
    /// that always advances (the list never ends).
    EndlessPages {
        #[serde(default)]
        method: Option<String>,
        path: String,
        #[serde(default)]
        repeat: bool,
        #[serde(default = "one")]
        nth: u32,
        #[serde(default = "many")]
        times: u32,
    },
    /// Serve the call, then replace every `from` in the answer's body with `to` (a platform
    /// answering something it should not: another service's plan name, a foreign id).
    ReplaceBody {
        #[serde(default)]
        method: Option<String>,
        path: String,
        from: String,
        to: String,
        #[serde(default = "one")]
        nth: u32,
        #[serde(default = "many")]
        times: u32,
    },
    /// Every attachment resolve while armed (never spent) also answers an attachment of
    /// add-on `addon`, first: with `alone`, only that one (the resolve points at the wrong
    /// add-on); otherwise before the true match (an ambiguous answer).
    ResolveAlso {
        addon: String,
        #[serde(default)]
        alone: bool,
    },
    /// The simulator "restarts": on the `nth` matching call the connection drops and the API
    /// refuses connections for `down_seconds`. Apps, add-ons, Redis servers and dynos persist
    /// (they are in memory and keep running), as after a restart of Heroku's API tier.
    Restart {
        #[serde(default)]
        method: Option<String>,
        #[serde(default = "any_path")]
        path: String,
        #[serde(default = "one")]
        nth: u32,
        #[serde(default = "default_down")]
        down_seconds: f64,
    },
}

fn one() -> u32 {
    1
}
fn many() -> u32 {
    u32::MAX
}
fn any_path() -> String {
    "/**".into()
}
fn default_down() -> f64 {
    1.0
}

impl Fault {
    /// A short description for the timeline.
    pub fn describe(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| format!("{self:?}"))
    }

    /// Checks the values a scenario or admin call supplied.
    ///
    /// # Errors
    /// A message naming the bad field.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Self::Http { status, times, .. } => {
                if !(400..=599).contains(status) {
                    return Err(format!("http fault status {status} is not 4xx or 5xx"));
                }
                if *times == 0 {
                    return Err("http fault times must be at least 1".into());
                }
            }
            Self::SlowProvisioning { extra_seconds, .. } if *extra_seconds < 0.0 => {
                return Err("slow_provisioning extra_seconds must not be negative".into());
            }
            Self::Restart { down_seconds, .. } if *down_seconds < 0.0 => {
                return Err("restart down_seconds must not be negative".into());
            }
            _ => {}
        }
        Ok(())
    }
}

/// What the HTTP layer must do with one request.
#[derive(Debug, Clone, PartialEq)]
pub enum HttpAction {
    /// Serve it normally.
    Serve,
    /// Answer this status (with `Retry-After` seconds for a 429).
    Error { status: u16, retry_after: u64 },
    /// Close the connection without an answer.
    Drop,
    /// Serve the call, then close the connection without its answer.
    ServeThenDrop,
    /// Drop and take the API down for this many seconds.
    Restart { down_seconds: f64 },
    /// Answer 200 with a body that never ends.
    Endless { chunked: bool },
    /// Serve it as a partial list with a `Next-Range` that repeats or never ends.
    Partial { repeat: bool },
    /// Serve it with `from` replaced by `to` in the body.
    Replace { from: String, to: String },
}

#[derive(Debug)]
struct Armed {
    fault: Fault,
    /// Matching calls seen so far.
    seen: u32,
    spent: bool,
}

/// The armed faults.
#[derive(Debug, Default)]
pub struct Faults {
    armed: Mutex<Vec<Armed>>,
}

impl Faults {
    /// Arms a fault.
    pub fn arm(&self, fault: Fault) {
        lock(&self.armed).push(Armed {
            fault,
            seen: 0,
            spent: false,
        });
    }

    /// Every fault not yet spent.
    pub fn pending(&self) -> Vec<Fault> {
        lock(&self.armed)
            .iter()
            .filter(|a| !a.spent)
            .map(|a| a.fault.clone())
            .collect()
    }

    /// Disarms everything.
    pub fn clear(&self) {
        lock(&self.armed).clear();
    }

    /// Decides what to do with a request; counts it against every matching HTTP fault.
    /// Returns the action and, when a fault fired, its description.
    pub fn on_request(&self, method: &str, path: &str) -> (HttpAction, Option<String>) {
        let mut armed = lock(&self.armed);
        let mut action = HttpAction::Serve;
        let mut fired = None;
        for a in armed.iter_mut().filter(|a| !a.spent) {
            let (m, p, nth, times) = match &a.fault {
                Fault::Http {
                    method,
                    path,
                    nth,
                    times,
                    ..
                }
                | Fault::DropConnection {
                    method,
                    path,
                    nth,
                    times,
                }
                | Fault::LoseResponse {
                    method,
                    path,
                    nth,
                    times,
                }
                | Fault::EndlessBody {
                    method,
                    path,
                    nth,
                    times,
                    ..
                }
                | Fault::EndlessPages {
                    method,
                    path,
                    nth,
                    times,
                    ..
                }
                | Fault::ReplaceBody {
                    method,
                    path,
                    nth,
                    times,
                    ..
                } => (method, path, *nth, *times),
                Fault::Restart {
                    method, path, nth, ..
                } => (method, path, *nth, 1),
                _ => continue,
            };
            if m.as_deref()
                .is_some_and(|m| !m.eq_ignore_ascii_case(method))
                || !path_matches(p, path)
            {
                continue;
            }
            a.seen += 1;
            let nth = nth.max(1);
            if a.seen < nth {
                continue;
            }
            if a.seen >= nth.saturating_add(times.saturating_sub(1)) {
                a.spent = true;
            }
            if action == HttpAction::Serve {
                action = match &a.fault {
                    Fault::Http {
                        status,
                        retry_after,
                        ..
                    } => HttpAction::Error {
                        status: *status,
                        retry_after: retry_after.unwrap_or(1),
                    },
                    Fault::Restart { down_seconds, .. } => HttpAction::Restart {
                        down_seconds: *down_seconds,
                    },
                    Fault::LoseResponse { .. } => HttpAction::ServeThenDrop,
                    Fault::EndlessBody { chunked, .. } => HttpAction::Endless { chunked: *chunked },
                    Fault::EndlessPages { repeat, .. } => HttpAction::Partial { repeat: *repeat },
                    Fault::ReplaceBody { from, to, .. } => HttpAction::Replace {
                        from: from.clone(),
                        to: to.clone(),
                    },
                    _ => HttpAction::Drop,
                };
                fired = Some(a.fault.describe());
            }
        }
        (action, fired)
    }

    /// The first armed fault `pick` accepts, without spending it (for faults that hold for as
    /// long as they are armed).
    pub fn peek<T>(&self, pick: impl Fn(&Fault) -> Option<T>) -> Option<T> {
        lock(&self.armed)
            .iter()
            .filter(|a| !a.spent)
            .find_map(|a| pick(&a.fault))
    }

    /// Takes (spends) the first armed fault `pick` accepts for this add-on.
    /// `addon` may list several names of one target separated by `|` (an add-on's name and
    /// its attachment name), so a fault may name either.
    pub fn take<T>(
        &self,
        addon: &str,
        pick: impl Fn(&Fault) -> Option<(Option<&str>, T)>,
    ) -> Option<T> {
        let mut armed = lock(&self.armed);
        for a in armed.iter_mut().filter(|a| !a.spent) {
            if let Some((target, value)) = pick(&a.fault)
                && target.is_none_or(|t| addon.split('|').any(|name| name.eq_ignore_ascii_case(t)))
            {
                a.spent = true;
                return Some(value);
            }
        }
        None
    }
}

/// Whether a request path matches a fault's pattern: segments compared one by one, `*` or
/// `{name}` match any one segment, `**` matches the rest.
pub fn path_matches(pattern: &str, path: &str) -> bool {
    let pat: Vec<&str> = pattern.trim_matches('/').split('/').collect();
    let segs: Vec<&str> = path
        .split('?')
        .next()
        .unwrap_or("")
        .trim_matches('/')
        .split('/')
        .collect();
    for (i, p) in pat.iter().enumerate() {
        if *p == "**" {
            return true;
        }
        let Some(s) = segs.get(i) else { return false };
        let wild = *p == "*" || (p.starts_with('{') && p.ends_with('}'));
        if !wild && p != s {
            return false;
        }
    }
    pat.len() == segs.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_segments() {
        assert!(path_matches("/apps/*/formation", "/apps/x/formation"));
        assert!(path_matches("/apps/{app}/addons/{id}", "/apps/x/addons/y"));
        assert!(!path_matches("/apps/*/formation", "/apps/x/formation/web"));
        assert!(path_matches("/apps/**", "/apps/x/formation/web"));
        assert!(path_matches("/**", "/account/rate-limits"));
        assert!(!path_matches("/apps", "/apps/x"));
    }

    #[test]
    fn http_fault_fires_on_the_nth_call_for_times_calls() {
        let f = Faults::default();
        f.arm(Fault::Http {
            method: Some("GET".into()),
            path: "/apps".into(),
            status: 500,
            nth: 2,
            times: 2,
            retry_after: None,
        });
        assert_eq!(f.on_request("GET", "/apps").0, HttpAction::Serve);
        assert!(matches!(f.on_request("POST", "/apps").0, HttpAction::Serve));
        assert!(matches!(
            f.on_request("GET", "/apps").0,
            HttpAction::Error { status: 500, .. }
        ));
        assert!(matches!(
            f.on_request("GET", "/apps").0,
            HttpAction::Error { status: 500, .. }
        ));
        assert_eq!(f.on_request("GET", "/apps").0, HttpAction::Serve);
        assert!(f.pending().is_empty());
    }
}
