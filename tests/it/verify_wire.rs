//! The DUMP reads' own connections (`verify/wire`): over TLS with a password, in a database
//! other than 0, with a payload bigger than the reply buffer, and as an ACL user whose CLIENT
//! is refused: the same data as the command reader (judged by our own reads), no more
//! connections than asked, every one named for the drain check, and the password nowhere.

use std::fmt::Write as _;
use std::sync::Mutex;

use upshift::verify::{self, Progress, ValueSource, VerifyOptions};

use crate::verify_support::{Server, opts, tls_material};

/// Loads `n` strings (every tenth with an expiry), hashes, lists and one 600 kB string into
/// database `db` through redis-cli, our own client.
fn load(a: &Server, tls: &std::path::Path, db: &str, n: usize) {
    let script = format!(
        "for i = 1, {n} do \
           redis.call('SET', 's:' .. i, 'value ' .. i) \
           if i % 10 == 0 then redis.call('PEXPIREAT', 's:' .. i, 4102444800000 + i) end \
           if i % 7 == 0 then redis.call('HSET', 'h:' .. i, 'f', i, 'g', 'x') end \
           if i % 9 == 0 then redis.call('RPUSH', 'l:' .. i, 'a', i, 'b') end \
         end \
         redis.call('SET', 'big', string.rep('0123456789', 60000)) \
         return redis.call('DBSIZE')"
    );
    let out = a.cli(Some(tls), &["-n", db, "EVAL", &script, "0"]);
    assert!(out.trim().parse::<u64>().is_ok(), "load failed: {out}");
}

/// Our own count of the keys in `db`.
fn dbsize(a: &Server, tls: &std::path::Path, db: &str) -> u64 {
    a.cli(Some(tls), &["-n", db, "DBSIZE"])
        .trim()
        .parse()
        .expect("DBSIZE")
}

/// `total_connections_received` (INFO stats), read by redis-cli (which counts itself).
fn connections_received(a: &Server, tls: &std::path::Path) -> u64 {
    let info = a.cli(Some(tls), &["INFO", "stats"]);
    info.lines()
        .find_map(|l| l.strip_prefix("total_connections_received:"))
        .expect("INFO stats")
        .trim()
        .parse()
        .expect("a number")
}

/// Reads CLIENT LIST (with redis-cli) the first time the scan reports progress, that is while
/// every connection of the scan is open.
struct ListClients<'a> {
    server: &'a Server,
    tls: &'a std::path::Path,
    names: Mutex<Option<Vec<String>>>,
}

impl Progress for ListClients<'_> {
    fn total(&self, _: u64) {}

    fn advance(&self, _: u64, _: u64) {
        let mut names = self.names.lock().unwrap();
        if names.is_none() {
            let list = self.server.cli(Some(self.tls), &["CLIENT", "LIST"]);
            *names = Some(
                list.lines()
                    .filter_map(|l| l.split(' ').find_map(|p| p.strip_prefix("name=")))
                    .filter(|n| n.starts_with("upshift-"))
                    .map(str::to_owned)
                    .collect(),
            );
        }
    }
}

fn chain(err: &dyn std::error::Error) -> String {
    let mut out = format!("{err} / {err:?}");
    let mut s = err.source();
    while let Some(e) = s {
        let _ = write!(out, " / {e} / {e:?}");
        s = e.source();
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_password_reads_what_the_command_reader_reads_and_hides_the_password() {
    let secret = "W1reS3cretPassw0rd";
    let material = tls_material();
    let tls = material.path();
    let a = Server::builder().tls(tls).password(secret).start();
    load(&a, tls, "3", 3000);
    // Other data in database 0: a connection that failed to SELECT would read it instead.
    a.cli(Some(tls), &["SET", "only-in-db0", "x"]);
    let expected = dbsize(&a, tls, "3");
    assert!(expected > 3000, "{expected}");

    let url: verify::RedisUrl = format!("rediss://:{secret}@127.0.0.1:{}/3", a.port)
        .parse()
        .unwrap();
    let wired = VerifyOptions {
        max_connections: 3,
        ..opts()
    };
    let before = connections_received(&a, tls);
    let progress = ListClients {
        server: &a,
        tls,
        names: Mutex::new(None),
    };
    let by_wire = verify::digest(&url, &wired, &progress).await.unwrap();
    let after = connections_received(&a, tls);
    // Ours, plus the CLIENT LIST and the second INFO of redis-cli.
    assert_eq!(
        after - before,
        3 + 2,
        "no more connections than max_connections"
    );
    let mut names = progress
        .names
        .into_inner()
        .unwrap()
        .expect("progress was reported");
    names.sort();
    let pid = std::process::id();
    assert_eq!(
        names,
        (0..3)
            .map(|i| format!("upshift-verify-{pid}-{i}"))
            .collect::<Vec<_>>(),
        "every connection is named for the drain check"
    );

    assert_eq!(by_wire.keys, expected);
    assert_eq!(by_wire.fallbacks.total(), 0);
    let commands = VerifyOptions {
        value_source: ValueSource::Commands,
        ..opts()
    };
    let by_commands = verify::digest(&url, &commands, &verify::NoProgress)
        .await
        .unwrap();
    assert_eq!(by_wire.digest, by_commands.digest);
    // The redis crate's own DUMP path (one connection, no wire) agrees too.
    let one = VerifyOptions {
        max_connections: 1,
        ..opts()
    };
    let by_crate = verify::digest(&url, &one, &verify::NoProgress)
        .await
        .unwrap();
    assert_eq!(by_wire.digest, by_crate.digest);
    // One value changed: the wire digest sees it.
    a.cli(Some(tls), &["-n", "3", "SET", "s:1", "changed"]);
    let changed = verify::digest(&url, &wired, &verify::NoProgress)
        .await
        .unwrap();
    assert_ne!(changed.digest, by_wire.digest);

    let json = serde_json::to_string(&by_wire).unwrap();
    assert!(!json.contains(secret), "{json}");
    let wrong = "Wr0ngW1rePassw0rd";
    let bad: verify::RedisUrl = format!("rediss://:{wrong}@127.0.0.1:{}/3", a.port)
        .parse()
        .unwrap();
    let err = verify::digest(&bad, &wired, &verify::NoProgress)
        .await
        .unwrap_err();
    let text = chain(&err);
    assert!(!text.contains(wrong) && !text.contains(secret), "{text}");
}

/// An ACL user (AUTH with a user name) that may not run CLIENT, as on managed services: the
/// connections still open (the name is optional) and read the same data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acl_user_without_client_reads_the_same_data() {
    let material = tls_material();
    let tls = material.path();
    let a = Server::builder().tls(tls).start();
    load(&a, tls, "0", 500);
    let out = a.cli(
        Some(tls),
        &[
            "ACL",
            "SETUSER",
            "reader",
            "on",
            ">R3aderPass",
            "~*",
            "&*",
            "+@all",
            "-client",
        ],
    );
    assert_eq!(out.trim(), "OK");
    let url: verify::RedisUrl = format!("rediss://reader:R3aderPass@127.0.0.1:{}", a.port)
        .parse()
        .unwrap();
    let by_wire = verify::digest(&url, &opts(), &verify::NoProgress)
        .await
        .unwrap();
    assert_eq!(by_wire.keys, dbsize(&a, tls, "0"));
    let commands = VerifyOptions {
        value_source: ValueSource::Commands,
        ..opts()
    };
    let by_commands = verify::digest(&url, &commands, &verify::NoProgress)
        .await
        .unwrap();
    assert_eq!(by_wire.digest, by_commands.digest);
}
