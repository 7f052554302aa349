//! Whose server a config var leads to: the one check that a Redis URL is not another add-on's,
//! shared by the capture (so the guards block before anything is written) and the steps
//! (which re-read the URL before they read, repair or bring the writers back).

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::time::Duration;

use crate::heroku::{Client, HerokuError};
use crate::verify::RedisUrl;

/// A config var proven to lead to another add-on's server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Foreign {
    /// The other config var that names the same server.
    pub other_var: String,
    /// The add-on that exposes `other_var`.
    pub owner: String,
}

impl Foreign {
    /// The finding in words: which var leads where, whose server that is, and what to check.
    /// The endpoint is host and port only: the URL's password never reaches the text.
    pub fn describe(&self, var: &str, label: &str, url: &RedisUrl, app: &str) -> String {
        format!(
            "config var {var} of {label} leads to the same Redis server ({}) as {}, which \
             add-on {} exposes: that server is {}'s, not proven to be {label}'s, and upshift \
             neither verifies nor repairs it as such. Check the add-ons' attachments and \
             config vars (`heroku addons -a {app}`, `heroku config -a {app}`)",
            url.endpoint(),
            self.other_var,
            self.owner,
            self.owner,
        )
    }
}

/// Whether `url`, the value of config var `var` of add-on `addon` (whose own vars are `own`),
/// leads to a server another add-on of `app` exposes through one of its config vars.
///
/// Only a var another add-on exposes proves the URL wrong: one the app's owner set by hand to
/// the same URL is a copy. The add-on list is read (one call) only when some var shares the
/// server, which is rare.
///
/// # Errors
/// The add-on list cannot be read.
pub(crate) async fn foreign_owner(
    client: &Client,
    app: &str,
    vars: &BTreeMap<String, String>,
    var: &str,
    addon: &str,
    own: &[String],
    url: &RedisUrl,
) -> Result<Option<Foreign>, HerokuError> {
    let Some(other) = shared_server(vars, var, own, url).await else {
        return Ok(None);
    };
    Ok(client
        .addons(app)
        .await?
        .into_iter()
        .find(|a| a.name != addon && a.config_vars.iter().any(|v| v == other))
        .map(|a| Foreign {
            other_var: other.to_owned(),
            owner: a.name,
        }))
}

/// The add-on of `app` other than `addon` whose server answers with `run_id`, with the config
/// var that leads there.
///
/// Why: the endpoint checks see only the addresses the app's config vars name. A URL that
/// reaches another add-on's server by any other address (a TCP forwarder, a second DNS name
/// behind NAT) passed them, and when that server held only keys the snapshot also holds, or
/// none, nothing in its data told it apart: the repair filled it (hostile pass 5, #2). The
/// server's own `run_id` tells it apart whatever the address. Read only before a repair
/// writes (one INFO per other add-on's Redis URL); a server that does not answer proves
/// nothing either way.
///
/// # Errors
/// The add-on list or the config vars cannot be read.
pub(crate) async fn run_id_owner(
    client: &Client,
    app: &str,
    addon: &str,
    run_id: &str,
    opts: &crate::verify::VerifyOptions,
) -> Result<Option<Foreign>, HerokuError> {
    let vars = client.config_vars(app).await?;
    for other in client.addons(app).await? {
        if other.name == addon {
            continue;
        }
        for var in &other.config_vars {
            let Some(url) = vars.0.get(var).and_then(|v| v.parse::<RedisUrl>().ok()) else {
                continue;
            };
            if crate::verify::server_info(&url, opts)
                .await
                .is_ok_and(|info| info.run_id == run_id)
            {
                return Ok(Some(Foreign {
                    other_var: var.clone(),
                    owner: other.name,
                }));
            }
        }
    }
    Ok(None)
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
    vars: &'a BTreeMap<String, String>,
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

/// The addresses a URL's host resolves to; none when it does not resolve within 5 s. An
/// IPv4-mapped IPv6 address (`[::ffff:127.0.0.1]`) counts as the IPv4 address it maps: the
/// same server under another spelling.
async fn addresses(url: &RedisUrl) -> HashSet<IpAddr> {
    let lookup = tokio::net::lookup_host((url.socket_host(), url.port()));
    match tokio::time::timeout(Duration::from_secs(5), lookup).await {
        Ok(Ok(found)) => found.map(|a| a.ip().to_canonical()).collect(),
        _ => HashSet::new(),
    }
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

    /// An IPv6 literal, and an IPv4-mapped one, name the server its address names (hostile
    /// pass 5: `[::ffff:127.0.0.1]` passed for another server than 127.0.0.1).
    #[tokio::test]
    async fn an_ipv4_mapped_literal_is_the_ipv4_server() {
        let url: RedisUrl = "redis://h:secret@[::ffff:127.0.0.1]:7777".parse().unwrap();
        let v = vars(&[
            ("CACHE_URL", "redis://h:other@127.0.0.1:7777"),
            ("MAIN_URL", "redis://h:secret@[::ffff:127.0.0.1]:7777"),
        ]);
        assert_eq!(
            shared_server(&v, "MAIN_URL", &[], &url).await,
            Some("CACHE_URL")
        );
        let url: RedisUrl = "redis://h:secret@[::1]:7777".parse().unwrap();
        let v = vars(&[("CACHE_URL", "redis://h:other@[0:0:0:0:0:0:0:1]:7777")]);
        assert_eq!(
            shared_server(&v, "MAIN_URL", &[], &url).await,
            Some("CACHE_URL")
        );
    }
}
