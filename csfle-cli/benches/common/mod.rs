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
        let (name, rounds, docs, target) = (self.name, self.rounds, self.docs, self.target);
        eprintln!("{name}: warm-up");
        a();
        b();
        let mut ta = Vec::with_capacity(rounds);
        let mut tb = Vec::with_capacity(rounds);
        for r in 0..rounds {
            if r % 2 == 0 {
                ta.push(a());
                tb.push(b());
            } else {
                tb.push(b());
                ta.push(a());
            }
            eprintln!(
                "{name}: round {}/{rounds}: {:.3} s / {:.3} s",
                r + 1,
                ta[r].as_secs_f64(),
                tb[r].as_secs_f64()
            );
        }
        let secs = |v: &[Duration]| v.iter().map(Duration::as_secs_f64).collect::<Vec<_>>();
        let (sa, sb) = (secs(&ta), secs(&tb));
        let per_round: Vec<f64> = sa.iter().zip(&sb).map(|(a, b)| a / b).collect();
        let (ma, mb) = (median(&sa), median(&sb));
        let ratio = ma / mb;
        let line = |label: &str, m: f64, v: &[f64]| {
            println!(
                "  {label:<48} median {m:>8.3} s  {:>9.0} docs/s  [{:.3} – {:.3}]",
                docs as f64 / m,
                min(v),
                max(v)
            );
        };
        println!("{name}: {docs} documents, {rounds} rounds interleaved");
        line(a_label, ma, &sa);
        line(b_label, mb, &sb);
        let verdict = match target {
            Some(t) if ratio <= t => format!("; target ≤ {t:.2}×: met"),
            Some(t) => format!("; target ≤ {t:.2}×: NOT met"),
            None => String::new(),
        };
        println!(
            "  ratio of the medians {ratio:.3}× (per round: median {:.3}×, [{:.3} – {:.3}]){verdict}",
            median(&per_round),
            min(&per_round),
            max(&per_round),
        );
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
