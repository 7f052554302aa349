//! Finding the API token the way the Heroku CLI does: `HEROKU_API_KEY`, else `~/.netrc`, else
//! `heroku auth:token` when the CLI is installed (Heroku CLI 13+ keeps the token in the OS
//! keychain, so `.netrc` may hold none).

use std::fmt;
use std::path::{Path, PathBuf};

use crate::heroku::HerokuError;

/// The machine name the Heroku CLI writes into `.netrc`.
pub const NETRC_MACHINE: &str = "api.heroku.com";

/// A Heroku API token. Never printed: `Debug` and `Display` show a placeholder.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// Wraps a token string (trimmed).
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into().trim().to_owned())
    }

    /// The secret itself, for the Authorization header only.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where `.netrc` is: `NETRC` when set, else `~/.netrc`.
pub fn netrc_path(netrc_env: Option<&str>, home: Option<&Path>) -> PathBuf {
    match netrc_env {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => home.map_or_else(|| PathBuf::from(".netrc"), |h| h.join(".netrc")),
    }
}

/// Resolves the token: the environment value first, else the netrc file's `password` for
/// `machine api.heroku.com`.
///
/// # Errors
/// [`HerokuError::NoToken`] when neither has one; [`HerokuError::ReadNetrc`] when the file
/// exists but cannot be read.
pub fn resolve_token(env_key: Option<&str>, netrc: &Path) -> Result<Token, HerokuError> {
    if let Some(key) = env_key.map(str::trim).filter(|k| !k.is_empty()) {
        return header_safe(key, "HEROKU_API_KEY").map(|()| Token::new(key));
    }
    let text = match crate::files::read_text_capped(netrc, crate::files::TEXT_FILE_LIMIT) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(HerokuError::NoToken {
                netrc: netrc.to_owned(),
            });
        }
        Err(source) => {
            return Err(HerokuError::ReadNetrc {
                path: netrc.to_owned(),
                source,
            });
        }
    };
    let key = netrc_password(&text, NETRC_MACHINE).ok_or_else(|| HerokuError::NoToken {
        netrc: netrc.to_owned(),
    })?;
    header_safe(&key, "the .netrc file")?;
    Ok(Token::new(key))
}

/// A key an `Authorization` header can carry: visible ASCII only. Checked here so a pasted
/// key with a line break is bad input (exit 2) that says so, not "could not reach Heroku".
fn header_safe(key: &str, from: &'static str) -> Result<(), HerokuError> {
    if key.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(HerokuError::BadToken { from })
    }
}

/// How long `heroku auth:token` may take (the CLI starts node, and may refresh the token).
const CLI_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The token the Heroku CLI prints with `heroku auth:token`, when a `heroku` on `PATH` prints
/// one within [`CLI_TIMEOUT`]; `None` otherwise (not installed, logged out, too slow). Its
/// stderr is discarded (it may be a login prompt or an update notice), stdin is closed so it
/// cannot ask, and the token is never logged.
pub fn cli_token() -> Option<Token> {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let mut child = Command::new("heroku")
        .arg("auth:token")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().ok()? {
            break status;
        }
        if started.elapsed() > CLI_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let mut out = String::new();
    child.stdout.take()?.read_to_string(&mut out).ok()?;
    let token = out.lines().map(str::trim).find(|l| !l.is_empty())?;
    (status.success() && !token.contains(char::is_whitespace)).then(|| Token::new(token))
}

/// The `password` of one machine in netrc text. Tokens are whitespace-separated and may span
/// lines, as in the netrc format; `default` entries are ignored (the CLI ignores them too).
fn netrc_password(text: &str, machine: &str) -> Option<String> {
    let mut words = text.split_whitespace();
    let mut in_machine = false;
    while let Some(word) = words.next() {
        match word {
            "machine" => in_machine = words.next() == Some(machine),
            "default" => in_machine = false,
            "password" if in_machine => return words.next().map(unquote),
            "login" | "account" | "password" => {
                words.next();
            }
            _ => {}
        }
    }
    None
}

/// `password "abc"` means `abc`: tools that write netrc files quote values, and a token sent
/// with its quotes is refused with a 401 that names neither.
fn unquote(word: &str) -> String {
    word.strip_prefix('"')
        .and_then(|w| w.strip_suffix('"'))
        .filter(|w| !w.is_empty())
        .unwrap_or(word)
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quoted_password_loses_its_quotes() {
        let text = "machine api.heroku.com login a@b.c password \"abc-123\"\n";
        assert_eq!(
            netrc_password(text, NETRC_MACHINE).as_deref(),
            Some("abc-123")
        );
        assert_eq!(unquote("\""), "\"");
        assert_eq!(unquote("plain"), "plain");
    }

    #[test]
    fn env_wins_over_netrc() {
        let t = resolve_token(Some(" abc "), Path::new("/nonexistent/.netrc")).unwrap();
        assert_eq!(t.expose(), "abc");
    }

    #[test]
    fn reads_the_heroku_machine_from_netrc() {
        let text = "machine git.heroku.com\n  login a@b.c\n  password gitpw\n\
                    machine api.heroku.com login a@b.c password apipw\n";
        assert_eq!(
            netrc_password(text, NETRC_MACHINE).as_deref(),
            Some("apipw")
        );
        assert_eq!(
            netrc_password("machine other password x", NETRC_MACHINE),
            None
        );
    }

    #[test]
    fn missing_everything_names_both_sources() {
        let err = resolve_token(None, Path::new("/nonexistent/.netrc")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("HEROKU_API_KEY"), "{msg}");
        assert!(msg.contains("/nonexistent/.netrc"), "{msg}");
        assert!(msg.contains("heroku auth:token"), "{msg}");
    }

    #[test]
    fn token_never_prints() {
        let t = Token::new("s3cret");
        assert!(!format!("{t:?} {t}").contains("s3cret"));
    }

    #[test]
    fn netrc_env_overrides_home() {
        assert_eq!(
            netrc_path(Some("/x/n"), Some(Path::new("/home/u"))),
            PathBuf::from("/x/n")
        );
        assert_eq!(
            netrc_path(None, Some(Path::new("/home/u"))),
            PathBuf::from("/home/u/.netrc")
        );
    }
}
