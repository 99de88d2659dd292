//! [`RtspPublisher`]: an RTSP RECORD session driven by the one session driver
//! ([`Session`]): connect, bind the UDP ports when asked for, and hand the connection to the
//! driver task with an [`RtspPublisherCore`].

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::SystemTime;

use tokio::net::UdpSocket;

use super::core::{ConnectionInfo, Negotiated, RtspOptions, RtspPublisherCore};
use super::error::RtspError;
use super::url::RtspUrl;
use crate::net::connect_stream;
use crate::session::{Session, SessionIo, Track, UdpPair};
use crate::Transport;

/// Send buffer asked for the UDP RTP socket, so an access unit's burst fits.
const UDP_SEND_BUFFER: usize = 1 << 20;

/// Publishes to an RTSP server with ANNOUNCE / SETUP / RECORD (RFC 2326 §10), over TCP
/// interleaved or UDP: a [`Session`] around an [`RtspPublisherCore`]. See the
/// [session module](crate::session) for what `send`, `close` and drop do.
pub type RtspPublisher = Session<RtspPublisherCore>;

impl Session<RtspPublisherCore> {
    /// Connects to `url` (`rtsp[s]://[user:pass@]host[:port]/path`; `rtsps` runs RTSP and the
    /// interleaved RTP inside TLS, [`RtspOptions::tls`]), announces `tracks` and
    /// returns once the server accepted RECORD. Each network step is bounded by the timeouts
    /// in `options`. Must be called inside a tokio runtime.
    ///
    /// With [`Transport::Auto`], a server that took TCP in SETUP but answers the interleaved
    /// probe with error replies is left (the session is abandoned before any media) and
    /// asked again over UDP on a new connection.
    pub async fn connect(
        url: &str,
        tracks: &[Track],
        options: RtspOptions,
    ) -> Result<RtspPublisher, RtspError> {
        let auto = options.transport == Transport::Auto;
        match Self::connect_once(url, tracks, options.clone()).await {
            Err(RtspError::InterleavedRejected {
                status,
                reason,
                url: shown,
            }) if auto && !RtspUrl::parse(url).is_ok_and(|u| u.is_tls()) => {
                tracing::warn!(
                    "{shown} answered interleaved RTP with {status} {reason}: \
                     publishing over UDP instead"
                );
                Self::connect_once(url, tracks, options.with_transport(Transport::Udp)).await
            }
            r => r,
        }
    }

    async fn connect_once(
        url: &str,
        tracks: &[Track],
        options: RtspOptions,
    ) -> Result<RtspPublisher, RtspError> {
        let url = RtspUrl::parse(url)?;
        let shown = url.to_string();
        // RFC 7826 §19.2: rtsps secures the RTSP connection; media over UDP would need SRTP
        // (RFC 3711), which this publisher does not implement. Refused before connecting.
        if url.is_tls() && options.transport == Transport::Udp {
            return Err(RtspError::InvalidUrl {
                url: shown,
                reason: "rtsps:// carries RTP interleaved on the TLS connection: RTP over UDP \
                         would need SRTP, which is not supported (use --transport tcp)"
                    .into(),
            });
        }
        let tls = url.is_tls().then_some(&options.tls);
        let conn = connect_stream(
            &url.host(),
            url.port(),
            &shown,
            options.connect_timeout,
            tls,
        )
        .await?;
        let (peer, local) = (conn.peer, conn.local);
        // One even/odd port pair per track over UDP.
        let mut udp = Vec::new();
        let mut client_ports = Vec::new();
        // Auto binds them too, for a SETUP over UDP after a 461 (not over TLS: no SRTP).
        let udp_possible = match options.transport {
            Transport::Udp => true,
            Transport::Auto => !url.is_tls(),
            Transport::Tcp => false,
        };
        if udp_possible {
            let bind_err = |e| RtspError::io("binding UDP ports", &shown, e);
            // The core carries at most one track of each kind.
            let video = tracks.iter().any(|t| t.video().is_some());
            let audio = tracks.iter().any(|t| t.audio().is_some());
            for _ in 0..usize::from(video) + usize::from(audio) {
                let pair = bind_udp_pair(local.ip(), peer.ip())
                    .await
                    .map_err(bind_err)?;
                let rtp = pair.rtp.local_addr().map_err(bind_err)?.port();
                let rtcp = pair.rtcp.local_addr().map_err(bind_err)?.port();
                client_ports.push((rtp, rtcp));
                udp.push(pair);
            }
        }
        let info = ConnectionInfo {
            server_ip: peer.ip(),
            local_ip: local.ip(),
            client_ports,
            seed: rand::random(),
        };
        // The only clock reads: the core gets them as arguments.
        let core = RtspPublisherCore::new(
            url,
            tracks,
            options,
            info,
            crate::clock::now(),
            SystemTime::now(),
        )?;
        Session::start(core, SessionIo::connected(conn, udp), tracks).await
    }

    /// The session the server accepted.
    pub fn negotiated(&self) -> &Negotiated {
        self.info()
    }
}

/// Binds an even RTP port and the odd port above it for RTCP (RFC 3550 §11).
async fn bind_udp_pair(ip: IpAddr, server: IpAddr) -> io::Result<UdpPair> {
    for _ in 0..64 {
        let rtp = UdpSocket::bind(SocketAddr::new(ip, 0)).await?;
        let port = rtp.local_addr()?.port();
        if port % 2 != 0 || port == u16::MAX {
            continue;
        }
        if let Ok(rtcp) = UdpSocket::bind(SocketAddr::new(ip, port + 1)).await {
            // Best effort: a larger send buffer absorbs an access unit's burst.
            let _ = socket2::SockRef::from(&rtp).set_send_buffer_size(UDP_SEND_BUFFER);
            return Ok(UdpPair { rtp, rtcp, server });
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrInUse,
        "no free even/odd UDP port pair",
    ))
}
