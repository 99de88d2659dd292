//! Round trips through real servers with our own publisher and our own reader: `mpegcoder::push`
//! (copy mode, paced) publishes an H.264 + AAC clip while a [`Puller`] reads it back.
//!
//! - nginx-rtmp, the reader connected before the push starts: every access unit equals the
//!   clip's packet (the same NAL units, the same timestamps in milliseconds), the pulled video
//!   decodes (ffmpeg CLI) to the clip's frames, and every AAC frame equals the source's packet
//!   (MD5), one for one, in order, on the same timeline as the video.
//! - GStreamer's RTSP server recording both tracks, its PLAY relay pulled over TCP during the
//!   push: the relay starts forwarding when the reader joins, so the audio is a contiguous run
//!   of the source's packets from there to the end, and the video a run of its frames.
//!
//! `mpegcoder pull --audio-out` through the same relay is in crates/cli/tests/pull_audio.rs
//! (it needs the command's binary).
#![allow(clippy::unwrap_used)]

use std::sync::atomic::AtomicBool;
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use mpegcoder::transport::h264::split_length_prefixed;
use mpegcoder::transport::pull::{PullOptions, Puller};
use mpegcoder::transport::{AudioCodec, TimeBase, VideoTrack};
use mpegcoder::{push, PushOptions, PushSummary, Transport, VideoCodec};
use mpegcoder_protocol_tests::*;

mod av_common;
use av_common::*;

/// The relay reader joins this long after the push started.
const RELAY_JOIN_AFTER: Duration = Duration::from_secs(1);

/// The fewest AAC frames the relay reader must get of the 4 s clip (189 frames). It asks to
/// join 1 s in and gets everything from then to the end: 142 to 144 frames here (3 s, less
/// the time DESCRIBE and SETUP take). 94 frames are the last 2 s: room for a join a second
/// late on a loaded machine, and still a run no short burst could pass for.
const RELAY_MIN_AUDIO: usize = 94;

/// The same for video: the last 2 s of 120 frames.
const RELAY_MIN_VIDEO: usize = 60;

/// `mpegcoder::push` of the clip in copy mode, paced, over RTSP/TCP or RTMP, on its own
/// thread.
fn push_thread(clip: &Clip, url: &str) -> JoinHandle<PushSummary> {
    let o = PushOptions::new(clip.mp4.to_string_lossy(), url)
        .with_codec(VideoCodec::Copy)
        .with_transport(Transport::Tcp)
        .with_pace(true);
    std::thread::spawn(move || {
        push(&o, &AtomicBool::new(false), |_| {}).unwrap_or_else(|e| panic!("push failed: {e}"))
    })
}

/// Milliseconds of `ticks` in the clip's video time base.
fn video_ms(clip: &Clip, ticks: i64) -> f64 {
    let (num, den) = clip.time_base;
    ticks as f64 * f64::from(num) / f64::from(den) * 1000.0
}

#[test]
fn push_to_nginx_rtmp_and_pull_back_every_frame() {
    if !require("push_to_nginx_rtmp_and_pull_back_every_frame", NGINX_TOOLS) {
        return;
    }
    let dir = TempDir::new("roundtrip-nginx");
    let clip = Clip::generate(
        dir.path(),
        ClipSpec::default().with_audio(AudioSpec::default()),
    );
    assert!(clip.has_bframes());
    let nginx = NginxRtmp::start(dir.path());
    let url = nginx.url("roundtrip");
    let (pulled, summary) = runtime().block_on(async {
        // nginx answers `play` of a stream nobody publishes yet with Play.Start and waits.
        let options = PullOptions::default().with_idle_timeout(Duration::from_secs(10));
        let puller = Puller::connect(&url, options)
            .await
            .unwrap_or_else(|e| panic!("{e}; nginx log: {}", nginx.log()));
        let pusher = push_thread(&clip, &url);
        // The publisher leaving ends the stream (NetStream.Play.UnpublishNotify).
        let pulled = drain(puller, None)
            .await
            .unwrap_or_else(|e| panic!("{e}; nginx log: {}", nginx.log()));
        (pulled, pusher.join().unwrap())
    });
    assert_summary(&summary, &clip, "nginx");
    pulled.log("nginx");
    let stats = &pulled.stats;

    // The video track is the clip's, and every access unit its packet: the same NAL units,
    // key frames where the clip has them, decoding times and composition offsets in whole
    // milliseconds.
    let source_track = VideoTrack::from_extradata(&Bytes::from(clip.extradata.clone())).unwrap();
    let track = pulled.track.as_ref().unwrap();
    assert_eq!(
        (&track.sps, &track.pps),
        (&source_track.sps, &source_track.pps)
    );
    assert_eq!(
        pulled.video.len(),
        clip.packets.len(),
        "access units arrived"
    );
    let (v0, p0) = (&pulled.video[0], &clip.packets[0]);
    for (i, (au, p)) in pulled.video.iter().zip(&clip.packets).enumerate() {
        let nalus = split_length_prefixed(&Bytes::from(p.data.clone()), 4).unwrap();
        assert_eq!(au.nalus, nalus, "access unit {i}: NAL units");
        assert_eq!(au.key, p.key, "access unit {i}: key frame");
        assert_eq!(au.time_base, TimeBase::MILLIS);
        let dts = video_ms(&clip, p.dts - p0.dts);
        let cts = video_ms(&clip, p.pts - p.dts);
        assert!(
            ((au.dts - v0.dts) as f64 - dts).abs() <= 1.0,
            "access unit {i}: dts {} ms after the first, the clip says {dts:.2}",
            au.dts - v0.dts
        );
        assert!(
            ((au.pts - au.dts) as f64 - cts).abs() <= 1.0,
            "access unit {i}: composition time {} ms, the clip says {cts:.2}",
            au.pts - au.dts
        );
    }
    // Decoded by the ffmpeg CLI: every frame of the clip, bit-exact.
    let decoded = pulled_framemd5(&dir.path().join("pulled.h264"), &pulled);
    assert_frames_match(&clip.framemd5, &decoded, true, "nginx: pulled video");

    // Every AAC frame is the source's packet, one for one, in order, timed as the source.
    let audio_track = pulled.audio_track.as_ref().unwrap();
    assert_eq!(
        (
            audio_track.codec,
            audio_track.sample_rate,
            audio_track.channels
        ),
        (AudioCodec::Aac, 48_000, 2),
        "{audio_track:?}"
    );
    assert_eq!(audio_track.config.as_ref(), clip.audio_extradata.as_slice());
    assert_audio_match(
        &clip.audio_md5,
        &audio_md5s(&pulled.audio),
        "nginx: pulled audio",
    );
    assert_rtmp_audio_times(&clip, &pulled.audio, 0, "nginx");
    // One timeline: the first audio frame starts where the source says against the video's
    // first picture (the encoder's priming, one frame early), within the tags' rounding.
    let first_video_pts = pulled.video.iter().map(|au| au.pts).min().unwrap();
    let offset_ms = (pulled.audio[0].pts - first_video_pts) as f64;
    let source_ms = clip.audio_start_offset.unwrap() * 1000.0;
    assert!(
        (offset_ms - source_ms).abs() <= 1.5,
        "nginx: audio starts {offset_ms} ms after the video, the source {source_ms:.2} ms"
    );
    // Nothing was held back or thrown away on the way.
    assert_eq!(
        (
            stats.skipped_before_key,
            stats.audio_skipped_before_key,
            stats.audio_bad,
            stats.audio_unsupported
        ),
        (0, 0, 0, 0),
        "{stats:?}"
    );
    assert_eq!(stats.audio_frames, clip.audio_packets.len() as u64);
}

#[test]
fn push_to_gstreamer_and_pull_the_relay_over_tcp() {
    if !require("push_to_gstreamer_and_pull_the_relay_over_tcp", GST_TOOLS) {
        return;
    }
    let dir = TempDir::new("roundtrip-gst");
    // 4 s, so that a reader joining 1 s in still gets most of it.
    let spec = ClipSpec::default().with_frames(120);
    let clip = Clip::generate(dir.path(), spec.with_audio(AudioSpec::default()));
    assert_eq!(clip.audio_packets.len(), 189);
    let server = GstRtspRecord::start_with(dir.path(), GstOptions::av_relay("/play"));
    let pusher = push_thread(&clip, &server.url(None));
    std::thread::sleep(RELAY_JOIN_AFTER);
    let pulled = runtime()
        .block_on(async {
            let options = PullOptions::default()
                .with_transport(Transport::Tcp)
                .with_idle_timeout(Duration::from_secs(5));
            let puller = Puller::connect(&server.relay_url(), options).await?;
            // The relay never says the stream ended: it goes quiet once the push is over.
            drain(puller, Some(Duration::from_millis(1500))).await
        })
        .unwrap_or_else(|e| panic!("relay: {e}; server log: {}", server.log()));
    let summary = pusher.join().unwrap();
    assert_summary(&summary, &clip, "GStreamer");
    pulled.log("relay");
    let stats = &pulled.stats;

    // The audio: the source's packets from where the relay started to the end of the clip.
    let track = pulled.audio_track.as_ref().unwrap();
    assert_eq!(
        (track.codec, track.sample_rate, track.channels),
        (AudioCodec::Aac, 48_000, 2),
        "{track:?}"
    );
    let audio = audio_md5s(&pulled.audio);
    let start = assert_contiguous_run(&clip.audio_md5, &audio, RELAY_MIN_AUDIO, "relay audio");
    assert_eq!(
        start + audio.len(),
        clip.audio_md5.len(),
        "relay audio: the run from source packet {start} stops before the end"
    );
    // RTP timestamps in the AAC clock, one frame (1024 samples) apart (GStreamer derives them
    // from nanosecond buffer times: ±1 tick of rounding).
    assert!(pulled
        .audio
        .iter()
        .all(|f| f.time_base == TimeBase::new(1, 48_000)));
    for (i, w) in pulled.audio.windows(2).enumerate() {
        let step = w[1].pts - w[0].pts;
        assert!(
            (1023..=1025).contains(&step),
            "relay audio: frame {} is {step} ticks after the one before",
            i + 1
        );
    }
    assert_eq!(stats.audio_frames, audio.len() as u64);
    assert_eq!((stats.audio_bad, stats.lost_packets), (0, 0), "{stats:?}");

    // The video: decoded by the ffmpeg CLI, the clip's frames from a key frame to the end.
    let decoded = pulled_framemd5(&dir.path().join("relay.h264"), &pulled);
    let first = assert_contiguous_run(&clip.framemd5, &decoded, RELAY_MIN_VIDEO, "relay video");
    assert_eq!(
        first % clip.spec.gop as usize,
        0,
        "relay video: not from a key frame"
    );
    assert_eq!(
        first + decoded.len(),
        clip.framemd5.len(),
        "relay video: the run from source frame {first} stops before the end"
    );
    eprintln!("relay: audio from source packet {start}, video from source frame {first}");
}
