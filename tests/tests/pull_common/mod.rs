//! Shared by the pull tests (tests/tests/pull_*.rs and crates/mpegcoder/tests/client*.rs):
//! a clip published live at real time, and a client collecting every frame's hash.
#![allow(clippy::unwrap_used, dead_code)]

use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mpegcoder::codec::PixelLayout;
use mpegcoder::transport::rtmp::{RtmpOptions, RtmpPublisher};
use mpegcoder::transport::rtsp::{RtspOptions, RtspPublisher};
use mpegcoder::transport::{AccessUnit, TimeBase, Track, VideoTrack};
use mpegcoder::{Client, ClientOptions, ClientStatus, FrameReceiver, PullOptions};
use mpegcoder_protocol_tests::{Clip, ClipSpec};

/// When readers join a live clip: mid-GOP (frame 19 or so of GOPs of 15), so they start at a
/// later key frame.
pub const JOIN_AFTER: Duration = Duration::from_millis(650);

/// A 3 s clip: 90 frames at 30 fps, a key frame every 15 frames, 2 B-frames.
pub fn live_spec() -> ClipSpec {
    ClipSpec {
        frames: 90,
        gop: 15,
        ..ClipSpec::default()
    }
}

/// The clip's track and access units, as a demuxer hands them to a publisher.
pub fn units(clip: &Clip) -> (VideoTrack, Vec<AccessUnit>) {
    let track = VideoTrack::from_extradata(&Bytes::from(clip.extradata.clone())).unwrap();
    let tb = TimeBase::new(clip.time_base.0, clip.time_base.1);
    let aus = clip
        .packets
        .iter()
        .map(|p| {
            AccessUnit::from_length_prefixed(
                &Bytes::from(p.data.clone()),
                4,
                p.pts,
                p.dts,
                tb,
                p.key,
            )
            .unwrap()
        })
        .collect();
    (track, aus)
}

/// A publisher sending a clip at real time (frame n at `start + dts_n − dts_0`) on its own
/// thread and runtime. `join` returns how many access units it sent.
pub struct LivePublisher {
    handle: JoinHandle<Result<usize, String>>,
}

impl LivePublisher {
    /// Starts publishing `clip` to `url` (rtsp:// over TCP, or rtmp://).
    pub fn start(url: &str, clip: &Clip) -> LivePublisher {
        let (track, aus) = units(clip);
        let url = url.to_string();
        let handle = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let paced = |aus: &[AccessUnit], i: usize, t0: tokio::time::Instant| {
                    let tb = aus[0].time_base;
                    t0 + Duration::from_secs_f64(tb.seconds(aus[i].dts - aus[0].dts))
                };
                if url.starts_with("rtmp") {
                    let mut p = RtmpPublisher::connect(
                        &url,
                        &[Track::from(&track)],
                        RtmpOptions::default(),
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                    let t0 = tokio::time::Instant::now();
                    for i in 0..aus.len() {
                        tokio::time::sleep_until(paced(&aus, i, t0)).await;
                        p.send(&aus[i]).await.map_err(|e| e.to_string())?;
                    }
                    p.close().await.map_err(|e| e.to_string())?;
                } else {
                    let mut p = RtspPublisher::connect(
                        &url,
                        &[Track::from(&track)],
                        RtspOptions::default(),
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                    let t0 = tokio::time::Instant::now();
                    for i in 0..aus.len() {
                        tokio::time::sleep_until(paced(&aus, i, t0)).await;
                        p.send(&aus[i]).await.map_err(|e| e.to_string())?;
                    }
                    p.close().await.map_err(|e| e.to_string())?;
                }
                Ok(aus.len())
            })
        });
        LivePublisher { handle }
    }

    /// True once the publisher finished.
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }

    /// Waits for the publisher; panics with its error.
    pub fn join(self) -> usize {
        match self.handle.join() {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => panic!("publisher failed: {e}"),
            Err(_) => panic!("publisher panicked"),
        }
    }
}

/// Options for hashing: YUV420P output, short idle timeout.
pub fn hash_options() -> ClientOptions {
    ClientOptions::default()
        .with_output(PixelLayout::Yuv420p)
        .with_pull(PullOptions::default().with_idle_timeout(Duration::from_secs(5)))
}

/// Collects the MD5 of every frame a subscription delivers, on its own thread.
pub fn collect_hashes(rx: FrameReceiver) -> JoinHandle<Vec<String>> {
    std::thread::spawn(move || rx.map(|f| f.md5_hex().unwrap()).collect())
}

/// Waits until the client finished by itself or, once `publisher_done` says so, until no access
/// unit arrived for `quiet` (a relay that never signals the end); then terminates it. Returns
/// the final status. Panics after `timeout`.
pub fn finish_when_quiet(
    client: &mut Client,
    publisher_done: impl Fn() -> bool,
    quiet: Duration,
    timeout: Duration,
) -> ClientStatus {
    let deadline = Instant::now() + timeout;
    let mut last = (u64::MAX, Instant::now());
    loop {
        let status = client.wait_finished(Duration::from_millis(100));
        if status.is_finished() {
            return client.terminate();
        }
        let n = client.counters().access_units;
        if n != last.0 {
            last = (n, Instant::now());
        } else if publisher_done() && last.1.elapsed() >= quiet {
            return client.terminate();
        }
        assert!(
            Instant::now() < deadline,
            "the pull did not finish within {timeout:?}: {:?} {:?}",
            client.status(),
            client.counters()
        );
    }
}
