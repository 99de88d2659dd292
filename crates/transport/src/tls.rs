//! TLS for `rtsps://` and `rtmps://`: the connection of a session wrapped in TLS 1.2 or 1.3
//! (rustls with the *ring* provider), the server's certificate chain and host name verified by
//! default.
//!
//! Trusted roots come from the operating system's store (rustls-native-certs: on Debian and
//! Ubuntu `/etc/ssl/certs`, kept by the `ca-certificates` package; `SSL_CERT_FILE` and
//! `SSL_CERT_DIR` override it as for OpenSSL), read once per process. The OS store rather than
//! a compiled-in Mozilla list: ingest services behind a company's own CA work once the CA is
//! installed the usual way, and a distrusted root disappears with the OS's security updates,
//! not with a rebuild. [`TlsOptions::ca_files`] adds CAs from PEM files (a private CA, a test
//! CA); [`TlsOptions::insecure`] turns verification off (the caller warns about it).
//!
//! Every failure of the handshake becomes one [`TlsFailure`] that says why in words: an
//! unknown issuer, a host name the certificate does not cover, an expired certificate, a
//! protocol version or handshake the server refused, a server that answered in something
//! other than TLS, or no answer within the connect timeout.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::net::ConnectError;

/// How certificates are checked on `rtsps://` and `rtmps://` connections. The default
/// verifies the chain against the system's CAs and the host name against the certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default))]
#[non_exhaustive]
pub struct TlsOptions {
    /// PEM files whose certificates are trusted as CAs in addition to the system's.
    pub ca_files: Vec<PathBuf>,
    /// Accept any certificate: no chain, host name or validity check (the handshake's
    /// signatures are still checked). Encrypts, but does not tell who is at the other end.
    pub insecure: bool,
}

impl TlsOptions {
    /// Adds a PEM file of trusted CA certificates.
    pub fn with_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_files.push(path.into());
        self
    }

    /// Turns certificate verification off (or on again).
    pub fn with_insecure(mut self, insecure: bool) -> Self {
        self.insecure = insecure;
        self
    }

    /// Reads the CA files and builds the client configuration: the error says which file
    /// cannot be used and why, or that no CA is trusted at all. Cheap after the first call
    /// (the system store is read once per process), so it may run before each connection.
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, TlsSetupError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsSetupError::Config(e.to_string()))?;
        let config = if self.insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate { provider }))
                .with_no_client_auth()
        } else {
            let mut roots = RootCertStore::empty();
            roots.roots.extend(system_roots().roots.iter().cloned());
            for path in &self.ca_files {
                add_pem_file(&mut roots, path)?;
            }
            if roots.is_empty() {
                return Err(TlsSetupError::NoRoots);
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        };
        Ok(Arc::new(config))
    }

    /// Checks the options without connecting: the CA files load (see
    /// [`client_config`](Self::client_config)).
    pub fn validate(&self) -> Result<(), TlsSetupError> {
        self.client_config().map(|_| ())
    }
}

/// Why a TLS configuration cannot be built. Final: retrying does not help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlsSetupError {
    /// A CA file cannot be read or holds no usable certificate.
    #[error("CA file {path}: {reason}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// Why it cannot be used.
        reason: String,
    },
    /// No CA is trusted: the system store is empty or missing and no CA file was given.
    #[error(
        "no trusted CA certificates: the system store is empty (install ca-certificates) and \
         no CA file was given (--tls-ca)"
    )]
    NoRoots,
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// The system's CAs, read once per process; certificates the store holds but rustls cannot
/// parse are skipped.
fn system_roots() -> &'static RootCertStore {
    static ROOTS: OnceLock<RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            tracing::debug!(error = %e, "reading the system's CA store");
        }
        let mut roots = RootCertStore::empty();
        let (added, ignored) = roots.add_parsable_certificates(found.certs);
        tracing::debug!(added, ignored, "system CA certificates");
        roots
    })
}

/// Adds every certificate of a PEM file to `roots`.
fn add_pem_file(roots: &mut RootCertStore, path: &Path) -> Result<(), TlsSetupError> {
    let fail = |reason: String| TlsSetupError::CaFile {
        path: path.to_path_buf(),
        reason,
    };
    let data = std::fs::read(path).map_err(|e| fail(io_reason(&e)))?;
    let mut count = 0usize;
    for cert in CertificateDer::pem_slice_iter(&data) {
        let cert = cert.map_err(|e| fail(format!("not a PEM certificate file ({e})")))?;
        roots
            .add(cert)
            .map_err(|e| fail(format!("certificate {} cannot be used: {e}", count + 1)))?;
        count += 1;
    }
    if count == 0 {
        return Err(fail(
            "holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into(),
        ));
    }
    Ok(())
}

fn io_reason(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "no such file".into(),
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// Why a TLS handshake failed, in the words an error line uses.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsFailure {
    /// The chain does not lead to a trusted CA.
    UnknownIssuer,
    /// The certificate does not name the host connected to.
    NameMismatch {
        /// The host name or address of the URL.
        expected: String,
        /// The names the certificate covers (may be empty when unknown).
        presented: Vec<String>,
    },
    /// The certificate's validity ended.
    Expired {
        /// Its last valid day (`YYYY-MM-DD`), when known.
        not_after: Option<String>,
    },
    /// The certificate is not valid yet.
    NotYetValid,
    /// The certificate was revoked.
    Revoked,
    /// Another problem with the certificate (bad signature, wrong usage, malformed).
    BadCertificate(String),
    /// The server and we share no protocol version (both sides offer TLS 1.2 and 1.3 at
    /// most; a server that insists on TLS 1.0/1.1 or SSL fails here).
    ProtocolVersion(String),
    /// The server ended the handshake with an alert, or offered nothing we accept.
    Handshake(String),
    /// The server answered with bytes that are not TLS (a plain RTSP or RTMP server?).
    NotTls {
        /// The start of what arrived, printable characters kept.
        seen: String,
    },
    /// The server closed the connection during the handshake.
    Closed,
    /// No handshake within the limit: a server that waits for something else (a plain RTMP
    /// server waits for its own handshake) or a stalled network.
    Timeout(Duration),
    /// The host cannot be a TLS server name.
    BadServerName,
    /// A socket error during the handshake.
    Io(String),
}

impl TlsFailure {
    /// True when retrying later may succeed: a closed or stalled connection, a socket error.
    /// Certificate, version and handshake failures, and a server that does not speak TLS, are
    /// final.
    pub fn heals(&self) -> bool {
        matches!(
            self,
            TlsFailure::Closed | TlsFailure::Timeout(_) | TlsFailure::Io(_)
        )
    }

    /// True for a failure of certificate verification.
    pub fn is_certificate(&self) -> bool {
        matches!(
            self,
            TlsFailure::UnknownIssuer
                | TlsFailure::NameMismatch { .. }
                | TlsFailure::Expired { .. }
                | TlsFailure::NotYetValid
                | TlsFailure::Revoked
                | TlsFailure::BadCertificate(_)
        )
    }
}

impl fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsFailure::UnknownIssuer => f.write_str(
                "certificate not trusted: its issuer is an unknown CA (trust the CA with \
                 --tls-ca FILE)",
            ),
            TlsFailure::NameMismatch {
                expected,
                presented,
            } => {
                write!(
                    f,
                    "host name mismatch: the certificate is not valid for {expected}"
                )?;
                if !presented.is_empty() {
                    write!(f, " (it names {})", presented.join(", "))?;
                }
                Ok(())
            }
            TlsFailure::Expired { not_after } => match not_after {
                Some(day) => write!(f, "certificate expired (valid until {day})"),
                None => f.write_str("certificate expired"),
            },
            TlsFailure::NotYetValid => f.write_str("certificate not valid yet"),
            TlsFailure::Revoked => f.write_str("certificate revoked"),
            TlsFailure::BadCertificate(why) => write!(f, "bad certificate: {why}"),
            TlsFailure::ProtocolVersion(why) => write!(
                f,
                "no common protocol version (we offer TLS 1.2 and 1.3): {why}"
            ),
            TlsFailure::Handshake(why) => write!(f, "handshake failure: {why}"),
            TlsFailure::NotTls { seen } if seen.is_empty() => {
                f.write_str("the server does not speak TLS")
            }
            TlsFailure::NotTls { seen } => {
                write!(f, "the server does not speak TLS (it answered {seen:?})")
            }
            TlsFailure::Closed => f.write_str(
                "the server closed the connection during the TLS handshake (does it speak TLS?)",
            ),
            TlsFailure::Timeout(after) => write!(
                f,
                "no TLS handshake within {after:?}: the server does not speak TLS, or is stalled"
            ),
            TlsFailure::BadServerName => f.write_str("the host is not a valid TLS server name"),
            TlsFailure::Io(why) => write!(f, "socket error during the TLS handshake: {why}"),
        }
    }
}

/// A TCP connection inside TLS, as sessions run over it.
pub type TlsTcpStream = TlsStream<Watch<TcpStream>>;

/// Runs the TLS handshake on `tcp` for `host` within `limit`. `url` (credentials removed)
/// names the target in errors.
pub async fn handshake(
    tcp: TcpStream,
    host: &str,
    url: &str,
    config: Arc<ClientConfig>,
    limit: Duration,
) -> Result<TlsTcpStream, ConnectError> {
    let fail = |failure: TlsFailure| ConnectError::Tls {
        host: host.to_string(),
        url: url.to_string(),
        failure,
    };
    let name =
        ServerName::try_from(host.to_string()).map_err(|_| fail(TlsFailure::BadServerName))?;
    let connector = TlsConnector::from(config);
    // The handshake's reads go through `Watch`, which keeps the first bytes: if the server
    // answers in something other than TLS, the error can show them.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let watched = Watch {
        inner: tcp,
        seen: Some(seen.clone()),
    };
    match tokio::time::timeout(limit, connector.connect(name, watched)).await {
        Err(_) => Err(fail(TlsFailure::Timeout(limit))),
        Ok(Ok(mut stream)) => {
            stream.get_mut().0.seen = None;
            Ok(stream)
        }
        Ok(Err(e)) => {
            let seen = SeenBytes(seen.lock().map(|b| b.clone()).unwrap_or_default());
            Err(fail(classify(&e, host, &seen)))
        }
    }
}

/// The first bytes the server sent during a handshake.
#[derive(Debug, Default)]
struct SeenBytes(Vec<u8>);

impl SeenBytes {
    /// The bytes as text, printable ASCII kept, the rest shown as `.`; up to the first line
    /// end.
    fn printable(&self) -> String {
        let line = self
            .0
            .split(|&b| b == b'\r' || b == b'\n')
            .next()
            .unwrap_or(&[]);
        line.iter()
            .map(|&b| {
                if b.is_ascii_graphic() || b == b' ' {
                    char::from(b)
                } else {
                    '.'
                }
            })
            .collect()
    }

    /// True when the bytes cannot start a TLS record (RFC 8446 §5.1: content type 20–23 and
    /// protocol version 3.x).
    fn not_tls(&self) -> bool {
        match self.0.as_slice() {
            [] => false,
            [t, ..] if !(20..=23).contains(t) => true,
            [_, major, ..] => *major != 3,
            _ => false,
        }
    }
}

/// Turns the handshake's error into what it means for the user.
fn classify(e: &io::Error, host: &str, seen: &SeenBytes) -> TlsFailure {
    let tls = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    if seen.not_tls() {
        return TlsFailure::NotTls {
            seen: seen.printable(),
        };
    }
    match tls {
        Some(err) => classify_rustls(err, host),
        None => match e.kind() {
            io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => TlsFailure::Closed,
            _ => TlsFailure::Io(e.to_string()),
        },
    }
}

fn classify_rustls(err: &rustls::Error, host: &str) -> TlsFailure {
    use rustls::AlertDescription as A;
    match err {
        rustls::Error::InvalidCertificate(c) => classify_certificate(c, host),
        rustls::Error::AlertReceived(A::ProtocolVersion) => {
            TlsFailure::ProtocolVersion("the server refused our versions".into())
        }
        rustls::Error::AlertReceived(alert) => {
            TlsFailure::Handshake(format!("the server sent the alert {alert:?}"))
        }
        rustls::Error::PeerIncompatible(p) => {
            let text = format!("{p:?}");
            if text.contains("Version") || text.contains("TLS12") || text.contains("Tls12") {
                TlsFailure::ProtocolVersion(text)
            } else {
                TlsFailure::Handshake(format!("the server's offer is incompatible ({text})"))
            }
        }
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateHandshakeMessage { .. } => {
            TlsFailure::NotTls {
                seen: String::new(),
            }
        }
        other => TlsFailure::Handshake(other.to_string()),
    }
}

fn classify_certificate(c: &CertificateError, host: &str) -> TlsFailure {
    match c {
        CertificateError::UnknownIssuer => TlsFailure::UnknownIssuer,
        CertificateError::NotValidForName => TlsFailure::NameMismatch {
            expected: host.to_string(),
            presented: Vec::new(),
        },
        CertificateError::NotValidForNameContext { presented, .. } => TlsFailure::NameMismatch {
            expected: host.to_string(),
            presented: presented.clone(),
        },
        CertificateError::Expired => TlsFailure::Expired { not_after: None },
        CertificateError::ExpiredContext { not_after, .. } => TlsFailure::Expired {
            not_after: Some(civil_date(not_after.as_secs())),
        },
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            TlsFailure::NotYetValid
        }
        CertificateError::Revoked => TlsFailure::Revoked,
        other => TlsFailure::BadCertificate(format!("{other:?}")),
    }
}

/// `YYYY-MM-DD` (UTC) of a Unix time: the proleptic Gregorian calendar from a day count.
fn civil_date(unix_secs: u64) -> String {
    let days = i64::try_from(unix_secs / 86_400).unwrap_or(i64::MAX / 2);
    // Days since 0000-03-01, in 400-year eras of 146 097 days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// Accepts every certificate; checks only the handshake signatures, with the provider's
/// algorithms, so the session is still keyed with whoever holds the certificate's key.
#[derive(Debug)]
struct AcceptAnyCertificate {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Up to this many of the server's first bytes are kept during the handshake.
const WATCH_BYTES: usize = 64;

/// A stream that keeps the first bytes read from it while the handshake runs: what a server
/// that does not speak TLS answered. Writes pass through untouched.
#[derive(Debug)]
pub struct Watch<S> {
    inner: S,
    seen: Option<Arc<Mutex<Vec<u8>>>>,
}

impl<S> Watch<S> {
    /// The stream inside.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watch<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Some(Ok(mut seen)) = this.seen.as_ref().map(|s| s.lock()) {
            let new = buf.filled().get(before..).unwrap_or(&[]);
            let room = WATCH_BYTES.saturating_sub(seen.len()).min(new.len());
            seen.extend_from_slice(new.get(..room).unwrap_or(&[]));
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watch<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
#[path = "tls_tests.rs"]
mod tests;
