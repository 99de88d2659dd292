//! The server's side of a plain RTMP handshake, shared by the RTMP fuzz targets.

/// RTMP handshake packet size (C1/S1/S2).
const PACKET: usize = 1536;

/// S0 (version 3), an all-zero S1 (no digest: the original handshake) and an S2 that the
/// client accepts without checking.
pub fn handshake_reply() -> Vec<u8> {
    let mut v = vec![0u8; 1 + 2 * PACKET];
    v[0] = 3;
    v
}
