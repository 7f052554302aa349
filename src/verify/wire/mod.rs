//! Our own RESP2 connection for the DUMP read path: commands packed by hand into one buffer,
//! replies read from one buffer ([`resp`]), no `redis::Cmd`, no `redis::Value`, no multiplexer.
//!
//! Why: at a million keys the `redis` crate's reply parsing, its multiplexer task and building
//! two `Cmd` per key took about two thirds of the digest's client CPU (perf, issue 12). This
//! connection does one thing, pipelines of `DUMP key` and `PEXPIRETIME key` (or `PTTL`), and
//! is opened exactly as [`Session`](crate::verify::conn::Session) opens its others: the same
//! TLS choice (certificates unchecked unless `--tls-verify`, heroku-redis's are self-signed),
//! AUTH with the URL's user and password, SELECT of its database, and the same
//! `upshift-<role>-<pid>-<n>` client name the drain check relies on. Errors never hold the
//! password: the server does not echo it, and nothing here formats the URL.

pub(crate) mod resp;

use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use resp::ReplyReader;
pub(crate) use resp::{Reply, WireError};

use crate::verify::url::RedisUrl;

/// Bytes of the reply buffer: a pipeline of small values' replies arrives in a few reads, and
/// a payload up to this size is lent to the decoder without a copy.
const BUFFER: usize = 256 << 10;

/// The byte stream under a connection: TCP, or TLS over TCP.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One connection speaking RESP2 for pipelines.
pub(crate) struct Wire {
    reader: ReplyReader<Box<dyn Io>>,
    /// Commands packed and not yet written.
    out: Vec<u8>,
    queued: usize,
    /// Replies written for and not yet read.
    owed: usize,
    /// A write was dropped half done: the server may hold half a command.
    torn: bool,
    timeout: Duration,
}

impl std::fmt::Debug for Wire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wire")
            .field("owed", &self.owed)
            .finish_non_exhaustive()
    }
}

/// TLS settings for every connection of a session: `None` for plain `redis://`.
pub(crate) fn tls_config(
    url: &RedisUrl,
    verify: bool,
) -> Result<Option<Arc<ClientConfig>>, redis::RedisError> {
    if !url.is_tls() {
        return Ok(None);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(tls_err)?;
    let config = if verify {
        // The roots the `redis` crate trusts: the system's.
        let mut found = rustls_native_certs::load_native_certs();
        if let Some(e) = found.errors.pop() {
            return Err(redis::RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "cannot load the system's certificates",
                e.to_string(),
            )));
        }
        let mut roots = rustls::RootCertStore::empty();
        for cert in found.certs {
            roots.add(cert).map_err(tls_err)?;
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        let mut config = builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unchecked(provider)))
            .with_no_client_auth();
        // As the `redis` crate does without checks: no SNI (an IP address or a name the
        // certificate does not carry must not matter).
        config.enable_sni = false;
        config
    };
    Ok(Some(Arc::new(config)))
}

fn tls_err(e: rustls::Error) -> redis::RedisError {
    redis::RedisError::from(e)
}

/// Accepts any certificate (heroku-redis certificates are self-signed) but still checks the
/// handshake's signatures with the provider's algorithms, as the `redis` crate's
/// `#insecure` mode does.
#[derive(Debug)]
struct Unchecked(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A server's error line as the `redis` crate's error (its code, its detail), so that callers
/// judge it as they judge the crate's own ([`crate::verify::error::is_refused`]).
pub(crate) fn server_error(line: &[u8]) -> redis::RedisError {
    let mut framed = Vec::with_capacity(line.len() + 3);
    framed.push(b'-');
    framed.extend_from_slice(line);
    framed.extend_from_slice(b"\r\n");
    match redis::parse_redis_value(&framed) {
        Ok(redis::Value::ServerError(e)) => e.into(),
        Ok(_) => redis::RedisError::from((redis::ErrorKind::Parse, "unreadable error reply")),
        Err(e) => e,
    }
}

/// A wire failure as the `redis` crate's error: for [`crate::verify::VerifyError::Connect`]
/// and `Command`, which carry one.
pub(crate) fn redis_error(e: WireError) -> redis::RedisError {
    match e {
        WireError::Io(e) => e.into(),
        WireError::Protocol(detail) => {
            redis::RedisError::from((redis::ErrorKind::Parse, "unexpected reply", detail))
        }
    }
}

impl Wire {
    /// Connects, authenticates, selects the database and names the connection `name`.
    ///
    /// # Errors
    /// The `redis` crate's error kinds for what failed (I/O, TLS, the server's refusal of
    /// AUTH or SELECT), so that [`crate::verify::VerifyError::Connect`] reads as for the other
    /// connections. A server that refuses CLIENT is tolerated, as there.
    pub(crate) async fn open(
        url: &RedisUrl,
        tls: Option<&Arc<ClientConfig>>,
        connect_timeout: Duration,
        response_timeout: Duration,
        name: &str,
    ) -> Result<Self, redis::RedisError> {
        let timed_out = || {
            redis::RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "connection timed out",
            ))
        };
        let tcp = tokio::time::timeout(
            connect_timeout,
            TcpStream::connect((url.socket_host(), url.port())),
        )
        .await
        .map_err(|_| timed_out())??;
        tcp.set_nodelay(true)?;
        let io: Box<dyn Io> = match tls {
            None => Box::new(tcp),
            Some(config) => {
                let host = ServerName::try_from(url.socket_host().to_owned())?;
                let connector = tokio_rustls::TlsConnector::from(Arc::clone(config));
                let stream = tokio::time::timeout(connect_timeout, connector.connect(host, tcp))
                    .await
                    .map_err(|_| timed_out())??;
                Box::new(stream)
            }
        };
        // The handshake's replies (AUTH, SELECT, CLIENT SETNAME) are small and immediate:
        // they get the connect timeout, not the response timeout meant for a DUMP of a big
        // key, so a server or proxy that accepts the connection and never answers is named
        // within seconds rather than after two minutes (hostile pass 5).
        let mut wire = Self::over(io, connect_timeout);
        let (user, password) = url.credentials();
        if let Some(password) = password {
            let mut auth = vec![b"AUTH".as_slice()];
            auth.extend(user.as_deref().map(str::as_bytes));
            auth.push(password.as_bytes());
            wire.push(&auth);
            let mut refused = wire.expect_ok().await?;
            // Redis 5 and older know AUTH with a password only: try again without the user,
            // as the `redis` crate does.
            if user.is_some()
                && refused
                    .as_ref()
                    .is_some_and(|e| e.to_string().contains("wrong number of arguments"))
            {
                wire.push(&[b"AUTH", password.as_bytes()]);
                refused = wire.expect_ok().await?;
            }
            if let Some(e) = refused {
                return Err(e);
            }
        }
        if url.db() != 0 {
            wire.push(&[b"SELECT", url.db().to_string().as_bytes()]);
            if let Some(e) = wire.expect_ok().await? {
                return Err(e);
            }
        }
        wire.push(&[b"CLIENT", b"SETNAME", name.as_bytes()]);
        // The name only helps a drain check read CLIENT LIST; a server that refuses CLIENT
        // (managed services do) refuses LIST too, so the name is optional.
        match wire.expect_ok().await? {
            Some(e) if !crate::verify::error::is_refused(&e) => Err(e),
            _ => {
                wire.timeout = response_timeout;
                wire.reader.set_timeout(response_timeout);
                Ok(wire)
            }
        }
    }

    /// A connection over an open stream (no handshake).
    fn over(io: Box<dyn Io>, timeout: Duration) -> Self {
        Self {
            reader: ReplyReader::new(io, BUFFER, timeout),
            out: Vec::with_capacity(64 << 10),
            queued: 0,
            owed: 0,
            torn: false,
            timeout,
        }
    }

    /// Writes what is queued and reads one reply: `None` for `+OK`, the server's error.
    async fn expect_ok(&mut self) -> Result<Option<redis::RedisError>, redis::RedisError> {
        self.flush().await.map_err(redis_error)?;
        match self.reply().await.map_err(redis_error)? {
            Reply::Status(_) => Ok(None),
            Reply::Error(line) => Ok(Some(server_error(line))),
            other => Err(redis_error(WireError::Protocol(format!(
                "{} where +OK was expected",
                kind(&other)
            )))),
        }
    }

    /// See [`ReplyReader::limit_bulk`].
    pub(crate) fn limit_bulk(&mut self, max: usize) {
        self.reader.limit_bulk(max);
    }

    /// Queues one command (written by the next [`Wire::flush`]).
    pub(crate) fn push(&mut self, args: &[&[u8]]) {
        self.out.push(b'*');
        push_decimal(&mut self.out, args.len());
        self.out.extend_from_slice(b"\r\n");
        for arg in args {
            self.out.push(b'$');
            push_decimal(&mut self.out, arg.len());
            self.out.extend_from_slice(b"\r\n");
            self.out.extend_from_slice(arg);
            self.out.extend_from_slice(b"\r\n");
        }
        self.queued += 1;
    }

    /// Writes every queued command.
    ///
    /// # Errors
    /// [`WireError::Io`] when the write fails or times out.
    pub(crate) async fn flush(&mut self) -> Result<(), WireError> {
        if self.queued == 0 {
            return Ok(());
        }
        self.torn = true;
        let io = self.reader.get_mut();
        tokio::time::timeout(self.timeout, async {
            io.write_all(&self.out).await?;
            io.flush().await
        })
        .await
        .map_err(|_| {
            WireError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the server took no more commands within the response timeout",
            ))
        })?
        .map_err(WireError::Io)?;
        self.torn = false;
        self.out.clear();
        self.owed += self.queued;
        self.queued = 0;
        Ok(())
    }

    /// The next reply to a written command.
    ///
    /// # Errors
    /// As [`ReplyReader::next`]; a protocol error when no reply is owed.
    pub(crate) async fn reply(&mut self) -> Result<Reply<'_>, WireError> {
        if self.owed == 0 {
            return Err(WireError::Protocol(
                "a reply read where none was asked for".to_owned(),
            ));
        }
        let reply = self.reader.next().await?;
        self.owed -= 1;
        Ok(reply)
    }

    /// Makes the connection ready for new pipelines after a use that stopped early (an error,
    /// a consumer that failed): reads and drops the replies still owed, forgets commands
    /// queued and not written.
    ///
    /// # Errors
    /// A protocol error when a write or a big reply was cut in the middle (the stream is out
    /// of step: the connection cannot be used again), else as [`Wire::reply`].
    pub(crate) async fn settle(&mut self) -> Result<(), WireError> {
        if self.torn || self.reader.torn {
            return Err(WireError::Protocol(
                "the connection was left mid-reply by an interrupted read".to_owned(),
            ));
        }
        self.out.clear();
        self.queued = 0;
        while self.owed > 0 {
            self.reply().await?;
        }
        Ok(())
    }
}

/// The kind of a reply, for messages (never its bytes: they may be values).
pub(crate) fn kind(reply: &Reply<'_>) -> &'static str {
    match reply {
        Reply::Bulk(_) => "a bulk string",
        Reply::Nil => "nil",
        Reply::Int(_) => "an integer",
        Reply::Status(_) => "a status",
        Reply::Error(_) => "an error",
    }
}

/// Appends `n` in decimal (RESP lengths).
fn push_decimal(out: &mut Vec<u8>, n: usize) {
    let mut digits = [0_u8; 20];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b"0123456789"[n % 10];
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::{Reply, Wire, WireError, push_decimal, server_error};

    #[tokio::test]
    async fn a_pipeline_is_packed_by_hand_and_every_reply_is_owed() {
        let (ours, mut server) = tokio::io::duplex(1 << 16);
        let mut wire = Wire::over(Box::new(ours), Duration::from_secs(5));
        wire.push(&[b"DUMP", b"k\r\n"]);
        wire.push(&[b"PEXPIRETIME", b""]);
        wire.flush().await.unwrap();
        let want = b"*2\r\n$4\r\nDUMP\r\n$3\r\nk\r\n\r\n*2\r\n$11\r\nPEXPIRETIME\r\n$0\r\n\r\n";
        let mut got = vec![0; want.len()];
        server.read_exact(&mut got).await.unwrap();
        assert_eq!(got, want);
        server.write_all(b"$-1\r\n:-2\r\n").await.unwrap();
        assert_eq!(wire.reply().await.unwrap(), Reply::Nil);
        // A reader that stopped early leaves the expiry's reply owed: settle reads it.
        wire.settle().await.unwrap();
        assert!(matches!(wire.reply().await, Err(WireError::Protocol(_))));
        // A server that hangs up mid-reply is an error, not a short payload.
        wire.push(&[b"DUMP", b"k"]);
        wire.flush().await.unwrap();
        server.write_all(b"$10\r\nabc").await.unwrap();
        drop(server);
        assert!(matches!(wire.reply().await, Err(WireError::Io(_))));
    }

    #[test]
    fn commands_are_packed_as_resp_arrays() {
        let mut out = Vec::new();
        for n in [0, 7, 10, 4096, usize::MAX] {
            out.clear();
            push_decimal(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
        }
    }

    #[test]
    fn server_errors_keep_their_code() {
        let e = server_error(b"NOPERM this user has no permissions to run the 'dump' command");
        assert_eq!(e.code(), Some("NOPERM"));
        assert!(crate::verify::error::is_refused(&e));
        let e = server_error(b"ERR max number of clients reached");
        assert!(e.to_string().contains("max number of clients"), "{e}");
    }
}
