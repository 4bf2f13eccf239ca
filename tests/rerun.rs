//! Reruns under any circumstances are safe and cheap: the destination is the truth, the checkpoint an
//! accelerator. Each test is one way a user or an operator reruns, interrupts or misuses a copy, and
//! each failed on the engine that trusted its checkpoint alone (it wrote every version again, skipped a
//! failed one, or copied an arbitrary subset of later changes, all with exit 0). What arrived is checked
//! with the independent listing.

mod common;

use std::path::Path;
use std::process::{Output, Stdio};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use common::chaos_proxy::{ChaosProxy, Faults};
use common::*;

/// Keys with several versions, delete markers between and on top, an empty object, a multipart
/// source (ETag `-N`), spread over two prefixes so the listing is split.
async fn seed(bucket: &str, keys: usize) {
    futures::future::join_all((0..keys).map(|index| {
        let bucket = bucket.to_string();
        async move {
            let key = format!("{}/{index:03}", if index % 2 == 0 { "a" } else { "b" });
            for version in 0..(1 + index % 3) {
                put(&bucket, &key, format!("{key} v{version}")).await;
            }
            if index % 5 == 0 {
                delete(&bucket, &key).await;
            }
            if index % 10 == 0 {
                put(&bucket, &key, "").await;
            }
        }
    }))
    .await;
    put_multipart(bucket, "m/multipart", 11 << 20, 1).await;
}

/// Every entry (versions and delete markers) in `bucket`.
async fn entry_count(bucket: &str) -> usize {
    histories(bucket, "")
        .await
        .iter()
        .map(|(_, h)| h.len())
        .sum()
}

fn report_of(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Entries a run wrote, from its report.
fn written(report: &serde_json::Value) -> u64 {
    report["copied_versions"].as_u64().unwrap() + report["delete_markers"].as_u64().unwrap()
}

fn copy_in(dir: &Path, source: &str, destination: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "copy".to_string(),
        format!("s3://{source}"),
        format!("s3://{destination}"),
        "--progress".into(),
        "never".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    command(&args).current_dir(dir).output().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_completed_copy_rerun_from_anywhere_writes_nothing() {
    let source = create_bucket("again-src", true).await;
    let destination = create_bucket("again-dst", true).await;
    seed(&source, 60).await;
    // The multipart source (5+5+1 MiB) is copied by parts in its own layout. On S3 the copy then has
    // the source's ETag; SeaweedFS's UploadPartCopy answers are not part MD5s, so there the copy is
    // proven by this machine's record of it (never by size alone, never by reading both).
    let parts: [&str; 0] = [];
    let first = tempfile::tempdir().unwrap();
    let output = copy_in(first.path(), &source, &destination, &parts);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_same_histories(&source, &destination).await;
    let before = entry_count(&destination).await;
    // Another working directory (no checkpoint there), no checkpoint at all, a discarded one, and the
    // same directory again (a completed checkpoint: a new pass, never "nothing to do" unchecked).
    let elsewhere = tempfile::tempdir().unwrap();
    for (dir, extra) in [
        (elsewhere.path(), &[][..]),
        (first.path(), &["--no-checkpoint"][..]),
        (first.path(), &["--restart"][..]),
        (first.path(), &[][..]),
    ] {
        let report = tempfile::NamedTempFile::new().unwrap();
        let mut args = extra.to_vec();
        args.extend(parts);
        args.extend(["--report", report.path().to_str().unwrap()]);
        let output = copy_in(dir, &source, &destination, &args);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{extra:?}: {}",
            text(&output)
        );
        let json = report_of(report.path());
        assert_eq!(written(&json), 0, "{extra:?}: {json}");
        assert!(
            String::from_utf8_lossy(&output.stdout).contains("nothing to do"),
            "{extra:?}: {}",
            text(&output)
        );
        // No guess and no bytes read: the listings or the record prove every pair.
        for weak in [
            "matched_by_checksum",
            "matched_by_content",
            "matched_by_size_only",
            "compared_bytes",
        ] {
            assert_eq!(json[weak].as_u64(), Some(0), "{weak}: {json}");
        }
        assert_eq!(json["unproven"].as_array().map(Vec::len), Some(0), "{json}");
        assert_eq!(entry_count(&destination).await, before, "{extra:?}");
    }
    assert_same_histories(&source, &destination).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rerun_after_source_changes_appends_exactly_what_changed() {
    let source = create_bucket("catch-src", true).await;
    let destination = create_bucket("catch-dst", true).await;
    seed(&source, 40).await;
    let dir = tempfile::tempdir().unwrap();
    let map = dir.path().join("versions.csv");
    let map_arg = ["--version-map", map.to_str().unwrap()];
    let output = copy_in(dir.path(), &source, &destination, &map_arg);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    // New versions of finished keys, an overwrite with the same size (another ETag), deletes, new keys
    // below and above everything listed before.
    put(&source, "a/000", "a/000 v9").await;
    put(&source, "b/001", "b/001 v0").await;
    delete(&source, "a/002").await;
    delete(&source, "b/039").await;
    put(&source, "0-new-first", "new").await;
    put(&source, "z-new-last", "new").await;
    put(&source, "a/010x", "between").await;
    let report = tempfile::NamedTempFile::new().unwrap();
    let output = copy_in(
        dir.path(),
        &source,
        &destination,
        &[&map_arg[..], &["--report", report.path().to_str().unwrap()]].concat(),
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_same_histories(&source, &destination).await;
    let json = report_of(report.path());
    assert_eq!(written(&json), 7, "{json}");
    // The version map has a row per destination entry, across both runs, each naming real versions.
    let rows: Vec<csv::StringRecord> = csv::Reader::from_path(&map)
        .unwrap()
        .records()
        .map(Result::unwrap)
        .collect();
    let raw = raw_histories(&destination, "").await;
    assert_eq!(rows.len(), raw.iter().map(|(_, h)| h.len()).sum::<usize>());
    for row in &rows {
        let (key, written) = (&row[2], &row[3]);
        let (_, history) = raw.iter().find(|(k, _)| k == key).expect(key);
        assert!(history.iter().any(|e| e.version_id == written), "{row:?}");
    }
    // Nothing new: the same command once more writes nothing.
    let output = copy_in(
        dir.path(),
        &source,
        &destination,
        &["--report", report.path().to_str().unwrap()],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_eq!(written(&report_of(report.path())), 0);
    assert_same_histories(&source, &destination).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_with_a_foreign_version_is_left_alone_and_reported_unless_append_is_asked() {
    let source = create_bucket("div-src", true).await;
    let destination = create_bucket("div-dst", true).await;
    for key in ["k/ours", "k/theirs"] {
        put(&source, key, "one").await;
        put(&source, key, "two").await;
    }
    let dir = tempfile::tempdir().unwrap();
    let output = copy_in(dir.path(), &source, &destination, &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    // Someone else writes into the destination; the source moves on.
    put(&destination, "k/theirs", "foreign").await;
    put(&source, "k/theirs", "three").await;
    put(&source, "k/ours", "three").await;
    let before = histories(&destination, "k/theirs").await;
    let report = tempfile::NamedTempFile::new().unwrap();
    let output = copy_in(
        dir.path(),
        &source,
        &destination,
        &["--report", report.path().to_str().unwrap()],
    );
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&format!("diverged: s3://{destination}/k/theirs at entry 3")),
        "{}",
        text(&output)
    );
    let json = report_of(report.path());
    assert_eq!(json["diverged"].as_array().unwrap().len(), 1, "{json}");
    assert_eq!(json["diverged"][0]["position"], 3, "{json}");
    assert_eq!(histories(&destination, "k/theirs").await, before, "touched");
    // The other key got its new version.
    assert_eq!(
        histories(&destination, "k/ours").await,
        histories(&source, "k/ours").await
    );
    // Asked to, the missing source entry is appended after the foreign one.
    let output = copy_in(
        dir.path(),
        &source,
        &destination,
        &["--on-diverged", "append"],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let theirs = histories(&destination, "k/theirs").await;
    let want = histories(&source, "k/theirs").await;
    assert_eq!(theirs[0].1.len(), 4, "{theirs:?}");
    assert_eq!(theirs[0].1[3], want[0].1[2], "{theirs:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_version_is_retried_in_its_place_not_skipped() {
    let source = create_bucket("retry-src", true).await;
    let destination = create_bucket("retry-dst", true).await;
    put(&source, "same/k", "AAAA").await;
    put(&source, "same/k", "BBBB").await;
    put(&source, "same/k", "CCCCCC").await;
    put(&source, "other", "x").await;
    let middle = version_ids(&source, "same/k").await[1].to_ascii_lowercase();
    // Copies of the middle version are refused as if it were archived.
    let proxy = ChaosProxy::start(
        server().port,
        Faults {
            archived: Some(Box::leak(middle.into_boxed_str())),
            ..Faults::default()
        },
        1,
    );
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("job.checkpoint");
    let run = || {
        copy_via(&proxy.endpoint, &source, &destination)
            .args(["--checkpoint", checkpoint.to_str().unwrap()])
            .args(["--progress", "never"])
            .output()
            .unwrap()
    };
    let output = run();
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert_eq!(histories(&destination, "same/k").await[0].1.len(), 1);
    // Restored: the rerun with the same checkpoint writes BBBB, then CCCCCC.
    proxy.counts.healed.store(true, Relaxed);
    let output = run();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_same_histories(&source, &destination).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_after_a_kill_ends_exact() {
    let source = create_bucket("kill-src", true).await;
    let destination = create_bucket("kill-dst", true).await;
    seed(&source, 400).await;
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("job.checkpoint");
    let checkpoint = checkpoint.to_str().unwrap();
    let args = [
        "copy",
        &format!("s3://{source}"),
        &format!("s3://{destination}"),
        "--checkpoint",
        checkpoint,
        "--resume-wait",
        "2",
        "--request-timeout",
        "5",
        "--concurrency",
        "4",
        "--progress",
        "never",
    ];
    // Killed three times, each run after the first discarding the checkpoint's progress (the fix a
    // corrupt checkpoint suggests): none may duplicate what the killed runs wrote or left in flight.
    for round in 0..3 {
        let restart: &[&str] = if round == 0 { &[] } else { &["--restart"] };
        let at_start = entry_count(&destination).await;
        let mut child = command(&[&args[..], restart].concat())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let give_up = Instant::now() + Duration::from_secs(30);
        while entry_count(&destination).await < at_start + 40 && Instant::now() < give_up {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        child.kill().unwrap();
        child.wait().unwrap();
    }
    assert!(entry_count(&destination).await < entry_count(&source).await);
    let output = cli(&[&args[..], &["--restart"]].concat());
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_same_histories(&source, &destination).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn latest_only_rerun_copies_only_the_keys_whose_current_version_changed() {
    let source = create_bucket("latest-src", true).await;
    let destination = create_bucket("latest-dst", false).await;
    for index in 0..30 {
        let key = format!("l/{index:02}");
        put(&source, &key, "old").await;
        put(&source, &key, format!("current {index}")).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let output = copy_in(dir.path(), &source, &destination, &["--latest-only"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    put(&source, "l/03", "changed").await;
    put(&source, "l/17", "changed too").await;
    let report = tempfile::NamedTempFile::new().unwrap();
    let output = copy_in(
        dir.path(),
        &source,
        &destination,
        &["--latest-only", "--report", report.path().to_str().unwrap()],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let json = report_of(report.path());
    assert_eq!(written(&json), 2, "{json}");
    assert_eq!(json["keys_in_step"], 28, "{json}");
    for (key, history) in histories(&source, "").await {
        let current = history.last().unwrap();
        let copy = histories(&destination, &key).await;
        assert_eq!(copy[0].1.last().unwrap(), current, "{key}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_runs_on_one_checkpoint_cannot_both_write() {
    let source = create_bucket("lock-src", true).await;
    let destination = create_bucket("lock-dst", true).await;
    seed(&source, 60).await;
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("job.checkpoint");
    let args = [
        "copy",
        &format!("s3://{source}"),
        &format!("s3://{destination}"),
        "--checkpoint",
        checkpoint.to_str().unwrap(),
        "--rate-limit",
        "40",
        "--progress",
        "never",
    ];
    let first = command(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lock = dir.path().join("job.checkpoint.lock");
    let give_up = Instant::now() + Duration::from_secs(20);
    while std::fs::read_to_string(&lock)
        .unwrap_or_default()
        .is_empty()
        && Instant::now() < give_up
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let second = cli(&args);
    assert_eq!(second.status.code(), Some(2), "{}", text(&second));
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("in use by another run") && stderr.contains(&format!("pid {}", first.id())),
        "{stderr}"
    );
    let output = first.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_same_histories(&source, &destination).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unwritable_checkpoint_stops_the_run_with_exit_3_and_the_rerun_is_exact() {
    let source = create_bucket("full-src", true).await;
    let destination = create_bucket("full-dst", true).await;
    seed(&source, 300).await;
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("job.checkpoint");
    let args = [
        "copy".to_string(),
        format!("s3://{source}"),
        format!("s3://{destination}"),
        "--checkpoint".into(),
        checkpoint.display().to_string(),
        "--progress".into(),
        "never".into(),
    ];
    // A file-size limit of 16 KiB (as a full disk would): writes past it fail with EFBIG.
    let mut limited = std::process::Command::new("bash");
    limited
        .arg("-c")
        .arg(r#"ulimit -f 16; trap "" XFSZ; exec "$@""#)
        .arg("bash")
        .arg(env!("CARGO_BIN_EXE_s3-backfill"))
        .args(&args)
        .args(["--endpoint-url", &server().endpoint])
        .current_dir(work_dir())
        .envs(server().env())
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL");
    let output = limited.output().unwrap();
    assert_eq!(output.status.code(), Some(3), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("the run stopped") && stderr.contains("rerun the same command"),
        "{stderr}"
    );
    let written_then = entry_count(&destination).await;
    assert!(written_then < entry_count(&source).await, "stopped at once");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = cli(&[&args[..], &["--resume-wait", "1"]].concat());
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_same_histories(&source, &destination).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_checkpoint_file_is_a_new_one_and_an_interrupted_run_resumes() {
    let source = create_bucket("empty-src", true).await;
    let destination = create_bucket("empty-dst", true).await;
    seed(&source, 60).await;
    let file = tempfile::NamedTempFile::new().unwrap(); // as `mktemp` makes it
    let args = [
        "copy",
        &format!("s3://{source}"),
        &format!("s3://{destination}"),
        "--checkpoint",
        file.path().to_str().unwrap(),
        "--rate-limit",
        "40",
        "--progress",
        "never",
    ];
    let child = command(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let give_up = Instant::now() + Duration::from_secs(20);
    while entry_count(&destination).await < 10 && Instant::now() < give_up {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130), "{}", text(&output));
    let status = offline(&["status", "--checkpoint", file.path().to_str().unwrap()]);
    assert_eq!(status.status.code(), Some(0), "{}", text(&status));
    assert!(
        text(&status).contains("state:        stopped"),
        "{}",
        text(&status)
    );
    let output = cli(&args[..args.len() - 4]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_same_histories(&source, &destination).await;
    let status = offline(&["status", "--checkpoint", file.path().to_str().unwrap()]);
    assert!(
        text(&status).contains("state:        complete"),
        "{}",
        text(&status)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_command_against_another_endpoint_is_another_job() {
    let source = create_bucket("where-src", true).await;
    let destination = create_bucket("where-dst", true).await;
    put(&source, "k", "v").await;
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("job.checkpoint");
    let checkpoint = checkpoint.to_str().unwrap();
    let output = copy_in(
        dir.path(),
        &source,
        &destination,
        &["--checkpoint", checkpoint],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    // The same buckets behind another endpoint URL (a proxy to the same server here).
    let proxy = ChaosProxy::start(server().port, Faults::default(), 1);
    let output = copy_via(&proxy.endpoint, &source, &destination)
        .args(["--checkpoint", checkpoint])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("destination endpoint"),
        "{}",
        text(&output)
    );
    // Their default checkpoints differ.
    for endpoint in [&server().endpoint, &proxy.endpoint] {
        let output = copy_via(endpoint, &source, &destination)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    }
    let defaults = std::fs::read_dir(dir.path().join(".s3-backfill"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "checkpoint")
        })
        .count();
    assert_eq!(defaults, 2);
    assert_same_histories(&source, &destination).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn as_of_copies_the_bucket_as_it_was_then_and_a_later_run_catches_up() {
    let source = create_bucket("asof-src", true).await;
    let destination = create_bucket("asof-dst", true).await;
    put(&source, "k", "one").await;
    put(&source, "k", "two").await;
    put(&source, "gone", "deleted later").await;
    // SeaweedFS keeps whole seconds: the cut is the newest time so far, later writes a second after.
    let then = raw_histories(&source, "")
        .await
        .iter()
        .flat_map(|(_, h)| h.iter().map(|e| e.last_modified.clone()))
        .max()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    put(&source, "k", "three").await;
    delete(&source, "gone").await;
    put(&source, "new", "after").await;
    let dir = tempfile::tempdir().unwrap();
    let output = copy_in(dir.path(), &source, &destination, &["--as-of", &then]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let copied = histories(&destination, "").await;
    let source_now = histories(&source, "").await;
    let find = |all: &[(String, Vec<Seen>)], key: &str| {
        all.iter().find(|(k, _)| k == key).map(|(_, h)| h.clone())
    };
    assert_eq!(copied.len(), 2, "{copied:?}");
    assert_eq!(
        find(&copied, "k").unwrap(),
        find(&source_now, "k").unwrap()[..2]
    );
    assert_eq!(
        find(&copied, "gone").unwrap(),
        find(&source_now, "gone").unwrap()[..1]
    );
    // The same copy without --as-of (another job) appends what came after.
    let output = copy_in(dir.path(), &source, &destination, &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_same_histories(&source, &destination).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_runs_into_one_destination_from_two_directories_cannot_both_write() {
    let source = create_bucket("twice-src", true).await;
    let destination = create_bucket("twice-dst", true).await;
    seed(&source, 60).await;
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let args = [
        "copy",
        &format!("s3://{source}"),
        &format!("s3://{destination}"),
        "--rate-limit",
        "40",
        "--progress",
        "never",
    ];
    let first = command(&args)
        .current_dir(one.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Its default checkpoint appears once it holds the destination.
    let give_up = Instant::now() + Duration::from_secs(20);
    while entry_count(&destination).await == 0 && Instant::now() < give_up {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Another directory (so another default checkpoint), and no checkpoint at all.
    for extra in [&[][..], &["--no-checkpoint"][..]] {
        let second = command(&[&args[..], extra].concat())
            .current_dir(two.path())
            .output()
            .unwrap();
        assert_eq!(second.status.code(), Some(2), "{}", text(&second));
        let stderr = String::from_utf8_lossy(&second.stderr);
        assert!(
            stderr.contains("another run on this machine is copying into")
                && stderr.contains(&format!("pid {}", first.id())),
            "{stderr}"
        );
    }
    let output = first.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_same_histories(&source, &destination).await;
}

/// Overlapping runs (issue 25): a run holds what it covers, not how it was written. Beside a run of
/// `--shard 0/2`, the whole range, a prefix inside it, another shard count, and the same shard through
/// `localhost` instead of `127.0.0.1` are each refused naming the holder; the other shard of the same
/// count runs beside it (through `localhost`, too). The destination ends exact.
#[tokio::test(flavor = "multi_thread")]
async fn overlapping_runs_are_refused_by_what_they_cover_not_how_they_are_written() {
    let source = create_bucket("overlap-src", true).await;
    let destination = create_bucket("overlap-dst", true).await;
    seed(&source, 60).await;
    let run = |range: (&str, &str), extra: &[&str], endpoint: &str| {
        let mut command = binary();
        command
            .current_dir(work_dir())
            .args([
                "copy",
                &format!("s3://{source}{}", range.0),
                &format!("s3://{destination}{}", range.1),
                "--no-checkpoint",
                "--progress",
                "never",
            ])
            .args(extra)
            .args(["--endpoint-url", endpoint])
            .envs(server().env());
        command
    };
    let direct = server().endpoint.clone();
    let spelled = direct.replace("127.0.0.1", "localhost");
    let mut first = run(("", ""), &["--shard", "0/2", "--rate-limit", "30"], &direct);
    let first = first
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let give_up = Instant::now() + Duration::from_secs(20);
    while entry_count(&destination).await == 0 && Instant::now() < give_up {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for (label, range, extra, endpoint) in [
        ("the whole bucket", ("", ""), &[][..], &direct),
        ("a prefix inside it", ("/a", "/a"), &[][..], &direct),
        (
            "another shard count",
            ("", ""),
            &["--shard", "1/3"][..],
            &direct,
        ),
        (
            "the same shard spelled otherwise",
            ("", ""),
            &["--shard", "0/2"][..],
            &spelled,
        ),
    ] {
        let output = run(range, extra, endpoint).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{label}: {}", text(&output));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("another run on this machine is copying into")
                && stderr.contains("shard 0/2")
                && stderr.contains(&format!("pid {}", first.id())),
            "{label}: {stderr}"
        );
    }
    // Another environment (cron, a systemd unit: another HOME, no XDG_RUNTIME_DIR) sees the range too.
    let elsewhere = tempfile::tempdir().unwrap();
    let output = run(("", ""), &[], &direct)
        .env("HOME", elsewhere.path())
        .env("XDG_RUNTIME_DIR", elsewhere.path())
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(2),
        "another environment: {}",
        text(&output)
    );
    // A shard of the same count into a prefix inside the destination writes other keys there.
    let output = run(("", "/a"), &["--shard", "1/2"], &direct)
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(2),
        "a shard into a prefix: {}",
        text(&output)
    );
    let other = run(("", ""), &["--shard", "1/2"], &spelled)
        .output()
        .unwrap();
    assert_eq!(other.status.code(), Some(0), "{}", text(&other));
    let output = first.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_same_histories(&source, &destination).await;
}

/// Issue 25: a source version uploaded by multipart (ETag `…-3`) and a destination key that already
/// holds another object of the same size (other bytes, no checksums). Before, `copy` said "1 by size
/// alone" (exit 0), `verify` said "match", and the source version was never copied. Now nothing is
/// taken as the same without proof: the key is unproven (exit 1, named, untouched), verify says so,
/// `--compare content` reads both and finds them different (diverged), and over the same bytes proves
/// them the same.
#[tokio::test(flavor = "multi_thread")]
async fn an_object_of_the_same_size_is_never_taken_for_the_source_version() {
    const SIZE: usize = 11 << 20;
    let source = create_bucket("size-src", true).await;
    let destination = create_bucket("size-dst", true).await;
    put_multipart(&source, "k", SIZE, 1).await;
    put(&destination, "k", vec![7u8; SIZE]).await;
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let report_arg = ["--report", report.to_str().unwrap(), "--no-checkpoint"];
    let output = copy_in(dir.path(), &source, &destination, &report_arg);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&format!("unproven: s3://{destination}/k at entry 1"))
            && stdout.contains("--compare content"),
        "{}",
        text(&output)
    );
    let json = report_of(&report);
    assert_eq!(json["unproven"][0]["key"], "k", "{json}");
    assert_eq!(json["matched_by_size_only"], 0, "{json}");
    assert_eq!(histories(&destination, "").await[0].1.len(), 1, "written");

    let verify = |extra: &[&str]| {
        let mut args = vec![
            "verify".to_string(),
            format!("s3://{source}"),
            format!("s3://{destination}"),
            "--progress".into(),
            "never".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        command(&args).output().unwrap()
    };
    let output = verify(&[]);
    assert_ne!(output.status.code(), Some(0), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("unproven"),
        "{}",
        text(&output)
    );
    let output = verify(&["--compare", "content"]);
    assert_ne!(output.status.code(), Some(0), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("content differs"),
        "{}",
        text(&output)
    );

    // Read both: other bytes, so the key is diverged, and still untouched.
    let content = [&report_arg[..], &["--compare", "content"]].concat();
    let output = copy_in(dir.path(), &source, &destination, &content);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let json = report_of(&report);
    assert_eq!(json["diverged"][0]["key"], "k", "{json}");
    assert_eq!(json["compared_bytes"], 2 * SIZE as u64, "{json}");
    assert_eq!(histories(&destination, "").await[0].1.len(), 1, "written");

    // The same bytes in one part (an MD5 ETag): proven by content, nothing written.
    let same = create_bucket("size-same", true).await;
    let body: Vec<u8> = (0..SIZE).map(|i| ((i + 1) % 241) as u8).collect();
    put(&same, "k", body).await;
    let output = copy_in(dir.path(), &source, &same, &report_arg);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let output = copy_in(dir.path(), &source, &same, &content);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let json = report_of(&report);
    assert_eq!(json["matched_by_content"], 1, "{json}");
    assert_eq!(written(&json), 0, "{json}");
    assert_eq!(histories(&same, "").await[0].1.len(), 1, "written");
    let output = verify(&["--compare", "content"]);
    assert_ne!(
        output.status.code(),
        Some(0),
        "the first destination still differs"
    );
}
