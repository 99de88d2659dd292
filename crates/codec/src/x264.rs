//! The names libx264 accepts for its preset, tune and profile, checked before it opens.
//!
//! libx264 itself reports a wrong name only on its own stderr line (`x264 [error]: invalid
//! preset 'x'`, written before FFmpeg's logging takes over) and FFmpeg then fails with a bare
//! "Invalid argument". [`X264Option::check`] says instead which option, which value and what
//! is accepted, without opening anything. The rules follow x264's `common/base.c`:
//!
//! - Presets: `ultrafast` … `placebo`, compared without regard to case; x264 also takes the
//!   preset's number (`0` = ultrafast … `9` = placebo), and so does this check.
//! - Tunes: one or more of the names joined by `,` (x264 also splits at `.`, `/`, `-` and
//!   `+`), without regard to case. At most one of the psycho-visual tunings (`film`,
//!   `animation`, `grain`, `stillimage`, `psnr`, `ssim`) may be used; x264 would ignore the
//!   second with a warning. `fastdecode` and `zerolatency` combine with anything.
//! - Profiles: `baseline`, `main` and `high`. x264 knows `high10`, `high422` and `high444`
//!   too, but they only lift limits (bit depth, chroma format, lossless coding) that the
//!   [`crate::Encoder`] never uses: it always encodes 8-bit 4:2:0 (`yuv420p`), for which
//!   `high` is the highest profile there is (H.264 Annex A.2.4). Naming one of them is most
//!   likely a wish for 10-bit or 4:4:4 output, which this encoder cannot give, so they are
//!   refused with that reason rather than silently producing a High profile stream.

use std::fmt;

/// libx264's presets, fastest first.
pub const X264_PRESETS: &[&str] = &[
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
];

/// libx264's tunes (the psycho-visual ones first, then the two that combine with any).
pub const X264_TUNES: &[&str] = &[
    "film",
    "animation",
    "grain",
    "stillimage",
    "psnr",
    "ssim",
    "fastdecode",
    "zerolatency",
];

/// The tunes of which at most one may be used (x264's "psy tunings").
const PSY_TUNES: &[&str] = &["film", "animation", "grain", "stillimage", "psnr", "ssim"];

/// The H.264 profiles the 8-bit 4:2:0 encoder accepts.
pub const X264_PROFILES: &[&str] = &["baseline", "main", "high"];

/// Profiles x264 knows that do not apply to 8-bit 4:2:0 output.
const HIGH_BIT_DEPTH_PROFILES: &[&str] = &["high10", "high422", "high444"];

/// Which of libx264's named options a value is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum X264Option {
    /// `preset`.
    Preset,
    /// `tune`.
    Tune,
    /// `profile`.
    Profile,
}

impl X264Option {
    /// The option's name (`preset`, `tune`, `profile`).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            X264Option::Preset => "preset",
            X264Option::Tune => "tune",
            X264Option::Profile => "profile",
        }
    }

    /// The names accepted.
    #[must_use]
    pub fn accepted(self) -> &'static [&'static str] {
        match self {
            X264Option::Preset => X264_PRESETS,
            X264Option::Tune => X264_TUNES,
            X264Option::Profile => X264_PROFILES,
        }
    }

    /// Checks `value`. The error is why it is refused, naming what is accepted, e.g. `not a
    /// libx264 preset (accepted: ultrafast, superfast, …)`; the caller adds the option's
    /// name and the value as the user spelled them.
    pub fn check(self, value: &str) -> Result<(), String> {
        let accepted = || format!("accepted: {}", self.accepted().join(", "));
        match self {
            X264Option::Preset => {
                let known = X264_PRESETS.iter().any(|p| p.eq_ignore_ascii_case(value))
                    || matches!(value.as_bytes(), [b'0'..=b'9']);
                if known {
                    Ok(())
                } else {
                    Err(format!("not a libx264 preset ({})", accepted()))
                }
            }
            X264Option::Tune => {
                let mut psy: Option<&str> = None;
                let mut any = false;
                for part in value
                    .split([',', '.', '/', '-', '+'])
                    .filter(|p| !p.is_empty())
                {
                    any = true;
                    let Some(name) = X264_TUNES.iter().find(|t| t.eq_ignore_ascii_case(part))
                    else {
                        return Err(format!(
                            "{part:?} is not a libx264 tune ({}; fastdecode and zerolatency \
                             combine with one other, e.g. \"film,zerolatency\")",
                            accepted()
                        ));
                    };
                    if PSY_TUNES.contains(name) {
                        if let Some(first) = psy {
                            return Err(format!(
                                "{first} and {name} cannot be combined: at most one of {} \
                                 (fastdecode and zerolatency combine with any)",
                                PSY_TUNES.join(", ")
                            ));
                        }
                        psy = Some(name);
                    }
                }
                if any {
                    Ok(())
                } else {
                    Err(format!("no tune named ({})", accepted()))
                }
            }
            X264Option::Profile => {
                if X264_PROFILES.iter().any(|p| p.eq_ignore_ascii_case(value)) {
                    Ok(())
                } else if HIGH_BIT_DEPTH_PROFILES
                    .iter()
                    .any(|p| p.eq_ignore_ascii_case(value))
                {
                    Err(format!(
                        "the encoder makes 8-bit 4:2:0 video, for which high is the highest \
                         profile ({})",
                        accepted()
                    ))
                } else {
                    Err(format!("not an H.264 profile of libx264 ({})", accepted()))
                }
            }
        }
    }
}

impl fmt::Display for X264Option {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_names_or_numbers() {
        for p in X264_PRESETS {
            assert_eq!(X264Option::Preset.check(p), Ok(()));
        }
        assert_eq!(X264Option::Preset.check("VeryFast"), Ok(()));
        assert_eq!(X264Option::Preset.check("3"), Ok(()));
        let e = X264Option::Preset.check("warp-speed").expect_err("unknown");
        assert!(e.contains("ultrafast, superfast, veryfast"), "{e}");
        assert!(e.ends_with("placebo)"), "{e}");
        assert!(X264Option::Preset.check("").is_err());
        assert!(X264Option::Preset.check("10").is_err());
    }

    #[test]
    fn tunes_combine_as_x264_allows() {
        for t in X264_TUNES {
            assert_eq!(X264Option::Tune.check(t), Ok(()));
        }
        for ok in [
            "fastdecode,zerolatency",
            "film,zerolatency",
            "ZeroLatency",
            "film+fastdecode",
        ] {
            assert_eq!(X264Option::Tune.check(ok), Ok(()), "{ok}");
        }
        let e = X264Option::Tune
            .check("film,grain")
            .expect_err("two psy tunes");
        assert!(e.contains("film and grain cannot be combined"), "{e}");
        let e = X264Option::Tune
            .check("zerolatency,fast")
            .expect_err("unknown part");
        assert!(e.starts_with("\"fast\" is not a libx264 tune"), "{e}");
        assert!(e.contains("film, animation"), "{e}");
        assert!(X264Option::Tune.check(",").is_err());
    }

    #[test]
    fn profiles_are_those_of_8_bit_4_2_0() {
        for p in ["baseline", "main", "high", "High"] {
            assert_eq!(X264Option::Profile.check(p), Ok(()), "{p}");
        }
        let e = X264Option::Profile.check("high10").expect_err("10-bit");
        assert!(e.contains("8-bit 4:2:0"), "{e}");
        assert!(e.contains("accepted: baseline, main, high"), "{e}");
        let e = X264Option::Profile
            .check("extended")
            .expect_err("not x264's");
        assert!(e.contains("accepted: baseline, main, high"), "{e}");
    }
}
