//! RTP packetization throughput: ours against retina's H.264 packetizer on the same access
//! units, and Annex B splitting.
//!
//! The stream is synthetic 720p-like H.264: a 30-frame GOP of one IDR access unit (SPS, PPS,
//! SEI and a 100 KB slice) and 29 P frames of 10–20 KB. Throughput is in bytes of access unit
//! (NAL unit bytes) per second.
//!
//! Run: `cargo bench -p mpegcoder-transport --bench packetize -- --warm-up-time 1
//! --measurement-time 3`.

use std::hint::black_box;
use std::num::NonZeroU32;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mpegcoder_transport::h264::{split_annexb, write_annexb, write_length_prefixed};
use mpegcoder_transport::rtp::{Packetizer, PacketizerConfig, RtpPacket};
use mpegcoder_transport::{AccessUnit, TimeBase};

const MAX_PAYLOAD: usize = 1400;

/// Deterministic NAL unit bytes without start-code emulation (no zero bytes at all).
fn nal(header: u8, len: usize, seed: &mut u64) -> Bytes {
    let mut v = Vec::with_capacity(len);
    v.push(header);
    while v.len() < len {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        for b in seed.to_le_bytes() {
            if v.len() < len {
                v.push(b | 1);
            }
        }
    }
    Bytes::from(v)
}

/// One GOP of 30 access units at 30 fps in a 90 kHz time base.
fn gop() -> Vec<AccessUnit> {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut units = Vec::new();
    for k in 0..30i64 {
        let nalus = if k == 0 {
            vec![
                nal(0x67, 25, &mut seed),
                nal(0x68, 6, &mut seed),
                nal(0x06, 700, &mut seed),
                nal(0x65, 100_000, &mut seed),
            ]
        } else {
            let size = 10_000 + (k as usize * 3_517) % 10_000;
            vec![nal(0x41, size, &mut seed)]
        };
        units.push(AccessUnit {
            pts: k * 3000,
            dts: k * 3000,
            time_base: TimeBase::RTP_VIDEO,
            key: k == 0,
            nalus,
        });
    }
    units
}

fn config() -> PacketizerConfig {
    PacketizerConfig::default()
        .with_max_payload(MAX_PAYLOAD)
        .with_ssrc(Some(1))
        .with_initial_sequence(Some(0))
        .with_timestamp_offset(Some(0))
}

fn bench(c: &mut Criterion) {
    let units = gop();
    let au_bytes: u64 = units.iter().map(|u| u.payload_len() as u64).sum();

    let mut g = c.benchmark_group("packetize_720p_gop");
    g.throughput(Throughput::Bytes(au_bytes));

    g.bench_function("ours_zero_copy", |b| {
        let mut p = Packetizer::new(config());
        let mut out: Vec<RtpPacket> = Vec::new();
        b.iter(|| {
            for au in &units {
                out.clear();
                p.packetize(black_box(au), &mut out).ok();
                black_box(&out);
            }
        })
    });

    g.bench_function("ours_plus_copy_to_datagrams", |b| {
        // Packetize and copy each packet into a contiguous buffer, as a UDP sender would:
        // comparable to retina, whose packets are contiguous copies.
        let mut p = Packetizer::new(config());
        let mut out: Vec<RtpPacket> = Vec::new();
        let mut datagram = BytesMut::with_capacity(2048);
        b.iter(|| {
            for au in &units {
                out.clear();
                p.packetize(black_box(au), &mut out).ok();
                for pkt in &out {
                    datagram.clear();
                    pkt.write_to(&mut datagram);
                    black_box(&datagram[..]);
                }
            }
        })
    });

    // Retina's packetizer takes 4-byte length-prefixed access units; convert them once,
    // outside the measurement.
    let prefixed: Vec<(i64, Bytes)> = units
        .iter()
        .map(|u| {
            let mut buf = BytesMut::new();
            write_length_prefixed(&u.nalus, 4, &mut buf).ok();
            (u.pts, buf.freeze())
        })
        .collect();
    let clock = NonZeroU32::new(90_000).unwrap_or(NonZeroU32::MIN);
    g.bench_function("retina_0_4_21", |b| {
        let Ok(mut p) = retina::codec::h264::Packetizer::new(MAX_PAYLOAD as u16, 0, 0, 96, 1)
        else {
            return;
        };
        b.iter(|| {
            for (pts, data) in &prefixed {
                let Some(ts) = retina::Timestamp::new(*pts, clock, 0) else {
                    continue;
                };
                if p.push(ts, data.clone()).is_err() {
                    continue;
                }
                while let Ok(Some(pkt)) = p.pull() {
                    black_box(&pkt);
                }
            }
        })
    });
    g.finish();

    let mut annexb = BytesMut::new();
    for u in &units {
        write_annexb(&u.nalus, &mut annexb);
    }
    let annexb = annexb.freeze();
    let mut g = c.benchmark_group("split_annexb_720p_gop");
    g.throughput(Throughput::Bytes(annexb.len() as u64));
    g.bench_function("split_annexb", |b| {
        b.iter(|| black_box(split_annexb(black_box(&annexb))))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
