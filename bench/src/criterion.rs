//! A markdown summary of the criterion benches' results (`target/criterion/<group>/<bench>/new`):
//! mean time per iteration, throughput, and the ratio to the group's baseline (retina's
//! packetizer, or a plain copy of the bytes).

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::Value;

/// The groups summarized, in order.
pub const GROUPS: &[&str] = &[
    "packetize_720p_gop",
    "split_annexb_720p_gop",
    "flv_720p_gop",
    "flv_sequence_header",
];

/// One benchmark's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    /// Criterion group.
    pub group: String,
    /// Benchmark function.
    pub function: String,
    /// Mean time per iteration, ns.
    pub mean_ns: f64,
    /// Bytes processed per iteration, when the group declares it.
    pub bytes: Option<u64>,
}

impl Estimate {
    /// Bytes per second.
    pub fn throughput(&self) -> Option<f64> {
        self.bytes
            .filter(|_| self.mean_ns > 0.0)
            .map(|b| b as f64 / (self.mean_ns * 1e-9))
    }
}

/// Parses one benchmark's `benchmark.json` and `estimates.json`.
pub fn parse(benchmark: &str, estimates: &str) -> Option<Estimate> {
    let b: Value = serde_json::from_str(benchmark).ok()?;
    let e: Value = serde_json::from_str(estimates).ok()?;
    Some(Estimate {
        group: b.get("group_id")?.as_str()?.to_string(),
        function: b.get("function_id")?.as_str()?.to_string(),
        mean_ns: e.get("mean")?.get("point_estimate")?.as_f64()?,
        bytes: b
            .get("throughput")
            .and_then(|t| t.get("Bytes"))
            .and_then(Value::as_u64),
    })
}

/// Reads every result of [`GROUPS`] under `dir`.
pub fn read(dir: &Path) -> Result<Vec<Estimate>> {
    let mut out = Vec::new();
    for group in GROUPS {
        let gdir = dir.join(group);
        let Ok(entries) = std::fs::read_dir(&gdir) else {
            continue;
        };
        for entry in entries.flatten() {
            let new = entry.path().join("new");
            let (Ok(b), Ok(e)) = (
                std::fs::read_to_string(new.join("benchmark.json")),
                std::fs::read_to_string(new.join("estimates.json")),
            ) else {
                continue;
            };
            if let Some(est) = parse(&b, &e) {
                out.push(est);
            }
        }
    }
    if out.is_empty() {
        anyhow::bail!("no criterion results under {}", dir.display());
    }
    out.sort_by(|a, b| {
        let g = |e: &Estimate| GROUPS.iter().position(|g| *g == e.group);
        g(a).cmp(&g(b)).then(a.function.cmp(&b.function))
    });
    Ok(out)
}

fn is_baseline(function: &str) -> bool {
    function.starts_with("retina") || function == "copy_lower_bound"
}

fn human_time(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.1} ns")
    }
}

/// The results as a markdown table.
pub fn markdown(estimates: &[Estimate]) -> String {
    let mut s = String::from(
        "| group | benchmark | time per iteration | throughput | throughput / baseline |\n\
         |---|---|---:|---:|---:|\n",
    );
    for e in estimates {
        let baseline = estimates
            .iter()
            .find(|b| b.group == e.group && is_baseline(&b.function))
            .and_then(Estimate::throughput);
        let ratio = match (e.throughput(), baseline) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
            _ => "–".into(),
        };
        let _ = writeln!(
            s,
            "| {} | {}{} | {} | {} | {} |",
            e.group,
            e.function,
            if is_baseline(&e.function) {
                " (baseline)"
            } else {
                ""
            },
            human_time(e.mean_ns),
            e.throughput().map_or("–".into(), |t| format!(
                "{:.2} GiB/s",
                t / (1u64 << 30) as f64
            )),
            ratio
        );
    }
    s
}

/// Prints the summary and appends it to `append` when given.
pub fn summarize(dir: &Path, append: Option<&Path>) -> Result<()> {
    let table = markdown(&read(dir)?);
    let section = format!("\n## Criterion micro-benchmarks\n\n{table}");
    println!("{section}");
    if let Some(path) = append {
        let mut text = std::fs::read_to_string(path).unwrap_or_default();
        text.push_str(&section);
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_compares_with_the_baseline() {
        let ours = parse(
            r#"{"group_id":"packetize_720p_gop","function_id":"ours_zero_copy",
                "throughput":{"Bytes":1000000}}"#,
            r#"{"mean":{"point_estimate":100000.0}}"#,
        )
        .expect("parses");
        assert_eq!(ours.throughput(), Some(1e10));
        let retina = Estimate {
            function: "retina_0_4_21".into(),
            mean_ns: 650_000.0,
            ..ours.clone()
        };
        let md = markdown(&[ours, retina]);
        assert!(
            md.contains("| ours_zero_copy | 100.00 µs | 9.31 GiB/s | 6.50× |"),
            "{md}"
        );
        assert!(md.contains("retina_0_4_21 (baseline)"), "{md}");
        assert!(parse("{}", "{}").is_none());
    }
}
