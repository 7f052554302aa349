//! Real `redis-server` processes, one per heroku-redis add-on (two during a plan change).
//!
//! Every child is spawned from ONE long-lived thread (the spawner) as
//! `setpriv --pdeathsig KILL -- redis-server …`: the kernel's parent-death signal fires when the
//! thread that forked the child exits, so forking from short-lived runtime threads would kill
//! servers at random, and forking from a thread that lives as long as the process makes the
//! kernel kill every server when the simulator dies, even by SIGKILL. Where `setpriv` is
//! missing, children are plain processes killed when their [`RedisServer`] is dropped.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;

use crate::SimError;
use crate::timeline::lock;
use heroku_model::plans::Plan;

/// Extra client slots beyond the plan's: held by the platform's own control connection (named
/// `heroku-platform` in `CLIENT LIST`), released to the replication link during a plan change,
/// so apps get exactly the plan's `maxclients`.
pub const PLATFORM_SLOTS: u32 = 1;

/// The client name of the platform's control connection.
pub const PLATFORM_CLIENT: &str = "heroku-platform";

/// How long a new server may take to answer PING.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

struct SpawnRequest {
    command: Command,
    reply: tokio::sync::oneshot::Sender<std::io::Result<Child>>,
}

/// The spawner thread's inbox, started on first use; the thread lives as long as the process.
fn spawner() -> mpsc::Sender<SpawnRequest> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let tx = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        // If the thread cannot start, the receiver is dropped and every send fails with
        // SpawnerGone, which names the problem.
        let _ = std::thread::Builder::new()
            .name("upshift-sim-spawner".into())
            .spawn(move || {
                for mut req in rx {
                    let _ = req.reply.send(req.command.spawn());
                }
            });
        Mutex::new(tx)
    });
    lock(tx).clone()
}

/// Finds an executable in `PATH` (and the usual system directories).
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/bin", "/usr/local/bin", "/bin", "/usr/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The redis-server binary, or the error telling the user how to install it.
///
/// # Errors
/// [`SimError::RedisServerMissing`].
pub fn redis_server_path() -> Result<PathBuf, SimError> {
    which("redis-server").ok_or(SimError::RedisServerMissing)
}

/// The file naming the process that owns a simulator directory.
const OWNER_FILE: &str = "owner.pid";

/// A temporary directory marked with this process's id, so that a later simulator can remove
/// it if this one dies without cleaning up (SIGKILL).
pub(crate) fn owned_tempdir(prefix: &str) -> Result<tempfile::TempDir, SimError> {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .map_err(|source| SimError::TempDir { source })?;
    std::fs::write(dir.path().join(OWNER_FILE), std::process::id().to_string())
        .map_err(|source| SimError::TempDir { source })?;
    Ok(dir)
}

/// Removes simulator directories whose owning process is gone (left by a killed simulator).
/// Runs once per process; errors are ignored (another simulator may be sweeping too).
pub fn sweep_stale_dirs() {
    static SWEPT: OnceLock<()> = OnceLock::new();
    SWEPT.get_or_init(|| {
        let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if !(name.starts_with("upshift-sim-redis-") || name.starts_with("upshift-sim-tls-")) {
                continue;
            }
            let owner = std::fs::read_to_string(entry.path().join(OWNER_FILE))
                .ok()
                .and_then(|p| p.trim().parse::<u32>().ok());
            if let Some(pid) = owner
                && !Path::new(&format!("/proc/{pid}")).exists()
            {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    });
}

/// A free loopback port (bound, read, released).
fn free_port() -> std::io::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// What a new server is started with.
#[derive(Debug, Clone)]
pub struct ServerSpec {
    /// Add-on name (for errors and the timeline).
    pub addon: String,
    pub plan: Plan,
    pub maxmemory_policy: String,
    pub timeout: u64,
    pub notify_keyspace_events: String,
    /// Serve TLS only (`rediss://`, self-signed), as Heroku's plans do.
    pub tls: bool,
    /// Refuse `CONFIG`, `CLIENT`, `DEBUG`, `MONITOR` and `OBJECT` to everyone but the
    /// simulator (the `strict` behaviour profile).
    pub restricted: bool,
}

/// Commands a `strict` server refuses outright (renamed to nothing).
const REFUSED: &[&str] = &["DEBUG", "MONITOR", "OBJECT"];

/// One running redis-server child. The password never appears in `Debug` output.
pub struct RedisServer {
    addon: String,
    plan: Plan,
    /// The port and password change once at most: a plan change under the `keep_url` knob
    /// puts this (new) server behind the old server's URL (see [`crate::provision`]).
    port: AtomicU16,
    password: Mutex<String>,
    pid: u32,
    tls: bool,
    /// The names `CONFIG` and `CLIENT` answer to on this server: themselves, or secret ones
    /// only the simulator knows (`strict` profile: the app and upshift are refused).
    config_name: String,
    client_name: String,
    child: Mutex<Option<Child>>,
    control: tokio::sync::Mutex<Option<MultiplexedConnection>>,
    /// The HA standby replicating from this server (see [`crate::standby`]); stopped with it.
    standby: Mutex<Option<Box<RedisServer>>>,
    dir: tempfile::TempDir,
}

impl fmt::Debug for RedisServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisServer")
            .field("addon", &self.addon)
            .field("plan", &self.plan.name)
            .field("port", &self.port())
            .field("pid", &self.pid)
            .field("password", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl RedisServer {
    /// Starts a server with the plan's `maxmemory` and `maxclients` and waits until it answers.
    ///
    /// # Errors
    /// redis-server missing, the spawn failing, or the server not answering in time.
    pub async fn start(spec: &ServerSpec) -> Result<Self, SimError> {
        let binary = redis_server_path()?;
        let mut last = None;
        // A port picked as free can be taken before redis binds it: try a few.
        for _ in 0..3 {
            match Self::start_once(spec, &binary).await {
                Ok(s) => return Ok(s),
                Err(e @ SimError::RedisNotReady { .. }) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or(SimError::SpawnerGone))
    }

    async fn start_once(spec: &ServerSpec, binary: &Path) -> Result<Self, SimError> {
        let dir = owned_tempdir("upshift-sim-redis-")?;
        let port = free_port().map_err(|source| SimError::SpawnRedis {
            addon: spec.addon.clone(),
            source,
        })?;
        let password = uuid::Uuid::new_v4().simple().to_string();
        let tls = if spec.tls {
            Some(crate::tls::files(&spec.addon).await?)
        } else {
            None
        };
        let (config_name, client_name) = if spec.restricted {
            let secret = uuid::Uuid::new_v4().simple().to_string();
            (format!("CONFIG-{secret}"), format!("CLIENT-{secret}"))
        } else {
            ("CONFIG".to_owned(), "CLIENT".to_owned())
        };
        let mut args = server_args(spec, port, &password, dir.path(), tls);
        if spec.restricted {
            for (command, name) in [("CONFIG", &config_name), ("CLIENT", &client_name)] {
                args.extend(["--rename-command".into(), command.into(), name.clone()]);
            }
            for command in REFUSED {
                args.extend(["--rename-command".into(), (*command).into(), String::new()]);
            }
        }
        let mut command = match which("setpriv") {
            Some(setpriv) => {
                let mut c = Command::new(setpriv);
                c.args(["--pdeathsig", "KILL", "--"]).arg(binary);
                c
            }
            None => Command::new(binary),
        };
        // Its own process group: a Ctrl-C typed at the terminal (the wizard's "roll back or
        // resume?" question in `upshift demo --wizard`) reaches upshift only, not the servers
        // the simulated add-ons live in. `--pdeathsig` still ends them with the simulator.
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        command
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let (reply, rx) = tokio::sync::oneshot::channel();
        spawner()
            .send(SpawnRequest { command, reply })
            .map_err(|_| SimError::SpawnerGone)?;
        let child = rx
            .await
            .map_err(|_| SimError::SpawnerGone)?
            .map_err(|source| SimError::SpawnRedis {
                addon: spec.addon.clone(),
                source,
            })?;
        let server = Self {
            addon: spec.addon.clone(),
            plan: spec.plan,
            port: AtomicU16::new(port),
            password: Mutex::new(password),
            pid: child.id(),
            tls: spec.tls,
            config_name,
            client_name,
            child: Mutex::new(Some(child)),
            control: tokio::sync::Mutex::new(None),
            standby: Mutex::new(None),
            dir,
        };
        server.wait_ready().await?;
        server
            .control()
            .await
            .map_err(|e| SimError::RedisNotReady {
                addon: server.addon.clone(),
                port,
                waited_ms: 0,
                detail: format!("control connection: {e}"),
            })?;
        Ok(server)
    }

    async fn wait_ready(&self) -> Result<(), SimError> {
        let started = Instant::now();
        let mut detail = String::from("no answer");
        while started.elapsed() < READY_TIMEOUT {
            if let Some(status) = lock(&self.child)
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                detail = format!("redis-server exited ({status}): {}", self.log_tail());
                break;
            }
            match self.connect().await {
                Ok(mut con) => match redis::cmd("PING").query_async::<String>(&mut con).await {
                    Ok(_) => return Ok(()),
                    Err(e) => detail = e.to_string(),
                },
                Err(e) => detail = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.stop();
        Err(SimError::RedisNotReady {
            addon: self.addon.clone(),
            port: self.port(),
            waited_ms: started.elapsed().as_millis(),
            detail,
        })
    }

    fn log_tail(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(self.dir.path().join("redis.log")) {
            let _ = f.read_to_string(&mut text);
        }
        let lines: Vec<&str> = text.lines().rev().take(3).collect();
        lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
    }

    /// The plan whose limits this server runs with.
    pub fn plan(&self) -> Plan {
        self.plan
    }

    /// Whether the server speaks TLS only.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The name `CONFIG` answers to on this server (a secret one under the `strict` profile).
    pub(crate) fn config_name(&self) -> &str {
        &self.config_name
    }

    /// A `CONFIG` command under the name this server answers to.
    pub(crate) fn config_cmd(&self) -> redis::Cmd {
        redis::cmd(&self.config_name)
    }

    /// The loopback port.
    pub fn port(&self) -> u16 {
        self.port.load(Ordering::SeqCst)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The password (a secret: for URLs and `masterauth` only).
    pub(crate) fn password(&self) -> String {
        lock(&self.password).clone()
    }

    /// The URL an app gets in its config var, like Heroku's `redis://:<password>@host:port`
    /// (`rediss://` for a TLS server; its certificate is self-signed, as on Heroku).
    pub fn url(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        format!("{scheme}://:{}@127.0.0.1:{}", self.password(), self.port())
    }

    /// Takes `password` as this server's own (`requirepass`): connections already open stay
    /// authenticated, new ones need it. The standby's `masterauth` follows, so that its link,
    /// if it drops, comes back. The first half of [`RedisServer::take_over`].
    ///
    /// # Errors
    /// The Redis error of the control connection.
    pub(crate) async fn adopt_password(&self, password: &str) -> redis::RedisResult<()> {
        let mut con = self.control().await?;
        self.config_cmd()
            .arg("SET")
            .arg("requirepass")
            .arg(password)
            .query_async::<()>(&mut con)
            .await?;
        password.clone_into(&mut lock(&self.password));
        if let Some((config, url)) = self.standby_access() {
            let mut con = connect_url(&url).await?;
            redis::cmd(&config)
                .arg("SET")
                .arg("masterauth")
                .arg(password)
                .query_async::<()>(&mut con)
                .await?;
        }
        Ok(())
    }

    /// The standby's `CONFIG` name and URL, to reach it without holding the lock.
    fn standby_access(&self) -> Option<(String, String)> {
        lock(&self.standby)
            .as_ref()
            .map(|s| (s.config_name.clone(), s.url()))
    }

    /// Moves this server's listener to `port` (`tls-port` for a TLS server, which keeps
    /// `port 0`), as a switchover behind one host would: connections already open survive,
    /// new ones reach this server at the port. The standby re-points its `REPLICAOF` there.
    /// The port must be free: the caller stopped its previous holder (the old server) just
    /// before. The second half of a take-over.
    ///
    /// # Errors
    /// The Redis error (the port taken meanwhile: `CONFIG SET` fails and nothing changed).
    pub(crate) async fn rebind(&self, port: u16) -> redis::RedisResult<()> {
        let mut con = self.control().await?;
        self.config_cmd()
            .arg("SET")
            .arg(if self.tls { "tls-port" } else { "port" })
            .arg(port)
            .query_async::<()>(&mut con)
            .await?;
        self.port.store(port, Ordering::SeqCst);
        if let Some((_, url)) = self.standby_access() {
            let mut con = connect_url(&url).await?;
            redis::cmd("REPLICAOF")
                .arg("127.0.0.1")
                .arg(port)
                .query_async::<()>(&mut con)
                .await?;
        }
        Ok(())
    }

    /// A new connection (its own TCP connection).
    ///
    /// # Errors
    /// The Redis error (refused, auth, max clients).
    pub async fn connect(&self) -> redis::RedisResult<MultiplexedConnection> {
        connect_url(&self.url()).await
    }

    /// The platform's control connection (opened on first use, then kept; clones share it).
    ///
    /// # Errors
    /// The Redis error when it has to be opened and cannot be.
    pub async fn control(&self) -> redis::RedisResult<MultiplexedConnection> {
        let mut slot = self.control.lock().await;
        if let Some(con) = slot.as_ref() {
            return Ok(con.clone());
        }
        let mut con = self.connect().await?;
        redis::cmd(&self.client_name)
            .arg("SETNAME")
            .arg(PLATFORM_CLIENT)
            .query_async::<()>(&mut con)
            .await?;
        *slot = Some(con.clone());
        Ok(con)
    }

    /// The platform's monitoring: PING and INFO on the control connection, as Heroku's own
    /// connections do every few seconds (they show in `CLIENT LIST` idle 0-1 s, last command
    /// `info`). Never opens the connection: a slot released to a replication link stays free.
    pub async fn monitor_tick(&self) {
        let con = self.control.lock().await.clone();
        if let Some(mut con) = con {
            let _ = redis::pipe()
                .cmd("PING")
                .ignore()
                .cmd("INFO")
                .arg("stats")
                .ignore()
                .query_async::<()>(&mut con)
                .await;
        }
    }

    /// Closes the control connection, freeing its slot (for a replica's link).
    pub async fn release_control(&self) {
        self.control.lock().await.take();
    }

    /// Whether the process is still running.
    pub fn is_running(&self) -> bool {
        lock(&self.child)
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Gives this server its standby: from now on they stop together.
    pub(crate) fn set_standby(&self, standby: RedisServer) {
        let old = lock(&self.standby).replace(Box::new(standby));
        if let Some(old) = old {
            old.stop();
        }
    }

    /// The standby's `(pid, port, running)`, if this server has one.
    pub fn standby(&self) -> Option<(u32, u16, bool)> {
        lock(&self.standby)
            .as_ref()
            .map(|s| (s.pid(), s.port(), s.is_running()))
    }

    /// Kills the process (SIGKILL: no data is kept anyway) and reaps it, and its standby.
    /// Idempotent.
    pub fn stop(&self) {
        let standby = lock(&self.standby).take();
        if let Some(standby) = standby {
            standby.stop();
        }
        if let Some(mut child) = lock(&self.child).take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The command line of a server: the plan's limits, no persistence, loopback only.
fn server_args(
    spec: &ServerSpec,
    port: u16,
    password: &str,
    dir: &Path,
    tls: Option<crate::tls::Files>,
) -> Vec<String> {
    let log = dir.join("redis.log");
    // TLS only (`port 0`), as Heroku's plans: "All Key-Value Store plans require TLS
    // connections" (https://devcenter.heroku.com/articles/heroku-redis-version-upgrade).
    let mut args: Vec<String> = if let Some(files) = tls {
        let [ca, cert, key] = [files.ca, files.cert, files.key].map(|p| p.display().to_string());
        vec![
            "--port".into(),
            "0".into(),
            "--tls-port".into(),
            port.to_string(),
            "--tls-cert-file".into(),
            cert.clone(),
            "--tls-key-file".into(),
            key,
            "--tls-ca-cert-file".into(),
            ca,
            "--tls-auth-clients".into(),
            "no".into(),
            "--tls-replication".into(),
            "yes".into(),
        ]
    } else {
        vec!["--port".into(), port.to_string()]
    };
    args.extend::<Vec<String>>(vec![
        "--bind".into(),
        "127.0.0.1".into(),
        "--save".into(),
        String::new(),
        "--appendonly".into(),
        "no".into(),
        "--requirepass".into(),
        password.to_owned(),
        "--masterauth".into(),
        password.to_owned(),
        "--maxmemory".into(),
        spec.plan.memory_bytes.to_string(),
        "--maxclients".into(),
        (spec.plan.max_clients + PLATFORM_SLOTS).to_string(),
        "--maxmemory-policy".into(),
        spec.maxmemory_policy.clone(),
        "--timeout".into(),
        spec.timeout.to_string(),
        "--notify-keyspace-events".into(),
        spec.notify_keyspace_events.clone(),
        // Replicas sync at once (the default waits 5 s for more replicas to join).
        "--repl-diskless-sync-delay".into(),
        "0".into(),
        "--daemonize".into(),
        "no".into(),
        "--dir".into(),
        dir.display().to_string(),
        "--logfile".into(),
        log.display().to_string(),
    ]);
    args
}

/// Opens one connection to a Redis URL with short timeouts.
///
/// # Errors
/// The Redis error.
pub async fn connect_url(url: &str) -> redis::RedisResult<MultiplexedConnection> {
    // Heroku's certificates are self-signed: clients do not verify them.
    let url = if url.starts_with("rediss://") && !url.contains('#') {
        format!("{url}#insecure")
    } else {
        url.to_owned()
    };
    let client = redis::Client::open(url.as_str())?;
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(5)));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
}

/// Turns a failed connection into the server's own words: a server at its `maxclients`
/// answers `-ERR max number of clients reached` and closes, which a client that writes first
/// only sees as a reset. A raw connection reads the greeting line.
pub async fn explain_refusal(url: &str, error: &redis::RedisError) -> String {
    let port = url::Url::parse(url).ok().and_then(|u| u.port());
    if let Some(port) = port
        && (error.is_io_error() || error.is_connection_dropped())
        && let Ok(Ok(mut stream)) = tokio::time::timeout(
            Duration::from_millis(300),
            tokio::net::TcpStream::connect(("127.0.0.1", port)),
        )
        .await
    {
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 128];
        if let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(300), stream.read(&mut buf)).await
            && let Some(line) = std::str::from_utf8(&buf[..n])
                .ok()
                .and_then(|t| t.strip_prefix('-'))
        {
            return line.trim().to_owned();
        }
    }
    // A TLS server at its limit drops the client during the handshake (measured with redis 7:
    // no error line reaches a TLS client). A Node app, as Enketo is, logs it in these words.
    if url.starts_with("rediss://") && (error.is_io_error() || error.is_connection_dropped()) {
        return TLS_DROPPED.to_owned();
    }
    error.to_string()
}

/// Node's error for a socket closed before its TLS handshake finished, as an app logs it when
/// a TLS Redis at its connection limit drops it.
pub const TLS_DROPPED: &str =
    "Client network socket disconnected before secure TLS connection was established";
