//! [`Encoder`]: H.264 with libx264, from decoder frames or the user's own RGB24 buffers.

use std::fmt;

use bytes::Bytes;
use ff::codec::threading;
use ff::format::Pixel;
use ffmpeg_next as ff;
use serde::{Deserialize, Serialize};

use crate::convert::{check_size, unpack, Scaler};
use crate::error::FfmpegError;
use crate::rational::{rescale, FfRational};
use crate::x264::X264Option;
use crate::{CodecError, Frame, PixelLayout, Rational, VideoParams};

const X264: &str = "libx264";

/// One encoded access unit (or one demuxed video or audio packet, see [`crate::Demuxer`]).
#[derive(Clone, PartialEq, Eq)]
pub struct EncodedPacket {
    /// The access unit's NAL units: Annex B from the [`Encoder`] (SPS/PPS repeated before
    /// every IDR); as stored by the container from a [`crate::Demuxer`]. For an audio packet,
    /// the encoded audio frame(s) as stored (AAC in MPEG-TS with its ADTS header).
    pub data: Bytes,
    /// Presentation timestamp in ticks of `time_base`.
    pub pts: i64,
    /// Decode timestamp in ticks of `time_base`; `pts >= dts`. With B-frames libx264 starts
    /// the dts below the first pts (possibly negative); it is kept as given.
    pub dts: i64,
    /// The access unit is a key frame (an IDR picture from the encoder). Always true for
    /// audio packets.
    pub key: bool,
    /// Duration in ticks of `time_base` (one nominal frame when not stored; for audio, one
    /// frame of [`crate::AudioParams::frame_size`] samples, or 0 when that is unknown).
    pub duration: i64,
    /// Seconds per tick.
    pub time_base: Rational,
}

impl EncodedPacket {
    /// `pts` in seconds.
    #[must_use]
    pub fn pts_seconds(&self) -> f64 {
        self.pts as f64 * self.time_base.as_f64()
    }

    /// `dts` in seconds.
    #[must_use]
    pub fn dts_seconds(&self) -> f64 {
        self.dts as f64 * self.time_base.as_f64()
    }
}

impl fmt::Debug for EncodedPacket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncodedPacket")
            .field("pts", &self.pts)
            .field("dts", &self.dts)
            .field("key", &self.key)
            .field("duration", &self.duration)
            .field("time_base", &self.time_base)
            .field("data_len", &self.data.len())
            .finish()
    }
}

/// Configuration of an [`Encoder`]: a plain serializable struct, so it can cross threads and
/// processes. Bit rates are in bits per second.
///
/// Made by [`EncoderConfig::new`] or [`EncoderConfig::from_params`] and adjusted with the
/// `with_*` setters (the fields can also be read and changed directly).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct EncoderConfig {
    /// Encoded width (even).
    pub width: u32,
    /// Encoded height (even).
    pub height: u32,
    /// Width of the frames given to the encoder; scaled to `width` when different.
    pub source_width: u32,
    /// Height of the frames given to the encoder.
    pub source_height: u32,
    /// Nominal frame rate: told to libx264 (rate control) and used to timestamp frames that
    /// come without a timestamp (frame n at n / frame_rate).
    pub frame_rate: Rational,
    /// Time base of the encoder's timestamps (input frames are rescaled into it; packets come
    /// out in it).
    pub time_base: Rational,
    /// Target bit rate in bits/s; 0 = constant quality (`crf`, libx264's default 23).
    pub bit_rate: u64,
    /// Constant rate factor, used when `bit_rate` is 0.
    pub crf: Option<f32>,
    /// Maximum distance between key frames (IDR), in frames; at least 1.
    pub gop_size: u32,
    /// Maximum consecutive B-frames (0 = none; at most 16).
    pub max_b_frames: u32,
    /// libx264 preset (`ultrafast` ... `placebo`, see [`crate::X264_PRESETS`]).
    pub preset: String,
    /// libx264 tune (`zerolatency`, `film`, `fastdecode,zerolatency`, ..., see
    /// [`crate::X264_TUNES`]), if any.
    pub tune: Option<String>,
    /// H.264 profile (`baseline`, `main`, `high`: the encoder makes 8-bit 4:2:0 video), if
    /// any.
    pub profile: Option<String>,
    /// Encoder threads; 0 = libx264's automatic choice.
    pub threads: usize,
    /// Extra `x264-params` as (key, value) pairs, after the built-in `repeat-headers=1`.
    pub x264_params: Vec<(String, String)>,
}

impl EncoderConfig {
    /// A configuration for `width x height` frames at `frame_rate`: time base 1/90000,
    /// constant quality, GOP of 2 s, no B-frames, preset `veryfast`, automatic threads.
    #[must_use]
    pub fn new(width: u32, height: u32, frame_rate: Rational) -> EncoderConfig {
        EncoderConfig {
            width,
            height,
            source_width: width,
            source_height: height,
            frame_rate,
            time_base: Rational::new(1, 90_000),
            bit_rate: 0,
            crf: None,
            gop_size: default_gop(frame_rate),
            max_b_frames: 0,
            preset: "veryfast".into(),
            tune: None,
            profile: None,
            threads: 0,
            x264_params: Vec::new(),
        }
    }

    /// Inherits everything a decoder knows (the original's `configDict`): size, frame rate,
    /// time base (so decoded frames keep their exact timestamps), bit rate, GOP size and
    /// max B-frames. Unknown values fall back to [`EncoderConfig::new`]'s defaults.
    #[must_use]
    pub fn from_params(params: &VideoParams) -> EncoderConfig {
        let frame_rate = params.best_frame_rate();
        let mut c = EncoderConfig::new(params.width, params.height, frame_rate);
        if params.time_base.is_valid() {
            c.time_base = params.time_base;
        }
        c.bit_rate = params.bit_rate.unwrap_or(0);
        if let Some(g) = params.gop_size.filter(|g| *g > 0) {
            c.gop_size = g;
        }
        c.max_b_frames = params.max_b_frames.unwrap_or(0).min(16);
        c
    }

    /// Sets the encoded size (frames of the source size are scaled to it).
    #[must_use]
    pub fn with_size(mut self, width: u32, height: u32) -> Self {
        self.width = width;
        self.height = height;
        self
    }

    /// Sets the size of the frames that will be given to the encoder.
    #[must_use]
    pub fn with_source_size(mut self, width: u32, height: u32) -> Self {
        self.source_width = width;
        self.source_height = height;
        self
    }

    /// Sets the nominal frame rate.
    #[must_use]
    pub fn with_frame_rate(mut self, frame_rate: Rational) -> Self {
        self.frame_rate = frame_rate;
        self
    }

    /// Sets the time base of the encoder's timestamps.
    #[must_use]
    pub fn with_time_base(mut self, time_base: Rational) -> Self {
        self.time_base = time_base;
        self
    }

    /// Sets the target bit rate in bits/s (0 = constant quality).
    #[must_use]
    pub fn with_bit_rate(mut self, bits_per_second: u64) -> Self {
        self.bit_rate = bits_per_second;
        self
    }

    /// Sets the constant rate factor used when the bit rate is 0 (0–51, lower is better).
    #[must_use]
    pub fn with_crf(mut self, crf: impl Into<Option<f32>>) -> Self {
        self.crf = crf.into();
        self
    }

    /// Sets the GOP size (frames between IDRs).
    #[must_use]
    pub fn with_gop_size(mut self, frames: u32) -> Self {
        self.gop_size = frames;
        self
    }

    /// Sets the maximum number of consecutive B-frames.
    #[must_use]
    pub fn with_max_b_frames(mut self, frames: u32) -> Self {
        self.max_b_frames = frames;
        self
    }

    /// Sets the libx264 preset.
    #[must_use]
    pub fn with_preset(mut self, preset: impl Into<String>) -> Self {
        self.preset = preset.into();
        self
    }

    /// Sets the libx264 tune.
    #[must_use]
    pub fn with_tune(mut self, tune: impl Into<String>) -> Self {
        self.tune = Some(tune.into());
        self
    }

    /// Sets the H.264 profile.
    #[must_use]
    pub fn with_profile(mut self, profile: impl Into<String>) -> Self {
        self.profile = Some(profile.into());
        self
    }

    /// Sets the number of encoder threads (0 = automatic).
    #[must_use]
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads;
        self
    }

    /// Replaces the extra `x264-params` with `params` (key, value pairs).
    #[must_use]
    pub fn with_x264_params(mut self, params: Vec<(String, String)>) -> Self {
        self.x264_params = params;
        self
    }

    /// Adds one extra `x264-params` entry, e.g. `("keyint_min", "30")`.
    #[must_use]
    pub fn with_x264_param(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.x264_params.push((key.into(), value.into()));
        self
    }

    /// Checks the configuration without opening libx264.
    pub fn validate(&self) -> Result<(), CodecError> {
        let invalid =
            |field: &'static str, reason: String| CodecError::InvalidConfig { field, reason };
        check_size(self.width, self.height).map_err(|_| {
            invalid(
                "width/height",
                format!("{}x{} is not a valid size", self.width, self.height),
            )
        })?;
        if !self.width.is_multiple_of(2) || !self.height.is_multiple_of(2) {
            return Err(invalid(
                "width/height",
                format!(
                    "{}x{}: yuv420p needs even dimensions",
                    self.width, self.height
                ),
            ));
        }
        check_size(self.source_width, self.source_height).map_err(|_| {
            invalid(
                "source_width/source_height",
                format!(
                    "{}x{} is not a valid size",
                    self.source_width, self.source_height
                ),
            )
        })?;
        if !self.frame_rate.is_valid() {
            return Err(invalid(
                "frame_rate",
                format!("{} is not a valid rate", self.frame_rate),
            ));
        }
        if !self.time_base.is_valid() {
            return Err(invalid(
                "time_base",
                format!("{} is not a valid time base", self.time_base),
            ));
        }
        if self.bit_rate > i64::MAX as u64 {
            return Err(invalid(
                "bit_rate",
                format!("{} b/s is too large", self.bit_rate),
            ));
        }
        if let Some(crf) = self.crf {
            if !(0.0..=51.0).contains(&crf) {
                return Err(invalid("crf", format!("{crf} is outside 0..=51")));
            }
        }
        if self.gop_size == 0 || self.gop_size > i32::MAX as u32 {
            return Err(invalid(
                "gop_size",
                format!("{} must be at least 1", self.gop_size),
            ));
        }
        if self.max_b_frames > 16 {
            return Err(invalid(
                "max_b_frames",
                format!("{} is more than 16", self.max_b_frames),
            ));
        }
        // Checked here rather than by libx264, which reports a wrong name only on stderr.
        for (option, value) in [
            (X264Option::Preset, Some(&self.preset)),
            (X264Option::Tune, self.tune.as_ref()),
            (X264Option::Profile, self.profile.as_ref()),
        ] {
            if let Some(v) = value {
                option
                    .check(v)
                    .map_err(|reason| invalid(option.name(), format!("{v:?}: {reason}")))?;
            }
        }
        for (k, v) in &self.x264_params {
            let bad = |s: &str| s.is_empty() || s.contains(['\0', ':', '=']);
            if bad(k) || v.contains(['\0', ':', '=']) {
                return Err(invalid("x264_params", format!("{k:?}={v:?}")));
            }
        }
        Ok(())
    }
}

fn default_gop(frame_rate: Rational) -> u32 {
    let fps = frame_rate.as_f64();
    if fps > 0.0 {
        ((2.0 * fps).round() as u32).max(1)
    } else {
        50
    }
}

fn encode_err(e: ff::Error) -> CodecError {
    CodecError::Encode {
        source: FfmpegError::new(e),
    }
}

fn is_eagain(e: &ff::Error) -> bool {
    matches!(e, ff::Error::Other { errno } if *errno == ff::util::error::EAGAIN)
}

/// H.264 encoder (libx264), the original mpegCoder's `MpegEncoder` without the muxer.
///
/// Takes YUV420P [`Frame`]s from a [`crate::Decoder`], or packed RGB24/YUV420P buffers from
/// the user's own program (RGB24 is converted with swscale; frames of a different source size
/// are scaled). Produces [`EncodedPacket`]s in decode order with Annex B data. The SPS/PPS are
/// available before the first frame ([`Encoder::extradata`]) and repeated in-band before
/// every IDR, so a receiver joining late can decode.
pub struct Encoder {
    config: EncoderConfig,
    encoder: ff::encoder::video::Encoder,
    scaler: Scaler,
    extradata: Bytes,
    frame_ticks: i64,
    frames_in: u64,
    last_pts: Option<i64>,
    finished: bool,
    /// The next frame becomes an IDR picture.
    force_key: bool,
}

impl fmt::Debug for Encoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Encoder")
            .field("config", &self.config)
            .field("frames_in", &self.frames_in)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl Encoder {
    /// Opens libx264 with `config`.
    ///
    /// Errors: [`CodecError::InvalidConfig`] (also for a preset, tune or profile libx264 does
    /// not accept, see [`X264Option::check`]), [`CodecError::EncoderNotFound`],
    /// [`CodecError::EncoderOpen`].
    pub fn new(config: EncoderConfig) -> Result<Encoder, CodecError> {
        crate::input::init();
        config.validate()?;
        let open_err = |e: ff::Error| CodecError::EncoderOpen {
            name: X264,
            source: FfmpegError::new(e),
        };
        let codec =
            ff::encoder::find_by_name(X264).ok_or(CodecError::EncoderNotFound { name: X264 })?;
        let mut ctx = ff::codec::Context::new_with_codec(codec);
        // SPS/PPS go to the extradata (read below); `repeat-headers=1` keeps them in-band too.
        // `set_flags` replaces all flags, including libx264's default `+cgop`: without
        // CLOSED_GOP libx264 switches to open GOPs (non-IDR I-frames with a recovery-point
        // SEI, not decodable on their own), so it is set again explicitly.
        ctx.set_flags(ff::codec::Flags::GLOBAL_HEADER | ff::codec::Flags::CLOSED_GOP);
        // Thread type left unset: libx264 picks frame or sliced threads itself (zerolatency
        // wants sliced threads, which add no delay).
        ctx.set_threading(threading::Config {
            kind: threading::Type::None,
            count: config.threads,
            ..Default::default()
        });
        let mut enc = ctx.encoder().video().map_err(open_err)?;
        enc.set_width(config.width);
        enc.set_height(config.height);
        enc.set_format(Pixel::YUV420P);
        enc.set_time_base(config.time_base.to_ff());
        enc.set_frame_rate(Some(config.frame_rate.to_ff()));
        enc.set_gop(config.gop_size);
        enc.set_max_b_frames(config.max_b_frames as usize);
        if config.bit_rate > 0 {
            enc.set_bit_rate(config.bit_rate as usize);
        }
        let mut dict = ff::Dictionary::new();
        dict.set("preset", &config.preset);
        if let Some(t) = &config.tune {
            dict.set("tune", t);
        }
        if let Some(p) = &config.profile {
            dict.set("profile", p);
        }
        if config.bit_rate == 0 {
            if let Some(crf) = config.crf {
                dict.set("crf", &crf.to_string());
            }
        }
        let mut x264 = String::from("repeat-headers=1");
        for (k, v) in &config.x264_params {
            x264.push(':');
            x264.push_str(k);
            x264.push('=');
            x264.push_str(v);
        }
        dict.set("x264-params", &x264);
        // A picture forced to type I (`force_key_frame`) becomes an IDR, not a plain I-frame.
        dict.set("forced-idr", "1");
        let encoder = enc.open_as_with(codec, dict).map_err(open_err)?;
        let extradata = crate::ffi::extradata(AsRef::<ff::codec::Context>::as_ref(&encoder));
        let frame_ticks = rescale(1, config.frame_rate.invert(), config.time_base).max(1);
        Ok(Encoder {
            config,
            encoder,
            scaler: Scaler::default(),
            extradata,
            frame_ticks,
            frames_in: 0,
            last_pts: None,
            finished: false,
            force_key: false,
        })
    }

    /// The configuration the encoder was opened with.
    pub fn config(&self) -> &EncoderConfig {
        &self.config
    }

    /// Time base of the packets' timestamps.
    pub fn time_base(&self) -> Rational {
        self.config.time_base
    }

    /// SPS and PPS in Annex B form (start codes), available before the first frame.
    pub fn extradata(&self) -> &Bytes {
        &self.extradata
    }

    /// Frames given to the encoder so far.
    pub fn frames_in(&self) -> u64 {
        self.frames_in
    }

    /// Makes the next frame given to the encoder an IDR picture (a receiver that joined or
    /// reconnected can start decoding there), whatever the GOP size says.
    pub fn force_key_frame(&mut self) {
        self.force_key = true;
    }

    /// Encodes a frame from a decoder (YUV420P, or RGB24) at its own timestamp, rescaled into
    /// the encoder time base. Returns the packets that became ready (libx264 delays output by
    /// its lookahead; [`Encoder::finish`] flushes the rest).
    pub fn encode(&mut self, frame: &Frame) -> Result<Vec<EncodedPacket>, CodecError> {
        let pts = frame
            .time_base
            .is_valid()
            .then(|| rescale(frame.pts, frame.time_base, self.config.time_base));
        self.encode_packed(frame.layout, frame.width, frame.height, &frame.data, pts)
    }

    /// Encodes a packed RGB24 buffer of the source size (`source_width * source_height * 3`
    /// bytes), timestamped n / frame_rate.
    pub fn encode_rgb24(&mut self, data: &[u8]) -> Result<Vec<EncodedPacket>, CodecError> {
        self.encode_buffer(PixelLayout::Rgb24, data, None)
    }

    /// Encodes a packed YUV420P buffer of the source size, timestamped n / frame_rate.
    pub fn encode_yuv420p(&mut self, data: &[u8]) -> Result<Vec<EncodedPacket>, CodecError> {
        self.encode_buffer(PixelLayout::Yuv420p, data, None)
    }

    /// Encodes a packed buffer of the source size in `layout`, at `pts` (encoder time base) or,
    /// with `None`, at n / frame_rate where n counts the frames given so far.
    pub fn encode_buffer(
        &mut self,
        layout: PixelLayout,
        data: &[u8],
        pts: Option<i64>,
    ) -> Result<Vec<EncodedPacket>, CodecError> {
        let (w, h) = (self.config.source_width, self.config.source_height);
        self.encode_packed(layout, w, h, data, pts)
    }

    fn encode_packed(
        &mut self,
        layout: PixelLayout,
        width: u32,
        height: u32,
        data: &[u8],
        pts: Option<i64>,
    ) -> Result<Vec<EncodedPacket>, CodecError> {
        if self.finished {
            return Err(CodecError::Finished);
        }
        let (sw, sh) = (self.config.source_width, self.config.source_height);
        if (width, height) != (sw, sh) {
            return Err(CodecError::FrameSizeMismatch {
                expected_width: sw,
                expected_height: sh,
                actual_width: width,
                actual_height: height,
            });
        }
        let src = unpack(layout, width, height, data)?;
        let (w, h) = (self.config.width, self.config.height);
        let mut yuv = if layout == PixelLayout::Yuv420p && (width, height) == (w, h) {
            src
        } else {
            self.scaler.run(&src, Pixel::YUV420P, w, h)?
        };
        let pts = pts.unwrap_or_else(|| {
            rescale(
                i64::try_from(self.frames_in).unwrap_or(i64::MAX),
                self.config.frame_rate.invert(),
                self.config.time_base,
            )
        });
        if let Some(previous) = self.last_pts {
            if pts <= previous {
                return Err(CodecError::NonMonotonicPts {
                    pts,
                    previous,
                    time_base: self.config.time_base,
                });
            }
        }
        yuv.set_pts(Some(pts));
        yuv.set_kind(if std::mem::take(&mut self.force_key) {
            ff::picture::Type::I
        } else {
            ff::picture::Type::None
        });
        self.encoder.send_frame(&yuv).map_err(encode_err)?;
        self.last_pts = Some(pts);
        self.frames_in += 1;
        self.drain()
    }

    /// Flushes every delayed frame and returns the last packets. Afterwards the encoder
    /// accepts no more frames; calling `finish` again returns nothing.
    pub fn finish(&mut self) -> Result<Vec<EncodedPacket>, CodecError> {
        if self.finished {
            return Ok(Vec::new());
        }
        self.finished = true;
        self.encoder.send_eof().map_err(encode_err)?;
        self.drain()
    }

    fn drain(&mut self) -> Result<Vec<EncodedPacket>, CodecError> {
        let mut out = Vec::new();
        loop {
            let mut p = ff::Packet::empty();
            match self.encoder.receive_packet(&mut p) {
                Ok(()) => {
                    let pts = p.pts().or(p.dts()).unwrap_or(0);
                    let dts = p.dts().unwrap_or(pts);
                    out.push(EncodedPacket {
                        data: Bytes::copy_from_slice(p.data().unwrap_or(&[])),
                        pts,
                        dts,
                        key: p.is_key(),
                        duration: if p.duration() > 0 {
                            p.duration()
                        } else {
                            self.frame_ticks
                        },
                        time_base: self.config.time_base,
                    });
                }
                Err(e) if is_eagain(&e) => break,
                Err(ff::Error::Eof) => break,
                Err(e) => return Err(encode_err(e)),
            }
        }
        Ok(out)
    }
}
