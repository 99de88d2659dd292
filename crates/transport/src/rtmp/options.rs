//! Options of the RTMP publisher.

use std::time::Duration;

use crate::options::{nonzero_durations, InvalidOption};

/// Options of an RTMP publish session. Start from [`RtmpOptions::default`] and change fields.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RtmpOptions {
    /// Resolving the host and opening the TCP connection (default 5 s).
    pub tcp_connect_timeout: Duration,
    /// The RTMP handshake (default 10 s).
    pub handshake_timeout: Duration,
    /// Each command round trip: `connect`, then `createStream` + `publish` (default 10 s each).
    pub command_timeout: Duration,
    /// How long queued bytes may wait without any being written, when the server does not
    /// read (default 10 s). After that the session fails with a timeout.
    pub send_timeout: Duration,
    /// `close`: writing what is queued, then waiting for the server to close its side
    /// (default 5 s). A close not confirmed within it is an error.
    pub close_timeout: Duration,
    /// Outgoing RTMP chunk size announced with Set Chunk Size after `connect` (RTMP spec
    /// §5.4.1; default 4096 bytes, the spec's initial size is 128). 1 ..= 16 777 215.
    pub chunk_size: u32,
    /// Send-queue high-water mark in bytes (default 1 MiB): `send` waits while more than this
    /// is queued and not yet written to the socket. One access unit is always accepted into
    /// an empty queue, whatever its size.
    pub max_queued_bytes: usize,
    /// `flashVer` sent in `connect` (default `FMLE/3.0 (compatible; mpegcoder)`, the form
    /// publishing encoders use).
    pub flash_version: String,
    /// Certificate checks of `rtmps://` connections (default: verified against the system's
    /// CAs); unused for `rtmp://`.
    pub tls: crate::tls::TlsOptions,
}

impl Default for RtmpOptions {
    fn default() -> Self {
        RtmpOptions {
            tcp_connect_timeout: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(10),
            command_timeout: Duration::from_secs(10),
            send_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(5),
            chunk_size: 4096,
            max_queued_bytes: 1 << 20,
            flash_version: "FMLE/3.0 (compatible; mpegcoder)".to_string(),
            tls: crate::tls::TlsOptions::default(),
        }
    }
}

impl RtmpOptions {
    /// Checks the values; the error names the option that cannot work.
    pub fn validate(&self) -> Result<(), InvalidOption> {
        // Set Chunk Size is 31 bits (§5.4.1), but a chunk never needs to be larger than the
        // largest message (24-bit length, §5.3.1.2); rml_rtmp rejects larger messages anyway.
        if !(1..=0xff_ffff).contains(&self.chunk_size) {
            return Err(InvalidOption::new(
                "chunk_size",
                format!("must be within 1 ..= 16777215 (got {})", self.chunk_size),
            ));
        }
        nonzero_durations(&[
            ("tcp_connect_timeout", self.tcp_connect_timeout),
            ("handshake_timeout", self.handshake_timeout),
            ("command_timeout", self.command_timeout),
            ("send_timeout", self.send_timeout),
            ("close_timeout", self.close_timeout),
        ])
    }

    /// The certificate checks of `rtmps://` connections.
    pub fn with_tls(mut self, tls: crate::tls::TlsOptions) -> Self {
        self.tls = tls;
        self
    }

    /// The limit for resolving the host and opening the TCP connection (and, for `rtmps://`,
    /// for the TLS handshake after it).
    pub fn with_tcp_connect_timeout(mut self, limit: Duration) -> Self {
        self.tcp_connect_timeout = limit;
        self
    }

    /// The limit for the RTMP handshake.
    pub fn with_handshake_timeout(mut self, limit: Duration) -> Self {
        self.handshake_timeout = limit;
        self
    }

    /// The limit for each command round trip (`connect`, `createStream` + `publish`).
    pub fn with_command_timeout(mut self, limit: Duration) -> Self {
        self.command_timeout = limit;
        self
    }

    /// How long a write may make no progress before the session fails.
    pub fn with_send_timeout(mut self, limit: Duration) -> Self {
        self.send_timeout = limit;
        self
    }

    /// The limit for `close` to be confirmed by the server.
    pub fn with_close_timeout(mut self, limit: Duration) -> Self {
        self.close_timeout = limit;
        self
    }

    /// The outgoing chunk size announced after `connect`.
    pub fn with_chunk_size(mut self, bytes: u32) -> Self {
        self.chunk_size = bytes;
        self
    }

    /// The send queue's high-water mark in bytes.
    pub fn with_max_queued_bytes(mut self, bytes: usize) -> Self {
        self.max_queued_bytes = bytes;
        self
    }

    /// The `flashVer` sent in `connect`.
    pub fn with_flash_version(mut self, flash_version: impl Into<String>) -> Self {
        self.flash_version = flash_version.into();
        self
    }
}
