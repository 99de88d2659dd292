//! [`PacketDecoder`]: H.264 access units in, frames out (the pull side).

use bytes::{BufMut, BytesMut};
use ff::codec::threading;
use ff::util::frame;
use ffmpeg_next as ff;

use crate::convert::{destination_size, Converter};
use crate::error::FfmpegError;
use crate::rational::FfRational;
use crate::{CodecError, Frame, PixelLayout, Rational};

const SOURCE: &str = "packets";

/// Options of a [`PacketDecoder`]: start from [`PacketDecoderOptions::default`] and change
/// what you need with the `with_*` setters.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PacketDecoderOptions {
    /// Pixel layout of the frames handed out.
    pub output: PixelLayout,
    /// Output width (see [`crate::DecoderOptions::width_dst`]); needs the stream's size, so it
    /// takes effect with `height_dst` or on the first frame.
    pub width_dst: Option<u32>,
    /// Output height.
    pub height_dst: Option<u32>,
    /// Decoder threads. Frame threading delays output by one frame per thread, so the default
    /// is 1 (lowest latency); 0 = automatic.
    pub threads: usize,
}

impl Default for PacketDecoderOptions {
    fn default() -> Self {
        PacketDecoderOptions {
            output: PixelLayout::Rgb24,
            width_dst: None,
            height_dst: None,
            threads: 1,
        }
    }
}

impl PacketDecoderOptions {
    /// Sets the pixel layout of the frames handed out.
    #[must_use]
    pub fn with_output(mut self, output: PixelLayout) -> Self {
        self.output = output;
        self
    }

    /// Sets the output width (`None`: the source's; the height follows the aspect ratio).
    #[must_use]
    pub fn with_width_dst(mut self, width: impl Into<Option<u32>>) -> Self {
        self.width_dst = width.into();
        self
    }

    /// Sets the output height (`None`: the source's; the width follows the aspect ratio).
    #[must_use]
    pub fn with_height_dst(mut self, height: impl Into<Option<u32>>) -> Self {
        self.height_dst = height.into();
        self
    }

    /// Sets the number of decoder threads (1 = lowest latency, 0 = automatic).
    #[must_use]
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads;
        self
    }
}

/// Decodes H.264 access units received from a network (RTSP/RTMP pull) into frames.
///
/// Created with the stream's parameter sets in Annex B form (SPS and PPS with start codes, e.g.
/// from the SDP or an avcC converted by the transport crate), or with none when they arrive
/// in-band. Fed Annex B access units with their pts; call [`PacketDecoder::flush`] at the end.
/// A damaged access unit is reported and skipped: the decoder stays usable.
pub struct PacketDecoder {
    decoder: ff::decoder::Video,
    converter: Option<Converter>,
    options: PacketDecoderOptions,
    parameter_sets: Vec<u8>,
    time_base: Rational,
    frames_out: u64,
    last_pts: Option<i64>,
}

impl std::fmt::Debug for PacketDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacketDecoder")
            .field("options", &self.options)
            .field("time_base", &self.time_base)
            .field("frames_out", &self.frames_out)
            .finish_non_exhaustive()
    }
}

fn decode_err(e: ff::Error) -> CodecError {
    CodecError::Decode {
        url: SOURCE.into(),
        source: FfmpegError::new(e),
    }
}

fn is_eagain(e: &ff::Error) -> bool {
    matches!(e, ff::Error::Other { errno } if *errno == ff::util::error::EAGAIN)
}

impl PacketDecoder {
    /// An H.264 decoder. `parameter_sets`: Annex B SPS + PPS, or empty (an avcC record is
    /// refused: the packets fed are Annex B); `time_base`: the unit of the pts given to
    /// [`PacketDecoder::decode`] (e.g. 1/90000 for RTP).
    pub fn new(
        parameter_sets: &[u8],
        time_base: Rational,
        options: PacketDecoderOptions,
    ) -> Result<PacketDecoder, CodecError> {
        crate::input::init();
        if !time_base.is_valid() {
            return Err(CodecError::InvalidArgument {
                what: "time base",
                reason: format!("{time_base} is not valid"),
            });
        }
        if parameter_sets.first() == Some(&1) {
            return Err(CodecError::InvalidArgument {
                what: "parameter sets",
                reason: "got an avcC record; give SPS and PPS in Annex B form (the transport \
                         crate converts avcC)"
                    .into(),
            });
        }
        if let (Some(w), Some(h)) = (options.width_dst, options.height_dst) {
            crate::convert::check_size(w, h)?;
        }
        let codec =
            ff::decoder::find(ff::codec::Id::H264).ok_or_else(|| CodecError::UnsupportedCodec {
                url: SOURCE.into(),
                codec: "h264".into(),
            })?;
        let mut ctx = ff::codec::Context::new_with_codec(codec);
        ctx.set_threading(threading::Config {
            kind: threading::Type::Frame,
            count: options.threads,
            ..Default::default()
        });
        let mut dec = ctx.decoder();
        dec.set_packet_time_base(time_base.to_ff());
        let decoder =
            dec.open_as(codec)
                .and_then(|o| o.video())
                .map_err(|e| CodecError::DecoderOpen {
                    url: SOURCE.into(),
                    codec: "h264".into(),
                    source: FfmpegError::new(e),
                })?;
        Ok(PacketDecoder {
            decoder,
            converter: None,
            options,
            parameter_sets: parameter_sets.to_vec(),
            time_base,
            frames_out: 0,
            last_pts: None,
        })
    }

    /// Time base of the frames' pts (the one given to [`PacketDecoder::new`]).
    pub fn time_base(&self) -> Rational {
        self.time_base
    }

    /// Frames produced so far.
    pub fn frames_out(&self) -> u64 {
        self.frames_out
    }

    /// Decodes one Annex B access unit presented at `pts`. Returns the frames that became
    /// ready (in presentation order; B-frames and threads delay them). An empty access unit is
    /// ignored.
    pub fn decode(&mut self, access_unit: &[u8], pts: i64) -> Result<Vec<Frame>, CodecError> {
        if access_unit.is_empty() {
            return Ok(Vec::new());
        }
        // Until the first frame comes out, the configured parameter sets travel in-band in
        // front of each access unit (the H.264 decoder reads Annex B SPS/PPS anywhere).
        let packet = if self.frames_out == 0 && !self.parameter_sets.is_empty() {
            let mut buf = BytesMut::with_capacity(self.parameter_sets.len() + access_unit.len());
            buf.put_slice(&self.parameter_sets);
            buf.put_slice(access_unit);
            ff::Packet::copy(&buf)
        } else {
            ff::Packet::copy(access_unit)
        };
        let mut packet = packet;
        packet.set_pts(Some(pts));
        packet.set_dts(None);
        let mut frames = Vec::new();
        let mut sent = self.decoder.send_packet(&packet);
        if sent.as_ref().is_err_and(is_eagain) {
            // The decoder wants its output taken first.
            frames = self.receive()?;
            sent = self.decoder.send_packet(&packet);
        }
        // Collect what is ready even if this access unit was rejected.
        frames.extend(self.receive()?);
        match sent {
            Ok(()) => Ok(frames),
            Err(e) if frames.is_empty() => Err(decode_err(e)),
            Err(_) => Ok(frames),
        }
    }

    /// Ends the stream: returns every delayed frame. The decoder can be fed again afterwards.
    pub fn flush(&mut self) -> Result<Vec<Frame>, CodecError> {
        // An error here only means the decoder is already draining.
        let _ = self.decoder.send_eof();
        let frames = self.receive();
        self.decoder.flush();
        frames
    }

    fn receive(&mut self) -> Result<Vec<Frame>, CodecError> {
        let mut out = Vec::new();
        loop {
            let mut f = frame::Video::empty();
            match self.decoder.receive_frame(&mut f) {
                Ok(()) => out.push(self.output_frame(&f)?),
                Err(e) if is_eagain(&e) => break,
                Err(ff::Error::Eof) => break,
                Err(ff::Error::InvalidData) => continue,
                Err(e) => return Err(decode_err(e)),
            }
        }
        Ok(out)
    }

    fn output_frame(&mut self, f: &frame::Video) -> Result<Frame, CodecError> {
        if self.converter.is_none() {
            let dst = destination_size(
                self.options.width_dst,
                self.options.height_dst,
                f.width(),
                f.height(),
            )?;
            self.converter = Some(Converter::new(self.options.output, dst));
        }
        let Some(converter) = self.converter.as_mut() else {
            return Err(CodecError::InvalidArgument {
                what: "packet decoder",
                reason: "no converter".into(),
            });
        };
        let (width, height, data) = converter.convert(f)?;
        let pts = f
            .timestamp()
            .or(f.pts())
            .unwrap_or_else(|| self.last_pts.map_or(0, |p| p + 1));
        self.last_pts = Some(pts);
        let frame = Frame {
            index: self.frames_out,
            pts,
            time_base: self.time_base,
            key: f.is_key(),
            width,
            height,
            layout: self.options.output,
            data,
        };
        self.frames_out += 1;
        Ok(frame)
    }
}
