//! Progress as events: workers record what happened; one renderer shows it (indicatif bars on a TTY,
//! a plain line every few seconds otherwise) and the final report is built from the same counters.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::size::human_bytes;

/// A version or delete marker that could not be copied, and why.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Failure {
    pub bucket: String,
    pub key: String,
    pub version_id: String,
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
    /// Entries found the same though their ETags are not comparable: by checksum, by size alone.
    pub matched_by_checksum: AtomicU64,
    pub matched_by_size: AtomicU64,
    diverged: Mutex<Vec<Diverged>>,
    pub retries: AtomicU64,
    pub throttles: AtomicU64,
    pub window: AtomicUsize,
    /// How long each S3 request took (its answer, not its wait for a slot).
    pub latency: Latencies,
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

    pub fn matched_weakly(&self, by_checksum: u64, by_size: u64) {
        self.matched_by_checksum.fetch_add(by_checksum, Relaxed);
        self.matched_by_size.fetch_add(by_size, Relaxed);
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

    fn line(&self, started: Instant) -> String {
        let elapsed = started.elapsed().as_secs_f64().max(0.001);
        let done = self.done_entries();
        let bytes = self.copied_bytes.load(Relaxed);
        let listed = self.listed_entries.load(Relaxed);
        let listing = if self.listing_done.load(Relaxed) {
            ""
        } else {
            "+"
        };
        let mut line = format!(
            "{done}/{listed}{listing} entries, {} copied, {:.0} entries/s, {}/s, {} retries, {} failed",
            human_bytes(bytes),
            done as f64 / elapsed,
            human_bytes((bytes as f64 / elapsed) as u64),
            self.retries.load(Relaxed),
            self.failure_count(),
        );
        let in_step = self.already_done.load(Relaxed);
        if in_step > 0 {
            line.push_str(&format!(", {in_step} already in the destination"));
        }
        let throttles = self.throttles.load(Relaxed);
        if throttles > 0 {
            line.push_str(&format!(
                ", {throttles} SlowDowns (window {})",
                self.window.load(Relaxed)
            ));
        }
        line
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    Auto,
    Always,
    Never,
}

/// Draws progress until dropped.
pub struct Renderer {
    task: Option<tokio::task::JoinHandle<()>>,
    stop: std::sync::Arc<tokio::sync::Notify>,
}

impl Renderer {
    pub fn start(
        progress: std::sync::Arc<Progress>,
        mode: ProgressMode,
        label: &'static str,
    ) -> Self {
        let stop = std::sync::Arc::new(tokio::sync::Notify::new());
        let bars = match mode {
            ProgressMode::Never => None,
            ProgressMode::Always => Some(true),
            ProgressMode::Auto => Some(std::io::stderr().is_terminal()),
        };
        let task = bars.map(|bars| {
            let stop = stop.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                if bars {
                    draw_bar(&progress, started, label, &stop).await;
                } else {
                    loop {
                        tokio::select! {
                            _ = stop.notified() => break,
                            _ = tokio::time::sleep(Duration::from_secs(5)) => {
                                eprintln!("{label}: {}", progress.line(started));
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

async fn draw_bar(
    progress: &Progress,
    started: Instant,
    label: &'static str,
    stop: &tokio::sync::Notify,
) {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} ETA {eta}\n{msg}",
        )
        .expect("valid template"),
    );
    bar.set_prefix(label);
    loop {
        bar.set_length(progress.listed_entries.load(Relaxed));
        bar.set_position(progress.done_entries());
        bar.set_message(progress.line(started));
        tokio::select! {
            _ = stop.notified() => break,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
    bar.set_length(progress.listed_entries.load(Relaxed));
    bar.set_position(progress.done_entries());
    bar.finish_with_message(progress.line(started));
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
}
