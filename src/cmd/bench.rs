//! `s3-backfill bench`: measures copy throughput against any endpoint. Seeds objects under a scratch
//! prefix, copies them with this engine at each concurrency level into scratch destination prefixes,
//! prints a table (objects/s, MiB/s, request latency percentiles, retries, SlowDowns, client CPU per
//! 1,000 copies, peak memory) and removes everything it wrote unless `--keep`.

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use serde::Serialize;

use crate::cli::{BenchArgs, CopyArgs};
use crate::error::Error;
use crate::preflight::{Side, bucket_error, check_bucket, require_versioning};
use crate::replay::Stop;
use crate::s3::{Admin, ListRequest, PutOptions, S3Admin, S3Api};
use crate::size::human_bytes;

#[derive(Debug, Serialize)]
pub struct BenchRow {
    pub concurrency: u32,
    pub objects: u64,
    pub versions: u64,
    pub seconds: f64,
    pub objects_per_second: f64,
    pub mib_per_second: f64,
    pub latency_ms_p50: f64,
    pub latency_ms_p95: f64,
    pub latency_ms_p99: f64,
    pub retries: u64,
    pub slowdowns: u64,
    pub cpu_seconds_per_1000: f64,
    pub peak_rss_mib: f64,
}

/// User plus system CPU seconds of this process so far (/proc/self/stat, in USER_HZ = 100 ticks).
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // After the command name (in parentheses, which may hold spaces), utime and stime are fields 12, 13.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<f64> = rest
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0.0))
        .collect();
    (fields.get(11).unwrap_or(&0.0) + fields.get(12).unwrap_or(&0.0)) / 100.0
}

/// The process's peak resident memory so far (VmHWM), in MiB.
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

pub async fn bench(args: &BenchArgs, stop: Arc<Stop>) -> Result<i32, Error> {
    let client = crate::s3::admin_client(&args.endpoints.source()).await;
    let bucket = args.bucket.bucket.clone();
    check_bucket(&client, Side::Source, &bucket).await?;
    if args.versions > 1 {
        let fix =
            format!("enable it with `s3-backfill s3bu s3://{bucket}`, or bench with --versions 1");
        require_versioning(&client, Side::Source, &bucket, &fix).await?;
    }
    let base = format!(
        "{}s3-backfill-bench/",
        crate::location::as_directory(&args.bucket.prefix)
    );
    let existing = client
        .list_versions(ListRequest {
            bucket: bucket.clone(),
            prefix: base.clone(),
            max_keys: Some(1),
            ..ListRequest::default()
        })
        .await
        .map_err(|e| bucket_error(Side::Source, &bucket, e))?;
    if !existing.entries.is_empty() {
        return Err(Error::Usage(format!(
            "s3://{bucket}/{base} already holds objects: bench writes and deletes only under its own scratch \
             prefix and will not touch them; remove them or bench under another prefix (s3://{bucket}/OTHER/)"
        )));
    }
    let seed_prefix = format!("{base}source/");
    let started = Instant::now();
    seed(&client, &bucket, &seed_prefix, args).await?;
    let total_versions = args.objects * u64::from(args.versions);
    eprintln!(
        "seeded {} objects x {} versions of {} under s3://{bucket}/{seed_prefix} in {:.1} s",
        args.objects,
        args.versions,
        human_bytes(args.size),
        started.elapsed().as_secs_f64()
    );
    let mut rows = Vec::new();
    let mut outcome = Ok(());
    for &concurrency in &args.concurrency {
        if stop.is_set() {
            break;
        }
        let destination = format!("{base}copy-c{concurrency}/");
        let location = |prefix: &str| crate::location::Location {
            bucket: bucket.clone(),
            prefix: prefix.to_string(),
        };
        let copy_args = CopyArgs {
            concurrency,
            no_checkpoint: true,
            progress: crate::progress::ProgressMode::Never,
            latest_only: args.versions == 1,
            multipart_threshold: args.multipart_threshold,
            ..CopyArgs::new(
                location(&seed_prefix),
                location(&destination),
                args.endpoints.clone(),
            )
        };
        let cpu_before = cpu_seconds();
        let report = match crate::cmd::copy::copy(&copy_args, Arc::clone(&stop)).await {
            Ok(report) => report,
            Err(error) => {
                outcome = Err(error);
                break;
            }
        };
        let cpu = cpu_seconds() - cpu_before;
        let copied = report.copied_versions + report.delete_markers;
        rows.push(BenchRow {
            concurrency,
            objects: args.objects,
            versions: copied,
            seconds: report.duration_seconds,
            objects_per_second: copied as f64 / report.duration_seconds.max(1e-9),
            mib_per_second: report.copied_bytes as f64
                / (1 << 20) as f64
                / report.duration_seconds.max(1e-9),
            latency_ms_p50: report.latency_ms_p50,
            latency_ms_p95: report.latency_ms_p95,
            latency_ms_p99: report.latency_ms_p99,
            retries: report.retries,
            slowdowns: report.throttles,
            cpu_seconds_per_1000: cpu * 1000.0 / (copied.max(1)) as f64,
            peak_rss_mib: peak_rss_mib(),
        });
        if copied != total_versions {
            outcome = Err(Error::Failed(format!(
                "concurrency {concurrency}: copied {copied} of {total_versions} versions (see the failures above)"
            )));
            break;
        }
    }
    print_table(&rows);
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&rows).expect("json");
        std::fs::write(path, json + "\n").map_err(|source| Error::File {
            path: path.display().to_string(),
            source,
        })?;
    }
    if args.keep {
        println!("kept everything under s3://{bucket}/{base} (--keep)");
    } else {
        let removed = clean(&client, &bucket, &base).await?;
        println!("removed the {removed} versions bench wrote under s3://{bucket}/{base}");
    }
    outcome.map(|()| crate::error::exit::SUCCESS)
}

async fn seed(client: &Admin, bucket: &str, prefix: &str, args: &BenchArgs) -> Result<(), Error> {
    let body = bytes::Bytes::from(vec![b'b'; args.size as usize]);
    // Versions of one object in order: each object's puts run one after another.
    let per_object = futures::stream::iter(0..args.objects).map(|object| {
        let body = body.clone();
        async move {
            for _ in 0..args.versions {
                client
                    .put_object(
                        bucket,
                        &format!("{prefix}{object:08}"),
                        body.clone(),
                        &PutOptions::default(),
                    )
                    .await
                    .map_err(|e| bucket_error(Side::Source, bucket, e))?;
            }
            Ok::<(), Error>(())
        }
    });
    let results: Vec<Result<(), Error>> = per_object.buffer_unordered(64).collect().await;
    results.into_iter().collect()
}

/// Deletes every version under `prefix`; returns how many.
async fn clean(client: &Admin, bucket: &str, prefix: &str) -> Result<u64, Error> {
    let mut removed = 0;
    loop {
        let page = client
            .list_versions(ListRequest {
                bucket: bucket.to_string(),
                prefix: prefix.to_string(),
                ..ListRequest::default()
            })
            .await
            .map_err(|e| bucket_error(Side::Source, bucket, e))?;
        if page.entries.is_empty() {
            return Ok(removed);
        }
        let versions: Vec<(String, String)> = page
            .entries
            .into_iter()
            .map(|entry| (entry.key, entry.version_id))
            .collect();
        removed += versions.len() as u64;
        client
            .delete_versions(bucket, &versions)
            .await
            .map_err(|e| bucket_error(Side::Source, bucket, e))?;
    }
}

fn print_table(rows: &[BenchRow]) {
    println!(
        "| concurrency | versions | objects/s | MiB/s | latency p50 / p95 / p99 (ms) | retries | SlowDowns | client CPU s per 1,000 copies | peak RSS |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for row in rows {
        println!(
            "| {} | {} | {:.0} | {:.1} | {:.1} / {:.1} / {:.1} | {} | {} | {:.2} | {:.0} MiB |",
            row.concurrency,
            row.versions,
            row.objects_per_second,
            row.mib_per_second,
            row.latency_ms_p50,
            row.latency_ms_p95,
            row.latency_ms_p99,
            row.retries,
            row.slowdowns,
            row.cpu_seconds_per_1000,
            row.peak_rss_mib
        );
    }
}
