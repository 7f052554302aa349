//! `verify::writemark` against a real redis-server: each reading is upshift's own, each write
//! and save is this file's, and the verdicts must follow what this file did, not the counter
//! the save resets.

use std::time::{Duration, Instant};

use upshift::verify::writemark::{judge, read};
use upshift::verify::{CommandClasses, WriteMark, WriteVerdict};

use crate::verify_support::{Server, opts};

/// Reads the server as the runner does, with the classes learnt so far.
async fn reading(server: &Server, classes: &mut CommandClasses) -> WriteMark {
    read(&server.parsed_url(), &opts(), classes)
        .await
        .expect("readable")
        .1
}

fn verdict(mark: &WriteMark, now: &WriteMark, classes: &CommandClasses) -> WriteVerdict {
    judge(mark, now, |n| classes.is_write(n))
}

/// BGSAVE and wait for it to end; the counter must then read 0 (else this proves nothing).
fn background_save(server: &Server) {
    let mut con = server.conn();
    let _: String = redis::cmd("BGSAVE").query(&mut con).unwrap();
    let started = Instant::now();
    loop {
        let info: String = redis::cmd("INFO")
            .arg("persistence")
            .query(&mut con)
            .unwrap();
        if info.contains("rdb_bgsave_in_progress:0") {
            assert!(
                info.contains("rdb_changes_since_last_save:0\r"),
                "the save reset the counter: {info}"
            );
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "BGSAVE ended");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn set(server: &Server, key: &str) {
    let _: () = redis::cmd("SET")
        .arg(key)
        .arg("v")
        .query(&mut server.conn())
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_show_through_a_save_and_reads_never_count() {
    let server = Server::start();
    let mut classes = CommandClasses::default();
    set(&server, "before");
    let mark = reading(&server, &mut classes).await;
    assert!(mark.calls.is_some(), "INFO all shows commandstats");
    // Reads, upshift's own included (a read transaction, as the live copy sends), are quiet.
    let mut con = server.conn();
    let _: (Option<Vec<u8>>, i64) = redis::pipe()
        .atomic()
        .cmd("DUMP")
        .arg("before")
        .cmd("PTTL")
        .arg("before")
        .query(&mut con)
        .unwrap();
    let _: Option<String> = redis::cmd("GET").arg("before").query(&mut con).unwrap();
    let started = Instant::now();
    let now = reading(&server, &mut classes).await;
    let took = started.elapsed();
    assert_eq!(verdict(&mark, &now, &classes), WriteVerdict::Quiet);
    // A save with no write: quiet (no false alarm from Heroku's save schedule).
    background_save(&server);
    let now = reading(&server, &mut classes).await;
    assert_eq!(verdict(&mark, &now, &classes), WriteVerdict::Quiet);
    // A write, then a save that zeroes the counter: still a write.
    set(&server, "stray");
    background_save(&server);
    let now = reading(&server, &mut classes).await;
    assert_eq!(
        verdict(&mark, &now, &classes),
        WriteVerdict::Written("write commands set +1".into())
    );
    // A save, then a write; and a write from a script, counted under its own name too.
    let mark = now;
    let _: i64 = redis::cmd("EVAL")
        .arg("redis.call('SET', KEYS[1], 'x'); return 1")
        .arg(1)
        .arg("scripted")
        .query(&mut con)
        .unwrap();
    let now = reading(&server, &mut classes).await;
    assert_eq!(
        verdict(&mark, &now, &classes),
        WriteVerdict::Written("write commands eval +1, set +1".into())
    );
    // The statistics reset after a write: nothing can prove the server quiet.
    let mark = now;
    set(&server, "hidden");
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query(&mut con)
        .unwrap();
    let now = reading(&server, &mut classes).await;
    assert!(
        matches!(verdict(&mark, &now, &classes), WriteVerdict::Unprovable(_)),
        "{:?}",
        verdict(&mark, &now, &classes)
    );
    eprintln!("one reading (connect, INFO all, COMMAND INFO on first sight): {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_refuses_command_falls_back_to_the_counter_and_fails_closed_on_a_save() {
    let server = Server::builder()
        .args(&["--rename-command", "COMMAND", ""])
        .start();
    let mut classes = CommandClasses::default();
    let mark = reading(&server, &mut classes).await;
    assert_eq!(mark.calls, None, "no way to tell the writes: no counts");
    let now = reading(&server, &mut classes).await;
    assert_eq!(verdict(&mark, &now, &classes), WriteVerdict::Quiet);
    set(&server, "stray");
    let now = reading(&server, &mut classes).await;
    assert!(matches!(
        verdict(&mark, &now, &classes),
        WriteVerdict::Written(_)
    ));
    background_save(&server);
    let now = reading(&server, &mut classes).await;
    assert!(
        matches!(verdict(&mark, &now, &classes), WriteVerdict::Unprovable(_)),
        "a save hid the write: {:?}",
        verdict(&mark, &now, &classes)
    );
}

/// `upshift digest` and `upshift snapshot` while a writer overwrites existing keys: the key
/// count never moves, so only the write evidence can show that the result is from no single
/// moment. Both must exit 3 (blocked: writers active) naming the write command, and the
/// snapshot must leave no file; once the writer stops, the same commands succeed.
#[test]
fn a_scan_during_overwrites_is_refused_though_the_key_count_never_moves() {
    let server = Server::builder().start();
    let mut con = server.conn();
    for i in 0..2000 {
        redis::cmd("SET")
            .arg(format!("k{i}"))
            .arg("v")
            .exec(&mut con)
            .unwrap();
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = std::sync::Arc::clone(&stop);
        let mut con = server.conn();
        std::thread::spawn(move || {
            let mut n = 0_u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                redis::cmd("SET")
                    .arg(format!("k{}", n % 2000))
                    .arg(n)
                    .exec(&mut con)
                    .unwrap();
                n += 1;
            }
            n
        })
    };
    let dir = tempfile::tempdir().unwrap();
    let upshift = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_upshift"))
            .args(args)
            .env_remove("REDIS_URL")
            .output()
            .unwrap()
    };
    let url = server.url();
    let snap = dir.path().join("busy.snap");
    let runs = [
        upshift(&["digest", "--url", &url]),
        upshift(&["snapshot", "--url", &url, "--out", snap.to_str().unwrap()]),
    ];
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = writer.join().unwrap();
    assert!(written > 0, "the writer wrote");
    let count: u64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(count, 2000, "overwrites only: the key count never moved");
    for out in &runs {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{stderr}");
        assert!(
            stderr.contains("writes reached the database during the scan")
                && stderr.contains("set +"),
            "{stderr}"
        );
    }
    assert!(!snap.exists(), "no snapshot of a moving database");
    let quiet = upshift(&["snapshot", "--url", &url, "--out", snap.to_str().unwrap()]);
    assert_eq!(
        quiet.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&quiet.stderr)
    );
}
