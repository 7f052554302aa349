//! How the standalone commands reach a server: an IPv6 literal host (`[::1]`) on every kind
//! of connection, plain and TLS, and a server at its connection limit, which must be named as
//! such (with the flag that opens fewer connections), not blamed on the url or the password.

use std::process::Command;

use crate::verify_support::{Server, tls_material};

/// Runs the binary: (exit code, stdout, stderr).
fn upshift(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_upshift"))
        .args(args)
        .env_remove("REDIS_URL")
        .output()
        .expect("upshift runs");
    (
        out.status.code().expect("exited"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The `digest` field of a `--json` document.
fn digest_of(json: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(json.trim()).expect("one json document");
    v["digest"].as_str().expect("a digest").to_owned()
}

/// Whether this machine has an IPv6 loopback (`ip -6 addr show lo` lists `::1`).
fn has_ipv6_loopback() -> bool {
    std::net::TcpListener::bind("[::1]:0").is_ok()
}

fn seed(server: &Server) {
    let mut conn = server.conn();
    for i in 0..300 {
        redis::cmd("SET")
            .arg(format!("k{i}"))
            .arg(format!("v{i}"))
            .exec(&mut conn)
            .unwrap();
        redis::cmd("RPUSH")
            .arg(format!("l{i}"))
            .arg(i)
            .arg("x")
            .exec(&mut conn)
            .unwrap();
    }
}

/// One server listening on 127.0.0.1 and `::1`: digest and snapshot through `[::1]` read the
/// same data as through 127.0.0.1 (the digests are equal, the snapshot's too); with the two
/// connections upshift opens of each kind. Over TLS as well, where the IP literal is no SNI
/// name. Without an IPv6 loopback the `[::1]` URL must fail with a plain connection error, not
/// a lookup of the bracketed text.
#[test]
fn an_ipv6_literal_host_reads_the_same_data_as_ipv4() {
    if !has_ipv6_loopback() {
        let (code, _, stderr) = upshift(&["digest", "-q", "--url", "redis://[::1]:1"]);
        assert_eq!(code, 4, "{stderr}");
        assert!(
            stderr.contains("cannot connect to redis at [::1]:1"),
            "{stderr}"
        );
        assert!(!stderr.contains("lookup address"), "{stderr}");
        return;
    }
    let server = Server::builder()
        .args(&["--bind", "127.0.0.1", "::1"])
        .start();
    seed(&server);
    let port = server.port.to_string();
    let v4 = format!("redis://127.0.0.1:{port}");
    let v6 = format!("redis://[::1]:{port}");
    let digest = |url: &str| {
        let (code, stdout, stderr) = upshift(&["digest", "-q", "--json", "--url", url]);
        assert_eq!(code, 0, "{url}: {stdout}{stderr}");
        digest_of(&stdout)
    };
    let expected = digest(&v4);
    assert_eq!(digest(&v6), expected);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("v6.ups");
    let (code, stdout, stderr) = upshift(&[
        "snapshot",
        "-q",
        "--json",
        "--url",
        &v6,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(digest_of(&stdout), expected);
    // And the snapshot taken over IPv6 holds what the IPv4 side reads.
    let (code, stdout, stderr) = upshift(&[
        "diff",
        "-q",
        "--url",
        &v4,
        "--against",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");

    let material = tls_material();
    let tls = Server::builder()
        .tls(material.path())
        .args(&["--bind", "127.0.0.1", "::1"])
        .start();
    let cli = |args: &[&str]| tls.cli(Some(material.path()), args);
    cli(&["SET", "k1", "v1"]);
    cli(&["RPUSH", "l1", "a", "b"]);
    let tls_digest = |url: &str| {
        let (code, stdout, stderr) = upshift(&["digest", "-q", "--json", "--url", url]);
        assert_eq!(code, 0, "{url}: {stdout}{stderr}");
        digest_of(&stdout)
    };
    assert_eq!(
        tls_digest(&format!("rediss://[::1]:{}", tls.port)),
        tls_digest(&format!("rediss://127.0.0.1:{}", tls.port))
    );
}

/// A real Redis at its `maxclients` (2, upshift opening 4): the error says the connection
/// limit is full and names `--max-connections`, not "check the url, the password and the
/// network"; with `--max-connections 2` the same digest succeeds.
#[test]
fn a_full_connection_limit_is_named_with_the_flag_that_opens_fewer() {
    let server = Server::start();
    seed(&server);
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxclients")
        .arg("2")
        .exec(&mut server.conn())
        .unwrap();
    // The setting connection is closed: the server counts no client now.
    std::thread::sleep(std::time::Duration::from_millis(100));
    let url = server.url();
    for _ in 0..3 {
        let (code, stdout, stderr) = upshift(&["digest", "-q", "--url", &url]);
        assert_eq!(code, 4, "{stdout}{stderr}");
        assert!(stderr.contains("--max-connections"), "{stderr}");
        assert!(
            !stderr.contains("check the url, the password and the network"),
            "{stderr}"
        );
    }
    let (code, stdout, stderr) =
        upshift(&["digest", "-q", "--max-connections", "2", "--url", &url]);
    assert_eq!(code, 0, "{stdout}{stderr}");
}

/// A TCP forwarder in front of `port`: the first connection is passed through, every later
/// one is accepted and never answered (a proxy or server limiting connections per client).
fn forward_first_stall_others(port: u16) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let front = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for (i, stream) in listener.incoming().enumerate() {
            let Ok(client) = stream else { return };
            if i > 0 {
                held.push(client);
                continue;
            }
            let server = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            let (mut c1, mut s1) = (client, server);
            std::thread::spawn(move || std::io::copy(&mut c1, &mut s1));
            std::thread::spawn(move || std::io::copy(&mut s2, &mut c2));
        }
    });
    front
}

/// One connection works and the next is accepted but never answered: the session fails
/// within its connect timeout (not the two-minute response timeout meant for big replies),
/// and the error says another connection opened and names `--max-connections`, not the url,
/// the password or the network.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_second_connection_is_named_as_a_connection_limit_in_seconds() {
    let server = Server::start();
    seed(&server);
    let front = forward_first_stall_others(server.port);
    let url: upshift::verify::RedisUrl = format!("redis://127.0.0.1:{front}").parse().unwrap();
    let opts = upshift::verify::VerifyOptions {
        max_connections: 2,
        connect_timeout: std::time::Duration::from_secs(1),
        ..Default::default()
    };
    let started = std::time::Instant::now();
    let err = upshift::verify::digest(&url, &opts, &upshift::verify::NoProgress)
        .await
        .expect_err("the second connection never answers");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "failed after {:?}",
        started.elapsed()
    );
    let text = err.to_string();
    assert!(
        text.contains("another connection to the same url opened")
            && text.contains("--max-connections"),
        "{text}"
    );
}
