//! What the command line's benches share: pairs of operations timed
//! interleaved (A B, then B A, round after round, so that a drift of the
//! server or the machine falls on both sides alike) and reported as
//! medians and the ratio of the two.

use std::time::{Duration, Instant};

/// Rounds per pair: `CSFLE_BENCH_ROUNDS`, default 10.
pub fn rounds() -> usize {
    std::env::var("CSFLE_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(10)
}

/// Whether the pair `name` runs: every pair without filters on the
/// command line (`cargo bench --bench tools -- import`), else the pairs
/// whose name contains one of them. Flags (`--bench`) are not filters.
pub fn selected(name: &str) -> bool {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str()))
}

/// How long `f` takes, and what it returned.
pub fn timed<T>(f: impl FnOnce() -> T) -> (Duration, T) {
    let t = Instant::now();
    let out = f();
    (t.elapsed(), out)
}

/// A pair of operations timed against each other.
pub struct Pair<'a> {
    /// What the pair is called (and selected by).
    pub name: &'a str,
    /// Documents each run handles (for documents/s).
    pub docs: u64,
    /// Timed rounds.
    pub rounds: usize,
    /// The most `a` may take, in multiples of `b`, if there is a target.
    pub target: Option<f64>,
}

impl Pair<'_> {
    /// Runs `a` and `b` once each untimed (warm-up), then `rounds` times
    /// interleaved, and prints the medians and the ratio a/b against the
    /// target. Each run returns the time that counts (the setup of each
    /// run left out). Returns the ratio of the medians.
    pub fn run(
        &self,
        a_label: &str,
        mut a: impl FnMut() -> Duration,
        b_label: &str,
        mut b: impl FnMut() -> Duration,
    ) -> f64 {
        self.run_series(&mut [(a_label, &mut a), (b_label, &mut b)])
    }

    /// [`run`](Self::run) with more series after the first two, each timed
    /// in every round too (the order rotating from round to round) and
    /// reported with its median and the first series' ratio to it; the
    /// target applies to the first two. Returns the ratio of the first two
    /// medians.
    pub fn run_series(&self, series: &mut [(&str, &mut dyn FnMut() -> Duration)]) -> f64 {
        let (name, rounds, docs, target) = (self.name, self.rounds, self.docs, self.target);
        let n = series.len();
        eprintln!("{name}: warm-up");
        for (_, f) in series.iter_mut() {
            f();
        }
        let mut times: Vec<Vec<f64>> = vec![Vec::with_capacity(rounds); n];
        for r in 0..rounds {
            // A B, then B A (and with more series, each first in turn).
            let order: Vec<usize> = if r % 2 == 0 {
                (0..n).map(|i| (i + r / 2) % n).collect()
            } else {
                (0..n).rev().map(|i| (i + r / 2) % n).collect()
            };
            for i in order {
                times[i].push((series[i].1)().as_secs_f64());
            }
            let these: Vec<String> = times.iter().map(|t| format!("{:.3} s", t[r])).collect();
            eprintln!("{name}: round {}/{rounds}: {}", r + 1, these.join(" / "));
        }
        let medians: Vec<f64> = times.iter().map(|t| median(t)).collect();
        println!("{name}: {docs} documents, {rounds} rounds interleaved");
        for ((label, _), (m, v)) in series.iter().zip(medians.iter().zip(&times)) {
            println!(
                "  {label:<48} median {m:>8.3} s  {:>9.0} docs/s  [{:.3} – {:.3}]",
                docs as f64 / m,
                min(v),
                max(v)
            );
        }
        let ratio_to = |j: usize| {
            let per_round: Vec<f64> = times[0].iter().zip(&times[j]).map(|(a, b)| a / b).collect();
            (
                medians[0] / medians[j],
                median(&per_round),
                min(&per_round),
                max(&per_round),
            )
        };
        let (ratio, per_round, lo, hi) = ratio_to(1);
        let verdict = match target {
            Some(t) if ratio <= t => format!("; target ≤ {t:.2}×: met"),
            Some(t) => format!("; target ≤ {t:.2}×: NOT met"),
            None => String::new(),
        };
        println!(
            "  ratio of the medians {ratio:.3}× (per round: median {per_round:.3}×, [{lo:.3} – {hi:.3}]){verdict}"
        );
        for (j, (label, _)) in series.iter().enumerate().skip(2) {
            let (r, per_round, lo, hi) = ratio_to(j);
            println!(
                "  against {label}: {r:.3}× (per round: median {per_round:.3}×, [{lo:.3} – {hi:.3}])"
            );
        }
        ratio
    }
}

/// The median of `v` (the mean of the middle two for an even count).
pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}
