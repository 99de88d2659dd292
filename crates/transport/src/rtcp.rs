//! RTCP sender reports, BYE, and receiver-report parsing (RFC 3550 §6).
