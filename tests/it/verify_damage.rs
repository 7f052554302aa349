//! Data damaged in transit: a proxy between upshift and a real redis-server rewrites a marker
//! in every reply, so each DUMP payload of the marked key fails its CRC64 on every read (the
//! decoder's and the fallback's). A snapshot must stop rather than store bytes that no RESTORE
//! accepts (it used to exit 0 with them in the file, found by the third hostile pass).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;

use crate::verify_support::Server;

const MARK: &[u8] = b"DAMAGE-ME";
const FLIPPED: &[u8] = b"DAMAGE-MF";

/// Listens on a free loopback port and forwards each connection to `port`, with every
/// [`MARK`] in the server's replies turned into [`FLIPPED`] (same length: the RESP framing
/// stays valid, only the payload's bytes change).
fn damaging_proxy(port: u16) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let proxy_port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { return };
            let Ok(server) = TcpStream::connect(("127.0.0.1", port)) else {
                return;
            };
            let (mut from_client, mut to_server) = (
                client.try_clone().expect("clone"),
                server.try_clone().expect("clone"),
            );
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut from_client, &mut to_server);
            });
            let (mut from_server, mut to_client) = (server, client);
            std::thread::spawn(move || {
                let mut buf = vec![0_u8; 64 << 10];
                loop {
                    let n = match from_server.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    let chunk = &mut buf[..n];
                    let mut i = 0;
                    while i + MARK.len() <= chunk.len() {
                        if &chunk[i..i + MARK.len()] == MARK {
                            chunk[i..i + MARK.len()].copy_from_slice(FLIPPED);
                        }
                        i += 1;
                    }
                    if to_client.write_all(chunk).is_err() {
                        return;
                    }
                }
            });
        }
    });
    proxy_port
}

#[test]
fn a_payload_damaged_on_every_read_stops_the_snapshot_and_leaves_no_file() {
    let server = Server::builder().start();
    let mut c = server.conn();
    for i in 0..50 {
        redis::cmd("SET")
            .arg(format!("k{i}"))
            .arg(format!("v{i}"))
            .exec(&mut c)
            .unwrap();
    }
    redis::cmd("SET")
        .arg("marked")
        .arg(MARK)
        .exec(&mut c)
        .unwrap();
    let port = damaging_proxy(server.port);
    let dir = tempfile::tempdir().unwrap();
    let snapshot = |url: &str, name: &str| {
        Command::new(env!("CARGO_BIN_EXE_upshift"))
            .args(["snapshot", "--url", url, "--out"])
            .arg(dir.path().join(name))
            .env_remove("REDIS_URL")
            .output()
            .unwrap()
    };

    let out = snapshot(&format!("redis://127.0.0.1:{port}"), "damaged.snap");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("CRC64") && stderr.contains("\"marked\""),
        "the error names the key and the check: {stderr}"
    );
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "no snapshot and no partial file: {left:?}");

    // The proxy was the cause: straight from the server the same data snapshots.
    let out = snapshot(&server.url(), "direct.snap");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("direct.snap").is_file());
}
