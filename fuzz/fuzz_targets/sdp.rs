//! Fuzzes the SDP writer with tracks built from fuzzed parameter sets and AudioSpecificConfig
//! bytes, and parses what it writes with `sdp-types`: one media section per track, each with
//! its `a=rtpmap` and `a=fmtp`. Nothing may panic.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use mpegcoder_transport::rtsp::sdp::{to_bytes, SdpMedia, SdpParams};
use mpegcoder_transport::{AudioTrack, Track, VideoTrack};

// Input: `[sps_len, pps_len, name_len, sps.., pps.., name.., audio config..]`.
fuzz_target!(|data: &[u8]| {
    let Some((&[sps_len, pps_len, name_len], rest)) = data.split_first_chunk::<3>() else {
        return;
    };
    let take = |rest: &mut &[u8], n: u8| -> Bytes {
        let n = usize::from(n).min(rest.len());
        let (a, b) = rest.split_at(n);
        *rest = b;
        Bytes::copy_from_slice(a)
    };
    let mut rest = rest;
    let sps = take(&mut rest, sps_len);
    let pps = take(&mut rest, pps_len);
    let name = take(&mut rest, name_len);
    let asc = Bytes::copy_from_slice(rest);

    let mut tracks = Vec::new();
    if let Ok(v) = VideoTrack::new(sps, pps) {
        tracks.push(Track::from(v));
    }
    if let Ok(a) = AudioTrack::aac(asc) {
        tracks.push(Track::from(a));
    }
    if tracks.is_empty() {
        return;
    }
    let medias: Vec<SdpMedia<'_>> = tracks
        .iter()
        .enumerate()
        .map(|(i, track)| SdpMedia {
            track,
            payload_type: 96 + i as u8,
            control: if i == 0 { "trackID=0" } else { "trackID=1" },
        })
        .collect();
    let params = SdpParams {
        session_id: 1234,
        local_ip: [127, 0, 0, 1].into(),
        server_ip: "::1".parse().unwrap_or([127, 0, 0, 1].into()),
        session_name: String::from_utf8_lossy(&name).into_owned(),
    };
    let written = to_bytes(&medias, &params);
    let session = match sdp_types::Session::parse(&written) {
        Ok(s) => s,
        Err(e) => panic!(
            "written SDP does not parse: {e:?}\n{}",
            String::from_utf8_lossy(&written)
        ),
    };
    assert_eq!(session.medias.len(), tracks.len(), "media count");
    for (media, m) in session.medias.iter().zip(&medias) {
        let pt = m.payload_type.to_string();
        for attr in ["rtpmap", "fmtp"] {
            let value = media.get_first_attribute_value(attr);
            let Ok(Some(value)) = value else {
                panic!("no a={attr} in media {}", media.media);
            };
            assert!(
                value.starts_with(&pt),
                "a={attr} names another payload type"
            );
        }
        assert!(media.has_attribute("control"));
    }
});
