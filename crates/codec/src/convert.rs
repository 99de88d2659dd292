//! Pixel conversion with swscale and packing between FFmpeg frames and packed buffers.

use bytes::Bytes;
use ffmpeg_next::format::Pixel;
use ffmpeg_next::software::scaling;
use ffmpeg_next::util::frame;

use crate::error::FfmpegError;
use crate::ffi::SendScaler;
use crate::{CodecError, PixelLayout};

/// The name of a pixel format for messages.
pub(crate) fn pixel_name(p: Pixel) -> String {
    p.descriptor()
        .map(|d| d.name().to_owned())
        .unwrap_or_else(|| format!("{p:?}").to_lowercase())
}

/// Checks a size against what FFmpeg accepts (non-zero, fits in an `int` with room).
pub(crate) fn check_size(width: u32, height: u32) -> Result<(), CodecError> {
    const MAX: u32 = 16384;
    if width == 0 || height == 0 || width > MAX || height > MAX {
        return Err(CodecError::InvalidFrameSize { width, height });
    }
    Ok(())
}

/// A cached swscale context plus the definition it was made for.
struct Cached {
    key: Key,
    ctx: SendScaler,
    /// Reusable output frame for [`Scaler::run_reuse`].
    out: Option<frame::Video>,
}

/// Converts FFmpeg frames to a pixel format and size, reusing its swscale context while the
/// source does not change.
#[derive(Default)]
pub(crate) struct Scaler {
    cached: Option<Cached>,
}

impl Scaler {
    /// Converts `src` into a new frame of format `to` and size `w x h` (a fresh buffer, safe to
    /// hand to an encoder that may keep a reference).
    pub(crate) fn run(
        &mut self,
        src: &frame::Video,
        to: Pixel,
        w: u32,
        h: u32,
    ) -> Result<frame::Video, CodecError> {
        let cached = self.prepare(src, to, w, h)?;
        let mut out = frame::Video::new(to, w, h);
        scale(cached, src, &mut out)?;
        Ok(out)
    }

    /// Like [`Scaler::run`], into an output frame kept between calls (for callers that copy the
    /// pixels out right away).
    pub(crate) fn run_reuse(
        &mut self,
        src: &frame::Video,
        to: Pixel,
        w: u32,
        h: u32,
    ) -> Result<&frame::Video, CodecError> {
        let cached = self.prepare(src, to, w, h)?;
        let mut out = cached
            .out
            .take()
            .unwrap_or_else(|| frame::Video::new(to, w, h));
        scale(cached, src, &mut out)?;
        Ok(cached.out.insert(out))
    }

    /// The swscale context for this conversion, made when the source or target changed.
    fn prepare(
        &mut self,
        src: &frame::Video,
        to: Pixel,
        w: u32,
        h: u32,
    ) -> Result<&mut Cached, CodecError> {
        let key = (src.format(), src.width(), src.height(), to, w, h);
        let cached = match self.cached.take() {
            Some(cached) if cached.key == key => cached,
            _ => {
                if key.0 == Pixel::None {
                    return Err(CodecError::InvalidArgument {
                        what: "decoded frame",
                        reason: format!(
                            "{}x{} of unknown pixel format: cannot convert it to {}",
                            key.1,
                            key.2,
                            pixel_name(to)
                        ),
                    });
                }
                let ctx =
                    scaling::Context::get(key.0, key.1, key.2, to, w, h, scaling::Flags::BICUBIC)
                        .map_err(|e| scale_error(key, e))?;
                Cached {
                    key,
                    ctx: SendScaler(ctx),
                    out: None,
                }
            }
        };
        Ok(self.cached.insert(cached))
    }
}

type Key = (Pixel, u32, u32, Pixel, u32, u32);

fn scale_error(key: Key, e: ffmpeg_next::Error) -> CodecError {
    CodecError::Scale {
        from: pixel_name(key.0),
        from_width: key.1,
        from_height: key.2,
        to: pixel_name(key.3),
        to_width: key.4,
        to_height: key.5,
        source: FfmpegError::new(e),
    }
}

fn scale(
    cached: &mut Cached,
    src: &frame::Video,
    out: &mut frame::Video,
) -> Result<(), CodecError> {
    if out.planes() == 0 {
        // FFmpeg could not allocate the output frame's buffers.
        let no_memory = ffmpeg_next::Error::Other {
            errno: ffmpeg_next::util::error::ENOMEM,
        };
        return Err(scale_error(cached.key, no_memory));
    }
    cached
        .ctx
        .0
        .run(src, out)
        .map_err(|e| scale_error(cached.key, e))
}

/// True when frames of format `p` can be packed into `layout` without conversion.
pub(crate) fn is_native(p: Pixel, layout: PixelLayout) -> bool {
    match layout {
        PixelLayout::Rgb24 => p == Pixel::RGB24,
        // yuvj420p has the same memory layout (full range instead of limited).
        PixelLayout::Yuv420p => p == Pixel::YUV420P || p == Pixel::YUVJ420P,
    }
}

/// Copies the visible pixels of `src` (which must already be in `layout`'s memory layout) into
/// a packed buffer without line padding.
pub(crate) fn pack(src: &frame::Video, layout: PixelLayout) -> Result<Bytes, CodecError> {
    let (w, h) = (src.width(), src.height());
    let planes = layout.planes(w, h);
    let bad = |reason: &str| CodecError::InvalidArgument {
        what: "decoded frame",
        reason: format!("{} {w}x{h}: {reason}", pixel_name(src.format())),
    };
    if src.planes() < planes.len() {
        return Err(bad("missing planes"));
    }
    let mut out = Vec::with_capacity(layout.buffer_size(w, h));
    for (i, (row, rows)) in planes.into_iter().enumerate() {
        let stride = src.stride(i);
        let data = src.data(i);
        if stride < row {
            return Err(bad("line size smaller than a row"));
        }
        for r in 0..rows {
            let start = r * stride;
            let line = data
                .get(start..start + row)
                .ok_or_else(|| bad("plane shorter than its rows"))?;
            out.extend_from_slice(line);
        }
    }
    Ok(Bytes::from(out))
}

/// Copies a packed buffer into a newly allocated FFmpeg frame of the same layout.
pub(crate) fn unpack(
    layout: PixelLayout,
    width: u32,
    height: u32,
    data: &[u8],
) -> Result<frame::Video, CodecError> {
    check_size(width, height)?;
    layout.check_buffer(width, height, data.len())?;
    let planes = layout.planes(width, height);
    let mut f = frame::Video::new(layout.ff(), width, height);
    if f.planes() < planes.len() {
        return Err(CodecError::InvalidFrameSize { width, height });
    }
    let mut offset = 0usize;
    for (i, (row, rows)) in planes.into_iter().enumerate() {
        let stride = f.stride(i);
        let dst = f.data_mut(i);
        for r in 0..rows {
            let src = data.get(offset..offset + row);
            let line = dst.get_mut(r * stride..r * stride + row);
            match (src, line) {
                (Some(s), Some(d)) => d.copy_from_slice(s),
                _ => return Err(CodecError::InvalidFrameSize { width, height }),
            }
            offset += row;
        }
    }
    Ok(f)
}

/// Turns decoded frames into packed frames of one layout, optionally resized.
pub(crate) struct Converter {
    layout: PixelLayout,
    dst: Option<(u32, u32)>,
    scaler: Scaler,
}

impl Converter {
    pub(crate) fn new(layout: PixelLayout, dst: Option<(u32, u32)>) -> Converter {
        Converter {
            layout,
            dst,
            scaler: Scaler::default(),
        }
    }

    pub(crate) fn layout(&self) -> PixelLayout {
        self.layout
    }

    /// The output size for a `w x h` source.
    pub(crate) fn output_size(&self, w: u32, h: u32) -> (u32, u32) {
        self.dst.unwrap_or((w, h))
    }

    /// Packed pixels of `src` in the converter's layout and size: `(width, height, data)`.
    pub(crate) fn convert(&mut self, src: &frame::Video) -> Result<(u32, u32, Bytes), CodecError> {
        let (w, h) = (src.width(), src.height());
        let (dw, dh) = self.output_size(w, h);
        if (dw, dh) == (w, h) && is_native(src.format(), self.layout) {
            return Ok((w, h, pack(src, self.layout)?));
        }
        let out = self.scaler.run_reuse(src, self.layout.ff(), dw, dh)?;
        Ok((dw, dh, pack(out, self.layout)?))
    }
}

/// Resolves `width_dst` / `height_dst` options against the source size: both given are used as
/// is; one given keeps the aspect ratio (rounded to an even number); none keeps the source size.
pub(crate) fn destination_size(
    width_dst: Option<u32>,
    height_dst: Option<u32>,
    src_w: u32,
    src_h: u32,
) -> Result<Option<(u32, u32)>, CodecError> {
    let even = |v: u64| -> u32 { u32::try_from((v.div_ceil(2) * 2).max(2)).unwrap_or(u32::MAX) };
    let size = match (width_dst, height_dst) {
        (None, None) => return Ok(None),
        (Some(w), Some(h)) => (w, h),
        (Some(w), None) if src_w > 0 => {
            (w, even(u64::from(w) * u64::from(src_h) / u64::from(src_w)))
        }
        (None, Some(h)) if src_h > 0 => {
            (even(u64::from(h) * u64::from(src_w) / u64::from(src_h)), h)
        }
        (w, h) => (w.unwrap_or(0), h.unwrap_or(0)),
    };
    check_size(size.0, size.1)?;
    Ok(Some(size))
}
