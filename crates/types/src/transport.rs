//! How RTP travels for RTSP: the one TCP/UDP choice of the publisher, the puller and the
//! facade.

use std::fmt;
use std::str::FromStr;

/// The lower transport of RTP for RTSP (RFC 2326 §12.39). RTMP always uses its one TCP
/// connection and ignores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum Transport {
    /// RTP and RTCP interleaved on the RTSP TCP connection (RFC 2326 §10.12). The default:
    /// loses nothing and passes NAT and firewalls.
    #[default]
    Tcp,
    /// RTP and RTCP over UDP, to and from a port pair of each side.
    Udp,
    /// TCP first, then UDP when the server refuses TCP: a 461 (Unsupported Transport) or 501
    /// reply to SETUP, or error replies to the interleaved data at the start. (Starting on
    /// TCP loses nothing where it works; UDP failing shows no error to detect.) Over
    /// `rtsps://` only TCP is possible.
    Auto,
}

impl Transport {
    /// `tcp` or `udp`.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
            Transport::Auto => "auto",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Error from parsing a [`Transport`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseTransportError {
    /// The text that failed to parse.
    pub text: String,
}

impl fmt::Display for ParseTransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown transport {:?} (expected tcp, udp or auto)",
            self.text
        )
    }
}

impl std::error::Error for ParseTransportError {}

impl FromStr for Transport {
    type Err = ParseTransportError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "tcp" => Ok(Transport::Tcp),
            "udp" => Ok(Transport::Udp),
            "auto" => Ok(Transport::Auto),
            _ => Err(ParseTransportError {
                text: s.to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_names() {
        assert_eq!("UDP".parse::<Transport>(), Ok(Transport::Udp));
        assert_eq!(" tcp ".parse::<Transport>(), Ok(Transport::Tcp));
        let e = "sctp".parse::<Transport>().expect_err("not a transport");
        assert_eq!(
            e.to_string(),
            "unknown transport \"sctp\" (expected tcp, udp or auto)"
        );
        assert_eq!(Transport::default(), Transport::Tcp);
        assert_eq!(Transport::Udp.to_string(), "udp");
        assert_eq!("Auto".parse::<Transport>(), Ok(Transport::Auto));
        assert_eq!(Transport::Auto.to_string(), "auto");
    }

    #[cfg(feature = "serde")]
    #[test]
    fn serde_is_lowercase() {
        assert_eq!(
            serde_json::to_string(&Transport::Udp).expect("serializes"),
            "\"udp\""
        );
        let t: Transport = serde_json::from_str("\"tcp\"").expect("parses");
        assert_eq!(t, Transport::Tcp);
    }
}
