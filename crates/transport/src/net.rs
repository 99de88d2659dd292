//! Opening the connection of a session: the one resolve-and-connect step of the RTSP and RTMP
//! publishers and pullers, bounded by one timeout, then the TLS handshake for `rtsps://` and
//! `rtmps://` ([`connect_stream`]), bounded by another.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};

use crate::session::SessionStream;
use crate::tls::{TlsFailure, TlsOptions, TlsSetupError};

/// The step of opening a connection that failed or timed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConnectStep {
    /// Resolving the host name.
    Resolve,
    /// Opening the TCP connection.
    Connect,
}

impl std::fmt::Display for ConnectStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ConnectStep::Resolve => "resolving the host",
            ConnectStep::Connect => "connecting",
        })
    }
}

/// Why a connection could not be opened. Every variant names the URL, credentials removed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The host name did not resolve.
    #[error("cannot resolve {host} (from {url})")]
    Resolve {
        /// The host name.
        host: String,
        /// The URL.
        url: String,
        /// The resolver's error.
        #[source]
        source: Arc<io::Error>,
    },
    /// The host name resolved to no address.
    #[error("{host} has no address (from {url})")]
    NoAddress {
        /// The host name.
        host: String,
        /// The URL.
        url: String,
    },
    /// Nothing listens on the port.
    #[error("cannot connect to {addr}: connection refused (from {url})")]
    Refused {
        /// The address that refused.
        addr: SocketAddr,
        /// The URL.
        url: String,
    },
    /// A step took longer than the connect timeout.
    #[error("timed out after {after:?} {step} ({url})")]
    Timeout {
        /// What timed out.
        step: ConnectStep,
        /// The limit.
        after: Duration,
        /// The URL.
        url: String,
    },
    /// The TLS handshake failed: [`TlsFailure`] says why (certificate, version, not a TLS
    /// server, no answer).
    #[error("TLS with {host} failed: {failure} ({url})")]
    Tls {
        /// The host name or address of the URL.
        host: String,
        /// The URL.
        url: String,
        /// Why.
        failure: TlsFailure,
    },
    /// The TLS settings cannot be used (a CA file that does not load, no trusted CA).
    #[error("{source} ({url})")]
    TlsSetup {
        /// The URL.
        url: String,
        /// Why.
        #[source]
        source: TlsSetupError,
    },
    /// Another socket error.
    #[error("cannot connect to {addr} (from {url})")]
    Io {
        /// The address tried last.
        addr: SocketAddr,
        /// The URL.
        url: String,
        /// The socket's error.
        #[source]
        source: Arc<io::Error>,
    },
}

impl ConnectError {
    /// True for a timeout (of the TCP connect or of the TLS handshake).
    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            ConnectError::Timeout { .. }
                | ConnectError::Tls {
                    failure: TlsFailure::Timeout(_),
                    ..
                }
        )
    }

    /// The TLS failure, if the handshake failed.
    pub fn tls_failure(&self) -> Option<&TlsFailure> {
        match self {
            ConnectError::Tls { failure, .. } => Some(failure),
            _ => None,
        }
    }
}

/// An open connection, TCP or TLS over TCP, with its addresses.
pub struct Connected {
    /// The byte stream.
    pub stream: Box<dyn SessionStream>,
    /// The server's address.
    pub peer: SocketAddr,
    /// Our address.
    pub local: SocketAddr,
    /// True when the stream is TLS: its writes may leave bytes in the TLS layer until flushed.
    pub tls: bool,
}

impl std::fmt::Debug for Connected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connected")
            .field("peer", &self.peer)
            .field("local", &self.local)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

/// Opens the connection to `host:port` ([`connect_tcp`], within `limit`), then, when `tls` is
/// given, runs the TLS handshake for `host` within another `limit`. The TLS settings are
/// checked before anything connects.
pub async fn connect_stream(
    host: &str,
    port: u16,
    url: &str,
    limit: Duration,
    tls: Option<&TlsOptions>,
) -> Result<Connected, ConnectError> {
    let config = match tls {
        Some(options) => {
            Some(
                options
                    .client_config()
                    .map_err(|source| ConnectError::TlsSetup {
                        url: url.to_string(),
                        source,
                    })?,
            )
        }
        None => None,
    };
    let tcp = connect_tcp(host, port, url, limit).await?;
    let addr_error = |addr, e| ConnectError::Io {
        addr,
        url: url.to_string(),
        source: Arc::new(e),
    };
    let unspecified = SocketAddr::from(([0, 0, 0, 0], port));
    let peer = tcp.peer_addr().map_err(|e| addr_error(unspecified, e))?;
    let local = tcp.local_addr().map_err(|e| addr_error(peer, e))?;
    let (stream, tls): (Box<dyn SessionStream>, bool) = match config {
        Some(config) => (
            Box::new(crate::tls::handshake(tcp, host, url, config, limit).await?),
            true,
        ),
        None => (Box::new(tcp), false),
    };
    Ok(Connected {
        stream,
        peer,
        local,
        tls,
    })
}

/// Resolves `host` and connects to the first address that accepts, all within `limit`; sets
/// `TCP_NODELAY` (media must leave as soon as it is written, not wait for delayed ACKs).
/// `url` (credentials removed) names the target in errors.
pub async fn connect_tcp(
    host: &str,
    port: u16,
    url: &str,
    limit: Duration,
) -> Result<TcpStream, ConnectError> {
    let deadline = Instant::from_std(crate::clock::now()) + limit;
    let addrs = resolve_until(host, port, url, limit, deadline).await?;
    let mut last = None;
    for addr in addrs {
        match timeout_at(deadline, TcpStream::connect(addr)).await {
            Err(_) => {
                return Err(ConnectError::Timeout {
                    step: ConnectStep::Connect,
                    after: limit,
                    url: url.to_string(),
                })
            }
            Ok(Ok(stream)) => {
                stream.set_nodelay(true).map_err(|e| ConnectError::Io {
                    addr,
                    url: url.to_string(),
                    source: Arc::new(e),
                })?;
                return Ok(stream);
            }
            Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
                last = Some(ConnectError::Refused {
                    addr,
                    url: url.to_string(),
                });
            }
            Ok(Err(e)) => {
                last = Some(ConnectError::Io {
                    addr,
                    url: url.to_string(),
                    source: Arc::new(e),
                })
            }
        }
    }
    Err(last.unwrap_or_else(|| ConnectError::NoAddress {
        host: host.to_string(),
        url: url.to_string(),
    }))
}

/// Resolves `host:port` within `limit`; an empty answer is [`ConnectError::NoAddress`].
pub async fn resolve(
    host: &str,
    port: u16,
    url: &str,
    limit: Duration,
) -> Result<Vec<SocketAddr>, ConnectError> {
    resolve_until(
        host,
        port,
        url,
        limit,
        Instant::from_std(crate::clock::now()) + limit,
    )
    .await
}

async fn resolve_until(
    host: &str,
    port: u16,
    url: &str,
    limit: Duration,
    deadline: Instant,
) -> Result<Vec<SocketAddr>, ConnectError> {
    match timeout_at(deadline, tokio::net::lookup_host((host, port))).await {
        Err(_) => Err(ConnectError::Timeout {
            step: ConnectStep::Resolve,
            after: limit,
            url: url.to_string(),
        }),
        Ok(Err(e)) => Err(ConnectError::Resolve {
            host: host.to_string(),
            url: url.to_string(),
            source: Arc::new(e),
        }),
        Ok(Ok(a)) => {
            let addrs: Vec<SocketAddr> = a.collect();
            if addrs.is_empty() {
                Err(ConnectError::NoAddress {
                    host: host.to_string(),
                    url: url.to_string(),
                })
            } else {
                Ok(addrs)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refused_and_unresolvable_are_told_apart() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        drop(listener);
        let e = connect_tcp("127.0.0.1", port, "rtsp://x", Duration::from_secs(2))
            .await
            .expect_err("nothing listens");
        assert!(matches!(e, ConnectError::Refused { .. }), "{e:?}");
        let e = connect_tcp(
            "no-such-host.invalid",
            1,
            "rtsp://x",
            Duration::from_secs(5),
        )
        .await
        .expect_err("does not resolve");
        assert!(
            matches!(
                e,
                ConnectError::Resolve { .. } | ConnectError::Timeout { .. }
            ),
            "{e:?}"
        );
        // The cause is the source, not repeated in the message.
        let text = e.to_string();
        if let Some(source) = std::error::Error::source(&e) {
            assert!(!text.contains(&source.to_string()), "{text}");
        }
    }
}
