//! Decoded pictures: [`Frame`], its [`PixelLayout`], and the per-frame MD5 ([`frame_md5`]).

use std::fmt;

use bytes::Bytes;
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

use crate::{CodecError, Rational};

/// How the pixels of a [`Frame`] are laid out in its buffer. Always packed: rows follow each
/// other without padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum PixelLayout {
    /// Packed 8-bit R, G, B per pixel: `width * height * 3` bytes. What users want.
    #[default]
    Rgb24,
    /// Planar 8-bit Y, then U, then V with chroma halved in both directions (rounded up):
    /// `width * height + 2 * ceil(width/2) * ceil(height/2)` bytes. What libx264 takes, and what
    /// [`frame_md5`] hashes.
    Yuv420p,
}

impl PixelLayout {
    /// FFmpeg's name for the layout (`rgb24`, `yuv420p`).
    pub const fn name(self) -> &'static str {
        match self {
            PixelLayout::Rgb24 => "rgb24",
            PixelLayout::Yuv420p => "yuv420p",
        }
    }

    /// Bytes of a packed `width x height` picture in this layout.
    #[must_use]
    pub fn buffer_size(self, width: u32, height: u32) -> usize {
        self.planes(width, height).iter().map(|(w, h)| w * h).sum()
    }

    /// `(bytes per row, rows)` of each plane.
    pub(crate) fn planes(self, width: u32, height: u32) -> Vec<(usize, usize)> {
        let (w, h) = (width as usize, height as usize);
        match self {
            PixelLayout::Rgb24 => vec![(w * 3, h)],
            PixelLayout::Yuv420p => {
                let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
                vec![(w, h), (cw, ch), (cw, ch)]
            }
        }
    }

    pub(crate) fn ff(self) -> ffmpeg_next::format::Pixel {
        match self {
            PixelLayout::Rgb24 => ffmpeg_next::format::Pixel::RGB24,
            PixelLayout::Yuv420p => ffmpeg_next::format::Pixel::YUV420P,
        }
    }

    /// Checks that `len` bytes hold a `width x height` picture.
    pub(crate) fn check_buffer(
        self,
        width: u32,
        height: u32,
        len: usize,
    ) -> Result<(), CodecError> {
        if width == 0 || height == 0 {
            return Err(CodecError::InvalidFrameSize { width, height });
        }
        let expected = self.buffer_size(width, height);
        if len != expected {
            return Err(CodecError::BufferSize {
                layout: self,
                width,
                height,
                expected,
                actual: len,
            });
        }
        Ok(())
    }
}

impl fmt::Display for PixelLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One decoded picture, in presentation order, with packed pixel data.
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    /// Position in presentation order, counted from the first frame of the stream (0-based).
    /// Exact after seeking too; a [`crate::PacketDecoder`] counts the frames it produced.
    pub index: u64,
    /// Presentation timestamp in ticks of [`Frame::time_base`], as stored in the stream
    /// (variable-frame-rate streams keep their real timestamps). Streams without timestamps
    /// (raw `.h264`) get `previous + one nominal frame duration`.
    pub pts: i64,
    /// Seconds per tick of [`Frame::pts`].
    pub time_base: Rational,
    /// The decoder marked this picture as a key frame.
    pub key: bool,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Layout of [`Frame::data`].
    pub layout: PixelLayout,
    /// The pixels, packed (no line padding), `layout.buffer_size(width, height)` bytes.
    pub data: Bytes,
}

impl Frame {
    /// A frame from packed pixel data, checking the buffer size. `pts` is in ticks of
    /// `time_base`; `index` is set to 0 and `key` to false.
    pub fn from_packed(
        layout: PixelLayout,
        width: u32,
        height: u32,
        data: impl Into<Bytes>,
        pts: i64,
        time_base: Rational,
    ) -> Result<Frame, CodecError> {
        let data = data.into();
        layout.check_buffer(width, height, data.len())?;
        Ok(Frame {
            index: 0,
            pts,
            time_base,
            key: false,
            width,
            height,
            layout,
            data,
        })
    }

    /// The presentation time in seconds (`pts * time_base`).
    #[must_use]
    pub fn pts_seconds(&self) -> f64 {
        self.pts as f64 * self.time_base.as_f64()
    }

    /// The planes of the frame: one for RGB24, Y/U/V for YUV420P. Empty when the buffer does not
    /// match the dimensions (a hand-made frame with inconsistent fields).
    #[must_use]
    pub fn planes(&self) -> Vec<&[u8]> {
        let mut out = Vec::new();
        let mut offset = 0usize;
        for (row, rows) in self.layout.planes(self.width, self.height) {
            let Some(plane) = self.data.get(offset..offset + row * rows) else {
                return Vec::new();
            };
            out.push(plane);
            offset += row * rows;
        }
        out
    }

    /// [`frame_md5`] of this frame.
    pub fn md5_hex(&self) -> Result<String, CodecError> {
        frame_md5(self)
    }
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Frame")
            .field("index", &self.index)
            .field("pts", &self.pts)
            .field("time_base", &self.time_base)
            .field("key", &self.key)
            .field("width", &self.width)
            .field("height", &self.height)
            .field("layout", &self.layout)
            .field("data_len", &self.data.len())
            .finish()
    }
}

/// The MD5 (lowercase hex) of a YUV420P frame's packed planes: Y, then U, then V, without
/// padding.
///
/// For a yuv420p source this equals the hash column of
/// `ffmpeg -i FILE -map 0:v:0 -fps_mode passthrough -f framemd5 -` for the same decoded frame.
/// Fails with [`CodecError::WrongLayout`] for an RGB24 frame and [`CodecError::BufferSize`] for
/// a buffer that does not match the frame's dimensions.
pub fn frame_md5(frame: &Frame) -> Result<String, CodecError> {
    if frame.layout != PixelLayout::Yuv420p {
        return Err(CodecError::WrongLayout {
            expected: PixelLayout::Yuv420p,
            actual: frame.layout,
        });
    }
    yuv420p_md5(frame.width, frame.height, &frame.data)
}

/// [`frame_md5`] over a packed YUV420P buffer of a `width x height` picture.
pub fn yuv420p_md5(width: u32, height: u32, data: &[u8]) -> Result<String, CodecError> {
    PixelLayout::Yuv420p.check_buffer(width, height, data.len())?;
    let digest = Md5::digest(data);
    Ok(digest.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffer_sizes_round_chroma_up() {
        assert_eq!(PixelLayout::Rgb24.buffer_size(320, 240), 320 * 240 * 3);
        assert_eq!(PixelLayout::Yuv420p.buffer_size(320, 240), 115_200);
        assert_eq!(PixelLayout::Yuv420p.buffer_size(5, 3), 15 + 2 * 3 * 2);
    }

    #[test]
    fn md5_of_known_buffer() {
        // MD5 of 6 zero bytes (a 2x2 YUV420P picture of zeros).
        let h = yuv420p_md5(2, 2, &[0u8; 6]).expect("valid size");
        assert_eq!(h, "7319468847d7b1aee40dbf5dd963c999");
        assert!(yuv420p_md5(2, 2, &[0u8; 5]).is_err());
        assert!(yuv420p_md5(0, 2, &[]).is_err());
    }

    #[test]
    fn md5_rejects_rgb() {
        let f = Frame::from_packed(
            PixelLayout::Rgb24,
            2,
            2,
            vec![0u8; 12],
            0,
            Rational::new(1, 30),
        )
        .expect("valid");
        assert!(matches!(frame_md5(&f), Err(CodecError::WrongLayout { .. })));
        assert_eq!(f.planes().len(), 1);
    }
}
