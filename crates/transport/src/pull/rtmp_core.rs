//! The sans-IO RTMP play session: rml_rtmp's `Handshake` and `ClientSession`, a status reader,
//! FLV video tags turned into access units and FLV audio tags into audio frames.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rml_rtmp::sessions::{ClientSession, ClientSessionEvent, ClientSessionResult, StreamMetadata};

use super::error::{PullError, PullStep};
use super::flv_parse::{
    parse_audio_tag, parse_video_tag, AudioTagBody, FlvParseError, TimestampExtender, VideoTagBody,
};
use super::PullOptions;
use crate::audio::{AudioCodec, AudioFrame, AudioTrack};
use crate::h264::{nal_type, nal_unit_type, AccessUnit, AvcDecoderConfig, VideoTrack};
use crate::rtmp::connect::{connect_refused, ClientConnection, Received, StreamRequest};
use crate::rtmp::session::guard::{message_type_name, InputError, PeerInput};
use crate::rtmp::session::status::TapEvent;
use crate::rtmp::url::RtmpUrl;
use crate::rtmp::{RefusedStep, ServerStatus};
use crate::session::later;
use crate::TimeBase;

/// `flashVer` sent in `connect`: the form players send (publishers send `FMLE/…`).
const FLASH_VERSION: &str = "LNX 9,0,124,2";

/// Status codes that end playback (RTMP spec §7.2.2 `onStatus`; the `UnpublishNotify` that
/// nginx-rtmp, SRS and Wowza send to players when the publisher leaves).
const END_CODES: &[&str] = &[
    "NetStream.Play.UnpublishNotify",
    "NetStream.Play.Stop",
    "NetStream.Play.Complete",
];

/// Where an RTMP play session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PlayState {
    /// C0/C1 sent, handshake under way.
    Handshaking,
    /// `connect` sent, waiting for its result.
    Connecting,
    /// `createStream` sent, waiting for its result.
    CreatingStream,
    /// `play` sent, waiting for `NetStream.Play.Start` or the first media.
    PlayRequested,
    /// Playing: media flows.
    Playing,
    /// The server ended playback (or the session was closed).
    Ended,
    /// The session failed; every call returns the error.
    Failed,
}

impl PlayState {
    /// The step this state belongs to (for errors and timeouts).
    pub fn step(self) -> PullStep {
        match self {
            PlayState::Handshaking => PullStep::Handshake,
            PlayState::Connecting => PullStep::Connect,
            PlayState::CreatingStream => PullStep::CreateStream,
            PlayState::PlayRequested => PullStep::RequestPlay,
            PlayState::Playing | PlayState::Ended | PlayState::Failed => PullStep::Streaming,
        }
    }
}

/// Something the play session produced.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum PlayEvent {
    /// The handshake finished; `connect` was queued.
    HandshakeDone,
    /// `NetConnection.Connect.Success`; `createStream` was queued.
    Connected,
    /// `createStream` succeeded; `play` was queued.
    PlayRequested,
    /// `NetStream.Play.Start` (or media arrived before it).
    PlayStarted,
    /// The server sent `onMetaData`.
    Metadata(StreamMetadata),
    /// A new or changed video track (from an AVC sequence header, or in-band SPS/PPS).
    Track(VideoTrack),
    /// One access unit: `dts` is the tag timestamp, `pts` = `dts` + composition time, in
    /// milliseconds ([`TimeBase::MILLIS`]) on an unbounded timeline.
    AccessUnit(AccessUnit),
    /// A new or changed audio track: from an AAC sequence header (its AudioSpecificConfig), or
    /// from the first MP3 / G.711 tag (or one whose codec, rate or channels differ).
    AudioTrack(AudioTrack),
    /// One audio frame of the current audio track, stamped with the tag timestamp in
    /// milliseconds ([`TimeBase::MILLIS`]) on the same unbounded timeline as the video.
    AudioFrame(AudioFrame),
    /// A status the session does not act on (e.g. `NetStream.Play.Reset`).
    Status(ServerStatus),
    /// The server ended playback (the status code or event that said so).
    EndOfStream(String),
}

/// Counters of a play session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PlayStats {
    /// Video messages received (all kinds).
    pub video_messages: u64,
    /// Audio messages received (all kinds).
    pub audio_messages: u64,
    /// Bytes of audio message bodies received.
    pub audio_bytes: u64,
    /// Audio frames produced.
    pub audio_frames: u64,
    /// AAC sequence headers received.
    pub audio_sequence_headers: u64,
    /// Audio tags in a format that is not handed out (ADPCM, Nellymoser, Speex, PCM…),
    /// skipped. [`PlayStats::unsupported_audio`] names the last one.
    pub audio_unsupported: u64,
    /// The `SoundFormat` name of the last unsupported audio tag.
    pub unsupported_audio: Option<&'static str>,
    /// Raw AAC frames dropped because no AAC sequence header had arrived yet.
    pub audio_without_config: u64,
    /// Audio tags that could not be parsed (truncated, unknown AAC packet type, an
    /// AudioSpecificConfig that does not parse), skipped.
    pub bad_audio_tags: u64,
    /// Audio frames dropped because their timestamp went back before the previous frame's.
    pub audio_backwards: u64,
    /// AVC sequence headers received.
    pub sequence_headers: u64,
    /// Access units produced.
    pub access_units: u64,
    /// Bytes of video message bodies received.
    pub video_bytes: u64,
    /// NALU tags dropped because no decoder configuration was known yet.
    pub without_config: u64,
    /// Video tags that could not be parsed and were skipped.
    pub bad_tags: u64,
    /// Why the last of [`PlayStats::bad_tags`] could not be parsed.
    pub last_bad_tag: Option<String>,
    /// NALU tags that carried no NAL unit, skipped.
    pub empty_tags: u64,
    /// Audio and video messages on another message stream than the one `play` created (some
    /// servers use stream 0), played like the others, as ffmpeg does.
    pub other_stream_media: u64,
    /// Data messages (RTMP spec §7.1.2), `onMetaData` included.
    pub data_messages: u64,
    /// Messages of a type the player does not read: shared objects (§7.1.3), aggregates
    /// (§7.1.6), unknown types.
    pub other_messages: u64,
    /// The message type id of the last of [`PlayStats::other_messages`].
    pub other_message_type: Option<u8>,
}

/// The sans-IO RTMP player: bytes in ([`handle_input`](Self::handle_input)), bytes out
/// ([`poll_transmit`](Self::poll_transmit)), events out ([`poll_event`](Self::poll_event)),
/// and its own deadlines ([`poll_timeout`](Self::poll_timeout),
/// [`handle_timeout`](Self::handle_timeout)). No sockets, no clocks: every call takes `now`.
///
/// Timeouts: each setup step (handshake, `connect`, `createStream`) within
/// [`PullOptions::setup_timeout`]; after `play`, video within [`PullOptions::idle_timeout`]
/// (a server may wait silently for a publisher), and then never a longer gap between access
/// units.
///
/// Flow: `new` queues C0+C1; the handshake's completion queues C2 and `connect` (with `app`
/// and `tcUrl`, RTMP spec §7.2.1.1); `NetConnection.Connect.Success` queues Window
/// Acknowledgement Size, Set Chunk Size and `createStream` (§7.2.1.3); its `_result` makes
/// rml_rtmp queue Set Buffer Length and `play(key)` (§7.2.2.1); `NetStream.Play.Start` or the
/// first media message means playing. Video messages are FLV video tag bodies (§7.1.5):
/// sequence headers set the track, NALU tags become [`AccessUnit`]s. Audio messages are FLV
/// audio tag bodies (§7.1.4, FLV spec v10.1 E.4.2.1): an AAC sequence header (or the first MP3
/// / G.711 tag) sets the audio track, frames become [`AudioFrame`]s on the video's timeline;
/// audio in other formats and malformed audio tags are counted ([`PlayStats`]) and skipped,
/// never an error. Media and `onMetaData` are taken from every message stream of the
/// connection once `play` was sent, as ffmpeg does: some servers send a played stream's media on
/// message stream 0 or on another id than the one `createStream` returned (rml_rtmp's session
/// drops those, so they come from the status reader, which sees every message).
///
/// When the idle timeout passes without a picture although video messages (or messages the
/// player cannot read) arrived, the error says what arrived and why none of it could be used
/// ([`PullError::NoUsableVideo`]).
///
/// Playback ends with `NetStream.Play.UnpublishNotify`, `NetStream.Play.Stop`,
/// `NetStream.Play.Complete`, or user control Stream EOF (§7.1.7); an error-level status
/// fails the session with the server's code and description.
#[derive(Debug)]
pub struct RtmpPlayCore {
    url: RtmpUrl,
    state: PlayState,
    conn: ClientConnection,
    /// The server's bytes on their way to `conn`: checked, and rml_rtmp's panics contained.
    input: PeerInput,
    /// The message stream `createStream` returned (RTMP spec §7.2.1.3).
    play_stream_id: Option<u32>,
    setup_timeout: Duration,
    idle_timeout: Duration,
    /// The deadline of the current setup step, or of the next video.
    deadline: Option<Instant>,
    saw_video: bool,
    transmit: VecDeque<Bytes>,
    events: VecDeque<PlayEvent>,
    error: Option<PullError>,
    config: Option<AvcDecoderConfig>,
    track: Option<VideoTrack>,
    metadata_frame_rate: Option<(u32, u32)>,
    audio_track: Option<AudioTrack>,
    /// The timestamp of the last audio frame handed out.
    last_audio_pts: Option<i64>,
    /// One timeline for video and audio: both kinds of tags are stamped on the same clock.
    timeline: TimestampExtender,
    stats: PlayStats,
}

impl RtmpPlayCore {
    /// A session playing `url`; C0+C1 are queued for transmission and the handshake's
    /// deadline starts at `now`.
    pub fn new(
        url: RtmpUrl,
        options: &PullOptions,
        now: Instant,
    ) -> Result<RtmpPlayCore, PullError> {
        options.validate()?;
        let (conn, c0c1) = ClientConnection::start(&url, FLASH_VERSION, None)?;
        let mut core = RtmpPlayCore {
            url,
            state: PlayState::Handshaking,
            conn,
            input: PeerInput::default(),
            play_stream_id: None,
            setup_timeout: options.setup_timeout,
            idle_timeout: options.idle_timeout,
            deadline: Some(later(now, options.setup_timeout)),
            saw_video: false,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            error: None,
            config: None,
            track: None,
            metadata_frame_rate: None,
            audio_track: None,
            last_audio_pts: None,
            timeline: TimestampExtender::new(),
            stats: PlayStats::default(),
        };
        core.queue(c0c1);
        Ok(core)
    }

    /// The URL (prints without credentials).
    pub fn url(&self) -> &RtmpUrl {
        &self.url
    }

    /// The current state.
    pub fn state(&self) -> PlayState {
        self.state
    }

    /// The error the session failed with, if it failed.
    pub fn error(&self) -> Option<&PullError> {
        self.error.as_ref()
    }

    /// The video track, once a sequence header (or in-band SPS/PPS) arrived.
    pub fn track(&self) -> Option<&VideoTrack> {
        self.track.as_ref()
    }

    /// The audio track, once an AAC sequence header (or the first MP3 / G.711 tag) arrived.
    pub fn audio_track(&self) -> Option<&AudioTrack> {
        self.audio_track.as_ref()
    }

    /// Counters so far.
    pub fn stats(&self) -> &PlayStats {
        &self.stats
    }

    /// The next bytes to write to the server. Every byte must be written, in order.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.transmit.pop_front()
    }

    /// The next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<PlayEvent> {
        self.events.pop_front()
    }

    /// Marks the session failed (e.g. by the driver on a socket error).
    pub fn fail(&mut self, error: PullError) {
        if self.error.is_none() {
            self.error = Some(error);
        }
        self.state = PlayState::Failed;
        self.deadline = None;
    }

    /// Starts the handshake's deadline again at `now` (when the connection opened after the
    /// core was made).
    pub fn restart_handshake_deadline(&mut self, now: Instant) {
        if self.state == PlayState::Handshaking {
            self.deadline = Some(later(now, self.setup_timeout));
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    /// Handles the deadline: a setup step that did not finish, or no video for the idle
    /// timeout ([`PullError::NoVideoReceived`], [`PullError::NoVideo`] when only audio came,
    /// [`PullError::NoUsableVideo`] when video messages came but none gave a picture,
    /// [`PullError::Stalled`] after video had flowed).
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), PullError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        if self.deadline.is_none_or(|t| now < t) {
            return Ok(());
        }
        let url = self.url.redacted();
        let e = match self.state {
            PlayState::PlayRequested | PlayState::Playing => {
                let after = self.idle_timeout;
                if self.saw_video {
                    PullError::Stalled { url, after }
                } else if let Some(arrived) = self.unusable_arrivals() {
                    PullError::NoUsableVideo {
                        url,
                        after,
                        arrived,
                    }
                } else if self.stats.audio_messages > 0 && self.stats.video_messages == 0 {
                    PullError::NoVideo {
                        url,
                        found: format!(
                            "only audio arrived within {after:?} ({})",
                            count(self.stats.audio_messages, "audio message")
                        ),
                    }
                } else {
                    PullError::NoVideoReceived { url, after }
                }
            }
            PlayState::Ended | PlayState::Failed => return Ok(()),
            state => PullError::Timeout {
                url,
                step: state.step(),
                after: self.setup_timeout,
            },
        };
        self.fail(e.clone());
        Err(e)
    }

    /// The server closed the connection: the end of the stream once playing started (several
    /// servers end a live stream that way), an error before.
    pub fn handle_eof(&mut self, now: Instant) -> Result<(), PullError> {
        let _ = now;
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        match self.state {
            // Ended by the server's status (`NetStream.Play.UnpublishNotify`, `…Stop`, stream
            // EOF): closing the connection afterwards is the normal end.
            PlayState::Ended | PlayState::Failed => Ok(()),
            PlayState::Playing => {
                // Closed without ending the stream first: a server that died or dropped us.
                // Only an explicit end is the end of the stream.
                let e = PullError::ConnectionClosed {
                    url: self.url.redacted(),
                    step: PullStep::Streaming,
                };
                self.fail(e.clone());
                Err(e)
            }
            state => {
                let e = PullError::ConnectionClosed {
                    url: self.url.redacted(),
                    step: state.step(),
                };
                self.fail(e.clone());
                Err(e)
            }
        }
    }

    /// Processes bytes received from the server (any split: partial chunks are buffered).
    pub fn handle_input(&mut self, now: Instant, data: &[u8]) -> Result<(), PullError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        let result = self.handle_input_inner(now, data);
        if let Err(e) = &result {
            self.fail(e.clone());
        }
        result
    }

    /// Moves to `state`, starting its deadline.
    fn enter(&mut self, now: Instant, state: PlayState) {
        self.state = state;
        self.deadline = match state {
            PlayState::Connecting | PlayState::CreatingStream => {
                Some(later(now, self.setup_timeout))
            }
            // After `play` the server may legitimately wait for a publisher.
            PlayState::PlayRequested | PlayState::Playing => Some(later(now, self.idle_timeout)),
            _ => None,
        };
    }

    /// Stops playing: queues `deleteStream` (rml_rtmp's `stop_playback`; also after the server
    /// ended playback, to release the stream). Idempotent.
    pub fn close(&mut self) {
        if matches!(
            self.state,
            PlayState::PlayRequested | PlayState::Playing | PlayState::Ended
        ) {
            if let Some(Ok(results)) = self.conn.session_mut().map(ClientSession::stop_playback) {
                for r in results {
                    if let ClientSessionResult::OutboundResponse(p) = r {
                        self.queue(p.bytes);
                    }
                }
            }
        }
        if self.state != PlayState::Failed {
            self.state = PlayState::Ended;
        }
        self.deadline = None;
    }

    fn queue(&mut self, bytes: Vec<u8>) {
        if !bytes.is_empty() {
            self.transmit.push_back(Bytes::from(bytes));
        }
    }

    fn protocol(&self, e: impl fmt::Display) -> PullError {
        PullError::Protocol {
            url: self.url.redacted(),
            step: self.state.step(),
            reason: e.to_string(),
        }
    }

    fn handle_input_inner(&mut self, now: Instant, data: &[u8]) -> Result<(), PullError> {
        if data.is_empty() {
            return Ok(());
        }
        let checked = match self.input.receive(&mut self.conn, data) {
            Ok(checked) => checked,
            Err(InputError::Start(e)) => return Err(e.into()),
            Err(InputError::Malformed(m)) => return Err(self.protocol(m)),
        };
        self.handle_received(now, checked.received)?;
        // A refused chunk ends the session once what came before it was acted on (rml_rtmp
        // never saw it; the connection cannot go on without it).
        match checked.refused {
            Some(m) => Err(self.protocol(m)),
            None => Ok(()),
        }
    }

    fn handle_received(&mut self, now: Instant, received: Received) -> Result<(), PullError> {
        if received.handshake_done {
            self.events.push_back(PlayEvent::HandshakeDone);
            self.enter(now, PlayState::Connecting);
        }
        // Rejections first: they explain the session error that may follow them. An end of
        // playback is applied after the media that came with it in the same bytes.
        let mut end = None;
        for event in received.taps {
            if let Some(reason) = self.on_tap(now, event)? {
                end.get_or_insert(reason);
            }
        }
        if self.state == PlayState::Ended {
            // Keep answering pings and acknowledging until the driver closes.
            for r in received.results.into_iter().flatten() {
                if let ClientSessionResult::OutboundResponse(p) = r {
                    self.queue(p.bytes);
                }
            }
            return Ok(());
        }
        let results = received.results.map_err(|e| self.protocol(e))?;
        for r in results {
            self.handle_result(now, r)?;
            if self.state == PlayState::Ended {
                break;
            }
        }
        if let Some(reason) = end {
            if self.state == PlayState::Playing {
                self.state = PlayState::Ended;
                self.deadline = None;
                self.events.push_back(PlayEvent::EndOfStream(reason));
            }
        }
        Ok(())
    }

    /// Acts on what the status reader saw; returns the reason when playback ended.
    fn on_tap(&mut self, now: Instant, event: TapEvent) -> Result<Option<String>, PullError> {
        match event {
            TapEvent::Result {
                transaction_id,
                stream_id,
            } => {
                // rml_rtmp numbers transactions from 1: `connect` is 1, `createStream` 2.
                // Any `_result` but connect's while creating the stream is createStream's;
                // rml_rtmp queues `play` when it processes it.
                if self.state == PlayState::CreatingStream && transaction_id != 1.0 {
                    self.play_stream_id = stream_id;
                    self.enter(now, PlayState::PlayRequested);
                    self.events.push_back(PlayEvent::PlayRequested);
                }
                Ok(None)
            }
            // Media and metadata of every message stream, once `play` was sent (rml_rtmp's
            // session itself refuses media before that).
            TapEvent::Media {
                video,
                stream_id,
                timestamp,
                data,
            } => {
                if self.accepts_media() {
                    self.note_stream(stream_id, video);
                    self.start_playing(now);
                    if video {
                        self.on_video(now, timestamp, data)?;
                    } else {
                        self.on_audio(timestamp, &data);
                    }
                }
                Ok(None)
            }
            TapEvent::Metadata { metadata, .. } => {
                if self.accepts_media() {
                    self.stats.data_messages += 1;
                    self.on_metadata(metadata);
                }
                Ok(None)
            }
            TapEvent::Data { .. } => {
                if self.accepts_media() {
                    self.stats.data_messages += 1;
                }
                Ok(None)
            }
            TapEvent::Other { type_id, .. } => {
                if self.accepts_media() {
                    self.stats.other_messages += 1;
                    self.stats.other_message_type = Some(type_id);
                }
                Ok(None)
            }
            TapEvent::StreamEof { .. } => Ok((self.state == PlayState::Playing)
                .then(|| "Stream EOF (user control event 1)".to_string())),
            TapEvent::Status(status) => self.on_status(status),
        }
    }

    fn on_status(&mut self, status: ServerStatus) -> Result<Option<String>, PullError> {
        let url = self.url.redacted();
        if status.is_error() {
            let step = match self.state {
                PlayState::Handshaking | PlayState::Connecting => RefusedStep::Connect,
                PlayState::CreatingStream | PlayState::PlayRequested => RefusedStep::Play,
                PlayState::Playing => RefusedStep::Streaming,
                PlayState::Ended | PlayState::Failed => return Ok(None),
            };
            return Err(status.refusal(url, step).into());
        }
        if END_CODES.contains(&status.code.as_str()) {
            return Ok(
                matches!(self.state, PlayState::Playing | PlayState::PlayRequested)
                    .then_some(status.code),
            );
        }
        // Connect success and Play.Start are acted on through rml_rtmp's events.
        if status.code != "NetConnection.Connect.Success" && status.code != "NetStream.Play.Start" {
            self.events.push_back(PlayEvent::Status(status));
        }
        Ok(None)
    }

    fn handle_result(
        &mut self,
        now: Instant,
        result: ClientSessionResult,
    ) -> Result<(), PullError> {
        match result {
            ClientSessionResult::OutboundResponse(p) => self.queue(p.bytes),
            ClientSessionResult::RaisedEvent(event) => self.on_event(now, event)?,
            // Set Peer Bandwidth, Abort and the like: nothing a player must act on.
            ClientSessionResult::UnhandleableMessageReceived(_) => {}
        }
        Ok(())
    }

    fn on_event(&mut self, now: Instant, event: ClientSessionEvent) -> Result<(), PullError> {
        match event {
            ClientSessionEvent::ConnectionRequestAccepted => {
                self.events.push_back(PlayEvent::Connected);
                let play = StreamRequest::Play(self.url.stream_key());
                self.enter(now, PlayState::CreatingStream);
                let request = self
                    .conn
                    .request_stream(play)
                    .map_err(|e| self.protocol(e))?;
                self.handle_result(now, request)?;
            }
            ClientSessionEvent::ConnectionRequestRejected { description } => {
                return Err(connect_refused(&self.url, description).into());
            }
            ClientSessionEvent::PlaybackRequestAccepted => self.start_playing(now),
            // Media and metadata come from the status reader, of every message stream (see
            // `on_tap`); rml_rtmp raises these only for the stream `play` created.
            ClientSessionEvent::StreamMetadataReceived { .. }
            | ClientSessionEvent::VideoDataReceived { .. }
            | ClientSessionEvent::AudioDataReceived { .. } => {}
            // onBWDone, |RtmpSampleAccess and other commands; results of transactions rml_rtmp
            // does not track; status codes (read by the status reader); acknowledgements.
            _ => {}
        }
        Ok(())
    }

    /// True once `play` was sent and until playback ended.
    fn accepts_media(&self) -> bool {
        matches!(self.state, PlayState::PlayRequested | PlayState::Playing)
    }

    /// Counts media on another message stream than `play`'s, and says so once.
    fn note_stream(&mut self, stream_id: u32, video: bool) {
        if self.play_stream_id.is_none_or(|id| id == stream_id) {
            return;
        }
        if self.stats.other_stream_media == 0 {
            tracing::debug!(
                url = %self.url,
                stream_id,
                play_stream_id = ?self.play_stream_id,
                kind = if video { "video" } else { "audio" },
                "RTMP media on another message stream than play's; playing it"
            );
        }
        self.stats.other_stream_media += 1;
    }

    fn on_metadata(&mut self, metadata: StreamMetadata) {
        self.metadata_frame_rate = metadata
            .video_frame_rate
            .filter(|f| f.is_finite() && *f > 0.0 && *f < 1000.0)
            .map(|f| ((f64::from(f) * 1000.0).round() as u32, 1000));
        if let (Some(track), Some((num, den))) = (self.track.as_mut(), self.metadata_frame_rate) {
            if track.frame_rate.is_none() {
                track.frame_rate = Some((num, den));
                let t = track.clone();
                self.events.push_back(PlayEvent::Track(t));
            }
        }
        self.events.push_back(PlayEvent::Metadata(metadata));
    }

    /// What arrived without giving a picture, when something did that could have: video
    /// messages other than sequence headers, or messages the player cannot read.
    fn unusable_arrivals(&self) -> Option<String> {
        let s = &self.stats;
        let mut video = Vec::new();
        if s.without_config > 0 {
            video.push(format!(
                "{} before any AVC sequence header",
                s.without_config
            ));
        }
        if s.bad_tags > 0 {
            let why = s.last_bad_tag.as_deref().unwrap_or("unknown");
            video.push(format!("{} unparseable (last: {why})", s.bad_tags));
        }
        if s.empty_tags > 0 {
            video.push(format!("{} without NAL units", s.empty_tags));
        }
        if video.is_empty() && s.other_messages == 0 {
            return None;
        }
        let mut parts = Vec::new();
        if s.video_messages > 0 {
            if s.sequence_headers > 0 {
                video.insert(0, count(s.sequence_headers, "AVC sequence header"));
            }
            parts.push(format!(
                "{} arrived but none gave a picture: {}",
                count(s.video_messages, "video message"),
                video.join(", ")
            ));
        } else {
            parts.push("no video message arrived".to_string());
        }
        if s.other_messages > 0 {
            let t = s.other_message_type.unwrap_or(0);
            parts.push(format!(
                "{} of a type this player does not read (last: type {t}, {})",
                count(s.other_messages, "message"),
                message_type_name(t)
            ));
        }
        if s.audio_messages > 0 {
            parts.push(count(s.audio_messages, "audio message"));
        }
        Some(parts.join("; "))
    }

    fn start_playing(&mut self, now: Instant) {
        if self.state == PlayState::PlayRequested || self.state == PlayState::CreatingStream {
            self.enter(now, PlayState::Playing);
            self.events.push_back(PlayEvent::PlayStarted);
        }
    }

    fn on_video(&mut self, now: Instant, timestamp: u32, data: Bytes) -> Result<(), PullError> {
        self.stats.video_messages += 1;
        self.stats.video_bytes += data.len() as u64;
        let body = match parse_video_tag(&data) {
            Ok(body) => body,
            // Without a decoder configuration nothing can be decoded: fail with the reason.
            Err(FlvParseError::Config(e)) if self.config.is_none() => {
                return Err(PullError::BadMedia {
                    url: self.url.redacted(),
                    reason: format!("invalid AVC sequence header: {e}"),
                })
            }
            Err(e) => {
                self.stats.bad_tags += 1;
                self.stats.last_bad_tag = Some(e.to_string());
                return Ok(());
            }
        };
        match body {
            VideoTagBody::SequenceHeader(config) => {
                self.stats.sequence_headers += 1;
                let sps = config.sps.first().cloned();
                let pps = config.pps.first().cloned();
                let (Some(sps), Some(pps)) = (sps, pps) else {
                    return Err(PullError::BadMedia {
                        url: self.url.redacted(),
                        reason: "AVC sequence header without SPS or PPS".into(),
                    });
                };
                self.config = Some(config);
                self.set_track(sps, pps)?;
            }
            VideoTagBody::Nalu {
                key,
                composition_time_ms,
                data,
            } => self.on_nalu(now, timestamp, key, composition_time_ms, &data)?,
            VideoTagBody::EndOfSequence | VideoTagBody::Command => {}
            VideoTagBody::OtherCodec { codec } => {
                return Err(PullError::NoVideo {
                    url: self.url.redacted(),
                    found: format!("video codec {codec}"),
                })
            }
        }
        Ok(())
    }

    fn on_nalu(
        &mut self,
        now: Instant,
        timestamp: u32,
        key: bool,
        composition_time_ms: i32,
        data: &Bytes,
    ) -> Result<(), PullError> {
        // FLV NALU tags use the record's length size; before any sequence header assume 4
        // (what every muxer writes) so in-band SPS/PPS can still set the track.
        let length_size = self.config.as_ref().map_or(4, |c| c.length_size);
        let dts = self.timeline.extend(timestamp);
        let pts = dts + i64::from(composition_time_ms);
        let mut au = match AccessUnit::from_length_prefixed(
            data,
            length_size,
            pts,
            dts,
            TimeBase::MILLIS,
            key,
        ) {
            Ok(au) => au,
            Err(e) => {
                self.stats.bad_tags += 1;
                self.stats.last_bad_tag = Some(e.to_string());
                return Ok(());
            }
        };
        au.key = key || au.has_idr();
        if au.nalus.is_empty() {
            self.stats.empty_tags += 1;
            return Ok(());
        }
        // In-band parameter sets that differ from the track's replace it.
        if au.has_parameter_sets() {
            let sps = au.nalus.iter().find(|n| nal_unit_type(n) == nal_type::SPS);
            let pps = au.nalus.iter().find(|n| nal_unit_type(n) == nal_type::PPS);
            if let (Some(sps), Some(pps)) = (sps.cloned(), pps.cloned()) {
                let same = self
                    .track
                    .as_ref()
                    .is_some_and(|t| t.sps == sps && t.pps == pps);
                if !same && self.set_track(sps, pps).is_ok() && self.config.is_none() {
                    self.config = self.track.as_ref().and_then(|t| t.avc_config().ok());
                }
            }
        }
        if self.track.is_none() {
            self.stats.without_config += 1;
            return Ok(());
        }
        self.stats.access_units += 1;
        self.saw_video = true;
        self.deadline = Some(later(now, self.idle_timeout));
        self.events.push_back(PlayEvent::AccessUnit(au));
        Ok(())
    }

    /// An audio message: an FLV audio tag body (FLV spec v10.1 E.4.2.1). Nothing in it ends
    /// the session: what cannot be used is counted and skipped, so a stream whose audio is
    /// damaged or in another format still plays its video.
    fn on_audio(&mut self, timestamp: u32, data: &Bytes) {
        self.stats.audio_messages += 1;
        self.stats.audio_bytes += data.len() as u64;
        // Every tag moves the shared timeline, like a video tag does, so that a wrap seen
        // first in audio is not mistaken for a jump by the next video tag.
        let pts = self.timeline.extend(timestamp);
        let frame = match parse_audio_tag(data) {
            Ok(AudioTagBody::AacSequenceHeader(config)) => {
                self.stats.audio_sequence_headers += 1;
                match AudioTrack::aac(config) {
                    Ok(track) => self.set_audio_track(track),
                    Err(e) => {
                        self.stats.bad_audio_tags += 1;
                        tracing::debug!(url = %self.url, error = %e, "unusable AAC sequence header");
                    }
                }
                return;
            }
            Ok(AudioTagBody::AacFrame(frame)) => {
                if self
                    .audio_track
                    .as_ref()
                    .is_none_or(|t| t.codec != AudioCodec::Aac)
                {
                    self.stats.audio_without_config += 1;
                    return;
                }
                frame
            }
            Ok(AudioTagBody::Frame {
                codec,
                sample_rate,
                channels,
                data,
            }) => {
                let same = self.audio_track.as_ref().is_some_and(|t| {
                    t.codec == codec && t.sample_rate == sample_rate && t.channels == channels
                });
                if !same {
                    match AudioTrack::new(codec, sample_rate, channels) {
                        Ok(track) => self.set_audio_track(track),
                        Err(_) => {
                            self.stats.bad_audio_tags += 1;
                            return;
                        }
                    }
                }
                data
            }
            Ok(AudioTagBody::Unsupported { name, .. }) => {
                if self.stats.audio_unsupported == 0 {
                    tracing::info!(url = %self.url, format = name, "skipping audio in an unsupported format");
                }
                self.stats.audio_unsupported += 1;
                self.stats.unsupported_audio = Some(name);
                return;
            }
            Err(e) => {
                self.stats.bad_audio_tags += 1;
                tracing::debug!(url = %self.url, error = %e, "skipping an audio tag");
                return;
            }
        };
        // Audio frames decode in order: one that goes back in time cannot be placed.
        if self.last_audio_pts.is_some_and(|last| pts < last) {
            self.stats.audio_backwards += 1;
            return;
        }
        self.last_audio_pts = Some(pts);
        self.stats.audio_frames += 1;
        self.events.push_back(PlayEvent::AudioFrame(AudioFrame::new(
            frame,
            pts,
            TimeBase::MILLIS,
        )));
    }

    fn set_audio_track(&mut self, track: AudioTrack) {
        if self.audio_track.as_ref() != Some(&track) {
            self.audio_track = Some(track.clone());
            self.events.push_back(PlayEvent::AudioTrack(track));
        }
    }

    fn set_track(&mut self, sps: Bytes, pps: Bytes) -> Result<(), PullError> {
        if self
            .track
            .as_ref()
            .is_some_and(|t| t.sps == sps && t.pps == pps)
        {
            return Ok(());
        }
        let mut track = VideoTrack::new(sps, pps).map_err(|e| PullError::BadMedia {
            url: self.url.redacted(),
            reason: format!("unusable parameter sets: {e}"),
        })?;
        if track.frame_rate.is_none() {
            track.frame_rate = self.metadata_frame_rate;
        }
        self.track = Some(track.clone());
        self.events.push_back(PlayEvent::Track(track));
        Ok(())
    }
}

/// `n thing` or `n things`.
fn count(n: u64, thing: &str) -> String {
    if n == 1 {
        format!("1 {thing}")
    } else {
        format!("{n} {thing}s")
    }
}
