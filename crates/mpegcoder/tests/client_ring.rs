//! `Client`'s ring of newest frames and its decimation, against a live stream on nginx-rtmp:
//! - extraction while the worker writes returns whole frames (each one's MD5 is a source
//!   frame's), oldest first, consecutive, never more than asked;
//! - after `terminate` the buffered frames stay readable;
//! - decimation from 30 to 10 fps keeps every third frame and never repeats one.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mpegcoder::codec::Frame;
use mpegcoder::{Client, ClientStatus};
use mpegcoder_protocol_tests::*;

#[path = "../../../tests/tests/pull_common/mod.rs"]
mod pull_common;
use pull_common::*;

/// Position of each source frame by its hash (the clip's frames are all different).
fn positions(clip: &Clip) -> HashMap<String, usize> {
    let map: HashMap<String, usize> = clip
        .framemd5
        .iter()
        .enumerate()
        .map(|(i, h)| (h.clone(), i))
        .collect();
    assert_eq!(map.len(), clip.framemd5.len(), "source frames must differ");
    map
}

/// Checks an extraction: at most `read_size` frames, consecutive indices oldest first, each a
/// whole source frame, in source order without gaps. Returns their source positions.
fn check_run(frames: &[Frame], read_size: usize, source: &HashMap<String, usize>) -> Vec<usize> {
    assert!(frames.len() <= read_size, "{} > {read_size}", frames.len());
    let pos: Vec<usize> = frames
        .iter()
        .map(|f| {
            let h = f.md5_hex().unwrap();
            *source
                .get(&h)
                .unwrap_or_else(|| panic!("frame {} is no source frame (torn?)", f.index))
        })
        .collect();
    for w in frames.windows(2) {
        assert_eq!(w[1].index, w[0].index + 1, "not consecutive, oldest first");
    }
    for w in pos.windows(2) {
        assert_eq!(w[1], w[0] + 1, "not contiguous in the source");
    }
    pos
}

#[test]
fn ring_extraction_terminate_and_decimation_on_a_live_stream() {
    if !require("client_ring", NGINX_TOOLS) {
        return;
    }
    let dir = TempDir::new("client-ring");
    let clip = Clip::generate(dir.path(), live_spec());
    let source = positions(&clip);
    let nginx = NginxRtmp::start(dir.path());
    let url = nginx.url("ring");
    let publisher = LivePublisher::start(&url, &clip);
    std::thread::sleep(JOIN_AFTER);

    let with = |cache_size: usize, target_fps: Option<f64>| {
        let options = hash_options().with_cache_size(cache_size);
        match target_fps {
            Some(fps) => options.with_target_fps(fps),
            None => options,
        }
    };
    // A: read concurrently while the worker writes, until the stream ends.
    let mut a = Client::new(&url, with(8, None)).unwrap();
    // B: decimated to 10 fps, every delivered frame through a subscription.
    let mut b = Client::new(&url, with(30, Some(10.0))).unwrap();
    let b_hashes = collect_hashes(b.subscribe(64).unwrap());
    // C: terminated mid-stream.
    let mut c = Client::new(&url, with(12, None)).unwrap();
    for client in [&mut a, &mut b, &mut c] {
        client.start().unwrap();
    }
    let a = Arc::new(a);

    let reader = {
        let a = Arc::clone(&a);
        let source = source.clone();
        std::thread::spawn(move || {
            let (mut calls, mut nonempty, mut newest) = (0u64, 0u64, None::<u64>);
            while !a.status().is_finished() {
                let frames = a.extract_frames(5);
                check_run(&frames, 5, &source);
                if let Some(last) = frames.last() {
                    // The newest frame never goes back.
                    assert!(newest.is_none_or(|n| last.index >= n));
                    newest = Some(last.index);
                    nonempty += 1;
                }
                calls += 1;
                std::thread::sleep(Duration::from_micros(200));
            }
            (calls, nonempty)
        })
    };

    // C: stop after about a second of frames; what it buffered stays readable.
    let started = Instant::now();
    while c.counters().frames_delivered < 20 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "C got no frames"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = c.terminate();
    assert!(matches!(status, ClientStatus::Stopped), "{status:?}");
    let kept = c.extract_frames(100);
    assert!(!kept.is_empty() && kept.len() <= 12, "{}", kept.len());
    check_run(&kept, 100, &source);
    let delivered = c.counters().frames_delivered;
    assert_eq!(kept.last().unwrap().index + 1, delivered);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        c.extract_frames(100),
        kept,
        "the ring changed after terminate"
    );

    // A: ends with the stream; the ring holds the clip's last 8 frames.
    let status = a.wait_finished(Duration::from_secs(15));
    assert!(matches!(status, ClientStatus::Ended), "{status:?}");
    let (calls, nonempty) = reader.join().unwrap();
    assert!(
        nonempty > 50,
        "only {nonempty} of {calls} extractions saw frames"
    );
    let last = a.extract_frames(100);
    assert_eq!(last.len(), 8);
    let pos = check_run(&last, 100, &source);
    assert_eq!(*pos.last().unwrap(), clip.framemd5.len() - 1);
    // Fewer than asked while it holds more: the newest ones.
    let two = a.extract_frames(2);
    assert_eq!(two, &last[6..]);

    // B: every third frame, none repeated.
    let status = b.wait_finished(Duration::from_secs(15));
    assert!(matches!(status, ClientStatus::Ended), "{status:?}");
    let hashes = b_hashes.join().unwrap();
    let counters = b.counters();
    let pos: Vec<usize> = hashes.iter().map(|h| source[h]).collect();
    eprintln!("decimated: {counters:?}, source positions {pos:?}");
    assert!(pos.windows(2).all(|w| w[1] == w[0] + 3), "{pos:?}");
    assert_eq!(counters.frames_delivered, hashes.len() as u64);
    assert_eq!(
        counters.frames_delivered + counters.frames_dropped,
        counters.frames_decoded
    );
    assert_eq!(
        counters.frames_delivered,
        counters.frames_decoded.div_ceil(3)
    );
    assert!(counters.frames_decoded >= 45, "{counters:?}");
    publisher.join();
}
