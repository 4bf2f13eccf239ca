//! Soak: 200,000 versions (100,000 keys x 2, every tenth key ending in a delete marker) copied through
//! the chaos proxy (2% SlowDown, 1% 500, 0.5% answers lost after the server applied the request, 0.5%
//! cut short, 1% 200-with-error on CopyObject), killed with SIGKILL twice and resumed to the end.
//! Samples the process's RSS and open file descriptors every second; at the end counts every version
//! and delete marker on both sides, checks open multipart uploads, and runs `verify`.
//!
//! Not in CI (it takes about ten minutes). Run: cargo bench --bench soak

#[path = "../tests/common/chaos_proxy.rs"]
mod chaos_proxy;
mod support;

use std::process::{Command, Stdio};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use chaos_proxy::{ChaosProxy, Faults};
use futures::StreamExt;
use s3_backfill::local_server::SeaweedFs;

const KEYS: usize = 100_000;

fn sample(pid: u32) -> Option<(u64, usize)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse::<u64>()
        .ok()?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count();
    Some((rss / 1024, fds))
}

async fn count(client: &aws_sdk_s3::Client, bucket: &str) -> (usize, usize) {
    let pages = support::version_pages(client, bucket).await;
    (
        pages.iter().map(|page| page.versions().len()).sum(),
        pages.iter().map(|page| page.delete_markers().len()).sum(),
    )
}

#[tokio::main]
async fn main() {
    let server = SeaweedFs::start().unwrap();
    let client = server.client();
    for bucket in ["soak-src", "soak-dst"] {
        support::create_bucket(&client, bucket, true).await;
    }
    let started = Instant::now();
    futures::stream::iter(0..KEYS)
        .for_each_concurrent(64, |index| {
            let client = client.clone();
            async move {
                let key = format!("p{:02}/{index:07}", index % 16);
                for version in 0..2 {
                    client
                        .put_object()
                        .bucket("soak-src")
                        .key(&key)
                        .body(ByteStream::from(format!("{index}.{version}").into_bytes()))
                        .send()
                        .await
                        .unwrap();
                }
                if index % 10 == 0 {
                    client
                        .delete_object()
                        .bucket("soak-src")
                        .key(&key)
                        .send()
                        .await
                        .unwrap();
                }
            }
        })
        .await;
    let source = count(&client, "soak-src").await;
    println!(
        "seeded {} versions and {} delete markers in {:.0} s",
        source.0,
        source.1,
        started.elapsed().as_secs_f64()
    );
    let proxy = ChaosProxy::start(
        server.port,
        Faults {
            slow_down: 20,
            internal_error: 10,
            reset_after_applied: 5,
            truncated: 5,
            error_in_200: 10,
            ..Faults::default()
        },
        20261126,
    );
    let checkpoint = std::env::temp_dir().join(format!("soak-{}.checkpoint", std::process::id()));
    let _ = std::fs::remove_file(&checkpoint);
    let copy_started = Instant::now();
    let mut samples: Vec<(f64, u64, usize)> = Vec::new();
    for (run, kill_after) in [Some(60u64), Some(60), None].into_iter().enumerate() {
        let mut child = Command::new(env!("CARGO_BIN_EXE_s3-backfill"))
            .args([
                "copy",
                "s3://soak-src",
                "s3://soak-dst",
                "--checkpoint",
                checkpoint.to_str().unwrap(),
            ])
            .args([
                "--endpoint-url",
                &proxy.endpoint,
                "--progress",
                "never",
                "--resume-wait",
                "3",
            ])
            .envs(server.env())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let run_started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                println!(
                    "run {run}: exited {status} after {:.0} s",
                    run_started.elapsed().as_secs_f64()
                );
                break;
            }
            if let Some((rss, fds)) = sample(child.id()) {
                samples.push((copy_started.elapsed().as_secs_f64(), rss, fds));
            }
            if kill_after.is_some_and(|after| run_started.elapsed() >= Duration::from_secs(after)) {
                child.kill().unwrap();
                child.wait().unwrap();
                println!(
                    "run {run}: killed with SIGKILL after {after} s",
                    after = kill_after.unwrap()
                );
                break;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    let destination = count(&client, "soak-dst").await;
    let uploads = client
        .list_multipart_uploads()
        .bucket("soak-dst")
        .send()
        .await
        .unwrap()
        .uploads()
        .len();
    let verify = Command::new(env!("CARGO_BIN_EXE_s3-backfill"))
        .args([
            "verify",
            "s3://soak-src",
            "s3://soak-dst",
            "--endpoint-url",
            &server.endpoint,
        ])
        .envs(server.env())
        .output()
        .unwrap();
    let counts = &proxy.counts;
    println!(
        "faults: {} requests, {} SlowDown, {} InternalError, {} lost after applied, {} cut short, {} 200-with-error",
        counts.requests.load(Relaxed),
        counts.slow_down.load(Relaxed),
        counts.internal_error.load(Relaxed),
        counts.reset_after_applied.load(Relaxed),
        counts.truncated.load(Relaxed),
        counts.error_in_200.load(Relaxed)
    );
    let quarter = samples.len() / 4;
    let rss_of = |part: &[(f64, u64, usize)]| part.iter().map(|s| s.1).max().unwrap_or(0);
    println!(
        "| soak: {} versions + {} delete markers, 2 x SIGKILL | {:.0} s | source {:?} destination {:?} | open uploads {uploads} | verify exit {:?} | peak RSS first quarter {} MiB, last quarter {} MiB | fds max {} |",
        source.0,
        source.1,
        copy_started.elapsed().as_secs_f64(),
        source,
        destination,
        verify.status.code(),
        rss_of(&samples[..quarter]),
        rss_of(&samples[samples.len() - quarter..]),
        samples.iter().map(|s| s.2).max().unwrap_or(0)
    );
    println!("{}", String::from_utf8_lossy(&verify.stdout));
    let _ = std::fs::remove_file(&checkpoint);
}
