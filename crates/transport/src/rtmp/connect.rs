//! The RTMP client's way in, shared by the publisher and the player: the handshake (RTMP spec
//! §5.2), then `connect` to the application with its `tcUrl` (§7.2.1.1), over rml_rtmp's
//! sans-IO `Handshake` and `ClientSession`, with the status reader beside the session.
//!
//! [`ClientConnection::receive`] turns the server's bytes into what the session made of them;
//! the cores decide what the replies mean for publishing or playing.

use std::fmt;

use rml_rtmp::chunk_io::Packet;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionResult, PublishRequestType,
};

use super::session::status::{StatusReader, TapEvent};
use super::session::{RefusedStep, ServerRefusal, ServerStatus};
use super::url::RtmpUrl;

/// Why an RTMP client session (publisher or player) could not start: the handshake or the
/// session's own setup failed. Every variant names the URL without credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RtmpStartError {
    /// The handshake bytes were not valid (RTMP spec §5.2).
    #[error("RTMP handshake with {url} failed: {reason}")]
    Handshake {
        /// The URL, credentials removed.
        url: String,
        /// rml_rtmp's description.
        reason: String,
    },
    /// The session could not be created or `connect` not sent.
    #[error("RTMP session with {url} could not start: {reason}")]
    Session {
        /// The URL, credentials removed.
        url: String,
        /// rml_rtmp's description.
        reason: String,
    },
}

/// What a session asks for once connected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StreamRequest {
    /// `publish` (live) of this stream key.
    Publish(String),
    /// `play` of this stream key.
    Play(String),
}

/// The refusal of `connect` that rml_rtmp reports with the description only (the status
/// reader normally catches it first, with the server's code).
pub(crate) fn connect_refused(url: &RtmpUrl, description: String) -> ServerRefusal {
    let status = ServerStatus {
        command: "_error".into(),
        description,
        ..ServerStatus::default()
    };
    status.refusal(url.redacted(), RefusedStep::Connect)
}

/// What one read of the server's bytes produced.
#[derive(Debug)]
pub(crate) struct Received {
    /// True when these bytes completed the handshake (and `connect` is among the results).
    pub(crate) handshake_done: bool,
    /// What the status reader saw: status replies, `_result`s, Stream EOF.
    pub(crate) taps: Vec<TapEvent>,
    /// What the session made of the bytes, in order (the handshake's reply first); `Err` when
    /// it could not parse them.
    pub(crate) results: Result<Vec<ClientSessionResult>, String>,
}

/// Handshake, session and status reader of one RTMP client connection.
pub(crate) struct ClientConnection {
    url: String,
    handshake: Option<Handshake>,
    session: Option<ClientSession>,
    config: ClientSessionConfig,
    app: String,
    reader: StatusReader,
}

impl fmt::Debug for ClientConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConnection")
            .field("app", &self.app)
            .field("handshaking", &self.handshake.is_some())
            .finish_non_exhaustive()
    }
}

impl ClientConnection {
    /// A connection to `url`'s application; returns it and C0+C1, the first bytes to send.
    /// `chunk_size` is announced with Set Chunk Size once connected (publishers send large
    /// messages; players keep the default).
    pub(crate) fn start(
        url: &RtmpUrl,
        flash_version: &str,
        chunk_size: Option<u32>,
    ) -> Result<(ClientConnection, Vec<u8>), RtmpStartError> {
        let mut config = ClientSessionConfig::new();
        config.flash_version = flash_version.to_string();
        config.tc_url = Some(url.tc_url());
        if let Some(size) = chunk_size {
            config.chunk_size = size;
        }
        let mut handshake = Handshake::new(PeerType::Client);
        let c0c1 =
            handshake
                .generate_outbound_p0_and_p1()
                .map_err(|e| RtmpStartError::Handshake {
                    url: url.redacted(),
                    reason: e.to_string(),
                })?;
        Ok((
            ClientConnection {
                url: url.redacted(),
                handshake: Some(handshake),
                session: None,
                config,
                app: url.app().to_string(),
                reader: StatusReader::new(),
            },
            c0c1,
        ))
    }

    /// The session, once the handshake completed.
    pub(crate) fn session_mut(&mut self) -> Option<&mut ClientSession> {
        self.session.as_mut()
    }

    /// Once `connect` was accepted: asks to publish or to play `stream_key` (rml_rtmp sends
    /// `createStream`, then `publish` or `play`, RTMP spec §7.2.1.3, §7.2.2).
    pub(crate) fn request_stream(
        &mut self,
        request: StreamRequest,
    ) -> Result<ClientSessionResult, String> {
        let session = self.session.as_mut().ok_or("no session")?;
        let result = match request {
            StreamRequest::Publish(key) => {
                session.request_publishing(key, PublishRequestType::Live)
            }
            StreamRequest::Play(key) => session.request_playback(key),
        };
        result.map_err(|e| e.to_string())
    }

    /// Feeds bytes from the server (any split).
    pub(crate) fn receive(&mut self, data: &[u8]) -> Result<Received, RtmpStartError> {
        let Some(handshake) = self.handshake.as_mut() else {
            return Ok(self.feed_session(data, Vec::new(), false));
        };
        let processed = handshake
            .process_bytes(data)
            .map_err(|e| RtmpStartError::Handshake {
                url: self.url.clone(),
                reason: e.to_string(),
            })?;
        match processed {
            HandshakeProcessResult::InProgress { response_bytes } => {
                Ok(self.feed_session(&[], vec![reply(response_bytes)], false))
            }
            HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes,
            } => {
                self.handshake = None;
                let started = ClientSession::new(self.config.clone()).and_then(|(mut s, r)| {
                    let connect = s.request_connection(self.app.clone())?;
                    Ok((s, r, connect))
                });
                let (session, initial, connect) = started.map_err(|e| RtmpStartError::Session {
                    url: self.url.clone(),
                    reason: e.to_string(),
                })?;
                self.session = Some(session);
                let mut results = vec![reply(response_bytes)];
                results.extend(initial);
                results.push(connect);
                Ok(self.feed_session(&remaining_bytes, results, true))
            }
        }
    }

    fn feed_session(
        &mut self,
        data: &[u8],
        mut results: Vec<ClientSessionResult>,
        handshake_done: bool,
    ) -> Received {
        if data.is_empty() {
            return Received {
                handshake_done,
                taps: Vec::new(),
                results: Ok(results),
            };
        }
        let taps = self.reader.feed(data);
        let fed = match self.session.as_mut() {
            Some(session) => session.handle_input(data).map_err(|e| e.to_string()),
            None => Err("no session".to_string()),
        };
        let results = fed.map(|more| {
            results.extend(more);
            results
        });
        Received {
            handshake_done,
            taps,
            results,
        }
    }
}

/// Bytes to send as a session result, so that they go out in order with the rest.
fn reply(bytes: Vec<u8>) -> ClientSessionResult {
    ClientSessionResult::OutboundResponse(Packet {
        bytes,
        can_be_dropped: false,
    })
}
