//! Connections and server facts: connecting (TLS, name), INFO and CLIENT LIST parsing.
//!
//! Parsing is pure (`ServerInfo::parse`, `ClientInfo::parse_list`); the rest is thin I/O.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::aio::MultiplexedConnection;
use serde::Serialize;

use crate::verify::error::VerifyError;
use crate::verify::url::RedisUrl;
use crate::verify::wire::{self, Wire};
use crate::verify::{ValueSource, VerifyOptions};

/// Every connection upshift opens carries a client name starting with this, so CLIENT LIST can
/// tell our connections from the app's (see [`ClientInfo::is_upshift`]).
pub const CLIENT_NAME_PREFIX: &str = "upshift-";

/// Key counts of one database (INFO keyspace).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct KeyspaceCounts {
    /// Keys.
    pub keys: u64,
    /// Keys with a TTL.
    pub expires: u64,
}

/// What INFO says about a server.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ServerInfo {
    /// `redis_version` (Valkey reports a Redis-compatible one too).
    pub redis_version: String,
    /// `role`: `master` or `slave`.
    pub role: String,
    /// `run_id`: random per server process; a different one means a different server.
    pub run_id: String,
    /// `used_memory`, bytes.
    pub used_memory: u64,
    /// `maxmemory`, bytes (0 = no limit).
    pub maxmemory: u64,
    /// `connected_clients`.
    pub connected_clients: u64,
    /// `rdb_changes_since_last_save`: a write counter, back to 0 at every save, so it proves
    /// nothing alone across time (the write checks use `verify::writemark`).
    pub changes_since_save: u64,
    /// `maxclients`, when INFO shows it (Redis >= 7.0).
    pub maxclients: Option<u64>,
    /// `expired_keys` since start (INFO stats).
    pub expired_keys: u64,
    /// `evicted_keys` since start (INFO stats).
    pub evicted_keys: u64,
    /// Per database (`db0` -> 0).
    pub keyspace: BTreeMap<u32, KeyspaceCounts>,
}

impl ServerInfo {
    /// Parses the text of `INFO` (unknown fields ignored, missing ones left at zero).
    pub fn parse(text: &str) -> Self {
        let mut info = Self::default();
        for line in text.lines() {
            let Some((name, value)) = line.trim_end().split_once(':') else {
                continue;
            };
            let num = || value.parse::<u64>().unwrap_or(0);
            match name {
                "redis_version" => value.clone_into(&mut info.redis_version),
                "role" => value.clone_into(&mut info.role),
                "used_memory" => info.used_memory = num(),
                "maxmemory" => info.maxmemory = num(),
                "connected_clients" => info.connected_clients = num(),
                "rdb_changes_since_last_save" => info.changes_since_save = num(),
                "run_id" => value.clone_into(&mut info.run_id),
                "maxclients" => info.maxclients = value.parse().ok(),
                "expired_keys" => info.expired_keys = num(),
                "evicted_keys" => info.evicted_keys = num(),
                db if db.starts_with("db") => {
                    if let Ok(n) = db[2..].parse::<u32>() {
                        let mut counts = KeyspaceCounts::default();
                        for part in value.split(',') {
                            match part.split_once('=') {
                                Some(("keys", v)) => counts.keys = v.parse().unwrap_or(0),
                                Some(("expires", v)) => counts.expires = v.parse().unwrap_or(0),
                                _ => {}
                            }
                        }
                        info.keyspace.insert(n, counts);
                    }
                }
                _ => {}
            }
        }
        info
    }

    /// `(major, minor, patch)` of `redis_version`; zeros where unreadable.
    pub fn version(&self) -> (u32, u32, u32) {
        let mut parts = self
            .redis_version
            .split('.')
            .map(|p| p.parse::<u32>().unwrap_or(0));
        (
            parts.next().unwrap_or(0),
            parts.next().unwrap_or(0),
            parts.next().unwrap_or(0),
        )
    }

    /// Whether the server is a primary (INFO says `role:master`), so it takes writes.
    pub fn is_primary(&self) -> bool {
        self.role == "master"
    }

    /// Whether PEXPIRETIME exists (Redis >= 7.0): exact absolute expiries.
    pub fn has_pexpiretime(&self) -> bool {
        self.version() >= (7, 0, 0)
    }
}

/// One line of CLIENT LIST.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ClientInfo {
    /// `id`.
    pub id: u64,
    /// `addr` (ip:port of the client).
    pub addr: String,
    /// `name` (empty when unset).
    pub name: String,
    /// `age`, seconds connected.
    pub age_secs: u64,
    /// `idle`, seconds since the last command.
    pub idle_secs: u64,
    /// `cmd`, the last command.
    pub cmd: String,
    /// `flags` (`S`: a replica's link, `M`: the link to our primary, `N`: a plain client).
    pub flags: String,
}

/// Commands of monitoring, administration and replication links: they never change data. A
/// client whose last command is one of these is the platform watching, not an app. Reads are
/// not on the list on purpose: an app that reads now may write next.
const PLATFORM_COMMANDS: &[&str] = &[
    "ping",
    "info",
    "echo",
    "time",
    "hello",
    "auth",
    "client",
    "command",
    "config",
    "select",
    "dbsize",
    "memory",
    "latency",
    "slowlog",
    "replconf",
    "psync",
    "sync",
    "subscribe",
    "psubscribe",
    "unsubscribe",
    "punsubscribe",
    "quit",
    "reset",
    "NULL",
];

impl ClientInfo {
    /// Parses the text of CLIENT LIST, one client per line.
    pub fn parse_list(text: &str) -> Vec<Self> {
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|line| {
                let mut c = Self::default();
                for part in line.split(' ') {
                    let Some((k, v)) = part.split_once('=') else {
                        continue;
                    };
                    match k {
                        "id" => c.id = v.parse().unwrap_or(0),
                        "addr" => v.clone_into(&mut c.addr),
                        "name" => v.clone_into(&mut c.name),
                        "age" => c.age_secs = v.parse().unwrap_or(0),
                        "idle" => c.idle_secs = v.parse().unwrap_or(0),
                        "cmd" => v.clone_into(&mut c.cmd),
                        "flags" => v.clone_into(&mut c.flags),
                        _ => {}
                    }
                }
                c
            })
            .collect()
    }

    /// Whether this client could be writing: not a replication link (a replica connected to
    /// its primary shows `flags=S`, last command `replconf`, idle 0-1 s), and its last command
    /// is not a monitoring or admin one (the platform's monitoring sends PING and INFO every
    /// few seconds). Reads and unknown commands count as writes. Drained is decided by what writes, not
    /// by who is connected (issue 11, 2).
    pub fn may_write(&self) -> bool {
        if self.flags.contains('S') || self.flags.contains('M') {
            return false;
        }
        // `cmd` is `info`, or `client|list` for subcommands on Redis 7.
        let command = self.cmd.split('|').next().unwrap_or_default();
        !PLATFORM_COMMANDS
            .iter()
            .any(|h| h.eq_ignore_ascii_case(command))
    }

    /// Whether upshift opened this connection (its name starts with [`CLIENT_NAME_PREFIX`]).
    pub fn is_upshift(&self) -> bool {
        self.name.starts_with(CLIENT_NAME_PREFIX)
    }
}

/// Open connections to one server plus what was learnt when connecting.
///
/// Of the `n` connections a session may open, a DUMP scan (`n` >= 2) takes one multiplexed
/// connection of the `redis` crate for SCAN, INFO, DBSIZE, TIME and the command reader's
/// fallback, and `n - 1` [`Wire`] connections of our own for the DUMP pipelines, which are the
/// bulk of the traffic: the same total as before, counted against the plan's limit. With one
/// connection, or reading with commands, every connection is multiplexed and DUMP pipelines go
/// through the crate.
#[derive(Clone)]
pub(crate) struct Session {
    pub conns: Vec<MultiplexedConnection>,
    /// Our own connections for DUMP pipelines (empty: they go through `conns`). Each is used
    /// by one reader at a time.
    pub wires: Arc<[tokio::sync::Mutex<Wire>]>,
    pub endpoint: String,
    /// The database number (INFO keyspace `dbN`).
    pub db: u32,
    pub info: ServerInfo,
    /// Server clock minus local clock, ms (from TIME), to place PTTLs on the server's clock.
    pub clock_offset_ms: i64,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("connections", &self.conns.len())
            .field("wires", &self.wires.len())
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// Why a plain connection was dropped while connecting, in the server's words if it said any.
///
/// A Redis at its `maxclients` writes `-ERR max number of clients reached` and closes; a client
/// that writes first (AUTH, HELLO) usually sees only "broken pipe". A raw connection that just
/// reads gets the line. Everything else (no answer within 300 ms) leaves the hint empty.
async fn probe_refusal(url: &RedisUrl) -> &'static str {
    use tokio::io::AsyncReadExt;
    const WAIT: std::time::Duration = std::time::Duration::from_millis(300);
    let Ok(Ok(mut stream)) = tokio::time::timeout(
        WAIT,
        tokio::net::TcpStream::connect((url.socket_host(), url.port())),
    )
    .await
    else {
        return "";
    };
    let mut buf = [0u8; 128];
    match tokio::time::timeout(WAIT, stream.read(&mut buf)).await {
        Ok(Ok(n)) if refusal_line_is_full(&buf[..n]) => FULL_HINT,
        _ => "",
    }
}

/// The hint when the server said it is at its connection limit, on any of the connections
/// (the `redis` crate's among them: a real Redis answers its AUTH with the refusal).
pub(crate) const FULL_HINT: &str = " (it answered \"max number of clients reached\": the plan's \
     connection limit is full; stop some dynos, upgrade the plan, or open fewer connections with \
     --max-connections)";

/// The hint when some of a session's connections opened and another did not (refused, closed
/// or silent): the URL, the password and the network are fine, since one connection used
/// them. A connection limit is the likely cause: the plan's, nearly full, or a proxy's per
/// client.
pub(crate) const PARTLY_CONNECTED_HINT: &str = " (another connection to the same url opened: the \
     server's connection limit may be full, or it or a proxy in front of it limits connections \
     per client; open fewer with --max-connections)";

/// Whether a first line from a Redis server is its "max number of clients" refusal. Pure.
fn refusal_line_is_full(line: &[u8]) -> bool {
    String::from_utf8_lossy(line)
        .to_ascii_lowercase()
        .starts_with("-err max number of clients reached")
}

/// Bytes one bulk reply on a [`Wire`] may claim, for `readers` connections reading at once.
///
/// No DUMP payload outgrows the memory holding its value, so twice the server's `used_memory`
/// (at least 64 MiB) bounds an honest reply, and an endless reply from a broken server stops at
/// its header. But `used_memory` is the server's own word: a hostile one claiming 2^64-1 bytes
/// would lift that bound to nothing, and the reply would be buffered until this machine runs
/// out of memory (hostile pass 5). So the bound is also what this machine can hold: half of
/// its available memory shared by the readers (each may hold one reply at a time); 1 GiB per
/// reply when the available memory is unknown (no `/proc/meminfo`), twice the largest string
/// a Redis key holds. 64 MiB is always allowed, so that a small machine still reads ordinary
/// big keys. Pure.
///
/// Not capped here: replies read through the `redis` crate (INFO, SCAN, DBSIZE, TIME, and
/// DUMP or the type commands on the multiplexed connection) are buffered whole by the crate,
/// which has no limit to set.
pub(crate) fn bulk_cap(used_memory: u64, available: Option<u64>, readers: usize) -> usize {
    const FLOOR: u64 = 64 << 20;
    const UNKNOWN_MACHINE: u64 = 1 << 30;
    let server = used_memory.saturating_mul(2);
    let readers = u64::try_from(readers.max(1)).unwrap_or(u64::MAX);
    let machine = available.map_or(UNKNOWN_MACHINE, |a| a / 2 / readers);
    usize::try_from(server.min(machine).max(FLOOR)).unwrap_or(usize::MAX)
}

/// `MemAvailable` of `/proc/meminfo`, bytes; `None` where unreadable.
fn mem_available() -> Option<u64> {
    parse_mem_available(&std::fs::read_to_string("/proc/meminfo").ok()?)
}

/// The `MemAvailable:` line of a `/proc/meminfo` text (in kB there), bytes. Pure.
fn parse_mem_available(meminfo: &str) -> Option<u64> {
    let kb = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse::<u64>()
        .ok()?;
    kb.checked_mul(1024)
}

/// Local Unix time, ms.
pub(crate) fn local_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Session {
    /// Opens `n` named connections (at least one) and reads INFO and the server clock.
    pub async fn open(url: &RedisUrl, opts: &VerifyOptions, n: usize) -> Result<Self, VerifyError> {
        let endpoint = url.endpoint();
        // Heroku's certificates are self-signed: a strict check is the likely culprit.
        let hint = if url.is_tls() && opts.tls_verify {
            " (the certificate is checked because of --tls-verify; heroku-redis certificates are self-signed)"
        } else {
            ""
        };
        let connect_err = |source: redis::RedisError| VerifyError::Connect {
            endpoint: endpoint.clone(),
            // Over TLS a server at its maxclients drops the connection before the handshake,
            // without its `max number of clients reached` (Redis networking.c: "for TLS
            // connections, no handshake was done yet so nothing is written").
            hint: if hint.is_empty() && url.is_tls() && source.is_connection_dropped() {
                " (dropped during the TLS handshake: a Redis at its connection limit does this)"
            } else {
                hint
            },
            source: Box::new(source),
        };
        let client =
            redis::Client::open(url.connection_url(opts.tls_verify)).map_err(connect_err)?;
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(opts.connect_timeout))
            .set_response_timeout(Some(opts.response_timeout));
        let n = n.max(1);
        let multiplexed = if n >= 2 && opts.value_source == ValueSource::Dump {
            1
        } else {
            n
        };
        let name = |i: usize| {
            format!(
                "{CLIENT_NAME_PREFIX}{}-{}-{i}",
                opts.client_role,
                std::process::id()
            )
        };
        let tls = if multiplexed < n {
            wire::tls_config(url, opts.tls_verify).map_err(connect_err)?
        } else {
            None
        };
        // Every connection at once: one after another, n TLS handshakes to a server across
        // the internet cost n times three round trips before the first key is read.
        let multiplexed_opens = (0..multiplexed).map(|i| {
            let (client, config, name) = (&client, &config, name(i));
            async move {
                let mut conn = client
                    .get_multiplexed_async_connection_with_config(config)
                    .await?;
                // The name only helps a drain check read CLIENT LIST; a server that refuses
                // CLIENT (managed services do) refuses LIST too, so the name is optional.
                match redis::cmd("CLIENT")
                    .arg("SETNAME")
                    .arg(&name)
                    .exec_async(&mut conn)
                    .await
                {
                    Err(e) if !crate::verify::error::is_refused(&e) => Err(e),
                    _ => Ok(conn),
                }
            }
        });
        let wire_opens =
            (multiplexed..n).map(|i| {
                let (tls, name) = (tls.as_ref(), name(i));
                async move {
                    Wire::open(url, tls, opts.connect_timeout, opts.response_timeout, &name).await
                }
            });
        let (opened, wires_opened) = futures::future::join(
            futures::future::join_all(multiplexed_opens),
            futures::future::join_all(wire_opens),
        )
        .await;
        let mut conns = Vec::with_capacity(multiplexed);
        let mut wires = Vec::with_capacity(n - multiplexed);
        let results: Vec<_> = opened
            .into_iter()
            .map(|r| r.map(Ok))
            .chain(wires_opened.into_iter().map(|r| r.map(Err)))
            .collect();
        let connected = results.iter().filter(|r| r.is_ok()).count();
        for result in results {
            let e = match result {
                Ok(Ok(conn)) => {
                    conns.push(conn);
                    continue;
                }
                Ok(Err(w)) => {
                    wires.push(tokio::sync::Mutex::new(w));
                    continue;
                }
                Err(e) => e,
            };
            let mut err = connect_err(e);
            if let VerifyError::Connect { hint, source, .. } = &mut err {
                if source
                    .to_string()
                    .to_ascii_lowercase()
                    .contains("max number of clients reached")
                {
                    *hint = FULL_HINT;
                } else if !url.is_tls() && source.is_connection_dropped() && hint.is_empty() {
                    *hint = probe_refusal(url).await;
                }
                if hint.is_empty() && connected > 0 {
                    *hint = PARTLY_CONNECTED_HINT;
                }
            }
            return Err(err);
        }
        let mut me = Self {
            conns,
            wires: wires.into(),
            endpoint,
            db: u32::try_from(url.db()).unwrap_or(0),
            info: ServerInfo::default(),
            clock_offset_ms: 0,
        };
        me.info = me.info().await?;
        let readers = me.wires.len();
        let cap = bulk_cap(me.info.used_memory, mem_available(), readers);
        if let Some(wires) = Arc::get_mut(&mut me.wires) {
            for w in wires.iter_mut() {
                w.get_mut().limit_bulk(cap);
            }
        }
        let sent = local_ms();
        let server = me.server_time_ms().await?;
        let received = local_ms();
        me.clock_offset_ms = server - i64::midpoint(sent, received);
        Ok(me)
    }

    pub fn conn(&self, i: usize) -> MultiplexedConnection {
        self.conns[i % self.conns.len()].clone()
    }

    pub fn command_err(
        &self,
        command: &'static str,
    ) -> impl Fn(redis::RedisError) -> VerifyError + use<> {
        let endpoint = self.endpoint.clone();
        move |source| VerifyError::Command {
            endpoint: endpoint.clone(),
            command,
            source: Box::new(source),
        }
    }

    pub fn protocol_err(&self, command: &'static str, detail: impl Into<String>) -> VerifyError {
        VerifyError::Protocol {
            endpoint: self.endpoint.clone(),
            command,
            detail: detail.into(),
        }
    }

    pub async fn info(&self) -> Result<ServerInfo, VerifyError> {
        let text: String = redis::cmd("INFO")
            .query_async(&mut self.conn(0))
            .await
            .map_err(self.command_err("INFO"))?;
        Ok(ServerInfo::parse(&text))
    }

    pub async fn dbsize(&self) -> Result<u64, VerifyError> {
        redis::cmd("DBSIZE")
            .query_async(&mut self.conn(0))
            .await
            .map_err(self.command_err("DBSIZE"))
    }

    /// The server's clock (TIME), Unix ms.
    pub async fn server_time_ms(&self) -> Result<i64, VerifyError> {
        let (secs, micros): (i64, i64) = redis::cmd("TIME")
            .query_async(&mut self.conn(0))
            .await
            .map_err(self.command_err("TIME"))?;
        Ok(secs * 1000 + micros / 1000)
    }

    pub async fn client_list(&self) -> Result<Vec<ClientInfo>, VerifyError> {
        let text: String = redis::cmd("CLIENT")
            .arg("LIST")
            .query_async(&mut self.conn(0))
            .await
            .map_err(self.command_err("CLIENT LIST"))?;
        Ok(ClientInfo::parse_list(&text))
    }
}

/// How long to wait for a connection by default.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long one reply may take by default (a DUMP of a big key is one reply).
pub(crate) const RESPONSE_TIMEOUT: Duration = Duration::from_secs(120);

#[cfg(test)]
mod tests {
    use super::{ClientInfo, ServerInfo};

    #[test]
    fn info_is_parsed() {
        let text = "# Server\r\nredis_version:7.0.15\r\nrole:master\r\nrun_id:5e1f\r\n# Clients\r\nconnected_clients:3\r\nmaxclients:10000\r\n# Memory\r\nused_memory:1048576\r\nmaxmemory:0\r\n# Stats\r\nexpired_keys:5\r\nevicted_keys:1\r\n# Keyspace\r\ndb0:keys=10,expires=2,avg_ttl=100\r\ndb3:keys=1,expires=0,avg_ttl=0\r\n";
        let info = ServerInfo::parse(text);
        assert_eq!(info.version(), (7, 0, 15));
        assert_eq!(info.run_id, "5e1f");
        assert!(info.has_pexpiretime());
        assert_eq!(info.used_memory, 1_048_576);
        assert_eq!(info.maxclients, Some(10_000));
        assert_eq!((info.expired_keys, info.evicted_keys), (5, 1));
        assert_eq!(info.keyspace[&0].keys, 10);
        assert_eq!(info.keyspace[&0].expires, 2);
        assert_eq!(info.keyspace[&3].keys, 1);
        let old = ServerInfo::parse("redis_version:6.2.14\n");
        assert!(!old.has_pexpiretime());
        assert_eq!(old.maxclients, None);
    }

    #[test]
    fn the_reply_cap_believes_neither_the_server_nor_a_missing_meminfo() {
        use super::{bulk_cap, parse_mem_available};
        const MIB: u64 = 1 << 20;
        let cap = |used, available, readers| bulk_cap(used, available, readers) as u64;
        // An honest server: twice its memory, above the floor.
        assert_eq!(cap(100 * MIB, Some(16 << 30), 3), 200 * MIB);
        assert_eq!(cap(1, Some(16 << 30), 3), 64 * MIB);
        // A server claiming 2^64-1 bytes: the machine's half, shared by the readers.
        assert_eq!(cap(u64::MAX, Some(12 << 30), 3), 2 << 30);
        assert_eq!(cap(u64::MAX, None, 3), 1 << 30);
        // A machine with little memory left still reads ordinary big keys.
        assert_eq!(cap(u64::MAX, Some(10 * MIB), 3), 64 * MIB);
        let meminfo =
            "MemTotal:       16303428 kB\nMemFree:  1000 kB\nMemAvailable:   12000000 kB\n";
        assert_eq!(parse_mem_available(meminfo), Some(12_000_000 * 1024));
        assert_eq!(parse_mem_available("MemTotal: 5 kB\n"), None);
        assert_eq!(parse_mem_available("MemAvailable: lots\n"), None);
    }

    #[test]
    fn only_the_max_clients_line_reads_as_full() {
        assert!(super::refusal_line_is_full(
            b"-ERR max number of clients reached\r\n"
        ));
        assert!(!super::refusal_line_is_full(
            b"-NOAUTH Authentication required.\r\n"
        ));
        assert!(!super::refusal_line_is_full(b""));
    }

    #[test]
    fn client_list_is_parsed() {
        let text = "id=3 addr=127.0.0.1:5000 laddr=127.0.0.1:6379 fd=8 name=upshift-verify-1-0 age=12 idle=0 flags=N db=0 cmd=client|list\nid=4 addr=10.0.0.2:4000 fd=9 name= age=100 idle=7 cmd=get\n";
        let clients = ClientInfo::parse_list(text);
        assert_eq!(clients.len(), 2);
        assert!(clients[0].is_upshift());
        assert_eq!(clients[0].cmd, "client|list");
        assert_eq!(clients[1].addr, "10.0.0.2:4000");
        assert_eq!((clients[1].age_secs, clients[1].idle_secs), (100, 7));
        assert!(!clients[1].is_upshift());
    }
}

#[cfg(test)]
mod drain_tests {
    use super::ClientInfo;

    #[test]
    fn replicas_and_platform_monitoring_never_count_as_writers() {
        let text = "\
id=5 addr=10.0.0.9:6380 name= age=900 idle=0 flags=S db=0 cmd=replconf
id=6 addr=10.0.0.8:4100 name=heroku-platform age=900 idle=0 flags=N db=0 cmd=info
id=7 addr=10.0.0.8:4101 name= age=30 idle=1 flags=N db=0 cmd=client|list
id=8 addr=10.0.0.2:4000 name= age=100 idle=0 flags=N db=0 cmd=set
id=9 addr=10.0.0.3:4000 name= age=100 idle=0 flags=N db=0 cmd=get
id=10 addr=10.0.0.4:4000 name= age=100 idle=0 flags=N db=0 cmd=fancy.module.write
";
        let may: Vec<bool> = ClientInfo::parse_list(text)
            .iter()
            .map(ClientInfo::may_write)
            .collect();
        // A reader may write next, and an unknown command may be a write.
        assert_eq!(may, [false, false, false, true, true, true]);
    }
}
