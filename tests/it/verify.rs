//! The verifier against real redis-server processes: exactness (equal data after replica +
//! promote, every kind of change named), snapshot/restore, TLS, the writers gate, secrets.

use crate::verify_support;

use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use upshift::verify::{
    self, DifferenceKind, KeyKind, NoProgress, RestoreSelection, VerifyError, VerifyOptions,
};
use verify_support::{Server, opts, tls_material};

fn pipe_load(conn: &mut redis::Connection, pipe: &redis::Pipeline) {
    pipe.exec(conn).expect("load data");
}

/// Every type, hashtable-encoded sets, a 100k-member set and a 100k-field hash, TTLs.
fn load_mixed(server: &Server) {
    let mut c = server.conn();
    let mut p = redis::pipe();
    for i in 0..2_000 {
        p.cmd("SET")
            .arg(format!("str:{i}"))
            .arg(format!("value-{i}"));
    }
    for i in 0..50 {
        // > 128 members: hashtable encoding, whose DUMP differs after replica + promote.
        let members: Vec<String> = (0..300).map(|m| format!("m{}", m * 7 + i)).collect();
        p.cmd("SADD").arg(format!("set:{i}")).arg(members);
        p.cmd("SADD")
            .arg(format!("intset:{i}"))
            .arg((0..20).collect::<Vec<i32>>());
        p.cmd("HSET").arg(format!("hash:{i}")).arg(
            (0..20)
                .flat_map(|f| [format!("f{f}"), format!("v{f}")])
                .collect::<Vec<_>>(),
        );
        p.cmd("RPUSH")
            .arg(format!("list:{i}"))
            .arg((0..30).map(|e| format!("e{e}")).collect::<Vec<_>>());
        p.cmd("ZADD").arg(format!("zset:{i}")).arg(
            (0..25)
                .flat_map(|m| [format!("{}", f64::from(m) * 1.5), format!("z{m}")])
                .collect::<Vec<_>>(),
        );
        p.cmd("XADD")
            .arg(format!("stream:{i}"))
            .arg("*")
            .arg("a")
            .arg(i)
            .arg("b")
            .arg("x");
    }
    p.cmd("XGROUP")
        .arg("CREATE")
        .arg("stream:0")
        .arg("g1")
        .arg("0");
    for i in 0..200 {
        p.cmd("SET")
            .arg(format!("ttl:{i}"))
            .arg(i)
            .arg("PX")
            .arg(3_600_000 + i);
    }
    pipe_load(&mut c, &p);
    for chunk in 0..10 {
        let mut p = redis::pipe();
        let members: Vec<String> = (chunk * 10_000..(chunk + 1) * 10_000)
            .map(|m| format!("member-{m}"))
            .collect();
        p.cmd("SADD").arg("bigset").arg(&members);
        let fields: Vec<String> = (chunk * 10_000..(chunk + 1) * 10_000)
            .flat_map(|m| [format!("field-{m}"), format!("value-{m}")])
            .collect();
        p.cmd("HSET").arg("bighash").arg(fields);
        pipe_load(&mut c, &p);
    }
    let mut p = redis::pipe();
    p.cmd("RPUSH")
        .arg("biglist")
        .arg((0..25_000).collect::<Vec<i32>>());
    p.cmd("ZADD").arg("bigzset").arg(
        (0..25_000)
            .flat_map(|m| [m.to_string(), format!("zm{m}")])
            .collect::<Vec<_>>(),
    );
    p.cmd("SET").arg("bigstring").arg(vec![b'x'; 3 << 20]);
    pipe_load(&mut c, &p);
}

async fn snapshot_to(
    server: &Server,
    dir: &tempfile::TempDir,
    o: &VerifyOptions,
) -> std::path::PathBuf {
    let path = dir.path().join("snap.upshift");
    verify::snapshot(&server.parsed_url(), &path, o, &NoProgress)
        .await
        .expect("snapshot");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn equal_after_replica_and_promote() {
    let a = Server::start();
    load_mixed(&a);
    let b = Server::start();
    let mut bc = b.conn();
    redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(a.port)
        .exec(&mut bc)
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query(&mut bc)
            .unwrap();
        // DBSIZE answers LOADING while the replica loads the transferred RDB.
        let size = redis::cmd("DBSIZE").query::<u64>(&mut bc).ok();
        let want: u64 = redis::cmd("DBSIZE").query(&mut a.conn()).unwrap();
        if info.contains("master_link_status:up") && size == Some(want) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "replica did not sync");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .exec(&mut bc)
        .unwrap();

    let o = opts();
    let da = verify::digest(&a.parsed_url(), &o, &NoProgress)
        .await
        .unwrap();
    let db = verify::digest(&b.parsed_url(), &o, &NoProgress)
        .await
        .unwrap();
    assert_eq!(da.keys, db.keys);
    assert_eq!(da.per_type, db.per_type);
    assert_eq!(da.per_type[&KeyKind::Set], 101);
    assert_eq!(da.digest, db.digest);

    // The same through a snapshot of A and a diff of B, and with tiny windows and a tiny
    // memory budget (every big-key and spill path).
    let dir = tempfile::tempdir().unwrap();
    let snap = snapshot_to(&a, &dir, &o).await;
    let small = VerifyOptions {
        window_elements: 97,
        window_bytes: 1000,
        memory_budget: 64 << 10,
        ..opts()
    };
    let report = verify::diff(&b.parsed_url(), &snap, &small, &NoProgress)
        .await
        .unwrap();
    assert!(report.is_equal(), "{:?}", report.differences);
    assert!(report.differences.is_empty());
    let dsmall = verify::digest(&b.parsed_url(), &small, &NoProgress)
        .await
        .unwrap();
    assert_eq!(dsmall.digest, da.digest);
    assert!(dsmall.spilled_runs > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_is_found_and_named() {
    let a = Server::start();
    load_mixed(&a);
    let dir = tempfile::tempdir().unwrap();
    let o = opts();
    let snap = snapshot_to(&a, &dir, &o).await;
    let mut c = a.conn();
    let at: i64 = redis::cmd("PEXPIRETIME")
        .arg("ttl:7")
        .query(&mut c)
        .unwrap();
    let mut p = redis::pipe();
    p.cmd("HSET")
        .arg("bighash")
        .arg("field-54321")
        .arg("value-54322");
    p.cmd("DEL").arg("str:5");
    p.cmd("SET").arg("brand-new").arg("x");
    p.cmd("DEL").arg("list:3");
    p.cmd("SET").arg("list:3").arg("now a string");
    p.cmd("ZADD").arg("zset:4").arg(99).arg("z1");
    p.cmd("PEXPIREAT").arg("ttl:7").arg(at + 1);
    p.exec(&mut c).unwrap();

    let report = verify::diff(&a.parsed_url(), &snap, &o, &NoProgress)
        .await
        .unwrap();
    let named: Vec<(&str, DifferenceKind)> = report
        .differences
        .iter()
        .map(|d| (d.key.as_str(), d.kind))
        .collect();
    assert_eq!(
        named,
        vec![
            ("bighash", DifferenceKind::ValueChanged),
            ("brand-new", DifferenceKind::Extra),
            (
                "list:3",
                DifferenceKind::TypeChanged {
                    before: KeyKind::List,
                    after: KeyKind::String
                }
            ),
            ("str:5", DifferenceKind::Missing),
            (
                "ttl:7",
                DifferenceKind::TtlChanged {
                    before_ms: Some(at),
                    after_ms: Some(at + 1)
                }
            ),
            ("zset:4", DifferenceKind::ValueChanged),
        ]
    );
    assert!(!report.is_equal());
    assert_eq!(report.counts.failures(), 6);

    // Restoring exactly the named keys puts everything back (the extra key is deleted).
    let keys = report
        .differences
        .iter()
        .map(|d| d.key_bytes.clone())
        .collect();
    let summary = verify::restore(
        &a.parsed_url(),
        &snap,
        RestoreSelection::Keys(keys),
        &o,
        &NoProgress,
    )
    .await
    .unwrap();
    assert_eq!((summary.restored, summary.deleted), (5, 1));
    assert!(
        summary.remaining.is_equal(),
        "{:?}",
        summary.remaining.differences
    );
}

/// `SCAN … TYPE` passes read the same data as TYPE per key: same digest with tiny windows (every
/// big key windowed), TTLs included, and a diff still names a key whose type changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scanning_by_type_reads_the_same_data() {
    let a = Server::start();
    load_mixed(&a);
    let per_key = VerifyOptions {
        window_elements: 97,
        window_bytes: 1000,
        ..opts()
    };
    let by_type = VerifyOptions {
        scan_by_type: true,
        ..per_key.clone()
    };
    let d1 = verify::digest(&a.parsed_url(), &per_key, &NoProgress)
        .await
        .unwrap();
    let d2 = verify::digest(&a.parsed_url(), &by_type, &NoProgress)
        .await
        .unwrap();
    assert_eq!(
        (d1.keys, &d1.per_type, &d1.digest),
        (d2.keys, &d2.per_type, &d2.digest)
    );
    assert_eq!(d2.bytes, d1.bytes);

    let dir = tempfile::tempdir().unwrap();
    let snap = snapshot_to(&a, &dir, &by_type).await;
    let mut c = a.conn();
    let mut p = redis::pipe();
    p.cmd("DEL").arg("list:3");
    p.cmd("SET").arg("list:3").arg("now a string");
    p.cmd("PEXPIRE").arg("str:9").arg(3_600_000);
    p.exec(&mut c).unwrap();
    let report = verify::diff(&a.parsed_url(), &snap, &by_type, &NoProgress)
        .await
        .unwrap();
    let named: Vec<(&str, &DifferenceKind)> = report
        .differences
        .iter()
        .map(|d| (d.key.as_str(), &d.kind))
        .collect();
    assert_eq!(named.len(), 2, "{named:?}");
    assert!(matches!(
        named[0],
        (
            "list:3",
            DifferenceKind::TypeChanged {
                before: KeyKind::List,
                after: KeyKind::String
            }
        )
    ));
    assert!(matches!(
        named[1],
        (
            "str:9",
            DifferenceKind::TtlChanged {
                before_ms: None,
                after_ms: Some(_)
            }
        )
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_between_scans_is_reported_not_failed() {
    let a = Server::start();
    let mut c = a.conn();
    redis::cmd("SET").arg("stays").arg(1).exec(&mut c).unwrap();
    redis::cmd("SET")
        .arg("fleeting")
        .arg(1)
        .arg("PX")
        .arg(400)
        .exec(&mut c)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let o = opts();
    let snap = snapshot_to(&a, &dir, &o).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let report = verify::diff(&a.parsed_url(), &snap, &o, &NoProgress)
        .await
        .unwrap();
    assert!(report.is_equal());
    assert_eq!(report.differences.len(), 1);
    assert_eq!(report.differences[0].key, "fleeting");
    assert!(matches!(
        report.differences[0].kind,
        DifferenceKind::ExpiredInWindow { .. }
    ));

    // The Redis 6.x path (PTTL with a tolerance) agrees with itself too.
    let pttl = VerifyOptions {
        force_pttl: true,
        ..opts()
    };
    redis::cmd("SET")
        .arg("ttl")
        .arg(1)
        .arg("PX")
        .arg(100_000)
        .exec(&mut c)
        .unwrap();
    let snap2 = dir.path().join("pttl.snap");
    verify::snapshot(&a.parsed_url(), &snap2, &pttl, &NoProgress)
        .await
        .unwrap();
    let report = verify::diff(&a.parsed_url(), &snap2, &pttl, &NoProgress)
        .await
        .unwrap();
    assert!(report.differences.is_empty(), "{:?}", report.differences);
    let exact = verify::diff(&a.parsed_url(), &snap2, &o, &NoProgress)
        .await
        .unwrap();
    assert!(exact.differences.is_empty(), "{:?}", exact.differences);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_flush_restore_and_only_missing() {
    let a = Server::start();
    load_mixed(&a);
    let dir = tempfile::tempdir().unwrap();
    let o = opts();
    let path = dir.path().join("snap.upshift");
    let url = a.parsed_url();
    let summary = verify::snapshot(&url, &path, &o, &NoProgress)
        .await
        .unwrap();
    let digest = verify::digest(&url, &o, &NoProgress).await.unwrap();
    assert_eq!(summary.digest, digest.digest);
    assert_eq!(summary.keys, digest.keys);
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let bytes = std::fs::read(&path).unwrap();
    assert!(
        !String::from_utf8_lossy(&bytes).contains("127.0.0.1"),
        "no host in the file"
    );

    let mut c = a.conn();
    redis::cmd("FLUSHALL").exec(&mut c).unwrap();
    let restored = verify::restore(&url, &path, RestoreSelection::All, &o, &NoProgress)
        .await
        .unwrap();
    assert_eq!(restored.restored, summary.entries);
    assert!(restored.remaining.is_equal());
    assert!(restored.remaining.differences.is_empty());
    assert_eq!(
        verify::digest(&url, &o, &NoProgress).await.unwrap().digest,
        digest.digest
    );

    // Only missing: two deleted keys come back, a changed key stays changed.
    redis::cmd("DEL")
        .arg("str:1")
        .arg("bigset")
        .exec(&mut c)
        .unwrap();
    redis::cmd("SET")
        .arg("str:2")
        .arg("changed")
        .exec(&mut c)
        .unwrap();
    let only = verify::restore(&url, &path, RestoreSelection::OnlyMissing, &o, &NoProgress)
        .await
        .unwrap();
    assert_eq!(only.restored, 2);
    assert_eq!(only.skipped_existing, summary.entries - 2);
    let left: Vec<(&str, DifferenceKind)> = only
        .remaining
        .differences
        .iter()
        .map(|d| (d.key.as_str(), d.kind))
        .collect();
    assert_eq!(left, vec![("str:2", DifferenceKind::ValueChanged)]);

    // A damaged file is refused before anything is written.
    let mut bad = bytes.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 1;
    let bad_path = dir.path().join("bad.upshift");
    std::fs::write(&bad_path, &bad).unwrap();
    let err = verify::restore(&url, &bad_path, RestoreSelection::All, &o, &NoProgress)
        .await
        .unwrap_err();
    assert!(matches!(err, VerifyError::Snapshot { .. }), "{err}");
    let chain = error_chain(&err);
    assert!(
        chain.contains("unusable")
            && (chain.contains("checksum")
                || chain.contains("corrupt")
                || chain.contains("truncated")
                || chain.contains("implausible")
                || chain.contains("unknown")),
        "{chain}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_without_verification_works_and_with_it_fails() {
    let material = tls_material();
    let a = Server::builder().tls(material.path()).start();
    a.cli(Some(material.path()), &["SET", "k", "v"]);
    let url = a.parsed_url();
    assert!(url.is_tls());
    let report = verify::digest(&url, &opts(), &NoProgress).await.unwrap();
    assert_eq!(report.keys, 1);
    let strict = VerifyOptions {
        tls_verify: true,
        ..opts()
    };
    let err = verify::digest(&url, &strict, &NoProgress)
        .await
        .unwrap_err();
    assert!(matches!(err, VerifyError::Connect { .. }), "{err}");
}

/// A plain server at its connection limit: the client sees only "broken pipe" (it writes AUTH
/// first), so the error must carry the server's own words, not only "check the url".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_server_is_named_full_not_a_bad_url() {
    let a = Server::builder().args(&["--maxclients", "1"]).start();
    let _holder = a.conn();
    let err = verify::digest(&a.parsed_url(), &opts(), &NoProgress)
        .await
        .unwrap_err();
    assert_eq!(
        err.refusal(),
        Some(upshift::verify::Refusal::ConnectionLimit),
        "{err}"
    );
    assert!(
        err.to_string().contains("max number of clients reached"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_writers_stop_the_scan() {
    let a = Server::start();
    let mut c = a.conn();
    for chunk in 0..5 {
        let mut p = redis::pipe();
        for i in 0..10_000 {
            p.cmd("SET").arg(format!("k:{chunk}:{i}")).arg(i);
        }
        p.exec(&mut c).unwrap();
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let mut wc = a.conn();
        std::thread::spawn(move || {
            let mut i = 0_u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                redis::cmd("SET")
                    .arg(format!("w:{i}"))
                    .arg(i)
                    .exec(&mut wc)
                    .unwrap();
                i += 1;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    let err = verify::digest(&a.parsed_url(), &opts(), &NoProgress)
        .await
        .unwrap_err();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    assert!(matches!(err, VerifyError::WritersActive { .. }), "{err}");
    assert!(
        err.to_string().contains("writers are still active"),
        "{err}"
    );
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = format!("{err} / {err:?}");
    let mut s = err.source();
    while let Some(e) = s {
        let _ = write!(out, " / {e} / {e:?}");
        s = e.source();
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_password_never_shows() {
    let secret = "Sup3rS3cretPassw0rd";
    let a = Server::builder().password(secret).start();
    let good = a.parsed_url();
    assert!(!good.to_string().contains(secret));
    assert!(!format!("{good:?}").contains(secret));
    redis::cmd("SET")
        .arg("k")
        .arg("v")
        .exec(&mut a.conn())
        .unwrap();
    assert_eq!(
        verify::digest(&good, &opts(), &NoProgress)
            .await
            .unwrap()
            .keys,
        1
    );

    let wrong_secret = "Wr0ngPassw0rdValue";
    let wrong: verify::RedisUrl = format!("redis://:{wrong_secret}@127.0.0.1:{}", a.port)
        .parse()
        .unwrap();
    let err = verify::digest(&wrong, &opts(), &NoProgress)
        .await
        .unwrap_err();
    let chain = error_chain(&err);
    assert!(
        !chain.contains(wrong_secret) && !chain.contains(secret),
        "{chain}"
    );
    assert!(chain.contains("127.0.0.1"), "{chain}");
    let no_pass: verify::RedisUrl = format!("redis://127.0.0.1:{}", a.port).parse().unwrap();
    let err = verify::digest(&no_pass, &opts(), &NoProgress)
        .await
        .unwrap_err();
    assert!(!error_chain(&err).contains(secret));

    // Server facts and our own connections.
    let info = verify::server_info(&good, &opts()).await.unwrap();
    assert!(info.redis_version.starts_with('7'));
    assert_eq!(info.keyspace[&0].keys, 1);
    let clients = verify::client_list(&good, &opts()).await.unwrap();
    assert!(clients.iter().any(verify::ClientInfo::is_upshift));
}

/// Property tests over random datasets of every type with TTLs, on two long-lived servers
/// (FLUSHALL between cases) so the suite stays fast.
mod props {
    use std::cell::RefCell;
    use std::collections::{BTreeMap, BTreeSet};

    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    use upshift::verify::{self, DifferenceKind, NoProgress};

    use crate::verify_support::{Server, opts};

    type Bytes = Vec<u8>;

    #[derive(Debug, Clone)]
    enum Value {
        Str(Bytes),
        List(Vec<Bytes>),
        Set(BTreeSet<Bytes>),
        ZSet(BTreeMap<Bytes, f64>),
        Hash(BTreeMap<Bytes, Bytes>),
        Stream(Vec<Vec<(Bytes, Bytes)>>),
    }

    #[derive(Debug, Clone)]
    struct Entry {
        value: Value,
        ttl_offset_ms: Option<u32>,
    }

    fn bytes() -> impl Strategy<Value = Bytes> {
        prop::collection::vec(any::<u8>(), 0..6)
    }

    fn score() -> impl Strategy<Value = f64> {
        prop_oneof![
            8 => any::<i16>().prop_map(|i| f64::from(i) / 4.0),
            1 => Just(f64::INFINITY),
            1 => Just(f64::NEG_INFINITY),
            1 => Just(-0.0),
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            bytes().prop_map(Value::Str),
            prop::collection::vec(bytes(), 1..6).prop_map(Value::List),
            prop::collection::btree_set(bytes(), 1..6).prop_map(Value::Set),
            prop::collection::btree_map(bytes(), score(), 1..6).prop_map(Value::ZSet),
            prop::collection::btree_map(bytes(), bytes(), 1..6).prop_map(Value::Hash),
            prop::collection::vec(prop::collection::vec((bytes(), bytes()), 1..3), 1..4)
                .prop_map(Value::Stream),
        ]
    }

    fn dataset() -> impl Strategy<Value = BTreeMap<Bytes, Entry>> {
        let entry = (value(), prop::option::of(0_u32..1000)).prop_map(|(value, ttl)| Entry {
            value,
            ttl_offset_ms: ttl,
        });
        // Keys are binary and at most 7 bytes: the "new key" mutation uses a longer one.
        prop::collection::btree_map(prop::collection::vec(any::<u8>(), 1..8), entry, 1..12)
    }

    /// Writes the dataset; `reverse` reverses key order and element order where Redis does
    /// not keep it (sets, hashes, zsets), so encodings and table layouts differ.
    fn load(c: &mut redis::Connection, data: &BTreeMap<Bytes, Entry>, base_ms: i64, reverse: bool) {
        let mut p = redis::pipe();
        p.cmd("FLUSHALL");
        let mut keys: Vec<&Bytes> = data.keys().collect();
        if reverse {
            keys.reverse();
        }
        for k in keys {
            let e = &data[k];
            match &e.value {
                Value::Str(v) => {
                    p.cmd("SET").arg(k).arg(v);
                }
                Value::List(items) => {
                    p.cmd("RPUSH").arg(k).arg(items);
                }
                Value::Set(items) => {
                    let mut items: Vec<&Bytes> = items.iter().collect();
                    if reverse {
                        items.reverse();
                    }
                    p.cmd("SADD").arg(k).arg(items);
                }
                Value::ZSet(items) => {
                    let mut items: Vec<(&Bytes, &f64)> = items.iter().collect();
                    if reverse {
                        items.reverse();
                    }
                    for (m, s) in items {
                        p.cmd("ZADD").arg(k).arg(s.to_string()).arg(m);
                    }
                }
                Value::Hash(items) => {
                    let mut items: Vec<(&Bytes, &Bytes)> = items.iter().collect();
                    if reverse {
                        items.reverse();
                    }
                    for (f, v) in items {
                        p.cmd("HSET").arg(k).arg(f).arg(v);
                    }
                }
                Value::Stream(entries) => {
                    for (i, fields) in entries.iter().enumerate() {
                        let cmd = p.cmd("XADD").arg(k).arg(format!("1-{}", i + 1));
                        for (f, v) in fields {
                            cmd.arg(f).arg(v);
                        }
                    }
                }
            }
            if let Some(off) = e.ttl_offset_ms {
                p.cmd("PEXPIREAT").arg(k).arg(base_ms + i64::from(off));
            }
        }
        p.exec(c).expect("load dataset");
    }

    fn base_ms() -> i64 {
        // An hour ahead: nothing expires during a case.
        i64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis(),
        )
        .unwrap()
            + 3_600_000
    }

    fn runner() -> TestRunner {
        TestRunner::new(Config {
            cases: 40,
            failure_persistence: None,
            ..Config::default()
        })
    }

    #[test]
    fn equal_data_never_differs() {
        let (a, b) = (Server::start(), Server::start());
        // The runner takes a `Fn`: the connections live in cells.
        let (ca, cb) = (RefCell::new(a.conn()), RefCell::new(b.conn()));
        let rt = tokio::runtime::Runtime::new().unwrap();
        let (ua, ub) = (a.parsed_url(), b.parsed_url());
        runner()
            .run(&dataset(), |data| {
                let base = base_ms();
                load(&mut ca.borrow_mut(), &data, base, false);
                load(&mut cb.borrow_mut(), &data, base, true);
                let (da, db) = rt.block_on(async {
                    (
                        verify::digest(&ua, &opts(), &NoProgress).await.unwrap(),
                        verify::digest(&ub, &opts(), &NoProgress).await.unwrap(),
                    )
                });
                prop_assert_eq!(da.keys, data.len() as u64);
                prop_assert_eq!(da.digest, db.digest);
                Ok(())
            })
            .unwrap();
    }

    #[derive(Debug, Clone, Copy)]
    enum Mutation {
        Value,
        Delete,
        Add,
        Ttl,
    }

    #[test]
    fn a_single_mutation_is_found_and_named() {
        let server = Server::start();
        let conn = RefCell::new(server.conn());
        let rt = tokio::runtime::Runtime::new().unwrap();
        let url = server.parsed_url();
        let dir = tempfile::tempdir().unwrap();
        let snap = dir.path().join("p.snap");
        let strategy = (
            dataset(),
            any::<prop::sample::Index>(),
            prop_oneof![
                Just(Mutation::Value),
                Just(Mutation::Delete),
                Just(Mutation::Add),
                Just(Mutation::Ttl)
            ],
        );
        runner()
            .run(&strategy, |(data, index, mutation)| {
                let base = base_ms();
                load(&mut conn.borrow_mut(), &data, base, false);
                rt.block_on(verify::snapshot(&url, &snap, &opts(), &NoProgress))
                    .unwrap();
                let (key, entry) = data.iter().nth(index.index(data.len())).unwrap();
                let mut pipe = redis::pipe();
                let (named, expected): (Bytes, &str) = match mutation {
                    Mutation::Delete => {
                        pipe.cmd("DEL").arg(key);
                        (key.clone(), "missing")
                    }
                    Mutation::Add => {
                        let new = b"\xffa-new-key".to_vec();
                        pipe.cmd("SET").arg(&new).arg("v");
                        (new, "extra")
                    }
                    Mutation::Ttl => {
                        match entry.ttl_offset_ms {
                            Some(off) => pipe
                                .cmd("PEXPIREAT")
                                .arg(key)
                                .arg(base + i64::from(off) + 1),
                            None => pipe.cmd("PEXPIREAT").arg(key).arg(base),
                        };
                        (key.clone(), "ttl changed")
                    }
                    Mutation::Value => {
                        match &entry.value {
                            Value::Str(_) => pipe.cmd("APPEND").arg(key).arg("x"),
                            Value::List(_) => pipe.cmd("RPUSH").arg(key).arg("x"),
                            Value::Set(_) => pipe.cmd("SADD").arg(key).arg("longer-than-six"),
                            Value::ZSet(m) => {
                                let (member, s) = m.iter().next().unwrap();
                                let next = if s.is_finite() { s + 1.0 } else { 0.0 };
                                pipe.cmd("ZADD").arg(key).arg(next.to_string()).arg(member)
                            }
                            Value::Hash(m) => {
                                let (f, v) = m.iter().next().unwrap();
                                let mut v = v.clone();
                                v.push(b'!');
                                pipe.cmd("HSET").arg(key).arg(f).arg(v)
                            }
                            Value::Stream(_) => {
                                pipe.cmd("XADD").arg(key).arg("*").arg("f").arg("v")
                            }
                        };
                        (key.clone(), "value changed")
                    }
                };
                pipe.exec(&mut *conn.borrow_mut()).unwrap();
                let report = rt
                    .block_on(verify::diff(&url, &snap, &opts(), &NoProgress))
                    .unwrap();
                prop_assert_eq!(report.differences.len(), 1, "{:?}", report.differences);
                let found = &report.differences[0];
                prop_assert_eq!(&found.key_bytes, &named);
                prop_assert_eq!(found.kind.label(), expected);
                let expired = matches!(found.kind, DifferenceKind::ExpiredInWindow { .. });
                prop_assert!(!expired);
                Ok(())
            })
            .unwrap();
    }
}

/// The commands as a user runs them: JSON output, exit codes, no password anywhere.
#[test]
fn cli_commands_exit_codes_and_no_password() {
    let secret = "CliS3cretValue";
    let a = Server::builder().password(secret).start();
    let mut c = a.conn();
    redis::cmd("SET").arg("k1").arg("v").exec(&mut c).unwrap();
    redis::cmd("HSET")
        .arg("h")
        .arg("f")
        .arg("v")
        .exec(&mut c)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("s.snap");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_upshift"))
            .args(args)
            .env_remove("REDIS_URL")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!text.contains(secret), "password leaked: {text}");
        (
            out.status.code().unwrap(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            text,
        )
    };
    let url = a.url();
    let (code, stdout, _) = run(&["digest", "--url", &url, "--json"]);
    assert_eq!(code, 0);
    let json: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(json["keys"], 2);
    assert_eq!(json["digest"].as_str().unwrap().len(), 32);
    assert_eq!(json["version"], 1);
    assert!(json["elapsed_ms"].as_u64().is_some(), "{json}");
    crate::json_schema::assert_valid("digest", &json);

    let (code, stdout, _) = run(&[
        "snapshot",
        "--url",
        &url,
        "--out",
        snap.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 0);
    let json: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    crate::json_schema::assert_valid("snapshot", &json);
    let (code, stdout, _) = run(&["diff", "--url", &url, "--against", snap.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}");
    redis::cmd("DEL").arg("k1").exec(&mut c).unwrap();
    let (code, stdout, _) = run(&[
        "diff",
        "--url",
        &url,
        "--against",
        snap.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 1, "1 = differences found");
    let json: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    crate::json_schema::assert_valid("diff", &json);
    assert_eq!(json["differences"][0]["kind"], "missing", "{json}");
    let (code, stdout, _) = run(&["diff", "--url", &url, "--against", snap.to_str().unwrap()]);
    assert_eq!(code, 1, "1 = differences found");
    assert!(
        stdout.contains("missing") && stdout.contains("k1"),
        "{stdout}"
    );
    let (code, stdout, _) = run(&[
        "restore",
        "--url",
        &url,
        "--from",
        snap.to_str().unwrap(),
        "--only-missing",
        "--json",
    ]);
    assert_eq!(code, 0);
    crate::json_schema::assert_valid("restore", &serde_json::from_str(stdout.trim()).unwrap());

    let wrong = format!("redis://:{secret}x@127.0.0.1:{}", a.port);
    let (code, _, text) = run(&["digest", "--url", &wrong]);
    assert_eq!(code, 4, "{text}");
    assert!(text.contains("cannot connect"), "{text}");
    let (code, _, text) = run(&["digest", "--url", &format!("http://:{secret}@h")]);
    assert_eq!(code, 2, "{text}");
}

/// Writes the same logical data into `c`, in an order and shape chosen by `variant`, so that two
/// servers hold equal data with different encodings and histories.
fn write_same_data(c: &mut redis::Connection, variant: u8, expire_at_ms: i64) {
    let mut p = redis::pipe();
    let order: Vec<usize> = if variant == 0 {
        (0..100).collect()
    } else {
        (0..100).rev().collect()
    };
    for i in 0..200 {
        p.cmd("SET").arg(format!("s:{i}")).arg(format!("v{i}"));
    }
    for &m in &order {
        p.cmd("SADD").arg("set").arg(format!("m{m}"));
        p.cmd("HSET")
            .arg("hash")
            .arg(format!("f{m}"))
            .arg(format!("v{m}"));
        p.cmd("ZADD").arg("zset").arg(m % 7).arg(format!("z{m}"));
    }
    if variant == 1 {
        // A different history: an element added then removed, a list built from the left.
        p.cmd("SADD").arg("set").arg("gone");
        p.cmd("SREM").arg("set").arg("gone");
        for i in (0..50).rev() {
            p.cmd("LPUSH").arg("list").arg(format!("e{i}"));
        }
        p.cmd("SET")
            .arg("ttl")
            .arg("x")
            .arg("PXAT")
            .arg(expire_at_ms);
    } else {
        for i in 0..50 {
            p.cmd("RPUSH").arg("list").arg(format!("e{i}"));
        }
        p.cmd("SET").arg("ttl").arg("x");
        p.cmd("PEXPIREAT").arg("ttl").arg(expire_at_ms);
    }
    p.exec(c).expect("load data");
}

/// Two live servers compared key by key (`compare`, `digest --against-url`): equal data written
/// differently (other encodings, other orders, another history) is equal; one changed value
/// and one key absent from the second server are each named, and the CLI exits 1 without
/// printing either password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_live_servers_compare_equal_and_name_the_keys_that_differ() {
    let secret_a = "CmpSecretA1";
    let secret_b = "CmpSecretB2";
    let a = Server::builder().password(secret_a).start();
    // The second server keeps every hash, zset and list in its big encodings.
    let b = Server::builder()
        .password(secret_b)
        .args(&[
            "--hash-max-listpack-entries",
            "0",
            "--zset-max-listpack-entries",
            "0",
            "--list-max-listpack-size",
            "2",
        ])
        .start();
    let at = 4_102_444_800_000; // 2100-01-01
    write_same_data(&mut a.conn(), 0, at);
    write_same_data(&mut b.conn(), 1, at);
    let enc = |s: &Server, key: &str| -> String {
        redis::cmd("OBJECT")
            .arg("ENCODING")
            .arg(key)
            .query(&mut s.conn())
            .unwrap()
    };
    assert_ne!(
        enc(&a, "hash"),
        enc(&b, "hash"),
        "the encodings must differ"
    );
    assert_ne!(enc(&a, "zset"), enc(&b, "zset"));

    let report = verify::compare(&a.parsed_url(), &b.parsed_url(), &opts(), &NoProgress)
        .await
        .expect("compare");
    assert!(report.is_equal(), "{:?}", report.diff.differences);
    assert_eq!(report.diff.before_keys, 205);
    assert_eq!(report.diff.after_keys, 205);

    // One value changed on b, one key only on a.
    redis::cmd("HSET")
        .arg("hash")
        .arg("f7")
        .arg("changed")
        .exec(&mut b.conn())
        .unwrap();
    redis::cmd("DEL").arg("s:42").exec(&mut b.conn()).unwrap();
    let report = verify::compare(&a.parsed_url(), &b.parsed_url(), &opts(), &NoProgress)
        .await
        .expect("compare");
    let named: Vec<(String, &str)> = report
        .diff
        .differences
        .iter()
        .map(|d| (d.key.clone(), d.kind.label()))
        .collect();
    assert_eq!(
        named,
        vec![
            ("hash".to_owned(), "value changed"),
            ("s:42".to_owned(), "missing")
        ]
    );

    // The same on a given set of keys: only those are read; absent on both sides is equal.
    let keys: Vec<Vec<u8>> = ["s:1", "hash", "s:42", "absent", "ttl"]
        .iter()
        .map(|k| k.as_bytes().to_vec())
        .collect();
    let some = verify::compare_keys(&a.parsed_url(), &b.parsed_url(), &keys, &opts())
        .await
        .expect("compare keys");
    let named_some: Vec<(String, &str)> = some
        .diff
        .differences
        .iter()
        .map(|d| (d.key.clone(), d.kind.label()))
        .collect();
    assert_eq!(named_some, named);
    assert_eq!(some.diff.before_keys, 4, "s:1, hash, s:42 and ttl on a");
    let equal = verify::compare_keys(&a.parsed_url(), &b.parsed_url(), &keys[..1], &opts())
        .await
        .expect("compare one key");
    assert!(equal.is_equal());

    let run = |against: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_upshift"))
            .args(["digest", "--url", &a.url(), "--against-url", against])
            .env_remove("REDIS_URL")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !text.contains(secret_a) && !text.contains(secret_b),
            "password leaked: {text}"
        );
        (out.status.code().unwrap(), text)
    };
    let (code, text) = run(&b.url());
    assert_eq!(code, 1, "1 = differences found: {text}");
    assert!(
        text.contains("value changed") && text.contains("hash"),
        "{text}"
    );
    assert!(text.contains("missing") && text.contains("s:42"), "{text}");
    // A database compared with itself proves nothing: refused as bad input.
    let (code, text) = run(&a.url());
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("both URLs reach the same database"), "{text}");
}
