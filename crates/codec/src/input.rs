//! Opening inputs, reading stream parameters, and the passthrough [`Demuxer`].

use std::ffi::OsStr;
use std::time::Duration;

use bytes::Bytes;
use ff::codec::threading;
use ff::format::context::Input;
use ff::media;
use ffmpeg_next as ff;

use crate::convert::pixel_name;
use mpegcoder_types::redact_url;

use crate::audio::{audio_streams, AudioStamper};
use crate::error::FfmpegError;
use crate::rational::FfRational;
use crate::{
    AudioParams, AudioSelection, CodecError, EncodedPacket, FrameCountSource, Rational, VideoParams,
};

/// FFmpeg's "no timestamp" value.
pub(crate) const NOPTS: i64 = i64::MIN;

/// How to open an input (file or URL): start from [`OpenOptions::default`] and change what
/// you need with the `with_*` setters.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OpenOptions {
    /// Timeout of each network read/connect (FFmpeg's `rw_timeout`, and `timeout` for
    /// `rtsp://`). Only applied to URLs with a scheme (`proto://`); `None` waits forever.
    /// Default: 10 s.
    pub timeout: Option<Duration>,
    /// Extra demuxer/protocol options handed to `avformat_open_input`, e.g.
    /// `("rtsp_transport", "tcp")`. Options FFmpeg does not know are ignored.
    pub format_options: Vec<(String, String)>,
    /// Which audio stream to pass through next to the video ([`Demuxer::next_media`],
    /// [`crate::Decoder::take_audio_packets`]). Default: [`AudioSelection::None`].
    pub audio: AudioSelection,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            timeout: Some(Duration::from_secs(10)),
            format_options: Vec::new(),
            audio: AudioSelection::None,
        }
    }
}

impl OpenOptions {
    /// Sets the timeout of each network read/connect (`None` waits forever).
    #[must_use]
    pub fn with_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.timeout = timeout.into();
        self
    }

    /// Replaces the demuxer/protocol options with `options` (key, value pairs).
    #[must_use]
    pub fn with_format_options(mut self, options: Vec<(String, String)>) -> Self {
        self.format_options = options;
        self
    }

    /// Adds one demuxer/protocol option, e.g. `("rtsp_transport", "tcp")`.
    #[must_use]
    pub fn with_format_option(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.format_options.push((key.into(), value.into()));
        self
    }

    /// Selects the audio stream to pass through next to the video.
    #[must_use]
    pub fn with_audio(mut self, audio: AudioSelection) -> Self {
        self.audio = audio;
        self
    }
}

/// How the packets of a demuxed H.264 stream are framed, judged from its extradata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PacketFormat {
    /// NAL units with start codes (`.h264`, `.ts`); extradata, if any, is Annex B too.
    AnnexB,
    /// NAL units with length prefixes (MP4, MKV); the extradata is an avcC record that says
    /// how long the prefixes are.
    LengthPrefixed,
}

impl PacketFormat {
    /// Judges the framing from the extradata: an avcC record starts with version byte 1, an
    /// Annex B one with a start code; no extradata means in-band parameter sets (Annex B).
    #[must_use]
    pub fn from_extradata(extradata: &[u8]) -> PacketFormat {
        match extradata.first() {
            Some(1) => PacketFormat::LengthPrefixed,
            _ => PacketFormat::AnnexB,
        }
    }
}

/// Initialises FFmpeg once and silences its logging (see [`crate::set_ffmpeg_log_level`]).
pub(crate) fn init() {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        // ff::init only registers error strings and (on old FFmpeg) formats; it cannot fail on
        // FFmpeg >= 5.
        let _ = ff::init();
        ff::util::log::set_level(ff::util::log::Level::Quiet);
    });
}

/// A packet read by [`Source::read_media`].
pub(crate) enum SourcePacket {
    /// A packet of the video stream, as FFmpeg returned it.
    Video(ff::Packet),
    /// A packet of the selected audio stream, with its timestamps filled in.
    Audio(EncodedPacket),
}

/// The selected audio stream of a [`Source`].
struct SelectedAudio {
    /// Position in [`Source::audio_streams`].
    ordinal: usize,
    stamper: AudioStamper,
}

/// An opened input with its chosen video stream (and, if selected, audio stream).
pub(crate) struct Source {
    /// The URL with credentials removed, for messages.
    pub(crate) url: String,
    /// The URL as given, for reopening.
    raw_url: String,
    options: OpenOptions,
    pub(crate) input: Input,
    pub(crate) stream_index: usize,
    pub(crate) time_base: Rational,
    pub(crate) start_time: i64,
    /// Every audio stream of the input, in container order.
    audio_streams: Vec<AudioParams>,
    audio: Option<SelectedAudio>,
    /// A local file: packets the demuxer flags corrupt, and an end before what the index
    /// lists, are [`CodecError::Damaged`] (see [`Source::read`]).
    local: bool,
    /// Video packets read since the input was opened (or reopened); `None` after a seek.
    video_read: Option<u64>,
}

fn is_network(url: &str) -> bool {
    match url.split_once("://") {
        Some((scheme, _)) => {
            !scheme.is_empty()
                && scheme != "file"
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '-' || c == '.')
        }
        None => false,
    }
}

fn open_input(raw_url: &str, url: &str, options: &OpenOptions) -> Result<Input, CodecError> {
    let mut dict = ff::Dictionary::new();
    for (k, v) in &options.format_options {
        if k.contains('\0') || v.contains('\0') || k.is_empty() {
            return Err(CodecError::InvalidArgument {
                what: "format option",
                reason: format!("{k:?}={v:?}: empty key or NUL byte"),
            });
        }
        dict.set(k, v);
    }
    if let (true, Some(t)) = (is_network(raw_url), options.timeout) {
        let us = t.as_micros().clamp(1, i64::MAX as u128).to_string();
        dict.set("rw_timeout", &us);
        if raw_url.starts_with("rtsp") {
            dict.set("timeout", &us);
        }
    }
    ff::format::input_with_dictionary(raw_url, dict).map_err(|e| match e {
        ff::Error::Other { errno } if errno == ff::util::error::ENOENT => CodecError::NotFound {
            url: url.to_owned(),
        },
        e => CodecError::Open {
            url: url.to_owned(),
            source: FfmpegError::new(e),
        },
    })
}

impl Source {
    /// Opens `url` and picks its best video stream.
    pub(crate) fn open(url: &OsStr, options: &OpenOptions) -> Result<Source, CodecError> {
        init();
        let shown = url.to_string_lossy().into_owned();
        let Some(raw_url) = url.to_str() else {
            return Err(CodecError::InvalidUrl {
                url: shown,
                reason: "not valid UTF-8",
            });
        };
        if raw_url.is_empty() {
            return Err(CodecError::InvalidUrl {
                url: shown,
                reason: "empty",
            });
        }
        if raw_url.contains('\0') {
            return Err(CodecError::InvalidUrl {
                url: redact_url(raw_url),
                reason: "contains a NUL byte",
            });
        }
        let url = redact_url(raw_url);
        let input = open_input(raw_url, &url, options)?;
        let (stream_index, time_base, start_time) = {
            let stream = input
                .streams()
                .best(media::Type::Video)
                .ok_or_else(|| CodecError::NoVideoStream { url: url.clone() })?;
            let start = match stream.start_time() {
                NOPTS => 0,
                s => s,
            };
            (stream.index(), Rational::from_ff(stream.time_base()), start)
        };
        if !time_base.is_valid() {
            return Err(CodecError::InvalidStream {
                url,
                reason: "it has no valid time base",
            });
        }
        let audio_streams = audio_streams(&input);
        let ordinal = match options.audio {
            AudioSelection::None => None,
            AudioSelection::First => (!audio_streams.is_empty()).then_some(0),
            AudioSelection::Index(n) if n < audio_streams.len() => Some(n),
            AudioSelection::Index(n) => {
                return Err(CodecError::NoAudioStream {
                    url,
                    index: n,
                    count: audio_streams.len(),
                })
            }
        };
        let audio = ordinal.and_then(|ordinal| {
            let params = audio_streams.get(ordinal)?;
            Some(SelectedAudio {
                ordinal,
                stamper: AudioStamper::new(params),
            })
        });
        Ok(Source {
            url,
            raw_url: raw_url.to_owned(),
            options: options.clone(),
            input,
            stream_index,
            time_base,
            start_time,
            audio_streams,
            audio,
            local: !is_network(raw_url),
            video_read: Some(0),
        })
    }

    /// Every audio stream of the input, in container order.
    pub(crate) fn audio_streams(&self) -> &[AudioParams] {
        &self.audio_streams
    }

    /// The selected audio stream, if any.
    pub(crate) fn audio(&self) -> Option<&AudioParams> {
        self.audio
            .as_ref()
            .and_then(|a| self.audio_streams.get(a.ordinal))
    }

    /// Opens a decoder for the video stream (threading is configured before it opens) and
    /// reads the stream's parameters and extradata.
    pub(crate) fn open_decoder(
        &self,
        threads: usize,
    ) -> Result<(ff::decoder::Video, VideoParams, Bytes), CodecError> {
        let stream =
            self.input
                .stream(self.stream_index)
                .ok_or_else(|| CodecError::NoVideoStream {
                    url: self.url.clone(),
                })?;
        let parameters = stream.parameters();
        let codec = parameters.id().name().to_owned();
        let open_err = |e: ff::Error| CodecError::DecoderOpen {
            url: self.url.clone(),
            codec: codec.clone(),
            source: FfmpegError::new(e),
        };
        let mut ctx = ff::codec::Context::from_parameters(parameters.clone()).map_err(open_err)?;
        let extradata = crate::ffi::extradata(&ctx);
        // Frame threading must be configured before `.video()` opens the decoder. On FFmpeg
        // < 6 the config has an extra field, hence `..Default::default()`.
        ctx.set_threading(threading::Config {
            kind: threading::Type::Frame,
            count: threads,
            ..Default::default()
        });
        let mut dec = ctx.decoder();
        dec.set_packet_time_base(stream.time_base());
        let video = dec.video().map_err(|e| match e {
            ff::Error::DecoderNotFound => CodecError::UnsupportedCodec {
                url: self.url.clone(),
                codec: codec.clone(),
            },
            e => open_err(e),
        })?;

        let tb = self.time_base;
        let duration_s = match stream.duration() {
            d if d > 0 && d != NOPTS => Some(d as f64 * tb.as_f64()),
            _ => match self.input.duration() {
                d if d > 0 && d != NOPTS => Some(d as f64 / 1e6),
                _ => None,
            },
        };
        let frame_rate = Rational::from_ff(stream.rate());
        let avg_frame_rate = Rational::from_ff(stream.avg_frame_rate());
        let (frame_count, frame_count_source) = match stream.frames() {
            n if n > 0 => (n as u64, FrameCountSource::Container),
            _ => match duration_s {
                Some(d) if avg_frame_rate.is_valid() || frame_rate.is_valid() => {
                    let fps = if avg_frame_rate.is_valid() {
                        avg_frame_rate
                    } else {
                        frame_rate
                    };
                    (
                        (d * fps.as_f64()).round() as u64,
                        FrameCountSource::Estimate,
                    )
                }
                _ => (0, FrameCountSource::Unknown),
            },
        };
        let bit_rate = match (parameters.bit_rate(), self.input.bit_rate()) {
            (b, _) if b > 0 => Some(b as u64),
            (_, b) if b > 0 => Some(b as u64),
            _ => None,
        };
        let params = VideoParams {
            width: video.width(),
            height: video.height(),
            frame_rate,
            avg_frame_rate,
            time_base: tb,
            start_time: self.start_time,
            duration_s,
            frame_count,
            frame_count_source,
            codec,
            bit_rate,
            pixel_format: pixel_name(video.format()),
            gop_size: None,
            max_b_frames: if video.has_b_frames() { None } else { Some(0) },
        };
        Ok((video, params, extradata))
    }

    /// Goes back to the start of the input by reopening it. (Seeking to the start is not
    /// reliable: the MPEG-TS demuxer, for one, lands on the first packet whose timestamp is
    /// near the start time, which may come after the first packets.)
    pub(crate) fn rewind(&mut self) -> Result<(), CodecError> {
        self.reset_audio();
        self.reopen()
    }

    /// Forgets the previous audio packet (its end is no longer where the next one starts).
    fn reset_audio(&mut self) {
        if let Some(a) = &mut self.audio {
            a.stamper.reset();
        }
    }

    /// Seeks so that the next packet read is at or before the key frame whose decode
    /// timestamp is `ts` (ticks of the stream time base).
    pub(crate) fn seek_before(&mut self, ts: i64) -> Result<(), CodecError> {
        let us = (i128::from(ts) * i128::from(self.time_base.num) * 1_000_000)
            .div_euclid(i128::from(self.time_base.den).max(1));
        let us = i64::try_from(us).unwrap_or(0);
        self.reset_audio();
        self.video_read = None;
        // ffmpeg-next passes the end of a `..x` range as max_ts itself (inclusive), which makes
        // FFmpeg pick a key frame at or before `us`.
        self.input
            .seek(us, ..us)
            .or_else(|_| self.input.seek(us, ..))
            .map_err(|e| CodecError::Seek {
                url: self.url.clone(),
                source: FfmpegError::new(e),
            })
    }

    /// Closes and reopens the input (for demuxers that cannot seek back).
    fn reopen(&mut self) -> Result<(), CodecError> {
        let input = open_input(&self.raw_url, &self.url, &self.options)?;
        let is = |index: usize, medium: media::Type| {
            input
                .stream(index)
                .is_some_and(|s| s.parameters().medium() == medium)
        };
        let ok = is(self.stream_index, media::Type::Video)
            && self
                .audio()
                .is_none_or(|a| is(a.stream_index, media::Type::Audio));
        if !ok {
            return Err(CodecError::InvalidStream {
                url: self.url.clone(),
                reason: "it changed when the input was reopened",
            });
        }
        self.input = input;
        self.video_read = Some(0);
        Ok(())
    }

    /// Reads the next packet of the video stream, skipping all others; `None` at the end.
    pub(crate) fn read_packet(&mut self) -> Result<Option<ff::Packet>, CodecError> {
        loop {
            match self.read(false)? {
                Some(SourcePacket::Video(packet)) => return Ok(Some(packet)),
                Some(SourcePacket::Audio(_)) => {}
                None => return Ok(None),
            }
        }
    }

    /// Reads the next packet of the video stream or of the selected audio stream, in
    /// container order; `None` at the end.
    pub(crate) fn read_media(&mut self) -> Result<Option<SourcePacket>, CodecError> {
        self.read(true)
    }

    fn read(&mut self, with_audio: bool) -> Result<Option<SourcePacket>, CodecError> {
        let audio_index = match (with_audio, self.audio()) {
            (true, Some(a)) => Some(a.stream_index),
            _ => None,
        };
        let mut invalid = 0u32;
        loop {
            let mut packet = ff::Packet::empty();
            match packet.read(&mut self.input) {
                Ok(()) if packet.stream() == self.stream_index => {
                    if self.local && packet.is_corrupt() {
                        if let Some(e) = self.damaged(&packet, true) {
                            return Err(e);
                        }
                    }
                    self.video_read = self.video_read.map(|n| n + 1);
                    return Ok(Some(SourcePacket::Video(packet)));
                }
                Ok(()) if Some(packet.stream()) == audio_index => {
                    if self.local && packet.is_corrupt() {
                        if let Some(e) = self.damaged(&packet, false) {
                            return Err(e);
                        }
                    }
                    if let Some(a) = &mut self.audio {
                        return Ok(Some(SourcePacket::Audio(a.stamper.stamp(&packet))));
                    }
                }
                Ok(()) => {}
                Err(ff::Error::Eof) => {
                    return match self.truncated_at_end() {
                        Some(e) => Err(e),
                        None => Ok(None),
                    }
                }
                // A demuxer can resync past corrupt data; give up if it keeps failing.
                Err(ff::Error::InvalidData) if invalid < 1000 => invalid += 1,
                Err(ff::Error::Other { errno }) if errno == ff::util::error::EAGAIN => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => {
                    return Err(CodecError::Read {
                        url: self.url.clone(),
                        source: FfmpegError::new(e),
                    })
                }
            }
        }
    }
}

impl Source {
    /// The error for a packet of a local file that the demuxer flagged corrupt: libavformat
    /// sets `AV_PKT_FLAG_CORRUPT` when it read fewer bytes than the packet has (the file is
    /// cut inside it), and for damage it detects in the container. Only the first is an end:
    /// a packet shorter than its index entry, one the end of the file cuts, or any flagged
    /// packet of MP4/MOV or Matroska (their demuxers flag short reads only). A flag without a
    /// cut (an MPEG-TS continuity error, common where files were joined or recorded from a
    /// broadcast) is passed on as ffmpeg does: `None`. The frame is found by the packet's
    /// position in the demuxer's index (MP4: the `moov` box's sample table), else by counting.
    fn damaged(&mut self, packet: &ff::Packet, video: bool) -> Option<CodecError> {
        let got = packet.size();
        let pos = i64::try_from(packet.position()).unwrap_or(-1);
        let entry = (pos >= 0)
            .then(|| {
                let stream = packet.stream();
                (0..crate::ffi::index_len(&self.input, stream)).find_map(|i| {
                    let (p, size) = crate::ffi::index_entry(&self.input, stream, i)?;
                    (p == pos).then_some((i as u64, size))
                })
            })
            .flatten();
        let frame = if video {
            entry.map(|(i, _)| i).or(self.video_read)
        } else {
            self.video_read
        };
        let whose = if video { "its" } else { "an audio packet's" };
        let mut detail = match entry {
            Some((_, expected)) if expected > got as u64 => {
                format!("only {got} of {whose} {expected} bytes could be read")
            }
            _ if video => format!("the demuxer flagged its {got}-byte packet as damaged"),
            _ => format!("the demuxer flagged an audio packet of {got} bytes as damaged"),
        };
        let short = matches!(entry, Some((_, expected)) if expected > got as u64);
        let mut cut = false;
        if let Some(size) = crate::ffi::input_size(&mut self.input) {
            let end = entry.map_or(got as u64, |(_, e)| e.max(got as u64));
            if pos >= 0 && (pos as u64).saturating_add(end) > size {
                detail.push_str(&format!("; the file ends at byte {size}"));
                cut = true;
            }
        }
        if !(short || cut || self.indexed_container()) {
            return None;
        }
        Some(CodecError::Damaged {
            url: self.url.clone(),
            frame,
            detail,
        })
    }

    /// MP4/MOV or Matroska: containers whose index is read from the file itself.
    fn indexed_container(&self) -> bool {
        let format = self.input.format();
        let name = format.name();
        name.starts_with("mov,") || name.starts_with("matroska")
    }

    /// At the end of a local MP4/MOV or Matroska file: whether its index lists video frames
    /// that lie beyond the end of the file (it was cut at a packet boundary, so no packet
    /// came out short). Other containers keep no index read from the file itself.
    fn truncated_at_end(&mut self) -> Option<CodecError> {
        if !self.local || !self.indexed_container() {
            return None;
        }
        let size = crate::ffi::input_size(&mut self.input)?;
        let mut first = None;
        let mut beyond = 0u64;
        for i in 0..crate::ffi::index_len(&self.input, self.stream_index) {
            let Some((pos, len)) = crate::ffi::index_entry(&self.input, self.stream_index, i)
            else {
                break;
            };
            let Ok(start) = u64::try_from(pos) else {
                continue;
            };
            if len > 0 && start.saturating_add(len) > size {
                first.get_or_insert(i as u64);
                beyond += 1;
            }
        }
        let first = first?;
        Some(CodecError::Damaged {
            url: self.url.clone(),
            frame: Some(first),
            detail: format!(
                "the file ends at byte {size}, but its index places {beyond} more frame{} \
                 beyond that",
                if beyond == 1 { "" } else { "s" }
            ),
        })
    }
}

/// A packet from [`Demuxer::next_media`]: video or audio, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DemuxedPacket {
    /// A packet of the video stream (as [`Demuxer::next_packet`] returns it).
    Video(EncodedPacket),
    /// A packet of the selected audio stream: one or more encoded audio frames as stored
    /// (for AAC in MPEG-TS each with its ADTS header), in the audio stream's time base, with
    /// `key` always true.
    Audio(EncodedPacket),
}

impl DemuxedPacket {
    /// The packet, whatever its kind.
    #[must_use]
    pub fn packet(&self) -> &EncodedPacket {
        match self {
            DemuxedPacket::Video(p) | DemuxedPacket::Audio(p) => p,
        }
    }

    /// The packet, whatever its kind, by value.
    #[must_use]
    pub fn into_packet(self) -> EncodedPacket {
        match self {
            DemuxedPacket::Video(p) | DemuxedPacket::Audio(p) => p,
        }
    }

    /// True for an audio packet.
    #[must_use]
    pub fn is_audio(&self) -> bool {
        matches!(self, DemuxedPacket::Audio(_))
    }
}

/// Reads the video stream's packets as stored, for passthrough without re-encoding, and
/// optionally those of one audio stream ([`OpenOptions::audio`]).
///
/// Packets come in decode order, as the container stores them: length-prefixed NAL units for
/// MP4/MKV (see [`Demuxer::packet_format`] and the avcC in [`Demuxer::extradata`]), Annex B for
/// `.h264` and `.ts`. Converting between the two is the transport crate's job.
///
/// [`Demuxer::next_packet`] (and the [`Iterator`]) return video only;
/// [`Demuxer::next_media`] returns video and the selected audio interleaved in container
/// order. Use one or the other on a demuxer: audio that `next_packet` skips is not returned
/// later.
pub struct Demuxer {
    src: Source,
    params: VideoParams,
    extradata: Bytes,
    frame_ticks: i64,
    last_dts: Option<i64>,
    synthesized: bool,
    failed: bool,
    /// A decoding time was stored for a video packet since the start (or the last rewind).
    dts_seen: bool,
    /// Packets read ahead while the first video packets had no decoding time (Matroska
    /// stores none for the packets before the reordering delay): video packets waiting for
    /// theirs, and the audio read between them, in container order.
    held: std::collections::VecDeque<Held>,
    /// Packets whose timestamps are settled, in container order.
    ready: std::collections::VecDeque<DemuxedPacket>,
    /// An error of reading, returned once the packets read before it are handed out.
    pending: Option<CodecError>,
}

/// A packet read ahead (see [`Demuxer::held`]).
#[derive(Debug)]
enum Held {
    /// A video packet without a decoding time yet.
    Video(EncodedPacket),
    Audio(EncodedPacket),
}

/// The most packets read ahead waiting for the first stored decoding time; past it the
/// missing ones are taken from the presentation times.
const MAX_HELD: usize = 16;

impl std::fmt::Debug for Demuxer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Demuxer")
            .field("url", &self.src.url)
            .field("params", &self.params)
            .field("extradata_len", &self.extradata.len())
            .field("audio", &self.src.audio())
            .finish_non_exhaustive()
    }
}

impl Demuxer {
    /// Opens `url` (a path or any URL FFmpeg reads) and selects its best video stream, and
    /// the audio stream that `options.audio` asks for.
    ///
    /// Errors: those of opening an input ([`CodecError::NotFound`], [`CodecError::Open`],
    /// [`CodecError::NoVideoStream`], ...), and [`CodecError::NoAudioStream`] when
    /// [`AudioSelection::Index`] names an audio stream the input does not have.
    pub fn open(url: impl AsRef<OsStr>, options: &OpenOptions) -> Result<Demuxer, CodecError> {
        let src = Source::open(url.as_ref(), options)?;
        // A decoder is opened (not fed) only to learn the size and pixel format.
        let (_decoder, params, extradata) = src.open_decoder(1)?;
        let fps = params.best_frame_rate();
        let frame_ticks = crate::rescale(1, fps.invert(), src.time_base).max(1);
        Ok(Demuxer {
            src,
            params,
            extradata,
            frame_ticks,
            last_dts: None,
            synthesized: false,
            dts_seen: false,
            held: std::collections::VecDeque::new(),
            ready: std::collections::VecDeque::new(),
            pending: None,
            failed: false,
        })
    }

    /// The input URL (credentials removed).
    pub fn url(&self) -> &str {
        &self.src.url
    }

    /// The stream's parameters (from the header; the frame count may be an estimate).
    pub fn params(&self) -> &VideoParams {
        &self.params
    }

    /// Time base of the packets' timestamps.
    pub fn time_base(&self) -> Rational {
        self.src.time_base
    }

    /// The stream's codec extradata as stored: an avcC record for MP4/MKV, Annex B parameter
    /// sets or nothing for `.h264`/`.ts`.
    pub fn extradata(&self) -> &Bytes {
        &self.extradata
    }

    /// Framing of the packets' NAL units.
    pub fn packet_format(&self) -> PacketFormat {
        PacketFormat::from_extradata(&self.extradata)
    }

    /// True once a packet without stored timestamps was returned (raw `.h264`): its dts was
    /// made up as previous dts + one nominal frame duration, and its pts equals its dts.
    pub fn timestamps_synthesized(&self) -> bool {
        self.synthesized
    }

    /// The selected audio stream ([`OpenOptions::audio`]); `None` when no audio was asked
    /// for, or [`AudioSelection::First`] found none.
    pub fn audio(&self) -> Option<&AudioParams> {
        self.src.audio()
    }

    /// Every audio stream of the input in container order, selected or not (for choosing
    /// one, or for messages such as "the input has 2 audio streams").
    pub fn audio_streams(&self) -> Vec<AudioParams> {
        self.src.audio_streams().to_vec()
    }

    /// The next packet of the video stream in decode order; `None` at the end. Packets of
    /// other streams, the selected audio included, are skipped.
    ///
    /// A missing dts is taken from the pts (MPEG-TS stores only a PTS when both are equal).
    pub fn next_packet(&mut self) -> Result<Option<EncodedPacket>, CodecError> {
        loop {
            match self.next_media()? {
                Some(DemuxedPacket::Video(p)) => return Ok(Some(p)),
                Some(DemuxedPacket::Audio(_)) => continue,
                None => return Ok(None),
            }
        }
    }

    /// The next packet of the video stream or of the selected audio stream, in the order the
    /// container stores them; `None` at the end. Without selected audio this returns the
    /// same video packets as [`Demuxer::next_packet`].
    ///
    /// Video packets are as [`Demuxer::next_packet`] returns them. Audio packets carry their
    /// stored pts (else the dts, else the previous packet's pts + duration) and dts (else
    /// the pts), their stored duration (else one frame of [`AudioParams::frame_size`]
    /// samples, else 0), `key` true, and the audio stream's time base.
    ///
    /// A local file that is cut short or damaged ends with [`CodecError::Damaged`] after
    /// the last complete packet: the damaged packet itself is not returned.
    pub fn next_media(&mut self) -> Result<Option<DemuxedPacket>, CodecError> {
        loop {
            if let Some(p) = self.ready.pop_front() {
                return Ok(Some(p));
            }
            if let Some(e) = self.pending.take() {
                self.failed = true;
                return Err(e);
            }
            let read = match self.src.read_media() {
                Ok(r) => r,
                Err(e) => {
                    // What was read before the error (held for its timestamps) goes first.
                    self.settle_held(None);
                    self.pending = Some(e);
                    continue;
                }
            };
            match read {
                Some(SourcePacket::Video(p)) => {
                    if !self.dts_seen && p.dts().is_none() && p.pts().is_some() {
                        // No decoding time yet: wait for the first stored one.
                        let packet = self.video_packet(&p);
                        self.held.push_back(Held::Video(packet));
                        if self.held.len() >= MAX_HELD {
                            self.settle_held(None);
                        }
                        continue;
                    }
                    self.dts_seen |= p.dts().is_some();
                    let packet = self.video_packet(&p);
                    if self.held.is_empty() {
                        return Ok(Some(DemuxedPacket::Video(packet)));
                    }
                    self.settle_held(Some(packet.dts));
                    self.ready.push_back(DemuxedPacket::Video(packet));
                }
                Some(SourcePacket::Audio(p)) if !self.held.is_empty() => {
                    self.held.push_back(Held::Audio(p));
                }
                Some(SourcePacket::Audio(p)) => return Ok(Some(DemuxedPacket::Audio(p))),
                None => {
                    if self.held.is_empty() {
                        return Ok(None);
                    }
                    self.settle_held(None);
                }
            }
        }
    }

    /// Gives the held video packets their decoding times and moves everything held to the
    /// ready queue. With `next_dts`, the decoding time of the first video packet that had
    /// one, the held packets precede it one frame apart: how a reordering delay of that many
    /// frames starts (ISO/IEC 14496-12 §8.6.1.2: decoding times increase, and each is at
    /// most the packet's presentation time). Without it they keep their presentation times.
    fn settle_held(&mut self, next_dts: Option<i64>) {
        let videos = self
            .held
            .iter()
            .filter(|h| matches!(h, Held::Video(_)))
            .count() as i64;
        let mut k = 0i64;
        while let Some(h) = self.held.pop_front() {
            match h {
                Held::Video(mut p) => {
                    if let Some(d) = next_dts {
                        let dts = d.saturating_sub((videos - k).saturating_mul(self.frame_ticks));
                        p.dts = dts.min(p.pts);
                    }
                    k += 1;
                    self.ready.push_back(DemuxedPacket::Video(p));
                }
                Held::Audio(p) => self.ready.push_back(DemuxedPacket::Audio(p)),
            }
        }
        self.dts_seen = true;
    }

    /// A video packet with its timestamps filled in (a missing dts taken from the pts; see
    /// [`Demuxer::settle_held`] for the packets before the first stored dts).
    fn video_packet(&mut self, packet: &ff::Packet) -> EncodedPacket {
        let (pts, dts) = match (packet.pts(), packet.dts()) {
            (Some(p), Some(d)) => (p, d),
            (Some(p), None) => (p, p),
            (None, Some(d)) => {
                self.synthesized = true;
                (d, d)
            }
            (None, None) => {
                self.synthesized = true;
                let d = self.last_dts.map_or(0, |l| l + self.frame_ticks);
                (d, d)
            }
        };
        self.last_dts = Some(dts);
        let duration = match packet.duration() {
            d if d > 0 => d,
            _ => self.frame_ticks,
        };
        EncodedPacket {
            data: Bytes::copy_from_slice(packet.data().unwrap_or(&[])),
            pts,
            dts,
            key: packet.is_key(),
            duration,
            time_base: self.src.time_base,
        }
    }

    /// Goes back to the first packet, video and audio (for loop playback).
    pub fn rewind(&mut self) -> Result<(), CodecError> {
        self.src.rewind()?;
        self.last_dts = None;
        self.failed = false;
        self.dts_seen = false;
        self.held.clear();
        self.ready.clear();
        self.pending = None;
        Ok(())
    }
}

/// Iterates over the remaining video packets ([`Demuxer::next_packet`]); ends after the
/// first error.
impl Iterator for Demuxer {
    type Item = Result<EncodedPacket, CodecError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        self.next_packet().transpose()
    }
}
