//! Shared by the audio tests (pull_audio.rs, av_roundtrip.rs, av_push.rs): hashing what a
//! reader handed out, draining a [`Puller`], and what an A/V push reports.
#![allow(clippy::unwrap_used, dead_code)]

use std::path::Path;
use std::time::Duration;

use md5::{Digest, Md5};
use mpegcoder::transport::pull::{PullError, PullStats, Puller};
use mpegcoder::transport::{AccessUnit, AudioFrame, AudioTrack, Media, VideoTrack};
use mpegcoder::PushSummary;
use mpegcoder_protocol_tests::{framemd5, Clip};

/// The MD5 (lowercase hex) of `data`: comparable with the harness's `audio_framemd5`, which is
/// ffmpeg's hash of each stored packet.
pub fn md5_hex(data: &[u8]) -> String {
    Md5::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The MD5 of every audio frame's data.
pub fn audio_md5s(frames: &[AudioFrame]) -> Vec<String> {
    frames.iter().map(|f| md5_hex(&f.data)).collect()
}

/// What a push of the A/V clip reports: every video and audio packet of the clip sent, and
/// the audio's bytes.
pub fn assert_summary(s: &PushSummary, clip: &Clip, what: &str) {
    assert_eq!(s.audio_codec.as_deref(), Some("aac"), "{what}");
    assert_eq!(
        s.stats.frames_sent,
        clip.packets.len() as u64,
        "{what}: video frames sent"
    );
    assert_eq!(
        s.stats.audio_frames_sent,
        clip.audio_packets.len() as u64,
        "{what}: audio frames sent"
    );
    let bytes: usize = clip.audio_packets.iter().map(|p| p.data.len()).sum();
    assert_eq!(
        s.stats.audio_bytes_sent, bytes as u64,
        "{what}: audio bytes"
    );
}

/// A current-thread tokio runtime with its timers and sockets.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// What a [`Puller`] handed out until the stream ended.
#[derive(Debug)]
pub struct Pulled {
    /// Access units, in arrival order.
    pub video: Vec<AccessUnit>,
    /// Audio frames, in arrival order.
    pub audio: Vec<AudioFrame>,
    /// The video track at the end.
    pub track: Option<VideoTrack>,
    /// The audio track at the end.
    pub audio_track: Option<AudioTrack>,
    /// The puller's counters at the end.
    pub stats: PullStats,
}

impl Pulled {
    /// Prints what arrived, for the test's log.
    pub fn log(&self, what: &str) {
        eprintln!(
            "{what}: {} access units, {} audio frames; {:?}",
            self.video.len(),
            self.audio.len(),
            self.stats
        );
    }
}

/// Reads `puller` with [`Puller::next_media`] until the stream ends, or, with `quiet`, until
/// nothing arrived for that long (a relay that never says the stream ended); then closes it.
/// Checks what the puller guarantees: the first unit is a video key frame.
pub async fn drain(mut puller: Puller, quiet: Option<Duration>) -> Result<Pulled, PullError> {
    let (mut video, mut audio) = (Vec::new(), Vec::new());
    loop {
        let next = match quiet {
            Some(limit) => match tokio::time::timeout(limit, puller.next_media()).await {
                Ok(next) => next?,
                Err(_) => break,
            },
            None => puller.next_media().await?,
        };
        match next {
            Some(Media::H264(au)) => video.push(au),
            Some(Media::Audio(frame)) => {
                assert!(
                    !video.is_empty(),
                    "an audio frame before the first key frame"
                );
                audio.push(frame);
            }
            Some(_) => {}
            None => break,
        }
    }
    if let Some(first) = video.first() {
        assert!(first.key, "the first access unit is not a key frame");
    }
    let pulled = Pulled {
        video,
        audio,
        track: puller.track().cloned(),
        audio_track: puller.audio_track().cloned(),
        stats: puller.stats().clone(),
    };
    puller.close().await;
    Ok(pulled)
}

/// Checks that the audio frames' timestamps (milliseconds, as RTMP carries them) follow the
/// source's packets from source packet `start` on, each within 1.5 ms of the source's time
/// since the first (the tags keep whole milliseconds).
pub fn assert_rtmp_audio_times(clip: &Clip, frames: &[AudioFrame], start: usize, what: &str) {
    let (num, den) = clip.audio_time_base.unwrap();
    let source = &clip.audio_packets[start..];
    assert!(
        source.len() >= frames.len(),
        "{what}: more frames than the source has"
    );
    for (i, (f, p)) in frames.iter().zip(source).enumerate() {
        assert_eq!(
            f.time_base,
            mpegcoder::transport::TimeBase::MILLIS,
            "{what}: frame {i}"
        );
        let src_ms = (p.pts - source[0].pts) as f64 * f64::from(num) / f64::from(den) * 1000.0;
        let got_ms = (f.pts - frames[0].pts) as f64;
        assert!(
            (got_ms - src_ms).abs() <= 1.5,
            "{what}: frame {i} at {got_ms} ms after the first, the source says {src_ms:.2}"
        );
    }
}

/// The per-frame MD5s of the pulled video as the ffmpeg CLI decodes it: the track's parameter
/// sets and every access unit are written to `path` as Annex B, then hashed ([`framemd5`]).
pub fn pulled_framemd5(path: &Path, pulled: &Pulled) -> Vec<String> {
    let track = pulled.track.as_ref().expect("a video track");
    let mut annexb = Vec::new();
    for nal in [&track.sps, &track.pps] {
        annexb.extend_from_slice(&[0, 0, 0, 1]);
        annexb.extend_from_slice(nal);
    }
    for au in &pulled.video {
        annexb.extend_from_slice(&au.to_annexb());
    }
    std::fs::write(path, annexb).unwrap();
    framemd5(path)
}
