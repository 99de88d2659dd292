//! `mpegcoder probe INPUT [--json] [--framemd5 PATH]`: a video's parameters, and optionally the
//! MD5 of every decoded frame (the same hash as `ffmpeg -f framemd5` for yuv420p video).

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use mpegcoder::codec::{Decoder, DecoderOptions, FrameCountSource, PixelLayout, VideoParams};

/// Arguments of `mpegcoder probe`.
#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// Input file or URL.
    pub input: OsString,
    /// Print the parameters as JSON.
    #[arg(long)]
    pub json: bool,
    /// Decode every frame and write one line per frame, `<index> <md5hex>` (index from 0), to
    /// PATH; `-` writes them to stdout instead of the parameters.
    #[arg(long, value_name = "PATH")]
    pub framemd5: Option<PathBuf>,
    /// Trust the header: do not read a local file's packets to count frames exactly and
    /// measure GOP size and B-frames.
    #[arg(long)]
    pub header_only: bool,
}

/// Runs the subcommand.
pub fn run(args: &ProbeArgs) -> Result<()> {
    let options = DecoderOptions::default().with_output(PixelLayout::Yuv420p);
    let mut decoder = Decoder::open(&args.input, options)?;
    if !args.header_only && Path::new(&args.input).is_file() {
        decoder.build_index()?;
    }
    let hashes_to_stdout = args.framemd5.as_deref() == Some(Path::new("-"));
    if !hashes_to_stdout {
        let mut out = io::stdout().lock();
        if args.json {
            print_json(&mut out, decoder.url(), decoder.params())?;
        } else {
            print_text(&mut out, decoder.url(), decoder.params())?;
        }
        out.flush().context("writing to stdout")?;
    }
    if let Some(path) = &args.framemd5 {
        if hashes_to_stdout {
            write_framemd5(&mut decoder, io::stdout().lock())
                .context("writing frame hashes to stdout")?;
        } else {
            let file =
                File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
            write_framemd5(&mut decoder, BufWriter::new(file))
                .with_context(|| format!("writing frame hashes to {}", path.display()))?;
        }
    }
    Ok(())
}

fn write_framemd5(decoder: &mut Decoder, mut out: impl Write) -> Result<()> {
    while let Some(frame) = decoder.next_frame()? {
        writeln!(out, "{} {}", frame.index, frame.md5_hex()?)?;
    }
    out.flush()?;
    Ok(())
}

fn print_json(out: &mut impl Write, url: &str, params: &VideoParams) -> Result<()> {
    let mut value = serde_json::to_value(params).context("serializing the parameters")?;
    if let Some(map) = value.as_object_mut() {
        map.insert("input".into(), url.into());
    }
    writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
    Ok(())
}

fn print_text(out: &mut impl Write, url: &str, p: &VideoParams) -> Result<()> {
    let opt = |v: Option<String>| v.unwrap_or_else(|| "unknown".into());
    let count_note = match p.frame_count_source {
        FrameCountSource::Container => "exact, from the container",
        FrameCountSource::Index => "exact, counted",
        FrameCountSource::Estimate => "estimated",
        _ => "unknown",
    };
    writeln!(out, "input:        {url}")?;
    writeln!(out, "codec:        {} ({})", p.codec, p.pixel_format)?;
    writeln!(out, "size:         {}x{}", p.width, p.height)?;
    writeln!(
        out,
        "frame rate:   {} ({:.3} fps), average {} ({:.3} fps)",
        p.frame_rate,
        p.frame_rate.as_f64(),
        p.avg_frame_rate,
        p.avg_frame_rate.as_f64()
    )?;
    writeln!(out, "time base:    {}", p.time_base)?;
    writeln!(
        out,
        "duration:     {}",
        opt(p.duration_s.map(|d| format!("{d:.3} s")))
    )?;
    writeln!(out, "frames:       {} ({count_note})", p.frame_count)?;
    writeln!(
        out,
        "bit rate:     {}",
        opt(p.bit_rate.map(|b| format!("{b} b/s")))
    )?;
    writeln!(
        out,
        "GOP size:     {}",
        opt(p.gop_size.map(|g| g.to_string()))
    )?;
    writeln!(
        out,
        "max B-frames: {}",
        opt(p.max_b_frames.map(|b| b.to_string()))
    )?;
    Ok(())
}
