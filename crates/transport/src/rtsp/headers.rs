//! The RTSP headers the publisher reads from replies: `Transport` (RFC 2326 §12.39),
//! `Session` (§12.37) and `Public` (§12.28 via RFC 2068 §14.35).

use std::time::Duration;

/// The parameters of a `Transport` header that matter to a RECORD client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransportHeader {
    /// The transport protocol spec, e.g. `RTP/AVP/TCP`.
    pub protocol: String,
    /// `interleaved=a-b`: the RTP and RTCP channels on the RTSP connection.
    pub interleaved: Option<(u8, u8)>,
    /// `client_port=a-b`.
    pub client_port: Option<(u16, u16)>,
    /// `server_port=a-b`: where RTP and RTCP go over UDP.
    pub server_port: Option<(u16, u16)>,
    /// `ssrc=`: the SSRC the server names for the stream.
    pub ssrc: Option<u32>,
    /// `source=`: the address the server sends from (informational).
    pub source: Option<String>,
    /// `mode=`, unquoted.
    pub mode: Option<String>,
}

impl TransportHeader {
    /// Parses the first transport of a `Transport` value (a server answers with one). Unknown
    /// parameters are ignored; a malformed known parameter gives `Err` naming it.
    pub fn parse(value: &str) -> Result<TransportHeader, &'static str> {
        let first = value.split(',').next().unwrap_or("").trim();
        let mut parts = first.split(';').map(str::trim);
        let protocol = parts.next().unwrap_or("").to_string();
        if !protocol.to_ascii_uppercase().starts_with("RTP/AVP") {
            return Err("transport is not RTP/AVP");
        }
        let mut t = TransportHeader {
            protocol,
            ..TransportHeader::default()
        };
        for p in parts {
            let (name, val) = match p.split_once('=') {
                Some((n, v)) => (n.trim(), v.trim()),
                None => (p, ""),
            };
            match name.to_ascii_lowercase().as_str() {
                "interleaved" => {
                    let (a, b) = parse_range::<u8>(val).ok_or("bad interleaved=")?;
                    t.interleaved = Some((a, b));
                }
                "client_port" => {
                    t.client_port = Some(parse_range::<u16>(val).ok_or("bad client_port=")?);
                }
                "server_port" => {
                    t.server_port = Some(parse_range::<u16>(val).ok_or("bad server_port=")?);
                }
                "ssrc" => {
                    // RFC 2326 §12.39: eight hexadecimal digits.
                    t.ssrc = Some(u32::from_str_radix(val, 16).map_err(|_| "bad ssrc=")?);
                }
                "source" => t.source = Some(val.to_string()),
                "mode" => t.mode = Some(val.trim_matches('"').to_string()),
                _ => {}
            }
        }
        Ok(t)
    }

    /// True when the transport runs over the RTSP connection.
    pub fn is_tcp(&self) -> bool {
        self.protocol.to_ascii_uppercase().ends_with("/TCP")
    }
}

/// A port or channel range `a-b`; a single value `a` means `a` and `a+1`.
fn parse_range<T>(s: &str) -> Option<(T, T)>
where
    T: std::str::FromStr + Copy + TryFrom<u32>,
    u32: From<T>,
{
    match s.split_once('-') {
        Some((a, b)) => Some((a.trim().parse().ok()?, b.trim().parse().ok()?)),
        None => {
            let a: T = s.trim().parse().ok()?;
            let b = T::try_from(u32::from(a) + 1).ok()?;
            Some((a, b))
        }
    }
}

/// A `Session` header: identifier and timeout (default when absent: the caller's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionHeader {
    /// The session identifier, sent back in later requests.
    pub id: String,
    /// `timeout=` in seconds, if given.
    pub timeout: Option<Duration>,
}

impl SessionHeader {
    /// Parses `id[;timeout=N]`. `None` for an empty identifier.
    pub fn parse(value: &str) -> Option<SessionHeader> {
        let mut parts = value.split(';').map(str::trim);
        let id = parts.next().unwrap_or("").to_string();
        if id.is_empty() {
            return None;
        }
        let mut timeout = None;
        for p in parts {
            if let Some((n, v)) = p.split_once('=') {
                if n.trim().eq_ignore_ascii_case("timeout") {
                    timeout = v
                        .trim()
                        .parse::<u64>()
                        .ok()
                        .filter(|s| *s > 0)
                        .map(Duration::from_secs);
                }
            }
        }
        Some(SessionHeader { id, timeout })
    }
}

/// True when a `Public` header value lists `method`.
pub fn public_lists(value: &str, method: &str) -> bool {
    value
        .split(',')
        .any(|m| m.trim().eq_ignore_ascii_case(method))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn transport_header_parameters() {
        let t = TransportHeader::parse(
            "RTP/AVP/UDP;unicast;client_port=5000-5001;server_port=6970-6971;ssrc=1A2b3C4d;\
             mode=\"RECORD\";source=10.0.0.1",
        )
        .unwrap();
        assert_eq!(t.client_port, Some((5000, 5001)));
        assert_eq!(t.server_port, Some((6970, 6971)));
        assert_eq!(t.ssrc, Some(0x1a2b_3c4d));
        assert_eq!(t.mode.as_deref(), Some("RECORD"));
        assert_eq!(t.source.as_deref(), Some("10.0.0.1"));
        assert!(!t.is_tcp());
        let t = TransportHeader::parse("RTP/AVP/TCP;unicast;interleaved=2-3").unwrap();
        assert_eq!(t.interleaved, Some((2, 3)));
        assert!(t.is_tcp());
        // A single value means the pair; the first of several transports is taken.
        let t =
            TransportHeader::parse("RTP/AVP;server_port=7000,RTP/AVP/TCP;interleaved=4").unwrap();
        assert_eq!(t.server_port, Some((7000, 7001)));
        assert_eq!(t.interleaved, None);
        assert_eq!(
            TransportHeader::parse("RTP/AVP/TCP;interleaved=255").unwrap_err(),
            "bad interleaved="
        );
        assert!(TransportHeader::parse("RTP/AVP;ssrc=xyz").is_err());
        assert!(TransportHeader::parse("RAW/RAW/UDP").is_err());
    }

    #[test]
    fn session_and_public() {
        assert_eq!(
            SessionHeader::parse("47112344;timeout=30"),
            Some(SessionHeader {
                id: "47112344".into(),
                timeout: Some(Duration::from_secs(30))
            })
        );
        assert_eq!(SessionHeader::parse("abc").unwrap().timeout, None);
        assert_eq!(
            SessionHeader::parse("abc; timeout = 0").unwrap().timeout,
            None
        );
        assert!(SessionHeader::parse(" ;timeout=5").is_none());
        assert!(public_lists(
            "OPTIONS, GET_PARAMETER,ANNOUNCE",
            "get_parameter"
        ));
        assert!(!public_lists("OPTIONS, SET_PARAMETER", "GET_PARAMETER"));
    }
}
