//! RTSP 1.0 (RFC 2326) publishing with ANNOUNCE / SETUP / RECORD.
