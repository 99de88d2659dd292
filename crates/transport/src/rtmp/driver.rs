//! [`RtmpPublisher`]: an RTMP publish session driven by the one session driver ([`Session`]).

use super::error::RtmpError;
use super::options::RtmpOptions;
use super::session::RtmpPublisherCore;
use super::url::RtmpUrl;
use crate::net::connect_stream;
use crate::redact_url;
use crate::session::{Session, SessionIo, Track};

/// An RTMP publish session: a [`Session`] around an [`RtmpPublisherCore`]. See the
/// [module docs](super) for an example and the [session module](crate::session) for what
/// `send`, `close` and drop do.
pub type RtmpPublisher = Session<RtmpPublisherCore>;

impl Session<RtmpPublisherCore> {
    /// Connects to `url` (`rtmps://` inside TLS, [`RtmpOptions::tls`]), performs the handshake, `connect`, `createStream` and `publish`
    /// (live), and returns once the server answered `NetStream.Publish.Start`. The
    /// `onMetaData` for the tracks is sent then; the AVC sequence header goes out with the
    /// first frame. Must be called inside a tokio runtime.
    pub async fn connect(
        url: &str,
        tracks: &[Track],
        options: RtmpOptions,
    ) -> Result<RtmpPublisher, RtmpError> {
        let parsed = RtmpUrl::parse(url).map_err(|source| RtmpError::InvalidUrl {
            url: redact_url(url),
            source,
        })?;
        // Checks the options and the tracks before connecting.
        let mut core =
            RtmpPublisherCore::new(parsed.clone(), tracks, &options, crate::clock::now())?;
        let shown = parsed.redacted();
        let tls = parsed.is_tls().then_some(&options.tls);
        let conn = connect_stream(
            parsed.host(),
            parsed.port(),
            &shown,
            options.tcp_connect_timeout,
            tls,
        )
        .await?;
        // The handshake's deadline starts with the connection.
        core.restart_handshake_deadline(crate::clock::now());
        Session::start(core, SessionIo::connected(conn, Vec::new()), tracks).await
    }
}
