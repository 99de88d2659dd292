//! Counting the frames of an FLV recording (nginx-rtmp's `record all`): video tags that hold
//! AVC NAL units.

/// What an FLV file holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlvCount {
    /// Video tags with AVCPacketType 1 (NAL units): frames.
    pub frames: usize,
    /// All video tags.
    pub video_tags: usize,
    /// The file ended inside a tag (a recording cut short).
    pub truncated: bool,
}

/// Counts the tags of an FLV file's bytes; `None` when it is not FLV.
pub fn count(data: &[u8]) -> Option<FlvCount> {
    let header = data.get(..9)?;
    if &header[..3] != b"FLV" {
        return None;
    }
    let header_len = u32::from_be_bytes([header[5], header[6], header[7], header[8]]) as usize;
    // The header, then PreviousTagSize0.
    let mut pos = header_len.checked_add(4)?;
    let mut c = FlvCount::default();
    while pos < data.len() {
        let Some(tag) = data.get(pos..pos + 11) else {
            c.truncated = true;
            break;
        };
        let size = usize::from(tag[1]) << 16 | usize::from(tag[2]) << 8 | usize::from(tag[3]);
        let Some(body) = data.get(pos + 11..pos + 11 + size) else {
            c.truncated = true;
            break;
        };
        if tag[0] & 0x1f == 9 {
            c.video_tags += 1;
            if matches!(body, [first, 1, ..] if first & 0x0f == 7) {
                c.frames += 1;
            }
        }
        pos += 11 + size + 4;
    }
    Some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(kind: u8, body: &[u8]) -> Vec<u8> {
        let n = body.len() as u32;
        let mut t = vec![
            kind,
            (n >> 16) as u8,
            (n >> 8) as u8,
            n as u8,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
        ];
        t.extend_from_slice(body);
        t.extend_from_slice(&(11 + n).to_be_bytes());
        t
    }

    #[test]
    fn counts_nalu_tags() {
        let mut f = b"FLV\x01\x01\x00\x00\x00\x09\x00\x00\x00\x00".to_vec();
        f.extend(tag(18, b"onMetaData"));
        f.extend(tag(9, &[0x17, 0, 0, 0, 0, 1, 2]));
        f.extend(tag(9, &[0x17, 1, 0, 0, 0, 0, 0, 0, 1, 0x65]));
        f.extend(tag(9, &[0x27, 1, 0, 0, 0, 0, 0, 0, 1, 0x41]));
        f.extend(tag(9, &[0x17, 2, 0, 0, 0]));
        let c = count(&f).expect("FLV");
        assert_eq!(
            c,
            FlvCount {
                frames: 2,
                video_tags: 4,
                truncated: false
            }
        );
        let cut = count(&f[..f.len() - 6]).expect("FLV");
        assert_eq!((cut.frames, cut.truncated), (2, true));
        assert!(count(b"MP4").is_none());
        assert!(count(b"FLV\x01\x01\x00\xff\xff\xff").is_some());
    }
}
