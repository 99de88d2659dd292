//! The crate's only `unsafe` code: two things ffmpeg-next 9 offers no safe API for.

use bytes::Bytes;
use ffmpeg_next::codec;
use ffmpeg_next::software::scaling;

/// Copies the `extradata` of a codec context: the avcC record or Annex B parameter sets of a
/// demuxed stream, or the SPS/PPS libx264 writes when the global-header flag is set.
#[allow(unsafe_code)]
pub(crate) fn extradata(ctx: &codec::Context) -> Bytes {
    // SAFETY: `ctx` owns (or borrows from a live owner) a valid AVCodecContext for as long as
    // the reference lives, and we only read from it. By FFmpeg's API contract `extradata` is
    // either null or points to at least `extradata_size` initialised bytes owned by the
    // context; both are checked before building the slice, which is copied out before the
    // borrow of `ctx` ends.
    unsafe {
        let p = ctx.as_ptr();
        if p.is_null() {
            return Bytes::new();
        }
        let data = (*p).extradata;
        let size = (*p).extradata_size;
        if data.is_null() || size <= 0 {
            return Bytes::new();
        }
        Bytes::copy_from_slice(std::slice::from_raw_parts(data, size as usize))
    }
}

/// A swscale context that may move between threads, so that decoders and encoders holding one
/// are `Send` (ffmpeg-next implements `Send` for its resampler but not for its scaler).
pub(crate) struct SendScaler(pub(crate) scaling::Context);

// SAFETY: an SwsContext has no thread affinity: it is plain heap state touched only by the
// thread that calls sws_scale on it. `SendScaler` is owned (never shared: it is not `Sync`, and
// `&mut` access is needed to run it), so moving it to another thread cannot create concurrent
// access. FFmpeg documents sws contexts as usable from any thread as long as calls on one
// context are not concurrent.
#[allow(unsafe_code)]
unsafe impl Send for SendScaler {}
