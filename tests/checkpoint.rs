//! Checkpoint and resume against SeaweedFS through the real binary: SIGKILL at random moments (seeded),
//! SIGINT, and bad checkpoints. What arrived is checked with the oracle's independent listing.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use futures::StreamExt;

/// A source of about 2,000 versions: multi-version keys, delete markers, and multipart-sized objects.
async fn seed(bucket: &str, keys: usize, big: &[&str], big_size: usize) {
    futures::stream::iter(0..keys)
        .for_each_concurrent(32, |index| async move {
            let key = format!("k/{index:05}");
            for version in 0..(1 + index % 5) {
                put(bucket, &key, format!("{key} v{version}")).await;
            }
            if index % 9 == 0 {
                delete(bucket, &key).await;
            }
            if index % 27 == 0 {
                put(bucket, &key, "after the delete marker").await;
            }
        })
        .await;
    for key in big {
        for version in 0..2 {
            put_multipart(bucket, key, big_size, version).await;
        }
    }
}

async fn open_uploads(bucket: &str) -> usize {
    client()
        .list_multipart_uploads()
        .bucket(bucket)
        .send()
        .await
        .unwrap()
        .uploads()
        .len()
}

async fn assert_exact_copy(source: &str, destination: &str, big: &[&str]) {
    assert_same_histories(source, destination).await;
    for key in big {
        assert!(same_bytes(source, destination, key).await, "bytes of {key}");
    }
    assert_eq!(
        open_uploads(destination).await,
        0,
        "orphaned multipart uploads"
    );
}

/// The version map has exactly one row per destination entry (issue 25: entries in flight at a kill,
/// reconciled by the resume, had none), each naming a version the destination holds under its key.
async fn assert_one_row_per_entry(map: &std::path::Path, destination: &str) {
    let mut rows = std::collections::BTreeMap::<(String, String), usize>::new();
    for row in csv::Reader::from_path(map).unwrap().records() {
        let row = row.unwrap();
        *rows
            .entry((row[2].to_string(), row[3].to_string()))
            .or_default() += 1;
    }
    let mut entries = std::collections::BTreeSet::new();
    for (key, history) in raw_histories(destination, "").await {
        for entry in history {
            entries.insert((key.clone(), entry.version_id));
        }
    }
    let twice: Vec<_> = rows.iter().filter(|(_, n)| **n > 1).collect();
    let unknown: Vec<_> = rows.keys().filter(|row| !entries.contains(*row)).collect();
    let missing: Vec<_> = entries
        .iter()
        .filter(|entry| !rows.contains_key(*entry))
        .collect();
    assert!(
        twice.is_empty() && unknown.is_empty() && missing.is_empty(),
        "version map: {} rows twice {twice:?}, {} rows naming no destination entry {unknown:?}, {} of {} \
         entries without a row {missing:?}",
        twice.len(),
        unknown.len(),
        missing.len(),
        entries.len()
    );
}

fn copy_args<'a>(source: &'a str, destination: &'a str, checkpoint: &'a str) -> Vec<String> {
    [
        "copy",
        &format!("s3://{source}"),
        &format!("s3://{destination}"),
        "--checkpoint",
        checkpoint,
        "--multipart-threshold",
        "6MiB",
        "--part-size",
        "5MiB",
        "--concurrency",
        "16",
        // A resume waits until the killed run's writes can no longer land: their attempts' timeout
        // (5 s here, not the default 30 s, to keep the test short) plus 5 s plus the heartbeat.
        "--request-timeout",
        "5",
        "--resume-wait",
        "2",
        "--progress",
        "never",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_at_random_moments_then_resumed_copies_everything_exactly_once() {
    let source = create_bucket("src", true).await;
    let destination = create_bucket("dst", true).await;
    let big = ["a-big", "m-big", "z-big"];
    seed(&source, 600, &big, 14 << 20).await;
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("job.checkpoint");
    let map = dir.path().join("versions.csv");
    let mut args = copy_args(&source, &destination, checkpoint.to_str().unwrap());
    args.extend([
        "--version-map".to_string(),
        map.to_str().unwrap().to_string(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut rng = fastrand::Rng::with_seed(20261124);
    let mut kills = 0;
    let mut during_multipart = 0;
    // Twelve kills, however fast this machine copies: a run that finished on its own does not count.
    for round in 0..40 {
        if kills >= 12 {
            break;
        }
        let mut child = command(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Every third kill waits for a multipart upload in flight; the others land at random.
        let deadline = Instant::now() + Duration::from_millis(rng.u64(30..500));
        if round % 3 == 0 {
            let give_up = Instant::now() + Duration::from_secs(1);
            while Instant::now() < give_up && child.try_wait().unwrap().is_none() {
                if open_uploads(&destination).await > 0 {
                    during_multipart += 1;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        } else {
            while Instant::now() < deadline && child.try_wait().unwrap().is_none() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        child.wait().unwrap();
    }
    eprintln!("{kills} kills, {during_multipart} during multipart copies");
    assert!(
        kills >= 12,
        "only {kills} runs were still going when killed"
    );
    assert!(
        during_multipart >= 1,
        "no kill landed during a multipart copy"
    );
    let output = cli(&args);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_exact_copy(&source, &destination, &big).await;
    assert_one_row_per_entry(&map, &destination).await;
    // Once complete, a rerun (a new pass, compared with the destination) writes nothing.
    let again = cli(&args);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("nothing to do"),
        "{}",
        text(&again)
    );
    assert_exact_copy(&source, &destination, &big).await;
    let status = offline(&["status", "--checkpoint", checkpoint.to_str().unwrap()]);
    assert_eq!(status.status.code(), Some(0), "{}", text(&status));
    assert!(
        text(&status).contains("failed:       0 keys"),
        "{}",
        text(&status)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigint_stops_cleanly_and_the_rerun_completes() {
    let source = create_bucket("src", true).await;
    let destination = create_bucket("dst", true).await;
    let big = ["big-1", "big-2", "big-3", "big-4"];
    seed(&source, 50, &big, 30 << 20).await;
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("job.checkpoint");
    let mut args = copy_args(&source, &destination, checkpoint.to_str().unwrap());
    let concurrency = args.iter().position(|a| a == "--concurrency").unwrap();
    args[concurrency + 1] = "2".into();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let child = command(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let give_up = Instant::now() + Duration::from_secs(20);
    while open_uploads(&destination).await == 0 && Instant::now() < give_up {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        open_uploads(&destination).await > 0,
        "no multipart copy started"
    );
    let pid = child.id().to_string();
    std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("to resume, run the same command again"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("--checkpoint {}", checkpoint.display())),
        "{stderr}"
    );
    assert_eq!(
        open_uploads(&destination).await,
        0,
        "the interrupted multipart upload was not aborted"
    );
    let output = cli(&args);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_exact_copy(&source, &destination, &big).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_checkpoints_are_refused_before_any_write() {
    let source = create_bucket("src", true).await;
    let destination = create_bucket("dst", true).await;
    let other = create_bucket("other", true).await;
    for index in 0..30 {
        put(&source, &format!("key-{index:02}"), "one").await;
        put(&source, &format!("key-{index:02}"), "two").await;
    }
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("job.checkpoint");
    let path = checkpoint.to_str().unwrap();
    let output = cli(&[
        "copy",
        &format!("s3://{source}"),
        &format!("s3://{destination}"),
        "--checkpoint",
        path,
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&checkpoint).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let journal = std::fs::read_to_string(&checkpoint).unwrap();

    // Another job with the same checkpoint.
    let output = cli(&[
        "copy",
        &format!("s3://{source}"),
        &format!("s3://{other}"),
        "--checkpoint",
        path,
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(
        text(&output).contains(&format!(
            "written for another job: destination s3://{destination}/ (now s3://{other}/)"
        )),
        "{}",
        text(&output)
    );
    assert!(text(&output).contains("--restart"), "{}", text(&output));
    assert!(histories(&other, "").await.is_empty());

    // Garbage in the middle.
    let mut lines: Vec<&str> = journal.lines().collect();
    let garbage_line = lines.len() / 2 + 1;
    lines.insert(garbage_line - 1, "ffffffff {\"record\":\"garbage\"}");
    std::fs::write(&checkpoint, lines.join("\n") + "\n").unwrap();
    let before = histories(&destination, "").await;
    let output = cli(&[
        "copy",
        &format!("s3://{source}"),
        &format!("s3://{destination}"),
        "--checkpoint",
        path,
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(
        text(&output).contains(&format!(
            "checkpoint {path} is corrupt at line {garbage_line}"
        )),
        "{}",
        text(&output)
    );
    assert_eq!(histories(&destination, "").await, before, "nothing written");
    let output = offline(&["status", "--checkpoint", path]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    // status on a path no run wrote: says where runs write theirs, not an option status lacks.
    let missing = format!("{path}.missing");
    let output = offline(&["status", "--checkpoint", &missing]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(
        text(&output).contains(&format!("no checkpoint at {missing}"))
            && text(&output).contains("status --job")
            && !text(&output).contains("--no-checkpoint"),
        "{}",
        text(&output)
    );

    // A torn last line is a crash mid-append, not corruption.
    std::fs::write(&checkpoint, journal.clone() + "1234abcd {\"record\":\"do").unwrap();
    let output = cli(&[
        "copy",
        &format!("s3://{source}"),
        &format!("s3://{destination}"),
        "--checkpoint",
        path,
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_eq!(
        histories(&destination, "").await,
        before,
        "a completed job writes nothing again"
    );

    // A path that cannot be written.
    let output = cli(&[
        "copy",
        &format!("s3://{source}"),
        &format!("s3://{other}"),
        "--checkpoint",
        "/dev/null/job.checkpoint",
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(
        text(&output).contains("failed to open checkpoint /dev/null/job.checkpoint"),
        "{}",
        text(&output)
    );
    assert!(histories(&other, "").await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_entries_are_kept_exported_and_retried() {
    let source = create_bucket("src", true).await;
    let destination = create_bucket("dst", true).await;
    // Too long under the destination prefix: fails with KeyTooLongError.
    let long = format!("{} +%", "L".repeat(1020));
    put(&source, &long, "x").await;
    put(&source, "fine", "y").await;
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("job.checkpoint");
    let path = checkpoint.to_str().unwrap();
    let args = [
        "copy",
        &format!("s3://{source}"),
        &format!("s3://{destination}/p/"),
        "--checkpoint",
        path,
    ];
    let output = cli(&args);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let csv = dir.path().join("failed.csv");
    let output = offline(&[
        "status",
        "--checkpoint",
        path,
        "--failed-csv",
        csv.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(
        text(&output).contains("failed:       1 keys"),
        "{}",
        text(&output)
    );
    // Piped into a reader that has gone (`status | head` once head has read enough): a quiet end by
    // SIGPIPE, as Unix tools end, never a panic.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let piped = binary()
        .args(["status", "--checkpoint", path])
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&piped.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&piped.status),
        Some(libc::SIGPIPE),
        "{:?} {stderr}",
        piped.status
    );
    let rows = std::fs::read_to_string(&csv).unwrap();
    let version = histories(&source, "").await;
    assert_eq!(version.len(), 2);
    assert!(
        rows.starts_with(&format!("{source},{}%20%2B%25,", "L".repeat(1020))),
        "{rows}"
    );
    assert_eq!(rows.lines().count(), 1);
    // The rerun retries the failed entry (it fails again, the same way) and does not copy "fine" twice.
    let output = cli(&args);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("1 failed"),
        "{}",
        text(&output)
    );
    assert_eq!(histories(&destination, "").await.len(), 1);
    assert_eq!(histories(&destination, "").await[0].1.len(), 1);
}

/// The version map across a kill (issue 25): copies the server applied but whose answers had not come
/// back when the run was killed are reconciled by the resume as already written — and each still gets
/// its one row. Every copy's answer is held 3 s by a proxy, so the kill lands after the server applied
/// them. Then a torn last row (a kill in the middle of writing it) is cut off, and a rerun adds nothing.
#[tokio::test(flavor = "multi_thread")]
async fn the_version_map_has_one_row_per_entry_across_a_kill() {
    use common::chaos_proxy::{ChaosProxy, Faults, Kind};
    let source = create_bucket("map-src", true).await;
    let destination = create_bucket("map-dst", true).await;
    seed(&source, 40, &[], 0).await;
    let proxy = ChaosProxy::start(
        server().port,
        Faults {
            kinds: &[Kind::Copy],
            delayed: 1000,
            delay: Duration::from_secs(3),
            ..Faults::default()
        },
        7,
    );
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("job.checkpoint");
    let map = dir.path().join("versions.csv");
    let args = |endpoint: &str| {
        let mut command = copy_via(endpoint, &source, &destination);
        command
            .args(["--checkpoint", checkpoint.to_str().unwrap()])
            .args(["--version-map", map.to_str().unwrap()])
            .args([
                "--resume-wait",
                "4",
                "--request-timeout",
                "5",
                "--progress",
                "never",
            ]);
        command
    };
    let mut killed = args(&proxy.endpoint)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Copies in flight, applied, their answers held: kill.
    let give_up = Instant::now() + Duration::from_secs(20);
    while proxy
        .counts
        .delayed
        .load(std::sync::atomic::Ordering::Relaxed)
        < 10
        && Instant::now() < give_up
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    killed.kill().unwrap();
    killed.wait().unwrap();
    // The same job (the same endpoint) resumes, the answers no longer held.
    proxy
        .counts
        .healed
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let output = args(&proxy.endpoint).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_same_histories(&source, &destination).await;
    assert_one_row_per_entry(&map, &destination).await;
    // A torn last row: cut off by the next run, which writes nothing (everything is in step).
    let mut file = std::fs::OpenOptions::new().append(true).open(&map).unwrap();
    std::io::Write::write_all(&mut file, b"k/000,someversion,k/0").unwrap();
    drop(file);
    let output = args(&proxy.endpoint).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_one_row_per_entry(&map, &destination).await;
}
