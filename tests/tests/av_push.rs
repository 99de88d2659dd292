//! Audio next to the video through the push pipeline (`mpegcoder::push`) into real servers:
//! GStreamer's RTSP server in RECORD mode (RTP over TCP and UDP, both tracks into one
//! Matroska file) and nginx-rtmp (FLV). What arrived is read back by the ffmpeg CLI: every
//! audio packet equal to the source's, the video bit-exact in copy mode (every frame with a
//! quality floor for libx264), and the start offset between the first audio and the first
//! video timestamp equal to the source's, also after a long loop.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use mpegcoder::{push, PushOptions, PushSummary, Transport, VideoCodec};
use mpegcoder_protocol_tests::*;

mod av_common;
use av_common::assert_summary;

fn options(clip: &Clip, url: &str, codec: VideoCodec) -> PushOptions {
    let mut o = PushOptions::new(clip.mp4.to_string_lossy(), url).with_codec(codec);
    o.pace = false;
    if codec == VideoCodec::Libx264 {
        o.bit_rate = Some(1_000_000);
    }
    o
}

fn run_push(o: &PushOptions) -> PushSummary {
    push(o, &AtomicBool::new(false), |_| {}).unwrap_or_else(|e| panic!("push failed: {e}"))
}

#[test]
fn copy_av_into_gstreamer_over_tcp_and_udp_arrives_exact_and_in_sync() {
    if !require("copy_av_into_gstreamer", GST_TOOLS) {
        return;
    }
    let dir = TempDir::new("av-gst");
    let clip = av_clip(dir.path());
    for transport in [Transport::Tcp, Transport::Udp] {
        let what = format!("GStreamer {transport:?}");
        let server = GstRtspRecord::start_with(
            dir.path(),
            GstOptions {
                audio: true,
                ..GstOptions::default()
            },
        );
        // Paced: the server's receiver maps RTP time to its clock from the arrivals and the
        // sender reports, which is what the start offset checks.
        let mut o = options(&clip, &server.url(None), VideoCodec::Copy).with_transport(transport);
        o.pace = true;
        let summary = run_push(&o);
        assert_summary(&summary, &clip, &what);
        let rec = server.wait_recording(Duration::from_millis(500), Duration::from_secs(15));
        assert_frames_match(&clip.framemd5, &framemd5(&rec), true, &what);
        assert_audio_match(&clip.audio_md5, &audio_framemd5(&rec), &what);
        assert_audio_steady(&rec, &what);
        assert_start_offset(&clip, &rec, &what);
    }
}

#[test]
fn copy_av_into_nginx_rtmp_arrives_exact_and_in_sync() {
    if !require("copy_av_into_nginx_rtmp", NGINX_TOOLS) {
        return;
    }
    let dir = TempDir::new("av-nginx");
    let clip = av_clip(dir.path());
    let nginx = NginxRtmp::start(dir.path());
    let summary = run_push(&options(&clip, &nginx.url("av"), VideoCodec::Copy));
    assert_summary(&summary, &clip, "nginx");
    let flv = nginx.wait_recording("av", Duration::from_secs(10));
    assert_frames_match(&clip.framemd5, &framemd5(&flv), true, "nginx");
    assert_audio_match(&clip.audio_md5, &audio_framemd5(&flv), "nginx");
    assert_audio_steady(&flv, "nginx");
    assert_start_offset(&clip, &flv, "nginx");
    let ts = check_timestamps(&flv);
    assert_eq!(ts.non_monotonic_dts, 0, "nginx: video DTS");
}

#[test]
fn libx264_with_audio_keeps_every_frame_and_the_audio_untouched() {
    if !require("libx264_with_audio", NGINX_TOOLS) || !require("libx264_with_audio", GST_TOOLS) {
        return;
    }
    let dir = TempDir::new("av-x264");
    let clip = av_clip(dir.path());
    let nginx = NginxRtmp::start(dir.path());
    let summary = run_push(&options(&clip, &nginx.url("x264"), VideoCodec::Libx264));
    assert_summary(&summary, &clip, "nginx libx264");
    let flv = nginx.wait_recording("x264", Duration::from_secs(10));
    let (db, frames) = psnr(&flv, &clip.mp4);
    assert_eq!(frames, 60, "nginx libx264: frames");
    assert!(db > 35.0, "nginx libx264: PSNR {db:.2} dB");
    assert_audio_match(&clip.audio_md5, &audio_framemd5(&flv), "nginx libx264");
    assert_start_offset(&clip, &flv, "nginx libx264");

    let server = GstRtspRecord::start_with(
        dir.path(),
        GstOptions {
            audio: true,
            ..GstOptions::default()
        },
    );
    let mut o = options(&clip, &server.url(None), VideoCodec::Libx264);
    o.pace = true;
    let summary = run_push(&o);
    assert_summary(&summary, &clip, "GStreamer libx264");
    let rec = server.wait_recording(Duration::from_millis(500), Duration::from_secs(15));
    let (db, frames) = psnr(&rec, &clip.mp4);
    assert_eq!(frames, 60, "GStreamer libx264: frames");
    assert!(db > 35.0, "GStreamer libx264: PSNR {db:.2} dB");
    assert_audio_match(&clip.audio_md5, &audio_framemd5(&rec), "GStreamer libx264");
    assert_start_offset(&clip, &rec, "GStreamer libx264");
}

/// 60 s of stream from 30 passes over the 2 s clip: every pass arrives whole, and the offset
/// between each pass's first audio and first video frame stays the source's (the tracks are
/// shifted by the same duration per pass: nothing drifts). Unpaced: the timestamps are the
/// point, and nginx records them as sent.
#[test]
fn sixty_seconds_of_loops_keep_audio_and_video_aligned() {
    if !require("sixty_seconds_of_loops", NGINX_TOOLS) {
        return;
    }
    let dir = TempDir::new("av-loop");
    let clip = av_clip(dir.path());
    let nginx = NginxRtmp::start(dir.path());
    let passes = 30;
    let o = options(&clip, &nginx.url("loop"), VideoCodec::Copy).with_loops(passes);
    let summary = run_push(&o);
    assert_eq!(summary.loops_completed, passes as u64);
    assert_eq!(summary.stats.frames_sent, 60 * passes as u64);
    assert_eq!(summary.stats.audio_frames_sent, 95 * passes as u64);
    assert!(
        summary.stats.stream_time_s >= 59.9,
        "{}",
        summary.stats.stream_time_s
    );
    let flv = nginx.wait_recording("loop", Duration::from_secs(20));
    let audio = audio_framemd5(&flv);
    let expected: Vec<String> = (0..passes)
        .flat_map(|_| clip.audio_md5.iter().cloned())
        .collect();
    assert_audio_match(&expected, &audio, "nginx loop");
    let video = packet_times(&flv, "v:0");
    let audio = packet_times(&flv, "a:0");
    assert_eq!(video.len(), 60 * passes as usize);
    // Each pass: the first audio frame against the lowest video pts of the pass.
    let source = clip.audio_start_offset.unwrap();
    for pass in 0..passes as usize {
        let v0 = video[pass * 60..(pass + 1) * 60]
            .iter()
            .filter_map(|t| t.pts)
            .fold(f64::INFINITY, f64::min);
        let a0 = audio[pass * 95].pts.unwrap();
        let offset = a0 - v0;
        assert!(
            (offset - source).abs() <= AV_OFFSET_TOLERANCE_S,
            "pass {pass}: offset {:.1} ms, source {:.1} ms",
            offset * 1e3,
            source * 1e3
        );
    }
    // Every track's timestamps keep increasing across the wraps.
    let dts: Vec<f64> = video.iter().filter_map(|t| t.dts).collect();
    assert!(dts.windows(2).all(|w| w[0] <= w[1]), "video DTS went back");
    let pts: Vec<f64> = audio.iter().filter_map(|t| t.pts).collect();
    assert!(
        pts.windows(2).all(|w| w[0] < w[1]),
        "audio timestamps went back"
    );
}

/// The `(pts, md5)` of each packet of a `-f framemd5` file, in file order (`None`: no pts).
fn framemd5_packets(path: &Path) -> Vec<(Option<i64>, String)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').map(str::trim).collect();
            let pts: i64 = f.get(2)?.parse().ok()?;
            Some(((pts != i64::MIN).then_some(pts), f.get(5)?.to_string()))
        })
        .collect()
}

/// Per packet, the received pts minus the source's, in seconds (packets aligned by index).
fn offsets(
    received: &[(Option<i64>, String)],
    tb: f64,
    source: &[ClipPacket],
    src_tb: (u32, u32),
) -> Vec<Option<f64>> {
    let src = f64::from(src_tb.0) / f64::from(src_tb.1);
    received
        .iter()
        .zip(source)
        .map(|((pts, _), p)| pts.map(|t| t as f64 * tb - p.pts as f64 * src))
        .collect()
}

/// ffmpeg as an RTSP listener maps each track's RTP time to its clock through our RTCP sender
/// reports (it re-times a track once its first report came): from then on the recorded
/// timestamps equal the source's plus one offset, the same for audio and video when the
/// reports of both tracks come from one clock.
#[test]
fn ffmpeg_listener_lines_the_tracks_up_from_our_sender_reports() {
    if !require("ffmpeg_listener_lines_the_tracks_up", FFMPEG_TOOLS) {
        return;
    }
    let dir = TempDir::new("av-ffmpeg");
    let clip = av_clip(dir.path());
    let port = free_tcp_port();
    let (audio_out, video_out) = (dir.path().join("a.md5"), dir.path().join("v.md5"));
    let mut cmd = std::process::Command::new("ffmpeg");
    cmd.args(["-v", "warning", "-nostdin", "-y", "-rtsp_flags", "listen"])
        .args(["-timeout", "20", "-i"])
        .arg(format!("rtsp://127.0.0.1:{port}/live"))
        .args(["-map", "0:a:0", "-c", "copy", "-f", "framemd5"])
        .arg(&audio_out)
        .args(["-map", "0:v:0", "-c", "copy", "-f", "framemd5"])
        .arg(&video_out)
        .stdout(std::process::Stdio::null());
    let mut listener = ServerProcess::spawn("ffmpeg", cmd, dir.path().join("ffmpeg.log"));
    wait_listening(port, Duration::from_secs(10), "ffmpeg listener");
    let url = format!("rtsp://127.0.0.1:{port}/live");
    let mut o = options(&clip, &url, VideoCodec::Copy);
    o.pace = true;
    let summary = run_push(&o);
    assert_summary(&summary, &clip, "ffmpeg listener");
    assert!(
        listener.wait_exit(Duration::from_secs(10)),
        "{}",
        listener.log_text()
    );

    let audio = framemd5_packets(&audio_out);
    let video = framemd5_packets(&video_out);
    let md5s: Vec<String> = audio.iter().map(|(_, m)| m.clone()).collect();
    // Every audio packet arrived, in order, with the source's data; every video packet too.
    assert_audio_match(&clip.audio_md5, &md5s, "ffmpeg listener");
    assert_eq!(video.len(), clip.packets.len(), "video packets");
    let tb = clip.time_base;
    let a = offsets(
        &audio,
        1.0 / 48_000.0,
        &clip.audio_packets,
        clip.audio_time_base.unwrap(),
    );
    let v = offsets(&video, 1.0 / 90_000.0, &clip.packets, tb);
    // Past the first report (ffmpeg stamps the first packets from their arrival), one offset
    // per track, and the two equal within a millisecond.
    let settled = |o: &[Option<f64>], what: &str| -> f64 {
        let o: Vec<f64> = o.iter().skip(5).flatten().copied().collect();
        assert!(o.len() > 20, "{what}: {o:?}");
        assert!(
            o.iter().all(|x| (x - o[0]).abs() < 2e-4),
            "{what}: re-timed after the first report: {o:?}"
        );
        o[0]
    };
    let (a, v) = (settled(&a, "audio"), settled(&v, "video"));
    assert!(
        (a - v).abs() <= 0.001,
        "audio is {:.2} ms off the video at ffmpeg's receiver",
        (a - v) * 1e3
    );
}

/// AAC frames sharing RTP packets (RFC 3640 with several AU headers per packet, here two
/// frames per packet: a 50 ms bound) reach GStreamer's depayloader whole: every frame of the
/// recording equals the source's, with its own timestamp (our SDP's `constantDuration` lets
/// the receiver time the second frame of each packet). Published with the transport crate
/// alone, the units merged by time.
#[test]
fn aggregated_aac_frames_arrive_whole_at_gstreamer() {
    use bytes::Bytes;
    use mpegcoder::transport::rtsp::{RtspOptions, RtspPublisher};
    use mpegcoder::transport::VideoTrack;
    use mpegcoder::transport::{AccessUnit, AudioFrame, AudioTrack, Media, TimeBase, Track};

    if !require("aggregated_aac_frames_arrive_whole", GST_TOOLS) {
        return;
    }
    let dir = TempDir::new("av-aggregate");
    let clip = av_clip(dir.path());
    let server = GstRtspRecord::start_with(
        dir.path(),
        GstOptions {
            audio: true,
            ..GstOptions::default()
        },
    );
    let vtb = TimeBase::new(clip.time_base.0, clip.time_base.1);
    let (an, ad) = clip.audio_time_base.unwrap();
    let atb = TimeBase::new(an, ad);
    let mut units: Vec<(i128, Media)> = clip
        .packets
        .iter()
        .map(|p| {
            let au = AccessUnit::from_length_prefixed(
                &Bytes::from(p.data.clone()),
                4,
                p.pts,
                p.dts,
                vtb,
                p.key,
            )
            .unwrap();
            (vtb.ticks_to_nanos(p.dts), Media::from(au))
        })
        .chain(clip.audio_packets.iter().map(|p| {
            let f = AudioFrame::new(Bytes::from(p.data.clone()), p.pts, atb);
            (atb.ticks_to_nanos(p.pts), Media::from(f))
        }))
        .collect();
    units.sort_by_key(|(t, m)| (*t, m.audio().is_some()));
    let tracks = [
        Track::from(VideoTrack::from_extradata(&Bytes::from(clip.extradata.clone())).unwrap()),
        Track::from(AudioTrack::aac(Bytes::from(clip.audio_extradata.clone())).unwrap()),
    ];
    let options = RtspOptions::default().with_audio_aggregation(Duration::from_millis(50));
    let stats = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let mut p = RtspPublisher::connect(&server.url(None), &tracks, options).await?;
            // Paced by a plain sleep to each unit's time: the server's receiver times what
            // arrives.
            let start = tokio::time::Instant::now();
            let t0 = units[0].0;
            for (t, m) in units {
                let due = Duration::from_nanos(u64::try_from(t - t0).unwrap());
                tokio::time::sleep_until(start + due).await;
                p.send(m).await?;
            }
            p.close().await
        })
        .unwrap_or_else(|e| panic!("{e}; server log: {}", server.log()));
    let rtsp = stats.rtsp().unwrap();
    assert_eq!(rtsp.audio_frames, 95);
    // Two frames per packet (the last one alone).
    assert_eq!(rtsp.audio_packets, 48, "{rtsp:?}");
    let rec = server.wait_recording(Duration::from_millis(500), Duration::from_secs(15));
    assert_frames_match(&clip.framemd5, &framemd5(&rec), true, "aggregated");
    assert_audio_match(&clip.audio_md5, &audio_framemd5(&rec), "aggregated");
    assert_audio_steady(&rec, "aggregated");
    assert_start_offset(&clip, &rec, "aggregated");
}
