//! The sans-IO publish session: rml_rtmp's `Handshake` and `ClientSession` plus FLV tags.

use std::collections::VecDeque;
use std::fmt;

use bytes::Bytes;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult,
    PublishRequestType, StreamMetadata,
};
use rml_rtmp::time::RtmpTimestamp;

use super::status::{ServerStatus, StatusReader, TapEvent};
use crate::h264::{nal_type, nal_unit_type, AccessUnit, AvcDecoderConfig, VideoTrack};
use crate::rtmp::error::{RtmpError, Step};
use crate::rtmp::flv::{self, FlvError, FrameType, TagTimeline};
use crate::rtmp::options::RtmpOptions;
use crate::rtmp::url::RtmpUrl;
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
    /// Publishing: [`PublisherCore::send`] is allowed.
    Publishing,
    /// `close` done: end of sequence and `deleteStream` queued.
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
            PublishState::Closed => Step::Closing,
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
    /// Bytes written to the socket (set by the driver; 0 for a bare core).
    pub bytes_written: u64,
    /// True when the server closed its side after `close` within the close timeout (set by
    /// the driver).
    pub closed_cleanly: bool,
}

/// The sans-IO RTMP publisher: bytes in ([`handle_input`](Self::handle_input)), bytes out
/// ([`poll_transmit`](Self::poll_transmit)), events out ([`poll_event`](Self::poll_event)),
/// media in ([`send`](Self::send)), [`close`](Self::close). No sockets, no clocks: timeouts
/// belong to the driver, which can read [`state`](Self::state).
///
/// Flow: `new` queues C0+C1; the handshake's completion queues C2 and `connect` (with `app`
/// and `tcUrl`); `NetConnection.Connect.Success` queues Window Acknowledgement Size, Set Chunk
/// Size and `createStream`; its result queues `publish(key, "live")`; `NetStream.Publish.Start`
/// queues `@setDataFrame onMetaData` and raises [`PublishEvent::Publishing`]. The AVC sequence
/// header goes out right before the first frame, with that frame's timestamp.
///
/// Every timestamp given to rml_rtmp for media is explicit (tag timestamps from the access
/// units). rml_rtmp stamps its own command, control and metadata messages with its wall-clock
/// session time; those never share a chunk stream with video (csid 4 for video only), so
/// video timestamps stay exactly as computed here.
pub struct PublisherCore {
    url: RtmpUrl,
    state: PublishState,
    handshake: Option<Handshake>,
    session: Option<ClientSession>,
    session_config: ClientSessionConfig,
    tap: StatusReader,
    transmit: VecDeque<Bytes>,
    queued: usize,
    events: VecDeque<PublishEvent>,
    error: Option<RtmpError>,
    metadata: StreamMetadata,
    avc: AvcDecoderConfig,
    sequence_header_sent: bool,
    timeline: TagTimeline,
    stats: PublishStats,
}

impl fmt::Debug for PublisherCore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublisherCore")
            .field("url", &self.url)
            .field("state", &self.state)
            .field("queued", &self.queued)
            .field("error", &self.error)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl PublisherCore {
    /// A session publishing `track` to `url`; C0+C1 are queued for transmission.
    pub fn new(
        url: RtmpUrl,
        track: &VideoTrack,
        options: &RtmpOptions,
    ) -> Result<PublisherCore, RtmpError> {
        options.validate().map_err(RtmpError::InvalidOptions)?;
        let avc = track.avc_config().map_err(|source| RtmpError::Track {
            url: url.redacted(),
            source,
        })?;
        // Check now that the record serialises, so a bad track fails before connecting.
        flv::sequence_header_body(&avc).map_err(|e| match e {
            FlvError::Config(source) => RtmpError::Track {
                url: url.redacted(),
                source,
            },
            other => RtmpError::InvalidAccessUnit(other),
        })?;
        let mut session_config = ClientSessionConfig::new();
        session_config.chunk_size = options.chunk_size;
        session_config.flash_version = options.flash_version.clone();
        session_config.tc_url = Some(url.tc_url());
        let mut handshake = Handshake::new(PeerType::Client);
        let c0c1 = handshake
            .generate_outbound_p0_and_p1()
            .map_err(|e| RtmpError::Handshake {
                url: url.redacted(),
                reason: e.to_string(),
            })?;
        let mut core = PublisherCore {
            metadata: metadata_for(track),
            url,
            state: PublishState::Handshaking,
            handshake: Some(handshake),
            session: None,
            session_config,
            tap: StatusReader::new(),
            transmit: VecDeque::new(),
            queued: 0,
            events: VecDeque::new(),
            error: None,
            avc,
            sequence_header_sent: false,
            timeline: TagTimeline::new(),
            stats: PublishStats::default(),
        };
        core.queue(c0c1);
        Ok(core)
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

    /// The next bytes to write to the server, in order. Every byte must be written, in order.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        let b = self.transmit.pop_front()?;
        self.queued -= b.len();
        Some(b)
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<PublishEvent> {
        self.events.pop_front()
    }

    /// Marks the session failed (e.g. by the driver on a socket error or timeout).
    pub fn fail(&mut self, error: RtmpError) {
        if self.error.is_none() {
            self.error = Some(error);
        }
        self.state = PublishState::Failed;
    }

    /// Processes bytes received from the server (any split: partial chunks are buffered).
    pub fn handle_input(&mut self, data: &[u8]) -> Result<(), RtmpError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        let result = self.handle_input_inner(data);
        if let Err(e) = &result {
            self.fail(e.clone());
        }
        result
    }

    /// Sends one access unit as an FLV NALU tag (after the sequence header when needed).
    ///
    /// Access-unit delimiters are dropped. In-band SPS/PPS stay in the tag; when they differ
    /// from the current ones a new sequence header goes out first. Errors about the access unit
    /// itself ([`RtmpError::InvalidAccessUnit`]) leave the session unchanged.
    pub fn send(&mut self, au: &AccessUnit) -> Result<(), RtmpError> {
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
        let new_config = self.changed_config(sps, pps)?;
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
            self.avc = config;
            self.sequence_header_sent = false;
        }
        if !self.sequence_header_sent {
            let header = flv::sequence_header_body(&self.avc)?;
            self.publish_video(header, time.timestamp)?;
            self.sequence_header_sent = true;
            self.stats.sequence_headers += 1;
        }
        self.publish_video(body, time.timestamp)?;
        self.stats.frames += 1;
        if frame == FrameType::Key {
            self.stats.key_frames += 1;
        }
        self.stats.first_dts_ms.get_or_insert(time.dts_ms);
        self.stats.last_dts_ms = Some(time.dts_ms);
        Ok(())
    }

    /// Ends publishing: queues the AVC end-of-sequence tag (if any frame was sent) and
    /// `deleteStream` (rml_rtmp's `stop_publishing`). The driver then flushes, shuts down its
    /// write side and drains the connection. Idempotent.
    pub fn close(&mut self) -> Result<(), RtmpError> {
        self.check_usable()?;
        if self.state == PublishState::Publishing {
            if let (true, Some(last)) = (self.sequence_header_sent, self.timeline.last()) {
                self.publish_video(flv::end_of_sequence_body(), last.timestamp)?;
            }
            let results = self
                .session
                .as_mut()
                .map(ClientSession::stop_publishing)
                .transpose()
                .map_err(|e| self.protocol(Step::Closing, e))?
                .unwrap_or_default();
            for r in results {
                if let ClientSessionResult::OutboundResponse(p) = r {
                    self.queue(p.bytes);
                }
            }
        }
        self.state = PublishState::Closed;
        Ok(())
    }

    fn check_usable(&self) -> Result<(), RtmpError> {
        match &self.error {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    fn queue(&mut self, bytes: Vec<u8>) {
        if !bytes.is_empty() {
            self.queued += bytes.len();
            self.transmit.push_back(Bytes::from(bytes));
        }
    }

    fn protocol(&self, step: Step, e: impl fmt::Display) -> RtmpError {
        RtmpError::Protocol {
            url: self.url.redacted(),
            step,
            reason: e.to_string(),
        }
    }

    fn publish_video(&mut self, body: Bytes, timestamp: u32) -> Result<(), RtmpError> {
        let len = body.len() as u64;
        let session = self
            .session
            .as_mut()
            .ok_or(RtmpError::InvalidState("no session"))?;
        // Never droppable: we do not drop packets, and a droppable packet forces rml_rtmp to
        // send the next chunk header in full (type 0).
        let result = session.publish_video_data(body, RtmpTimestamp::new(timestamp), false);
        match result {
            Ok(ClientSessionResult::OutboundResponse(p)) => {
                self.queue(p.bytes);
                self.stats.video_bytes += len;
                Ok(())
            }
            Ok(_) => Ok(()),
            Err(e) => {
                let err = self.protocol(Step::Streaming, e);
                self.fail(err.clone());
                Err(err)
            }
        }
    }

    /// A new decoder configuration when in-band SPS/PPS differ from the current ones.
    fn changed_config(
        &self,
        sps: Option<&Bytes>,
        pps: Option<&Bytes>,
    ) -> Result<Option<AvcDecoderConfig>, RtmpError> {
        let cur_sps = self.avc.sps.first();
        let cur_pps = self.avc.pps.first();
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

    fn handle_input_inner(&mut self, data: &[u8]) -> Result<(), RtmpError> {
        if data.is_empty() {
            return Ok(());
        }
        let Some(handshake) = self.handshake.as_mut() else {
            return self.feed_session(data);
        };
        let result = handshake
            .process_bytes(data)
            .map_err(|e| RtmpError::Handshake {
                url: self.url.redacted(),
                reason: e.to_string(),
            })?;
        match result {
            HandshakeProcessResult::InProgress { response_bytes } => {
                self.queue(response_bytes);
                Ok(())
            }
            HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes,
            } => {
                self.queue(response_bytes);
                self.handshake = None;
                self.events.push_back(PublishEvent::HandshakeDone);
                let (mut session, initial) = ClientSession::new(self.session_config.clone())
                    .map_err(|e| self.protocol(Step::Handshake, e))?;
                let connect = session
                    .request_connection(self.url.app().to_string())
                    .map_err(|e| self.protocol(Step::Connect, e))?;
                self.session = Some(session);
                self.state = PublishState::Connecting;
                for r in initial.into_iter().chain(std::iter::once(connect)) {
                    self.handle_result(r)?;
                }
                if remaining_bytes.is_empty() {
                    Ok(())
                } else {
                    self.feed_session(&remaining_bytes)
                }
            }
        }
    }

    fn feed_session(&mut self, data: &[u8]) -> Result<(), RtmpError> {
        // A publisher only needs the status replies.
        let statuses: Vec<ServerStatus> = self
            .tap
            .feed(data)
            .into_iter()
            .filter_map(|e| match e {
                TapEvent::Status(s) => Some(s),
                _ => None,
            })
            .collect();
        let step = self.state.step();
        let Some(session) = self.session.as_mut() else {
            return Err(RtmpError::InvalidState("no session"));
        };
        let results = session.handle_input(data);
        // Status replies first: a rejection explains the session error that may follow it.
        for status in statuses {
            self.on_status(status)?;
        }
        if self.state == PublishState::Closed {
            // After deleteStream nothing the server says matters; keep answering pings.
            for r in results.into_iter().flatten() {
                if let ClientSessionResult::OutboundResponse(p) = r {
                    self.queue(p.bytes);
                }
            }
            return Ok(());
        }
        let results = results.map_err(|e| self.protocol(step, e))?;
        for r in results {
            self.handle_result(r)?;
        }
        Ok(())
    }

    fn on_status(&mut self, status: ServerStatus) -> Result<(), RtmpError> {
        let url = self.url.redacted();
        if status.is_error() {
            let code = status.code_or_command();
            let description = status.description;
            return match self.state {
                PublishState::Handshaking | PublishState::Connecting => {
                    Err(RtmpError::ConnectRejected {
                        url,
                        code,
                        description,
                    })
                }
                PublishState::RequestingPublish => Err(RtmpError::PublishRejected {
                    url,
                    code,
                    description,
                }),
                PublishState::Publishing => Err(RtmpError::ServerError {
                    url,
                    code,
                    description,
                }),
                PublishState::Closed | PublishState::Failed => Ok(()),
            };
        }
        // The two successes are acted on through rml_rtmp's events.
        if status.code != "NetConnection.Connect.Success"
            && status.code != "NetStream.Publish.Start"
        {
            self.events.push_back(PublishEvent::Status(status));
        }
        Ok(())
    }

    fn handle_result(&mut self, result: ClientSessionResult) -> Result<(), RtmpError> {
        match result {
            ClientSessionResult::OutboundResponse(p) => self.queue(p.bytes),
            ClientSessionResult::RaisedEvent(event) => self.on_event(event)?,
            // Set Peer Bandwidth and the like: nothing a publisher must act on.
            ClientSessionResult::UnhandleableMessageReceived(_) => {}
        }
        Ok(())
    }

    fn on_event(&mut self, event: ClientSessionEvent) -> Result<(), RtmpError> {
        match event {
            ClientSessionEvent::ConnectionRequestAccepted => {
                self.events.push_back(PublishEvent::Connected);
                let key = self.url.stream_key();
                let session = self
                    .session
                    .as_mut()
                    .ok_or(RtmpError::InvalidState("no session"))?;
                let request = session
                    .request_publishing(key, PublishRequestType::Live)
                    .map_err(|e| self.protocol(Step::Publish, e))?;
                self.state = PublishState::RequestingPublish;
                self.handle_result(request)?;
            }
            ClientSessionEvent::ConnectionRequestRejected { description } => {
                // Normally caught with its code by the status reader first.
                return Err(RtmpError::ConnectRejected {
                    url: self.url.redacted(),
                    code: "_error".to_string(),
                    description,
                });
            }
            ClientSessionEvent::PublishRequestAccepted => {
                let session = self
                    .session
                    .as_mut()
                    .ok_or(RtmpError::InvalidState("no session"))?;
                let metadata = session
                    .publish_metadata(&self.metadata)
                    .map_err(|e| self.protocol(Step::Publish, e))?;
                self.state = PublishState::Publishing;
                self.handle_result(metadata)?;
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

fn state_name(state: PublishState) -> &'static str {
    match state {
        PublishState::Handshaking => "handshaking",
        PublishState::Connecting => "connecting",
        PublishState::RequestingPublish => "requesting to publish",
        PublishState::Publishing => "publishing",
        PublishState::Closed => "closed",
        PublishState::Failed => "failed",
    }
}

/// `onMetaData` for the track (FLV spec E.5). `videodatarate` is in kilobits per second
/// there; the project keeps bit rates in bits per second, so it is `bitrate / 1000` rounded
/// to the nearest integer (rml_rtmp's field is an integer). (ffmpeg's FLV muxer divides by
/// 1024; the spec's "kilobits" and the rest of this project mean 1000.)
pub(crate) fn metadata_for(track: &VideoTrack) -> StreamMetadata {
    let mut m = StreamMetadata::new();
    m.video_width = Some(track.width());
    m.video_height = Some(track.height());
    m.video_codec_id = Some(u32::from(flv::CODEC_ID_AVC));
    m.video_frame_rate = track
        .frame_rate
        .filter(|&(_, den)| den > 0)
        .map(|(num, den)| (f64::from(num) / f64::from(den)) as f32);
    m.video_bitrate_kbps = track
        .bitrate
        .map(|bps| u32::try_from(bps.saturating_add(500) / 1000).unwrap_or(u32::MAX));
    m.encoder = Some(
        track
            .encoder
            .clone()
            .unwrap_or_else(|| "mpegcoder".to_string()),
    );
    m
}
