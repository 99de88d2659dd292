//! Wake-up error of `sleep_until` on this machine: how late after its deadline a sleeping
//! thread gets control back. Prints p50 / p99 / max in microseconds for the precise sleeper
//! (default tail), for a plain OS sleep (no tail), and for a paced 60 fps run through the pacer.
//!
//! `cargo bench -p mpegcoder-pacer --bench sleep_accuracy` (set `SLEEP_BENCH_SAMPLES` to change
//! the sample count, default 5000). Under `cargo test` it only runs a few samples as a smoke test.

use std::time::Duration;

use mpegcoder_pacer::clock::SleepTail;
use mpegcoder_pacer::{Clock, Decision, MonotonicClock, Pacer, PacerConfig, TimeBase};

/// Deterministic pseudo-random delays (xorshift64).
struct Delays(u64);

impl Delays {
    /// A delay between 0.2 ms and 20 ms.
    fn next(&mut self) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        Duration::from_micros(200 + self.0 % 19_800)
    }
}

fn report(name: &str, mut errors_us: Vec<f64>) {
    errors_us.sort_by(f64::total_cmp);
    let pick = |q: f64| {
        let i = ((errors_us.len() as f64 - 1.0) * q).round() as usize;
        errors_us.get(i).copied().unwrap_or(f64::NAN)
    };
    println!(
        "{name:<48} n={:<5} p50={:>8.1} µs  p99={:>8.1} µs  max={:>8.1} µs",
        errors_us.len(),
        pick(0.5),
        pick(0.99),
        errors_us.last().copied().unwrap_or(f64::NAN),
    );
}

/// Wake-up errors of sleeping until `samples` deadlines a random 0.2–20 ms ahead, for each
/// clock; the clocks take turns sample by sample, so that they all see the same machine load.
fn sleepers(clocks: &[MonotonicClock], samples: usize) -> Vec<Vec<f64>> {
    let mut delays = Delays(0x9e37_79b9_7f4a_7c15);
    let mut errors = vec![Vec::with_capacity(samples); clocks.len()];
    for _ in 0..samples {
        for (clock, errors) in clocks.iter().zip(errors.iter_mut()) {
            let deadline = clock.now() + delays.next();
            clock.sleep_until(deadline);
            let woke = clock.now();
            errors.push(woke.saturating_duration_since(deadline).as_secs_f64() * 1e6);
        }
    }
    errors
}

/// Send-time errors of a 60 fps stream paced by the pacer on the monotonic clock: how late
/// after each frame's release instant the sender thread is back with the frame.
fn paced(clock: &MonotonicClock, frames: i64) -> Vec<f64> {
    let config = PacerConfig::default().with_max_lead(Duration::ZERO);
    let tb = TimeBase::new(1, 90_000);
    let Ok(mut pacer) = Pacer::new(config, tb) else {
        return Vec::new();
    };
    pacer.start(clock.now());
    let mut errors = Vec::new();
    for n in 0..frames {
        // 60 fps on a 90 kHz clock: 1500 ticks a frame.
        if let Decision::Send(r) = pacer.schedule(n * 1500, n % 60 == 0, clock.now()) {
            clock.sleep_until(r.at);
            let sent = clock.now();
            errors.push(sent.saturating_duration_since(r.at).as_secs_f64() * 1e6);
            pacer.released(sent);
        }
    }
    errors
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let samples = if full {
        std::env::var("SLEEP_BENCH_SAMPLES")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(5000)
    } else {
        20
    };
    println!("sleep_until wake-up error (deadline → return), {samples} samples in all");
    let tails = [
        ("precise, default", SleepTail::DEFAULT),
        ("spin only", tail(200, 200)),
        ("spin only", tail(500, 500)),
        ("yield, then spin", tail(1000, 100)),
        ("plain thread::sleep", SleepTail::NONE),
    ];
    let clocks: Vec<MonotonicClock> = tails
        .iter()
        .map(|&(_, t)| MonotonicClock::with_tail(t))
        .collect();
    let per_clock = samples / tails.len();
    for ((name, t), errors) in tails.iter().zip(sleepers(&clocks, per_clock)) {
        report(&describe(name, *t), errors);
    }
    let frames = i64::try_from(samples / 4).unwrap_or(0);
    report(
        "pacer, 60 fps, default tail",
        paced(&MonotonicClock::new(), frames),
    );
}

fn tail(margin_us: u64, spin_us: u64) -> SleepTail {
    SleepTail::new(
        Duration::from_micros(margin_us),
        Duration::from_micros(spin_us),
    )
}

fn describe(name: &str, tail: SleepTail) -> String {
    format!(
        "{name} (margin {} µs, spin {} µs)",
        tail.margin.as_micros(),
        tail.spin.as_micros()
    )
}
