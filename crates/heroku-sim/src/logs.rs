//! The app's log stream: lines in Heroku's format, kept in a ring for `lines` and broadcast
//! for `tail`, served on the simulator's own port as a log session's `logplex_url`.

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::broadcast;

use crate::timeline::lock;

/// Lines kept for sessions that ask for history (Heroku serves at most 1500).
const KEEP: usize = 1500;

/// One log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub app: String,
    /// `app` or `heroku`.
    pub source: String,
    /// `web.1`, `api`, `router`, `heroku-redis`, …
    pub dyno: String,
    /// The formatted line, e.g. `2026-11-25T23:00:00.000000+00:00 app[web.1]: message`.
    pub text: String,
}

/// The simulator's log bus.
#[derive(Debug)]
pub struct LogBus {
    recent: Mutex<VecDeque<LogLine>>,
    tx: broadcast::Sender<LogLine>,
}

impl Default for LogBus {
    fn default() -> Self {
        let (tx, _) = broadcast::channel(4096);
        Self {
            recent: Mutex::new(VecDeque::with_capacity(KEEP)),
            tx,
        }
    }
}

impl LogBus {
    /// Emits one line now.
    pub fn emit(&self, app: &str, source: &str, dyno: &str, message: &str) {
        let text = format!("{} {source}[{dyno}]: {message}", heroku_timestamp());
        let line = LogLine {
            app: app.to_owned(),
            source: source.to_owned(),
            dyno: dyno.to_owned(),
            text,
        };
        {
            let mut recent = lock(&self.recent);
            if recent.len() >= KEEP {
                recent.pop_front();
            }
            recent.push_back(line.clone());
        }
        // No subscriber is fine: nobody tails right now.
        let _ = self.tx.send(line);
    }

    /// The last `n` lines of `app` that pass `filter`.
    pub fn recent(&self, app: &str, n: usize, filter: &LogFilter) -> Vec<LogLine> {
        let recent = lock(&self.recent);
        let mut lines: Vec<LogLine> = recent
            .iter()
            .rev()
            .filter(|l| l.app == app && filter.accepts(l))
            .take(n)
            .cloned()
            .collect();
        lines.reverse();
        lines
    }

    /// A receiver of every line from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<LogLine> {
        self.tx.subscribe()
    }
}

/// What a log session asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogFilter {
    /// `web.1`, or a process type (`web`) for all its dynos.
    pub dyno: Option<String>,
    /// `app` or `heroku`.
    pub source: Option<String>,
}

impl LogFilter {
    /// Whether a line is part of the session.
    pub fn accepts(&self, line: &LogLine) -> bool {
        let dyno_ok = self
            .dyno
            .as_deref()
            .is_none_or(|d| line.dyno == d || line.dyno.split('.').next() == Some(d));
        let source_ok = self.source.as_deref().is_none_or(|s| line.source == s);
        dyno_ok && source_ok
    }
}

/// Now in Heroku's log format: `2026-11-25T23:00:00.000000+00:00`.
pub fn heroku_timestamp() -> String {
    let now = jiff::Timestamp::now();
    let micros = now.subsec_microsecond();
    format!("{}.{micros:06}+00:00", now.strftime("%Y-%m-%dT%H:%M:%S"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_have_heroku_format_and_filter_by_dyno() {
        let bus = LogBus::default();
        bus.emit("a", "app", "web.1", "hello");
        bus.emit("a", "heroku", "web.2", "State changed from starting to up");
        bus.emit("b", "app", "web.1", "other app");
        let all = bus.recent("a", 10, &LogFilter::default());
        assert_eq!(all.len(), 2);
        let text = &all[0].text;
        assert!(text.ends_with(" app[web.1]: hello"), "{text}");
        assert_eq!(&text[26..32], "+00:00", "{text}");
        let web2 = LogFilter {
            dyno: Some("web.2".into()),
            source: None,
        };
        assert_eq!(bus.recent("a", 10, &web2).len(), 1);
        let web = LogFilter {
            dyno: Some("web".into()),
            source: Some("app".into()),
        };
        assert_eq!(bus.recent("a", 10, &web).len(), 1);
    }
}
