//! TLS in front of the real servers: certificates made here (a test CA, a server certificate
//! for `localhost` and `127.0.0.1`, one for another name, an expired one, one from a CA nobody
//! trusts) and stunnel terminating TLS on a free port and forwarding plain TCP to a server.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rcgen::{BasicConstraints, Certificate, CertificateParams, IsCa, KeyPair};

use crate::{free_tcp_port, wait_listening, wait_port_free, ServerProcess};

/// The TLS terminator the tests need.
pub const TLS_TOOLS: &[&str] = &["stunnel4"];

/// A server certificate and its key, as PEM files.
#[derive(Debug, Clone)]
pub struct CertFiles {
    /// The certificate chain (leaf first).
    pub cert: PathBuf,
    /// The private key.
    pub key: PathBuf,
}

/// The certificates of a test, written into its directory.
#[derive(Debug)]
pub struct TestPki {
    /// The CA that signs `good`, `wrong_name` and `expired`, as PEM (what `--tls-ca` takes).
    pub ca: PathBuf,
    /// Valid now, for `localhost` and `127.0.0.1`.
    pub good: CertFiles,
    /// Valid now, but for `wrong.example` only.
    pub wrong_name: CertFiles,
    /// For `localhost` and `127.0.0.1`, expired in 2021.
    pub expired: CertFiles,
    /// For `localhost` and `127.0.0.1`, signed by another CA that nobody trusts.
    pub unknown_ca: CertFiles,
}

struct Ca {
    cert: Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let cert = params.self_signed(&key).expect("CA certificate");
        Ca { cert, key }
    }

    fn issue(&self, dir: &Path, tag: &str, names: &[&str], expired: bool) -> CertFiles {
        let key = KeyPair::generate().expect("server key");
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("server params");
        params.distinguished_name.push(
            rcgen::DnType::CommonName,
            names.first().copied().unwrap_or("x"),
        );
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("server certificate");
        let files = CertFiles {
            cert: dir.join(format!("{tag}.crt")),
            key: dir.join(format!("{tag}.key")),
        };
        std::fs::write(&files.cert, cert.pem()).expect("write certificate");
        std::fs::write(&files.key, key.serialize_pem()).expect("write key");
        files
    }
}

impl TestPki {
    /// Makes the CA and the certificates in `dir`.
    pub fn new(dir: &Path) -> TestPki {
        let ca = Ca::new("mpegcoder test CA");
        let other = Ca::new("untrusted CA");
        let local = ["localhost", "127.0.0.1"];
        let ca_path = dir.join("ca.pem");
        std::fs::write(&ca_path, ca.cert.pem()).expect("write CA");
        TestPki {
            ca: ca_path,
            good: ca.issue(dir, "good", &local, false),
            wrong_name: ca.issue(dir, "wrong-name", &["wrong.example"], false),
            expired: ca.issue(dir, "expired", &local, true),
            unknown_ca: other.issue(dir, "unknown-ca", &local, false),
        }
    }
}

/// The TLS versions a terminator offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersions {
    /// TLS 1.2 only.
    Tls12,
    /// TLS 1.3 only.
    Tls13,
}

/// stunnel accepting TLS on [`Stunnel::port`] and forwarding plain TCP to a server's port;
/// killed by its PID on drop.
#[derive(Debug)]
pub struct Stunnel {
    /// The TLS port.
    pub port: u16,
    proc: ServerProcess,
    log: PathBuf,
    conf: PathBuf,
    dir: PathBuf,
}

impl Stunnel {
    /// Starts stunnel in `dir` in front of `backend` (a port on 127.0.0.1) with `cert`,
    /// offering `versions`.
    pub fn start(dir: &Path, backend: u16, cert: &CertFiles, versions: TlsVersions) -> Stunnel {
        Stunnel::start_on_port(dir, free_tcp_port(), backend, cert, versions)
    }

    /// [`Stunnel::start`] on `port` (which must be free).
    pub fn start_on_port(
        dir: &Path,
        port: u16,
        backend: u16,
        cert: &CertFiles,
        versions: TlsVersions,
    ) -> Stunnel {
        let version = match versions {
            TlsVersions::Tls12 => "TLSv1.2",
            TlsVersions::Tls13 => "TLSv1.3",
        };
        let log = dir.join(format!("stunnel-{port}.log"));
        let conf = format!(
            "foreground = yes\npid =\noutput = {log}\ndebug = 5\n\
             [tls]\naccept = 127.0.0.1:{port}\nconnect = 127.0.0.1:{backend}\n\
             cert = {cert}\nkey = {key}\nsslVersionMin = {version}\nsslVersionMax = {version}\n",
            log = log.display(),
            cert = cert.cert.display(),
            key = cert.key.display(),
        );
        let conf_path = dir.join(format!("stunnel-{port}.conf"));
        std::fs::write(&conf_path, conf).expect("write stunnel.conf");
        let proc = Stunnel::spawn(dir, &conf_path, port);
        Stunnel {
            port,
            proc,
            log,
            conf: conf_path,
            dir: dir.to_path_buf(),
        }
    }

    fn spawn(dir: &Path, conf: &Path, port: u16) -> ServerProcess {
        let mut cmd = Command::new("stunnel4");
        cmd.arg(conf);
        let stderr = dir.join(format!("stunnel-{port}.stderr"));
        let proc = ServerProcess::spawn("stunnel", cmd, stderr);
        wait_listening(port, Duration::from_secs(10), "stunnel");
        proc
    }

    /// Kills stunnel (its connections close, as a crashed TLS server's would), waits until
    /// its port is free, and starts it again on the same port with the same settings.
    pub fn restart(&mut self) {
        self.kill();
        wait_port_free(self.port, Duration::from_secs(5), "stunnel");
        self.proc = Stunnel::spawn(&self.dir, &self.conf, self.port);
    }

    /// Connections stunnel accepted so far.
    pub fn connections(&self) -> usize {
        self.log().matches("accepted connection").count()
    }

    /// stunnel's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops stunnel (SIGTERM to its PID).
    pub fn kill(&mut self) {
        self.proc.stop(Duration::from_secs(2));
    }
}
