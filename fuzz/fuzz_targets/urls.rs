//! Fuzzes the URL parsers (RTSP, RTMP) and the redactor with arbitrary text (lossily decoded as
//! UTF-8). Printed forms must re-parse, and a parsed password must never be printed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mpegcoder_transport::redact_url;
use mpegcoder_transport::rtmp::RtmpUrl;
use mpegcoder_transport::rtsp::RtspUrl;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let text = text.as_ref();

    let _ = redact_url(text);

    if let Ok(url) = RtspUrl::parse(text) {
        let _ = (url.host(), url.port(), url.is_tls(), format!("{url:?}"));
        // The URL without credentials re-parses to itself.
        let again = RtspUrl::parse(url.as_str());
        assert!(again.as_ref().is_ok(), "as_str does not re-parse");
        if let Ok(again) = again {
            assert_eq!(again.as_str(), url.as_str());
            assert!(again.credentials().is_none());
        }
        let shown = url.to_string();
        let debug = format!("{url:?}");
        if let Some(c) = url.credentials() {
            if c.password.len() >= 4 && !url.as_str().contains(&c.password) {
                assert!(!shown.contains(&c.password), "password in Display");
                assert!(!debug.contains(&c.password), "password in Debug");
                // Redacting the text as given hides the password too, when it is written only
                // once (in the userinfo) and needs no percent-decoding. Counted in the text as
                // both read it, tabs and line breaks removed: removing them can join the
                // password's characters again in the path, where it is not a secret.
                let read: String = text
                    .chars()
                    .filter(|c| !matches!(c, '\t' | '\r' | '\n'))
                    .collect();
                if read.matches(c.password.as_str()).count() == 1 {
                    assert!(
                        !redact_url(text).contains(&c.password),
                        "password in redact_url"
                    );
                }
            }
        }
        let _ = url.join_control("trackID=1");
        let _ = url.join_control(text);
    }

    if let Ok(url) = RtmpUrl::parse(text) {
        let _ = (
            url.host(),
            url.port(),
            url.is_tls(),
            url.app(),
            url.tc_url(),
        );
        let _ = (url.stream_key(), url.key_name(), url.has_credentials());
        let shown = url.to_string();
        assert_eq!(shown, url.redacted());
        let _ = format!("{url:?}");
        // The parts a server sees (host, port, app) survive printing and re-parsing (the key's
        // query may be masked by the redactor, so it is not compared).
        if let Ok(again) = RtmpUrl::parse(&shown) {
            assert_eq!(again.is_tls(), url.is_tls());
            assert_eq!(again.port(), url.port());
            assert!(!again.has_credentials());
        }
    }
});
