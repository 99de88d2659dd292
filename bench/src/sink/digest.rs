//! What the NAL units of one received access unit say: whether it holds an IDR slice (a key
//! frame), and, when asked, a hash of its VCL NAL units (slice types 1–5, header byte
//! included) that is the same however the unit was framed on the wire: whole NAL units
//! (RTMP's length-prefixed NALUs, a puller's access unit, RTP single NAL unit packets),
//! aggregated (RTP STAP-A) or fragmented (RTP FU-A, reassembled as the fragments arrive).
//! Parameter sets, SEI and delimiters are left out of the hash: a relay may add or drop them.

/// FNV-1a, 64 bit: byte-streaming, so fragments hash like the whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    /// Adds `bytes`.
    pub fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// The hash so far.
    pub fn value(self) -> u64 {
        self.0
    }
}

/// True for a VCL NAL unit type (coded slices, 1–5).
fn is_vcl(nal_type: u8) -> bool {
    (1..=5).contains(&nal_type)
}

/// The digest of the access unit being received.
#[derive(Debug, Clone, Default)]
pub struct AuDigest {
    hash: bool,
    fnv: Fnv,
    idr: bool,
    vcl: bool,
    /// Inside an FU-A of a VCL NAL unit whose start was seen.
    in_vcl_fragment: bool,
}

impl AuDigest {
    /// A digest that hashes the VCL NAL units when `hash` is set (key frames are always
    /// told).
    pub fn new(hash: bool) -> AuDigest {
        AuDigest {
            hash,
            ..AuDigest::default()
        }
    }

    /// A whole NAL unit (header byte first).
    pub fn nal(&mut self, nal: &[u8]) {
        self.in_vcl_fragment = false;
        let Some(&header) = nal.first() else {
            return;
        };
        let t = header & 0x1f;
        self.idr |= t == 5;
        if is_vcl(t) {
            self.vcl = true;
            if self.hash {
                self.fnv.write(nal);
            }
        }
    }

    /// A fragment of a NAL unit: `start` is the reconstructed NAL header of a first fragment
    /// (`None` for the others), `data` its bytes after the header.
    pub fn fragment(&mut self, start: Option<u8>, data: &[u8]) {
        if let Some(header) = start {
            let t = header & 0x1f;
            self.idr |= t == 5;
            self.in_vcl_fragment = is_vcl(t);
            if self.in_vcl_fragment {
                self.vcl = true;
                if self.hash {
                    self.fnv.write(&[header]);
                }
            }
        }
        if self.in_vcl_fragment && self.hash {
            self.fnv.write(data);
        }
    }

    /// The payload of an H.264 RTP packet (RFC 6184): single NAL unit, STAP-A or FU-A.
    pub fn rtp_payload(&mut self, payload: &[u8]) {
        let Some(&first) = payload.first() else {
            return;
        };
        match first & 0x1f {
            1..=23 => self.nal(payload),
            24 => {
                let mut rest = payload.get(1..).unwrap_or_default();
                while let Some(len) = rest.get(..2) {
                    let n = usize::from(u16::from_be_bytes([len[0], len[1]]));
                    let Some(nal) = rest.get(2..2 + n) else {
                        break;
                    };
                    self.nal(nal);
                    rest = rest.get(2 + n..).unwrap_or_default();
                }
            }
            28 => {
                let Some(&fu) = payload.get(1) else {
                    return;
                };
                let start = (fu & 0x80 != 0).then_some((first & 0xe0) | (fu & 0x1f));
                self.fragment(start, payload.get(2..).unwrap_or_default());
            }
            _ => {}
        }
    }

    /// The NAL units of an FLV AVC NALU tag body (after its 5-byte header), each prefixed
    /// with a big-endian length of `length_size` bytes (1–4).
    pub fn avcc(&mut self, mut data: &[u8], length_size: usize) {
        let length_size = length_size.clamp(1, 4);
        while let Some(len) = data.get(..length_size) {
            let n = len
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            let Some(nal) = data.get(length_size..length_size + n) else {
                break;
            };
            self.nal(nal);
            data = data.get(length_size + n..).unwrap_or_default();
        }
    }

    /// Ends the access unit: (it held an IDR slice, the hash of its VCL NAL units when
    /// hashing and it had any); starts the next.
    pub fn finish(&mut self) -> (bool, Option<u64>) {
        let out = (
            self.idr,
            (self.hash && self.vcl).then_some(self.fnv.value()),
        );
        *self = AuDigest::new(self.hash);
        out
    }
}

/// The NALU length size of an FLV AVC sequence header body (AVCDecoderConfigurationRecord
/// after the 5-byte tag header: `lengthSizeMinusOne` in the low bits of its fifth byte).
pub fn avcc_length_size(sequence_header: &[u8]) -> Option<usize> {
    sequence_header.get(9).map(|b| usize::from(b & 3) + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDR: &[u8] = &[0x65, 0x88, 0x84, 0x21, 0x43, 0x10, 0x20];
    const SPS: &[u8] = &[0x67, 0x64, 0x00, 0x1f];

    fn digest_of_nals(nals: &[&[u8]]) -> (bool, Option<u64>) {
        let mut d = AuDigest::new(true);
        for n in nals {
            d.nal(n);
        }
        d.finish()
    }

    #[test]
    fn every_framing_gives_the_same_hash() {
        let whole = digest_of_nals(&[SPS, IDR]);
        assert!(whole.0);
        // Parameter sets are left out.
        assert_eq!(whole, digest_of_nals(&[IDR]));
        // FU-A in three fragments.
        let mut d = AuDigest::new(true);
        let indicator = (IDR[0] & 0xe0) | 28;
        d.rtp_payload(&[indicator, 0x80 | 5, IDR[1], IDR[2]]);
        d.rtp_payload(&[indicator, 5, IDR[3], IDR[4]]);
        d.rtp_payload(&[indicator, 0x40 | 5, IDR[5], IDR[6]]);
        assert_eq!(d.finish(), whole);
        // STAP-A with the SPS and the slice.
        let mut stap = vec![24u8];
        for n in [SPS, IDR] {
            stap.extend_from_slice(&(n.len() as u16).to_be_bytes());
            stap.extend_from_slice(n);
        }
        let mut d = AuDigest::new(true);
        d.rtp_payload(&stap);
        assert_eq!(d.finish(), whole);
        // AVCC with 4-byte lengths.
        let mut avcc = Vec::new();
        for n in [SPS, IDR] {
            avcc.extend_from_slice(&(n.len() as u32).to_be_bytes());
            avcc.extend_from_slice(n);
        }
        let mut d = AuDigest::new(true);
        d.avcc(&avcc, 4);
        assert_eq!(d.finish(), whole);
        // The state starts over after finish.
        let mut d = AuDigest::new(true);
        d.nal(&[0x41, 1, 2]);
        let p = d.finish();
        assert!(!p.0);
        assert!(p.1.is_some() && p.1 != whole.1);
        assert_eq!(d.finish(), (false, None));
    }

    #[test]
    fn truncated_input_does_not_panic() {
        let mut d = AuDigest::new(true);
        d.rtp_payload(&[]);
        d.rtp_payload(&[24, 0, 9, 0x65]);
        d.rtp_payload(&[28]);
        d.avcc(&[0, 0, 0, 9, 0x65], 4);
        d.avcc(&[0, 0], 4);
        assert_eq!(d.finish(), (false, None));
        let mut d = AuDigest::new(false);
        d.nal(IDR);
        assert_eq!(d.finish(), (true, None));
        assert_eq!(
            avcc_length_size(&[0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f, 0xff]),
            Some(4)
        );
        assert_eq!(avcc_length_size(&[0x17, 0]), None);
    }
}
