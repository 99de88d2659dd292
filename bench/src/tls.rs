//! RTMPS against RTMP: the same paced `mpegcoder push CLIP URL --codec copy` into nginx-rtmp,
//! once straight to its port and once through stunnel (TLS 1.3, a certificate of a CA made
//! here and passed with `--tls-ca`), and the same two pushes by `ffmpeg -re -c:v copy -f flv`
//! (whose TLS does not verify the certificate), alternating run by run. GNU time measures the
//! pushing process (CPU, peak RSS); nginx's recording of each run must hold every frame of the
//! clip.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use serde::Serialize;

use crate::nginx::Nginx;
use crate::process::Timed;
use crate::stats::median;

/// Programs and settings of the RTMPS runs.
#[derive(Debug, Clone)]
pub struct TlsSetup {
    /// The `mpegcoder` binary.
    pub mpegcoder: PathBuf,
    /// The `ffmpeg` binary.
    pub ffmpeg: PathBuf,
    /// The `ffprobe` binary.
    pub ffprobe: PathBuf,
    /// GNU time.
    pub time: PathBuf,
    /// nginx.
    pub nginx: PathBuf,
    /// The clip.
    pub clip: PathBuf,
    /// Its frame count.
    pub frames: usize,
    /// Its duration, seconds.
    pub seconds: f64,
    /// Working directory (certificates, nginx, stunnel).
    pub work: PathBuf,
    /// Directory for logs.
    pub logs: PathBuf,
}

/// One push.
#[derive(Debug, Clone, Serialize)]
pub struct TlsRun {
    /// `mpegcoder` or `ffmpeg`.
    pub publisher: &'static str,
    /// `rtmp` or `rtmps`.
    pub scheme: &'static str,
    /// Repetition.
    pub rep: usize,
    /// User + system CPU seconds.
    pub cpu_s: f64,
    /// Peak RSS, MiB.
    pub rss_mib: f64,
    /// Frames nginx recorded.
    pub frames_recorded: usize,
}

/// The pushes of one repetition, in order.
const PAIRS: [(&str, &str); 4] = [
    ("mpegcoder", "rtmp"),
    ("mpegcoder", "rtmps"),
    ("ffmpeg", "rtmp"),
    ("ffmpeg", "rtmps"),
];

/// Runs `repeat` rounds of [`PAIRS`] (RTMP, then RTMPS) and returns every run.
pub fn run(setup: &TlsSetup, repeat: usize) -> Result<Vec<TlsRun>> {
    std::fs::create_dir_all(&setup.work)?;
    let (cert, key, ca) = certificates(&setup.work)?;
    let mut nginx = Nginx::start(&setup.nginx, &setup.work.join("nginx"), 16)?;
    let mut stunnel = Stunnel::start(&setup.work, nginx.port, &cert, &key)?;
    let mut runs = Vec::new();
    let result = (|| -> Result<()> {
        for rep in 0..repeat.max(1) {
            for (publisher, scheme) in PAIRS {
                let key_name = format!("{publisher}-{scheme}-{rep}");
                let url = match scheme {
                    "rtmp" => nginx.url(&key_name),
                    _ => format!("rtmps://localhost:{}/live/{key_name}", stunnel.port),
                };
                let clip = setup.clip.display().to_string();
                let (program, args): (&Path, Vec<String>) = if publisher == "mpegcoder" {
                    let mut args: Vec<String> = ["push", &clip, &url, "--codec", "copy", "--quiet"]
                        .iter()
                        .map(|s| s.to_string())
                        .collect();
                    if scheme == "rtmps" {
                        args.extend(["--tls-ca".to_string(), ca.display().to_string()]);
                    }
                    (&setup.mpegcoder, args)
                } else {
                    let mut args = crate::process::ffmpeg_copy_head(&setup.clip, "error");
                    args.extend(["-f".to_string(), "flv".to_string(), url.clone()]);
                    (&setup.ffmpeg, args)
                };
                let log = setup.logs.join(format!("tls-{key_name}.log"));
                let timed = Timed::spawn(&setup.time, program, &args, &log)?;
                let usage = timed.wait(Duration::from_secs_f64(setup.seconds + 30.0))?;
                if usage.exit_code != Some(0) {
                    bail!(
                        "{publisher} {scheme} push failed ({:?}): {}",
                        usage.exit_code,
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                }
                // `wait_recordings` returns the keys still open: empty means finished.
                let open =
                    nginx.wait_recordings(std::slice::from_ref(&key_name), Duration::from_secs(15));
                let frames = if open.is_empty() {
                    crate::clip::frame_count(&setup.ffprobe, &nginx.recording(&key_name))? as usize
                } else {
                    0
                };
                eprintln!(
                    "{publisher:<9} {scheme:<5} run {rep}: CPU {:.3} s, RSS {:.1} MiB, {frames} of {} frames",
                    usage.cpu_s(),
                    usage.max_rss_kib as f64 / 1024.0,
                    setup.frames
                );
                runs.push(TlsRun {
                    publisher,
                    scheme,
                    rep,
                    cpu_s: usage.cpu_s(),
                    rss_mib: usage.max_rss_kib as f64 / 1024.0,
                    frames_recorded: frames,
                });
            }
        }
        Ok(())
    })();
    stunnel.stop();
    nginx.stop();
    result.map(|()| runs)
}

/// A CA and a certificate for `localhost` signed by it, as PEM files in `dir`: (cert, key, CA).
fn certificates(dir: &Path) -> Result<(PathBuf, PathBuf, PathBuf)> {
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key)?;
    let key = KeyPair::generate()?;
    let cert =
        CertificateParams::new(vec!["localhost".to_string()])?.signed_by(&key, &ca, &ca_key)?;
    let paths = (
        dir.join("server.crt"),
        dir.join("server.key"),
        dir.join("ca.pem"),
    );
    std::fs::write(&paths.0, cert.pem())?;
    std::fs::write(&paths.1, key.serialize_pem())?;
    std::fs::write(&paths.2, ca.pem())?;
    Ok(paths)
}

/// stunnel terminating TLS 1.3 on a free port in front of `backend`; stopped by its PID.
struct Stunnel {
    port: u16,
    child: Child,
}

impl Stunnel {
    fn start(dir: &Path, backend: u16, cert: &Path, key: &Path) -> Result<Stunnel> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let conf = dir.join("stunnel.conf");
        std::fs::write(
            &conf,
            format!(
                "foreground = yes\npid =\noutput = {log}\n[rtmps]\naccept = 127.0.0.1:{port}\n\
                 connect = 127.0.0.1:{backend}\ncert = {cert}\nkey = {key}\n\
                 sslVersionMin = TLSv1.3\n",
                log = dir.join("stunnel.log").display(),
                cert = cert.display(),
                key = key.display(),
            ),
        )?;
        let child = Command::new("stunnel4")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start stunnel4 (apt-get install stunnel4)")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                bail!("stunnel does not listen on {port}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Stunnel { port, child })
    }

    fn stop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// The BENCHMARKS.md section: medians of each publisher and scheme, and the ratios.
pub fn markdown(runs: &[TlsRun], frames: usize) -> String {
    if runs.is_empty() {
        return String::new();
    }
    let of = |publisher: &str, scheme: &str| {
        runs.iter()
            .filter(|r| r.publisher == publisher && r.scheme == scheme)
            .collect::<Vec<_>>()
    };
    let pick = |publisher: &str, scheme: &str, f: fn(&TlsRun) -> f64| {
        median(&of(publisher, scheme).into_iter().map(f).collect::<Vec<_>>())
    };
    let mut md = String::from(
        "\n### RTMPS against RTMP (copy push into nginx-rtmp; RTMPS through stunnel, TLS 1.3)\n\n\
         | publisher | scheme | CPU s (median) | peak RSS MiB (median) | every frame recorded |\n\
         |---|---|---|---|---|\n",
    );
    for (publisher, scheme) in PAIRS {
        let runs = of(publisher, scheme);
        if runs.is_empty() {
            continue;
        }
        let complete = runs.iter().all(|r| r.frames_recorded == frames);
        md.push_str(&format!(
            "| {publisher} | {scheme} | {:.3} | {:.1} | {} |\n",
            pick(publisher, scheme, |r| r.cpu_s),
            pick(publisher, scheme, |r| r.rss_mib),
            if complete { "yes" } else { "NO" }
        ));
    }
    for publisher in ["mpegcoder", "ffmpeg"] {
        if of(publisher, "rtmps").is_empty() || of(publisher, "rtmp").is_empty() {
            continue;
        }
        md.push_str(&format!(
            "\n{publisher}: RTMPS / RTMP CPU {:.2}×, RSS {:.2}×.",
            pick(publisher, "rtmps", |r| r.cpu_s) / pick(publisher, "rtmp", |r| r.cpu_s),
            pick(publisher, "rtmps", |r| r.rss_mib) / pick(publisher, "rtmp", |r| r.rss_mib)
        ));
    }
    md.push('\n');
    md
}
