//! `mpegcoder push --loop -1 --reconnect --codec copy` while its server is killed and
//! restarted on the same port again and again, at random moments: GStreamer's RTSP server
//! (RTP over TCP and over UDP) and nginx-rtmp. Each incarnation of the server records what it
//! received into its own file, and every recording is checked against the source:
//!
//! - it decodes cleanly (`ffmpeg -v error` prints nothing), its first packet is a key frame
//!   and its first frame is one of the source's key frames;
//! - its frames are consecutive frames of the looped source (every frame checked by its MD5,
//!   matched by position modulo the clip's length), with increasing DTS;
//! - between two recordings, the frames missing (from the source positions of the last frame
//!   of one and the first of the next) are at most what the outage explains: the time from
//!   the kill to the new session, times the frame rate, plus one GOP (the wait for a key frame
//!   in copy mode), plus the frames the pusher sent that never made it into a file (in flight
//!   at the kill, measured from the counts). And at least what the server's absence forces: a
//!   resumed stream does not catch up with a burst of stale frames.
//! - The counts add up: the frames of all recordings plus the frames missing between them
//!   are the timeline's frames, which the pusher's statistics split into sent and dropped.
//!
//! Then Ctrl-C (SIGINT to the pusher's PID): exit 130, and the `--stats-json` summary has one
//! reconnect per session after the first, and the destination's state, counts and outage.
//!
//! The schedule is random (connected 1-2 s, down 0.3-1.2 s, 10 restarts) from a seed printed
//! in every failure message; `MPEGCODER_RECONNECT_SEED=N` replays one.
#![allow(clippy::unwrap_used)]

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mpegcoder_protocol_tests::cli::spawn_cli;
use mpegcoder_protocol_tests::*;

/// Server restarts per run.
const RESTARTS: usize = 10;
/// How long the pusher stays connected before the next kill (after its session started).
const CONNECTED_S: (f64, f64) = (1.0, 2.0);
/// How long the server stays down, from the kill to the start of the next incarnation (a
/// GStreamer server then needs some 0.3-0.5 s more to listen).
const DOWN_S: (f64, f64) = (0.3, 1.2);
/// The clip: 4 s at 30 fps, a key frame every 15 frames (0.5 s). Four seconds, so that the
/// frames missing across an outage (up to about 3 s with the backoff) are known from the
/// source positions, which repeat every loop.
const FPS: f64 = 30.0;
const GOP: usize = 15;
const FRAMES: u32 = 120;
/// How late a resumed stream's first frame may be against the moment the server came back:
/// the pacer's lead (10 ms) and late threshold (200 ms), and some scheduling.
const RESUME_LATENESS_S: f64 = 0.3;
/// Stream key of the RTMP push.
const KEY: &str = "chaos";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proto {
    RtspTcp,
    RtspUdp,
    Rtmp,
}

/// xorshift64*: the schedule's random numbers, reproducible from the seed.
struct Rng(u64);

impl Rng {
    fn next_f64(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn between(&mut self, (lo, hi): (f64, f64)) -> Duration {
        Duration::from_secs_f64(lo + (hi - lo) * self.next_f64())
    }
}

fn seed() -> u64 {
    std::env::var("MPEGCODER_RECONNECT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        })
}

enum Server {
    Rtsp(GstRtspRecord),
    Rtmp(NginxRtmp),
}

impl Server {
    fn start(proto: Proto, dir: &std::path::Path) -> Server {
        match proto {
            Proto::Rtmp => Server::Rtmp(NginxRtmp::start(dir)),
            Proto::RtspTcp | Proto::RtspUdp => Server::Rtsp(GstRtspRecord::start_with(
                dir,
                GstOptions {
                    // Matroska: the recording keeps the sender's timestamps (the RTP times).
                    audio: true,
                    // Nothing held back in a jitterbuffer when the server is killed.
                    latency_ms: Some(0),
                    // Nothing held back in memory either: a kill loses only what was in flight.
                    unbuffered: true,
                    protocols: Some(if proto == Proto::RtspUdp {
                        "udp"
                    } else {
                        "tcp"
                    }),
                    ..GstOptions::default()
                },
            )),
        }
    }

    fn url(&self) -> String {
        match self {
            Server::Rtsp(s) => s.url(None),
            Server::Rtmp(s) => s.url(KEY),
        }
    }

    fn kill(&mut self) {
        match self {
            Server::Rtsp(s) => s.kill(),
            Server::Rtmp(s) => s.kill(),
        }
    }

    fn restart(&mut self) {
        match self {
            Server::Rtsp(s) => s.restart(),
            Server::Rtmp(s) => s.restart(),
        }
    }

    /// Publisher sessions of the current incarnation.
    fn sessions(&self) -> usize {
        match self {
            Server::Rtsp(s) => s.sessions(),
            Server::Rtmp(s) => s.sessions(KEY),
        }
    }

    /// The current incarnation's recording.
    fn recording(&self) -> PathBuf {
        match self {
            Server::Rtsp(s) => s.out.clone(),
            Server::Rtmp(s) => s.recording_path(KEY),
        }
    }

    /// Waits for the current incarnation to close its recording after the publisher left.
    fn finish(&self) -> PathBuf {
        match self {
            Server::Rtsp(s) => {
                s.wait_recording(Duration::from_millis(300), Duration::from_secs(15))
            }
            Server::Rtmp(s) => s.wait_recording(KEY, Duration::from_secs(15)),
        }
    }

    fn log(&self) -> String {
        match self {
            Server::Rtsp(s) => s.log(),
            Server::Rtmp(s) => s.log(),
        }
    }
}

/// The pusher, killed by its PID if the test ends while it runs; its stderr read in the
/// background (so a full pipe never blocks it).
struct Push {
    child: Child,
    stderr: Option<JoinHandle<String>>,
}

impl Push {
    fn spawn(args: &[&str]) -> Push {
        let mut child = spawn_cli(env!("CARGO_BIN_EXE_mpegcoder"), args);
        let mut pipe = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = pipe.read_to_string(&mut s);
            s
        });
        Push {
            child,
            stderr: Some(stderr),
        }
    }

    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Kills it (if needed) and returns what it printed.
    fn kill_and_log(&mut self) -> String {
        if self.running() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        self.stderr
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default()
    }

    /// SIGINT, then its exit status and stderr (killed after `timeout`).
    fn interrupt(&mut self, timeout: Duration) -> (Option<i32>, String) {
        let ok = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "cannot signal the pusher");
        let deadline = Instant::now() + timeout;
        while self.running() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let timed_out = self.running();
        let code = self.child.try_wait().ok().flatten().and_then(|s| s.code());
        let log = self.kill_and_log();
        assert!(
            !timed_out,
            "the pusher did not exit within {timeout:?} of SIGINT; stderr: {log}"
        );
        (code, log)
    }
}

impl Drop for Push {
    fn drop(&mut self) {
        if self.running() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One outage, as the test saw it: when it sent the kill, when the server had exited, when
/// it started the next incarnation, and when that incarnation saw the publisher's session.
#[derive(Debug, Clone, Copy)]
struct Outage {
    killed: Instant,
    exited: Instant,
    spawned: Instant,
    resumed: Instant,
}

impl Outage {
    /// Kill to new session: the longest the pusher can have been disconnected.
    fn down(&self) -> f64 {
        (self.resumed - self.killed).as_secs_f64()
    }

    /// Server gone to new server started: the pusher cannot have been connected then.
    fn absent(&self) -> f64 {
        (self.spawned - self.exited).as_secs_f64()
    }
}

/// One recording: its file, how many frames it holds, the source position of its first
/// frame, and how many frames of the looped source its frames cover (first to last).
struct Recording {
    path: PathBuf,
    frames: usize,
    start: usize,
    span: usize,
}

/// The frames a server holds when it received `n` packets of the looped clip (in decoding
/// order) from the key frame shown at source position `start`: their positions in the looped
/// source (counted from `start`'s pass), in presentation order. With B-frames a stream cut
/// after a P-frame lacks the B-frames shown before it (they are sent after it).
fn arrived_positions(clip: &Clip, start: usize, n: usize) -> Vec<usize> {
    let len = clip.packets.len();
    let mut by_pts: Vec<usize> = (0..len).collect();
    by_pts.sort_by_key(|&i| clip.packets[i].pts);
    // The presentation position of each packet, by decoding index.
    let mut shown = vec![0; len];
    for (pos, &i) in by_pts.iter().enumerate() {
        shown[i] = pos;
    }
    let first = by_pts[start];
    let mut out: Vec<usize> = (first..first + n)
        .map(|i| (i / len) * len + shown[i % len])
        .collect();
    out.sort_unstable();
    out
}

fn json_file(path: &std::path::Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}: {text}", path.display()))
}

fn chaos(proto: Proto) {
    let tools = match proto {
        Proto::Rtmp => NGINX_TOOLS,
        _ => GST_TOOLS,
    };
    let name = format!("reconnect_{proto:?}");
    if !require(&name, tools) {
        return;
    }
    let seed = seed();
    let mut rng = Rng(seed | 1);
    let ctx = format!("{proto:?} (seed {seed}; replay with MPEGCODER_RECONNECT_SEED={seed})");
    let run_started = Instant::now();
    let dir = TempDir::new(&format!("reconnect-{proto:?}"));
    let clip = Clip::generate(
        dir.path(),
        ClipSpec::default().with_frames(FRAMES).with_gop(GOP as u32),
    );
    assert_distinct(&clip.framemd5);
    let len = clip.framemd5.len();
    assert_eq!(len, FRAMES as usize);
    let keys = clip.key_frame_positions();
    assert_eq!(keys, (0..len).step_by(GOP).collect::<Vec<_>>());

    let mut server = Server::start(proto, dir.path());
    let url = server.url();
    let stats = dir.path().join("stats.json");
    let mut args = vec![
        "push",
        clip.mp4.to_str().unwrap(),
        &url,
        "--codec",
        "copy",
        "--loop",
        "-1",
        "--reconnect",
        "--stats-json",
        stats.to_str().unwrap(),
    ];
    if proto == Proto::RtspUdp {
        args.extend(["--transport", "udp"]);
    }
    let mut push = Push::spawn(&args);

    // Waits for the current incarnation to see the publisher's session.
    let wait_session = |server: &Server, push: &mut Push, what: &str| -> Instant {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if server.sessions() > 0 {
                return Instant::now();
            }
            if !push.running() || Instant::now() > deadline {
                let log = push.kill_and_log();
                panic!(
                    "{ctx}: no publisher session {what} (pusher {}); pusher stderr: {log}; \
                     server log: {}",
                    if push.running() { "running" } else { "exited" },
                    server.log()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    };

    wait_session(&server, &mut push, "at the start");
    let mut files = Vec::new();
    let mut sessions = Vec::new();
    let mut outages: Vec<Outage> = Vec::new();
    for i in 0..RESTARTS {
        std::thread::sleep(rng.between(CONNECTED_S));
        let down = rng.between(DOWN_S);
        let killed = Instant::now();
        server.kill();
        let exited = Instant::now();
        files.push(server.recording());
        sessions.push(server.sessions());
        std::thread::sleep((killed + down).saturating_duration_since(Instant::now()));
        let spawned = Instant::now();
        server.restart();
        let resumed = wait_session(&server, &mut push, &format!("after restart {}", i + 1));
        outages.push(Outage {
            killed,
            exited,
            spawned,
            resumed,
        });
    }
    std::thread::sleep(rng.between(CONNECTED_S));
    let (code, stderr) = push.interrupt(Duration::from_secs(15));
    let last = server.finish();
    files.push(last);
    sessions.push(server.sessions());
    let schedule: Vec<String> = outages
        .iter()
        .map(|o| format!("down {:.2} s (absent {:.2} s)", o.down(), o.absent()))
        .collect();
    let ctx = format!("{ctx}, outages [{}]", schedule.join(", "));
    eprintln!(
        "{ctx}: pushing took {:.1} s",
        run_started.elapsed().as_secs_f64()
    );

    // Ctrl-C: exit 130, a clean teardown, no error line.
    assert_eq!(code, Some(130), "{ctx}: exit status; stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{ctx}: {stderr}");
    assert!(
        !stderr.lines().any(|l| l.starts_with("error:")),
        "{ctx}: error lines after a push that ended connected: {stderr}"
    );
    // Each incarnation took exactly one session: the pusher never dropped a healthy server
    // (which would also have overwritten that incarnation's recording).
    assert!(
        sessions.iter().all(|&n| n == 1),
        "{ctx}: sessions per incarnation {sessions:?}; stderr: {stderr}"
    );

    // What arrived.
    let mut recordings = Vec::new();
    for (k, path) in files.iter().enumerate() {
        let what = format!("{ctx}: recording {k} ({})", path.display());
        let (md5, errors) = framemd5_and_errors(path);
        assert!(
            errors.is_empty(),
            "{what} does not decode cleanly: {errors}"
        );
        assert!(!md5.is_empty(), "{what}: no frames");
        let start = clip
            .framemd5
            .iter()
            .position(|h| *h == md5[0])
            .unwrap_or_else(|| panic!("{what}: the first frame is no source frame"));
        assert!(
            keys.contains(&start),
            "{what} starts at source frame {start}, not a key frame"
        );
        assert_eq!(
            packet_keys(path, "v:0").first(),
            Some(&true),
            "{what}: first packet"
        );
        if k == 0 {
            assert_eq!(
                start, 0,
                "{what}: the stream starts at the clip's first frame"
            );
        }
        let ts = check_timestamps(path);
        assert_eq!(
            ts.non_monotonic_dts, 0,
            "{what}: DTS not increasing: {ts:?}"
        );
        // Every packet that arrived is one frame, and they are the packets that follow each
        // other in the looped source from the first key frame on.
        assert_eq!(ts.packets, md5.len(), "{what}: packets vs decoded frames");
        let expected = arrived_positions(&clip, start, md5.len());
        for (i, h) in md5.iter().enumerate() {
            let want = expected[i] % len;
            assert!(
                *h == clip.framemd5[want],
                "{what}: frame {i} is not source frame {want} (a frame is missing or \
                 damaged inside one session; the recording started at source frame {start})"
            );
        }
        recordings.push(Recording {
            path: path.clone(),
            frames: md5.len(),
            start,
            span: expected.last().unwrap() - expected[0] + 1,
        });
    }

    // What the pusher says.
    let json = json_file(&stats);
    assert_eq!(json["interrupted"], true, "{ctx}: {json}");
    let dests = json["destinations"]
        .as_array()
        .unwrap_or_else(|| panic!("{ctx}: {json}"));
    assert_eq!(dests.len(), 1, "{ctx}: {json}");
    let d = &dests[0];
    let number = |v: &serde_json::Value, what: &str| {
        v.as_u64()
            .unwrap_or_else(|| panic!("{ctx}: {what} is not a count: {json}"))
    };
    assert_eq!(d["url"], url.as_str(), "{ctx}");
    assert_eq!(d["state"], "closed", "{ctx}: {d}");
    assert!(d["error"].is_null(), "{ctx}: {d}");
    assert_eq!(
        number(&d["audio_frames_sent"], "audio_frames_sent"),
        0,
        "{ctx}"
    );
    let reconnects = number(&json["reconnects"], "reconnects");
    assert_eq!(
        number(&d["reconnects"], "destination reconnects"),
        reconnects,
        "{ctx}"
    );
    // One reconnect per session after the first (each session but the first came from a
    // reconnection), so at least one per restart.
    let total_sessions: usize = sessions.iter().sum();
    assert_eq!(
        reconnects,
        total_sessions as u64 - 1,
        "{ctx}: reconnects vs sessions seen by the servers ({sessions:?})"
    );
    assert!(reconnects >= RESTARTS as u64, "{ctx}");
    let outage_s = d["outage_s"].as_f64().unwrap();
    let top_outage = json["outage_s"].as_f64().unwrap();
    assert!((outage_s - top_outage).abs() < 1e-6, "{ctx}: {json}");
    // The pusher's outages lie within the test's (loss seen after the kill, reconnected
    // before the server logged the session).
    let down: f64 = outages.iter().map(Outage::down).sum();
    eprintln!("{ctx}: outage_s {outage_s:.3}, kills to sessions {down:.3} s");
    assert!(
        outage_s > 0.0 && outage_s <= down + 0.05,
        "{ctx}: outage_s {outage_s:.3}, the test measured {down:.3} s from kills to sessions"
    );
    let sent = number(&d["frames_sent"], "frames_sent");
    let dropped = number(&d["frames_dropped"], "frames_dropped");
    assert_eq!(
        number(
            &json["destination_frames_dropped"],
            "destination_frames_dropped"
        ),
        dropped,
        "{ctx}"
    );

    // Frames the pusher sent that no recording holds (in flight when a server died).
    let recorded: usize = recordings.iter().map(|r| r.frames).sum();
    assert!(
        recorded as u64 <= sent,
        "{ctx}: the recordings hold {recorded} frames, the pusher sent {sent}"
    );
    let lost_in_flight = sent as usize - recorded;
    // The gaps.
    let mut missing_total = 0;
    for (k, o) in outages.iter().enumerate() {
        let (a, b) = (&recordings[k], &recordings[k + 1]);
        let last = a.start + a.span - 1;
        let gap_mod = (b.start + len - (last % len) - 1) % len;
        // The server was absent for `absent` seconds: the frames due then cannot have
        // arrived, unless sent late (a catch-up burst), which the lateness bound refuses.
        let at_least = ((o.absent() - RESUME_LATENESS_S) * FPS).floor().max(0.0) as usize;
        // The first count at or above that with the observed source positions (unique while
        // the outages stay below a loop, 4 s).
        let missing = at_least + (gap_mod + len - at_least % len) % len;
        let at_most = (o.down() * FPS).ceil() as usize + GOP + lost_in_flight + 2;
        eprintln!(
            "{proto:?} outage {k}: down {:.2} s, absent {:.2} s: {missing} frames missing \
             (bounds {at_least}..={at_most}); recording {} has {} frames from source {}",
            o.down(),
            o.absent(),
            k + 1,
            b.frames,
            b.start
        );
        assert!(
            missing <= at_most,
            "{ctx}: outage {k} (down {:.2} s, server absent {:.2} s): {missing} frames missing \
             between {} (last source frame {}) and {} (first source frame {}), more than \
             {at_most} (down x fps + one GOP + {lost_in_flight} lost in flight + 2); or a \
             burst of stale frames",
            o.down(),
            o.absent(),
            a.path.display(),
            last % len,
            b.path.display(),
            b.start
        );
        missing_total += missing;
    }
    // Only a few frames per kill can be in flight.
    assert!(
        lost_in_flight <= 3 * RESTARTS,
        "{ctx}: {lost_in_flight} frames sent but not recorded over {RESTARTS} kills"
    );
    // The frames of the recordings, those missing between them, and the B-frames missing
    // before the last frame of a recording that was cut by a kill (see `arrived_positions`)
    // are the timeline's frames, every one either sent to the destination or dropped for it.
    // (The B-frames missing at the end of the last recording were never released: Ctrl-C
    // ended the timeline after their P-frame.)
    let holes: usize = recordings[..RESTARTS]
        .iter()
        .map(|r| r.span - r.frames)
        .sum();
    assert_eq!(
        (recorded + missing_total + holes) as u64,
        sent + dropped,
        "{ctx}: the timeline had {} frames (recorded {recorded} + missing {missing_total} + \
         {holes} B-frames cut by kills), the destination's frames_sent {sent} + frames_dropped \
         {dropped} count {} (lost in flight {lost_in_flight}, {RESTARTS} losses)",
        recorded + missing_total + holes,
        sent + dropped
    );
    eprintln!(
        "{ctx}: {} recordings, {recorded} frames recorded, {missing_total} missing, \
         {lost_in_flight} lost in flight, {reconnects} reconnects, outage {outage_s:.2} s; \
         whole test {:.1} s",
        recordings.len(),
        run_started.elapsed().as_secs_f64()
    );
}

#[test]
fn rtsp_tcp_push_survives_ten_server_restarts() {
    chaos(Proto::RtspTcp);
}

#[test]
fn rtsp_udp_push_survives_ten_server_restarts() {
    chaos(Proto::RtspUdp);
}

#[test]
fn rtmp_push_survives_ten_server_restarts() {
    chaos(Proto::Rtmp);
}
