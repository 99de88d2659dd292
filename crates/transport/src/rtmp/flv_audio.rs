//! FLV audio tag bodies. Pure functions, no I/O.
//!
//! RTMP audio messages (RTMP spec §7.1.4, message type 8) carry the body of an FLV audio tag
//! (Adobe FLV spec v10.1, Annex E.4.2.1 `AUDIODATA`):
//!
//! ```text
//! byte 0     SoundFormat (UB[4]) | SoundRate (UB[2]) | SoundSize (UB[1]) | SoundType (UB[1])
//! byte 1     AACPacketType, AAC only (0 sequence header, 1 raw)
//! bytes ..   AAC: the AudioSpecificConfig (type 0) or one raw frame (type 1);
//!            other formats: the encoded frame
//! ```
//!
//! For AAC the spec fixes SoundRate to 3 (44 kHz) and SoundType to 1 (stereo) whatever the
//! stream is: the decoder takes the real values from the AudioSpecificConfig. MP3 frames carry
//! their own rate too; FLV has no code for 48 kHz, so 48 kHz MP3 is marked 44 kHz as other
//! FLV writers do. G.711 is marked with rate 0 (its rate, 8 kHz, is implied by the format).

use bytes::{BufMut, Bytes, BytesMut};

use crate::audio::{AudioCodec, AudioTrack};

/// `SoundFormat` of AAC (FLV spec E.4.2.1; also `audiocodecid` in `onMetaData`).
pub const SOUND_FORMAT_AAC: u8 = 10;
/// `SoundFormat` of MP3.
pub const SOUND_FORMAT_MP3: u8 = 2;
/// `SoundFormat` of G.711 A-law.
pub const SOUND_FORMAT_PCMA: u8 = 7;
/// `SoundFormat` of G.711 µ-law.
pub const SOUND_FORMAT_PCMU: u8 = 8;
/// `SoundFormat` of MP3 at 8 kHz (read when pulling; never written).
pub const SOUND_FORMAT_MP3_8K: u8 = 14;

/// The `SoundFormat` of a codec, `None` when FLV has none (Opus).
pub fn sound_format(codec: AudioCodec) -> Option<u8> {
    match codec {
        AudioCodec::Aac => Some(SOUND_FORMAT_AAC),
        AudioCodec::Mp3 => Some(SOUND_FORMAT_MP3),
        AudioCodec::Pcma => Some(SOUND_FORMAT_PCMA),
        AudioCodec::Pcmu => Some(SOUND_FORMAT_PCMU),
        AudioCodec::Opus => None,
    }
}

/// The first byte of every audio tag body of `track`; `None` when FLV cannot carry it.
pub fn audio_header(track: &AudioTrack) -> Option<u8> {
    let format = sound_format(track.codec)?;
    let (rate, stereo) = match track.codec {
        // E.4.2.1: "If the SoundFormat indicates AAC, the SoundType should be set to 1
        // (stereo) and the SoundRate should be set to 3 (44 kHz)."
        AudioCodec::Aac => (3, true),
        AudioCodec::Mp3 => (
            match track.sample_rate {
                r if r <= 5_512 => 0,
                r if r <= 11_025 => 1,
                r if r <= 22_050 => 2,
                _ => 3,
            },
            track.channels > 1,
        ),
        _ => (0, track.channels > 1),
    };
    // SoundSize 1: 16-bit samples (what compressed formats are decoded to).
    Some((format << 4) | (rate << 2) | (1 << 1) | u8::from(stereo))
}

/// The AAC sequence header body: AACPacketType 0 and the AudioSpecificConfig.
pub fn aac_sequence_header_body(track: &AudioTrack) -> Option<Bytes> {
    let header = audio_header(track).filter(|_| track.codec == AudioCodec::Aac)?;
    let mut out = BytesMut::with_capacity(2 + track.config.len());
    out.put_u8(header);
    out.put_u8(0);
    out.put_slice(&track.config);
    Some(out.freeze())
}

/// The body of one audio frame: for AAC, AACPacketType 1 and the raw frame; for the other
/// formats the frame after the header byte. Built once into one buffer, as an RTMP message
/// is one contiguous payload.
pub fn audio_frame_body(track: &AudioTrack, frame: &[u8]) -> Option<Bytes> {
    let header = audio_header(track)?;
    let aac = track.codec == AudioCodec::Aac;
    let mut out = BytesMut::with_capacity(2 + frame.len());
    out.put_u8(header);
    if aac {
        out.put_u8(1);
    }
    out.put_slice(frame);
    Some(out.freeze())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn bodies() {
        let aac = AudioTrack::aac(Bytes::from_static(&[0x11, 0x88])).unwrap();
        // 0xAF: AAC, 44 kHz, 16-bit, stereo (fixed for AAC, even for this mono stream).
        assert_eq!(
            &aac_sequence_header_body(&aac).unwrap()[..],
            &[0xaf, 0x00, 0x11, 0x88]
        );
        assert_eq!(
            &audio_frame_body(&aac, &[1, 2, 3]).unwrap()[..],
            &[0xaf, 0x01, 1, 2, 3]
        );
        let mp3 = AudioTrack::new(AudioCodec::Mp3, 22_050, 1).unwrap();
        // MP3 (2), 22 kHz (2), 16-bit, mono: 0x2A.
        assert_eq!(&audio_frame_body(&mp3, &[9]).unwrap()[..], &[0x2a, 9]);
        let mp3_48 = AudioTrack::new(AudioCodec::Mp3, 48_000, 2).unwrap();
        assert_eq!(audio_header(&mp3_48), Some(0x2f));
        let pcmu = AudioTrack::new(AudioCodec::Pcmu, 8_000, 1).unwrap();
        assert_eq!(audio_header(&pcmu), Some(0x82));
        assert!(aac_sequence_header_body(&pcmu).is_none());
        let opus = AudioTrack::new(AudioCodec::Opus, 48_000, 2).unwrap();
        assert!(audio_frame_body(&opus, &[1]).is_none());
    }
}
