//! Pulling audio back over RTMP from nginx-rtmp and over RTSP from GStreamer: the harness's
//! H.264 + AAC clip is published live by the ffmpeg CLI (a known-good publisher), or served for
//! PLAY by GStreamer; a reader joins mid-stream. From the first video key frame on, every AAC
//! frame handed out must equal the source's packet (its MD5 against the one `ffmpeg -f
//! framemd5` computes from the clip), one for one and without a gap, and what
//! `Client::record_adts` writes must decode (ffprobe) to the same number of frames with the
//! same contents.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::time::Duration;

use mpegcoder::transport::pull::{PullOptions, Puller};
use mpegcoder::transport::{AudioCodec, Media, TimeBase};
use mpegcoder::{Client, ClientOptions, ClientStatus};
use mpegcoder_protocol_tests::*;

mod av_common;
use av_common::*;

/// When the reader joins the live clip: before its second key frame (GOP of 30 at 30 fps).
const JOIN_AFTER: Duration = Duration::from_millis(400);

/// The harness's 2 s clip (320x240 at 30 fps with B-frames, 48 kHz stereo AAC), a key frame
/// every 30 frames.
fn av_clip_gop30(dir: &std::path::Path) -> Clip {
    let spec = ClipSpec::default().with_gop(30);
    let clip = Clip::generate(dir, spec.with_audio(AudioSpec::default()));
    assert!(
        clip.audio_md5.len() > 80,
        "{} audio packets",
        clip.audio_md5.len()
    );
    clip
}

/// The clip's audio as the readers must describe it: codec, rate and channels.
fn source_audio(clip: &Clip) -> (AudioCodec, u32, u8) {
    let spec = clip.spec.audio.unwrap();
    (AudioCodec::Aac, spec.sample_rate, spec.channels as u8)
}

#[test]
fn pull_rtmp_audio_frames_equal_the_source_packets() {
    if !require(
        "pull_rtmp_audio_frames_equal_the_source_packets",
        NGINX_TOOLS,
    ) {
        return;
    }
    let dir = TempDir::new("pull-audio-rtmp");
    let clip = av_clip_gop30(dir.path());
    let nginx = NginxRtmp::start(dir.path());
    let url = nginx.url("av");
    let publisher = FfmpegPublisher::start_av(&url, &clip);
    std::thread::sleep(JOIN_AFTER);

    let pulled = runtime().block_on(async {
        let options = PullOptions::default().with_idle_timeout(Duration::from_secs(5));
        let puller = Puller::connect(&url, options)
            .await
            .unwrap_or_else(|e| panic!("{e}; nginx log: {}", nginx.log()));
        drain(puller, None).await.unwrap()
    });
    publisher.wait(Duration::from_secs(10));
    let (frames, stats) = (&pulled.audio, &pulled.stats);

    // The track, from the sequence header: AAC LC with the source's rate and channels.
    let track = pulled.audio_track.as_ref().unwrap();
    assert_eq!(
        (track.codec, track.sample_rate, track.channels),
        source_audio(&clip),
        "{track:?}"
    );
    assert_eq!(track.aac_config().unwrap().object_type, 2);
    assert_eq!(track.config.as_ref(), clip.audio_extradata.as_slice());
    let start = assert_contiguous_run(&clip.audio_md5, &audio_md5s(frames), 40, "Puller");
    eprintln!(
        "Puller: {} audio frames from source packet {start} of {}, {} video; first audio pts \
         {} ms (source {}), first video dts {} ms; {stats:?}",
        frames.len(),
        clip.audio_md5.len(),
        pulled.video.len(),
        frames[0].pts,
        clip.audio_packets[start].pts,
        pulled.video[0].dts,
    );
    // Every packet after the join point arrived: nginx forwards the tail before it tells the
    // reader that the publisher left.
    assert_eq!(start + frames.len(), clip.audio_md5.len(), "{stats:?}");
    // Milliseconds on the RTMP timeline, increasing by the source's packet durations
    // (1024 samples = 21.33 ms), rounded to the millisecond.
    assert_rtmp_audio_times(&clip, frames, start, "Puller");
    assert_eq!(stats.audio_frames, frames.len() as u64);
    assert_eq!(
        stats.audio_bytes,
        frames.iter().map(|f| f.data.len() as u64).sum::<u64>()
    );
    // (A reader that joins mid-stream also gets audio before the key frame nginx starts its
    // video with: dropped, in `audio_skipped_before_key`. Under load the reader may be there
    // before the publisher and get everything.)
    assert_eq!(
        (stats.audio_bad, stats.audio_unsupported),
        (0, 0),
        "{stats:?}"
    );
    // Audio and video share one timeline: they start together (within a frame or two).
    assert!(
        (frames[0].pts - pulled.video[0].dts).abs() < 100,
        "audio starts at {} ms, video at {} ms",
        frames[0].pts,
        pulled.video[0].dts
    );
}

#[test]
fn client_records_adts_and_hands_out_the_same_audio_frames() {
    if !require(
        "client_records_adts_and_hands_out_the_same_audio_frames",
        NGINX_TOOLS,
    ) {
        return;
    }
    let dir = TempDir::new("pull-audio-client");
    let clip = av_clip_gop30(dir.path());
    let nginx = NginxRtmp::start(dir.path());
    let url = nginx.url("adts");
    let publisher = FfmpegPublisher::start_av(&url, &clip);
    std::thread::sleep(JOIN_AFTER);

    let aac = dir.path().join("pulled.aac");
    let options = ClientOptions::default().with_decode(false);
    let mut client = Client::new(&url, options).unwrap();
    client
        .record_adts(std::fs::File::create(&aac).unwrap())
        .unwrap();
    let audio = client.subscribe_audio(16).unwrap();
    client.start().unwrap();
    let reader = std::thread::spawn(move || audio.map(|f| md5_hex(&f.data)).collect::<Vec<_>>());
    let status = client.wait_finished(Duration::from_secs(15));
    assert!(
        matches!(status, ClientStatus::Ended),
        "{status:?}; nginx log: {}",
        nginx.log()
    );
    let hashes = reader.join().unwrap();
    publisher.wait(Duration::from_secs(10));
    let start = assert_contiguous_run(&clip.audio_md5, &hashes, 40, "Client");
    assert_eq!(start + hashes.len(), clip.audio_md5.len());

    let c = client.counters();
    assert_eq!(c.audio_frames, hashes.len() as u64, "{c:?}");
    assert!(c.audio_bytes > 0 && c.audio_duration_s > 0.5, "{c:?}");
    let (_, rate, channels) = source_audio(&clip);
    let params = client.params().unwrap();
    let audio_params = params.audio.as_ref().unwrap();
    assert_eq!(
        (
            audio_params.codec,
            audio_params.sample_rate,
            audio_params.channels
        ),
        ("aac", rate, channels)
    );
    assert_eq!(audio_params.codec_string.as_deref(), Some("mp4a.40.2"));
    assert_eq!(client.audio_track().unwrap().codec, AudioCodec::Aac);

    // The ADTS file decodes (ffprobe decodes every frame) to as many frames as arrived, and
    // without its headers holds the very same frames.
    let probe = probe_audio(&aac, "a:0");
    assert_eq!(
        probe,
        AudioProbe {
            codec: "aac".into(),
            sample_rate: rate,
            channels: u32::from(channels),
            frames: hashes.len(),
        }
    );
    assert_eq!(adts_framemd5(&aac), hashes);
}

#[test]
fn pull_rtmp_mp3_and_g711_audio_tracks() {
    if !require("pull_rtmp_mp3_and_g711_audio_tracks", NGINX_TOOLS) {
        return;
    }
    let dir = TempDir::new("pull-audio-codecs");
    let nginx = NginxRtmp::start(dir.path());
    let cases: [(&str, &[&str], AudioCodec, u32); 3] = [
        (
            "mp3",
            &["-c:a", "libmp3lame", "-ar", "44100"],
            AudioCodec::Mp3,
            44_100,
        ),
        (
            "alaw",
            &["-c:a", "pcm_alaw", "-ar", "8000"],
            AudioCodec::Pcma,
            8_000,
        ),
        (
            "mulaw",
            &["-c:a", "pcm_mulaw", "-ar", "8000"],
            AudioCodec::Pcmu,
            8_000,
        ),
    ];
    for (key, audio, codec, rate) in cases {
        let url = nginx.url(key);
        let publisher = FfmpegPublisher::tone(&url, audio);
        std::thread::sleep(JOIN_AFTER);
        let pulled = runtime().block_on(async {
            let options = PullOptions::default().with_idle_timeout(Duration::from_secs(5));
            drain(Puller::connect(&url, options).await.unwrap(), None)
                .await
                .unwrap()
        });
        publisher.wait(Duration::from_secs(10));
        let (frames, stats) = (&pulled.audio, &pulled.stats);
        let track = pulled
            .audio_track
            .as_ref()
            .unwrap_or_else(|| panic!("{key}: no audio track; {stats:?}"));
        assert_eq!(
            (track.codec, track.sample_rate, track.channels),
            (codec, rate, 1),
            "{key}"
        );
        assert!(
            frames.len() > 20,
            "{key}: {} frames; {stats:?}",
            frames.len()
        );
        assert!(frames.windows(2).all(|w| w[0].pts <= w[1].pts), "{key}");
        assert!(frames.iter().all(|f| !f.data.is_empty()), "{key}");
        if codec == AudioCodec::Mp3 {
            // Each tag carries one MPEG audio frame: it starts with the syncword.
            assert!(
                frames
                    .iter()
                    .all(|f| f.data[0] == 0xff && f.data[1] & 0xe0 == 0xe0),
                "{key}"
            );
        }
        assert_eq!(
            (stats.audio_bad, stats.audio_unsupported),
            (0, 0),
            "{key}: {stats:?}"
        );
        eprintln!("{key}: {} frames, {track:?}, {stats:?}", frames.len());
    }
}

/// A GStreamer RTSP server serving `mp4` for PLAY, each client from the start of the file:
/// at `/av` H.264 (RFC 6184) and AAC as RFC 3640 `mpeg4-generic` (`rtpmp4gpay`); at `/opus`
/// and `/pcma` the same video with its audio re-encoded to Opus (RFC 7587) or G.711 A-law
/// (RFC 3551).
const GST_PLAY_SERVER: &str = r#"
import sys
import gi
gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer
Gst.init(None)
port, mp4 = sys.argv[1], sys.argv[2]
server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(port)
server.get_thread_pool().set_max_threads(16)
factory = GstRtspServer.RTSPMediaFactory()
factory.set_launch(
    "( filesrc location={} ! qtdemux name=d "
    "d.video_0 ! queue ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=-1 "
    "d.audio_0 ! queue ! aacparse ! rtpmp4gpay name=pay1 pt=97 )".format(mp4))
server.get_mount_points().add_factory("/av", factory)
video = ("filesrc location={} ! qtdemux name=d d.video_0 ! queue ! h264parse ! "
         "rtph264pay name=pay0 pt=96 config-interval=-1 ").format(mp4)
# The file's own audio, re-encoded: a stream the client does not set up must not stop the
# pipeline (a separate source would fail with not-linked once its payloader is left unused).
tone = ("d.audio_0 ! queue ! aacparse ! avdec_aac ! audioconvert ! audioresample ! "
        "audio/x-raw,rate={},channels=1 ! ")
for mount, audio in [
    ("/opus", tone.format(48000) + "opusenc ! rtpopuspay name=pay1 pt=97"),
    ("/pcma", tone.format(8000) + "alawenc ! rtppcmapay name=pay1"),
]:
    f = GstRtspServer.RTSPMediaFactory()
    f.set_launch("( " + video + audio + " )")
    server.get_mount_points().add_factory(mount, f)
server.attach(None)
print("READY", flush=True)
GLib.MainLoop().run()
"#;

/// Starts [`GST_PLAY_SERVER`] serving the clip; returns it and its port.
fn play_server(dir: &std::path::Path, clip: &Clip) -> (ServerProcess, u16) {
    let port = free_tcp_port();
    let script = dir.join("play_server.py");
    std::fs::write(&script, GST_PLAY_SERVER).unwrap();
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.arg(&script)
        .arg(port.to_string())
        .arg(&clip.mp4)
        .stdout(Stdio::piped());
    let mut server = ServerProcess::spawn("gst-rtsp-play", cmd, dir.join("gst.log"));
    server.wait_stdout_line("READY", Duration::from_secs(10));
    (server, port)
}

#[test]
fn pull_rtsp_aac_frames_equal_the_source_packets() {
    if !require("pull_rtsp_aac_frames_equal_the_source_packets", GST_TOOLS) {
        return;
    }
    let dir = TempDir::new("pull-audio-rtsp");
    let clip = av_clip_gop30(dir.path());
    let (server, port) = play_server(dir.path(), &clip);
    let url = format!("rtsp://127.0.0.1:{port}/av");

    for transport in [mpegcoder::Transport::Tcp, mpegcoder::Transport::Udp] {
        let what = format!("RTSP over {transport:?}");
        let (frames, track, stats) = runtime().block_on(async {
            let options = PullOptions::default()
                .with_transport(transport)
                .with_idle_timeout(Duration::from_secs(3));
            let mut puller = Puller::connect(&url, options)
                .await
                .unwrap_or_else(|e| panic!("{what}: {e}; {}", server.log_text()));
            // Known from the SDP's `config=`, before any frame.
            let track = puller.audio_track().cloned();
            let mut frames = Vec::new();
            // The server does not say when the file ended: stop after the clip's duration.
            let read = async {
                while let Some(media) = puller.next_media().await? {
                    if let Media::Audio(f) = media {
                        frames.push(f);
                        if frames.len() == clip.audio_md5.len() {
                            break;
                        }
                    }
                }
                Ok::<_, mpegcoder::transport::pull::PullError>(())
            };
            // A timeout: the clip ended and the server went quiet.
            if let Ok(result) = tokio::time::timeout(Duration::from_secs(6), read).await {
                result.unwrap();
            }
            let stats = puller.stats().clone();
            puller.close().await;
            (frames, track, stats)
        });
        let track = track.unwrap_or_else(|| panic!("{what}: no audio track"));
        assert_eq!(
            (track.codec, track.sample_rate, track.channels),
            source_audio(&clip),
            "{what}"
        );
        let start = assert_contiguous_run(&clip.audio_md5, &audio_md5s(&frames), 80, &what);
        eprintln!(
            "{what}: {} audio frames from source packet {start} of {}, first pts {}; {stats:?}",
            frames.len(),
            clip.audio_md5.len(),
            frames[0].pts
        );
        // RTP timestamps in the AAC clock (RFC 3640: the sampling rate), 1024 per frame
        // (GStreamer derives them from buffer times in nanoseconds: ±1 tick of rounding).
        assert!(frames
            .iter()
            .all(|f| f.time_base == TimeBase::new(1, 48_000)));
        for w in frames.windows(2) {
            let step = w[1].pts - w[0].pts;
            assert!((1023..=1025).contains(&step), "{what}: step {step}");
        }
        // The RTP-Info `rtptime` of both streams gives them one origin: the first audio frame
        // handed out (the one after the first key frame at 0) is about one frame in.
        assert!(
            (0..=2 * 1024 + 1).contains(&frames[0].pts),
            "{what}: first audio pts {}",
            frames[0].pts
        );
    }
}

#[test]
fn pull_rtsp_skips_opus_and_hands_out_g711() {
    if !require("pull_rtsp_skips_opus_and_hands_out_g711", GST_TOOLS) {
        return;
    }
    let dir = TempDir::new("pull-audio-rtsp-codecs");
    let clip = av_clip_gop30(dir.path());
    let (server, port) = play_server(dir.path(), &clip);
    for mount in ["opus", "pcma"] {
        let url = format!("rtsp://127.0.0.1:{port}/{mount}");
        let (video, audio, track, stats) = runtime().block_on(async {
            let options = PullOptions::default().with_idle_timeout(Duration::from_secs(10));
            let mut puller = Puller::connect(&url, options)
                .await
                .unwrap_or_else(|e| panic!("{mount}: {e}; {}", server.log_text()));
            let (mut video, mut audio) = (0, Vec::new());
            while video < 45 {
                let next = puller.next_media().await;
                match next.unwrap_or_else(|e| panic!("{mount}: {e}; {}", server.log_text())) {
                    Some(Media::H264(_)) => video += 1,
                    Some(Media::Audio(f)) => audio.push(f),
                    Some(_) => {}
                    None => break,
                }
            }
            let track = puller.audio_track().cloned();
            let stats = puller.stats().clone();
            puller.close().await;
            (video, audio, track, stats)
        });
        eprintln!(
            "{mount}: {video} access units, {} audio frames, {track:?}",
            audio.len()
        );
        assert_eq!(video, 45, "{mount}: {stats:?}");
        if mount == "opus" {
            // retina has no Opus depacketizer: the stream is skipped, the video plays.
            assert!(track.is_none() && audio.is_empty(), "{track:?}");
        } else {
            let track = track.unwrap();
            assert_eq!(
                (track.codec, track.sample_rate, track.channels),
                (AudioCodec::Pcma, 8_000, 1)
            );
            assert!(audio.len() > 10, "{stats:?}");
            assert!(audio.iter().all(|f| f.time_base == TimeBase::new(1, 8_000)));
            assert!(audio.windows(2).all(|w| w[0].pts <= w[1].pts));
            assert_eq!(stats.audio_frames, audio.len() as u64);
        }
    }
}

#[test]
fn async_client_hands_out_the_audio_frames() {
    if !require("async_client_hands_out_the_audio_frames", NGINX_TOOLS) {
        return;
    }
    let dir = TempDir::new("pull-audio-async");
    let clip = av_clip_gop30(dir.path());
    let nginx = NginxRtmp::start(dir.path());
    let url = nginx.url("async");
    let publisher = FfmpegPublisher::start_av(&url, &clip);
    std::thread::sleep(JOIN_AFTER);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (hashes, frames, counters, track) = rt.block_on(async {
        let options = ClientOptions::default().with_cache_size(4);
        let (mut client, mut audio) = mpegcoder::AsyncClient::connect_with_audio(&url, options, 8)
            .await
            .unwrap();
        let audio_task = tokio::spawn(async move {
            let mut hashes = Vec::new();
            while let Some(f) = audio.recv().await {
                hashes.push(md5_hex(&f.data));
            }
            hashes
        });
        let mut frames = 0;
        while client.next_frame().await.unwrap().is_some() {
            frames += 1;
        }
        let hashes = audio_task.await.unwrap();
        let counters = client.counters();
        let track = client.audio_track();
        client.close().await.unwrap();
        (hashes, frames, counters, track)
    });
    publisher.wait(Duration::from_secs(10));
    assert_eq!(track.unwrap().codec, AudioCodec::Aac);
    let start = assert_contiguous_run(&clip.audio_md5, &hashes, 40, "AsyncClient");
    assert_eq!(start + hashes.len(), clip.audio_md5.len());
    assert_eq!(counters.audio_frames, hashes.len() as u64, "{counters:?}");
    assert_eq!(counters.frames_delivered, frames, "{counters:?}");
    assert!(frames >= 30, "{counters:?}");
}
