//! HTTP-style authentication for RTSP (RFC 2326 §14 refers to RFC 2068/2617): Basic
//! (RFC 7617) and Digest (RFC 2617, RFC 7616) with MD5 and SHA-256, `qop=auth`, and the `-sess`
//! variants.

use std::fmt::Write as _;

use base64::Engine as _;
use md5::{Digest as _, Md5};
use sha2::Sha256;

use super::url::Credentials;

/// Digest hash algorithms (RFC 7616 §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestAlgorithm {
    /// MD5 (the RFC 2617 default when `algorithm` is absent).
    Md5,
    /// MD5-sess.
    Md5Sess,
    /// SHA-256.
    Sha256,
    /// SHA-256-sess.
    Sha256Sess,
}

impl DigestAlgorithm {
    fn parse(s: &str) -> Option<DigestAlgorithm> {
        match s.to_ascii_uppercase().as_str() {
            "MD5" => Some(DigestAlgorithm::Md5),
            "MD5-SESS" => Some(DigestAlgorithm::Md5Sess),
            "SHA-256" => Some(DigestAlgorithm::Sha256),
            "SHA-256-SESS" => Some(DigestAlgorithm::Sha256Sess),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            DigestAlgorithm::Md5 => "MD5",
            DigestAlgorithm::Md5Sess => "MD5-sess",
            DigestAlgorithm::Sha256 => "SHA-256",
            DigestAlgorithm::Sha256Sess => "SHA-256-sess",
        }
    }

    fn is_sess(self) -> bool {
        matches!(self, DigestAlgorithm::Md5Sess | DigestAlgorithm::Sha256Sess)
    }

    /// Preference when a server offers several (RFC 7616 §3.7: the strongest first).
    fn strength(self) -> u8 {
        match self {
            DigestAlgorithm::Sha256 | DigestAlgorithm::Sha256Sess => 2,
            DigestAlgorithm::Md5 | DigestAlgorithm::Md5Sess => 1,
        }
    }

    /// The lowercase hex digest of `data`.
    pub fn hex(self, data: &str) -> String {
        let bytes: Vec<u8> = match self {
            DigestAlgorithm::Md5 | DigestAlgorithm::Md5Sess => {
                Md5::digest(data.as_bytes()).to_vec()
            }
            DigestAlgorithm::Sha256 | DigestAlgorithm::Sha256Sess => {
                Sha256::digest(data.as_bytes()).to_vec()
            }
        };
        let mut s = String::with_capacity(bytes.len() * 2);
        for b in bytes {
            let _ = write!(s, "{b:02x}");
        }
        s
    }
}

/// A Digest challenge from a `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestChallenge {
    /// `realm`.
    pub realm: String,
    /// `nonce`.
    pub nonce: String,
    /// `opaque`, echoed back.
    pub opaque: Option<String>,
    /// `algorithm`.
    pub algorithm: DigestAlgorithm,
    /// The server offers `qop=auth`.
    pub qop_auth: bool,
    /// `stale=true`: the nonce expired but the credentials were right (RFC 7616 §3.3).
    pub stale: bool,
}

/// One challenge from a `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// `Basic realm="…"`.
    Basic {
        /// The realm.
        realm: String,
    },
    /// `Digest …`.
    Digest(DigestChallenge),
    /// A scheme or digest algorithm this crate does not implement.
    Unsupported(String),
}

impl Challenge {
    fn rank(&self) -> u8 {
        match self {
            Challenge::Digest(d) => 1 + d.algorithm.strength(),
            Challenge::Basic { .. } => 1,
            Challenge::Unsupported(_) => 0,
        }
    }
}

/// Parses every challenge in the given `WWW-Authenticate` values (a value may hold several,
/// comma-separated: RFC 7235 §4.1).
pub fn parse_challenges<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<Challenge> {
    let mut out = Vec::new();
    for value in values {
        for (scheme, params) in split_challenges(value) {
            let get = |name: &str| {
                params
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.clone())
            };
            if scheme.eq_ignore_ascii_case("basic") {
                out.push(Challenge::Basic {
                    realm: get("realm").unwrap_or_default(),
                });
            } else if scheme.eq_ignore_ascii_case("digest") {
                let algorithm = match get("algorithm") {
                    None => Some(DigestAlgorithm::Md5),
                    Some(a) => DigestAlgorithm::parse(&a),
                };
                let (Some(algorithm), Some(nonce)) = (algorithm, get("nonce")) else {
                    out.push(Challenge::Unsupported(format!(
                        "Digest algorithm={}",
                        get("algorithm").unwrap_or_default()
                    )));
                    continue;
                };
                let qop_auth = get("qop")
                    .is_some_and(|q| q.split(',').any(|v| v.trim().eq_ignore_ascii_case("auth")));
                out.push(Challenge::Digest(DigestChallenge {
                    realm: get("realm").unwrap_or_default(),
                    nonce,
                    opaque: get("opaque"),
                    algorithm,
                    qop_auth,
                    stale: get("stale").is_some_and(|s| s.eq_ignore_ascii_case("true")),
                }));
            } else {
                out.push(Challenge::Unsupported(scheme));
            }
        }
    }
    out
}

/// The challenge to answer: Digest SHA-256 over Digest MD5 over Basic.
pub fn best_challenge(challenges: &[Challenge]) -> Option<&Challenge> {
    challenges
        .iter()
        .filter(|c| c.rank() > 0)
        .max_by_key(|c| c.rank())
}

/// Splits a header value into (scheme, [(name, value)]) challenges.
fn split_challenges(value: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut out: Vec<(String, Vec<(String, String)>)> = Vec::new();
    let mut rest = value.trim();
    while !rest.is_empty() {
        rest = rest.trim_start_matches([',', ' ', '\t']);
        if rest.is_empty() {
            break;
        }
        let tok_end = rest
            .find(|c: char| c == '=' || c == ',' || c.is_whitespace())
            .unwrap_or(rest.len());
        let token = &rest[..tok_end];
        let after = rest[tok_end..].trim_start();
        if token.is_empty() && after.len() == rest.len() {
            // A stray '=': skip it.
            let mut chars = rest.chars();
            chars.next();
            rest = chars.as_str();
            continue;
        }
        if after.starts_with('=') && !after.starts_with("==") || out.is_empty() && token.is_empty()
        {
            // name=value parameter of the current challenge.
            let after = after.strip_prefix('=').unwrap_or(after).trim_start();
            let (val, remain) = if let Some(q) = after.strip_prefix('"') {
                let mut v = String::new();
                let mut chars = q.char_indices();
                let mut end = q.len();
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some((_, n)) = chars.next() {
                                v.push(n);
                            }
                        }
                        '"' => {
                            end = i + 1;
                            break;
                        }
                        c => v.push(c),
                    }
                }
                (v, q.get(end..).unwrap_or(""))
            } else {
                let e = after.find(',').unwrap_or(after.len());
                (after[..e].trim().to_string(), &after[e..])
            };
            if let Some(last) = out.last_mut() {
                last.1.push((token.to_string(), val));
            }
            rest = remain;
        } else {
            // A new challenge: auth-scheme, possibly followed by a token68 (ignored).
            out.push((token.to_string(), Vec::new()));
            rest = after;
        }
    }
    out
}

/// Answers a challenge for each request (RFC 7616 §3.4), keeping the nonce count.
#[derive(Debug, Clone)]
pub struct Authenticator {
    challenge: Challenge,
    nc: u32,
    cnonce_seed: u64,
}

impl Authenticator {
    /// An authenticator for `challenge`; `cnonce_seed` makes client nonces unpredictable to
    /// the server (give it a random value).
    pub fn new(challenge: Challenge, cnonce_seed: u64) -> Authenticator {
        Authenticator {
            challenge,
            nc: 0,
            cnonce_seed,
        }
    }

    /// The challenge being answered.
    pub fn challenge(&self) -> &Challenge {
        &self.challenge
    }

    /// The `Authorization` header value for a request.
    pub fn authorization(&mut self, creds: &Credentials, method: &str, uri: &str) -> String {
        match &self.challenge {
            Challenge::Basic { .. } | Challenge::Unsupported(_) => {
                let raw = format!("{}:{}", creds.username, creds.password);
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(raw)
                )
            }
            Challenge::Digest(d) => {
                self.nc = self.nc.wrapping_add(1);
                let cnonce = DigestAlgorithm::Sha256.hex(&format!(
                    "{:016x}:{}:{}",
                    self.cnonce_seed, d.nonce, self.nc
                ));
                let cnonce = cnonce.get(..16).unwrap_or(&cnonce).to_string();
                let qop = d.qop_auth.then_some((self.nc, cnonce.as_str()));
                let response = digest_response(d, creds, method, uri, qop);
                let mut h = format!(
                    "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", response=\"{}\"",
                    quote(&creds.username),
                    quote(&d.realm),
                    quote(&d.nonce),
                    quote(uri),
                    response
                );
                if d.algorithm != DigestAlgorithm::Md5 {
                    let _ = write!(h, ", algorithm={}", d.algorithm.name());
                }
                if let Some(o) = &d.opaque {
                    let _ = write!(h, ", opaque=\"{}\"", quote(o));
                }
                if let Some((nc, cnonce)) = qop {
                    let _ = write!(h, ", qop=auth, nc={nc:08x}, cnonce=\"{cnonce}\"");
                }
                h
            }
        }
    }
}

fn quote(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// The Digest `response` value (RFC 2617 §3.2.2, RFC 7616 §3.4.1). `qop`: the nonce count and
/// client nonce when answering with `qop=auth`.
pub fn digest_response(
    challenge: &DigestChallenge,
    creds: &Credentials,
    method: &str,
    uri: &str,
    qop: Option<(u32, &str)>,
) -> String {
    let alg = challenge.algorithm;
    let mut ha1 = alg.hex(&format!(
        "{}:{}:{}",
        creds.username, challenge.realm, creds.password
    ));
    if alg.is_sess() {
        let cnonce = qop.map(|(_, c)| c).unwrap_or("");
        ha1 = alg.hex(&format!("{ha1}:{}:{cnonce}", challenge.nonce));
    }
    let ha2 = alg.hex(&format!("{method}:{uri}"));
    match qop {
        Some((nc, cnonce)) => alg.hex(&format!(
            "{ha1}:{}:{nc:08x}:{cnonce}:auth:{ha2}",
            challenge.nonce
        )),
        None => alg.hex(&format!("{ha1}:{}:{ha2}", challenge.nonce)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn creds(u: &str, p: &str) -> Credentials {
        Credentials {
            username: u.into(),
            password: p.into(),
        }
    }

    #[test]
    fn rfc2617_worked_example() {
        // RFC 2617 §3.5.
        let ch = parse_challenges([
            "Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", \
             nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", \
             opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
        ]);
        let Some(Challenge::Digest(d)) = ch.first() else {
            panic!("{ch:?}")
        };
        assert!(d.qop_auth && !d.stale);
        assert_eq!(d.algorithm, DigestAlgorithm::Md5);
        assert_eq!(
            d.opaque.as_deref(),
            Some("5ccc069c403ebaf9f0171e9517f40e41")
        );
        let r = digest_response(
            d,
            &creds("Mufasa", "Circle Of Life"),
            "GET",
            "/dir/index.html",
            Some((1, "0a4f113b")),
        );
        assert_eq!(r, "6629fae49393a05397450978507c4ef1");
    }

    #[test]
    fn rfc7616_worked_example_md5_and_sha256() {
        // RFC 7616 §3.9.1: one 401 with two challenges, SHA-256 first.
        let header_sha = "Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", \
            algorithm=SHA-256, nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", \
            opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"";
        let header_md5 = "Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", \
            algorithm=MD5, nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", \
            opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"";
        let all = parse_challenges([header_md5, header_sha]);
        assert_eq!(all.len(), 2);
        let Some(Challenge::Digest(best)) = best_challenge(&all) else {
            panic!()
        };
        assert_eq!(best.algorithm, DigestAlgorithm::Sha256);
        let c = creds("Mufasa", "Circle of Life");
        let cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
        assert_eq!(
            digest_response(best, &c, "GET", "/dir/index.html", Some((1, cnonce))),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
        let Some(Challenge::Digest(md5)) = all.first() else {
            panic!()
        };
        assert_eq!(
            digest_response(md5, &c, "GET", "/dir/index.html", Some((1, cnonce))),
            "8ca523f5e9506fed4657c9700eebdbec"
        );
    }

    #[test]
    fn several_challenges_in_one_value_and_basic() {
        let all = parse_challenges([
            "Basic realm=\"r\", Digest realm=\"r\", nonce=\"n, with comma\", stale=TRUE",
        ]);
        assert_eq!(all.len(), 2);
        assert_eq!(all[0], Challenge::Basic { realm: "r".into() });
        let Challenge::Digest(d) = &all[1] else {
            panic!()
        };
        assert_eq!(d.nonce, "n, with comma");
        assert!(d.stale && !d.qop_auth);
        assert!(matches!(best_challenge(&all), Some(Challenge::Digest(_))));
        let mut a = Authenticator::new(all[0].clone(), 1);
        // RFC 7617 §2 example.
        assert_eq!(
            a.authorization(&creds("Aladdin", "open sesame"), "OPTIONS", "rtsp://h/"),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        let none = parse_challenges([
            "Negotiate abc==",
            "Digest algorithm=SHA-512-256, nonce=\"x\"",
        ]);
        assert!(best_challenge(&none).is_none());
        assert!(parse_challenges(["", ",,, =", "Digest"])
            .iter()
            .all(|c| c.rank() < 3));
    }

    #[test]
    fn authenticator_counts_nonces_and_formats_header() {
        let ch = parse_challenges(["Digest realm=\"R\", nonce=\"N\", qop=\"auth\", opaque=\"O\""]);
        let mut a = Authenticator::new(ch[0].clone(), 42);
        let c = creds("u", "p");
        let h1 = a.authorization(&c, "ANNOUNCE", "rtsp://h/x");
        let h2 = a.authorization(&c, "SETUP", "rtsp://h/x/streamid=0");
        assert!(
            h1.contains("nc=00000001") && h2.contains("nc=00000002"),
            "{h1} {h2}"
        );
        assert!(
            h1.starts_with("Digest username=\"u\", realm=\"R\", nonce=\"N\", uri=\"rtsp://h/x\"")
        );
        assert!(h1.contains("opaque=\"O\"") && h1.contains("qop=auth"));
        assert!(!h1.contains("algorithm"));
        // The header carries the response for its own cnonce.
        let cnonce = h1.split("cnonce=\"").nth(1).unwrap().trim_end_matches('"');
        let Challenge::Digest(d) = &ch[0] else {
            panic!()
        };
        let expect = digest_response(d, &c, "ANNOUNCE", "rtsp://h/x", Some((1, cnonce)));
        assert!(h1.contains(&format!("response=\"{expect}\"")));
        // No qop: RFC 2069 compatible form.
        let ch = parse_challenges(["Digest realm=\"R\", nonce=\"N\""]);
        let mut a = Authenticator::new(ch[0].clone(), 42);
        let h = a.authorization(&c, "OPTIONS", "rtsp://h/x");
        assert!(!h.contains("qop") && !h.contains("cnonce"));
    }
}
