//! RTP packetization of H.264 (RFC 3550, RFC 6184 packetization-mode=1).
