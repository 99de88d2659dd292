//! The crate's only `unsafe` code: things ffmpeg-next 9 offers no safe API for.

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
        copy_extradata((*p).extradata, (*p).extradata_size)
    }
}

/// Copies `size` bytes at `data` (FFmpeg's `extradata` / `extradata_size` pair); empty when
/// the pointer is null or the size not positive.
///
/// # Safety
/// `data` must be null or point to at least `size` initialised bytes that stay valid for the
/// duration of the call.
#[allow(unsafe_code)]
unsafe fn copy_extradata(data: *const u8, size: i32) -> Bytes {
    if data.is_null() || size <= 0 {
        return Bytes::new();
    }
    // SAFETY: non-null and `size` > 0 checked above; validity is the caller's contract.
    Bytes::copy_from_slice(unsafe { std::slice::from_raw_parts(data, size as usize) })
}

/// What the codec parameters of an audio stream say beyond ffmpeg-next's safe accessors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AudioCodecpar {
    /// Samples per second (0 when unknown).
    pub(crate) sample_rate: u32,
    /// Number of channels (0 when unknown).
    pub(crate) channels: u32,
    /// Samples per channel in one frame (0 when unknown or variable).
    pub(crate) frame_size: u32,
    /// The stream's extradata (e.g. the AAC AudioSpecificConfig), copied.
    pub(crate) extradata: Bytes,
}

/// Reads the audio fields of a stream's codec parameters. The channel count comes from
/// `ch_layout` (FFmpeg >= 5.1; the older `channels` field is gone in FFmpeg 7).
#[allow(unsafe_code)]
pub(crate) fn audio_codecpar(par: &codec::Parameters) -> AudioCodecpar {
    // SAFETY: `par` wraps a valid AVCodecParameters (owned, or kept alive by its owner handle)
    // for as long as the reference lives; we only read plain integer fields and copy the
    // extradata, whose pointer/size pair FFmpeg keeps consistent (null, or at least
    // `extradata_size` initialised bytes), before the borrow ends.
    unsafe {
        let p = par.as_ptr();
        if p.is_null() {
            return AudioCodecpar {
                sample_rate: 0,
                channels: 0,
                frame_size: 0,
                extradata: Bytes::new(),
            };
        }
        let non_negative = |v: i32| u32::try_from(v).unwrap_or(0);
        AudioCodecpar {
            sample_rate: non_negative((*p).sample_rate),
            channels: non_negative((*p).ch_layout.nb_channels),
            frame_size: non_negative((*p).frame_size),
            extradata: copy_extradata((*p).extradata, (*p).extradata_size),
        }
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
