//! `bench_verify tune` and `bench_verify big`: the connection x depth grid, and 5% of the keys
//! over 1 MB (see `main.rs` for the bench as a whole).

use super::{Sample, load, load_average, median, sample, start_redis};

/// The pipeline shape by measurement: the decoded digest at every connections x depth
/// (batches in flight per connection) pair, rounds in rotating order with raw
/// SCAN+DUMP+PEXPIRETIME beside them; prints median keys/s and the ratio to raw.
pub(super) fn tune(keys: u64, rounds: usize) {
    let redis = start_redis();
    let url = format!("redis://127.0.0.1:{}", redis.port);
    load(&url, keys, true);
    let shapes: Vec<(usize, usize)> = [1, 2, 4, 8]
        .iter()
        .flat_map(|&c| [1, 2, 4, 8].map(move |d| (c, d)))
        .collect();
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); shapes.len()];
    let mut raw = Vec::new();
    for round in 0..rounds {
        for j in 0..=shapes.len() {
            let i = (j + round) % (shapes.len() + 1);
            if i == shapes.len() {
                raw.push(sample(&url, &["raw", &url, "4", "ttl"]).0.rate());
                continue;
            }
            let (c, d) = shapes[i];
            let (s, _) = sample(
                &url,
                &["digest", &url, &c.to_string(), "dump", &d.to_string()],
            );
            eprintln!(
                "round {} {c} conns x depth {d}: {:.0} keys/s",
                round + 1,
                s.rate()
            );
            rates[i].push(s.rate());
        }
    }
    let raw = median(raw);
    println!();
    println!(
        "decoded digest keys/s (median of {rounds}) by connections (rows) x batches in flight per connection (columns); raw SCAN+DUMP+PEXPIRETIME (4 conns, depth 2) {raw:.0} keys/s"
    );
    println!(
        "{:>6} {:>16} {:>16} {:>16} {:>16}",
        "conns", "depth 1", "depth 2", "depth 4", "depth 8"
    );
    for c in [1, 2, 4, 8] {
        let cells: Vec<String> = shapes
            .iter()
            .zip(&rates)
            .filter(|((sc, _), _)| *sc == c)
            .map(|(_, r)| {
                let m = median(r.clone());
                format!("{m:.0} ({:.0}%)", 100.0 * m / raw.max(1e-9))
            })
            .collect();
        println!(
            "{c:>6} {:>16} {:>16} {:>16} {:>16}",
            cells[0], cells[1], cells[2], cells[3]
        );
    }
    println!("load average {} (2 cores shared)", load_average());
}

/// Big values: `keys` keys of which 5% hold 1.0 to 1.5 MB (strings, and lists/hashes of
/// 100 KB elements), the rest small; digest and snapshot against raw, peak RSS of each.
pub(super) fn big(keys: u64, rounds: usize) {
    let redis = start_redis();
    let url = format!("redis://127.0.0.1:{}", redis.port);
    {
        let mut c = redis::Client::open(url.as_str())
            .unwrap()
            .get_connection()
            .unwrap();
        // Incompressible bytes: DUMP LZF-compresses values, and repeated bytes would shrink a
        // megabyte to a few kilobytes on the wire.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut noise = |n: usize| -> Vec<u8> {
            (0..n)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state.to_le_bytes()[0]
                })
                .collect()
        };
        let chunk = noise(100_000);
        for i in 0..keys {
            let key = format!("key:{i}");
            if i % 20 == 7 {
                let mb = 1_000_000 + (i % 5) * 100_000;
                match i % 3 {
                    0 => {
                        let mut v = noise(usize::try_from(mb).unwrap());
                        v[..8].copy_from_slice(&i.to_le_bytes());
                        redis::cmd("SET").arg(&key).arg(v).exec(&mut c).unwrap();
                    }
                    1 => {
                        let mut p = redis::pipe();
                        for e in 0..(mb / 100_000) {
                            let mut v = chunk.clone();
                            v[..8].copy_from_slice(&e.to_le_bytes());
                            p.cmd("RPUSH").arg(&key).arg(v);
                        }
                        p.exec(&mut c).unwrap();
                    }
                    _ => {
                        let mut p = redis::pipe();
                        for e in 0..(mb / 100_000) {
                            p.cmd("HSET").arg(&key).arg(e).arg(&chunk);
                        }
                        p.exec(&mut c).unwrap();
                    }
                }
            } else {
                redis::cmd("SET")
                    .arg(&key)
                    .arg(format!("small-{i}"))
                    .exec(&mut c)
                    .unwrap();
            }
        }
    }
    let variants: [(&str, Vec<String>); 4] = [
        (
            "digest, DUMP decoded",
            vec!["digest".into(), url.clone(), "4".into(), "dump".into()],
        ),
        (
            "snapshot, DUMP bytes to file",
            vec!["snapshot".into(), url.clone(), "4".into()],
        ),
        ("raw SCAN+DUMP", vec!["raw".into(), url.clone(), "4".into()]),
        (
            "raw SCAN+DUMP+PEXPIRETIME",
            vec!["raw".into(), url.clone(), "4".into(), "ttl".into()],
        ),
    ];
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); variants.len()];
    for round in 0..rounds {
        for j in 0..variants.len() {
            let i = (j + round) % variants.len();
            let args: Vec<&str> = variants[i].1.iter().map(String::as_str).collect();
            let (s, _) = sample(&url, &args);
            eprintln!(
                "round {} {:<30} {:>9.0} keys/s, peak {:.1} MB",
                round + 1,
                variants[i].0,
                s.rate(),
                s.peak_kb as f64 / 1024.0
            );
            samples[i].push(s);
        }
    }
    let raw = median(samples[2].iter().map(Sample::rate).collect());
    println!();
    println!("{keys} keys, 5% of them 1.0-1.5 MB; medians of {rounds}");
    println!(
        "{:<30} {:>10} {:>10} {:>8} {:>8}",
        "tool", "keys/s", "peak MB", "CPU s", "vs raw"
    );
    for ((name, _), s) in variants.iter().zip(&samples) {
        let rate = median(s.iter().map(Sample::rate).collect());
        let peak = s.iter().map(|x| x.peak_kb).max().unwrap_or(0) as f64 / 1024.0;
        let cpu = median(s.iter().map(|x| x.cpu_secs).collect());
        println!(
            "{name:<30} {rate:>10.0} {peak:>10.1} {cpu:>8.2} {:>7.0}%",
            100.0 * rate / raw.max(1e-9)
        );
    }
    println!(
        "peak MB is the highest of the rounds; load average {} (2 cores shared)",
        load_average()
    );
}
