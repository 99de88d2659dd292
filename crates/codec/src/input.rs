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

use crate::error::FfmpegError;
use crate::rational::FfRational;
use crate::{CodecError, EncodedPacket, FrameCountSource, Rational, VideoParams};

/// FFmpeg's "no timestamp" value.
const NOPTS: i64 = i64::MIN;

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
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            timeout: Some(Duration::from_secs(10)),
            format_options: Vec::new(),
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

/// An opened input with its chosen video stream.
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
        Ok(Source {
            url,
            raw_url: raw_url.to_owned(),
            options: options.clone(),
            input,
            stream_index,
            time_base,
            start_time,
        })
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
        self.reopen()
    }

    /// Seeks so that the next packet read is at or before the key frame whose decode
    /// timestamp is `ts` (ticks of the stream time base).
    pub(crate) fn seek_before(&mut self, ts: i64) -> Result<(), CodecError> {
        let us = (i128::from(ts) * i128::from(self.time_base.num) * 1_000_000)
            .div_euclid(i128::from(self.time_base.den).max(1));
        let us = i64::try_from(us).unwrap_or(0);
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
        let ok = input
            .stream(self.stream_index)
            .is_some_and(|s| s.parameters().medium() == media::Type::Video);
        if !ok {
            return Err(CodecError::InvalidStream {
                url: self.url.clone(),
                reason: "it changed when the input was reopened",
            });
        }
        self.input = input;
        Ok(())
    }

    /// Reads the next packet of the video stream; `None` at the end.
    pub(crate) fn read_packet(&mut self) -> Result<Option<ff::Packet>, CodecError> {
        let mut invalid = 0u32;
        loop {
            let mut packet = ff::Packet::empty();
            match packet.read(&mut self.input) {
                Ok(()) if packet.stream() == self.stream_index => return Ok(Some(packet)),
                Ok(()) => {}
                Err(ff::Error::Eof) => return Ok(None),
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

/// Reads the video stream's packets as stored, for passthrough without re-encoding.
///
/// Packets come in decode order, as the container stores them: length-prefixed NAL units for
/// MP4/MKV (see [`Demuxer::packet_format`] and the avcC in [`Demuxer::extradata`]), Annex B for
/// `.h264` and `.ts`. Converting between the two is the transport crate's job.
pub struct Demuxer {
    src: Source,
    params: VideoParams,
    extradata: Bytes,
    frame_ticks: i64,
    last_dts: Option<i64>,
    synthesized: bool,
    failed: bool,
}

impl std::fmt::Debug for Demuxer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Demuxer")
            .field("url", &self.src.url)
            .field("params", &self.params)
            .field("extradata_len", &self.extradata.len())
            .finish_non_exhaustive()
    }
}

impl Demuxer {
    /// Opens `url` (a path or any URL FFmpeg reads) and selects its best video stream.
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

    /// The next packet of the video stream in decode order; `None` at the end.
    ///
    /// A missing dts is taken from the pts (MPEG-TS stores only a PTS when both are equal).
    pub fn next_packet(&mut self) -> Result<Option<EncodedPacket>, CodecError> {
        let packet = match self.src.read_packet() {
            Ok(Some(p)) => p,
            Ok(None) => return Ok(None),
            Err(e) => {
                self.failed = true;
                return Err(e);
            }
        };
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
        Ok(Some(EncodedPacket {
            data: Bytes::copy_from_slice(packet.data().unwrap_or(&[])),
            pts,
            dts,
            key: packet.is_key(),
            duration,
            time_base: self.src.time_base,
        }))
    }

    /// Goes back to the first packet (for loop playback).
    pub fn rewind(&mut self) -> Result<(), CodecError> {
        self.src.rewind()?;
        self.last_dts = None;
        self.failed = false;
        Ok(())
    }
}

/// Iterates over the remaining packets; ends after the first error.
impl Iterator for Demuxer {
    type Item = Result<EncodedPacket, CodecError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        self.next_packet().transpose()
    }
}
