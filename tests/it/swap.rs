//! The live-swap building blocks against real redis-servers: a copy made while a writer keeps
//! writing ends equal to the source once the watch's dirty keys are re-copied; a watch whose
//! connection drops says so. Equality is judged by this file's own reads (DUMP payload and
//! PEXPIRETIME of every key on both sides), not by upshift's verifier.

use crate::verify_support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use upshift::swap::{self, DirtyWatch, WatchLost};
use upshift::verify::NoProgress;
use verify_support::{Server, opts};

/// Every key with its value in a canonical form (members sorted where Redis does not order
/// them) and its absolute expiry, read by this test with plain commands. DUMP bytes are not
/// comparable: a hashtable-encoded set dumps its members in table order.
/// A key's type, canonical value and absolute expiry.
type Canonical = (String, Vec<Vec<u8>>, i64);

fn state(server: &Server) -> BTreeMap<Vec<u8>, Canonical> {
    let mut conn = server.conn();
    let keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg("*").query(&mut conn).unwrap();
    let mut out = BTreeMap::new();
    for k in keys {
        let kind: String = redis::cmd("TYPE").arg(&k).query(&mut conn).unwrap();
        let mut value: Vec<Vec<u8>> = match kind.as_str() {
            "string" => vec![redis::cmd("GET").arg(&k).query(&mut conn).unwrap()],
            "hash" => redis::cmd("HGETALL").arg(&k).query(&mut conn).unwrap(),
            "list" => redis::cmd("LRANGE")
                .arg(&k)
                .arg(0)
                .arg(-1)
                .query(&mut conn)
                .unwrap(),
            "set" => redis::cmd("SMEMBERS").arg(&k).query(&mut conn).unwrap(),
            "zset" => redis::cmd("ZRANGE")
                .arg(&k)
                .arg(0)
                .arg(-1)
                .arg("WITHSCORES")
                .query(&mut conn)
                .unwrap(),
            "none" => continue,
            other => panic!("unexpected type {other}"),
        };
        if kind == "set" {
            value.sort();
        }
        if kind == "hash" {
            let mut pairs: Vec<Vec<Vec<u8>>> = value.chunks(2).map(<[_]>::to_vec).collect();
            pairs.sort();
            value = pairs.concat();
        }
        let at: i64 = redis::cmd("PEXPIRETIME").arg(&k).query(&mut conn).unwrap();
        out.insert(k, (kind, value, at));
    }
    out
}

fn source() -> Server {
    Server::builder()
        .args(&["--notify-keyspace-events", swap::KEYSPACE_FLAGS])
        .start()
}

/// Strings, hashes, lists, sets and sorted sets; a fifth of them expire in an hour.
fn load(server: &Server, keys: u32) {
    let mut conn = server.conn();
    let mut pipe = redis::pipe();
    for i in 0..keys {
        match i % 5 {
            0 => pipe
                .cmd("SET")
                .arg(format!("s:{i}"))
                .arg(format!("value-{i}")),
            1 => pipe
                .cmd("HSET")
                .arg(format!("h:{i}"))
                .arg("a")
                .arg(i)
                .arg("b")
                .arg("x"),
            2 => pipe.cmd("RPUSH").arg(format!("l:{i}")).arg(1).arg(2).arg(i),
            3 => pipe.cmd("SADD").arg(format!("t:{i}")).arg("m1").arg(i),
            _ => pipe
                .cmd("ZADD")
                .arg(format!("z:{i}"))
                .arg(1.5)
                .arg("m")
                .arg(2)
                .arg(i),
        };
        if i % 5 == 0 {
            pipe.cmd("PEXPIRE").arg(format!("s:{i}")).arg(3_600_000);
        }
    }
    pipe.exec(&mut conn).expect("load");
}

/// Writes, overwrites, deletes and expires keys until told to stop; counts its writes.
fn writer(server: &Server, stop: &AtomicBool, writes: &AtomicU64, keys: u32) {
    let mut conn = server.conn();
    let mut i: u32 = 0;
    while !stop.load(Ordering::SeqCst) {
        let n = (i.wrapping_mul(7919)) % keys;
        let mut pipe = redis::pipe();
        match i % 4 {
            0 => pipe
                .cmd("SET")
                .arg(format!("s:{}", n - n % 5))
                .arg(format!("new-{i}")),
            1 => pipe.cmd("DEL").arg(format!("h:{}", n - n % 5 + 1)),
            2 => pipe.cmd("SET").arg(format!("fresh:{i}")).arg(i),
            _ => pipe
                .cmd("PEXPIRE")
                .arg(format!("l:{}", n - n % 5 + 2))
                .arg(7_200_000),
        };
        pipe.exec(&mut conn).expect("write");
        writes.fetch_add(1, Ordering::SeqCst);
        i = i.wrapping_add(1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_copy_ends_equal_once_the_dirty_keys_are_copied_again() {
    let (old, new) = (source(), Server::start());
    load(&old, 20_000);
    let (from, to) = (old.parsed_url(), new.parsed_url());
    let o = opts();
    let watch = DirtyWatch::start(&from, &o).await.unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let writes = Arc::new(AtomicU64::new(0));
    let old = Arc::new(old);
    let w = {
        let (old, stop, writes) = (Arc::clone(&old), Arc::clone(&stop), Arc::clone(&writes));
        std::thread::spawn(move || writer(&old, &stop, &writes, 20_000))
    };
    while writes.load(Ordering::SeqCst) < 50 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let full = swap::copy_all(&from, &to, &o, &NoProgress).await.unwrap();
    // The writer deletes keys meanwhile: the pass copies what it still finds.
    assert!(full.copied > 15_000, "{full:?}");
    // Rounds while the app keeps writing: each re-copies what changed since the last.
    let mut recopied = 0;
    for _ in 0..3 {
        let dirty: Vec<Vec<u8>> = watch.take().unwrap().into_iter().collect();
        recopied += dirty.len();
        swap::copy_keys(&from, &to, &o, &dirty).await.unwrap();
    }
    // Cutover: the writer stops, every notification in flight is collected, the rest goes.
    stop.store(true, Ordering::SeqCst);
    w.join().unwrap();
    watch.sync(Duration::from_secs(5)).await.unwrap();
    let dirty: Vec<Vec<u8>> = watch.take().unwrap().into_iter().collect();
    let last = swap::copy_keys(&from, &to, &o, &dirty).await.unwrap();

    assert!(
        recopied > 0,
        "the writer ran during the copy, so keys were dirty"
    );
    assert!(last.deleted + full.deleted > 0 || recopied > 0);
    let (before, after) = (state(&old), state(&new));
    assert_eq!(before.len(), after.len(), "key counts differ");
    let differing: Vec<String> = before
        .iter()
        .filter(|(k, v)| after.get(*k) != Some(v))
        .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
        .take(5)
        .collect();
    assert!(differing.is_empty(), "keys differ: {differing:?}");
}

#[tokio::test]
async fn keys_deleted_on_the_source_are_deleted_on_the_target() {
    let (old, new) = (source(), Server::start());
    load(&old, 50);
    let (from, to) = (old.parsed_url(), new.parsed_url());
    let o = opts();
    let watch = DirtyWatch::start(&from, &o).await.unwrap();
    swap::copy_all(&from, &to, &o, &NoProgress).await.unwrap();
    let mut conn = old.conn();
    let _: () = redis::cmd("DEL")
        .arg("s:0")
        .arg("h:1")
        .query(&mut conn)
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("s:5")
        .arg("changed")
        .query(&mut conn)
        .unwrap();
    watch.sync(Duration::from_secs(5)).await.unwrap();
    let dirty: Vec<Vec<u8>> = watch.take().unwrap().into_iter().collect();
    assert_eq!(dirty.len(), 3, "{dirty:?}");
    let done = swap::copy_keys(&from, &to, &o, &dirty).await.unwrap();
    assert_eq!((done.copied, done.deleted), (1, 2));
    assert_eq!(state(&old), state(&new));
}

#[tokio::test]
async fn a_watch_whose_connection_drops_says_the_dirty_set_is_unknown() {
    let old = source();
    let watch = DirtyWatch::start(&old.parsed_url(), &opts()).await.unwrap();
    assert!(watch.take().unwrap().is_empty());
    let mut conn = old.conn();
    let killed: u64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query(&mut conn)
        .unwrap();
    assert_eq!(killed, 1);
    let started = std::time::Instant::now();
    while !watch.is_lost() {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the drop went unnoticed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(watch.take(), Err(WatchLost));
    assert!(watch.sync(Duration::from_millis(300)).await.is_err());
}

/// A watch holds at most its limit of dirty keys: past it the set is dropped and the watch
/// counts as lost, so memory stays bounded and the cutover compares every key instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dirty_set_past_its_limit_is_dropped_and_the_watch_counts_as_lost() {
    let old = source();
    let watch = DirtyWatch::start_bounded(&old.parsed_url(), &opts(), 10)
        .await
        .unwrap();
    let mut conn = old.conn();
    for i in 0..5 {
        let () = redis::cmd("SET")
            .arg(format!("k{i}"))
            .arg(i)
            .query(&mut conn)
            .unwrap();
    }
    watch.sync(Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        watch.take().unwrap().len(),
        5,
        "under the limit every key is named"
    );
    for i in 0..11 {
        let () = redis::cmd("SET")
            .arg(format!("k{i}"))
            .arg(i)
            .query(&mut conn)
            .unwrap();
    }
    let started = std::time::Instant::now();
    while !watch.is_lost() {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the limit went unnoticed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(watch.take(), Err(WatchLost));
}

/// The live compare, run while a writer keeps writing: a key the copy got wrong (here, one
/// changed behind the copy's back on the new server) is found, counted and copied again; keys
/// the app wrote meanwhile are re-copied without being counted as defects; both servers end
/// equal once the writer stops and the last dirty keys go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_compare_finds_a_copy_defect_while_the_app_writes() {
    let (old, new) = (source(), Server::start());
    load(&old, 5_000);
    let (from, to) = (old.parsed_url(), new.parsed_url());
    let o = opts();
    let watch = DirtyWatch::start(&from, &o).await.unwrap();
    swap::copy_all(&from, &to, &o, &NoProgress).await.unwrap();
    // A defect: the new server's copy of one set is wrong, and the writer never writes sets.
    let mut conn = new.conn();
    let _: i64 = redis::cmd("SADD")
        .arg("t:3")
        .arg("not copied")
        .query(&mut conn)
        .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let writes = Arc::new(AtomicU64::new(0));
    let old = Arc::new(old);
    let w = {
        let (old, stop, writes) = (Arc::clone(&old), Arc::clone(&stop), Arc::clone(&writes));
        std::thread::spawn(move || writer(&old, &stop, &writes, 5_000))
    };
    while writes.load(Ordering::SeqCst) < 20 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (compared, defects) = swap::compare_live(&from, &to, &o, &watch, Duration::from_secs(5))
        .await
        .unwrap();
    stop.store(true, Ordering::SeqCst);
    w.join().unwrap();
    assert!(compared >= 4_000, "{compared}");
    assert_eq!(defects, 1, "only the key nobody wrote is a defect");
    watch.sync(Duration::from_secs(5)).await.unwrap();
    let dirty: Vec<Vec<u8>> = watch.take().unwrap().into_iter().collect();
    swap::copy_keys(&from, &to, &o, &dirty).await.unwrap();
    let (before, after) = (state(&old), state(&new));
    assert_eq!(before.len(), after.len());
    assert!(
        before.iter().all(|(k, v)| after.get(k) == Some(v)),
        "servers differ"
    );
}
