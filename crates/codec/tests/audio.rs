//! Audio passthrough: the demuxed audio packets are exactly what ffmpeg's stream copy sees
//! (count, per-packet MD5, timestamps), in several containers and codecs; audio stream
//! selection; the decoder's audio queue across sequential decoding, rewinds, seeks and
//! indexing.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use md5::{Digest, Md5};
use mpegcoder_codec::{
    AudioSelection, CodecError, Decoder, DecoderOptions, DemuxedPacket, Demuxer, EncodedPacket,
    OpenOptions, PixelLayout,
};

const VIDEO: [&str; 4] = ["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30"];
const X264: [&str; 6] = [
    "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
];

/// 2 s of testsrc2 with a 440 Hz sine at `rate` Hz, audio encoded with `codec`; a GOP of 15
/// frames so that seeks really seek.
fn av_clip(rate: &str, codec: &str, ext: &str) -> PathBuf {
    let sine = format!("sine=frequency=440:sample_rate={rate}");
    let mut args: Vec<&str> = VIDEO.to_vec();
    args.extend(["-f", "lavfi", "-i", &sine, "-t", "2"]);
    args.extend(X264);
    args.extend(["-g", "15", "-c:a", codec]);
    clip(&args, ext)
}

/// H.264 + AAC (48 kHz mono, FFmpeg's native encoder) in MP4.
fn aac_mp4() -> PathBuf {
    av_clip("48000", "aac", "mp4")
}

/// The same streams copied into another container.
fn remux(src: &Path, ext: &str) -> PathBuf {
    let s = src.to_str().expect("utf-8").to_owned();
    clip(&["-i", &s, "-map", "0", "-c", "copy"], ext)
}

/// Video and two audio streams: 440 Hz at 48 kHz, then 880 Hz at 16 kHz.
fn two_audio_mp4() -> PathBuf {
    let mut args: Vec<&str> = VIDEO.to_vec();
    args.extend([
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=880:sample_rate=16000",
        "-map",
        "0:v",
        "-map",
        "1:a",
        "-map",
        "2:a",
        "-t",
        "2",
    ]);
    args.extend(X264);
    args.extend(["-c:a", "aac"]);
    clip(&args, "mp4")
}

fn have_encoder(test: &str, name: &str) -> bool {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-encoders"])
        .output()
        .expect("run ffmpeg");
    let ok = String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some(name));
    if !ok {
        let msg = format!("{test}: this ffmpeg has no {name} encoder");
        if in_ci() {
            panic!("{msg}; tests may not skip under CI=true");
        }
        eprintln!("SKIPPED {msg}");
    }
    ok
}

fn md5_hex(data: &[u8]) -> String {
    Md5::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// (size, MD5 of the packet data) of every packet of audio stream `ordinal`, from
/// `ffmpeg -map 0:a:N -c copy -f framemd5`. A line is `stream, dts, pts, duration, size,
/// hash`, followed by `, S=n, size, hash` per side data (the AAC priming packet of MP4 has
/// skip-samples side data): the packet's own hash is the 6th field, not always the last.
fn ffmpeg_audio_md5(path: &Path, ordinal: usize) -> Vec<(usize, String)> {
    let map = format!("0:a:{ordinal}");
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(path)
        .args(["-map", &map, "-c", "copy", "-f", "framemd5", "-"])
        .output()
        .expect("run ffmpeg");
    assert!(
        out.status.success(),
        "framemd5 of {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(',').map(str::trim).collect();
            (f[4].parse().expect("size"), f[5].to_owned())
        })
        .collect()
}

/// (pts, dts) of every packet of audio stream `ordinal` as ffprobe reports them (the
/// demuxer's own timestamps, not shifted as ffmpeg's output is).
fn ffprobe_audio_times(path: &Path, ordinal: usize) -> Vec<(Option<i64>, Option<i64>)> {
    let select = format!("a:{ordinal}");
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", &select])
        .args(["-show_entries", "packet=pts,dts", "-of", "json"])
        .arg(path)
        .output()
        .expect("run ffprobe");
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ffprobe json");
    v["packets"]
        .as_array()
        .expect("packets")
        .iter()
        .map(|p| (p["pts"].as_i64(), p["dts"].as_i64()))
        .collect()
}

fn with_audio(audio: AudioSelection) -> OpenOptions {
    OpenOptions::default().with_audio(audio)
}

/// Everything `next_media` returns until the end.
fn all_media(d: &mut Demuxer) -> Vec<DemuxedPacket> {
    let mut out = Vec::new();
    while let Some(p) = d.next_media().expect("demux") {
        out.push(p);
    }
    out
}

fn audio_of(media: &[DemuxedPacket]) -> Vec<EncodedPacket> {
    media
        .iter()
        .filter(|p| p.is_audio())
        .map(|p| p.packet().clone())
        .collect()
}

/// Checks the audio packets of `path` (stream `ordinal`) against ffmpeg and ffprobe, and that
/// the video packets are all there too; returns the demuxer and what it read.
fn check_against_ffmpeg(path: &Path, ordinal: usize) -> (Demuxer, Vec<DemuxedPacket>) {
    let mut d = Demuxer::open(path, &with_audio(AudioSelection::Index(ordinal))).expect("open");
    let media = all_media(&mut d);
    let audio = audio_of(&media);
    let expected = ffmpeg_audio_md5(path, ordinal);
    let name = path.display();
    assert_eq!(audio.len(), expected.len(), "{name}: audio packet count");
    for (i, (p, (size, hash))) in audio.iter().zip(&expected).enumerate() {
        assert_eq!(p.data.len(), *size, "{name}: size of audio packet {i}");
        assert_eq!(&md5_hex(&p.data), hash, "{name}: MD5 of audio packet {i}");
        assert!(p.key);
    }
    let times = ffprobe_audio_times(path, ordinal);
    assert_eq!(times.len(), audio.len(), "{name}: ffprobe packet count");
    for (i, (p, (pts, dts))) in audio.iter().zip(&times).enumerate() {
        assert_eq!(Some(p.pts), *pts, "{name}: pts of audio packet {i}");
        assert_eq!(Some(p.dts), *dts, "{name}: dts of audio packet {i}");
    }
    let params = d.audio().expect("audio selected").clone();
    assert!(audio.iter().all(|p| p.time_base == params.time_base));
    // The video is complete too, and the same as `next_packet` gives.
    let video: Vec<EncodedPacket> = media
        .iter()
        .filter(|p| !p.is_audio())
        .map(|p| p.packet().clone())
        .collect();
    let mut plain = Demuxer::open(path, &OpenOptions::default()).expect("open");
    let only_video: Vec<EncodedPacket> = plain.by_ref().map(|p| p.expect("demux")).collect();
    assert_eq!(video, only_video, "{name}: video packets");
    (d, media)
}

/// Longest runs of consecutive (video, audio) packets, not counting the last run (the
/// audio stored after the last video frame, or the reverse).
fn longest_runs(media: &[DemuxedPacket]) -> (usize, usize) {
    let mut runs: Vec<(bool, usize)> = Vec::new();
    for p in media {
        match runs.last_mut() {
            Some((audio, n)) if *audio == p.is_audio() => *n += 1,
            _ => runs.push((p.is_audio(), 1)),
        }
    }
    runs.pop();
    let longest = |audio: bool| {
        runs.iter()
            .filter(|r| r.0 == audio)
            .map(|r| r.1)
            .max()
            .unwrap_or(0)
    };
    (longest(false), longest(true))
}

/// Largest distance in seconds between the dts of a packet and that of the latest packet
/// of the other kind read before it.
fn max_skew(media: &[DemuxedPacket]) -> f64 {
    let (mut last_video, mut last_audio) = (None::<f64>, None::<f64>);
    let mut skew = 0.0f64;
    for p in media {
        let t = p.packet().dts_seconds();
        let other = if p.is_audio() {
            last_audio = Some(t);
            last_video
        } else {
            last_video = Some(t);
            last_audio
        };
        if let Some(o) = other {
            skew = skew.max((t - o).abs());
        }
    }
    skew
}

#[test]
fn aac_in_mp4_matches_ffmpeg() {
    if !have_ffmpeg("aac_in_mp4_matches_ffmpeg") {
        return;
    }
    let path = aac_mp4();
    let (d, media) = check_against_ffmpeg(&path, 0);
    let a = d.audio().expect("audio").clone();
    assert_eq!(
        (a.codec.as_str(), a.sample_rate, a.channels),
        ("aac", 48_000, 1)
    );
    assert_eq!((a.stream_index, a.ordinal, a.frame_size), (1, 0, 1024));
    assert_eq!(a.time_base, mpegcoder_codec::Rational::new(1, 48_000));
    assert!(a.bit_rate.is_some_and(|b| b > 10_000), "{:?}", a.bit_rate);
    // The AudioSpecificConfig: object type 2 (AAC LC), frequency index 3 (48 kHz), channel
    // configuration 1: 00010 0011 0001 000 = 0x11 0x88. FFmpeg's native encoder appends an
    // explicit "no SBR" sync extension (0x2b7, object type 5, flag 0): 0x56 0xe5 0x00.
    assert_eq!(
        &a.extradata[..2],
        &[0x11, 0x88],
        "{:02x?}",
        &a.extradata[..]
    );
    if a.extradata.len() > 2 {
        assert_eq!(&a.extradata[2..], &[0x56, 0xe5, 0x00]);
    }
    // 2 s at 48 kHz is 93.75 frames of 1024 samples: 94, plus the encoder's priming frame.
    // The MP4 keeps the priming (1024 samples of encoder delay) as a first packet at pts
    // -1024 that the edit list cuts (FFmpeg marks it with skip-samples side data); the
    // stream's start time is 0.
    let audio = audio_of(&media);
    assert_eq!(audio.len(), 95);
    assert_eq!(
        (audio[0].pts, audio[0].dts, audio[0].duration),
        (-1024, -1024, 1024)
    );
    assert_eq!((audio[1].pts, audio[1].dts), (0, 0));
    assert_eq!(a.start_time, 0);
    for w in audio.windows(2) {
        assert_eq!(
            w[1].pts,
            w[0].pts + w[0].duration,
            "audio packets are contiguous"
        );
    }
    // Interleave: FFmpeg's MP4 muxer interleaves by dts and starts a new chunk at every
    // change of stream, so the demuxer returns the streams alternating in runs of one or two
    // packets (30 video frames and 23.4 AAC frames per second), except the last run: the
    // 4 audio packets after the last video frame. Neither stream gets more than a frame or
    // two ahead of the other.
    let runs = longest_runs(&media);
    assert!(runs.0 <= 2 && runs.1 <= 2, "runs (video, audio): {runs:?}");
    let skew = max_skew(&media);
    assert!(skew < 0.1, "A/V skew of {skew} s");
}

#[test]
fn aac_in_mpegts_and_mkv_matches_ffmpeg() {
    if !have_ffmpeg("aac_in_mpegts_and_mkv_matches_ffmpeg") {
        return;
    }
    let mp4 = aac_mp4();
    // MPEG-TS: the packets are ADTS frames (7-byte header, sync word 0xfff, no CRC) and the
    // stream has no extradata: the configuration is in every header. Timestamps are in
    // 1/90000 and start after the muxer's initial delay (1.4 s).
    let ts = remux(&mp4, "ts");
    let (d, media) = check_against_ffmpeg(&ts, 0);
    // Interleave: FFmpeg's TS muxer packs ~13 AAC frames (its 2930-byte PES payload, 0.3 s)
    // into one PES packet, which the demuxer's parser splits into frames again: the audio
    // comes in runs of 14-15 packets between runs of 9-10 video frames, up to ~0.3 s apart.
    let runs = longest_runs(&media);
    assert!(
        runs.0 <= 12 && runs.1 <= 16,
        "runs (video, audio): {runs:?}"
    );
    let skew = max_skew(&media);
    assert!(skew < 0.4, "A/V skew of {skew} s");
    let a = d.audio().expect("audio").clone();
    assert_eq!(
        (a.codec.as_str(), a.sample_rate, a.channels),
        ("aac", 48_000, 1)
    );
    assert_eq!(a.time_base, mpegcoder_codec::Rational::new(1, 90_000));
    assert!(a.extradata.is_empty(), "{:02x?}", &a.extradata[..]);
    let audio = audio_of(&media);
    assert_eq!(audio.len(), 95);
    for p in &audio {
        assert!(p.data.len() > 7 && p.data[0] == 0xff && p.data[1] & 0xf6 == 0xf0);
        let adts_len = (usize::from(p.data[3] & 3) << 11)
            | (usize::from(p.data[4]) << 3)
            | usize::from(p.data[5] >> 5);
        assert_eq!(adts_len, p.data.len(), "one ADTS frame per packet");
        assert_eq!(p.duration, 1920, "1024 samples at 48 kHz in 1/90000");
    }
    // The same raw frames as in the MP4, behind their headers.
    let mp4_audio = audio_of(&all_media(
        &mut Demuxer::open(&mp4, &with_audio(AudioSelection::First)).expect("open"),
    ));
    for (t, m) in audio.iter().zip(&mp4_audio) {
        assert_eq!(&t.data[7..], &m.data[..]);
    }
    // Matroska keeps the AudioSpecificConfig; timestamps in milliseconds.
    let mkv = remux(&mp4, "mkv");
    let (d, media) = check_against_ffmpeg(&mkv, 0);
    let a = d.audio().expect("audio");
    assert_eq!(&a.extradata[..2], &[0x11, 0x88]);
    assert_eq!(a.time_base, mpegcoder_codec::Rational::new(1, 1000));
    assert_eq!(audio_of(&media).len(), 95);
}

#[test]
fn mp3_opus_and_g711_match_ffmpeg() {
    if !have_ffmpeg("mp3_opus_and_g711_match_ffmpeg") {
        return;
    }
    if have_encoder("mp3_opus_and_g711_match_ffmpeg", "libmp3lame") {
        let path = av_clip("44100", "libmp3lame", "mp4");
        let (d, _) = check_against_ffmpeg(&path, 0);
        let a = d.audio().expect("audio");
        assert_eq!(
            (a.codec.as_str(), a.sample_rate, a.channels),
            ("mp3", 44_100, 1)
        );
        assert_eq!(a.frame_size, 1152);
        assert!(a.extradata.is_empty());
    }
    if have_encoder("mp3_opus_and_g711_match_ffmpeg", "libopus") {
        let path = av_clip("48000", "libopus", "mkv");
        let (d, media) = check_against_ffmpeg(&path, 0);
        let a = d.audio().expect("audio");
        assert_eq!(
            (a.codec.as_str(), a.sample_rate, a.channels),
            ("opus", 48_000, 1)
        );
        // The OpusHead: magic, version 1, channel count, ...
        assert_eq!(&a.extradata[..8], b"OpusHead");
        assert_eq!(a.extradata[9], 1);
        // libopus's pre-skip shows as a negative start (ms): the first packet starts early.
        assert!(audio_of(&media)[0].pts < 0);
    }
    for (codec, ext) in [("pcm_mulaw", "mkv"), ("pcm_alaw", "mkv")] {
        let path = av_clip("8000", codec, ext);
        let (d, media) = check_against_ffmpeg(&path, 0);
        let a = d.audio().expect("audio");
        assert_eq!(
            (a.codec.as_str(), a.sample_rate, a.channels),
            (codec, 8000, 1)
        );
        assert!(a.extradata.is_empty());
        // One byte per sample: 2 s at 8 kHz.
        let bytes: usize = audio_of(&media).iter().map(|p| p.data.len()).sum();
        assert_eq!(bytes, 16_000);
    }
}

#[test]
fn audio_streams_are_selected_by_ordinal() {
    if !have_ffmpeg("audio_streams_are_selected_by_ordinal") {
        return;
    }
    let path = two_audio_mp4();
    let d = Demuxer::open(&path, &OpenOptions::default()).expect("open");
    assert!(d.audio().is_none(), "no audio by default");
    let all = d.audio_streams();
    assert_eq!(all.len(), 2);
    let ids: Vec<(usize, usize, u32)> = all
        .iter()
        .map(|a| (a.stream_index, a.ordinal, a.sample_rate))
        .collect();
    assert_eq!(ids, vec![(1, 0, 48_000), (2, 1, 16_000)]);

    let first = Demuxer::open(&path, &with_audio(AudioSelection::First)).expect("open");
    assert_eq!(first.audio().map(|a| a.sample_rate), Some(48_000));
    let (second, media) = check_against_ffmpeg(&path, 1);
    assert_eq!(second.audio().map(|a| a.sample_rate), Some(16_000));
    assert_eq!(second.audio(), Some(&all[1]));
    assert!(audio_of(&media).iter().all(|p| p.time_base.den == 16_000));

    for open in [
        |p: &Path| Demuxer::open(p, &with_audio(AudioSelection::Index(5))).map(drop),
        |p: &Path| {
            let o = DecoderOptions::default().with_open(with_audio(AudioSelection::Index(5)));
            Decoder::open(p, o).map(drop)
        },
    ] {
        match open(&path) {
            Err(e @ CodecError::NoAudioStream { .. }) => {
                let CodecError::NoAudioStream { index, count, .. } = &e else {
                    unreachable!()
                };
                assert_eq!((*index, *count), (5, 2));
                assert_eq!(
                    e.to_string(),
                    format!(
                        "{}: no audio stream 5 (the input has 2 audio streams, numbered 0 to 1)",
                        path.display()
                    )
                );
            }
            other => panic!("expected NoAudioStream, got {other:?}"),
        }
    }

    // Video only: First is not an error, there is just no audio.
    let video_only = bframes_mp4();
    let mut d = Demuxer::open(&video_only, &with_audio(AudioSelection::First)).expect("open");
    assert!(d.audio().is_none() && d.audio_streams().is_empty());
    let media = all_media(&mut d);
    assert!(media.iter().all(|p| !p.is_audio()));
    assert_eq!(media.len(), 60);
    let o = DecoderOptions::default().with_open(with_audio(AudioSelection::First));
    let mut dec = Decoder::open(&video_only, o).expect("open");
    assert!(dec.audio().is_none());
    assert!(dec.next_frame().expect("decode").is_some());
    assert!(dec.take_audio_packets().is_empty());
    assert!(matches!(
        Demuxer::open(&video_only, &with_audio(AudioSelection::Index(0))),
        Err(CodecError::NoAudioStream {
            index: 0,
            count: 0,
            ..
        })
    ));
}

#[test]
fn demuxer_rewind_repeats_video_and_audio() {
    if !have_ffmpeg("demuxer_rewind_repeats_video_and_audio") {
        return;
    }
    let key = |m: &DemuxedPacket| {
        let p = m.packet();
        (
            m.is_audio(),
            p.pts,
            p.dts,
            p.duration,
            p.key,
            p.data.clone(),
        )
    };
    for path in [aac_mp4(), remux(&aac_mp4(), "ts")] {
        let mut d = Demuxer::open(&path, &with_audio(AudioSelection::First)).expect("open");
        let first: Vec<_> = all_media(&mut d).iter().map(key).collect();
        assert!(d.next_media().expect("at the end").is_none());
        d.rewind().expect("rewind");
        let second: Vec<_> = all_media(&mut d).iter().map(key).collect();
        assert_eq!(first, second, "{}", path.display());
        // Rewinding in the middle starts over too.
        d.rewind().expect("rewind");
        for _ in 0..40 {
            d.next_media().expect("demux");
        }
        d.rewind().expect("rewind");
        let third: Vec<_> = all_media(&mut d).iter().map(key).collect();
        assert_eq!(first, third, "{}", path.display());
    }
}

fn audio_decoder(path: &Path) -> Decoder {
    let options = DecoderOptions::default()
        .with_output(PixelLayout::Yuv420p)
        .with_open(with_audio(AudioSelection::First));
    Decoder::open(path, options).expect("open")
}

/// (pts, dts, data) of packets, for comparing sequences.
fn ids(packets: &[EncodedPacket]) -> Vec<(i64, i64, bytes::Bytes)> {
    packets
        .iter()
        .map(|p| (p.pts, p.dts, p.data.clone()))
        .collect()
}

/// Decodes to the end, taking the audio after every frame; returns (frames, audio).
fn decode_rest(d: &mut Decoder, audio: &mut Vec<EncodedPacket>) -> u64 {
    let mut frames = 0;
    while d.next_frame().expect("decode").is_some() {
        frames += 1;
        audio.extend(d.take_audio_packets());
    }
    audio.extend(d.take_audio_packets());
    frames
}

#[test]
fn decoder_queues_every_audio_packet_once() {
    if !have_ffmpeg("decoder_queues_every_audio_packet_once") {
        return;
    }
    for path in [aac_mp4(), remux(&aac_mp4(), "ts"), remux(&aac_mp4(), "mkv")] {
        let name = path.display();
        let expected = audio_of(&all_media(
            &mut Demuxer::open(&path, &with_audio(AudioSelection::First)).expect("open"),
        ));
        assert_eq!(expected.len(), 95);
        let mut d = audio_decoder(&path);
        assert_eq!(d.audio().map(|a| a.codec.as_str()), Some("aac"));
        assert!(d.take_audio_packets().is_empty(), "nothing read yet");
        let mut got = Vec::new();
        assert_eq!(decode_rest(&mut d, &mut got), 60);
        assert_eq!(ids(&got), ids(&expected), "{name}: first pass");
        // At the end, further calls find nothing more.
        assert!(d.next_frame().expect("end").is_none());
        assert!(d.take_audio_packets().is_empty());

        // A loop: rewind keeps what is queued, and the second pass yields it all again.
        d.rewind().expect("rewind");
        let mut second = Vec::new();
        for _ in 0..10 {
            d.next_frame().expect("decode").expect("frame");
        }
        d.rewind().expect("rewind in the middle");
        second.extend(d.take_audio_packets());
        let mut third = Vec::new();
        assert_eq!(decode_rest(&mut d, &mut third), 60);
        assert_eq!(
            ids(&second),
            ids(&expected[..second.len()]),
            "{name}: kept across rewind"
        );
        assert!(!second.is_empty());
        assert_eq!(ids(&third), ids(&expected), "{name}: pass after rewind");
    }
}

#[test]
fn decoder_seeks_leave_no_stale_audio() {
    if !have_ffmpeg("decoder_seeks_leave_no_stale_audio") {
        return;
    }
    for path in [aac_mp4(), remux(&aac_mp4(), "ts")] {
        let name = path.display();
        let expected = audio_of(&all_media(
            &mut Demuxer::open(&path, &with_audio(AudioSelection::First)).expect("open"),
        ));
        let mut d = audio_decoder(&path);
        // Indexing first reads video only: nothing is queued.
        let pts: Vec<i64> = d
            .build_index()
            .expect("index")
            .entries()
            .iter()
            .map(|e| e.pts)
            .collect();
        assert!(
            d.take_audio_packets().is_empty(),
            "{name}: indexing queued audio"
        );
        let tb = d.time_base();
        let frame_time = |i: usize| tb.seconds(pts[i]);

        // After a seek the queue holds a contiguous run of the audio, from the packet that
        // is playing when the target frame is shown (nothing ending before it).
        let check_from = |queued: &[EncodedPacket], target: usize, what: &str| {
            let Some(first) = queued.first() else {
                panic!("{name}: {what}: no audio queued after the seek");
            };
            let start = expected
                .iter()
                .position(|p| (p.pts, p.dts) == (first.pts, first.dts))
                .expect("a known packet");
            assert_eq!(
                ids(queued),
                ids(&expected[start..start + queued.len()]),
                "{name}: {what}: contiguous"
            );
            let t = frame_time(target);
            let end = |p: &EncodedPacket| (p.pts + p.duration) as f64 * p.time_base.as_f64();
            assert!(
                end(first) > t,
                "{name}: {what}: stale packet ending before the frame"
            );
            assert!(
                start == 0 || end(&expected[start - 1]) <= t + 1e-9,
                "{name}: {what}"
            );
            start
        };
        for _ in 0..20 {
            d.next_frame().expect("decode").expect("frame");
        }
        assert!(!d.take_audio_packets().is_empty());
        for _ in 0..3 {
            d.next_frame().expect("decode").expect("frame");
        }
        // What is queued right after a seek, plus the audio of the next `n` frames: in
        // MPEG-TS FFmpeg's muxer stores audio in PES packets of ~13 AAC frames (0.28 s),
        // written after the video of the same time, so the audio of the target frame may
        // only be read a few frames later.
        let after = |d: &mut Decoder, n: usize| {
            let mut audio = d.take_audio_packets();
            for _ in 0..n {
                d.next_frame().expect("decode").expect("frame");
                audio.extend(d.take_audio_packets());
            }
            audio
        };
        // Forward within the GOP (key frames at 0, 15, 30, 45): no seek, stale audio trimmed.
        let f = d.extract_frame(27, 1).expect("extract");
        assert_eq!(f[0].pts, pts[27]);
        let start = check_from(&after(&mut d, 10), 27, "forward");
        // Backward: a real seek.
        let f = d.extract_frame(5, 1).expect("extract");
        assert_eq!(f[0].pts, pts[5]);
        check_from(&after(&mut d, 10), 5, "backward");
        // Forward into another GOP, then decode to the end: the audio from the seek on is
        // the tail of the stream, every packet once.
        let f = d.extract_frame(50, 1).expect("extract");
        assert_eq!(f[0].pts, pts[50]);
        let mut rest = d.take_audio_packets();
        decode_rest(&mut d, &mut rest);
        let start_50 = check_from(&rest, 50, "to frame 50");
        assert!(start_50 > start);
        assert_eq!(
            ids(&rest),
            ids(&expected[start_50..]),
            "{name}: tail after seek"
        );
        // Seeking to frame 0 queues the audio of the first frame on (the priming packet of
        // the AAC encoder, which ends when the first frame is shown, is not part of it).
        d.extract_frame(0, 1).expect("extract");
        let s = check_from(&after(&mut d, 10), 0, "frame 0");
        assert_eq!(s, 1, "{name}: starts at packet {s}");
    }
}

#[test]
fn indexing_in_the_middle_neither_loses_nor_repeats_audio() {
    if !have_ffmpeg("indexing_in_the_middle_neither_loses_nor_repeats_audio") {
        return;
    }
    for path in [aac_mp4(), remux(&aac_mp4(), "ts"), remux(&aac_mp4(), "mkv")] {
        let expected = audio_of(&all_media(
            &mut Demuxer::open(&path, &with_audio(AudioSelection::First)).expect("open"),
        ));
        for (taken_before, frames_before) in [(true, 20), (false, 20), (true, 37)] {
            let mut d = audio_decoder(&path);
            let mut got = Vec::new();
            for _ in 0..frames_before {
                d.next_frame().expect("decode").expect("frame");
                if taken_before {
                    got.extend(d.take_audio_packets());
                }
            }
            d.build_index().expect("index");
            decode_rest(&mut d, &mut got);
            assert_eq!(
                ids(&got),
                ids(&expected),
                "{}: index after {frames_before} frames",
                path.display()
            );
        }
    }
}
