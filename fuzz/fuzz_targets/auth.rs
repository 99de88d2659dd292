//! Fuzzes the `WWW-Authenticate` challenge parser with header values from a server (one per
//! line), then answers the chosen challenge as the publisher would. Nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mpegcoder_transport::rtsp::auth::{
    best_challenge, digest_response, parse_challenges, Authenticator, Challenge,
};
use mpegcoder_transport::rtsp::Credentials;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let challenges = parse_challenges(text.split('\n'));
    let creds = Credentials {
        username: "user".into(),
        password: "p@ss:w\"rd".into(),
    };
    for c in &challenges {
        if let Challenge::Digest(d) = c {
            let _ = digest_response(d, &creds, "ANNOUNCE", "rtsp://h/a", None);
            let _ = digest_response(d, &creds, "SETUP", "rtsp://h/a", Some((1, "0a1b2c3d")));
        }
    }
    if let Some(best) = best_challenge(&challenges) {
        assert!(challenges.contains(best));
        let mut auth = Authenticator::new(best.clone(), 42);
        let first = auth.authorization(&creds, "ANNOUNCE", "rtsp://h/a");
        let second = auth.authorization(&creds, "RECORD", "rtsp://h/a");
        // The values were split on '\n', so none can reach the header: it stays one line.
        assert!(!first.contains('\n') && !second.contains('\n'));
        let _ = auth.challenge();
    }
});
