//! Watching a run while it goes, as an SRE would: timestamped progress lines off a terminal, JSON logs
//! that name each fault's key and the decision taken, the report rewritten mid-run, `status` live from
//! the checkpoint and "complete" after.

mod common;

use std::sync::atomic::Ordering::Relaxed;

use common::chaos_proxy::{ChaosProxy, Faults, Kind};
use common::*;

fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .filter(|line| line.starts_with('{'))
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_run_shows_progress_lines_a_live_report_and_a_live_status() {
    let source = create_bucket("live-src", true).await;
    let destination = create_bucket("live-dst", true).await;
    for index in 0..40 {
        let key = format!("l/{index:02}");
        put(&source, &key, "one").await;
        put(&source, &key, "two!").await;
    }
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("job.checkpoint");
    let report = dir.path().join("report.json");
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    // 80 copies and their HEADs at 20 requests a second: about 8 s.
    let child = command(&[
        "copy",
        &format!("s3://{source}"),
        &format!("s3://{destination}"),
        "--rate-limit",
        "20",
        "--checkpoint",
        checkpoint.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
        "--report-interval",
        "1",
        "--progress",
        "always",
        "--progress-interval",
        "1",
        "-v",
        "--log-format",
        "json",
        "--metrics-addr",
        &metrics_addr,
    ])
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    // Mid-run: the report says running, status shows counts that move and a live writer.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mid = loop {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        assert!(std::time::Instant::now() < deadline, "no live status");
        let Ok(written) = std::fs::read_to_string(&report) else {
            continue;
        };
        let running: serde_json::Value =
            serde_json::from_str(&written).expect("the report is whole");
        if running["state"] != "running" || running["copied_versions"].as_u64() == Some(0) {
            continue;
        }
        assert_eq!(running["schema_version"], 2);
        assert!(running["started_at"].as_str().unwrap().starts_with("20"));
        let status = offline(&[
            "status",
            "--checkpoint",
            checkpoint.to_str().unwrap(),
            "--json",
        ]);
        assert_eq!(status.status.code(), Some(0), "{}", text(&status));
        let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
        if status["done_entries"].as_u64().unwrap_or(0) > 0 {
            break status;
        }
    };
    let scrape = scrape(&metrics_addr);
    assert_eq!(mid["state"], "running", "{mid}");
    assert!(mid["listed_entries"].as_u64().unwrap() > 0, "{mid}");
    assert!(
        mid["shards"][0]["writer"]
            .as_str()
            .is_some_and(|w| !w.is_empty()),
        "{mid}"
    );
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    // Progress: timestamped text lines at the interval, with the position and windowed rates.
    let progress: Vec<&str> = stderr.lines().filter(|l| l.contains(" copy: ")).collect();
    assert!(progress.len() >= 3, "{stderr}");
    for line in &progress {
        assert!(line.starts_with("20") && line.contains("entries"), "{line}");
        assert!(
            line.contains("entries/s") && line.contains("in flight"),
            "{line}"
        );
    }
    // Logs: every other stderr line is a JSON object with a timestamp and a level.
    let logs = json_lines(&stderr);
    assert!(
        logs.iter()
            .any(|l| l["message"] == "copy started" && l["level"] == "INFO"),
        "{stderr}"
    );
    assert!(logs.iter().all(|l| l["timestamp"].is_string()), "{stderr}");
    // After: the report says finished, status says complete.
    let finished: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(finished["state"], "finished");
    assert_eq!(finished["copied_versions"], 80);
    // The scrape mid-run: every series labelled with the job, counters on their way to the report's.
    let scraped = |name: &str| -> u64 {
        scrape
            .lines()
            .filter(|l| l.starts_with(name) && l.contains("job_id=\""))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap() as u64)
            .sum()
    };
    let with = |name: &str, label: &str| -> u64 {
        scrape
            .lines()
            .filter(|l| l.starts_with(name) && l.contains(label))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap() as u64)
            .sum()
    };
    let versions = with("s3_backfill_entries_total{", "kind=\"version\"");
    let copies = with(
        "s3_backfill_requests_total{",
        "operation=\"CopyObject\",outcome=\"ok\"",
    );
    assert!(versions > 0 && versions <= 80, "{scrape}");
    assert!(copies > 0 && copies <= 80, "{scrape}");
    assert!(scraped("s3_backfill_listed_entries") > 0, "{scrape}");
    assert!(
        scrape.contains("s3_backfill_request_duration_seconds_bucket{"),
        "{scrape}"
    );
    assert!(
        scraped("s3_backfill_requests_total{") <= finished["requests"].as_u64().unwrap(),
        "{scrape}"
    );
    let status = offline(&[
        "status",
        "--checkpoint",
        checkpoint.to_str().unwrap(),
        "--json",
    ]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["state"], "complete", "{status}");
    assert_eq!(status["done_entries"], 80, "{status}");
    assert!(status["shards"][0]["writer"].is_null(), "{status}");
    assert_same_histories(&source, &destination).await;
}

/// Every fault injected on a copy shows up in the debug log as a JSON line naming the key and what the
/// engine decided (the write had been applied, or was sent again).
#[tokio::test(flavor = "multi_thread")]
async fn json_logs_name_each_faults_key_and_the_decision() {
    let source = create_bucket("logs-src", true).await;
    let destination = create_bucket("logs-dst", true).await;
    for index in 0..60 {
        put(&source, &format!("f/{index:02}"), format!("{index}")).await;
    }
    let proxy = ChaosProxy::start(
        server().port,
        Faults {
            kinds: &[Kind::Copy],
            reset_after_applied: 100,
            internal_error: 100,
            ..Faults::default()
        },
        11,
    );
    let output = copy_via(&proxy.endpoint, &source, &destination)
        .args(["--no-checkpoint", "--progress", "never", "-vv"])
        .args(["--log-format", "json"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let logs = json_lines(&stderr);
    let decisions: Vec<&serde_json::Value> = logs
        .iter()
        .filter(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("reconciled: "))
        })
        .collect();
    let injected =
        proxy.counts.reset_after_applied.load(Relaxed) + proxy.counts.internal_error.load(Relaxed);
    assert!(injected > 0, "the seed injected nothing");
    assert_eq!(decisions.len() as u64, injected, "{stderr}");
    for decision in &decisions {
        let key = decision["key"].as_str().expect("a key field");
        assert!(key.contains("f/"), "{decision}");
        assert_eq!(decision["level"], "DEBUG");
    }
    // Both outcomes happen: lost answers were applied, 500s were not.
    assert!(
        decisions
            .iter()
            .any(|d| d["message"].as_str().unwrap().contains("had been applied"))
    );
    assert!(
        decisions
            .iter()
            .any(|d| d["message"].as_str().unwrap().contains("sending it again"))
    );
    assert_same_histories(&source, &destination).await;
}

/// GET /metrics over a plain socket; the body.
fn scrape(addr: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("the metrics port answers");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_metrics_port_in_use_is_refused_before_any_write() {
    let source = create_bucket("busy-src", true).await;
    let destination = create_bucket("busy-dst", true).await;
    put(&source, "a", "one").await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let output = cli(&[
        "copy",
        &format!("s3://{source}"),
        &format!("s3://{destination}"),
        "--no-checkpoint",
        "--metrics-addr",
        &addr,
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(
        text(&output).contains(&format!("cannot serve metrics on {addr}")),
        "{}",
        text(&output)
    );
    assert!(histories(&destination, "").await.is_empty());
}

/// `status --job SRC DST` finds the job's default checkpoint where the copy ran, without its name.
#[tokio::test(flavor = "multi_thread")]
async fn status_finds_a_job_by_its_buckets() {
    let source = create_bucket("job-src", true).await;
    let destination = create_bucket("job-dst", true).await;
    put(&source, "a", "one").await;
    put(&source, "a", "two").await;
    let (src, dst) = (format!("s3://{source}"), format!("s3://{destination}"));
    let output = cli(&["copy", &src, &dst, "--progress", "never"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let output = offline(&["status", "--job", &src, &dst, "--json"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let status: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(status["state"], "complete", "{status}");
    assert_eq!(status["done_entries"], 2, "{status}");
    assert_eq!(status["shards"].as_array().unwrap().len(), 1, "{status}");
    let output = offline(&["status", "--job", &src, "s3://no-such-job"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(
        text(&output).contains("no checkpoint of a job"),
        "{}",
        text(&output)
    );
}
