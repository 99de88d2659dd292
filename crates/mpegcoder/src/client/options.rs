//! [`ClientOptions`]: what a pull does with the stream.

use crate::codec::PixelLayout;
use crate::transport::options::InvalidOption;
use crate::transport::pull::PullOptions;

/// Options of a [`Client`](super::Client) or an [`AsyncClient`](super::AsyncClient), like
/// mpegCoder's `setParameter` keywords: start from [`ClientOptions::default`] and change what
/// you need with the `with_*` methods.
///
/// ```
/// use std::time::Duration;
/// use mpegcoder::codec::PixelLayout;
/// use mpegcoder::{ClientOptions, PullOptions, Transport};
///
/// let options = ClientOptions::default()
///     .with_pull(
///         PullOptions::default()
///             .with_transport(Transport::Udp)
///             .with_idle_timeout(Duration::from_secs(5)),
///     )
///     .with_cache_size(10)
///     .with_target_fps(5.0)
///     .with_width(640)
///     .with_output(PixelLayout::Yuv420p);
/// assert_eq!(options.cache_size(), 10);
/// assert_eq!(options.size(), (Some(640), None));
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ClientOptions {
    pull: PullOptions,
    cache_size: usize,
    target_fps: Option<f64>,
    width: Option<u32>,
    height: Option<u32>,
    output: PixelLayout,
    decode: bool,
    decoder_threads: usize,
    max_access_units: Option<u64>,
    flush_at_end: bool,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            pull: PullOptions::default(),
            cache_size: 30,
            target_fps: None,
            width: None,
            height: None,
            output: PixelLayout::Rgb24,
            decode: true,
            decoder_threads: 1,
            max_access_units: None,
            flush_at_end: false,
        }
    }
}

impl ClientOptions {
    /// Network options: RTSP transport (TCP by default, or UDP) and the connect, setup and idle
    /// timeouts (5 s, 10 s, 10 s).
    pub fn with_pull(mut self, pull: PullOptions) -> Self {
        self.pull = pull;
        self
    }

    /// How many of the newest decoded frames the ring keeps (mpegCoder's `cacheSize`; default
    /// 30). At least 1.
    pub fn with_cache_size(mut self, frames: usize) -> Self {
        self.cache_size = frames;
        self
    }

    /// Decimates to `fps` frames per second, by presentation time: frames are dropped, never
    /// duplicated. By default every frame is kept.
    pub fn with_target_fps(mut self, fps: f64) -> Self {
        self.target_fps = Some(fps);
        self
    }

    /// Keeps every frame (the default): undoes [`with_target_fps`](Self::with_target_fps).
    pub fn without_target_fps(mut self) -> Self {
        self.target_fps = None;
        self
    }

    /// Scales the frames to `width` × `height` pixels.
    pub fn with_size(mut self, width: u32, height: u32) -> Self {
        self.width = Some(width);
        self.height = Some(height);
        self
    }

    /// Scales the frames to `width` pixels wide; without a height the aspect ratio is kept.
    pub fn with_width(mut self, width: u32) -> Self {
        self.width = Some(width);
        self
    }

    /// Scales the frames to `height` pixels high; without a width the aspect ratio is kept.
    pub fn with_height(mut self, height: u32) -> Self {
        self.height = Some(height);
        self
    }

    /// Pixel layout of the frames handed out (default RGB24).
    pub fn with_output(mut self, layout: PixelLayout) -> Self {
        self.output = layout;
        self
    }

    /// Decode at all (default true). Without decoding, the access units are only counted and
    /// recorded ([`Client::record_annexb`](super::Client::record_annexb)); no frames are
    /// produced.
    pub fn with_decode(mut self, decode: bool) -> Self {
        self.decode = decode;
        self
    }

    /// Decoder threads (default 1: frame threading adds a frame of delay per thread; 0 =
    /// automatic).
    pub fn with_decoder_threads(mut self, threads: usize) -> Self {
        self.decoder_threads = threads;
        self
    }

    /// Ends the pull after `n` access units from the first key frame (at least 1): the
    /// network side stops receiving right after the `n`-th, every one of them is recorded
    /// and decoded, and the decoder's delayed frames are handed out, so that a
    /// [`record_annexb`](super::Client::record_annexb) recording holds exactly `n` access
    /// units and the frames handed out are their `n` pictures (fewer only if some fail to
    /// decode). The pipeline then finishes [`Stopped`](super::ClientStatus::Stopped).
    ///
    /// The limit counts in decoding order: with B-frames, the last pictures handed out may
    /// be a reference picture shown after B-frames that came beyond the limit.
    pub fn with_max_access_units(mut self, n: u64) -> Self {
        self.max_access_units = Some(n);
        self
    }

    /// Hands out the decoder's delayed frames (held back for B-frame reordering) however the
    /// pipeline ends (default false). By default they are handed out only at the end of the
    /// stream, at [`with_max_access_units`](Self::with_max_access_units), or when the stream
    /// had gone quiet before a stop or a failure; otherwise they are dropped, so that what was
    /// handed out has no gap. With this set, the frames handed out are always the decoding of
    /// every access unit received, the same as a
    /// [`record_annexb`](super::Client::record_annexb) recording decodes to, also after a
    /// stop or a lost connection.
    pub fn with_flush_at_end(mut self, flush: bool) -> Self {
        self.flush_at_end = flush;
        self
    }

    /// The access unit limit, if any.
    pub fn max_access_units(&self) -> Option<u64> {
        self.max_access_units
    }

    /// Whether the decoder's delayed frames are handed out however the pipeline ends.
    pub fn flush_at_end(&self) -> bool {
        self.flush_at_end
    }

    /// The network options.
    pub fn pull(&self) -> &PullOptions {
        &self.pull
    }

    /// Frames the ring keeps.
    pub fn cache_size(&self) -> usize {
        self.cache_size
    }

    /// The target frame rate, if decimating.
    pub fn target_fps(&self) -> Option<f64> {
        self.target_fps
    }

    /// The output size asked for, `(width, height)`; `None` keeps the stream's (or derives it
    /// from the other one).
    pub fn size(&self) -> (Option<u32>, Option<u32>) {
        (self.width, self.height)
    }

    /// The output pixel layout.
    pub fn output(&self) -> PixelLayout {
        self.output
    }

    /// Whether frames are decoded.
    pub fn decode(&self) -> bool {
        self.decode
    }

    /// Decoder threads (0 = automatic).
    pub fn decoder_threads(&self) -> usize {
        self.decoder_threads
    }

    /// Checks the values; the error names the option that cannot work.
    pub fn validate(&self) -> Result<(), InvalidOption> {
        self.pull.validate()?;
        if self.cache_size == 0 {
            return Err(InvalidOption::new("cache_size", "must not be zero"));
        }
        if let Some(fps) = self.target_fps {
            if !(fps.is_finite() && fps > 0.0) {
                return Err(InvalidOption::new(
                    "target_fps",
                    format!("must be a positive frame rate (got {fps})"),
                ));
            }
        }
        if self.max_access_units == Some(0) {
            return Err(InvalidOption::new("max_access_units", "must not be zero"));
        }
        for (name, v) in [("width", self.width), ("height", self.height)] {
            if v == Some(0) {
                return Err(InvalidOption::new(name, "must not be zero"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setters_set_and_validate_names_the_bad_value() {
        let o = ClientOptions::default();
        assert_eq!(o.cache_size(), 30);
        assert_eq!(o.target_fps(), None);
        assert_eq!(o.size(), (None, None));
        assert_eq!(o.output(), PixelLayout::Rgb24);
        assert!(o.decode());
        assert_eq!(o.decoder_threads(), 1);
        assert!(o.validate().is_ok());

        let o = ClientOptions::default()
            .with_cache_size(4)
            .with_target_fps(12.5)
            .with_size(320, 240)
            .with_decode(false)
            .with_decoder_threads(0);
        assert_eq!(
            (o.cache_size(), o.target_fps(), o.size()),
            (4, Some(12.5), (Some(320), Some(240)))
        );
        assert!(!o.decode());
        assert_eq!(o.clone().without_target_fps().target_fps(), None);
        assert_eq!(
            ClientOptions::default().with_height(90).size(),
            (None, Some(90))
        );

        let err = |o: ClientOptions| {
            o.validate()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(err(ClientOptions::default().with_cache_size(0)).contains("cache_size"));
        assert!(err(ClientOptions::default().with_target_fps(f64::NAN)).contains("target_fps"));
        assert!(err(ClientOptions::default().with_target_fps(0.0)).contains("target_fps"));
        assert!(err(ClientOptions::default().with_width(0)).contains("width"));
        assert!(err(ClientOptions::default().with_max_access_units(0)).contains("max_access_units"));
        let o = ClientOptions::default()
            .with_max_access_units(30)
            .with_flush_at_end(true);
        assert_eq!((o.max_access_units(), o.flush_at_end()), (Some(30), true));
        assert!(o.validate().is_ok());
        assert_eq!(
            (
                ClientOptions::default().max_access_units(),
                ClientOptions::default().flush_at_end()
            ),
            (None, false)
        );
        let mut pull = PullOptions::default();
        pull.setup_timeout = std::time::Duration::ZERO;
        assert!(err(ClientOptions::default().with_pull(pull)).contains("setup_timeout"));
    }
}
