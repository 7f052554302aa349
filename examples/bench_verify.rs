//! The verifier benchmark (run through `bench/verify`, never part of `cargo test`).
//!
//! Loads 1,000,000 mixed keys into a throwaway local redis-server (50% strings, the rest small
//! hashes, lists, sets and zsets, four keys of 100k elements, 10% with TTLs), then measures in
//! separate processes, each under `/usr/bin/time` for its peak memory:
//! `upshift digest`, a raw pipelined SCAN+DUMP loop (the physical reference, `raw` below),
//! `redis-cli --scan | wc -l`, and `upshift snapshot`. Prints one table and the digest/raw ratio.
//!
//! Usage: `bench_verify [KEYS]` (default 1000000); `bench_verify raw URL CONNECTIONS` is the
//! reference loop on its own; `bench_verify load URL KEYS` only loads the data set.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;

const CONNECTIONS: usize = 4;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("raw") {
        let url = args.get(2).expect("raw URL CONNECTIONS");
        let conns: usize = args
            .get(3)
            .and_then(|c| c.parse().ok())
            .unwrap_or(CONNECTIONS);
        raw(url, conns);
        return;
    }
    if args.get(1).map(String::as_str) == Some("load") {
        let url = args.get(2).expect("load URL KEYS");
        load(
            url,
            args.get(3)
                .and_then(|k| k.parse().ok())
                .unwrap_or(1_000_000),
        );
        return;
    }
    let keys: u64 = args
        .get(1)
        .and_then(|k| k.parse().ok())
        .unwrap_or(1_000_000);
    bench(keys);
}

/// The reference: SCAN COUNT 1000 on one connection, DUMP of each batch pipelined on
/// `conns` connections, two batches per connection in flight (the verifier's own shape).
fn raw(url: &str, conns: usize) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = redis::Client::open(url).unwrap();
        let mut pool = Vec::new();
        for _ in 0..conns {
            pool.push(client.get_multiplexed_async_connection().await.unwrap());
        }
        let start = Instant::now();
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Vec<u8>>>(16);
        let mut scan_conn = pool[0].clone();
        let scanner = tokio::spawn(async move {
            let mut cursor = 0_u64;
            loop {
                let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("COUNT")
                    .arg(1000)
                    .query_async(&mut scan_conn)
                    .await
                    .unwrap();
                if !keys.is_empty() {
                    tx.send(keys).await.unwrap();
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        });
        let batches = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
        let pool_ref = &pool;
        let mut dumps = batches
            .enumerate()
            .map(|(i, keys)| async move {
                let mut conn = pool_ref[i % pool_ref.len()].clone();
                let mut pipe = redis::pipe();
                for k in &keys {
                    pipe.cmd("DUMP").arg(k);
                }
                let payloads: Vec<Option<Vec<u8>>> = pipe.query_async(&mut conn).await.unwrap();
                let bytes: usize = payloads.iter().flatten().map(Vec::len).sum();
                (keys.len() as u64, bytes as u64)
            })
            .buffer_unordered(conns * 2);
        let (mut keys, mut bytes) = (0_u64, 0_u64);
        while let Some((k, b)) = dumps.next().await {
            keys += k;
            bytes += b;
        }
        scanner.await.unwrap();
        let secs = start.elapsed().as_secs_f64();
        println!("{{\"keys\":{keys},\"bytes\":{bytes},\"elapsed_secs\":{secs}}}");
    });
}

struct Redis {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_redis() -> Redis {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(dir.path())
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server not found: run scripts/ensure-deps");
    let url = format!("redis://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(mut c) = redis::Client::open(url.as_str()).and_then(|c| c.get_connection())
            && redis::cmd("PING").query::<String>(&mut c).is_ok()
        {
            break;
        }
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Redis {
        child,
        port,
        _dir: dir,
    }
}

/// 50% strings, four 100k-element keys, the rest small hashes/lists/sets/zsets; 10% TTLs.
fn load(url: &str, keys: u64) {
    let mut c = redis::Client::open(url).unwrap().get_connection().unwrap();
    let big = 100_000_u64;
    let mut p = redis::pipe();
    let flush = |p: &mut redis::Pipeline, c: &mut redis::Connection| {
        p.exec(c).unwrap();
        p.clear();
    };
    for (name, cmd) in [
        ("big:hash", "HSET"),
        ("big:set", "SADD"),
        ("big:list", "RPUSH"),
        ("big:zset", "ZADD"),
    ] {
        for chunk in 0..(big / 10_000) {
            let args: Vec<String> = (chunk * 10_000..(chunk + 1) * 10_000)
                .flat_map(|i| match cmd {
                    "HSET" => vec![format!("field:{i}"), format!("value:{i}")],
                    "ZADD" => vec![i.to_string(), format!("member:{i}")],
                    _ => vec![format!("element:{i}")],
                })
                .collect();
            p.cmd(cmd).arg(name).arg(args);
            flush(&mut p, &mut c);
        }
    }
    for i in 0..keys.saturating_sub(4) {
        let key = format!("key:{i}");
        match i % 10 {
            0..=4 => p
                .cmd("SET")
                .arg(&key)
                .arg(format!("value-{i}-{}", "x".repeat((i % 40) as usize))),
            5 => p
                .cmd("HSET")
                .arg(&key)
                .arg("a")
                .arg(i)
                .arg("b")
                .arg("bee")
                .arg("c")
                .arg("sea"),
            6 => p
                .cmd("RPUSH")
                .arg(&key)
                .arg(&["one", "two", "three", "four"][..]),
            7 => p
                .cmd("SADD")
                .arg(&key)
                .arg(&[i, i + 1, i + 2, i + 3, i + 4][..]),
            _ => p
                .cmd("ZADD")
                .arg(&key)
                .arg(1.5)
                .arg("a")
                .arg(2)
                .arg("b")
                .arg(3.25)
                .arg("c"),
        };
        if i % 10 == 3 || (i % 10 >= 5 && i % 50 == 5) {
            // 10% TTLs in all: every fourth string slot plus some collections.
            p.cmd("PEXPIRE").arg(&key).arg(3_600_000 + i);
        }
        if (i + 1) % 20_000 == 0 {
            flush(&mut p, &mut c);
        }
    }
    flush(&mut p, &mut c);
}

struct Row {
    name: &'static str,
    keys: u64,
    secs: f64,
    peak_kb: u64,
}

/// Runs `cmd` under `/usr/bin/time -f %M` and returns (stdout, peak RSS in KiB, wall seconds).
fn timed(cmd: &Command) -> (String, u64, f64) {
    let mut time = Command::new("/usr/bin/time");
    time.arg("-f")
        .arg("PEAK_KB=%M")
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            time.env(k, v);
        }
    }
    let start = Instant::now();
    let out = time
        .output()
        .expect("/usr/bin/time (package `time`) is needed for peak memory");
    let secs = start.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{:?} failed: {stderr}",
        cmd.get_program().display()
    );
    let peak = stderr
        .lines()
        .find_map(|l| l.strip_prefix("PEAK_KB="))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        peak,
        secs,
    )
}

fn json_f64(out: &str, field: &str) -> f64 {
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("json output");
    v[field]
        .as_f64()
        .unwrap_or_else(|| panic!("field {field} in {out}"))
}

fn json_u64(out: &str, field: &str) -> u64 {
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("json output");
    v[field]
        .as_u64()
        .unwrap_or_else(|| panic!("field {field} in {out}"))
}

fn upshift_bin() -> PathBuf {
    let me = std::env::current_exe().unwrap();
    // target/release/examples/bench_verify -> target/release/upshift
    me.parent().and_then(Path::parent).unwrap().join("upshift")
}

fn bench(keys: u64) {
    let redis = start_redis();
    let url = format!("redis://127.0.0.1:{}", redis.port);
    eprintln!(
        "loading {keys} keys into redis-server on port {} …",
        redis.port
    );
    let t = Instant::now();
    load(&url, keys);
    eprintln!("loaded in {:.1} s", t.elapsed().as_secs_f64());
    let upshift = upshift_bin();
    let conns = CONNECTIONS.to_string();
    let mut rows = Vec::new();

    let mut cmd = Command::new(&upshift);
    cmd.args([
        "digest",
        "--json",
        "--max-connections",
        &conns,
        "--url",
        &url,
    ]);
    let (out, peak, _) = timed(&cmd);
    let digest_secs = json_f64(&out, "elapsed_secs");
    let digest_keys = json_u64(&out, "keys");
    rows.push(Row {
        name: "upshift digest",
        keys: digest_keys,
        secs: digest_secs,
        peak_kb: peak,
    });

    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["raw", &url, &conns]);
    let (out, peak, _) = timed(&cmd);
    let raw_secs = json_f64(&out, "elapsed_secs");
    rows.push(Row {
        name: "raw SCAN+DUMP (pipelined)",
        keys: json_u64(&out, "keys"),
        secs: raw_secs,
        peak_kb: peak,
    });

    let mut cmd = Command::new("sh");
    cmd.args(["-c", &format!("redis-cli -p {} --scan | wc -l", redis.port)]);
    let (out, peak, secs) = timed(&cmd);
    rows.push(Row {
        name: "redis-cli --scan | wc -l",
        keys: out.trim().parse().unwrap_or(0),
        secs,
        peak_kb: peak,
    });

    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("bench.snapshot");
    let mut cmd = Command::new(&upshift);
    cmd.args([
        "snapshot",
        "--json",
        "--max-connections",
        &conns,
        "--url",
        &url,
        "--out",
    ])
    .arg(&snap);
    let (out, peak, _) = timed(&cmd);
    rows.push(Row {
        name: "upshift snapshot",
        keys: json_u64(&out, "keys"),
        secs: json_f64(&out, "elapsed_secs"),
        peak_kb: peak,
    });
    let snap_bytes = std::fs::metadata(&snap).map_or(0, |m| m.len());

    println!();
    println!(
        "{:<28} {:>9} {:>9} {:>11} {:>10}",
        "tool", "keys", "seconds", "keys/s", "peak MB"
    );
    for r in &rows {
        println!(
            "{:<28} {:>9} {:>9.2} {:>11.0} {:>10.1}",
            r.name,
            r.keys,
            r.secs,
            r.keys as f64 / r.secs,
            r.peak_kb as f64 / 1024.0
        );
    }
    println!();
    println!(
        "digest / raw SCAN+DUMP rate: {:.0}%  (goal >= 85%); snapshot file {:.1} MB; {CONNECTIONS} connections",
        100.0 * raw_secs / digest_secs,
        snap_bytes as f64 / 1e6
    );
}
