//! The sans-IO publish session: the shared RTMP connection step, then `createStream`,
//! `publish` and FLV tags over rml_rtmp's `ClientSession`.

use std::collections::VecDeque;
use std::fmt;
use std::time::Instant;

use bytes::Bytes;
use rml_rtmp::sessions::{ClientSession, ClientSessionEvent, ClientSessionResult, StreamMetadata};
use rml_rtmp::time::RtmpTimestamp;

use super::guard::{InputError, PeerInput};
use super::status::{RefusedStep, ServerStatus, TapEvent};
use crate::audio::{AudioFrame, AudioTrack};
use crate::h264::{nal_type, nal_unit_type, AccessUnit, AvcDecoderConfig, VideoTrack};
use crate::rtmp::connect::{connect_refused, ClientConnection, Received, StreamRequest};
use crate::rtmp::error::{RtmpError, Step};
use crate::rtmp::flv::{self, FlvError, FrameType, TagTimeline};
use crate::rtmp::flv_audio;
use crate::rtmp::options::RtmpOptions;
use crate::rtmp::url::RtmpUrl;
use crate::session::later;
use crate::session::{
    Chunks, Media, MediaError, PublisherStats, SessionCore, SessionEvent, Track, Transmit,
};
use crate::TimeBase;

/// Where a publish session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PublishState {
    /// C0/C1 sent, handshake under way.
    Handshaking,
    /// `connect` sent, waiting for the result.
    Connecting,
    /// `createStream`/`publish` sent, waiting for `NetStream.Publish.Start`.
    RequestingPublish,
    /// Publishing: [`RtmpPublisherCore::send`] is allowed.
    Publishing,
    /// `close` called: end of sequence, `deleteStream` and the end of our side of the
    /// connection are queued; waiting for the server to close its side.
    Closing,
    /// The session is over.
    Closed,
    /// The session failed; every call returns the error.
    Failed,
}

impl PublishState {
    /// The step this state belongs to (for errors and timeouts).
    pub fn step(self) -> Step {
        match self {
            PublishState::Handshaking => Step::Handshake,
            PublishState::Connecting => Step::Connect,
            PublishState::RequestingPublish => Step::Publish,
            PublishState::Publishing | PublishState::Failed => Step::Streaming,
            PublishState::Closing | PublishState::Closed => Step::Closing,
        }
    }
}

/// Something the server did that the driver or the user may want to know.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PublishEvent {
    /// The handshake finished; `connect` was queued.
    HandshakeDone,
    /// `NetConnection.Connect.Success`; `createStream` was queued.
    Connected,
    /// `NetStream.Publish.Start`: media may be sent. Metadata was queued.
    Publishing,
    /// A status the session does not act on (e.g. `NetStream.Unpublish.Success`).
    Status(ServerStatus),
    /// The server acknowledged receiving bytes (RTMP spec §5.4.3; the count as it sent it).
    Acknowledged {
        /// The sequence number the server sent.
        bytes: u32,
    },
    /// The server closed its side after ours: the session is over.
    Closed,
}

/// Counters of a publish session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PublishStats {
    /// Access units sent as NALU tags.
    pub frames: u64,
    /// Of those, key frames.
    pub key_frames: u64,
    /// AVC sequence headers sent (1, plus one per in-band parameter-set change).
    pub sequence_headers: u64,
    /// Bytes of FLV video tag bodies sent (headers and length prefixes included).
    pub video_bytes: u64,
    /// Audio frames sent as audio tags.
    pub audio_frames: u64,
    /// Bytes of FLV audio tag bodies sent (sequence headers included).
    pub audio_bytes: u64,
    /// AAC sequence headers sent.
    pub audio_sequence_headers: u64,
    /// Access-unit delimiter NAL units dropped.
    pub dropped_aud: u64,
    /// Access units that had nothing left to send (e.g. only an AUD).
    pub skipped_empty: u64,
    /// DTS of the first tag in milliseconds, after the negative-DTS shift.
    pub first_dts_ms: Option<i64>,
    /// DTS of the last tag in milliseconds, after the shift.
    pub last_dts_ms: Option<i64>,
    /// The last acknowledgement's sequence number from the server, if any.
    pub server_acknowledged: Option<u32>,
    /// Bytes reported written to the connection.
    pub bytes_written: u64,
    /// True when the server closed its side after `close`: it read everything we sent.
    pub closed_cleanly: bool,
}

/// The sans-IO RTMP publisher: bytes in ([`handle_input`](Self::handle_input)), bytes out
/// ([`poll_transmit`](Self::poll_transmit)), events out ([`poll_event`](Self::poll_event)),
/// media in ([`send`](Self::send)), [`close`](Self::close), and its own deadlines
/// ([`poll_timeout`](Self::poll_timeout), [`handle_timeout`](Self::handle_timeout)). No
/// sockets, no clock: every call takes `now`.
///
/// Flow: `new` queues C0+C1; the handshake's completion queues C2 and `connect` (with `app`
/// and `tcUrl`); `NetConnection.Connect.Success` queues Window Acknowledgement Size, Set Chunk
/// Size and `createStream`; its result queues `publish(key, "live")`; `NetStream.Publish.Start`
/// queues `@setDataFrame onMetaData` and raises [`PublishEvent::Publishing`]. The AVC sequence
/// header goes out right before the first frame, with that frame's timestamp. `close` queues
/// the AVC end of sequence, `deleteStream` and [`Transmit::Shutdown`]; the server closing its
/// side then ends the session ([`PublishEvent::Closed`]).
///
/// Timeouts: the handshake ([`RtmpOptions::handshake_timeout`]), each command round trip
/// ([`RtmpOptions::command_timeout`]), a write that makes no progress
/// ([`RtmpOptions::send_timeout`]) and the close ([`RtmpOptions::close_timeout`]).
///
/// Every timestamp given to rml_rtmp for media is explicit (tag timestamps from the access
/// units). rml_rtmp stamps its own command, control and metadata messages with its wall-clock
/// session time; those never share a chunk stream with video (csid 4 for video only), so
/// video timestamps stay exactly as computed here.
#[derive(Debug)]
pub struct RtmpPublisherCore {
    url: RtmpUrl,
    options: RtmpOptions,
    state: PublishState,
    conn: ClientConnection,
    /// The server's bytes on their way to `conn`: checked, and rml_rtmp's panics contained.
    input: PeerInput,
    transmit: VecDeque<Transmit>,
    queued: usize,
    /// Bytes queued or taken but not reported written.
    unwritten: usize,
    stall_since: Option<Instant>,
    /// The deadline of the current setup step or of the close.
    step_deadline: Option<Instant>,
    events: VecDeque<PublishEvent>,
    error: Option<RtmpError>,
    metadata: StreamMetadata,
    avc: Option<AvcDecoderConfig>,
    sequence_header_sent: bool,
    timeline: TagTimeline,
    audio: Option<AudioTrack>,
    audio_header_sent: bool,
    audio_timeline: TagTimeline,
    stats: PublishStats,
    last_status: Option<ServerStatus>,
}

impl RtmpPublisherCore {
    /// A session publishing `tracks` to `url`; C0+C1 are queued for transmission and the
    /// handshake's deadline starts at `now`.
    pub fn new(
        url: RtmpUrl,
        tracks: &[Track],
        options: &RtmpOptions,
        now: Instant,
    ) -> Result<RtmpPublisherCore, RtmpError> {
        options.validate()?;
        let video = tracks.iter().find_map(Track::video);
        let audio = tracks.iter().find_map(Track::audio).cloned();
        if video.is_none() && audio.is_none() {
            return Err(MediaError::NoTrack { kind: "video" }.into());
        }
        if let Some(a) = &audio {
            if flv_audio::sound_format(a.codec).is_none() {
                return Err(RtmpError::UnsupportedAudio {
                    url: url.redacted(),
                    codec: a.codec,
                });
            }
        }
        let avc = match video {
            Some(track) => {
                let avc = track.avc_config().map_err(|source| RtmpError::Track {
                    url: url.redacted(),
                    source,
                })?;
                // Check now that the record serialises, so a bad track fails before
                // connecting.
                flv::sequence_header_body(&avc).map_err(|e| match e {
                    FlvError::Config(source) => RtmpError::Track {
                        url: url.redacted(),
                        source,
                    },
                    other => RtmpError::InvalidAccessUnit(other),
                })?;
                Some(avc)
            }
            None => None,
        };
        let (conn, c0c1) =
            ClientConnection::start(&url, &options.flash_version, Some(options.chunk_size))?;
        let mut core = RtmpPublisherCore {
            metadata: metadata_for(video, audio.as_ref()),
            url,
            options: options.clone(),
            state: PublishState::Handshaking,
            conn,
            input: PeerInput::default(),
            transmit: VecDeque::new(),
            queued: 0,
            unwritten: 0,
            stall_since: None,
            step_deadline: Some(later(now, options.handshake_timeout)),
            events: VecDeque::new(),
            error: None,
            avc,
            sequence_header_sent: false,
            timeline: TagTimeline::new(),
            audio,
            audio_header_sent: false,
            audio_timeline: TagTimeline::new(),
            stats: PublishStats::default(),
            last_status: None,
        };
        core.queue(now, c0c1);
        Ok(core)
    }

    /// Starts the handshake's deadline again at `now` (when the connection opened after the
    /// core was made).
    pub fn restart_handshake_deadline(&mut self, now: Instant) {
        if self.state == PublishState::Handshaking {
            self.step_deadline = Some(later(now, self.options.handshake_timeout));
        }
    }

    /// The URL (prints without credentials).
    pub fn url(&self) -> &RtmpUrl {
        &self.url
    }

    /// The current state.
    pub fn state(&self) -> PublishState {
        self.state
    }

    /// The error the session failed with, if it failed.
    pub fn error(&self) -> Option<&RtmpError> {
        self.error.as_ref()
    }

    /// Counters so far.
    pub fn stats(&self) -> &PublishStats {
        &self.stats
    }

    /// The `onMetaData` properties sent when publishing starts.
    pub fn metadata(&self) -> &StreamMetadata {
        &self.metadata
    }

    /// Bytes queued for transmission and not yet taken by [`poll_transmit`](Self::poll_transmit).
    pub fn queued_bytes(&self) -> usize {
        self.queued
    }

    /// True when publishing and the queue is under [`RtmpOptions::max_queued_bytes`] (one
    /// access unit is always accepted into an empty queue, whatever its size).
    pub fn can_send(&self) -> bool {
        self.state == PublishState::Publishing
            && (self.queued == 0 || self.queued < self.options.max_queued_bytes)
    }

    /// The next thing to write to the server. Every byte must be written, in order.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        let t = self.transmit.pop_front()?;
        self.queued = self.queued.saturating_sub(t.len());
        Some(t)
    }

    /// The next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<PublishEvent> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if matches!(self.state, PublishState::Closed | PublishState::Failed) {
            return None;
        }
        let stall = self
            .stall_since
            .map(|t| later(t, self.options.send_timeout));
        match (stall, self.step_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Handles the deadlines: a setup step or the close that did not finish, or a write that
    /// made no progress for [`RtmpOptions::send_timeout`] (the server stopped reading).
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), RtmpError> {
        self.check_usable()?;
        if matches!(self.state, PublishState::Closed) {
            return Ok(());
        }
        if self.state == PublishState::Closing && self.step_deadline.is_some_and(|t| now >= t) {
            let what = if self.unwritten > 0 {
                format!(
                    "{} bytes were still unwritten (the server stopped reading)",
                    self.unwritten
                )
            } else {
                "it did not close the connection after deleteStream".to_string()
            };
            let e = RtmpError::CloseNotConfirmed {
                url: self.url.redacted(),
                after: self.options.close_timeout,
                what,
            };
            return Err(self.fail_with(e));
        }
        if self
            .stall_since
            .is_some_and(|t| now >= later(t, self.options.send_timeout))
        {
            let e = RtmpError::Timeout {
                url: self.url.redacted(),
                step: self.state.step(),
                after: self.options.send_timeout,
            };
            return Err(self.fail_with(e));
        }
        if self.step_deadline.is_some_and(|t| now >= t) {
            let after = match self.state {
                PublishState::Handshaking => self.options.handshake_timeout,
                _ => self.options.command_timeout,
            };
            let e = RtmpError::Timeout {
                url: self.url.redacted(),
                step: self.state.step(),
                after,
            };
            return Err(self.fail_with(e));
        }
        Ok(())
    }

    /// `bytes` more of the transmits were written to the connection.
    pub fn handle_written(&mut self, now: Instant, bytes: usize) {
        self.unwritten = self.unwritten.saturating_sub(bytes);
        self.stats.bytes_written += bytes as u64;
        self.stall_since = (self.unwritten > 0).then_some(now);
    }

    /// The server closed the connection: the end of a session being closed once everything
    /// was written, an error otherwise.
    pub fn handle_eof(&mut self, now: Instant) -> Result<(), RtmpError> {
        let _ = now;
        self.check_usable()?;
        match self.state {
            // The server cannot have read what we did not write yet (the end of sequence,
            // deleteStream): its close then confirms nothing, and the tail is lost.
            PublishState::Closing if self.unwritten > 0 => {
                let e = RtmpError::CloseNotConfirmed {
                    url: self.url.redacted(),
                    after: self.options.close_timeout,
                    what: format!(
                        "it closed the connection with {} bytes still unwritten",
                        self.unwritten
                    ),
                };
                Err(self.fail_with(e))
            }
            PublishState::Closing => {
                self.state = PublishState::Closed;
                self.step_deadline = None;
                self.stats.closed_cleanly = true;
                self.events.push_back(PublishEvent::Closed);
                Ok(())
            }
            PublishState::Closed => Ok(()),
            state => {
                let e = RtmpError::ConnectionClosed {
                    url: self.url.redacted(),
                    step: state.step(),
                };
                Err(self.fail_with(e))
            }
        }
    }

    /// Marks the session failed (a socket error or a timeout seen by the driver).
    pub fn fail(&mut self, error: RtmpError) {
        self.fail_with(error);
    }

    fn fail_with(&mut self, error: RtmpError) -> RtmpError {
        let e = self.error.get_or_insert(error).clone();
        self.state = PublishState::Failed;
        self.step_deadline = None;
        self.stall_since = None;
        e
    }

    /// Processes bytes received from the server (any split: partial chunks are buffered).
    pub fn handle_input(&mut self, now: Instant, data: &[u8]) -> Result<(), RtmpError> {
        self.check_usable()?;
        let result = self.handle_input_inner(now, data);
        if let Err(e) = &result {
            self.fail_with(e.clone());
        }
        result
    }

    /// Sends one access unit as an FLV NALU tag (after the sequence header when needed).
    ///
    /// Access-unit delimiters are dropped. In-band SPS/PPS stay in the tag; when they differ
    /// from the current ones a new sequence header goes out first. Errors about the access unit
    /// itself ([`RtmpError::InvalidAccessUnit`]) leave the session unchanged.
    pub fn send(&mut self, now: Instant, au: &AccessUnit) -> Result<(), RtmpError> {
        self.check_usable()?;
        if self.state != PublishState::Publishing {
            return Err(RtmpError::InvalidState(state_name(self.state)));
        }
        let mut nalus: Vec<Bytes> = Vec::with_capacity(au.nalus.len());
        let mut dropped_aud = 0;
        let (mut sps, mut pps) = (None, None);
        let mut idr = false;
        for nal in au.nalus.iter().filter(|n| !n.is_empty()) {
            match nal_unit_type(nal) {
                nal_type::AUD => {
                    dropped_aud += 1;
                    continue;
                }
                nal_type::SPS => sps = sps.or(Some(nal)),
                nal_type::PPS => pps = pps.or(Some(nal)),
                nal_type::IDR => idr = true,
                _ => {}
            }
            nalus.push(nal.clone());
        }
        self.stats.dropped_aud += dropped_aud;
        if nalus.is_empty() {
            self.stats.skipped_empty += 1;
            return Ok(());
        }
        let Some(current) = self.avc.as_ref() else {
            return Err(MediaError::NoTrack { kind: "video" }.into());
        };
        let new_config = changed_config(current, sps, pps)?;
        self.timeline.share_shift(self.audio_timeline.shift_ms());
        let time = self
            .timeline
            .next(au.dts_in(TimeBase::MILLIS), au.pts_in(TimeBase::MILLIS))?;
        let frame = if au.key || idr {
            FrameType::Key
        } else {
            FrameType::Inter
        };
        let body = flv::nalu_body(frame, time.composition_time_ms, &nalus)?;
        if let Some(config) = new_config {
            self.avc = Some(config);
            self.sequence_header_sent = false;
        }
        if !self.sequence_header_sent {
            let Some(avc) = self.avc.as_ref() else {
                return Err(MediaError::NoTrack { kind: "video" }.into());
            };
            let header = flv::sequence_header_body(avc)?;
            self.publish(now, header, time.timestamp, false)?;
            self.sequence_header_sent = true;
            self.stats.sequence_headers += 1;
        }
        self.publish(now, body, time.timestamp, false)?;
        self.stats.frames += 1;
        if frame == FrameType::Key {
            self.stats.key_frames += 1;
        }
        self.stats.first_dts_ms.get_or_insert(time.dts_ms);
        self.stats.last_dts_ms = Some(time.dts_ms);
        Ok(())
    }

    /// Queues one audio frame as an FLV audio tag (FLV spec E.4.2.1), after the AAC sequence
    /// header the first time, stamped with its pts in milliseconds on the stream's timeline
    /// (the negative-DTS shift of the first unit of either track applies to both). Errors
    /// about the frame itself leave the session unchanged.
    pub fn send_audio(&mut self, now: Instant, frame: &AudioFrame) -> Result<(), RtmpError> {
        self.check_usable()?;
        if self.state != PublishState::Publishing {
            return Err(RtmpError::InvalidState(state_name(self.state)));
        }
        let Some(track) = self.audio.as_ref() else {
            return Err(MediaError::NoTrack { kind: "audio" }.into());
        };
        let Some(body) = flv_audio::audio_frame_body(track, &frame.data) else {
            return Err(RtmpError::UnsupportedAudio {
                url: self.url.redacted(),
                codec: track.codec,
            });
        };
        let header = if self.audio_header_sent {
            None
        } else {
            flv_audio::aac_sequence_header_body(track)
        };
        self.audio_timeline.share_shift(self.timeline.shift_ms());
        let ms = frame.pts_in(TimeBase::MILLIS);
        let time = self.audio_timeline.next(ms, ms)?;
        if let Some(header) = header {
            self.publish(now, header, time.timestamp, true)?;
            self.stats.audio_sequence_headers += 1;
        }
        self.audio_header_sent = true;
        self.publish(now, body, time.timestamp, true)?;
        self.stats.audio_frames += 1;
        Ok(())
    }

    /// Ends publishing: queues the AVC end-of-sequence tag (if any frame was sent),
    /// `deleteStream` (rml_rtmp's `stop_publishing`) and the end of our side of the
    /// connection, then waits up to [`RtmpOptions::close_timeout`] for the server to close
    /// its side (having read everything). Before publishing started it just ends the
    /// connection. Idempotent.
    pub fn close(&mut self, now: Instant) -> Result<(), RtmpError> {
        self.check_usable()?;
        if matches!(self.state, PublishState::Closing | PublishState::Closed) {
            return Ok(());
        }
        if self.state == PublishState::Publishing {
            if let (true, Some(last)) = (self.sequence_header_sent, self.timeline.last()) {
                self.publish(now, flv::end_of_sequence_body(), last.timestamp, false)?;
            }
            let results = self
                .conn
                .session_mut()
                .map(ClientSession::stop_publishing)
                .transpose()
                .map_err(|e| self.protocol(Step::Closing, e))?
                .unwrap_or_default();
            for r in results {
                if let ClientSessionResult::OutboundResponse(p) = r {
                    self.queue(now, p.bytes);
                }
            }
        }
        self.push(now, Transmit::Shutdown);
        self.state = PublishState::Closing;
        self.step_deadline = Some(later(now, self.options.close_timeout));
        Ok(())
    }

    fn check_usable(&self) -> Result<(), RtmpError> {
        match &self.error {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    fn queue(&mut self, now: Instant, bytes: Vec<u8>) {
        if !bytes.is_empty() {
            self.push(now, Transmit::Stream(Chunks::bytes(Bytes::from(bytes))));
        }
    }

    fn push(&mut self, now: Instant, t: Transmit) {
        let len = t.len();
        self.queued += len;
        if len > 0 {
            self.unwritten += len;
            self.stall_since.get_or_insert(now);
        }
        self.transmit.push_back(t);
    }

    fn protocol(&self, step: Step, e: impl fmt::Display) -> RtmpError {
        RtmpError::Protocol {
            url: self.url.redacted(),
            step,
            reason: e.to_string(),
        }
    }

    /// Queues one audio or video message. Never droppable: we do not drop packets, and a
    /// droppable packet forces rml_rtmp to send the next chunk header in full (type 0). Audio
    /// goes on its own chunk stream (rml_rtmp: csid 5 for type 8, 4 for video), so neither
    /// disturbs the other's header compression.
    fn publish(
        &mut self,
        now: Instant,
        body: Bytes,
        timestamp: u32,
        audio: bool,
    ) -> Result<(), RtmpError> {
        let len = body.len() as u64;
        let session = self
            .conn
            .session_mut()
            .ok_or(RtmpError::InvalidState("no session"))?;
        let timestamp = RtmpTimestamp::new(timestamp);
        let result = if audio {
            session.publish_audio_data(body, timestamp, false)
        } else {
            session.publish_video_data(body, timestamp, false)
        };
        match result {
            Ok(ClientSessionResult::OutboundResponse(p)) => {
                self.queue(now, p.bytes);
                if audio {
                    self.stats.audio_bytes += len;
                } else {
                    self.stats.video_bytes += len;
                }
                Ok(())
            }
            Ok(_) => Ok(()),
            Err(e) => {
                let err = self.protocol(Step::Streaming, e);
                Err(self.fail_with(err))
            }
        }
    }

    fn enter(&mut self, now: Instant, state: PublishState) {
        self.state = state;
        self.step_deadline = match state {
            PublishState::Connecting | PublishState::RequestingPublish => {
                Some(later(now, self.options.command_timeout))
            }
            _ => None,
        };
    }

    fn handle_input_inner(&mut self, now: Instant, data: &[u8]) -> Result<(), RtmpError> {
        if data.is_empty() {
            return Ok(());
        }
        let step = self.state.step();
        // After deleteStream nothing the server says matters (see `handle_received`): input
        // rml_rtmp cannot read is dropped then, as its errors are.
        let closing = matches!(self.state, PublishState::Closing | PublishState::Closed);
        let checked = match self.input.receive(&mut self.conn, data) {
            Ok(checked) => checked,
            Err(InputError::Malformed(_)) if closing => return Ok(()),
            Err(InputError::Start(e)) => return Err(e.into()),
            Err(InputError::Malformed(m)) => return Err(self.protocol(step, m)),
        };
        self.handle_received(now, step, checked.received)?;
        // A refused chunk ends the session once what came before it was acted on (rml_rtmp
        // never saw it; the connection cannot go on without it).
        match checked.refused {
            Some(m) if !closing => Err(self.protocol(self.state.step(), m)),
            _ => Ok(()),
        }
    }

    fn handle_received(
        &mut self,
        now: Instant,
        step: Step,
        received: Received,
    ) -> Result<(), RtmpError> {
        if received.handshake_done {
            self.events.push_back(PublishEvent::HandshakeDone);
            self.enter(now, PublishState::Connecting);
        }
        // Status replies first: a rejection explains the session error that may follow it.
        for tap in received.taps {
            if let TapEvent::Status(status) = tap {
                self.on_status(status)?;
            }
        }
        if matches!(self.state, PublishState::Closing | PublishState::Closed) {
            // After deleteStream nothing the server says matters; keep answering pings while
            // our side is still open. The answers go before the end of our side while it is
            // still queued, and are dropped once it was taken: nothing may follow a
            // `Transmit::Shutdown` (a write after it fails, and the driver would take that
            // failure for the server's close).
            for r in received.results.into_iter().flatten() {
                if let ClientSessionResult::OutboundResponse(p) = r {
                    if self.state == PublishState::Closing
                        && matches!(self.transmit.back(), Some(Transmit::Shutdown))
                    {
                        self.transmit.pop_back();
                        self.queue(now, p.bytes);
                        self.transmit.push_back(Transmit::Shutdown);
                    }
                }
            }
            return Ok(());
        }
        let results = received.results.map_err(|e| self.protocol(step, e))?;
        for r in results {
            self.handle_result(now, r)?;
        }
        Ok(())
    }

    fn on_status(&mut self, status: ServerStatus) -> Result<(), RtmpError> {
        let url = self.url.redacted();
        tracing::debug!(
            url = %url,
            code = %status.code,
            level = %status.level,
            description = %status.description,
            "RTMP status"
        );
        if status.is_error() {
            let step = match self.state {
                PublishState::Handshaking | PublishState::Connecting => RefusedStep::Connect,
                PublishState::RequestingPublish => RefusedStep::Publish,
                PublishState::Publishing => RefusedStep::Streaming,
                PublishState::Closing | PublishState::Closed | PublishState::Failed => {
                    return Ok(())
                }
            };
            return Err(status.refusal(url, step).into());
        }
        // The two successes are acted on through rml_rtmp's events.
        if status.code != "NetConnection.Connect.Success"
            && status.code != "NetStream.Publish.Start"
        {
            self.last_status = Some(status.clone());
            self.events.push_back(PublishEvent::Status(status));
        }
        Ok(())
    }

    fn handle_result(
        &mut self,
        now: Instant,
        result: ClientSessionResult,
    ) -> Result<(), RtmpError> {
        match result {
            ClientSessionResult::OutboundResponse(p) => self.queue(now, p.bytes),
            ClientSessionResult::RaisedEvent(event) => self.on_event(now, event)?,
            // Set Peer Bandwidth and the like: nothing a publisher must act on.
            ClientSessionResult::UnhandleableMessageReceived(_) => {}
        }
        Ok(())
    }

    fn on_event(&mut self, now: Instant, event: ClientSessionEvent) -> Result<(), RtmpError> {
        match event {
            ClientSessionEvent::ConnectionRequestAccepted => {
                tracing::debug!(url = %self.url, app = self.url.app(), "RTMP connect accepted");
                self.events.push_back(PublishEvent::Connected);
                let publish = StreamRequest::Publish(self.url.stream_key());
                let request = self
                    .conn
                    .request_stream(publish)
                    .map_err(|e| self.protocol(Step::Publish, e))?;
                self.enter(now, PublishState::RequestingPublish);
                self.handle_result(now, request)?;
            }
            ClientSessionEvent::ConnectionRequestRejected { description } => {
                return Err(connect_refused(&self.url, description).into());
            }
            ClientSessionEvent::PublishRequestAccepted => {
                tracing::debug!(url = %self.url, "RTMP publish accepted");
                let session = self
                    .conn
                    .session_mut()
                    .ok_or(RtmpError::InvalidState("no session"))?;
                let metadata = session
                    .publish_metadata(&self.metadata)
                    .map_err(|e| self.protocol(Step::Publish, e))?;
                self.enter(now, PublishState::Publishing);
                self.handle_result(now, metadata)?;
                self.events.push_back(PublishEvent::Publishing);
            }
            ClientSessionEvent::AcknowledgementReceived { bytes_received } => {
                self.stats.server_acknowledged = Some(bytes_received);
                self.events.push_back(PublishEvent::Acknowledged {
                    bytes: bytes_received,
                });
            }
            // onBWDone (nginx-rtmp, rml_rtmp's server) and other commands a publisher has no
            // use for; unknown transaction results (e.g. an `_error` to `publish`, which the
            // status reader has already turned into an error); status codes (read by the
            // status reader); pings answered inside rml_rtmp; playback events.
            _ => {}
        }
        Ok(())
    }
}

impl SessionCore for RtmpPublisherCore {
    type Error = RtmpError;
    type Info = ();

    fn handle_input(&mut self, now: Instant, data: &[u8]) -> Result<(), RtmpError> {
        RtmpPublisherCore::handle_input(self, now, data)
    }

    fn handle_eof(&mut self, now: Instant) -> Result<(), RtmpError> {
        RtmpPublisherCore::handle_eof(self, now)
    }

    fn handle_written(&mut self, now: Instant, bytes: usize) {
        RtmpPublisherCore::handle_written(self, now, bytes);
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), RtmpError> {
        RtmpPublisherCore::handle_timeout(self, now)
    }

    fn handle_io_error(
        &mut self,
        _now: Instant,
        during: &'static str,
        error: std::io::Error,
    ) -> RtmpError {
        let e = RtmpError::Io {
            url: self.url.redacted(),
            step: self.state.step(),
            during,
            source: std::sync::Arc::new(error),
        };
        self.fail_with(e)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        RtmpPublisherCore::poll_timeout(self)
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        RtmpPublisherCore::poll_transmit(self)
    }

    fn poll_event(&mut self) -> Option<SessionEvent> {
        loop {
            return match self.events.pop_front()? {
                PublishEvent::HandshakeDone | PublishEvent::Connected => continue,
                PublishEvent::Publishing => Some(SessionEvent::Publishing),
                PublishEvent::Status(s) => Some(SessionEvent::ServerStatus(s)),
                PublishEvent::Acknowledged { bytes } => Some(SessionEvent::Acknowledged(bytes)),
                PublishEvent::Closed => Some(SessionEvent::Closed),
            };
        }
    }

    fn can_send(&self) -> bool {
        RtmpPublisherCore::can_send(self)
    }

    fn send(&mut self, now: Instant, media: &Media) -> Result<(), RtmpError> {
        match media {
            Media::H264(au) => RtmpPublisherCore::send(self, now, au),
            Media::Audio(f) => RtmpPublisherCore::send_audio(self, now, f),
        }
    }

    fn close(&mut self, now: Instant) -> Result<(), RtmpError> {
        RtmpPublisherCore::close(self, now)
    }

    fn failure(&self) -> Option<&RtmpError> {
        self.error.as_ref()
    }

    fn info(&self) -> Option<()> {
        (self.state == PublishState::Publishing).then_some(())
    }

    fn publisher_stats(&self) -> PublisherStats {
        PublisherStats {
            frames: self.stats.frames,
            bytes: self.stats.video_bytes,
            audio_frames: self.stats.audio_frames,
            audio_bytes: self.stats.audio_bytes,
            bytes_written: self.stats.bytes_written,
            last_status: self.last_status.clone(),
            acknowledged: self.stats.server_acknowledged,
            protocol: crate::session::ProtocolStats::Rtmp(self.stats.clone()),
            ..PublisherStats::default()
        }
    }

    fn closed_error(&self) -> RtmpError {
        RtmpError::InvalidState("closed")
    }

    fn url(&self) -> String {
        self.url.redacted()
    }
}

/// A new decoder configuration when in-band SPS/PPS differ from the current ones.
fn changed_config(
    current: &AvcDecoderConfig,
    sps: Option<&Bytes>,
    pps: Option<&Bytes>,
) -> Result<Option<AvcDecoderConfig>, RtmpError> {
    let cur_sps = current.sps.first();
    let cur_pps = current.pps.first();
    let sps_changed = sps.is_some_and(|s| Some(s) != cur_sps);
    let pps_changed = pps.is_some_and(|p| Some(p) != cur_pps);
    if !sps_changed && !pps_changed {
        return Ok(None);
    }
    let (Some(s), Some(p)) = (sps.or(cur_sps), pps.or(cur_pps)) else {
        return Ok(None);
    };
    AvcDecoderConfig::from_parameter_sets(s, p)
        .map(Some)
        .map_err(|e| RtmpError::InvalidAccessUnit(FlvError::Config(e)))
}

fn state_name(state: PublishState) -> &'static str {
    match state {
        PublishState::Handshaking => "handshaking",
        PublishState::Connecting => "connecting",
        PublishState::RequestingPublish => "requesting to publish",
        PublishState::Publishing => "publishing",
        PublishState::Closing | PublishState::Closed => "closed",
        PublishState::Failed => "failed",
    }
}

/// `onMetaData` for the track (FLV spec E.5). `videodatarate` is in kilobits per second
/// there; the project keeps bit rates in bits per second, so it is `bitrate / 1000` rounded
/// to the nearest integer (rml_rtmp's field is an integer). (ffmpeg's FLV muxer divides by
/// 1024; the spec's "kilobits" and the rest of this project mean 1000.)
pub(crate) fn metadata_for(
    video: Option<&VideoTrack>,
    audio: Option<&AudioTrack>,
) -> StreamMetadata {
    let mut m = StreamMetadata::new();
    if let Some(track) = video {
        m.video_width = Some(track.width());
        m.video_height = Some(track.height());
        m.video_codec_id = Some(u32::from(flv::CODEC_ID_AVC));
        m.video_frame_rate = track
            .frame_rate
            .filter(|&(_, den)| den > 0)
            .map(|(num, den)| (f64::from(num) / f64::from(den)) as f32);
        m.video_bitrate_kbps = track.bitrate.map(kbps);
    }
    if let Some(track) = audio {
        // E.5: audiocodecid is the SoundFormat; audiosamplerate the real rate (the tags'
        // SoundRate cannot say 48 kHz); stereo; audiodatarate in kilobits per second.
        m.audio_codec_id = flv_audio::sound_format(track.codec).map(u32::from);
        m.audio_sample_rate = Some(track.sample_rate);
        m.audio_channels = Some(u32::from(track.channels));
        m.audio_is_stereo = Some(track.channels > 1);
        m.audio_bitrate_kbps = track.bitrate.map(kbps);
    }
    m.encoder = Some(
        video
            .and_then(|t| t.encoder.clone())
            .unwrap_or_else(|| "mpegcoder".to_string()),
    );
    m
}

/// Bits per second to kilobits per second, rounded to the nearest.
fn kbps(bps: u64) -> u32 {
    u32::try_from(bps.saturating_add(500) / 1000).unwrap_or(u32::MAX)
}
