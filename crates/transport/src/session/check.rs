//! The up-front check of media units, the same for every protocol, so that a unit the session
//! cannot carry is refused by `send` at once rather than failing later inside the session.

use crate::h264::{nal_type, nal_unit_type, AccessUnit};
use crate::session::{Media, Track};
use crate::TimeBase;

/// FLV's CompositionTime is a signed 24-bit count of milliseconds (FLV spec E.4.3.1); RTP
/// carries any, but a presentation that far from decoding is a broken stream either way.
const MAX_COMPOSITION_MS: i64 = (1 << 23) - 1;

/// Why a media unit was refused. The session is unchanged: skip the unit and go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// The session has no track of the unit's kind.
    #[error("this session has no {kind} track")]
    NoTrack {
        /// `video` or `audio`.
        kind: &'static str,
    },
    /// An audio frame without data.
    #[error("the audio frame at pts {pts} is empty")]
    EmptyAudio {
        /// Its timestamp, in its own time base.
        pts: i64,
    },
    /// Nothing is left to send once empty NAL units and access unit delimiters are dropped.
    #[error("the access unit at dts {dts} has no NAL unit to send (empty, or only delimiters)")]
    Empty {
        /// Its decoding timestamp, in its own time base.
        dts: i64,
    },
    /// A NAL unit type that H.264 leaves unspecified (0, 24–31): RTP would read 24–29 as
    /// aggregation or fragmentation packets and receivers drop the others (RFC 6184 §5.2,
    /// Table 3), and FLV readers reject them.
    #[error("NAL unit {index} of the access unit at dts {dts} has type {nal_type}, which cannot be sent")]
    UnsupportedNalType {
        /// Its decoding timestamp.
        dts: i64,
        /// Index of the NAL unit within the access unit.
        index: usize,
        /// Its `nal_unit_type`.
        nal_type: u8,
    },
    /// Decoding timestamps must not go backwards within a track.
    #[error(
        "{kind} decoding timestamp went backwards: {dts} after {previous} (time base {time_base})"
    )]
    DtsBackwards {
        /// `video` or `audio`.
        kind: &'static str,
        /// The previous unit's DTS, in this unit's time base.
        previous: i64,
        /// This unit's DTS.
        dts: i64,
        /// The time base of both.
        time_base: TimeBase,
    },
    /// `pts − dts` is negative or too large to be a real stream.
    #[error("composition time (pts − dts) of {ms} ms is outside 0 ..= 8388607 ms")]
    CompositionTime {
        /// `pts − dts` in milliseconds.
        ms: i64,
    },
}

/// Checks media units before they are queued: see [`MediaError`] for what it refuses.
#[derive(Debug, Clone)]
pub struct MediaCheck {
    video: bool,
    audio: bool,
    /// The last accepted video DTS, in nanoseconds and as given.
    last_video_dts: Option<(i128, i64, TimeBase)>,
    /// The last accepted audio timestamp, likewise.
    last_audio_pts: Option<(i128, i64, TimeBase)>,
}

impl MediaCheck {
    /// A check for a session carrying `tracks`.
    pub fn new(tracks: &[Track]) -> MediaCheck {
        MediaCheck {
            video: tracks.iter().any(|t| matches!(t, Track::H264(_))),
            audio: tracks.iter().any(|t| matches!(t, Track::Audio(_))),
            last_video_dts: None,
            last_audio_pts: None,
        }
    }

    /// Accepts or refuses `media`; an accepted unit advances the DTS check.
    pub fn check(&mut self, media: &Media) -> Result<(), MediaError> {
        match media {
            Media::H264(au) => {
                if !self.video {
                    return Err(MediaError::NoTrack { kind: "video" });
                }
                let dts_ns = check_access_unit(au, self.last_video_dts)?;
                self.last_video_dts = Some((dts_ns, au.dts, au.time_base));
                Ok(())
            }
            Media::Audio(f) => {
                if !self.audio {
                    return Err(MediaError::NoTrack { kind: "audio" });
                }
                if f.data.is_empty() {
                    return Err(MediaError::EmptyAudio { pts: f.pts });
                }
                let ns = f.time_base.ticks_to_nanos(f.pts);
                not_backwards("audio", ns, f.pts, f.time_base, self.last_audio_pts)?;
                self.last_audio_pts = Some((ns, f.pts, f.time_base));
                Ok(())
            }
        }
    }
}

/// Checks one access unit; returns its DTS in nanoseconds.
fn check_access_unit(
    au: &AccessUnit,
    last: Option<(i128, i64, TimeBase)>,
) -> Result<i128, MediaError> {
    let mut sendable = false;
    for (index, nal) in au.nalus.iter().enumerate() {
        if nal.is_empty() {
            continue;
        }
        match nal_unit_type(nal) {
            nal_type::AUD => {}
            0 | 24..=31 => {
                return Err(MediaError::UnsupportedNalType {
                    dts: au.dts,
                    index,
                    nal_type: nal_unit_type(nal),
                })
            }
            _ => sendable = true,
        }
    }
    if !sendable {
        return Err(MediaError::Empty { dts: au.dts });
    }
    let dts_ns = au.time_base.ticks_to_nanos(au.dts);
    not_backwards("video", dts_ns, au.dts, au.time_base, last)?;
    let ms = au
        .time_base
        .rescale(au.pts.saturating_sub(au.dts), TimeBase::MILLIS);
    if !(0..=MAX_COMPOSITION_MS).contains(&ms) {
        return Err(MediaError::CompositionTime { ms });
    }
    Ok(dts_ns)
}

/// Refuses a timestamp (`ns`, or `ts` in `tb`) before the track's last one.
fn not_backwards(
    kind: &'static str,
    ns: i128,
    ts: i64,
    tb: TimeBase,
    last: Option<(i128, i64, TimeBase)>,
) -> Result<(), MediaError> {
    match last {
        Some((previous_ns, previous, previous_tb)) if ns < previous_ns => {
            Err(MediaError::DtsBackwards {
                kind,
                previous: previous_tb.rescale(previous, tb),
                dts: ts,
                time_base: tb,
            })
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::h264::VideoTrack;

    const SPS: &[u8] = &[
        0x67, 0x64, 0x00, 0x0d, 0xac, 0xd9, 0x41, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00,
        0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x42, 0x99, 0x60,
    ];
    const PPS: &[u8] = &[0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];

    fn au(dts: i64, pts: i64, nalus: &[&'static [u8]]) -> Media {
        Media::H264(AccessUnit {
            pts,
            dts,
            time_base: TimeBase::new(1, 90_000),
            key: false,
            nalus: nalus.iter().map(|n| Bytes::from_static(n)).collect(),
        })
    }

    fn check() -> MediaCheck {
        let track = VideoTrack::new(Bytes::from_static(SPS), Bytes::from_static(PPS))
            .expect("valid parameter sets");
        MediaCheck::new(&[Track::H264(track)])
    }

    #[test]
    fn accepts_a_normal_stream_and_refuses_broken_units_without_advancing() {
        let mut c = check();
        assert_eq!(c.check(&au(0, 3000, &[&[0x65, 1]])), Ok(()));
        assert_eq!(
            c.check(&au(3000, 3000, &[&[0x09, 0x10], &[0x41, 1]])),
            Ok(())
        );
        assert_eq!(
            c.check(&au(6000, 6000, &[&[0x09, 0x10], &[]])),
            Err(MediaError::Empty { dts: 6000 })
        );
        assert_eq!(
            c.check(&au(6000, 6000, &[&[0x41, 1], &[0x1c, 0]])),
            Err(MediaError::UnsupportedNalType {
                dts: 6000,
                index: 1,
                nal_type: 28
            })
        );
        assert_eq!(
            c.check(&au(2999, 6000, &[&[0x41, 1]])),
            Err(MediaError::DtsBackwards {
                kind: "video",
                previous: 3000,
                dts: 2999,
                time_base: TimeBase::new(1, 90_000)
            })
        );
        assert!(matches!(
            c.check(&au(6000, 5000, &[&[0x41, 1]])),
            Err(MediaError::CompositionTime { ms: -11 })
        ));
        // Refusals did not advance the DTS: 3000 is still the last one.
        assert_eq!(c.check(&au(3000, 3000, &[&[0x41, 1]])), Ok(()));
        // Less than half a millisecond early rounds to a composition time of 0: accepted.
        assert_eq!(c.check(&au(6000, 5999, &[&[0x41, 1]])), Ok(()));
        let mut none = MediaCheck::new(&[]);
        assert_eq!(
            none.check(&au(0, 0, &[&[0x65, 1]])),
            Err(MediaError::NoTrack { kind: "video" })
        );
    }
}
