//! Throwaway `redis-server` processes for the verifier's tests: a free loopback port, no
//! persistence, killed on drop. A missing `redis-server` fails the test loudly; it never skips.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running redis-server.
pub struct Server {
    child: Child,
    pub port: u16,
    pub tls: bool,
    pub password: Option<String>,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    // Bind port 0 to let the OS choose, then release it for redis-server to take.
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

/// Builds a server.
#[derive(Default)]
pub struct ServerBuilder {
    password: Option<String>,
    tls: Option<PathBuf>,
    extra: Vec<String>,
}

impl ServerBuilder {
    pub fn password(mut self, p: &str) -> Self {
        self.password = Some(p.to_owned());
        self
    }

    /// Extra `redis-server` arguments (`--enable-debug-command yes`, say).
    pub fn args(mut self, args: &[&str]) -> Self {
        self.extra.extend(args.iter().map(|a| (*a).to_owned()));
        self
    }

    /// TLS only (no plain port), with a self-signed certificate from `tls_material`.
    pub fn tls(mut self, material_dir: &Path) -> Self {
        self.tls = Some(material_dir.to_path_buf());
        self
    }

    pub fn start(self) -> Server {
        let bin = which("redis-server")
            .unwrap_or_else(|| panic!("redis-server not found: run scripts/ensure-deps"));
        for _attempt in 0..5 {
            let dir = tempfile::tempdir().expect("temp dir");
            let port = free_port();
            let mut cmd = Command::new(&bin);
            cmd.arg("--bind").arg("127.0.0.1");
            if let Some(tls) = &self.tls {
                cmd.args(["--port", "0", "--tls-port", &port.to_string()])
                    .arg("--tls-cert-file")
                    .arg(tls.join("cert.pem"))
                    .arg("--tls-key-file")
                    .arg(tls.join("key.pem"))
                    .arg("--tls-ca-cert-file")
                    .arg(tls.join("cert.pem"))
                    .args(["--tls-auth-clients", "no"]);
            } else {
                cmd.args(["--port", &port.to_string()]);
            }
            cmd.args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
                .arg("--dir")
                .arg(dir.path());
            if let Some(p) = &self.password {
                cmd.args(["--requirepass", p]);
            }
            cmd.args(&self.extra);
            let child = cmd
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn redis-server");
            let mut server = Server {
                child,
                port,
                tls: self.tls.is_some(),
                password: self.password.clone(),
                _dir: dir,
            };
            if server.wait_ready() {
                return server;
            }
            // The port was taken between the probe and the start: drop and try another.
        }
        panic!("redis-server did not start on a free port after 5 attempts");
    }
}

impl Server {
    pub fn start() -> Self {
        ServerBuilder::default().start()
    }

    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    /// The server's process id (to stop and continue it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The URL (with the password, if any).
    pub fn url(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        match &self.password {
            Some(p) => format!("{scheme}://:{p}@127.0.0.1:{}", self.port),
            None => format!("{scheme}://127.0.0.1:{}", self.port),
        }
    }

    pub fn parsed_url(&self) -> upshift::verify::RedisUrl {
        self.url().parse().expect("valid url")
    }

    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false; // exited: the port was taken
            }
            if self.tls {
                if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                    std::thread::sleep(Duration::from_millis(50));
                    return true;
                }
            } else if let Ok(mut c) = self.try_conn()
                && redis::cmd("PING").query::<String>(&mut c).is_ok()
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    fn try_conn(&self) -> redis::RedisResult<redis::Connection> {
        assert!(!self.tls, "sync test connections are plain TCP");
        redis::Client::open(self.url())?.get_connection()
    }

    /// A synchronous connection for setting data up.
    pub fn conn(&self) -> redis::Connection {
        self.try_conn().expect("connect to the test server")
    }

    /// Runs one command through redis-cli (works for TLS servers too).
    pub fn cli(&self, tls_dir: Option<&Path>, args: &[&str]) -> String {
        let mut cmd = Command::new("redis-cli");
        cmd.args(["-h", "127.0.0.1", "-p", &self.port.to_string()]);
        if let Some(d) = tls_dir {
            cmd.arg("--tls").arg("--cacert").arg(d.join("cert.pem"));
        }
        if let Some(p) = &self.password {
            cmd.args(["-a", p, "--no-auth-warning"]);
        }
        let out = cmd.args(args).output().expect("run redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

/// A self-signed certificate and key in a fresh directory, made in-process with rcgen (no
/// `openssl` binary needed: a fresh Debian box with only `redis-server` installed runs this).
pub fn tls_material() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let made =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("rcgen makes a certificate");
    std::fs::write(dir.path().join("cert.pem"), made.cert.pem()).expect("write cert.pem");
    std::fs::write(dir.path().join("key.pem"), made.signing_key.serialize_pem())
        .expect("write key.pem");
    dir
}

/// Verifier options for tests: small windows so big-key paths run on modest data.
pub fn opts() -> upshift::verify::VerifyOptions {
    upshift::verify::VerifyOptions {
        max_connections: 2,
        ..Default::default()
    }
}
