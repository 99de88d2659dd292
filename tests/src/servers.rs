//! Real servers on loopback, each on a free port, killed by its own PID on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_tcp_port, wait_listening, wait_port_free, Clip, ServerProcess};

/// The script that runs GStreamer's RTSP server in RECORD mode.
pub fn gst_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("servers/gst_rtsp_record.py")
}

/// GStreamer's RTSP server with a RECORD mount; what arrives is written as Annex B to a file
/// (with [`GstOptions::audio`], H.264 and AAC into one Matroska file).
#[derive(Debug)]
pub struct GstRtspRecord {
    /// TCP port of the RTSP server.
    pub port: u16,
    /// The RECORD mount (e.g. "/record").
    pub mount: String,
    /// The PLAY relay mount, if requested.
    pub relay_mount: Option<String>,
    /// Recording video and audio into Matroska ([`GstOptions::audio`]).
    pub audio: bool,
    /// The file written from what arrives: Annex B, or Matroska with [`GstOptions::audio`].
    /// Each incarnation ([`GstRtspRecord::restart`]) writes its own file.
    pub out: PathBuf,
    /// How many times the server was restarted on its port (0 for the first process).
    pub incarnation: u32,
    dir: PathBuf,
    opts: GstOptions,
    proc: ServerProcess,
}

/// Options for [`GstRtspRecord::start`].
#[derive(Debug, Clone, Default)]
pub struct GstOptions {
    /// Require credentials (user, password) with this method ("basic" or "digest").
    pub auth: Option<(String, String, &'static str)>,
    /// Also serve what arrives for PLAY at this mount.
    pub relay_mount: Option<String>,
    /// Lower transports the server accepts: "tcp", "udp" or "both" (default).
    pub protocols: Option<&'static str>,
    /// Take H.264 video and AAC audio (RFC 3640 mpeg4-generic) and record both into one
    /// Matroska file, timestamps following the publisher's RTP timestamps and sender reports;
    /// a relay mount then serves both tracks. A publisher may announce either track alone, in
    /// either order (see `servers/gst_rtsp_record.py`).
    pub audio: bool,
    /// The RECORD media's jitterbuffer latency in ms with [`GstOptions::audio`] (the script's
    /// `--latency`, default 500). A server killed mid-stream loses what its jitterbuffer holds:
    /// tests that kill it use 0.
    pub latency_ms: Option<u32>,
    /// Write every buffer to the recording at once (the script's `--unbuffered`): by default
    /// up to 64 KiB wait in memory, which a killed server never writes.
    pub unbuffered: bool,
}

impl GstOptions {
    /// H.264 and AAC ([`GstOptions::audio`]) with a PLAY relay of both at `mount`.
    pub fn av_relay(mount: &str) -> GstOptions {
        GstOptions {
            audio: true,
            relay_mount: Some(mount.to_string()),
            ..GstOptions::default()
        }
    }
}

impl GstRtspRecord {
    /// Starts the server in `dir` with default options.
    pub fn start(dir: &Path) -> GstRtspRecord {
        GstRtspRecord::start_with(dir, GstOptions::default())
    }

    /// Starts the server in `dir`.
    pub fn start_with(dir: &Path, opts: GstOptions) -> GstRtspRecord {
        GstRtspRecord::start_on_port(dir, opts, free_tcp_port())
    }

    /// Starts the server in `dir` on `port` (which must be free).
    pub fn start_on_port(dir: &Path, opts: GstOptions, port: u16) -> GstRtspRecord {
        let (proc, out) = GstRtspRecord::spawn(dir, &opts, port, 0);
        GstRtspRecord {
            port,
            mount: "/record".into(),
            relay_mount: opts.relay_mount.clone(),
            audio: opts.audio,
            out,
            incarnation: 0,
            dir: dir.to_path_buf(),
            opts,
            proc,
        }
    }

    /// Starts incarnation `n` of the server on `port`; its recording and its log are
    /// `gst-record-PORT[-N].EXT` and `gst-PORT[-N].log` in `dir` (no suffix for the first).
    fn spawn(dir: &Path, opts: &GstOptions, port: u16, n: u32) -> (ServerProcess, PathBuf) {
        let ext = if opts.audio { "mkv" } else { "h264" };
        let suffix = if n == 0 {
            String::new()
        } else {
            format!("-{n}")
        };
        let out = dir.join(format!("gst-record-{port}{suffix}.{ext}"));
        let mut cmd = Command::new("/usr/bin/python3");
        cmd.arg(gst_script())
            .args(["--port", &port.to_string(), "--mount", "/record", "--out"])
            .arg(&out)
            .stdout(Stdio::piped());
        if let Some((user, pass, method)) = &opts.auth {
            cmd.args(["--user", user, "--password", pass, "--auth", method]);
        }
        if let Some(relay) = &opts.relay_mount {
            cmd.args(["--relay-mount", relay]);
        }
        if let Some(p) = opts.protocols {
            cmd.args(["--protocols", p]);
        }
        if opts.audio {
            cmd.arg("--audio");
        }
        if let Some(ms) = opts.latency_ms {
            cmd.args(["--latency", &ms.to_string()]);
        }
        if opts.unbuffered {
            cmd.arg("--unbuffered");
        }
        let mut proc = ServerProcess::spawn(
            "GStreamer RTSP server",
            cmd,
            dir.join(format!("gst-{port}{suffix}.log")),
        );
        proc.wait_stdout_line("READY", Duration::from_secs(15));
        wait_listening(port, Duration::from_secs(5), "GStreamer RTSP server");
        (proc, out)
    }

    /// Stops the server now (SIGTERM to its PID, SIGKILL after 2 s), as a crash would end it
    /// for a publisher (its connections close), and waits until its port is free. What it
    /// recorded so far stays in [`GstRtspRecord::out`], unfinalised.
    pub fn kill(&mut self) {
        self.proc.stop(Duration::from_secs(2));
        wait_port_free(self.port, Duration::from_secs(5), "GStreamer RTSP server");
    }

    /// Starts a new incarnation on the same port with the same options (killing the running
    /// one first), writing a new recording ([`GstRtspRecord::out`] changes) and a new log.
    pub fn restart(&mut self) {
        self.kill();
        let n = self.incarnation + 1;
        let (proc, out) = GstRtspRecord::spawn(&self.dir, &self.opts, self.port, n);
        self.proc = proc;
        self.out = out;
        self.incarnation = n;
    }

    /// True while the current incarnation runs.
    pub fn is_running(&mut self) -> bool {
        self.proc.is_running()
    }

    /// The PID of the current incarnation.
    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// Publisher sessions (ANNOUNCEs) the current incarnation has taken so far.
    pub fn sessions(&self) -> usize {
        self.log().matches("record session: ").count()
    }

    /// The RECORD URL, with optional credentials.
    pub fn url(&self, creds: Option<(&str, &str)>) -> String {
        let auth = creds.map(|(u, p)| format!("{u}:{p}@")).unwrap_or_default();
        format!("rtsp://{auth}127.0.0.1:{}{}", self.port, self.mount)
    }

    /// The PLAY relay URL (panics if no relay mount was requested).
    pub fn relay_url(&self) -> String {
        format!(
            "rtsp://127.0.0.1:{}{}",
            self.port,
            self.relay_mount.as_deref().expect("relay mount requested")
        )
    }

    /// Waits until the recording stops growing for `quiet` (the publisher's TEARDOWN makes the
    /// server finish the file), up to `timeout`; returns its path. With
    /// [`GstOptions::audio`] it waits instead for the server to report the file finalised (the
    /// EOS of the teardown went through the muxer and the pipeline stopped).
    pub fn wait_recording(&self, quiet: Duration, timeout: Duration) -> PathBuf {
        if self.audio {
            let marker = format!("recording finalised: {}", self.out.display());
            let deadline = Instant::now() + timeout;
            while !self.proc.log_text().contains(&marker) {
                assert!(
                    Instant::now() < deadline,
                    "GStreamer did not finalise {} within {timeout:?}; server log: {}",
                    self.out.display(),
                    self.proc.log_text()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        } else {
            wait_file_settled(&self.out, quiet, timeout, || self.proc.log_text());
        }
        self.out.clone()
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        self.proc.log_text()
    }
}

fn wait_file_settled(
    path: &Path,
    quiet: Duration,
    timeout: Duration,
    log: impl Fn() -> String,
) -> u64 {
    let deadline = Instant::now() + timeout;
    let mut last = (u64::MAX, Instant::now());
    loop {
        let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        if size != last.0 {
            last = (size, Instant::now());
        } else if size > 0 && last.1.elapsed() >= quiet {
            return size;
        }
        assert!(
            Instant::now() < deadline,
            "recording {} not complete within {timeout:?} (size {size}); server log: {}",
            path.display(),
            log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// nginx with the RTMP module: application `live` (live on, record all).
#[derive(Debug)]
pub struct NginxRtmp {
    /// TCP port of the RTMP server.
    pub port: u16,
    /// Directory holding the recordings (`<stream>.flv`) of the current incarnation: each
    /// incarnation ([`NginxRtmp::restart`]) records into its own directory.
    pub record_dir: PathBuf,
    /// How many times the server was restarted on its port (0 for the first process).
    pub incarnation: u32,
    dir: PathBuf,
    base: PathBuf,
    proc: ServerProcess,
}

/// Path of the RTMP module shipped by Debian's libnginx-mod-rtmp.
pub const NGINX_RTMP_MODULE: &str = "/usr/lib/nginx/modules/ngx_rtmp_module.so";

impl NginxRtmp {
    /// Starts nginx in `dir` (its own config, pid, logs and record directory).
    pub fn start(dir: &Path) -> NginxRtmp {
        NginxRtmp::start_on_port(dir, free_tcp_port())
    }

    /// Starts nginx in `dir` on `port` (which must be free).
    pub fn start_on_port(dir: &Path, port: u16) -> NginxRtmp {
        let (proc, ndir, record_dir) = NginxRtmp::spawn(dir, port, 0);
        NginxRtmp {
            port,
            record_dir,
            incarnation: 0,
            dir: ndir,
            base: dir.to_path_buf(),
            proc,
        }
    }

    /// Starts incarnation `n` on `port` in `dir/nginx-PORT[-N]` (no suffix for the first):
    /// the process, its directory and its record directory.
    fn spawn(dir: &Path, port: u16, n: u32) -> (ServerProcess, PathBuf, PathBuf) {
        let ndir = if n == 0 {
            dir.join(format!("nginx-{port}"))
        } else {
            dir.join(format!("nginx-{port}-{n}"))
        };
        let record_dir = ndir.join("rec");
        std::fs::create_dir_all(&record_dir).expect("create nginx dirs");
        // The worker runs as `nobody`: the record directory must be writable by it.
        for d in [&ndir, &record_dir] {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o777))
                .expect("chmod nginx dirs");
        }
        let conf = format!(
            r#"load_module {module};
daemon off;
master_process on;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 1024; }}
rtmp {{
  server {{
    listen 127.0.0.1:{port};
    chunk_size 4096;
    application live {{
      live on;
      record all;
      record_path {rec};
      record_unique off;
      exec_record_done /bin/sh -c "echo done > $dirname/$basename.done";
    }}
  }}
}}
"#,
            module = NGINX_RTMP_MODULE,
            dir = ndir.display(),
            rec = record_dir.display(),
        );
        let conf_path = ndir.join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("write nginx.conf");
        let mut cmd = Command::new("nginx");
        cmd.arg("-p")
            .arg(&ndir)
            .arg("-e")
            .arg(ndir.join("error.log"))
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null());
        let proc = ServerProcess::spawn("nginx-rtmp", cmd, ndir.join("stderr.log"));
        wait_listening(port, Duration::from_secs(10), "nginx-rtmp");
        (proc, ndir, record_dir)
    }

    /// Stops nginx now (SIGTERM to the master's PID: its worker closes every connection and
    /// exits; SIGKILL after 2 s) and waits until its port is free. The recordings stay in
    /// [`NginxRtmp::record_dir`] (without the record-done marker).
    pub fn kill(&mut self) {
        self.proc.stop(Duration::from_secs(2));
        wait_port_free(self.port, Duration::from_secs(5), "nginx-rtmp");
    }

    /// Starts a new incarnation on the same port (killing the running one first), recording
    /// into a new [`NginxRtmp::record_dir`].
    pub fn restart(&mut self) {
        self.kill();
        let n = self.incarnation + 1;
        let (proc, ndir, record_dir) = NginxRtmp::spawn(&self.base, self.port, n);
        self.proc = proc;
        self.dir = ndir;
        self.record_dir = record_dir;
        self.incarnation = n;
    }

    /// True while the current incarnation runs.
    pub fn is_running(&mut self) -> bool {
        self.proc.is_running()
    }

    /// The PID of the current incarnation's master process.
    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// The recording of stream `key` in the current incarnation (it may not exist yet).
    pub fn recording_path(&self, key: &str) -> PathBuf {
        self.record_dir.join(format!("{key}.flv"))
    }

    /// Publish sessions of stream `key` the current incarnation has taken so far (from the
    /// `publish: name='KEY'` lines of its log).
    pub fn sessions(&self, key: &str) -> usize {
        self.log()
            .matches(&format!("publish: name='{key}'"))
            .count()
    }

    /// The publish/play URL of stream `key` in application `live`.
    pub fn url(&self, key: &str) -> String {
        format!("rtmp://127.0.0.1:{}/live/{key}", self.port)
    }

    /// Waits until nginx has closed the recording of `key` (its record-done hook ran), up to
    /// `timeout`; returns the FLV path.
    pub fn wait_recording(&self, key: &str, timeout: Duration) -> PathBuf {
        let flv = self.record_dir.join(format!("{key}.flv"));
        // nginx-rtmp's $basename is the file name without its extension.
        let done = self.record_dir.join(format!("{key}.done"));
        let deadline = Instant::now() + timeout;
        while !done.exists() {
            assert!(
                Instant::now() < deadline,
                "nginx did not finish recording {key} within {timeout:?}; log: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        flv
    }

    /// nginx's error log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
            + &self.proc.log_text()
    }
}

/// Which protocol an [`FfmpegListener`] accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerKind {
    /// `ffmpeg -rtsp_flags listen -i rtsp://…` (accepts an ANNOUNCE/RECORD publisher).
    Rtsp,
    /// `ffmpeg -listen 1 -i rtmp://…` (accepts an RTMP publisher).
    Rtmp,
}

/// The ffmpeg CLI as a one-shot listening server: it accepts one publisher and copies what
/// arrives into a file (raw Annex B for RTSP, FLV for RTMP), exiting when the publisher leaves.
#[derive(Debug)]
pub struct FfmpegListener {
    /// TCP port.
    pub port: u16,
    /// Protocol.
    pub kind: ListenerKind,
    /// Output file.
    pub out: PathBuf,
    proc: ServerProcess,
}

impl FfmpegListener {
    /// Starts the listener; `timeout_s` bounds how long it waits for a publisher.
    pub fn start(dir: &Path, kind: ListenerKind, timeout_s: u32) -> FfmpegListener {
        let port = free_tcp_port();
        let mut cmd = Command::new("ffmpeg");
        cmd.args(["-v", "warning", "-nostdin", "-y"]);
        let out = match kind {
            ListenerKind::Rtsp => {
                // -timeout is in seconds for the RTSP listener.
                cmd.args(["-rtsp_flags", "listen", "-timeout", &timeout_s.to_string()])
                    .arg("-i")
                    .arg(format!("rtsp://127.0.0.1:{port}/live"));
                dir.join(format!("ffmpeg-rtsp-{port}.h264"))
            }
            ListenerKind::Rtmp => {
                cmd.args(["-listen", "1", "-timeout", &timeout_s.to_string()])
                    .arg("-i")
                    .arg(format!("rtmp://127.0.0.1:{port}/live/stream"));
                dir.join(format!("ffmpeg-rtmp-{port}.flv"))
            }
        };
        cmd.args(["-map", "0:v:0", "-c", "copy"]);
        match kind {
            // The parameter sets came in the SDP: write them in-band so the file decodes.
            ListenerKind::Rtsp => cmd.args(["-bsf:v", "dump_extra=freq=keyframe", "-f", "h264"]),
            ListenerKind::Rtmp => cmd.args(["-f", "flv"]),
        };
        cmd.arg(&out).stdout(Stdio::null());
        let proc = ServerProcess::spawn(
            "ffmpeg listener",
            cmd,
            dir.join(format!("ffmpeg-listener-{port}.log")),
        );
        wait_listening(port, Duration::from_secs(10), "ffmpeg listener");
        FfmpegListener {
            port,
            kind,
            out,
            proc,
        }
    }

    /// The URL a publisher should use.
    pub fn url(&self) -> String {
        match self.kind {
            ListenerKind::Rtsp => format!("rtsp://127.0.0.1:{}/live", self.port),
            ListenerKind::Rtmp => format!("rtmp://127.0.0.1:{}/live/stream", self.port),
        }
    }

    /// Waits for ffmpeg to finish (the publisher left) and returns the output file; panics with
    /// ffmpeg's log if it does not exit within `timeout` or exits with an error.
    pub fn finish(mut self, timeout: Duration) -> PathBuf {
        let exited = self.proc.wait_exit(timeout);
        let log = self.proc.log_text();
        assert!(
            exited,
            "ffmpeg listener did not exit within {timeout:?}; log: {log}"
        );
        assert!(
            self.out.exists(),
            "ffmpeg listener wrote no output; log: {log}"
        );
        self.out.clone()
    }

    /// ffmpeg's log so far.
    pub fn log(&self) -> String {
        self.proc.log_text()
    }
}

/// The ffmpeg CLI publishing at real time (`-re`) in the background: an independent publisher.
/// To an `rtmp://` URL as FLV, to an RTSP URL over TCP. Killed by its own PID on drop when it
/// is still running.
#[derive(Debug)]
pub struct FfmpegPublisher {
    child: Child,
}

impl FfmpegPublisher {
    /// Publishes the clip's video (`-map 0:v:0 -c copy`).
    pub fn start(url: &str, clip: &Clip) -> FfmpegPublisher {
        let mp4 = clip.mp4.to_string_lossy();
        FfmpegPublisher::spawn(&["-i", &mp4, "-map", "0:v:0", "-c", "copy"], url)
    }

    /// Publishes the clip's video and audio (`-map 0:v:0 -map 0:a:0 -c copy`).
    pub fn start_av(url: &str, clip: &Clip) -> FfmpegPublisher {
        let mp4 = clip.mp4.to_string_lossy();
        let args = ["-i", &mp4, "-map", "0:v:0", "-map", "0:a:0", "-c", "copy"];
        FfmpegPublisher::spawn(&args, url)
    }

    /// Publishes 3 s of a lavfi source, H.264 (160x120 at 15 fps, a key frame a second) and a
    /// 440 Hz tone (48 kHz, mono) encoded with `audio` (ffmpeg's codec and rate arguments).
    pub fn tone(url: &str, audio: &[&str]) -> FfmpegPublisher {
        let mut args = vec![
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=160x120:rate=15",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-t",
            "3",
            "-c:v",
            "libx264",
            "-g",
            "15",
            "-pix_fmt",
            "yuv420p",
        ];
        args.extend_from_slice(audio);
        FfmpegPublisher::spawn(&args, url)
    }

    /// `ffmpeg -re ARGS URL` with the output format of the URL's protocol: `args` name the
    /// input (the first one is read at real time) and the codecs.
    pub fn spawn(args: &[&str], url: &str) -> FfmpegPublisher {
        let format: &[&str] = if url.starts_with("rtmp") {
            &["-f", "flv"]
        } else {
            &["-rtsp_transport", "tcp", "-f", "rtsp"]
        };
        let child = Command::new("ffmpeg")
            .args(["-v", "error", "-nostdin", "-re"])
            .args(args)
            .args(format)
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start ffmpeg: {e}"));
        FfmpegPublisher { child }
    }

    /// True once ffmpeg exited.
    pub fn is_finished(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Waits for ffmpeg (at most `timeout`); panics if it failed or did not finish.
    pub fn wait(mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("ffmpeg publisher status") {
                let mut err = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    use std::io::Read;
                    let _ = e.read_to_string(&mut err);
                }
                assert!(status.success(), "ffmpeg publisher failed: {err}");
                return;
            }
            if Instant::now() > deadline {
                self.kill();
                panic!("ffmpeg publisher did not finish within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops ffmpeg now (by its PID) if it still runs.
    pub fn kill(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Drop for FfmpegPublisher {
    fn drop(&mut self) {
        self.kill();
    }
}
