//! `--metrics-addr HOST:PORT`: Prometheus metrics of a run on `/metrics`, encoded by prometheus-client
//! (OpenMetrics text). The counters are read from the run's `Progress` at each scrape, the same figures
//! the report ends with; requests by operation and outcome, and their latency, are recorded as they
//! answer (`s3::limit`, into `progress::RequestMetrics`). Every series carries the job's fingerprint and shard.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::progress::Progress;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

/// The text of one scrape.
pub fn encode(progress: &Progress, job: &str, shard: Option<&str>) -> String {
    let labels = [
        ("job_id".into(), job.to_string().into()),
        ("shard".into(), shard.unwrap_or("").to_string().into()),
    ];
    let mut registry = Registry::with_prefix_and_labels("s3_backfill", labels.into_iter());
    let counter = |value: u64| {
        let counter: Counter = Counter::default();
        counter.inc_by(value);
        counter
    };
    let gauge = |value: i64| {
        let gauge: Gauge = Gauge::default();
        gauge.set(value);
        gauge
    };
    let entries: Family<KindLabels, Counter> = Family::default();
    for (kind, value) in [
        ("version", progress.copied_versions.load(Relaxed)),
        ("delete_marker", progress.delete_markers.load(Relaxed)),
        ("already_done", progress.already_done.load(Relaxed)),
        ("failed", progress.failure_count()),
        (
            "skipped_after_failure",
            progress.skipped_after_failure.load(Relaxed),
        ),
    ] {
        entries
            .get_or_create(&KindLabels { kind: kind.into() })
            .inc_by(value);
    }
    registry.register(
        "entries",
        "Entries done, by kind (versions copied, delete markers written, already in the destination, failed)",
        entries,
    );
    registry.register(
        "copied_bytes",
        "Bytes copied",
        counter(progress.copied_bytes.load(Relaxed)),
    );
    registry.register(
        "multipart_copies",
        "Versions copied by UploadPartCopy",
        counter(progress.multipart_copies.load(Relaxed)),
    );
    registry.register(
        "retries",
        "Requests sent again",
        counter(progress.retries.load(Relaxed)),
    );
    registry.register(
        "throttles",
        "SlowDown answers",
        counter(progress.throttles.load(Relaxed)),
    );
    registry.register(
        "reconciled_writes",
        "Writes whose answer was lost and the destination showed applied",
        counter(progress.reconciled.load(Relaxed)),
    );
    registry.register(
        "listed_entries",
        "Entries listed so far",
        gauge(progress.listed_entries.load(Relaxed) as i64),
    );
    registry.register(
        "listing_complete",
        "1 once the listing (or input) has been read to the end",
        gauge(i64::from(progress.listing_done.load(Relaxed))),
    );
    registry.register(
        "in_flight_requests",
        "Requests sent and not answered",
        gauge(progress.in_flight.load(Relaxed) as i64),
    );
    registry.register(
        "window",
        "The concurrency window after SlowDowns (0 before the first)",
        gauge(progress.window.load(Relaxed) as i64),
    );
    registry.register(
        "requests",
        "S3 requests answered, by operation and outcome (ok or the error code)",
        progress.requests.requests(),
    );
    registry.register(
        "request_duration_seconds",
        "S3 request latency, by operation",
        progress.requests.latency(),
    );
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("metrics encode");
    text
}

/// The metrics endpoint; it stops serving when dropped (also on an early return).
pub struct Serving(tokio::task::JoinHandle<()>);

impl Drop for Serving {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Binds `addr` (an error here is the user's: a port in use) and serves `/metrics` until dropped.
pub async fn serve(
    addr: SocketAddr,
    progress: Arc<Progress>,
    job: String,
    shard: Option<String>,
) -> std::io::Result<Serving> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(address = %addr, "serving metrics on /metrics");
    Ok(Serving(tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            let (progress, job, shard) = (Arc::clone(&progress), job.clone(), shard.clone());
            tokio::spawn(async move {
                let mut request = vec![0; 4096];
                let mut read = 0;
                while read < request.len() {
                    match stream.read(&mut request[read..]).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => read += n,
                    }
                    if request[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                let head = String::from_utf8_lossy(&request[..read]);
                let path = head.split(' ').nth(1).unwrap_or("");
                let response = if head.starts_with("GET ") && path == "/metrics" {
                    let body = encode(&progress, &job, shard.as_deref());
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/openmetrics-text; version=1.0.0; \
                         charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                } else {
                    "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        .into()
                };
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scrape_names_every_figure_with_the_job_and_shard() {
        let progress = Progress::default();
        progress.listed(7, 0);
        progress.copied(crate::progress::Copied::Single { bytes: 10 });
        progress.requests.observe("CopyObject", "ok", 0.02);
        progress.requests.observe("CopyObject", "SlowDown", 0.01);
        let text = encode(&progress, "abc", Some("0/2"));
        for line in [
            "s3_backfill_entries_total{job_id=\"abc\",shard=\"0/2\",kind=\"version\"} 1",
            "s3_backfill_copied_bytes_total{job_id=\"abc\",shard=\"0/2\"} 10",
            "s3_backfill_listed_entries{job_id=\"abc\",shard=\"0/2\"} 7",
            "s3_backfill_requests_total{job_id=\"abc\",shard=\"0/2\",operation=\"CopyObject\",outcome=\"SlowDown\"} 1",
        ] {
            assert!(text.contains(line), "{line} not in:\n{text}");
        }
        assert!(
            text.contains("s3_backfill_request_duration_seconds_bucket{"),
            "{text}"
        );
    }
}
