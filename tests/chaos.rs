//! Faults between the engine and SeaweedFS: a seeded, fault-injecting HTTP proxy in the harness answers
//! some requests with 503 SlowDown or 500 InternalError, some CopyObjects with a 200 whose body is an
//! error, and forwards others but then loses the answer (the connection is cut after the server applied
//! the request, or the answer is cut short). The independent listing afterwards must show every source
//! history exactly: nothing missing, nothing duplicated, order kept.

mod common;

use std::sync::atomic::Ordering::Relaxed;

use common::chaos_proxy::{ChaosProxy, Faults, Kind, MALFORMED};
use common::*;

/// Multi-version keys, delete markers in the middle and on top, a null version, and a multipart object.
async fn seed(bucket: &str) -> usize {
    put(bucket, "null-first", "before versioning").await;
    enable_versioning(bucket).await;
    let keys = 400;
    futures::future::join_all((0..keys).map(|index| {
        let bucket = bucket.to_string();
        async move {
            let key = format!("k/{index:04}");
            for version in 0..(1 + index % 4) {
                put(&bucket, &key, format!("{index} v{version}")).await;
            }
            if index % 7 == 0 {
                delete(&bucket, &key).await;
            }
            if index % 21 == 0 {
                put(&bucket, &key, "after the marker").await;
            }
        }
    }))
    .await;
    put(bucket, "null-first", "after").await;
    let big = vec![7u8; 12 << 20];
    put(bucket, "z-big", big).await;
    keys
}

/// Both senders of the copies: the direct one (aws-sigv4 on hyper, the default) and aws-sdk-s3's
/// (`S3_BACKFILL_SEND=sdk`; what a bucket whose endpoint is not plain SigV4 gets).
#[tokio::test(flavor = "multi_thread")]
async fn faults_of_every_kind_leave_the_destination_exact() {
    faults_of_every_kind("direct", "s3-backfill/").await;
    faults_of_every_kind("sdk", "aws-sdk-rust/").await;
}

async fn faults_of_every_kind(sender: &str, agent: &str) {
    let source = create_bucket(&format!("chaos-{sender}-src"), false).await;
    let destination = create_bucket(&format!("chaos-{sender}-dst"), true).await;
    seed(&source).await;
    let proxy = ChaosProxy::start(
        server().port,
        Faults {
            slow_down: 50,
            internal_error: 20,
            reset_after_applied: 10,
            truncated: 10,
            error_in_200: 20,
            reset_before: 10,
            delayed: 10,
            delay: std::time::Duration::from_millis(1500),
            ..Faults::default()
        },
        20261126,
    );
    let report = tempfile::NamedTempFile::new().unwrap();
    let output = copy_via(&proxy.endpoint, &source, &destination)
        .env("S3_BACKFILL_SEND", sender)
        .args(["--multipart-threshold", "6MiB", "--part-size", "5MiB"])
        .args([
            "--concurrency",
            "32",
            "--no-checkpoint",
            "--progress",
            "never",
        ])
        .args(["--report", report.path().to_str().unwrap()])
        .output()
        .unwrap();
    let counts = &proxy.counts;
    let summary = format!(
        "{} requests: {} SlowDown, {} InternalError, {} reset before forwarding, {} reset after applied, {} truncated, {} delayed, {} 200-with-error",
        counts.requests.load(Relaxed),
        counts.slow_down.load(Relaxed),
        counts.internal_error.load(Relaxed),
        counts.reset_before.load(Relaxed),
        counts.reset_after_applied.load(Relaxed),
        counts.truncated.load(Relaxed),
        counts.delayed.load(Relaxed),
        counts.error_in_200.load(Relaxed),
    );
    eprintln!("{summary}");
    assert!(output.status.success(), "{summary}\n{}", text(&output));
    for (name, count) in [
        ("SlowDown", &counts.slow_down),
        ("InternalError", &counts.internal_error),
        ("reset before", &counts.reset_before),
        ("reset after", &counts.reset_after_applied),
        ("truncated", &counts.truncated),
        ("delayed", &counts.delayed),
        ("200-with-error", &counts.error_in_200),
    ] {
        assert!(count.load(Relaxed) > 0, "no {name} was injected: {summary}");
    }
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(report.path()).unwrap()).unwrap();
    assert!(json["retries"].as_u64().unwrap() > 0, "{json}");
    assert!(json["throttles"].as_u64().unwrap() > 0, "{json}");

    // The copies went out through the sender asked for.
    let agents = counts.copy_agents.lock().unwrap().clone();
    assert!(!agents.is_empty());
    assert!(
        agents.iter().all(|a| a.starts_with(agent)),
        "{sender}: {:?}",
        agents.iter().find(|a| !a.starts_with(agent))
    );
    assert_same_histories(&source, &destination).await;
    assert!(same_bytes(&source, &destination, "z-big").await);
}

/// Answers no well-behaved server sends, to the writes (issue 26): a chunk size of
/// `ffffffffffffffff` wrapped the direct sender's unchecked sum and panicked (exit 101, the run
/// gone). Each is an answer of unknown outcome now: the write is reconciled, nothing crashes, and the
/// destination is exact, through both senders.
#[tokio::test(flavor = "multi_thread")]
async fn malformed_answers_to_writes_are_reconciled_and_never_crash() {
    for sender in ["direct", "sdk"] {
        let source = create_bucket(&format!("malformed-{sender}-src"), true).await;
        let destination = create_bucket(&format!("malformed-{sender}-dst"), true).await;
        futures::future::join_all((0..90).map(|index| {
            let source = source.clone();
            async move {
                let key = format!("m/{index:03}");
                for version in 0..(1 + index % 3) {
                    put(&source, &key, format!("{index} v{version}")).await;
                }
                if index % 5 == 0 {
                    delete(&source, &key).await;
                }
            }
        }))
        .await;
        put(&source, "z-big", vec![3u8; 12 << 20]).await;
        let proxy = ChaosProxy::start(
            server().port,
            Faults {
                kinds: &[Kind::Copy, Kind::PartCopy, Kind::Delete],
                malformed: 250,
                ..Faults::default()
            },
            20261208,
        );
        let output = copy_via(&proxy.endpoint, &source, &destination)
            .env("S3_BACKFILL_SEND", sender)
            .args(["--multipart-threshold", "6MiB", "--part-size", "5MiB"])
            .args([
                "--request-timeout",
                "5",
                "--no-checkpoint",
                "--progress",
                "never",
            ])
            .output()
            .unwrap();
        let injected = proxy.counts.malformed.load(Relaxed) as usize;
        assert_eq!(
            output.status.code(),
            Some(0),
            "{sender}: {injected} malformed\n{}",
            text(&output)
        );
        assert!(!text(&output).contains("panicked"), "{}", text(&output));
        assert!(
            injected >= MALFORMED.len(),
            "{sender}: only {injected} of the {} malformed answers were sent",
            MALFORMED.len()
        );
        assert_same_histories(&source, &destination).await;
        assert!(same_bytes(&source, &destination, "z-big").await);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn access_denied_midway_fails_those_keys_and_the_rerun_completes_them() {
    let source = create_bucket("deny-src", true).await;
    let destination = create_bucket("deny-dst", true).await;
    for index in 0..120 {
        let key = format!("d/{index:03}");
        put(&source, &key, "one").await;
        put(&source, &key, "two!").await;
    }
    // The destination stops accepting copies after the first 100 requests.
    let proxy = ChaosProxy::start(
        server().port,
        Faults {
            deny_copies_after: 100,
            ..Faults::default()
        },
        7,
    );
    let copy = |endpoint: &str| copy_with_checkpoint(&source, &destination, endpoint);
    let output = copy(&proxy.endpoint);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(text(&output).contains("access denied"), "{}", text(&output));
    assert!(proxy.counts.denied.load(Relaxed) > 0);
    // Some keys got in, the others are recorded as failed: nothing half-copied out of order.
    let partial = histories(&destination, "").await;
    assert!(
        !partial.is_empty() && partial.len() < 120,
        "{}",
        partial.len()
    );
    // Access restored: the rerun retries the failed keys and the destination is exact. (The same
    // endpoint: the checkpoint belongs to the job at that endpoint.)
    proxy.counts.healed.store(true, Relaxed);
    let output = copy(&proxy.endpoint);
    assert!(output.status.success(), "{}", text(&output));
    assert_same_histories(&source, &destination).await;
}

/// One `copy` of the whole bucket through `endpoint`, with a checkpoint kept across calls.
fn copy_with_checkpoint(source: &str, destination: &str, endpoint: &str) -> std::process::Output {
    let checkpoint = work_dir().join(format!("{destination}.checkpoint"));
    copy_via(endpoint, source, destination)
        .args(["--checkpoint", checkpoint.to_str().unwrap()])
        .args(["--concurrency", "8", "--progress", "never"])
        .args(["--multipart-threshold", "5MiB", "--part-size", "5MiB"])
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn archived_source_versions_fail_with_the_restore_command_and_the_rest_is_copied() {
    let source = create_bucket("cold-src", true).await;
    let destination = create_bucket("cold-dst", true).await;
    for index in 0..20 {
        let key = format!("warm/{index:02}");
        put(&source, &key, "one").await;
        put(&source, &key, "two!").await;
    }
    put(&source, "glacier/a", "archived").await;
    put(&source, "glacier/a", "archived too").await;
    // Archived and above the multipart threshold: UploadPartCopy is refused the same way.
    put(&source, "glacier/big", vec![3u8; 6 << 20]).await;
    let proxy = ChaosProxy::start(
        server().port,
        Faults {
            archived: Some("/glacier/"),
            ..Faults::default()
        },
        11,
    );
    let output = copy_with_checkpoint(&source, &destination, &proxy.endpoint);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let out = text(&output);
    assert!(proxy.counts.archived.load(Relaxed) >= 2);
    for key in ["glacier/a", "glacier/big"] {
        let line = out
            .lines()
            .find(|line| line.starts_with(&format!("failed: s3://{source}/{key} ")))
            .unwrap_or_else(|| panic!("no failure line for {key}: {out}"));
        assert!(line.contains("archived"), "{line}");
        assert!(
            line.contains(&format!(
                "aws s3api restore-object --bucket {source} --key '{key}' --version-id "
            )),
            "{line}"
        );
    }
    // The other keys are all there; the archived ones have nothing (their first version failed).
    let partial = histories(&destination, "").await;
    assert_eq!(partial.len(), 20, "{partial:?}");
    assert!(partial.iter().all(|(key, _)| key.starts_with("warm/")));
    // Restored: the same command copies what was left, and the destination is exact.
    proxy.counts.healed.store(true, Relaxed);
    let output = copy_with_checkpoint(&source, &destination, &proxy.endpoint);
    assert!(output.status.success(), "{}", text(&output));
    assert_same_histories(&source, &destination).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn faults_on_one_kind_of_request_only_listings_here_leave_the_destination_exact() {
    let source = create_bucket("listfault-src", true).await;
    let destination = create_bucket("listfault-dst", true).await;
    for index in 0..150 {
        let key = format!("{}/{index:03}", ["a", "b", "c"][index % 3]);
        put(&source, &key, "one").await;
        put(&source, &key, "two!").await;
    }
    // A third of the listings throttled, a tenth cut before they reach the server; nothing else.
    let proxy = ChaosProxy::start(
        server().port,
        Faults {
            kinds: &[Kind::List],
            slow_down: 300,
            reset_before: 100,
            ..Faults::default()
        },
        99,
    );
    let output = copy_with_checkpoint(&source, &destination, &proxy.endpoint);
    assert!(output.status.success(), "{}", text(&output));
    let counts = &proxy.counts;
    assert!(counts.slow_down.load(Relaxed) + counts.reset_before.load(Relaxed) > 0);
    // Every fault landed on a listing: the copies all went through on their first try.
    let lines = counts.request_lines.lock().unwrap().clone();
    let copies = lines.iter().filter(|l| l.starts_with("put ")).count();
    assert_eq!(copies, 300, "{lines:?}");
    assert_same_histories(&source, &destination).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_that_never_answers_is_timed_out_and_retried() {
    let source = create_bucket("hold-src", true).await;
    let destination = create_bucket("hold-dst", true).await;
    for index in 0..30 {
        let key = format!("h/{index:02}");
        put(&source, &key, "one").await;
        put(&source, &key, "two!").await;
    }
    // Three copies are never answered (nor forwarded): each attempt gives up after 2 s, the
    // destination shows the write did not happen, and it is sent again.
    let proxy = ChaosProxy::start(
        server().port,
        Faults {
            hold_copies: 3,
            ..Faults::default()
        },
        5,
    );
    let started = std::time::Instant::now();
    let output = copy_via(&proxy.endpoint, &source, &destination)
        .args([
            "--request-timeout",
            "2",
            "--no-checkpoint",
            "--progress",
            "never",
        ])
        .output()
        .unwrap();
    let took = started.elapsed();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_eq!(proxy.counts.held.load(Relaxed), 3);
    assert!(took < std::time::Duration::from_secs(40), "{took:?}");
    assert_same_histories(&source, &destination).await;
}

/// A write that lands after the tool gave up on it (issue 25): three copies held 3 s by the proxy and
/// then applied, the attempt's timeout 2 s. The run waits out the time such a write can still take
/// before it looks at the destination, finds it there and does not send it again (before, it looked
/// at once, found nothing and sent the copy again: once the late one landed, the key held that
/// version twice). Both senders.
#[tokio::test(flavor = "multi_thread")]
async fn a_copy_that_lands_after_its_attempt_timed_out_is_not_written_twice() {
    for sender in ["direct", "sdk"] {
        let source = create_bucket(&format!("late-{sender}-src"), true).await;
        let destination = create_bucket(&format!("late-{sender}-dst"), true).await;
        for index in 0..12 {
            let key = format!("l/{index:02}");
            put(&source, &key, "one").await;
            put(&source, &key, "two!").await;
        }
        let proxy = ChaosProxy::start(
            server().port,
            Faults {
                late_copies: 3,
                late_by: std::time::Duration::from_secs(3),
                ..Faults::default()
            },
            11,
        );
        let output = copy_via(&proxy.endpoint, &source, &destination)
            .env("S3_BACKFILL_SEND", sender)
            .args([
                "--request-timeout",
                "2",
                "--no-checkpoint",
                "--progress",
                "never",
            ])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(0), "{sender}: {}", text(&output));
        // Every late copy has reached the server before the destination is judged.
        let give_up = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while proxy.counts.late_applied.load(Relaxed) < 3 && std::time::Instant::now() < give_up {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(proxy.counts.late_applied.load(Relaxed), 3, "{sender}");
        assert_same_histories(&source, &destination).await;
    }
}

/// Issue 25: kill -9 while a copy is on its way to the server (a proxy queue holds it 4 s, then
/// forwards it, and the server applies it after the run died). The resume waits until that write can
/// no longer land — its attempt's timeout, recorded with its intent (3 s here), plus 5 s, plus the
/// heartbeat — then finds it on the destination and does not write it again. Before, it waited
/// `--resume-wait` (1 s) from the run's last journal write, found nothing, wrote the version, and the
/// late copy landed beside it: a duplicate. Both senders.
#[tokio::test(flavor = "multi_thread")]
async fn a_copy_that_lands_after_a_kill_is_found_by_the_resume_not_written_twice() {
    for sender in ["direct", "sdk"] {
        let source = create_bucket(&format!("killed-late-{sender}-src"), true).await;
        let destination = create_bucket(&format!("killed-late-{sender}-dst"), true).await;
        for index in 0..6 {
            let key = format!("k/{index}");
            put(&source, &key, "one").await;
            put(&source, &key, "two!").await;
        }
        let proxy = ChaosProxy::start(
            server().port,
            Faults {
                late_copies: 1,
                late_by: std::time::Duration::from_secs(4),
                ..Faults::default()
            },
            12,
        );
        let dir = tempfile::tempdir().unwrap();
        let checkpoint = dir.path().join("job.checkpoint");
        let run = || {
            let mut command = copy_via(&proxy.endpoint, &source, &destination);
            command
                .env("S3_BACKFILL_SEND", sender)
                .args(["--checkpoint", checkpoint.to_str().unwrap()])
                .args(["--resume-wait", "1", "--request-timeout", "3"])
                .args(["--progress", "never"]);
            command
        };
        let mut child = run()
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let give_up = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while proxy.counts.late.load(Relaxed) == 0 && std::time::Instant::now() < give_up {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(
            proxy.counts.late.load(Relaxed),
            1,
            "{sender}: no copy was held"
        );
        child.kill().unwrap(); // SIGKILL, the copy still on its way
        child.wait().unwrap();
        assert_eq!(
            proxy.counts.late_applied.load(Relaxed),
            0,
            "{sender}: landed too soon"
        );
        let output = run().output().unwrap();
        assert_eq!(output.status.code(), Some(0), "{sender}: {}", text(&output));
        // The late copy has reached the server before the destination is judged.
        let give_up = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while proxy.counts.late_applied.load(Relaxed) == 0 && std::time::Instant::now() < give_up {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(proxy.counts.late_applied.load(Relaxed), 1, "{sender}");
        assert_same_histories(&source, &destination).await;
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("can no longer land"),
            "{sender}: {}",
            text(&output)
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_during_a_request_that_never_answers_exits_within_the_grace_period() {
    let source = create_bucket("grace-src", true).await;
    let destination = create_bucket("grace-dst", true).await;
    for index in 0..10 {
        put(&source, &format!("g/{index}"), "one").await;
    }
    let proxy = ChaosProxy::start(
        server().port,
        Faults {
            hold_copies: 1_000,
            ..Faults::default()
        },
        6,
    );
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("job.checkpoint");
    let run = || {
        let mut command = copy_via(&proxy.endpoint, &source, &destination);
        command
            .args(["--checkpoint", checkpoint.to_str().unwrap()])
            .args([
                "--resume-wait",
                "1",
                "--request-timeout",
                "5",
                "--progress",
                "never",
            ]);
        command
    };
    let child = run()
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while proxy.counts.held.load(Relaxed) == 0 && std::time::Instant::now() < give_up {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(proxy.counts.held.load(Relaxed) > 0, "no copy was held");
    let interrupted = std::time::Instant::now();
    std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let took = interrupted.elapsed();
    assert_eq!(output.status.code(), Some(130), "{}", text(&output));
    // The default request timeout is 30 s; the grace period is 10 s.
    assert!(
        took < std::time::Duration::from_secs(14),
        "{took:?}: {}",
        text(&output)
    );
    assert!(text(&output).contains("abandoned"), "{}", text(&output));
    // Answers come again: the same command finishes the job exactly.
    proxy.counts.healed.store(true, Relaxed);
    let output = run().output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_same_histories(&source, &destination).await;
}

/// The destination's endpoint goes down in the middle of a run: the run stops with exit 3 (a
/// scheduler's "retry"), no entry is recorded as failed, and the rerun resumes to an exact copy.
#[tokio::test(flavor = "multi_thread")]
async fn an_endpoint_that_goes_down_mid_run_stops_with_exit_3_and_the_rerun_resumes() {
    let source = create_bucket("down-src", true).await;
    let destination = create_bucket("down-dst", true).await;
    for index in 0..40 {
        let key = format!("d/{index:02}");
        put(&source, &key, "one").await;
        put(&source, &key, "two!").await;
    }
    let proxy = ChaosProxy::start(
        server().port,
        Faults {
            down_after: 60,
            ..Faults::default()
        },
        9,
    );
    let checkpoint = work_dir().join(format!("{destination}.checkpoint"));
    let run = || {
        copy_via(&proxy.endpoint, &source, &destination)
            .args(["--checkpoint", &checkpoint.display().to_string()])
            .args([
                "--concurrency",
                "4",
                "--resume-wait",
                "0",
                "--progress",
                "never",
            ])
            .output()
            .unwrap()
    };
    let output = run();
    assert_eq!(output.status.code(), Some(3), "{}", text(&output));
    assert!(
        text(&output).contains("temporary error after every retry")
            && text(&output).contains("rerun the same command"),
        "{}",
        text(&output)
    );
    assert!(
        !text(&output).contains("failed: s3://"),
        "{}",
        text(&output)
    );
    proxy.counts.healed.store(true, Relaxed);
    let output = run();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_same_histories(&source, &destination).await;
}
