//! The TLS options of `push` and `pull`: `--tls-ca FILE` and `--tls-insecure`, checked before
//! anything is opened or connects.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use mpegcoder::types::redact_url;
use mpegcoder::{TlsOptions, Transport};

/// Certificate checks for `rtsps://` and `rtmps://`.
#[derive(Debug, Clone, Default, Args)]
pub struct TlsArgs {
    /// Trust the CA certificates of this PEM file for rtsps:// and rtmps://, beside the
    /// system's (may be given more than once).
    #[arg(long = "tls-ca", value_name = "FILE")]
    pub ca: Vec<PathBuf>,
    /// Do not verify the certificates of rtsps:// and rtmps:// servers (chain, host name,
    /// dates): the connection is encrypted, but anyone may be at the other end. A warning is
    /// printed on every run.
    #[arg(long = "tls-insecure")]
    pub insecure: bool,
}

impl TlsArgs {
    /// The options, after checking that the CA files load and that `urls` can run over TLS
    /// with `transport`; prints the warning line of `--tls-insecure`.
    pub fn options(&self, urls: &[&str], transport: Transport) -> Result<TlsOptions> {
        let mut options = TlsOptions::default().with_insecure(self.insecure);
        for path in &self.ca {
            options = options.with_ca_file(path.clone());
        }
        // RFC 7826 §19.2: rtsps secures the connection, and only RTP interleaved on it is
        // protected; RTP over UDP would need SRTP (RFC 3711), which is not implemented.
        if transport == Transport::Udp {
            if let Some(url) = urls.iter().find(|u| scheme_is(u, "rtsps")) {
                bail!(
                    "{}: rtsps:// carries RTP inside the TLS connection; --transport udp would \
                     need SRTP, which is not supported (use --transport tcp)",
                    redact_url(url)
                );
            }
        }
        let any_tls = urls
            .iter()
            .any(|u| scheme_is(u, "rtsps") || scheme_is(u, "rtmps"));
        if any_tls || !self.ca.is_empty() {
            options.validate()?;
        }
        if self.insecure {
            eprintln!(
                "warning: --tls-insecure: certificates of rtsps:// and rtmps:// servers are not \
                 verified; the connection is encrypted, but the server is not authenticated"
            );
        }
        Ok(options)
    }
}

fn scheme_is(url: &str, scheme: &str) -> bool {
    url.trim()
        .split_once("://")
        .is_some_and(|(s, _)| s.eq_ignore_ascii_case(scheme))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udp_with_rtsps_is_refused_before_anything_opens() {
        let args = TlsArgs::default();
        let e = args
            .options(&["rtmp://h/a/b", "rtsps://u:secret@h/x"], Transport::Udp)
            .expect_err("udp over rtsps");
        let line = e.to_string();
        assert!(line.contains("SRTP") && line.contains("rtsps://"), "{line}");
        assert!(!line.contains("secret"), "{line}");
        assert!(args.options(&["rtsps://h/x"], Transport::Tcp).is_ok());
        assert!(args.options(&["rtsp://h/x"], Transport::Udp).is_ok());
    }

    #[test]
    fn a_missing_ca_file_is_named() {
        let args = TlsArgs {
            ca: vec![PathBuf::from("/nonexistent/ca.pem")],
            insecure: false,
        };
        let e = args
            .options(&["rtmps://h/a/b"], Transport::Tcp)
            .expect_err("missing file");
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
    }
}
