//! Progress as events: workers record what happened; one renderer shows it (indicatif bars on a TTY,
//! a plain line every few seconds otherwise) and the final report is built from the same counters.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use serde::Serialize;

use crate::size::human_bytes;

/// A version or delete marker that could not be copied, and why.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Failure {
    pub bucket: String,
    pub key: String,
    pub version_id: String,
    /// What was being done: `CopyObject`, `multipart copy`, `DeleteObject`, ...
    pub operation: String,
    /// S3's error code (`AccessDenied`, `InvalidObjectState`, ...), or what went wrong on our side.
    pub code: String,
    pub reason: String,
}

/// A key whose destination history is not the source's nor a prefix of it (see `merge`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Diverged {
    /// The destination key.
    pub key: String,
    /// The first entry (1-based, oldest first) where the histories differ.
    pub position: u64,
    pub reason: String,
    /// `--on-diverged append` appended the missing source entries anyway.
    pub appended: bool,
}

/// A key left untouched because nothing proves one of its pairs the same or different (see `merge`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Unproven {
    /// The destination key.
    pub key: String,
    /// The entry (1-based, oldest first) nothing decides.
    pub position: u64,
    pub reason: String,
}

#[derive(Debug, Default)]
pub struct Progress {
    pub listed_entries: AtomicU64,
    pub listed_bytes: AtomicU64,
    pub listing_done: std::sync::atomic::AtomicBool,
    pub copied_versions: AtomicU64,
    pub multipart_copies: AtomicU64,
    pub delete_markers: AtomicU64,
    pub copied_bytes: AtomicU64,
    pub skipped_after_failure: AtomicU64,
    pub reconciled: AtomicU64,
    /// Entries the destination already held (an earlier run's, or anyone's): not written again.
    pub already_done: AtomicU64,
    pub already_done_bytes: AtomicU64,
    /// The write requests those entries would have taken.
    pub requests_saved: AtomicU64,
    /// Keys whose destination history was the source's already: nothing written.
    pub keys_in_step: AtomicU64,
    /// Keys with entries written (a dry run: to write).
    pub keys_written: AtomicU64,
    /// Entries found the same though their ETags are not comparable: by checksum, by reading their
    /// bytes (`--compare content`, with the bytes read from both sides), by size alone (`--compare size`).
    pub matched_by_checksum: AtomicU64,
    pub matched_by_content: AtomicU64,
    /// ... and by this machine's record of its own copies (see `replay::Provenance`).
    pub matched_by_record: AtomicU64,
    pub compared_bytes: AtomicU64,
    pub matched_by_size: AtomicU64,
    diverged: Mutex<Vec<Diverged>>,
    unproven: Mutex<Vec<Unproven>>,
    pub retries: AtomicU64,
    pub throttles: AtomicU64,
    pub window: AtomicUsize,
    /// Requests sent and not yet answered.
    pub in_flight: AtomicUsize,
    /// How long each S3 request took (its answer, not its wait for a slot).
    pub latency: Latencies,
    /// Requests by operation and outcome, and their latency, for `--metrics-addr`.
    pub requests: RequestMetrics,
    failures: Mutex<Vec<Failure>>,
}

/// Request latencies in buckets growing by 10% from 100 µs (to ~4 h): percentiles within 10%.
#[derive(Debug)]
pub struct Latencies {
    buckets: Vec<AtomicU64>,
}

const LATENCY_BUCKETS: usize = 200;
const LATENCY_BASE_MICROS: f64 = 100.0;
const LATENCY_GROWTH: f64 = 1.1;

impl Default for Latencies {
    fn default() -> Self {
        Latencies {
            buckets: (0..LATENCY_BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl Latencies {
    pub fn record(&self, took: std::time::Duration) {
        let micros = took.as_secs_f64() * 1e6;
        let bucket = if micros <= LATENCY_BASE_MICROS {
            0
        } else {
            ((micros / LATENCY_BASE_MICROS).ln() / LATENCY_GROWTH.ln()).ceil() as usize
        };
        self.buckets[bucket.min(LATENCY_BUCKETS - 1)].fetch_add(1, Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Relaxed)).sum()
    }

    /// The latency at or below which `fraction` of the requests answered (a bucket's upper bound), in ms.
    pub fn percentile_ms(&self, fraction: f64) -> f64 {
        let total = self.count();
        if total == 0 {
            return 0.0;
        }
        let wanted = (fraction * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (index, bucket) in self.buckets.iter().enumerate() {
            seen += bucket.load(Relaxed);
            if seen >= wanted {
                return LATENCY_BASE_MICROS * LATENCY_GROWTH.powi(index as i32) / 1000.0;
            }
        }
        LATENCY_BASE_MICROS * LATENCY_GROWTH.powi(LATENCY_BUCKETS as i32) / 1000.0
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Copied {
    Single { bytes: u64 },
    Multipart { bytes: u64 },
    DeleteMarker,
}

impl Progress {
    pub fn listed(&self, entries: u64, bytes: u64) {
        self.listed_entries.fetch_add(entries, Relaxed);
        self.listed_bytes.fetch_add(bytes, Relaxed);
    }

    pub fn copied(&self, what: Copied) {
        match what {
            Copied::Single { bytes } => {
                self.copied_versions.fetch_add(1, Relaxed);
                self.copied_bytes.fetch_add(bytes, Relaxed);
            }
            Copied::Multipart { bytes } => {
                self.copied_versions.fetch_add(1, Relaxed);
                self.multipart_copies.fetch_add(1, Relaxed);
                self.copied_bytes.fetch_add(bytes, Relaxed);
            }
            Copied::DeleteMarker => {
                self.delete_markers.fetch_add(1, Relaxed);
            }
        }
    }

    pub fn failed(&self, failure: Failure, skipped_later_entries: u64) {
        tracing::info!(
            bucket = %failure.bucket,
            key = ?failure.key,
            version = %failure.version_id,
            operation = %failure.operation,
            code = %failure.code,
            reason = %failure.reason,
            skipped_later_entries,
            "entry failed"
        );
        self.skipped_after_failure
            .fetch_add(skipped_later_entries, Relaxed);
        self.failures.lock().expect("failures lock").push(failure);
    }

    /// `entries` of a key (`bytes` in all, `requests` write requests to copy) were in the
    /// destination already.
    pub fn in_step(&self, entries: u64, bytes: u64, requests: u64) {
        self.already_done.fetch_add(entries, Relaxed);
        self.already_done_bytes.fetch_add(bytes, Relaxed);
        self.requests_saved.fetch_add(requests, Relaxed);
    }

    pub fn key_in_step(&self) {
        self.keys_in_step.fetch_add(1, Relaxed);
    }

    pub fn key_written(&self) {
        self.keys_written.fetch_add(1, Relaxed);
    }

    /// Bytes read from both sides to compare an undecided pair (`--compare content`).
    pub fn compared_content(&self, bytes: u64) {
        self.compared_bytes.fetch_add(bytes, Relaxed);
    }

    pub fn unproven(&self, key: Unproven) {
        self.unproven.lock().expect("unproven lock").push(key);
    }

    /// The unproven keys, in key order.
    pub fn unproven_keys(&self) -> Vec<Unproven> {
        let mut keys = self.unproven.lock().expect("unproven lock").clone();
        keys.sort_by(|a, b| a.key.cmp(&b.key));
        keys
    }

    pub fn diverged(&self, key: Diverged) {
        self.diverged.lock().expect("diverged lock").push(key);
    }

    /// The diverged keys, in key order.
    pub fn diverged_keys(&self) -> Vec<Diverged> {
        let mut keys = self.diverged.lock().expect("diverged lock").clone();
        keys.sort_by(|a, b| a.key.cmp(&b.key));
        keys
    }

    /// A write whose answer was lost turned out to have been applied.
    pub fn reconciled(&self) {
        self.reconciled.fetch_add(1, Relaxed);
    }

    pub fn retried(&self) {
        self.retries.fetch_add(1, Relaxed);
    }

    pub fn throttled(&self, window: usize) {
        self.throttles.fetch_add(1, Relaxed);
        self.window.store(window, Relaxed);
    }

    pub fn failures(&self) -> Vec<Failure> {
        self.failures.lock().expect("failures lock").clone()
    }

    pub fn failure_count(&self) -> u64 {
        self.failures.lock().expect("failures lock").len() as u64
    }

    pub fn done_entries(&self) -> u64 {
        self.copied_versions.load(Relaxed)
            + self.delete_markers.load(Relaxed)
            + self.already_done.load(Relaxed)
            + self.failure_count()
            + self.skipped_after_failure.load(Relaxed)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub operation: String,
    /// `ok`, or the error code.
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    pub operation: String,
}

type Latency = Family<OperationLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 1 ms to ~65 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// Requests as they answer: counted by operation and outcome, timed by operation.
#[derive(Debug)]
pub struct RequestMetrics {
    requests: Family<RequestLabels, Counter>,
    latency: Latency,
}

impl Default for RequestMetrics {
    fn default() -> Self {
        RequestMetrics {
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
        }
    }
}

impl RequestMetrics {
    pub fn observe(&self, operation: &'static str, outcome: &str, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                operation: operation.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
        self.latency
            .get_or_create(&OperationLabels {
                operation: operation.to_string(),
            })
            .observe(seconds);
    }
}

impl RequestMetrics {
    /// The requests counter family (shared: a clone counts into the same series).
    pub fn requests(&self) -> Family<RequestLabels, Counter> {
        self.requests.clone()
    }

    /// The latency histogram family (shared).
    pub fn latency(&self) -> Family<OperationLabels, Histogram, fn() -> Histogram> {
        self.latency.clone()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    /// Bars on a terminal, a timestamped line every interval otherwise.
    Auto,
    /// The same as auto (kept for scripts that ask for it).
    Always,
    /// One JSON object a line every interval, terminal or not.
    Json,
    /// Nothing until the summary.
    Never,
}

/// The figures of one progress line: totals, and rates over the interval since the previous line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Snapshot {
    pub listed: u64,
    pub listing_complete: bool,
    pub done: u64,
    pub bytes: u64,
    pub entries_per_second: f64,
    pub bytes_per_second: f64,
    pub in_flight: usize,
    pub retries: u64,
    pub slowdowns: u64,
    pub failed: u64,
    /// Seconds left at the interval's rate, once the total is known.
    pub eta_seconds: Option<u64>,
}

impl Snapshot {
    /// Now, with rates over the `seconds` since `previous`.
    pub fn take(progress: &Progress, previous: &Snapshot, seconds: f64) -> Snapshot {
        let done = progress.done_entries();
        let bytes = progress.copied_bytes.load(Relaxed);
        let listed = progress.listed_entries.load(Relaxed);
        let listing_complete = progress.listing_done.load(Relaxed);
        let seconds = seconds.max(0.001);
        let entries_per_second = done.saturating_sub(previous.done) as f64 / seconds;
        let eta_seconds = (listing_complete && entries_per_second > 0.0)
            .then(|| (listed.saturating_sub(done) as f64 / entries_per_second).ceil() as u64);
        Snapshot {
            listed,
            listing_complete,
            done,
            bytes,
            entries_per_second,
            bytes_per_second: bytes.saturating_sub(previous.bytes) as f64 / seconds,
            in_flight: progress.in_flight.load(Relaxed),
            retries: progress.retries.load(Relaxed),
            slowdowns: progress.throttles.load(Relaxed),
            failed: progress.failure_count(),
            eta_seconds,
        }
    }

    /// `12,000 of 40,000 entries (30%)`, or `12,000 entries (listing…)` while the total grows.
    fn position(&self) -> String {
        if self.listing_complete {
            let percent = if self.listed == 0 {
                100.0
            } else {
                self.done as f64 * 100.0 / self.listed as f64
            };
            format!(
                "{} of {} entries ({percent:.0}%)",
                thousands(self.done),
                thousands(self.listed)
            )
        } else {
            format!(
                "{} of {}+ entries (listing…)",
                thousands(self.done),
                thousands(self.listed)
            )
        }
    }

    /// The text after the position: rates, in flight, retries, failures, ETA.
    fn rest(&self) -> String {
        let mut line = format!(
            "{} copied; {} entries/s, {}/s; {} in flight, {} retries, {} SlowDowns, {} failed",
            human_bytes(self.bytes),
            thousands(self.entries_per_second.round() as u64),
            human_bytes(self.bytes_per_second as u64),
            self.in_flight,
            thousands(self.retries),
            thousands(self.slowdowns),
            thousands(self.failed),
        );
        if let Some(eta) = self.eta_seconds {
            line.push_str(&format!(", ETA {}", duration(eta)));
        }
        line
    }

    pub fn text(&self) -> String {
        format!("{}, {}", self.position(), self.rest())
    }
}

/// 1234567 as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Seconds as `1h02m`, `4m05s` or `9s`.
fn duration(seconds: u64) -> String {
    match seconds {
        s if s >= 3600 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        s if s >= 60 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    Bars,
    Lines,
    Json,
}

/// Draws progress until dropped.
pub struct Renderer {
    task: Option<tokio::task::JoinHandle<()>>,
    stop: std::sync::Arc<tokio::sync::Notify>,
}

impl Renderer {
    /// Starts drawing `progress` as `mode` asks, a line every `interval` off a terminal.
    pub fn start(
        progress: std::sync::Arc<Progress>,
        mode: ProgressMode,
        label: &'static str,
        interval: Duration,
    ) -> Self {
        let stop = std::sync::Arc::new(tokio::sync::Notify::new());
        let style = match mode {
            ProgressMode::Never => None,
            ProgressMode::Json => Some(Style::Json),
            ProgressMode::Auto | ProgressMode::Always if std::io::stderr().is_terminal() => {
                Some(Style::Bars)
            }
            ProgressMode::Auto | ProgressMode::Always => Some(Style::Lines),
        };
        let task = style.map(|style| {
            let stop = stop.clone();
            tokio::spawn(async move {
                if style == Style::Bars {
                    draw_bar(&progress, label, &stop).await;
                    return;
                }
                let mut previous = Snapshot::default();
                let mut at = Instant::now();
                loop {
                    tokio::select! {
                        _ = stop.notified() => break,
                        _ = tokio::time::sleep(interval) => {
                            let now = Snapshot::take(&progress, &previous, at.elapsed().as_secs_f64());
                            at = Instant::now();
                            previous = now;
                            if style == Style::Json {
                                let mut object = serde_json::to_value(now).unwrap_or_default();
                                object["time"] = crate::clock::now_rfc3339().into();
                                object["command"] = label.into();
                                eprintln!("{object}");
                            } else {
                                eprintln!("{} {label}: {}", crate::clock::now_rfc3339(), now.text());
                            }
                        }
                    }
                }
            })
        });
        Renderer { task, stop }
    }

    pub async fn finish(mut self) {
        self.stop.notify_one();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

async fn draw_bar(progress: &Progress, label: &'static str, stop: &tokio::sync::Notify) {
    let counting = "{prefix} [{elapsed_precise}] {wide_bar} {msg}";
    let known = "{prefix} [{elapsed_precise}] {wide_bar} ETA {eta}\n{msg}";
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(indicatif::ProgressStyle::with_template(counting).expect("valid template"));
    bar.set_prefix(label);
    let mut previous = Snapshot::default();
    let mut at = Instant::now();
    let mut total_known = false;
    loop {
        // Rates over the last second or so, not since the start.
        if at.elapsed() >= Duration::from_secs(1) {
            let now = Snapshot::take(progress, &previous, at.elapsed().as_secs_f64());
            at = Instant::now();
            previous = now;
            if now.listing_complete && !total_known {
                total_known = true;
                bar.set_style(
                    indicatif::ProgressStyle::with_template(known).expect("valid template"),
                );
            }
            bar.set_message(format!("{}, {}", now.position(), now.rest()));
        }
        bar.set_length(progress.listed_entries.load(Relaxed));
        bar.set_position(progress.done_entries());
        tokio::select! {
            _ = stop.notified() => break,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
    let now = Snapshot::take(progress, &previous, at.elapsed().as_secs_f64());
    bar.set_length(progress.listed_entries.load(Relaxed));
    bar.set_position(progress.done_entries());
    bar.finish_with_message(format!("{}, {}", now.position(), now.rest()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn latency_percentiles_are_within_ten_percent() {
        let latencies = Latencies::default();
        for ms in 1..=100u64 {
            latencies.record(Duration::from_millis(ms));
        }
        assert_eq!(latencies.count(), 100);
        for (fraction, exact) in [(0.5, 50.0), (0.95, 95.0), (0.99, 99.0)] {
            let got = latencies.percentile_ms(fraction);
            assert!(
                got >= exact && got <= exact * 1.1,
                "p{fraction}: {got} for {exact}"
            );
        }
        assert_eq!(Latencies::default().percentile_ms(0.5), 0.0);
    }

    #[test]
    fn a_line_has_windowed_rates_and_an_eta_only_once_the_total_is_known() {
        let progress = Progress::default();
        progress.listed(100, 0);
        progress.copied(Copied::Single { bytes: 1024 });
        let first = Snapshot::take(&progress, &Snapshot::default(), 1.0);
        assert_eq!(first.eta_seconds, None);
        assert!(
            first.text().starts_with("1 of 100+ entries (listing…)"),
            "{}",
            first.text()
        );
        for _ in 0..10 {
            progress.copied(Copied::Single { bytes: 1024 });
        }
        progress.listing_done.store(true, Relaxed);
        let second = Snapshot::take(&progress, &first, 2.0);
        assert_eq!(
            second.entries_per_second, 5.0,
            "10 entries in 2 s, not 11 since the start"
        );
        assert_eq!(second.eta_seconds, Some(18), "89 left at 5/s");
        assert!(
            second.text().starts_with("11 of 100 entries (11%)"),
            "{}",
            second.text()
        );
        assert!(second.text().ends_with("ETA 18s"), "{}", second.text());
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(999), "999");
    }
}
