//! The SDP description (RFC 4566) a publisher ANNOUNCEs for one H.264 track (RFC 6184 §8.2).

use std::net::IpAddr;

use base64::Engine as _;
use sdp_types::{Attribute, Connection, Media, Origin, Session, Time};

use crate::h264::VideoTrack;

/// What goes into the SDP besides the track.
#[derive(Debug, Clone)]
pub struct SdpParams {
    /// Session id for the `o=` line (RFC 4566 §5.2: a numeric string, unique per session).
    pub session_id: u64,
    /// Our address, for `o=`.
    pub local_ip: IpAddr,
    /// The server's address, for `c=` (the address media goes to, as publishers write it).
    pub server_ip: IpAddr,
    /// RTP payload type (dynamic, 96–127).
    pub payload_type: u8,
    /// The `a=control` value of the track.
    pub control: String,
    /// The `s=` session name.
    pub session_name: String,
}

fn addr_type(ip: IpAddr) -> &'static str {
    match ip {
        IpAddr::V4(_) => "IP4",
        IpAddr::V6(_) => "IP6",
    }
}

/// The `a=fmtp` value: packetization-mode 1 (RFC 6184 §5.4: single NAL, STAP-A, FU-A),
/// profile-level-id and sprop-parameter-sets (§8.1).
pub fn fmtp(track: &VideoTrack) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    format!(
        "packetization-mode=1;profile-level-id={};sprop-parameter-sets={},{}",
        track.info.profile_level_id(),
        b64.encode(&track.sps),
        b64.encode(&track.pps)
    )
}

/// Builds the SDP session description (kept private: `sdp_types` stays out of our public API).
fn session(track: &VideoTrack, p: &SdpParams) -> Session {
    let pt = p.payload_type;
    let mut attributes = vec![
        Attribute {
            attribute: "rtpmap".into(),
            // RFC 6184 §8.2.1: the clock rate is 90000.
            value: Some(format!("{pt} H264/90000")),
        },
        Attribute {
            attribute: "fmtp".into(),
            value: Some(format!("{pt} {}", fmtp(track))),
        },
    ];
    if let Some((num, den)) = track.frame_rate.filter(|(n, d)| *n > 0 && *d > 0) {
        // RFC 4566 §6: a=framerate:<frames per second>, decimals allowed.
        let fps = f64::from(num) / f64::from(den);
        let text = if num % den == 0 {
            format!("{}", num / den)
        } else {
            let s = format!("{fps:.3}");
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        };
        attributes.push(Attribute {
            attribute: "framerate".into(),
            value: Some(text),
        });
    }
    attributes.push(Attribute {
        attribute: "control".into(),
        value: Some(p.control.clone()),
    });
    Session {
        origin: Origin {
            username: None,
            sess_id: p.session_id.to_string(),
            sess_version: 1,
            nettype: "IN".into(),
            addrtype: addr_type(p.local_ip).into(),
            unicast_address: p.local_ip.to_string(),
        },
        session_name: one_line(&p.session_name),
        session_description: None,
        uri: None,
        emails: Vec::new(),
        phones: Vec::new(),
        connection: Some(Connection {
            nettype: "IN".into(),
            addrtype: addr_type(p.server_ip).into(),
            connection_address: p.server_ip.to_string(),
        }),
        bandwidths: Vec::new(),
        times: vec![Time {
            start_time: 0,
            stop_time: 0,
            repeats: Vec::new(),
        }],
        time_zones: Vec::new(),
        key: None,
        attributes: vec![Attribute {
            attribute: "tool".into(),
            value: Some(concat!("mpegcoder ", env!("CARGO_PKG_VERSION")).into()),
        }],
        medias: vec![Media {
            media: "video".into(),
            port: 0,
            num_ports: None,
            proto: "RTP/AVP".into(),
            fmt: pt.to_string(),
            media_title: None,
            connections: Vec::new(),
            bandwidths: track
                .bitrate
                .map(|b| sdp_types::Bandwidth {
                    bwtype: "AS".into(),
                    bandwidth: b.div_ceil(1000),
                })
                .into_iter()
                .collect(),
            key: None,
            attributes,
        }],
    }
}

/// A session name on one line, never empty (RFC 4566 §5.3 asks for one space if none).
fn one_line(s: &str) -> String {
    let t: String = s.chars().filter(|c| *c != '\r' && *c != '\n').collect();
    if t.is_empty() {
        " ".into()
    } else {
        t
    }
}

/// The SDP as bytes.
pub fn to_bytes(track: &VideoTrack, p: &SdpParams) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    // Writing into a Vec cannot fail.
    let _ = session(track, p).write(&mut out);
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use bytes::Bytes;

    pub(crate) const SPS: &[u8] = &[
        0x67, 0x64, 0x00, 0x0d, 0xac, 0xd9, 0x41, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00,
        0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x42, 0x99, 0x60,
    ];
    pub(crate) const PPS: &[u8] = &[0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];

    #[test]
    fn sdp_content() {
        let track = VideoTrack::new(Bytes::from_static(SPS), Bytes::from_static(PPS))
            .unwrap()
            .with_frame_rate(30000, 1001);
        let p = SdpParams {
            session_id: 1234,
            local_ip: "127.0.0.1".parse().unwrap(),
            server_ip: "192.0.2.7".parse().unwrap(),
            payload_type: 96,
            control: "streamid=0".into(),
            session_name: "cam\r\nx".into(),
        };
        let text = String::from_utf8(to_bytes(&track, &p)).unwrap();
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(
            lines,
            vec![
                "v=0",
                "o=- 1234 1 IN IP4 127.0.0.1",
                "s=camx",
                "c=IN IP4 192.0.2.7",
                "t=0 0",
                "a=tool:mpegcoder 0.1.0",
                "m=video 0 RTP/AVP 96",
                "a=rtpmap:96 H264/90000",
                "a=fmtp:96 packetization-mode=1;profile-level-id=64000d;\
                 sprop-parameter-sets=Z2QADazZQUH7ARAAAAMAEAAAAwPA8UKZYA==,aOvjyyLA",
                "a=framerate:29.97",
                "a=control:streamid=0",
                "",
            ]
        );
        // It parses back as SDP, and the parameter sets decode to the track's.
        let parsed = Session::parse(text.as_bytes()).unwrap();
        let fmtp = parsed.medias[0]
            .get_first_attribute_value("fmtp")
            .unwrap()
            .unwrap();
        let sets = fmtp.split("sprop-parameter-sets=").nth(1).unwrap();
        let (sps, pps) = sets.split_once(',').unwrap();
        let b64 = base64::engine::general_purpose::STANDARD;
        assert_eq!(b64.decode(sps).unwrap(), SPS);
        assert_eq!(b64.decode(pps).unwrap(), PPS);

        let ipv6 = SdpParams {
            server_ip: "::1".parse().unwrap(),
            ..p
        };
        let text = String::from_utf8(to_bytes(&track.with_frame_rate(25, 1), &ipv6)).unwrap();
        assert!(text.contains("c=IN IP6 ::1\r\n") && text.contains("a=framerate:25\r\n"));
    }
}
