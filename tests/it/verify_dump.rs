//! The DUMP decoder against a real redis-server: every key of every type, in every encoding the
//! server writes (thresholds forced low and high, big and binary values, LZF-compressed strings
//! and list nodes, plain list nodes) and ziplist payloads of older versions restored into it,
//! decodes to exactly the canonical digest the command-by-command reader computes.

use crate::verify_support;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::BufReader;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use upshift::verify::dump;
use upshift::verify::snapshot::SnapshotReader;
use upshift::verify::{self, KeyKind, NoProgress, ValueSource};
use verify_support::{Server, opts};

/// CONFIG SET that may be refused (a name the server's version does not have).
fn try_config(c: &mut redis::Connection, name: &str, value: &str) {
    let _: redis::RedisResult<()> = redis::cmd("CONFIG")
        .arg("SET")
        .arg(name)
        .arg(value)
        .query(c);
}

/// A member drawn from the shapes that change encodings: empty, small and huge integers,
/// integer-looking text Redis keeps as text, binary, long and compressible.
fn member(rng: &mut StdRng) -> Vec<u8> {
    match rng.random_range(0..9) {
        0 => Vec::new(),
        1 => rng.random_range(-200_i64..200).to_string().into_bytes(),
        2 => rng.random::<i64>().to_string().into_bytes(),
        3 => rng.random::<i32>().to_string().into_bytes(),
        4 => format!("0{}", rng.random_range(0..100)).into_bytes(),
        5 => (0..rng.random_range(1..24)).map(|_| rng.random()).collect(),
        6 => (0..rng.random_range(65..400))
            .map(|_| rng.random())
            .collect(),
        7 => vec![b'a'; rng.random_range(65..3000)],
        _ => format!("m{}", rng.random_range(0..1_000_000)).into_bytes(),
    }
}

fn score(rng: &mut StdRng) -> String {
    match rng.random_range(0..8) {
        0 => "inf".into(),
        1 => "-inf".into(),
        2 => "-0".into(),
        3 => rng.random_range(-1000_i64..1000).to_string(),
        4 => rng.random::<i64>().to_string(),
        5 => "1.5".into(), // ties: members decide the order
        6 => format!("{:e}", rng.random::<f64>() * 1e300),
        _ => (rng.random::<f64>() * 2000.0 - 1000.0).to_string(),
    }
}

/// Streams in the shapes their encoding varies with: entries sharing the master entry's fields
/// and not, deleted entries, integer and binary values, several listpack nodes, an emptied
/// stream, and consumer groups with consumers and pending entries.
fn load_streams(c: &mut redis::Connection, rng: &mut StdRng) {
    let mut p = redis::pipe();
    p.cmd("XADD").arg("stream:g").arg("1-1").arg("a").arg("b");
    p.cmd("XADD").arg("stream:g").arg("2-0").arg("a").arg("c");
    p.cmd("XADD")
        .arg("stream:g")
        .arg("3-0")
        .arg("x")
        .arg(-42)
        .arg("z")
        .arg(&b"\x00\xffbin"[..]);
    p.cmd("XADD").arg("stream:g").arg("4-7").arg("a").arg(12345);
    p.cmd("XDEL").arg("stream:g").arg("2-0");
    p.cmd("XGROUP")
        .arg("CREATE")
        .arg("stream:g")
        .arg("g1")
        .arg("0");
    p.cmd("XGROUP")
        .arg("CREATE")
        .arg("stream:g")
        .arg("g2")
        .arg("$");
    p.cmd("XGROUP")
        .arg("CREATECONSUMER")
        .arg("stream:g")
        .arg("g2")
        .arg("bob");
    p.cmd("XREADGROUP")
        .arg("GROUP")
        .arg("g1")
        .arg("alice")
        .arg("COUNT")
        .arg(2)
        .arg("STREAMS")
        .arg("stream:g")
        .arg(">");
    for i in 0..350_u32 {
        let mut xadd = redis::cmd("XADD");
        xadd.arg("stream:big").arg("*");
        for f in 0..=(i % 3) {
            xadd.arg(format!("f{f}")).arg(member(rng));
        }
        p.add_command(xadd);
    }
    p.cmd("XADD")
        .arg("stream:emptied")
        .arg("5-5")
        .arg("k")
        .arg("v");
    p.cmd("XTRIM").arg("stream:emptied").arg("MAXLEN").arg(0);
    p.exec(c).expect("load streams");
}

/// Writes keys of every type; `sizes` picks element counts around the thresholds.
fn load(c: &mut redis::Connection, rng: &mut StdRng, tag: &str, sizes: &[usize]) {
    let mut p = redis::pipe();
    for (i, &n) in sizes.iter().enumerate() {
        let list: Vec<Vec<u8>> = (0..n).map(|_| member(rng)).collect();
        p.cmd("RPUSH").arg(format!("{tag}:list:{i}")).arg(&list);
        let set: Vec<Vec<u8>> = (0..n).map(|_| member(rng)).collect();
        p.cmd("SADD").arg(format!("{tag}:set:{i}")).arg(&set);
        let ints: Vec<i64> = (0..n)
            .map(|k| match i % 3 {
                0 => rng.random_range(-30_000..30_000),
                1 => rng.random::<i32>().into(),
                _ => rng.random::<i64>() ^ i64::try_from(k).unwrap_or(0),
            })
            .collect();
        p.cmd("SADD").arg(format!("{tag}:intset:{i}")).arg(&ints);
        let mut zadd = redis::cmd("ZADD");
        zadd.arg(format!("{tag}:zset:{i}"));
        for _ in 0..n {
            zadd.arg(score(rng)).arg(member(rng));
        }
        p.add_command(zadd);
        let mut hset = redis::cmd("HSET");
        hset.arg(format!("{tag}:hash:{i}"));
        for _ in 0..n {
            hset.arg(member(rng)).arg(member(rng));
        }
        p.add_command(hset);
        p.cmd("SET").arg(format!("{tag}:str:{i}")).arg(member(rng));
    }
    p.exec(c).expect("load data");
}

/// An RDB length at `p[*at..]`: `(value, is_lzf_string)`.
fn rdb_len(p: &[u8], at: &mut usize) -> (usize, bool) {
    let b = p[*at];
    *at += 1;
    match b >> 6 {
        0 => (usize::from(b & 0x3f), false),
        1 => {
            *at += 1;
            (usize::from(b & 0x3f) << 8 | usize::from(p[*at - 1]), false)
        }
        2 => {
            *at += 4;
            let n = u32::from_be_bytes(p[*at - 4..*at].try_into().unwrap());
            (usize::try_from(n).unwrap(), false)
        }
        _ => {
            assert_eq!(b & 0x3f, 3, "only LZF among special encodings here");
            let (clen, _) = rdb_len(p, at);
            let _ = rdb_len(p, at);
            (clen, true)
        }
    }
}

/// Counts a quicklist-2 payload's nodes: (plain, packed, LZF-compressed).
fn quicklist_nodes(p: &[u8]) -> (usize, usize, usize) {
    assert_eq!(p[0], 18, "a quicklist 2 payload");
    let mut at = 1;
    let (nodes, _) = rdb_len(p, &mut at);
    let mut counts = (0, 0, 0);
    for _ in 0..nodes {
        let (container, _) = rdb_len(p, &mut at);
        if container == 1 {
            counts.0 += 1;
        } else {
            counts.1 += 1;
        }
        let (len, lzf) = rdb_len(p, &mut at);
        counts.2 += usize::from(lzf);
        at += len;
    }
    counts
}

fn keys_matching(c: &mut redis::Connection, pattern: &str) -> Vec<Vec<u8>> {
    redis::cmd("KEYS").arg(pattern).query(c).unwrap()
}

/// A ziplist (Redis < 7.0) of the given entries, with correct back-lengths and tail offset.
fn ziplist(entries: &[&[u8]]) -> Vec<u8> {
    let mut body = Vec::new();
    let mut prev = 0_usize;
    let mut tail = 10_usize;
    for e in entries {
        let start = body.len();
        tail = 10 + start;
        if prev < 254 {
            body.push(u8::try_from(prev).unwrap());
        } else {
            body.push(0xfe);
            body.extend_from_slice(&u32::try_from(prev).unwrap().to_le_bytes());
        }
        match std::str::from_utf8(e)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
        {
            Some(v) if v.to_string().as_bytes() == *e => match v {
                0..=12 => body.push(0xf1 + u8::try_from(v).unwrap()),
                -128..=127 => {
                    body.push(0xfe);
                    body.extend_from_slice(&i8::try_from(v).unwrap().to_le_bytes());
                }
                -32_768..=32_767 => {
                    body.push(0xc0);
                    body.extend_from_slice(&i16::try_from(v).unwrap().to_le_bytes());
                }
                -8_388_608..=8_388_607 => {
                    body.push(0xf0);
                    body.extend_from_slice(&i32::try_from(v).unwrap().to_le_bytes()[..3]);
                }
                _ => {
                    if let Ok(v) = i32::try_from(v) {
                        body.push(0xd0);
                        body.extend_from_slice(&v.to_le_bytes());
                    } else {
                        body.push(0xe0);
                        body.extend_from_slice(&v.to_le_bytes());
                    }
                }
            },
            _ => {
                let n = e.len();
                if n < 64 {
                    body.push(u8::try_from(n).unwrap());
                } else if n < 16_384 {
                    body.push(0x40 | u8::try_from(n >> 8).unwrap());
                    body.push(u8::try_from(n & 0xff).unwrap());
                } else {
                    body.push(0x80);
                    body.extend_from_slice(&u32::try_from(n).unwrap().to_be_bytes());
                }
                body.extend_from_slice(e);
            }
        }
        prev = body.len() - start;
    }
    let total = 10 + body.len() + 1;
    let mut zl = u32::try_from(total).unwrap().to_le_bytes().to_vec();
    zl.extend_from_slice(&u32::try_from(tail).unwrap().to_le_bytes());
    zl.extend_from_slice(&u16::try_from(entries.len()).unwrap().to_le_bytes());
    zl.extend_from_slice(&body);
    zl.push(0xff);
    zl
}

fn rdb_string(bytes: &[u8]) -> Vec<u8> {
    let n = bytes.len();
    let mut out = if n < 64 {
        vec![u8::try_from(n).unwrap()]
    } else if n < 16_384 {
        vec![
            0x40 | u8::try_from(n >> 8).unwrap(),
            u8::try_from(n & 0xff).unwrap(),
        ]
    } else {
        let mut v = vec![0x80];
        v.extend_from_slice(&u32::try_from(n).unwrap().to_be_bytes());
        v
    };
    out.extend_from_slice(bytes);
    out
}

/// A DUMP payload of RDB version 9 (Redis 6.2) around `object`.
fn payload_v9(rdb_type: u8, object: &[u8]) -> Vec<u8> {
    let mut p = vec![rdb_type];
    p.extend_from_slice(object);
    p.extend_from_slice(&9_u16.to_le_bytes());
    let crc = dump::crc64(0, &p);
    p.extend_from_slice(&crc.to_le_bytes());
    p
}

/// Ziplist-era payloads (list as quicklist of ziplists, hash and zset as ziplists), restored
/// into the server so the command reader sees what they hold.
fn restore_ziplists(c: &mut redis::Connection, rng: &mut StdRng) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut crafted = BTreeMap::new();
    for i in 0..6 {
        let n = [1, 2, 5, 20, 60, 120][i];
        let elements: Vec<Vec<u8>> = (0..n).map(|_| member(rng)).collect();
        let refs: Vec<&[u8]> = elements.iter().map(Vec::as_slice).collect();
        let mut list = vec![1];
        list.extend(rdb_string(&ziplist(&refs)));
        crafted.insert(format!("zl:list:{i}").into_bytes(), payload_v9(14, &list));

        let mut fields = BTreeSet::new();
        let mut pairs = Vec::new();
        for _ in 0..n {
            let f = member(rng);
            if fields.insert(f.clone()) {
                pairs.push(f);
                pairs.push(member(rng));
            }
        }
        let refs: Vec<&[u8]> = pairs.iter().map(Vec::as_slice).collect();
        crafted.insert(
            format!("zl:hash:{i}").into_bytes(),
            payload_v9(13, &rdb_string(&ziplist(&refs))),
        );

        // Sorted by score then member, as a ziplist zset must be.
        let mut members: BTreeSet<(i64, Vec<u8>)> = BTreeSet::new();
        let mut seen = BTreeSet::new();
        for _ in 0..n {
            let m = member(rng);
            if seen.insert(m.clone()) {
                members.insert((rng.random_range(-5..5), m));
            }
        }
        let flat: Vec<Vec<u8>> = members
            .into_iter()
            .flat_map(|(s, m)| [m, s.to_string().into_bytes()])
            .collect();
        let refs: Vec<&[u8]> = flat.iter().map(Vec::as_slice).collect();
        crafted.insert(
            format!("zl:zset:{i}").into_bytes(),
            payload_v9(12, &rdb_string(&ziplist(&refs))),
        );
    }
    for (key, payload) in &crafted {
        redis::cmd("RESTORE")
            .arg(key)
            .arg(0)
            .arg(payload)
            .exec(c)
            .unwrap_or_else(|e| panic!("RESTORE {}: {e}", String::from_utf8_lossy(key)));
    }
    crafted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decoded_dumps_digest_exactly_as_the_command_reader() {
    let server = Server::builder()
        .args(&["--enable-debug-command", "yes"])
        .start();
    let mut c = server.conn();
    let mut rng = StdRng::seed_from_u64(0x0d0d_0012);

    // Small thresholds: many nodes, conversions at a few elements.
    for (name, value) in [
        ("list-max-listpack-size", "4"),
        ("list-max-ziplist-size", "4"),
        ("list-compress-depth", "1"),
        ("hash-max-listpack-entries", "8"),
        ("hash-max-ziplist-entries", "8"),
        ("zset-max-listpack-entries", "8"),
        ("zset-max-ziplist-entries", "8"),
        ("set-max-intset-entries", "8"),
        ("set-max-listpack-entries", "8"),
    ] {
        try_config(&mut c, name, value);
    }
    for round in 0..4 {
        load(
            &mut c,
            &mut rng,
            &format!("small{round}"),
            &[1, 2, 7, 8, 9, 30, 200],
        );
    }
    // Large thresholds and value sizes: listpacks hold big members.
    for (name, value) in [
        ("list-max-listpack-size", "-5"),
        ("list-compress-depth", "0"),
        ("hash-max-listpack-entries", "1000"),
        ("hash-max-listpack-value", "4096"),
        ("zset-max-listpack-entries", "1000"),
        ("zset-max-listpack-value", "4096"),
        ("set-max-intset-entries", "1000"),
        ("set-max-listpack-entries", "1000"),
        ("set-max-listpack-value", "4096"),
    ] {
        try_config(&mut c, name, value);
    }
    for round in 0..2 {
        load(
            &mut c,
            &mut rng,
            &format!("large{round}"),
            &[1, 3, 100, 900, 2000],
        );
    }
    // Plain quicklist nodes: elements above the packed threshold.
    redis::cmd("DEBUG")
        .arg("QUICKLIST-PACKED-THRESHOLD")
        .arg(100)
        .exec(&mut c)
        .expect("DEBUG QUICKLIST-PACKED-THRESHOLD (needs --enable-debug-command)");
    let plain: Vec<Vec<u8>> = (0..50).map(|_| member(&mut rng)).collect();
    redis::cmd("RPUSH")
        .arg("plain:list")
        .arg(&plain)
        .exec(&mut c)
        .unwrap();
    // Strings in every encoding: integers of each width, integer-looking text, LZF, huge.
    let strings: Vec<(String, Vec<u8>)> = [
        "",
        "0",
        "-1",
        "127",
        "-128",
        "32767",
        "-32768",
        "2147483647",
        "-2147483648",
        "2147483648",
        "9223372036854775807",
        "-9223372036854775808",
        "007",
        "-0",
        "+1",
        "1e3",
    ]
    .iter()
    .enumerate()
    .map(|(i, s)| (format!("str:int:{i}"), s.as_bytes().to_vec()))
    .chain([
        ("str:lzf".to_owned(), b"abc".repeat(10_000)),
        (
            "str:binary".to_owned(),
            (0..=255_u8).cycle().take(70_000).collect(),
        ),
        ("str:huge".to_owned(), vec![b'z'; 3 << 20]),
    ])
    .collect();
    for (k, v) in &strings {
        redis::cmd("SET").arg(k).arg(v).exec(&mut c).unwrap();
    }
    // Scores at the edges, with ties.
    redis::cmd("ZADD")
        .arg("zset:edges")
        .arg(&[
            "-inf", "a", "inf", "b", "0", "c", "-0", "d", "1.5", "e", "1.5", "f", "1e-300", "g",
            "-1e300", "h",
        ])
        .exec(&mut c)
        .unwrap();
    let crafted = restore_ziplists(&mut c, &mut rng);
    redis::cmd("XADD")
        .arg("stream")
        .arg("*")
        .arg("a")
        .arg("b")
        .exec(&mut c)
        .unwrap();
    load_streams(&mut c, &mut rng);
    for (i, k) in keys_matching(&mut c, "small0:*")
        .iter()
        .enumerate()
        .step_by(3)
    {
        redis::cmd("PEXPIRE")
            .arg(k)
            .arg(3_600_000 + i)
            .exec(&mut c)
            .unwrap();
    }

    // Coverage: every encoding this server writes is present.
    let keys = keys_matching(&mut c, "*");
    let mut encodings = BTreeSet::new();
    for k in &keys {
        let t: String = redis::cmd("TYPE").arg(k).query(&mut c).unwrap();
        let e: String = redis::cmd("OBJECT")
            .arg("ENCODING")
            .arg(k)
            .query(&mut c)
            .unwrap();
        encodings.insert(format!("{t}/{e}"));
    }
    for want in [
        "string/int",
        "string/embstr",
        "string/raw",
        "list/quicklist",
        "set/intset",
        "set/hashtable",
        "zset/listpack",
        "zset/skiplist",
        "hash/listpack",
        "hash/hashtable",
    ] {
        assert!(
            encodings.contains(want),
            "no {want} key among {encodings:?}"
        );
    }

    // The command reader's canonical records, with each key's DUMP next to them.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("snap.upshift");
    let o = verify::VerifyOptions {
        value_source: ValueSource::Commands,
        ..opts()
    };
    let started = std::time::Instant::now();
    verify::snapshot(&server.parsed_url(), &path, &o, &NoProgress)
        .await
        .expect("snapshot");
    let mut reader = SnapshotReader::new(BufReader::new(File::open(&path).unwrap())).unwrap();
    let mut decoded = 0;
    let mut per_type: BTreeMap<KeyKind, usize> = BTreeMap::new();
    let mut lzf = false;
    let mut nodes = (0, 0, 0);
    while let Some(entry) = reader.next_entry().unwrap() {
        let key = String::from_utf8_lossy(&entry.record.key).into_owned();
        if entry.payload[0] == 18 {
            let (plain, packed, compressed) = quicklist_nodes(&entry.payload);
            nodes = (nodes.0 + plain, nodes.1 + packed, nodes.2 + compressed);
        }
        if key == "str:lzf" {
            lzf = entry.payload[1] >> 6 == 3 && entry.payload[1] & 0x3f == 3;
        }
        match dump::decode(&entry.payload) {
            Ok(d) => {
                assert_eq!(d.kind, entry.record.kind, "kind of {key}");
                assert_eq!(d.value, entry.record.value, "canonical digest of {key}");
                decoded += 1;
                *per_type.entry(d.kind).or_default() += 1;
            }
            Err(e) => panic!("{key} did not decode: {e}"),
        }
        if let Some(p) = crafted.get(&entry.record.key) {
            let d = dump::decode(p).expect("crafted ziplist payload decodes");
            assert_eq!(d.value, entry.record.value, "ziplist payload of {key}");
        }
    }
    assert!(lzf, "str:lzf was not LZF-compressed in its DUMP");
    let (plain, packed, compressed) = nodes;
    assert!(
        plain > 0 && packed > 0 && compressed > 0,
        "quicklist nodes: {plain} plain, {packed} packed, {compressed} compressed"
    );
    assert_eq!(decoded, keys.len());
    assert_eq!(
        per_type.get(&KeyKind::Stream),
        Some(&4),
        "four streams decoded"
    );
    eprintln!(
        "{decoded} keys decoded ({per_type:?}), quicklist nodes {nodes:?}, encodings {encodings:?}, in {:?}",
        started.elapsed()
    );

    // The whole scan both ways: the same database digest, TTLs included; nothing falls back.
    let by_dump = verify::digest(&server.parsed_url(), &opts(), &NoProgress)
        .await
        .expect("digest from DUMP");
    let by_commands = verify::digest(&server.parsed_url(), &o, &NoProgress)
        .await
        .expect("digest from commands");
    assert_eq!(by_dump.digest, by_commands.digest);
    assert_eq!(by_dump.keys, by_commands.keys);
    assert_eq!(
        by_dump.fallbacks.total(),
        0,
        "every key decodes, streams included: {:?}",
        by_dump.fallbacks
    );
    assert_eq!(by_commands.fallbacks.total(), 0);
}

/// A server that refuses DUMP (renamed away, as some managed services do): every key falls
/// back to the command reader, is counted, and the digest is the command reader's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_dump_falls_back_to_commands_for_every_key() {
    let server = Server::builder()
        .args(&["--rename-command", "DUMP", ""])
        .start();
    let mut c = server.conn();
    let mut rng = StdRng::seed_from_u64(12);
    load(&mut c, &mut rng, "k", &[1, 5, 50]);
    let keys = keys_matching(&mut c, "*").len();
    let by_dump = verify::digest(&server.parsed_url(), &opts(), &NoProgress)
        .await
        .expect("digest with DUMP refused");
    let commands = verify::VerifyOptions {
        value_source: ValueSource::Commands,
        ..opts()
    };
    let by_commands = verify::digest(&server.parsed_url(), &commands, &NoProgress)
        .await
        .expect("digest from commands");
    assert_eq!(by_dump.digest, by_commands.digest);
    assert_eq!(
        by_dump.fallbacks,
        verify::Fallbacks {
            dump_refused: u64::try_from(keys).unwrap(),
            ..verify::Fallbacks::default()
        }
    );
}
