//! The verifier benchmark (run through `bench/verify`, never part of `cargo test`).
//!
//! Loads 1,000,000 mixed keys into a throwaway local redis-server (50% strings, the rest small
//! hashes, lists, sets and zsets, four keys of 100k elements, 10% with TTLs), then measures in
//! separate processes, each under `/usr/bin/time` for its peak memory and CPU: the digest
//! variants (the library's `digest` with values from decoded DUMP payloads, and from TYPE plus
//! type-specific reads) and raw pipelined SCAN+DUMP loops, without and with a PEXPIRETIME per
//! key (the physical references, `raw` below),
//! round after round in rotating order, so that a noisy machine hits every variant alike; then
//! `redis-cli --scan | wc -l` once; the snapshot (DUMP bytes to the file, decoder to the
//! digest) is a variant of every round. Prints medians, each digest's ratio
//! to raw (4 connections) and the load average.
//!
//! Usage: `bench_verify [KEYS] [ROUNDS]` (default 1000000, 3); `bench_verify raw URL
//! CONNECTIONS [ttl]` is the reference loop on its own; `bench_verify digest URL CONNECTIONS
//! MODE [DEPTH]` (MODE `dump`, `type-per-key` or `by-type`; DEPTH batches in flight per
//! connection) one digest; `bench_verify snapshot URL CONNECTIONS` one snapshot;
//! `bench_verify load URL KEYS` only loads; `bench_verify tune [KEYS] [ROUNDS]` the table of
//! connections x depth; `bench_verify big [KEYS] [ROUNDS]` the run with 5% of values over 1 MB
//! (peak memory); `bench_verify nottl [KEYS] [ROUNDS]` the same mixed keys without any TTL
//! (INFO keyspace `expires=0`, so the digest sends no PEXPIRETIME): digest and snapshot
//! against raw SCAN+DUMP, the one reference that then applies.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;

mod shapes;
mod table;

use shapes::{big, tune};
use table::{Sample, median};

const CONNECTIONS: usize = 4;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("raw") {
        let url = args.get(2).expect("raw URL CONNECTIONS");
        let conns: usize = args
            .get(3)
            .and_then(|c| c.parse().ok())
            .unwrap_or(CONNECTIONS);
        raw(url, conns, args.get(4).map(String::as_str) == Some("ttl"));
        return;
    }
    if args.get(1).map(String::as_str) == Some("digest") {
        let url = args.get(2).expect("digest URL CONNECTIONS MODE");
        let conns: usize = args
            .get(3)
            .and_then(|c| c.parse().ok())
            .unwrap_or(CONNECTIONS);
        let depth = args.get(5).and_then(|d| d.parse().ok()).unwrap_or(2);
        digest(
            url,
            conns,
            args.get(4).map_or("dump", String::as_str),
            depth,
        );
        return;
    }
    if args.get(1).map(String::as_str) == Some("snapshot") {
        let url = args.get(2).expect("snapshot URL CONNECTIONS");
        let conns: usize = args
            .get(3)
            .and_then(|c| c.parse().ok())
            .unwrap_or(CONNECTIONS);
        snapshot(url, conns);
        return;
    }
    if args.get(1).map(String::as_str) == Some("tune") {
        let keys = args.get(2).and_then(|k| k.parse().ok()).unwrap_or(200_000);
        let rounds = args.get(3).and_then(|r| r.parse().ok()).unwrap_or(3);
        tune(keys, rounds);
        return;
    }
    if args.get(1).map(String::as_str) == Some("big") {
        let keys = args.get(2).and_then(|k| k.parse().ok()).unwrap_or(10_000);
        let rounds = args.get(3).and_then(|r| r.parse().ok()).unwrap_or(3);
        big(keys, rounds);
        return;
    }
    if args.get(1).map(String::as_str) == Some("nottl") {
        let keys = args
            .get(2)
            .and_then(|k| k.parse().ok())
            .unwrap_or(1_000_000);
        let rounds: usize = args.get(3).and_then(|r| r.parse().ok()).unwrap_or(3);
        bench(keys, rounds.max(1), false);
        return;
    }
    if args.get(1).map(String::as_str) == Some("load") {
        let url = args.get(2).expect("load URL KEYS");
        load(
            url,
            args.get(3)
                .and_then(|k| k.parse().ok())
                .unwrap_or(1_000_000),
            true,
        );
        return;
    }
    let keys: u64 = args
        .get(1)
        .and_then(|k| k.parse().ok())
        .unwrap_or(1_000_000);
    let rounds: usize = args.get(2).and_then(|r| r.parse().ok()).unwrap_or(3);
    bench(keys, rounds.max(1), true);
}

/// One library digest, as `upshift digest` runs it, with the scan mode chosen.
fn digest(url: &str, conns: usize, mode: &str, depth: usize) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (scan_by_type, value_source) = match mode {
        "dump" => (false, upshift::verify::ValueSource::Dump),
        "by-type" => (true, upshift::verify::ValueSource::Commands),
        "type-per-key" => (false, upshift::verify::ValueSource::Commands),
        other => panic!("unknown digest mode {other}"),
    };
    let opts = upshift::verify::VerifyOptions {
        max_connections: conns,
        batches_per_connection: depth,
        scan_by_type,
        value_source,
        ..upshift::verify::VerifyOptions::default()
    };
    let url: upshift::verify::RedisUrl = url.parse().unwrap();
    let report = rt
        .block_on(upshift::verify::digest(
            &url,
            &opts,
            &upshift::verify::NoProgress,
        ))
        .unwrap();
    println!("{}", serde_json::to_string(&report).unwrap());
}

/// The reference: SCAN COUNT 1000 on one connection, DUMP of each batch pipelined on
/// `conns` connections, two batches per connection in flight (the verifier's own shape).
/// With `ttl`, a PEXPIRETIME after each DUMP: the least any TTL-exact read costs.
fn raw(url: &str, conns: usize, ttl: bool) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = redis::Client::open(url).unwrap();
        let mut pool = Vec::new();
        // No response timeout: with big values one pipeline's reply can take seconds.
        let config = redis::AsyncConnectionConfig::new().set_response_timeout(None);
        for _ in 0..conns {
            pool.push(
                client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
                    .unwrap(),
            );
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
                    if ttl {
                        pipe.cmd("PEXPIRETIME").arg(k);
                    }
                }
                let replies: Vec<redis::Value> = pipe.query_async(&mut conn).await.unwrap();
                let bytes: usize = replies
                    .iter()
                    .map(|v| match v {
                        redis::Value::BulkString(b) => b.len(),
                        _ => 0,
                    })
                    .sum();
                (keys.len() as u64, bytes as u64)
            })
            .buffer_unordered(conns * 2);
        let (mut keys, mut bytes) = (0_u64, 0_u64);
        while let Some((k, b)) = dumps.next().await {
            keys += k;
            bytes += b;
        }
        scanner.await.unwrap();
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        println!("{{\"keys\":{keys},\"bytes\":{bytes},\"elapsed_ms\":{ms}}}");
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

/// 50% strings, four 100k-element keys, the rest small hashes/lists/sets/zsets; 10% TTLs
/// when `ttls`, else none.
fn load(url: &str, keys: u64, ttls: bool) {
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
        if ttls && (i % 10 == 3 || (i % 10 >= 5 && i % 50 == 5)) {
            // 10% TTLs in all: every fourth string slot plus some collections.
            p.cmd("PEXPIRE").arg(&key).arg(3_600_000 + i);
        }
        if (i + 1) % 20_000 == 0 {
            flush(&mut p, &mut c);
        }
    }
    flush(&mut p, &mut c);
}

/// Runs `cmd` under `/usr/bin/time` and returns (stdout, peak RSS in KiB, CPU seconds, wall).
/// The server's CPU seconds so far (INFO cpu: `used_cpu_sys` + `used_cpu_user`).
fn server_cpu(url: &str) -> f64 {
    let mut c = redis::Client::open(url).unwrap().get_connection().unwrap();
    let info: String = redis::cmd("INFO").arg("cpu").query(&mut c).unwrap();
    info.lines()
        .filter_map(|l| {
            l.strip_prefix("used_cpu_sys:")
                .or_else(|| l.strip_prefix("used_cpu_user:"))
        })
        .filter_map(|v| v.trim().parse::<f64>().ok())
        .sum()
}

fn timed(cmd: &Command) -> (String, u64, f64, f64) {
    let mut time = Command::new("/usr/bin/time");
    time.arg("-f")
        .arg("PEAK_KB=%M\nCPU=%U %S")
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
    let cpu = stderr
        .lines()
        .find_map(|l| l.strip_prefix("CPU="))
        .map_or(0.0, |v| {
            v.split_whitespace()
                .filter_map(|x| x.parse::<f64>().ok())
                .sum()
        });
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        peak,
        cpu,
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

fn json_str(out: &str, field: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("json output");
    v[field].as_str().unwrap_or_default().to_owned()
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or_else(
        |_| "?".to_owned(),
        |l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    )
}

/// A variant measured every round: its name, the subcommand of this binary, connections.
struct Variant {
    name: &'static str,
    args: [&'static str; 2],
    conns: usize,
}

const VARIANTS: [Variant; 5] = [
    Variant {
        name: "digest, DUMP decoded",
        args: ["digest", "dump"],
        conns: 4,
    },
    Variant {
        name: "digest, TYPE per key",
        args: ["digest", "type-per-key"],
        conns: 4,
    },
    Variant {
        name: "snapshot, DUMP bytes to file",
        args: ["snapshot", ""],
        conns: 4,
    },
    Variant {
        name: "raw SCAN+DUMP (pipelined)",
        args: ["raw", ""],
        conns: 4,
    },
    Variant {
        name: "raw SCAN+DUMP+PEXPIRETIME",
        args: ["raw", "ttl"],
        conns: 4,
    },
];

/// The INFO keyspace `expires` count of db 0: the digest reads no TTL when it is 0.
fn expires(url: &str) -> u64 {
    let mut c = redis::Client::open(url).unwrap().get_connection().unwrap();
    let info: String = redis::cmd("INFO").arg("keyspace").query(&mut c).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("db0:"))
        .and_then(|l| l.split(',').find_map(|f| f.strip_prefix("expires=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The main table; without `ttls` the keys have no TTL and only the variants that read no
/// TTL run (no TYPE per key, no raw+PEXPIRETIME).
fn bench(keys: u64, rounds: usize, ttls: bool) {
    let redis = start_redis();
    let url = format!("redis://127.0.0.1:{}", redis.port);
    eprintln!(
        "loading {keys} keys into redis-server on port {} …",
        redis.port
    );
    let t = Instant::now();
    load(&url, keys, ttls);
    eprintln!(
        "loaded in {:.1} s; INFO keyspace expires={}",
        t.elapsed().as_secs_f64(),
        expires(&url)
    );
    assert_eq!(ttls, expires(&url) > 0, "expires= does not match the load");
    let variants: Vec<&Variant> = VARIANTS
        .iter()
        .filter(|v| ttls || !matches!(v.args[1], "type-per-key" | "ttl"))
        .collect();
    let load_before = load_average();
    let me = std::env::current_exe().unwrap();
    let mut samples: Vec<Vec<Sample>> = variants.iter().map(|_| Vec::new()).collect();
    let mut digests = std::collections::BTreeSet::new();
    for round in 0..rounds {
        // Rotate the order so that no variant always runs first (or after the same one).
        for j in 0..variants.len() {
            let i = (j + round) % variants.len();
            let v = variants[i];
            let conns = v.conns.to_string();
            let mut cmd = Command::new(&me);
            cmd.args([v.args[0], &url, &conns]);
            if !v.args[1].is_empty() {
                cmd.arg(v.args[1]);
            }
            let server_before = server_cpu(&url);
            let (out, peak_kb, cpu_secs, _) = timed(&cmd);
            let server_cpu_secs = server_cpu(&url) - server_before;
            if v.args[0] != "raw" {
                digests.insert(json_str(&out, "digest"));
            }
            let s = Sample {
                keys: json_u64(&out, "keys"),
                secs: json_f64(&out, "elapsed_ms") / 1000.0,
                peak_kb,
                cpu_secs,
                server_cpu_secs,
            };
            eprintln!(
                "round {} {:<28} {} conns: {:>9.0} keys/s, {:.1} MB, {:.2} s CPU, server {:.2} s CPU",
                round + 1,
                v.name,
                v.conns,
                s.rate(),
                s.peak_kb as f64 / 1024.0,
                s.cpu_secs,
                s.server_cpu_secs
            );
            samples[i].push(s);
        }
    }
    assert_eq!(
        digests.len(),
        1,
        "the digest variants disagree: {digests:?}"
    );

    let mut cmd = Command::new("sh");
    cmd.args(["-c", &format!("redis-cli -p {} --scan | wc -l", redis.port)]);
    let server_before = server_cpu(&url);
    let (out, cli_peak, cli_cpu, cli_secs) = timed(&cmd);
    let cli_server = server_cpu(&url) - server_before;
    let cli_keys: u64 = out.trim().parse().unwrap_or(0);

    let raw_of = |ttl: &str| {
        variants
            .iter()
            .position(|v| v.args[0] == "raw" && v.args[1] == ttl)
    };
    let rows: Vec<table::Row<'_>> = variants
        .iter()
        .zip(&samples)
        .map(|(v, s)| table::Row {
            name: v.name,
            conns: v.conns,
            samples: s,
            compared: v.args[0] != "raw",
        })
        .collect();
    let cli = [Sample {
        keys: cli_keys,
        secs: cli_secs,
        peak_kb: cli_peak,
        cpu_secs: cli_cpu,
        server_cpu_secs: cli_server,
    }];
    table::print(
        &rows,
        raw_of("").map(|i| samples[i].as_slice()),
        raw_of("ttl").map(|i| samples[i].as_slice()),
        &table::Row {
            name: "redis-cli --scan | wc -l",
            conns: 1,
            samples: &cli,
            compared: false,
        },
    );
    println!();
    println!(
        "{rounds} rounds, {}; goals (issue 12): digest >= 85% of raw and >= 95% of raw+TTL, snapshot >= 80% of raw; load average {load_before} before, {} after (2 cores shared)",
        if ttls {
            "10% of keys with TTLs"
        } else {
            "no TTLs"
        },
        load_average()
    );
}

/// One library snapshot into a temporary file, as `upshift snapshot` takes it.
fn snapshot(url: &str, conns: usize) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let opts = upshift::verify::VerifyOptions {
        max_connections: conns,
        ..upshift::verify::VerifyOptions::default()
    };
    let url: upshift::verify::RedisUrl = url.parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bench.snapshot");
    let s = rt
        .block_on(upshift::verify::snapshot(
            &url,
            &out,
            &opts,
            &upshift::verify::NoProgress,
        ))
        .unwrap();
    println!(
        "{{\"keys\":{},\"elapsed_ms\":{},\"digest\":\"{}\",\"file_bytes\":{}}}",
        s.keys,
        s.elapsed.as_secs_f64() * 1000.0,
        s.digest,
        s.file_bytes
    );
}

/// One measured run of this binary's subcommand `args`: its sample.
fn sample(url: &str, args: &[&str]) -> (Sample, String) {
    let me = std::env::current_exe().unwrap();
    let mut cmd = Command::new(&me);
    cmd.args(args);
    let server_before = server_cpu(url);
    let (out, peak_kb, cpu_secs, _) = timed(&cmd);
    let server_cpu_secs = server_cpu(url) - server_before;
    let s = Sample {
        keys: json_u64(&out, "keys"),
        secs: json_f64(&out, "elapsed_ms") / 1000.0,
        peak_kb,
        cpu_secs,
        server_cpu_secs,
    };
    let digest = if args[0] == "raw" {
        String::new()
    } else {
        json_str(&out, "digest")
    };
    (s, digest)
}
