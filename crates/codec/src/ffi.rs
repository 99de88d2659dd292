//! The crate's only `unsafe` code: things ffmpeg-next 9 offers no safe API for.

use bytes::Bytes;
use ffmpeg_next::codec;
use ffmpeg_next::format;
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

/// Entries in the index a demuxer keeps of stream `stream` of `input` (for MP4 every sample
/// of the `moov` box, in decoding order); 0 when it keeps none.
#[allow(unsafe_code)]
pub(crate) fn index_len(input: &format::context::Input, stream: usize) -> usize {
    let Some(st) = input.stream(stream) else {
        return 0;
    };
    // SAFETY: `st` borrows a valid AVStream of the open input for as long as it lives; the
    // call only reads the stream's index count.
    let n = unsafe {
        let p = st.as_ptr();
        if p.is_null() {
            return 0;
        }
        ffmpeg_next::ffi::avformat_index_get_entries_count(p)
    };
    usize::try_from(n).unwrap_or(0)
}

/// Where index entry `i` of stream `stream` points: its byte position in the input and its
/// size in bytes.
#[allow(unsafe_code)]
pub(crate) fn index_entry(
    input: &format::context::Input,
    stream: usize,
    i: usize,
) -> Option<(i64, u64)> {
    let st = input.stream(stream)?;
    let i = std::ffi::c_int::try_from(i).ok()?;
    // SAFETY: `st` borrows a valid AVStream of the open input. `avformat_index_get_entry`
    // takes a mutable pointer but only reads the index (FFmpeg's signature predates const
    // correctness there); it returns null for an index out of range, else a pointer valid
    // until the next call on the stream or its context, and the two fields are copied out
    // at once, before any such call.
    unsafe {
        let p = st.as_ptr();
        if p.is_null() {
            return None;
        }
        let entry = ffmpeg_next::ffi::avformat_index_get_entry(p.cast_mut(), i);
        if entry.is_null() {
            return None;
        }
        Some(((*entry).pos, u64::try_from((*entry).size()).unwrap_or(0)))
    }
}

/// The size of the input in bytes, when its I/O layer knows it (local files do).
#[allow(unsafe_code)]
pub(crate) fn input_size(input: &mut format::context::Input) -> Option<u64> {
    // SAFETY: `input` owns a valid AVFormatContext; `pb` is null (no I/O layer) or a valid
    // AVIOContext owned by it. `avio_size` asks the protocol for the size (AVSEEK_SIZE) and
    // does not move the read position.
    let size = unsafe {
        let ctx = input.as_mut_ptr();
        if ctx.is_null() || (*ctx).pb.is_null() {
            return None;
        }
        ffmpeg_next::ffi::avio_size((*ctx).pb)
    };
    u64::try_from(size).ok().filter(|s| *s > 0)
}
