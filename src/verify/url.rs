//! `RedisUrl`: a parsed, validated `redis://` or `rediss://` URL whose password never shows.
//!
//! Heroku puts the password in the config var URL (`rediss://:PASSWORD@host:port`). Every
//! rendering of a [`RedisUrl`] (Display, Debug, errors) replaces it with `***`, so the rest of the
//! crate can log and print URLs freely.

use std::fmt;
use std::str::FromStr;

/// Why a Redis URL was refused. The messages never repeat the URL: it may hold a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// The text is not a URL at all.
    #[error(
        "the redis url is not a valid url ({reason}): expected redis://[:PASSWORD@]HOST[:PORT][/DB] or rediss://…"
    )]
    Syntax {
        /// What the URL parser objected to (never the URL itself).
        reason: String,
    },
    /// A scheme other than `redis` or `rediss`.
    #[error("unsupported url scheme `{scheme}`: use redis:// or rediss:// (TLS, as on Heroku)")]
    Scheme {
        /// The scheme found.
        scheme: String,
    },
    /// No host name.
    #[error("the redis url has no host: expected redis://[:PASSWORD@]HOST[:PORT]")]
    MissingHost,
    /// The path is not a database number.
    #[error("the redis url path `{path}` is not a database number: use /0 (or omit it)")]
    Database {
        /// The path found.
        path: String,
    },
    /// Query parameters or fragments change connection behaviour behind the user's back.
    #[error(
        "the redis url must not carry a query or a fragment: use --tls-verify for certificate checks"
    )]
    Extra,
}

/// A Redis endpoint: scheme, host, port, credentials and database.
///
/// Display and Debug print `rediss://:***@host:port/db`: the password never appears.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl {
    url: url::Url,
    tls: bool,
    host: String,
    port: u16,
    db: i64,
}

impl RedisUrl {
    /// Whether the connection uses TLS (`rediss://`).
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The host name or address.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The host as a socket address takes it: an IPv6 literal without the brackets the URL
    /// (and [`RedisUrl::host`], for display) writes around it. `[::1]` given to a resolver is a
    /// name, and no such name exists; `::1` is the address. A TLS server name made from it is an
    /// IP address, for which no SNI is sent.
    pub(crate) fn socket_host(&self) -> &str {
        self.host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(&self.host)
    }

    /// The TCP port (6379 when the URL has none).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The database number (0 when the URL has none).
    pub fn db(&self) -> i64 {
        self.db
    }

    /// Whether the URL carries a password.
    pub fn has_password(&self) -> bool {
        self.url.password().is_some()
    }

    /// `host:port`, safe for messages.
    pub fn endpoint(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The user and password for AUTH, percent-decoded as the `redis` crate decodes them.
    /// They hold the secret: never print them.
    pub(crate) fn credentials(&self) -> (Option<String>, Option<String>) {
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        };
        let user = Some(self.url.username())
            .filter(|u| !u.is_empty())
            .map(decode);
        (user, self.url.password().map(decode))
    }

    /// The URL handed to the `redis` crate. It holds the password: never print it.
    /// Without `verify`, the `#insecure` fragment turns certificate checks off, as Heroku's own
    /// CLI does for the self-signed certificates of heroku-redis.
    pub(crate) fn connection_url(&self, verify: bool) -> url::Url {
        let mut url = self.url.clone();
        if self.tls && !verify {
            url.set_fragment(Some("insecure"));
        }
        url
    }
}

impl FromStr for RedisUrl {
    type Err = UrlError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let url = url::Url::parse(s.trim()).map_err(|e| UrlError::Syntax {
            reason: e.to_string(),
        })?;
        let tls = match url.scheme() {
            "redis" => false,
            "rediss" => true,
            other => {
                return Err(UrlError::Scheme {
                    scheme: other.to_owned(),
                });
            }
        };
        if url.query().is_some() || url.fragment().is_some() {
            return Err(UrlError::Extra);
        }
        let host = match url.host_str() {
            Some(h) if !h.is_empty() => h.to_owned(),
            _ => return Err(UrlError::MissingHost),
        };
        let port = url.port().unwrap_or(6379);
        let path = url.path().trim_matches('/');
        let db = if path.is_empty() {
            0
        } else {
            // Redis numbers its databases with a C int; beyond u32 is no database anywhere.
            path.parse::<u32>()
                .ok()
                .map(i64::from)
                .ok_or_else(|| UrlError::Database {
                    path: path.to_owned(),
                })?
        };
        Ok(Self {
            url,
            tls,
            host,
            port,
            db,
        })
    }
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "rediss" } else { "redis" };
        write!(f, "{scheme}://")?;
        let user = self.url.username();
        if self.has_password() {
            write!(f, "{user}:***@")?;
        } else if !user.is_empty() {
            write!(f, "{user}@")?;
        }
        write!(f, "{}:{}/{}", self.host, self.port, self.db)
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisUrl({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::{RedisUrl, UrlError};

    #[test]
    fn heroku_url_parses_and_hides_the_password() {
        let url: RedisUrl = "rediss://:p4ssw0rd@ec2-1-2-3-4.compute-1.amazonaws.com:25580"
            .parse()
            .unwrap();
        assert!(url.is_tls());
        assert_eq!(url.port(), 25580);
        assert_eq!(url.db(), 0);
        assert_eq!(
            url.to_string(),
            "rediss://:***@ec2-1-2-3-4.compute-1.amazonaws.com:25580/0"
        );
        assert!(!format!("{url:?}").contains("p4ssw0rd"));
        assert!(url.connection_url(false).as_str().ends_with("#insecure"));
        assert!(url.connection_url(true).fragment().is_none());
    }

    #[test]
    fn plain_url_defaults() {
        let url: RedisUrl = "redis://localhost".parse().unwrap();
        assert!(!url.is_tls());
        assert_eq!(url.endpoint(), "localhost:6379");
        assert_eq!(url.to_string(), "redis://localhost:6379/0");
        let url: RedisUrl = "redis://user:secret@h:1/3".parse().unwrap();
        assert_eq!(url.to_string(), "redis://user:***@h:1/3");
        assert_eq!(url.socket_host(), "h");
    }

    #[test]
    fn an_ipv6_host_keeps_its_brackets_for_display_only() {
        let url: RedisUrl = "redis://:secret@[::1]:6380".parse().unwrap();
        assert_eq!(url.endpoint(), "[::1]:6380");
        assert_eq!(url.to_string(), "redis://:***@[::1]:6380/0");
        assert_eq!(url.socket_host(), "::1");
        assert!("::1".parse::<std::net::Ipv6Addr>().is_ok());
        let mapped: RedisUrl = "rediss://[::ffff:127.0.0.1]".parse().unwrap();
        assert_eq!(mapped.socket_host(), "::ffff:7f00:1");
    }

    #[test]
    fn bad_urls_are_refused_without_echoing_them() {
        for (input, want) in [
            ("http://:secret@h:1", "unsupported url scheme `http`"),
            ("redis://:secret@h:1/x", "is not a database number"),
            ("redis://:secret@h:1/0#insecure", "must not carry"),
            ("redis://:secret@:1", "valid url"),
            ("not a url secret", "valid url"),
        ] {
            let err = input.parse::<RedisUrl>().unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(want), "{input}: {msg}");
            assert!(!msg.contains("secret"), "{msg}");
        }
        assert_eq!(
            "redis://h/-1".parse::<RedisUrl>().unwrap_err(),
            UrlError::Database { path: "-1".into() }
        );
        assert_eq!(
            "redis://h/99999999999".parse::<RedisUrl>().unwrap_err(),
            UrlError::Database {
                path: "99999999999".into()
            }
        );
    }
}
