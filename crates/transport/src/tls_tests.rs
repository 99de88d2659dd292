//! The handshake against a rustls server on loopback, with certificates made here: what is
//! accepted, and how each refusal is told.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, Certificate, CertificateParams, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;
use crate::net::connect_stream;

/// A CA and the certificates it signs.
struct Ca {
    cert: Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    /// A server certificate for `names`, valid now unless `expired`.
    fn server(
        &self,
        names: &[&str],
        expired: bool,
    ) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 3, 4);
        }
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        (cert.der().clone(), key)
    }

    fn write_pem(&self, dir: &std::path::Path) -> PathBuf {
        let path = dir.join("ca.pem");
        std::fs::write(&path, self.cert.pem()).unwrap();
        path
    }
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "mpegcoder-tls-{tag}-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A TLS echo server (one connection) offering `versions`.
async fn tls_server(
    cert: (CertificateDer<'static>, PrivateKeyDer<'static>),
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> SocketAddr {
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(versions)
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.0], cert.1)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        if let Ok(mut tls) = acceptor.accept(tcp).await {
            let mut buf = [0u8; 64];
            if let Ok(n) = tls.read(&mut buf).await {
                let _ = tls.write_all(&buf[..n]).await;
                let _ = tls.flush().await;
            }
        }
    });
    addr
}

/// A plain TCP server that answers the first bytes with `reply` (or nothing) and then either
/// closes or keeps the connection open.
async fn plain_server(reply: &'static [u8], close: bool) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 1024];
        let _ = tcp.read(&mut buf).await;
        let _ = tcp.write_all(reply).await;
        if close {
            drop(tcp);
        } else {
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
    });
    addr
}

async fn connect(
    host: &str,
    addr: SocketAddr,
    options: &TlsOptions,
) -> Result<crate::net::Connected, ConnectError> {
    connect_stream(
        host,
        addr.port(),
        "rtmps://test/live/x",
        Duration::from_secs(2),
        Some(options),
    )
    .await
}

fn failure(r: Result<crate::net::Connected, ConnectError>) -> (TlsFailure, String) {
    let e = r.expect_err("the handshake must fail");
    let line = e.to_string();
    match e {
        ConnectError::Tls { failure, .. } => (failure, line),
        other => panic!("not a TLS failure: {other:?}"),
    }
}

#[tokio::test]
async fn a_trusted_ca_works_over_tls_1_2_and_1_3() {
    let dir = temp_dir("trusted");
    let ca = Ca::new("test CA");
    let options = TlsOptions::default().with_ca_file(ca.write_pem(&dir));
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        for host in ["127.0.0.1", "localhost"] {
            let addr = tls_server(ca.server(&["localhost", "127.0.0.1"], false), &[version]).await;
            let mut conn = connect(host, addr, &options).await.unwrap();
            assert!(conn.tls);
            conn.stream.write_all(b"ping").await.unwrap();
            conn.stream.flush().await.unwrap();
            let mut back = [0u8; 4];
            conn.stream.read_exact(&mut back).await.unwrap();
            assert_eq!(&back, b"ping", "{version:?} {host}");
        }
    }
}

#[tokio::test]
async fn unknown_issuer_wrong_name_and_expired_are_told_apart() {
    let ca = Ca::new("test CA");
    let dir = temp_dir("refused");
    let trusted = TlsOptions::default().with_ca_file(ca.write_pem(&dir));

    let addr = tls_server(ca.server(&["127.0.0.1"], false), &[&rustls::version::TLS13]).await;
    let (f, line) = failure(connect("127.0.0.1", addr, &TlsOptions::default()).await);
    assert_eq!(f, TlsFailure::UnknownIssuer, "{line}");
    assert!(
        line.contains("not trusted") && line.contains("127.0.0.1"),
        "{line}"
    );
    assert!(!f.heals() && f.is_certificate());

    let addr = tls_server(
        ca.server(&["wrong.example"], false),
        &[&rustls::version::TLS13],
    )
    .await;
    let (f, line) = failure(connect("127.0.0.1", addr, &trusted).await);
    assert!(
        matches!(&f, TlsFailure::NameMismatch { expected, presented }
            if expected == "127.0.0.1" && presented.iter().any(|p| p.contains("wrong.example"))),
        "{f:?}"
    );
    assert!(line.contains("host name mismatch"), "{line}");

    let addr = tls_server(ca.server(&["127.0.0.1"], true), &[&rustls::version::TLS12]).await;
    let (f, line) = failure(connect("127.0.0.1", addr, &trusted).await);
    assert_eq!(
        f,
        TlsFailure::Expired {
            not_after: Some("2021-03-04".into())
        },
        "{line}"
    );
    assert!(line.contains("expired"), "{line}");
}

#[tokio::test]
async fn insecure_accepts_an_unknown_issuer() {
    let ca = Ca::new("unknown CA");
    let addr = tls_server(
        ca.server(&["wrong.example"], true),
        &[&rustls::version::TLS13],
    )
    .await;
    let options = TlsOptions::default().with_insecure(true);
    let mut conn = connect("127.0.0.1", addr, &options).await.unwrap();
    conn.stream.write_all(b"hi").await.unwrap();
    conn.stream.flush().await.unwrap();
    let mut back = [0u8; 2];
    conn.stream.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"hi");
}

#[tokio::test]
async fn servers_that_do_not_speak_tls_are_named() {
    let options = TlsOptions::default().with_insecure(true);
    let addr = plain_server(b"RTSP/1.0 400 Bad Request\r\nCSeq: 0\r\n\r\n", true).await;
    let (f, line) = failure(connect("127.0.0.1", addr, &options).await);
    assert_eq!(
        f,
        TlsFailure::NotTls {
            seen: "RTSP/1.0 400 Bad Request".into()
        },
        "{line}"
    );
    assert!(line.contains("does not speak TLS"), "{line}");
    assert!(!f.heals());

    // A server that waits for something else (a plain RTMP server waits for 1537 bytes).
    let addr = plain_server(b"", false).await;
    // Bounded from outside too: the handshake's own timeout must end it, not a hang.
    let attempt =
        tokio::time::timeout(Duration::from_secs(5), connect("127.0.0.1", addr, &options))
            .await
            .expect("the TLS handshake timeout did not end the attempt within 5 s");
    let (f, line) = failure(attempt);
    assert_eq!(f, TlsFailure::Timeout(Duration::from_secs(2)), "{line}");

    // One that hangs up.
    let addr = plain_server(b"", true).await;
    let (f, line) = failure(connect("127.0.0.1", addr, &options).await);
    assert_eq!(f, TlsFailure::Closed, "{line}");
    assert!(f.heals());
}

#[test]
fn ca_files_that_cannot_be_used_are_named() {
    let dir = temp_dir("files");
    let missing = dir.join("missing.pem");
    let e = TlsOptions::default()
        .with_ca_file(&missing)
        .validate()
        .unwrap_err();
    assert!(
        matches!(&e, TlsSetupError::CaFile { path, reason } if path == &missing && reason == "no such file"),
        "{e:?}"
    );
    let empty = dir.join("empty.pem");
    std::fs::write(&empty, "just text\n").unwrap();
    let e = TlsOptions::default()
        .with_ca_file(&empty)
        .validate()
        .unwrap_err();
    assert!(e.to_string().contains("holds no PEM certificate"), "{e}");
    assert!(e.to_string().contains("empty.pem"), "{e}");
    // Insecure needs no CA at all.
    assert!(TlsOptions::default().with_insecure(true).validate().is_ok());
}

#[test]
fn dates_of_unix_times() {
    assert_eq!(civil_date(0), "1970-01-01");
    assert_eq!(civil_date(951_782_400), "2000-02-29");
    assert_eq!(civil_date(1_614_816_000), "2021-03-04");
    assert_eq!(civil_date(4_102_444_799), "2099-12-31");
}

#[test]
fn bytes_that_cannot_start_a_tls_record() {
    assert!(!SeenBytes(Vec::new()).not_tls());
    assert!(!SeenBytes(vec![22, 3, 3, 0, 10]).not_tls());
    assert!(SeenBytes(b"RTSP/1.0".to_vec()).not_tls());
    assert!(SeenBytes(vec![3, 0, 0]).not_tls(), "an RTMP S0");
    assert!(SeenBytes(vec![22, 9]).not_tls());
    assert_eq!(
        SeenBytes(b"SSH-2.0-x\x01\r\nmore".to_vec()).printable(),
        "SSH-2.0-x."
    );
}
