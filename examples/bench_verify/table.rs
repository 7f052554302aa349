//! The main table of `bench_verify`: medians of every variant's rounds, and each variant's
//! rate against the raw loops two ways.
//!
//! Why two ways: the machine this runs on is a shared VM whose speed drifts by a third within
//! minutes. "vs raw" divides the median rates (what the goals name); "paired" divides
//! each round's rate by the raw loop's rate in the same round, a minute apart at most, and takes
//! the median of those ratios, so a slow stretch of the machine slows both sides of a ratio
//! instead of one.

/// One measured process.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub keys: u64,
    pub secs: f64,
    pub peak_kb: u64,
    /// User + system CPU seconds.
    pub cpu_secs: f64,
    /// The server's CPU seconds spent meanwhile (INFO `used_cpu_sys` + `used_cpu_user`).
    pub server_cpu_secs: f64,
}

impl Sample {
    pub fn rate(&self) -> f64 {
        self.keys as f64 / self.secs.max(1e-9)
    }
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return 0.0;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        f64::midpoint(v[n / 2 - 1], v[n / 2])
    }
}

/// A row: a variant's samples, one per round in round order.
pub struct Row<'a> {
    pub name: &'a str,
    pub conns: usize,
    pub samples: &'a [Sample],
    /// Compared with the raw loops (the raw loops themselves and redis-cli are not).
    pub compared: bool,
}

/// The median over rounds of `s`'s rate divided by `raw`'s rate in the same round.
fn paired(s: &[Sample], raw: &[Sample]) -> f64 {
    median(
        s.iter()
            .zip(raw)
            .map(|(a, b)| a.rate() / b.rate().max(1e-9))
            .collect(),
    )
}

/// Prints the table: `rows`, then `extra` (redis-cli), with ratios to `raw` and `raw_ttl`.
pub fn print(
    rows: &[Row<'_>],
    raw: Option<&[Sample]>,
    raw_ttl: Option<&[Sample]>,
    extra: &Row<'_>,
) {
    let rate_of = |s: &[Sample]| median(s.iter().map(Sample::rate).collect());
    println!();
    println!(
        "{:<28} {:>5} {:>9} {:>11} {:>10} {:>8} {:>11} {:>8} {:>8} {:>8} {:>8}",
        "tool (median of rounds)",
        "conns",
        "keys",
        "keys/s",
        "peak MB",
        "CPU s",
        "srv us/key",
        "vs raw",
        "vs +TTL",
        "paired",
        "p. +TTL"
    );
    let percent = |x: f64| format!("{:.0}%", 100.0 * x);
    for row in rows.iter().chain(std::iter::once(extra)) {
        let s = row.samples;
        let rate = rate_of(s);
        let peak = median(s.iter().map(|x| x.peak_kb as f64 / 1024.0).collect());
        let cpu = median(s.iter().map(|x| x.cpu_secs).collect());
        let server_us = median(
            s.iter()
                .map(|x| 1e6 * x.server_cpu_secs / (x.keys.max(1) as f64))
                .collect(),
        );
        let against = |reference: Option<&[Sample]>| {
            reference
                .filter(|_| row.compared)
                .map_or((String::new(), String::new()), |r| {
                    (percent(rate / rate_of(r)), percent(paired(s, r)))
                })
        };
        let (vs_raw, paired_raw) = against(raw);
        let (vs_ttl, paired_ttl) = against(raw_ttl);
        println!(
            "{:<28} {:>5} {:>9} {rate:>11.0} {peak:>10.1} {cpu:>8.2} {server_us:>11.2} {vs_raw:>8} {vs_ttl:>8} {paired_raw:>8} {paired_ttl:>8}",
            row.name, row.conns, s[0].keys
        );
    }
}
