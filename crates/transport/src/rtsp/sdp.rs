//! The SDP description (RFC 4566) a publisher ANNOUNCEs: an H.264 video section (RFC 6184
//! §8.2) and, when the session carries audio, an audio section (RFC 3640 §4.1 for AAC, RFC 7587
//! §7 for Opus, RFC 3551 for MP3 and G.711), each with its own `a=control`.

use std::net::IpAddr;

use base64::Engine as _;
use sdp_types::{Attribute, Connection, Media, Origin, Session, Time};

use crate::audio::{AudioCodec, AudioTrack};
use crate::h264::VideoTrack;
use crate::session::Track;

/// What goes into the SDP besides the tracks.
#[derive(Debug, Clone)]
pub struct SdpParams {
    /// Session id for the `o=` line (RFC 4566 §5.2: a numeric string, unique per session).
    pub session_id: u64,
    /// Our address, for `o=`.
    pub local_ip: IpAddr,
    /// The server's address, for `c=` (the address media goes to, as publishers write it).
    pub server_ip: IpAddr,
    /// The `s=` session name.
    pub session_name: String,
}

/// One media section: a track with its RTP payload type and `a=control`.
#[derive(Debug, Clone, Copy)]
pub struct SdpMedia<'a> {
    /// The track.
    pub track: &'a Track,
    /// RTP payload type.
    pub payload_type: u8,
    /// The `a=control` value.
    pub control: &'a str,
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

/// The `a=fmtp` value of an AAC track (RFC 3640 §4.1, §3.3.6 AAC-hbr): stream type 5
/// (audio), the sizes of the AU header fields, the AudioSpecificConfig in hex, and
/// `constantDuration`, the samples per frame: a packet carries several consecutive frames
/// without per-frame timestamps, and a receiver derives the later frames' times from it
/// (GStreamer's depayloader leaves them unstamped without it).
pub fn aac_fmtp(track: &AudioTrack) -> String {
    let config: String = track.config.iter().map(|b| format!("{b:02x}")).collect();
    let duration = track.aac_config().map_or(1024, |c| c.frame_length);
    format!(
        "streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;\
         indexdeltalength=3;constantDuration={duration};config={config}"
    )
}

/// The `m=audio` section of an audio track.
fn audio_media(track: &AudioTrack, pt: u8, control: &str) -> Media {
    // RFC 4566 §6 rtpmap: <encoding name>/<clock rate>[/<channels>], channels omitted for one.
    let channels = |n: u8| {
        if n > 1 {
            format!("/{n}")
        } else {
            String::new()
        }
    };
    let (rtpmap, fmtp) = match track.codec {
        AudioCodec::Aac => (
            format!(
                "MPEG4-GENERIC/{}{}",
                track.rtp_clock_rate(),
                channels(track.channels)
            ),
            Some(aac_fmtp(track)),
        ),
        // RFC 3551 §4.5.13: MPA is payload type 14 at 90 kHz, channels in the stream.
        AudioCodec::Mp3 => ("MPA/90000".to_string(), None),
        // RFC 7587 §7: always opus/48000/2; sprop-stereo says what the sender sends.
        AudioCodec::Opus => (
            "opus/48000/2".to_string(),
            Some(format!("sprop-stereo={}", u8::from(track.channels > 1))),
        ),
        AudioCodec::Pcmu => (
            format!("PCMU/{}{}", track.sample_rate, channels(track.channels)),
            None,
        ),
        AudioCodec::Pcma => (
            format!("PCMA/{}{}", track.sample_rate, channels(track.channels)),
            None,
        ),
    };
    let mut attributes = vec![Attribute {
        attribute: "rtpmap".into(),
        value: Some(format!("{pt} {rtpmap}")),
    }];
    if let Some(f) = fmtp {
        attributes.push(Attribute {
            attribute: "fmtp".into(),
            value: Some(format!("{pt} {f}")),
        });
    }
    media_section("audio", pt, control, track.bitrate, attributes)
}

/// An `m=` section (RFC 4566 §5.14) of `kind` with payload type `pt`: port 0 (a RECORD
/// publisher's ports go in SETUP), `b=AS:<kilobits per second>` when the bit rate is known
/// (§5.8), the given attributes, then `a=control`.
fn media_section(
    kind: &str,
    pt: u8,
    control: &str,
    bitrate: Option<u64>,
    mut attributes: Vec<Attribute>,
) -> Media {
    attributes.push(Attribute {
        attribute: "control".into(),
        value: Some(control.to_string()),
    });
    Media {
        media: kind.into(),
        port: 0,
        num_ports: None,
        proto: "RTP/AVP".into(),
        fmt: pt.to_string(),
        media_title: None,
        connections: Vec::new(),
        bandwidths: bitrate
            .map(|b| sdp_types::Bandwidth {
                bwtype: "AS".into(),
                bandwidth: b.div_ceil(1000),
            })
            .into_iter()
            .collect(),
        key: None,
        attributes,
    }
}

/// The `m=video` section of an H.264 track.
fn video_media(track: &VideoTrack, pt: u8, control: &str) -> Media {
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
    media_section("video", pt, control, track.bitrate, attributes)
}

/// Builds the SDP session description (kept private: `sdp_types` stays out of our public API).
fn session(medias: &[SdpMedia<'_>], p: &SdpParams) -> Session {
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
        medias: medias
            .iter()
            .map(|m| match m.track {
                Track::H264(v) => video_media(v, m.payload_type, m.control),
                Track::Audio(a) => audio_media(a, m.payload_type, m.control),
            })
            .collect(),
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

/// The SDP as bytes, one media section per entry of `medias`, in order.
pub fn to_bytes(medias: &[SdpMedia<'_>], p: &SdpParams) -> Vec<u8> {
    let mut out = Vec::with_capacity(768);
    // Writing into a Vec cannot fail.
    let _ = session(medias, p).write(&mut out);
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
        let video = VideoTrack::new(Bytes::from_static(SPS), Bytes::from_static(PPS))
            .unwrap()
            .with_frame_rate(30000, 1001);
        let track = Track::H264(video.clone());
        let media = |track| SdpMedia {
            track,
            payload_type: 96,
            control: "streamid=0",
        };
        let p = SdpParams {
            session_id: 1234,
            local_ip: "127.0.0.1".parse().unwrap(),
            server_ip: "192.0.2.7".parse().unwrap(),
            session_name: "cam\r\nx".into(),
        };
        let text = String::from_utf8(to_bytes(&[media(&track)], &p)).unwrap();
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
        let track25 = Track::H264(video.with_frame_rate(25, 1));
        let text = String::from_utf8(to_bytes(&[media(&track25)], &ipv6)).unwrap();
        assert!(text.contains("c=IN IP6 ::1\r\n") && text.contains("a=framerate:25\r\n"));
    }

    #[test]
    fn audio_sections() {
        let p = SdpParams {
            session_id: 1,
            local_ip: "127.0.0.1".parse().unwrap(),
            server_ip: "127.0.0.1".parse().unwrap(),
            session_name: "s".into(),
        };
        let video =
            Track::H264(VideoTrack::new(Bytes::from_static(SPS), Bytes::from_static(PPS)).unwrap());
        let aac = Track::Audio(
            AudioTrack::aac(Bytes::from_static(&[0x11, 0x90]))
                .unwrap()
                .with_bitrate(128_000),
        );
        let medias = [
            SdpMedia {
                track: &video,
                payload_type: 96,
                control: "streamid=0",
            },
            SdpMedia {
                track: &aac,
                payload_type: 97,
                control: "streamid=1",
            },
        ];
        let text = String::from_utf8(to_bytes(&medias, &p)).unwrap();
        let audio: Vec<&str> = text
            .split("\r\n")
            .skip_while(|l| !l.starts_with("m=audio"))
            .collect();
        assert_eq!(
            audio,
            vec![
                "m=audio 0 RTP/AVP 97",
                "b=AS:128",
                "a=rtpmap:97 MPEG4-GENERIC/48000/2",
                "a=fmtp:97 streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;\
                 indexlength=3;indexdeltalength=3;constantDuration=1024;config=1190",
                "a=control:streamid=1",
                "",
            ]
        );
        let parsed = Session::parse(text.as_bytes()).unwrap();
        assert_eq!(parsed.medias.len(), 2);
        let line = |codec, rate, ch, pt| {
            let t = Track::Audio(AudioTrack::new(codec, rate, ch).unwrap());
            let m = SdpMedia {
                track: &t,
                payload_type: pt,
                control: "streamid=1",
            };
            String::from_utf8(to_bytes(&[m], &p)).unwrap()
        };
        assert!(line(AudioCodec::Pcmu, 8000, 1, 0).contains("a=rtpmap:0 PCMU/8000\r\n"));
        assert!(line(AudioCodec::Pcma, 8000, 2, 8).contains("a=rtpmap:8 PCMA/8000/2\r\n"));
        assert!(line(AudioCodec::Mp3, 44100, 2, 14).contains("a=rtpmap:14 MPA/90000\r\n"));
        let opus = line(AudioCodec::Opus, 48000, 1, 97);
        assert!(opus.contains("a=rtpmap:97 opus/48000/2\r\na=fmtp:97 sprop-stereo=0\r\n"));
    }
}
