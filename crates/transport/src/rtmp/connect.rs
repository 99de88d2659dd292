//! The RTMP client's way in, shared by the publisher and the player: the handshake (RTMP spec
//! §5.2), then `connect` to the application with its `tcUrl` (§7.2.1.1), over rml_rtmp's
//! sans-IO `Handshake` and `ClientSession`, with the status reader beside the session.
//!
//! [`ClientConnection::receive`] turns the server's bytes into what the session made of them;
//! the cores decide what the replies mean for publishing or playing.

use std::fmt;

use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{ClientSession, ClientSessionConfig, ClientSessionResult};

use super::session::status::{StatusReader, TapEvent};
use super::url::RtmpUrl;

/// Why the connection step failed (the cores turn it into their own error with the URL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ConnectFailure {
    /// The handshake bytes were not valid.
    Handshake(String),
    /// The session could not be created or `connect` not sent.
    Session(String),
}

/// What one read of the server's bytes produced.
#[derive(Debug)]
pub(crate) struct Received {
    /// Bytes to send back first (the handshake's reply; empty after it).
    pub(crate) reply: Vec<u8>,
    /// True when these bytes completed the handshake (and `connect` is among the results).
    pub(crate) handshake_done: bool,
    /// What the status reader saw: status replies, `_result`s, Stream EOF.
    pub(crate) taps: Vec<TapEvent>,
    /// What the session made of the bytes, in order; `Err` when it could not parse them.
    pub(crate) results: Result<Vec<ClientSessionResult>, String>,
}

/// Handshake, session and status reader of one RTMP client connection.
pub(crate) struct ClientConnection {
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
    ) -> Result<(ClientConnection, Vec<u8>), ConnectFailure> {
        let mut config = ClientSessionConfig::new();
        config.flash_version = flash_version.to_string();
        config.tc_url = Some(url.tc_url());
        if let Some(size) = chunk_size {
            config.chunk_size = size;
        }
        let mut handshake = Handshake::new(PeerType::Client);
        let c0c1 = handshake
            .generate_outbound_p0_and_p1()
            .map_err(|e| ConnectFailure::Handshake(e.to_string()))?;
        Ok((
            ClientConnection {
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

    /// Feeds bytes from the server (any split).
    pub(crate) fn receive(&mut self, data: &[u8]) -> Result<Received, ConnectFailure> {
        let Some(handshake) = self.handshake.as_mut() else {
            return Ok(self.feed_session(data, Vec::new(), Vec::new(), false));
        };
        match handshake
            .process_bytes(data)
            .map_err(|e| ConnectFailure::Handshake(e.to_string()))?
        {
            HandshakeProcessResult::InProgress { response_bytes } => Ok(Received {
                reply: response_bytes,
                handshake_done: false,
                taps: Vec::new(),
                results: Ok(Vec::new()),
            }),
            HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes,
            } => {
                self.handshake = None;
                let (mut session, mut results) = ClientSession::new(self.config.clone())
                    .map_err(|e| ConnectFailure::Session(e.to_string()))?;
                let connect = session
                    .request_connection(self.app.clone())
                    .map_err(|e| ConnectFailure::Session(e.to_string()))?;
                results.push(connect);
                self.session = Some(session);
                Ok(self.feed_session(&remaining_bytes, response_bytes, results, true))
            }
        }
    }

    fn feed_session(
        &mut self,
        data: &[u8],
        reply: Vec<u8>,
        mut results: Vec<ClientSessionResult>,
        handshake_done: bool,
    ) -> Received {
        if data.is_empty() {
            return Received {
                reply,
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
            reply,
            handshake_done,
            taps,
            results,
        }
    }
}
