//! [`Decoder`]: frames of a file or URL, in presentation order, with exact seeking and GOPs.

use std::ffi::OsStr;

use bytes::Bytes;
use ff::util::frame;
use ffmpeg_next as ff;

use crate::convert::{destination_size, Converter};
use crate::error::FfmpegError;
use crate::index::{FrameIndex, Scanned};
use crate::input::{OpenOptions, Source, SourcePacket};
use crate::rational::rescale;
use crate::{
    AudioParams, CodecError, EncodedPacket, EncoderConfig, Frame, FrameCountSource, PixelLayout,
    Rational, VideoParams,
};

/// Options of a [`Decoder`]: start from [`DecoderOptions::default`] and change what you need
/// with the `with_*` setters, e.g. `DecoderOptions::default().with_output(PixelLayout::Yuv420p)`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct DecoderOptions {
    /// Output width; with only one of `width_dst`/`height_dst` set, the other follows the
    /// aspect ratio (rounded to an even number). Scaled with swscale (bicubic).
    pub width_dst: Option<u32>,
    /// Output height (see `width_dst`).
    pub height_dst: Option<u32>,
    /// Decoder threads (frame threading); 0 = automatic (one per core).
    pub threads: usize,
    /// Pixel layout of the frames handed out: RGB24 for users (the default), YUV420P for an
    /// encoder (no RGB round trip; packed without conversion when the source is yuv420p).
    pub output: PixelLayout,
    /// How to open the input, including which audio stream to pass through
    /// ([`OpenOptions::audio`], see [`Decoder::take_audio_packets`]).
    pub open: OpenOptions,
}

impl DecoderOptions {
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

    /// Sets the number of decoder threads (0 = one per core).
    #[must_use]
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads;
        self
    }

    /// Sets the pixel layout of the frames handed out.
    #[must_use]
    pub fn with_output(mut self, output: PixelLayout) -> Self {
        self.output = output;
        self
    }

    /// Sets how the input is opened (network timeout, demuxer options).
    #[must_use]
    pub fn with_open(mut self, open: OpenOptions) -> Self {
        self.open = open;
        self
    }
}

/// A position in a stream: a frame number (presentation order, from 0) or a time in seconds
/// from the first frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Position {
    /// Frame number, from 0.
    Frame(u64),
    /// Seconds from the first frame's timestamp.
    Seconds(f64),
}

/// A decoded frame before conversion.
struct RawFrame {
    frame: frame::Video,
    pts: i64,
    key: bool,
    corrupt: bool,
}

/// Audio packets read while feeding the video decoder, waiting for
/// [`Decoder::take_audio_packets`].
#[derive(Debug, Default)]
struct AudioQueue {
    packets: Vec<EncodedPacket>,
    /// dts of the last packet queued since the input was last read from a new place.
    last_dts: Option<i64>,
    /// Packets whose dts is not after this were queued before the input was repositioned to
    /// continue where it was (see [`Decoder::build_index`]): drop them.
    skip_through: Option<i64>,
    /// After a seek: drop packets that end at or before this presentation time (pts, time
    /// base of the video), until the first one that does not.
    drop_ending_by: Option<(i64, Rational)>,
}

/// True when `packet` ends (pts + duration) at or before `pts` ticks of `time_base`; for a
/// packet of unknown duration (0), when it starts before then.
fn ends_by(packet: &EncodedPacket, (pts, time_base): (i64, Rational)) -> bool {
    let a = packet.time_base;
    let scaled = |ticks: i64| i128::from(ticks) * i128::from(a.num) * i128::from(time_base.den);
    // Compares end * a.num / a.den with pts * tb.num / tb.den without rounding (the
    // denominators are positive).
    let target = i128::from(pts) * i128::from(time_base.num) * i128::from(a.den);
    if packet.duration > 0 {
        scaled(packet.pts.saturating_add(packet.duration)) <= target
    } else {
        scaled(packet.pts) < target
    }
}

impl AudioQueue {
    fn push(&mut self, packet: EncodedPacket) {
        if self.skip_through.is_some_and(|s| packet.dts <= s) {
            return;
        }
        self.skip_through = None;
        if let Some(target) = self.drop_ending_by {
            if ends_by(&packet, target) {
                return;
            }
            self.drop_ending_by = None;
        }
        self.last_dts = Some(packet.dts);
        self.packets.push(packet);
    }

    /// The input was repositioned for a seek to the frame shown at `target`: what is queued
    /// is stale, and audio ending by `target` will not be queued.
    fn restart(&mut self, target: Option<(i64, Rational)>) {
        self.packets.clear();
        self.last_dts = None;
        self.skip_through = None;
        self.drop_ending_by = target;
    }

    /// The decoder moves forward to the frame shown at `target` without repositioning the
    /// input: drop queued and coming audio that ends by then.
    fn trim(&mut self, target: (i64, Rational)) {
        self.packets.retain(|p| !ends_by(p, target));
        self.drop_ending_by = Some(target);
    }

    /// The input starts again from the beginning (a new pass of a loop): keep what is
    /// queued, queue everything read from now on.
    fn new_pass(&mut self) {
        self.last_dts = None;
        self.skip_through = None;
        self.drop_ending_by = None;
    }

    /// The input is about to be repositioned to continue where it is: what was queued stays
    /// queued and is not queued again.
    fn resume(&mut self) {
        self.skip_through = self.skip_through.max(self.last_dts);
    }
}

/// What [`Decoder::seek_to`] does with the audio queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SeekAudio {
    /// A seek: the queue then holds the audio from the target frame's time on.
    Seek,
    /// A return to where decoding was (after indexing): nothing is lost or queued twice.
    Resume,
}

/// Decodes the best video stream of a file or URL (the original mpegCoder's `MpegDecoder`).
///
/// Frames come in presentation order with their timestamps ([`Decoder::next_frame`],
/// [`Decoder::frames`]). Random access is exact: [`Decoder::extract_frame`] and
/// [`Decoder::extract_frame_by_time`] seek back to a key frame, decode forward and drop the
/// frames before the target. [`Decoder::extract_gop`] hands out successive groups of pictures,
/// each starting at a key frame, every frame in exactly one of them.
///
/// Random access needs a [`FrameIndex`], built on first use by reading every packet of the
/// input once (no decoding); see [`Decoder::build_index`].
///
/// # Audio
///
/// Audio is passed through, not decoded. When [`OpenOptions::audio`] selects an audio stream,
/// the packets of that stream read while feeding the video decoder are queued in read order;
/// [`Decoder::take_audio_packets`] hands them out. The queue follows these rules:
/// - [`Decoder::next_frame`] queues the audio read on the way. The decoder reads ahead of the
///   frame it returns, so the queue usually holds audio somewhat past that frame's time. When
///   `next_frame` returns `None` the input has been read to its end: the queue then holds
///   the rest of the audio, including any stored after the last video frame.
/// - [`Decoder::rewind`] keeps what is queued (a loop player takes it before or after
///   rewinding) and the next pass queues the audio again from the start of the input.
/// - A seek ([`Decoder::extract_frame`], [`Decoder::extract_frame_by_time`], and
///   [`Decoder::extract_gop`] when it has to move) drops what is queued; afterwards the queue
///   holds the audio read from the new position on, without the packets that end at or
///   before the time of the target frame (for AAC in MP4, seeking to frame 0 thus drops the
///   encoder's priming packet, which lies before the first frame; `rewind` keeps it).
/// - [`Decoder::build_index`] queues nothing, keeps what is queued, and returning to the
///   current frame neither loses nor repeats audio packets.
///
/// The queue is not bounded: take the packets as you go.
pub struct Decoder {
    src: Source,
    decoder: ff::decoder::Video,
    converter: Converter,
    params: VideoParams,
    extradata: Bytes,
    index: Option<FrameIndex>,
    frame_ticks: i64,
    position: u64,
    peeked: Option<RawFrame>,
    input_done: bool,
    decoder_done: bool,
    last_pts: Option<i64>,
    gop_cursor: u64,
    decode_errors: u64,
    frames_decoded: u64,
    /// Present when an audio stream is selected.
    audio: Option<AudioQueue>,
    /// The input turned out damaged ([`CodecError::Damaged`]): returned once the decoder
    /// has handed out the frames of the packets before it.
    damage: Option<CodecError>,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("url", &self.src.url)
            .field("params", &self.params)
            .field("output", &self.converter.layout())
            .field("position", &self.position)
            .field("indexed", &self.index.is_some())
            .field("audio", &self.src.audio())
            .field(
                "audio_queued",
                &self.audio.as_ref().map_or(0, |a| a.packets.len()),
            )
            .finish_non_exhaustive()
    }
}

fn is_eagain(e: &ff::Error) -> bool {
    matches!(e, ff::Error::Other { errno } if *errno == ff::util::error::EAGAIN)
}

impl Decoder {
    /// Opens `url` (a path or any URL FFmpeg reads) and its best video stream.
    ///
    /// Errors: [`CodecError::NotFound`], [`CodecError::Open`] (not a media file, truncated
    /// header, network failure), [`CodecError::NoVideoStream`], [`CodecError::UnsupportedCodec`],
    /// [`CodecError::InvalidFrameSize`] for a zero destination size,
    /// [`CodecError::NoAudioStream`] when [`crate::AudioSelection::Index`] names an audio
    /// stream the input does not have.
    pub fn open(url: impl AsRef<OsStr>, options: DecoderOptions) -> Result<Decoder, CodecError> {
        let src = Source::open(url.as_ref(), &options.open)?;
        let (decoder, params, extradata) = src.open_decoder(options.threads)?;
        let dst = destination_size(
            options.width_dst,
            options.height_dst,
            params.width,
            params.height,
        )?;
        let frame_ticks = rescale(1, params.best_frame_rate().invert(), src.time_base).max(1);
        let audio = src.audio().map(|_| AudioQueue::default());
        Ok(Decoder {
            src,
            decoder,
            converter: Converter::new(options.output, dst),
            params,
            extradata,
            index: None,
            frame_ticks,
            position: 0,
            peeked: None,
            input_done: false,
            decoder_done: false,
            last_pts: None,
            gop_cursor: 0,
            decode_errors: 0,
            frames_decoded: 0,
            audio,
            damage: None,
        })
    }

    /// The input URL (credentials removed).
    pub fn url(&self) -> &str {
        &self.src.url
    }

    /// The stream's parameters. After [`Decoder::build_index`] the frame count is exact and
    /// the GOP size and max B-frames are measured.
    pub fn params(&self) -> &VideoParams {
        &self.params
    }

    /// The stream's codec extradata as stored (avcC for MP4, Annex B or empty otherwise).
    pub fn extradata(&self) -> &Bytes {
        &self.extradata
    }

    /// Time base of [`Frame::pts`].
    pub fn time_base(&self) -> Rational {
        self.src.time_base
    }

    /// The selected audio stream ([`OpenOptions::audio`]); `None` when no audio was asked
    /// for, or [`crate::AudioSelection::First`] found none.
    pub fn audio(&self) -> Option<&AudioParams> {
        self.src.audio()
    }

    /// Every audio stream of the input in container order, selected or not.
    pub fn audio_streams(&self) -> Vec<AudioParams> {
        self.src.audio_streams().to_vec()
    }

    /// Takes the queued packets of the selected audio stream, in read order (see
    /// [Audio](Decoder#audio) for when packets are queued and dropped). Empty when no audio
    /// stream is selected. Each packet is as [`crate::Demuxer::next_media`] returns it, in
    /// the audio stream's time base.
    pub fn take_audio_packets(&mut self) -> Vec<EncodedPacket> {
        self.audio
            .as_mut()
            .map(|a| std::mem::take(&mut a.packets))
            .unwrap_or_default()
    }

    /// Pixel layout of the frames handed out.
    pub fn output_layout(&self) -> PixelLayout {
        self.converter.layout()
    }

    /// Size of the frames handed out (the destination size, else the coded size).
    pub fn output_size(&self) -> (u32, u32) {
        self.converter
            .output_size(self.params.width, self.params.height)
    }

    /// Presentation position of the frame [`Decoder::next_frame`] returns next.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Packets or frames the decoder rejected as corrupt so far (skipped, as ffmpeg does).
    pub fn decode_errors(&self) -> u64 {
        self.decode_errors
    }

    /// Frames decoded so far, including those decoded and dropped while seeking (a measure
    /// of what random access costs).
    pub fn frames_decoded(&self) -> u64 {
        self.frames_decoded
    }

    /// An encoder configuration inheriting this stream's parameters
    /// ([`EncoderConfig::from_params`]), sized for the frames this decoder hands out.
    #[must_use]
    pub fn encoder_config(&self) -> EncoderConfig {
        let (w, h) = self.output_size();
        let mut config = EncoderConfig::from_params(&self.params);
        config.width = w;
        config.height = h;
        config.source_width = w;
        config.source_height = h;
        config
    }

    /// The next frame in presentation order; `None` at the end of the stream.
    ///
    /// A local file that is cut short or damaged ends with [`CodecError::Damaged`] once
    /// the frames of every complete packet before the damage are out.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, CodecError> {
        let raw = match self.peeked.take() {
            Some(r) => r,
            None => match self.decode_raw()? {
                Some(r) => r,
                None => return Ok(None),
            },
        };
        let (width, height, data) = self.converter.convert(&raw.frame)?;
        let frame = Frame {
            index: self.position,
            pts: raw.pts,
            time_base: self.src.time_base,
            key: raw.key,
            width,
            height,
            layout: self.converter.layout(),
            data,
        };
        self.position += 1;
        Ok(Some(frame))
    }

    /// An iterator over the remaining frames; it ends after the first error.
    pub fn frames(&mut self) -> Frames<'_> {
        Frames {
            decoder: self,
            failed: false,
        }
    }

    /// Reads every packet of the input once (demuxing only, no decoding) to index its frames,
    /// then returns to the current position. Makes the frame count exact and measures the GOP
    /// size and max B-frames in [`Decoder::params`]. Done once; later calls return the index.
    ///
    /// Reads the whole input: do not call it on a live stream.
    pub fn build_index(&mut self) -> Result<&FrameIndex, CodecError> {
        if self.index.is_none() {
            let resume = self.position;
            // Indexing reads video packets only; returning to `resume` re-reads audio that
            // may already be queued (or taken).
            if let Some(a) = &mut self.audio {
                a.resume();
            }
            self.src.rewind()?;
            let mut packets = Vec::new();
            loop {
                let p = match self.src.read_packet() {
                    Ok(Some(p)) => p,
                    Ok(None) => break,
                    // The index ends at the damage; decoding reports it when it gets there.
                    Err(CodecError::Damaged { .. }) => break,
                    Err(e) => return Err(e),
                };
                packets.push(Scanned {
                    pts: p.pts(),
                    dts: p.dts(),
                    key: p.is_key(),
                });
            }
            let index = FrameIndex::from_packets(packets, self.frame_ticks);
            self.apply_index(&index);
            let len = index.len() as u64;
            self.index = Some(index);
            self.src.rewind()?;
            self.reset_decoder();
            self.position = 0;
            if resume >= len {
                self.position = resume;
                self.input_done = true;
                self.decoder_done = true;
            } else if resume > 0 {
                self.seek_to(resume, SeekAudio::Resume)?;
            }
        }
        match &self.index {
            Some(index) => Ok(index),
            None => Err(CodecError::NotSeekable {
                url: self.src.url.clone(),
                reason: "the input could not be indexed",
            }),
        }
    }

    /// Returns up to `count` frames starting at frame `index` (presentation order, from 0);
    /// fewer at the end of the stream. Exact: the first frame returned is frame `index` of a
    /// sequential decode. Decoding continues from there with [`Decoder::next_frame`].
    ///
    /// With audio selected, the queued audio is dropped and the queue then holds the audio
    /// from this frame's time on (see [Audio](Decoder#audio)).
    pub fn extract_frame(&mut self, index: u64, count: usize) -> Result<Vec<Frame>, CodecError> {
        self.seek_to(index, SeekAudio::Seek)?;
        let mut out = Vec::with_capacity(count.min(1024));
        while out.len() < count {
            match self.next_frame()? {
                Some(f) => out.push(f),
                None => break,
            }
        }
        Ok(out)
    }

    /// Like [`Decoder::extract_frame`], starting at the frame shown at `seconds` from the first
    /// frame (the last frame whose timestamp is not after that time).
    pub fn extract_frame_by_time(
        &mut self,
        seconds: f64,
        count: usize,
    ) -> Result<Vec<Frame>, CodecError> {
        let index = self.resolve(Position::Seconds(seconds))?;
        self.extract_frame(index, count)
    }

    /// The next group of pictures: a key frame and the frames after it up to the next key
    /// frame, in presentation order; `None` after the last one.
    ///
    /// Successive calls partition the stream: every frame is in exactly one GOP (B-frames shown
    /// before a key frame belong to the GOP before it). The GOP sequence is independent of
    /// [`Decoder::extract_frame`] calls in between; [`Decoder::reset_gop_position`] moves it.
    pub fn extract_gop(&mut self) -> Result<Option<Vec<Frame>>, CodecError> {
        if self.gop_cursor != self.position {
            let len = self.build_index()?.len() as u64;
            if self.gop_cursor >= len {
                return Ok(None);
            }
            self.seek_to(self.gop_cursor, SeekAudio::Seek)?;
        }
        let Some(first) = self.next_frame()? else {
            return Ok(None);
        };
        let mut gop = vec![first];
        loop {
            if self.peeked.is_none() {
                self.peeked = self.decode_raw()?;
            }
            match &self.peeked {
                None => break,
                Some(r) if r.key => break,
                Some(_) => {}
            }
            match self.next_frame()? {
                Some(f) => gop.push(f),
                None => break,
            }
        }
        self.gop_cursor = self.position;
        Ok(Some(gop))
    }

    /// Makes the next [`Decoder::extract_gop`] return the GOP containing `at` (starting at the
    /// key frame at or before it).
    pub fn reset_gop_position(&mut self, at: Position) -> Result<(), CodecError> {
        let target = self.resolve(at)?;
        let start = self.build_index()?.key_frame_at_or_before(target);
        self.gop_cursor = start;
        Ok(())
    }

    /// Goes back to the first frame (and the first GOP).
    ///
    /// Queued audio packets stay queued; the audio is then queued again from the start of
    /// the input, so that every pass of a loop yields all of it (see [Audio](Decoder#audio)).
    pub fn rewind(&mut self) -> Result<(), CodecError> {
        self.gop_cursor = 0;
        match &mut self.audio {
            // Seeking to the first key frame positions the video exactly, but where the
            // demuxer puts the other streams is up to it (MPEG-TS lands near the start time,
            // possibly after the first packets). Reopening reads every stream from its first
            // packet again, as the first pass did.
            Some(a) => a.new_pass(),
            None if self.index.as_ref().is_some_and(|i| !i.is_empty()) => {
                return self.seek_to(0, SeekAudio::Seek);
            }
            None => {}
        }
        self.src.rewind()?;
        self.reset_decoder();
        self.position = 0;
        Ok(())
    }

    /// Frame number of a position, checked against the stream.
    fn resolve(&mut self, at: Position) -> Result<u64, CodecError> {
        let url = self.src.url.clone();
        let tb = self.src.time_base;
        let frame_ticks = self.frame_ticks;
        let index = self.build_index()?;
        let len = index.len() as u64;
        match at {
            Position::Frame(i) if i < len => Ok(i),
            Position::Frame(i) => Err(CodecError::FrameOutOfRange {
                url,
                index: i,
                frame_count: len,
            }),
            Position::Seconds(s) => {
                if !s.is_finite() || s < 0.0 {
                    return Err(CodecError::InvalidArgument {
                        what: "time",
                        reason: format!("{s} s: must be a finite number >= 0"),
                    });
                }
                let (Some(first), Some(last)) = (index.entries().first(), index.entries().last())
                else {
                    return Err(CodecError::TimeOutOfRange {
                        url,
                        seconds: s,
                        duration_s: 0.0,
                    });
                };
                let end = last.pts + frame_ticks;
                let ticks = (s * f64::from(tb.den) / f64::from(tb.num)).round();
                let target = first.pts.saturating_add(ticks.min(i64::MAX as f64) as i64);
                if target >= end {
                    return Err(CodecError::TimeOutOfRange {
                        url,
                        seconds: s,
                        duration_s: (end - first.pts) as f64 * tb.as_f64(),
                    });
                }
                Ok(index.position_at(target))
            }
        }
    }

    fn apply_index(&mut self, index: &FrameIndex) {
        self.params.frame_count = index.len() as u64;
        self.params.frame_count_source = FrameCountSource::Index;
        self.params.gop_size = index.gop_size();
        if let Some(b) = index.max_b_frames() {
            self.params.max_b_frames = Some(b);
        }
        if self.params.duration_s.is_none() && !index.is_empty() {
            let fps = self.params.best_frame_rate().as_f64();
            if fps > 0.0 {
                self.params.duration_s = Some(index.len() as f64 / fps);
            }
        }
    }

    /// Makes `target` the next frame [`Decoder::next_frame`] returns; `audio` says what
    /// happens to the audio queue.
    fn seek_to(&mut self, target: u64, audio: SeekAudio) -> Result<(), CodecError> {
        self.build_index()?;
        let Some(index) = self.index.as_ref() else {
            return Err(CodecError::NotSeekable {
                url: self.src.url.clone(),
                reason: "the input could not be indexed",
            });
        };
        let len = index.len() as u64;
        if target >= len {
            return Err(CodecError::FrameOutOfRange {
                url: self.src.url.clone(),
                index: target,
                frame_count: len,
            });
        }
        let target_time = index
            .has_timestamps()
            .then(|| (index.entries()[target as usize].pts, self.src.time_base));
        if let (SeekAudio::Seek, Some(a), Some(t)) = (audio, &mut self.audio, target_time) {
            a.trim(t);
        }
        if target == self.position {
            return Ok(());
        }
        if !index.has_timestamps() {
            // Without timestamps, count frames from the start (or from here).
            if target < self.position {
                self.audio_repositioned(audio, target_time);
                self.src.rewind()?;
                self.reset_decoder();
                self.position = 0;
            }
            return self.skip_to(target);
        }
        let entries = index.entries();
        let target_pts = entries[target as usize].pts;
        // Forward within the current GOP: just decode on.
        let forward_in_gop = target > self.position
            && !self.decoder_done
            && !entries[self.position as usize + 1..=target as usize]
                .iter()
                .any(|e| e.key);
        // Otherwise seek to the key frame before the target, by its decode timestamp; if the
        // demuxer lands late, try earlier key frames, and finally decode from the start. (By
        // dts: MPEG-TS then lands exactly on the key frame. The MP4 demuxer searches its index
        // before applying the edit-list shift of B-frame streams, so it lands one GOP early:
        // more decoding, never a wrong frame.)
        let candidates: Vec<i64> = entries[..=target as usize]
            .iter()
            .rev()
            .filter(|e| e.key)
            .take(3)
            .map(|e| e.dts.unwrap_or(e.pts))
            .collect();
        if forward_in_gop {
            return self.skip_to(target);
        }
        for ts in candidates {
            self.audio_repositioned(audio, target_time);
            if self.src.seek_before(ts).is_err() {
                break;
            }
            self.reset_decoder();
            if self.decode_until(target_pts)? {
                self.position = target;
                return Ok(());
            }
        }
        self.audio_repositioned(audio, target_time);
        self.src.rewind()?;
        self.reset_decoder();
        if self.decode_until(target_pts)? {
            self.position = target;
            return Ok(());
        }
        Err(CodecError::SeekMissed {
            url: self.src.url.clone(),
            reason: format!("frame {target} (pts {target_pts}) was not found when decoding"),
        })
    }

    /// Updates the audio queue before the input is repositioned for [`Decoder::seek_to`].
    fn audio_repositioned(&mut self, audio: SeekAudio, target_time: Option<(i64, Rational)>) {
        if let Some(a) = &mut self.audio {
            match audio {
                SeekAudio::Seek => a.restart(target_time),
                SeekAudio::Resume => a.resume(),
            }
        }
    }

    /// Decodes and drops frames until `target` is the next one.
    fn skip_to(&mut self, target: u64) -> Result<(), CodecError> {
        while self.position < target {
            let dropped = match self.peeked.take() {
                Some(r) => Some(r),
                None => self.decode_raw()?,
            };
            if dropped.is_none() {
                return Err(CodecError::SeekMissed {
                    url: self.src.url.clone(),
                    reason: format!(
                        "the stream ended at frame {} before frame {target}",
                        self.position
                    ),
                });
            }
            self.position += 1;
        }
        Ok(())
    }

    /// Decodes until the frame with `target_pts`; keeps it as the next frame and returns true.
    /// Returns false when a later frame (or a damaged one) comes first or the stream ends.
    fn decode_until(&mut self, target_pts: i64) -> Result<bool, CodecError> {
        while let Some(raw) = self.decode_raw()? {
            if raw.pts < target_pts {
                continue;
            }
            if raw.pts == target_pts && !raw.corrupt {
                self.peeked = Some(raw);
                return Ok(true);
            }
            return Ok(false);
        }
        Ok(false)
    }

    fn reset_decoder(&mut self) {
        self.decoder.flush();
        self.peeked = None;
        self.input_done = false;
        self.decoder_done = false;
        self.last_pts = None;
        self.damage = None;
    }

    /// The next decoded frame, with its timestamp; `None` when the stream is exhausted, or
    /// the input's damage once the frames before it are out.
    fn decode_raw(&mut self) -> Result<Option<RawFrame>, CodecError> {
        match self.decode_until_end()? {
            Some(frame) => Ok(Some(frame)),
            None => match self.damage.take() {
                Some(e) => Err(e),
                None => Ok(None),
            },
        }
    }

    fn decode_until_end(&mut self) -> Result<Option<RawFrame>, CodecError> {
        loop {
            if self.decoder_done {
                return Ok(None);
            }
            let mut f = frame::Video::empty();
            match self.decoder.receive_frame(&mut f) {
                Ok(()) => return Ok(Some(self.stamp(f))),
                Err(ff::Error::Eof) => {
                    self.decoder_done = true;
                    return Ok(None);
                }
                Err(e) if is_eagain(&e) => {
                    if self.input_done {
                        self.decoder_done = true;
                        return Ok(None);
                    }
                }
                Err(ff::Error::InvalidData) => {
                    self.decode_errors += 1;
                    continue;
                }
                Err(e) => {
                    return Err(CodecError::Decode {
                        url: self.src.url.clone(),
                        source: FfmpegError::new(e),
                    })
                }
            }
            self.feed()?;
        }
    }

    /// Sends the next video packet (or the end of stream) to the decoder, queueing the audio
    /// packets read before it.
    fn feed(&mut self) -> Result<(), CodecError> {
        let packet = loop {
            let read = match self.src.read_media() {
                Ok(read) => read,
                // A damaged input: drain the frames of the complete packets, then report it.
                Err(e @ CodecError::Damaged { .. }) => {
                    self.damage = Some(e);
                    break None;
                }
                Err(e) => return Err(e),
            };
            match read {
                Some(SourcePacket::Audio(packet)) => {
                    if let Some(a) = &mut self.audio {
                        a.push(packet);
                    }
                }
                Some(SourcePacket::Video(packet)) => break Some(packet),
                None => break None,
            }
        };
        match packet {
            Some(packet) => match self.decoder.send_packet(&packet) {
                Ok(()) => Ok(()),
                // A damaged packet: skip it, as ffmpeg does.
                Err(ff::Error::InvalidData) => {
                    self.decode_errors += 1;
                    Ok(())
                }
                Err(e) => Err(CodecError::Decode {
                    url: self.src.url.clone(),
                    source: FfmpegError::new(e),
                }),
            },
            None => {
                // Enter draining mode; an error here only means it already is draining.
                let _ = self.decoder.send_eof();
                self.input_done = true;
                Ok(())
            }
        }
    }

    fn stamp(&mut self, f: frame::Video) -> RawFrame {
        self.frames_decoded += 1;
        let pts = f.timestamp().or(f.pts()).unwrap_or_else(|| {
            self.last_pts
                .map_or(self.src.start_time, |p| p + self.frame_ticks)
        });
        self.last_pts = Some(pts);
        RawFrame {
            key: f.is_key(),
            corrupt: f.is_corrupt() || f.has_decode_errors(),
            frame: f,
            pts,
        }
    }
}

/// Iterator over a [`Decoder`]'s remaining frames (see [`Decoder::frames`]).
#[derive(Debug)]
pub struct Frames<'a> {
    decoder: &'a mut Decoder,
    failed: bool,
}

impl Iterator for Frames<'_> {
    type Item = Result<Frame, CodecError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match self.decoder.next_frame() {
            Ok(Some(f)) => Some(Ok(f)),
            Ok(None) => None,
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An AAC packet at 48 kHz: `n` frames of 1024 samples from 0.
    fn aac(n: i64) -> EncodedPacket {
        EncodedPacket {
            data: Bytes::from(vec![n as u8]),
            pts: n * 1024,
            dts: n * 1024,
            key: true,
            duration: 1024,
            time_base: Rational::new(1, 48_000),
        }
    }

    fn pts(q: &AudioQueue) -> Vec<i64> {
        q.packets.iter().map(|p| p.pts / 1024).collect()
    }

    #[test]
    fn ends_by_compares_across_time_bases() {
        let video = Rational::new(1, 90_000);
        // Packet 2 covers [2048, 3072) / 48000 s = [3840, 5760) / 90000 s.
        assert!(ends_by(&aac(2), (5760, video)));
        assert!(!ends_by(&aac(2), (5759, video)));
        let mut unknown = aac(2);
        unknown.duration = 0;
        assert!(ends_by(&unknown, (3841, video)));
        assert!(!ends_by(&unknown, (3840, video)));
    }

    #[test]
    fn queue_rules() {
        let mut q = AudioQueue::default();
        (0..5).for_each(|n| q.push(aac(n)));
        assert_eq!(pts(&q), [0, 1, 2, 3, 4]);
        // Repositioned to continue: packets up to the last queued are not queued again.
        q.resume();
        (2..7).for_each(|n| q.push(aac(n)));
        assert_eq!(pts(&q), [0, 1, 2, 3, 4, 5, 6]);
        // A new pass queues everything again and keeps what is there.
        q.new_pass();
        q.push(aac(0));
        assert_eq!(pts(&q), [0, 1, 2, 3, 4, 5, 6, 0]);
        // A seek to the frame shown at packet 3's start: the queue is emptied, packets that
        // end by then are dropped.
        let at_3 = (3 * 1024, Rational::new(1, 48_000));
        q.restart(Some(at_3));
        (1..6).for_each(|n| q.push(aac(n)));
        assert_eq!(pts(&q), [3, 4, 5]);
        // Forward without repositioning: what ended by the target goes.
        q.trim((5 * 1024, Rational::new(1, 48_000)));
        assert_eq!(pts(&q), [5]);
        q.push(aac(6));
        assert_eq!(pts(&q), [5, 6]);
    }
}
