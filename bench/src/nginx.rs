//! nginx with the RTMP module as a real receiving server, recording every stream, started in
//! its own directory (config, pid, logs, recordings) on a free loopback port and stopped by its
//! PID.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// Path of the RTMP module shipped by Debian's libnginx-mod-rtmp.
pub const RTMP_MODULE: &str = "/usr/lib/nginx/modules/ngx_rtmp_module.so";

/// A running nginx.
#[derive(Debug)]
pub struct Nginx {
    /// Its RTMP port.
    pub port: u16,
    dir: PathBuf,
    record: PathBuf,
    child: Child,
}

impl Nginx {
    /// Starts nginx in `dir` (created), recording every stream, waiting until it listens.
    pub fn start(nginx: &Path, dir: &Path, connections: usize) -> Result<Nginx> {
        Nginx::start_with(nginx, dir, connections, true)
    }

    /// The same; `record`: record every stream (else it only forwards them to players).
    pub fn start_with(
        nginx: &Path,
        dir: &Path,
        connections: usize,
        record_streams: bool,
    ) -> Result<Nginx> {
        let record = dir.join("rec");
        std::fs::create_dir_all(&record)
            .with_context(|| format!("cannot create {}", record.display()))?;
        // The worker runs as `nobody`: it must be able to write the recordings.
        for d in [dir, record.as_path()] {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o777))?;
        }
        let port = free_port()?;
        let recording = if record_streams {
            format!(
                r#"record all;
      record_path {rec};
      record_unique off;
      exec_record_done /bin/sh -c "echo done > $dirname/$basename.done";"#,
                rec = record.display()
            )
        } else {
            "record off;".to_string()
        };
        let conf = format!(
            r#"load_module {RTMP_MODULE};
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile {files};
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections {files}; }}
rtmp {{
  server {{
    listen 127.0.0.1:{port};
    chunk_size 4096;
    application live {{
      live on;
      {recording}
    }}
  }}
}}
"#,
            files = (connections * 2 + 64).max(1024),
            dir = dir.display(),
        );
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf)?;
        let log = std::fs::File::create(dir.join("stderr.log"))?;
        let child = Command::new(nginx)
            .arg("-p")
            .arg(dir)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("cannot start {}", nginx.display()))?;
        let mut me = Nginx {
            port,
            dir: dir.to_path_buf(),
            record,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !listening(port) {
            if Instant::now() >= deadline || matches!(me.child.try_wait(), Ok(Some(_))) {
                let log = me.log();
                me.stop();
                bail!("nginx did not listen on port {port}: {log}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(me)
    }

    /// The publish URL prefix: the stream key follows.
    pub fn url(&self, key: &str) -> String {
        format!("rtmp://127.0.0.1:{}/live/{key}", self.port)
    }

    /// Waits until the recordings of all `keys` are closed (the record-done hook ran), at most
    /// `timeout`; returns the keys still open.
    pub fn wait_recordings(&self, keys: &[String], timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let open: Vec<String> = keys
                .iter()
                .filter(|k| !self.record.join(format!("{k}.done")).exists())
                .cloned()
                .collect();
            if open.is_empty() || Instant::now() >= deadline {
                return open;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The recording of `key`.
    pub fn recording(&self, key: &str) -> PathBuf {
        self.record.join(format!("{key}.flv"))
    }

    /// nginx's logs so far.
    pub fn log(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.dir.join(f)).unwrap_or_default();
        read("error.log") + &read("stderr.log")
    }

    /// Stops nginx: SIGTERM to the master (which stops its worker), SIGKILL after 5 s.
    pub fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        for worker in crate::process::children(self.child.id()) {
            let _ = Command::new("kill")
                .args(["-KILL", &worker.to_string()])
                .status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// True when a socket listens on TCP `port` (read from /proc: no connection is made).
fn listening(port: u16) -> bool {
    let needle = format!(":{port:04X}");
    std::fs::read_to_string("/proc/net/tcp")
        .map(|s| {
            s.lines().skip(1).any(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                cols.get(1).is_some_and(|a| a.ends_with(&needle)) && cols.get(3) == Some(&"0A")
            })
        })
        .unwrap_or(false)
}
