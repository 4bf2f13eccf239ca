//! The commands behind the CLI: build the clients, check, run, summarize.

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use crate::cli::{CopyArgs, EndpointArgs, VerifyArgs};
use crate::error::Error;
use crate::history::{Selection, list_histories};
use crate::location::KeyMapping;
use crate::plan::{Action, PlanSettings};
use crate::preflight::preflight;
use crate::progress::{Failure, Progress, Renderer};
use crate::replay::{CopyJob, Executor};
use crate::s3::limit::{Limited, Limits};
use crate::s3::retry::{RetryPolicy, Retrying};
use crate::s3::{AwsS3, WriteSettings};
use crate::size::human_bytes;

/// The client stack every command uses: retries around limits around aws-sdk-s3.
pub type Client = Retrying<Limited<AwsS3>>;

pub async fn clients(
    endpoints: &EndpointArgs,
    limits: &Arc<Limits>,
    progress: &Arc<Progress>,
) -> (Arc<Client>, Arc<Client>) {
    let build = |aws: AwsS3| {
        Arc::new(Retrying::new(
            Limited::new(aws, Arc::clone(limits)),
            RetryPolicy::default(),
            Arc::clone(progress),
        ))
    };
    let source = AwsS3::connect(&endpoints.source()).await;
    let destination = AwsS3::connect(&endpoints.destination()).await;
    (build(source), build(destination))
}

/// The JSON report of a copy run (`--report FILE`).
#[derive(Debug, Serialize)]
pub struct Report {
    pub source: String,
    pub destination: String,
    pub dry_run: bool,
    pub listed_entries: u64,
    pub copied_versions: u64,
    pub multipart_copies: u64,
    pub delete_markers: u64,
    pub copied_bytes: u64,
    pub failed: u64,
    pub skipped_after_failure: u64,
    pub reconciled_writes: u64,
    pub retries: u64,
    pub throttles: u64,
    pub duration_seconds: f64,
    pub entries_per_second: f64,
    pub bytes_per_second: f64,
    pub failures: Vec<Failure>,
}

fn report(args: &CopyArgs, progress: &Progress, started: Instant) -> Report {
    use std::sync::atomic::Ordering::Relaxed;
    let duration = started.elapsed().as_secs_f64();
    let copied = progress.copied_versions.load(Relaxed) + progress.delete_markers.load(Relaxed);
    let bytes = progress.copied_bytes.load(Relaxed);
    Report {
        source: args.source.to_string(),
        destination: args.destination.to_string(),
        dry_run: args.dry_run,
        listed_entries: progress.listed_entries.load(Relaxed),
        copied_versions: progress.copied_versions.load(Relaxed),
        multipart_copies: progress.multipart_copies.load(Relaxed),
        delete_markers: progress.delete_markers.load(Relaxed),
        copied_bytes: bytes,
        failed: progress.failure_count(),
        skipped_after_failure: progress.skipped_after_failure.load(Relaxed),
        reconciled_writes: progress.reconciled.load(Relaxed),
        retries: progress.retries.load(Relaxed),
        throttles: progress.throttles.load(Relaxed),
        duration_seconds: duration,
        entries_per_second: copied as f64 / duration.max(1e-9),
        bytes_per_second: bytes as f64 / duration.max(1e-9),
        failures: progress.failures(),
    }
}

/// Runs `copy`; returns the report. Entry failures are in the report, not an error.
pub async fn copy(args: &CopyArgs) -> Result<Report, Error> {
    let plan = PlanSettings {
        multipart_threshold: args
            .multipart_threshold
            .unwrap_or(crate::plan::DEFAULT_MULTIPART_THRESHOLD),
        part_size: args.part_size,
    };
    plan.validate().map_err(Error::Usage)?;
    let started = Instant::now();
    let progress = Arc::new(Progress::default());
    let limits = Limits::new(
        args.concurrency as usize,
        args.rate_limit,
        Arc::clone(&progress),
    );
    let (source, destination) = clients(&args.endpoints, &limits, &progress).await;
    preflight(
        &*source,
        &*destination,
        &args.source,
        &args.destination,
        !args.latest_only && !args.dry_run,
    )
    .await?;
    let selection = Selection {
        mapping: KeyMapping {
            source: args.source.clone(),
            destination: args.destination.clone(),
        },
        include: args.include.clone(),
        exclude: args.exclude.clone(),
        latest_only: args.latest_only,
    };
    if args.dry_run {
        return dry_run(args, source, selection, plan, progress, started).await;
    }
    let job = CopyJob {
        selection,
        plan,
        write: WriteSettings {
            storage_class: args.storage_class.clone(),
            sse_kms_key_id: args.sse_kms_key_id.clone(),
        },
        concurrency: args.concurrency as usize,
    };
    let renderer = Renderer::start(Arc::clone(&progress), args.progress, "copy");
    let executor = Arc::new(Executor {
        source,
        destination,
        job,
        progress: Arc::clone(&progress),
    });
    let outcome = executor.run().await;
    renderer.finish().await;
    outcome.map_err(|source| Error::Listing {
        bucket: args.source.bucket.clone(),
        prefix: args.source.prefix.clone(),
        source,
    })?;
    let report = report(args, &progress, started);
    print_summary(&report);
    write_report(args, &report)?;
    Ok(report)
}

async fn dry_run(
    args: &CopyArgs,
    source: Arc<crate::commands::Client>,
    selection: Selection,
    plan: PlanSettings,
    progress: Arc<Progress>,
    started: Instant,
) -> Result<Report, Error> {
    let mut histories = list_histories(
        source,
        args.source.bucket.clone(),
        selection.clone(),
        Arc::clone(&progress),
    );
    let (mut keys, mut versions, mut bytes, mut multipart, mut markers) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    while let Some(history) = histories.recv().await {
        let history = history.map_err(|source| Error::Listing {
            bucket: args.source.bucket.clone(),
            prefix: args.source.prefix.clone(),
            source,
        })?;
        keys += 1;
        for entry in &history.entries {
            match plan.action(entry) {
                Action::DeleteMarker => markers += 1,
                action => {
                    versions += 1;
                    bytes += entry.size();
                    multipart += u64::from(action == Action::Multipart);
                }
            }
        }
    }
    println!(
        "dry run: would copy {versions} versions ({}, {multipart} of them multipart) and recreate {markers} delete \
         markers across {keys} keys from {} to {}; nothing was written",
        human_bytes(bytes),
        args.source,
        args.destination
    );
    let report = report(args, &progress, started);
    write_report(args, &report)?;
    Ok(report)
}

fn print_summary(report: &Report) {
    println!(
        "copied {} versions ({}, {} multipart) and {} delete markers from {} to {} in {:.1} s \
         ({:.0} entries/s, {}/s); {} retries, {} SlowDowns, {} failed",
        report.copied_versions,
        human_bytes(report.copied_bytes),
        report.multipart_copies,
        report.delete_markers,
        report.source,
        report.destination,
        report.duration_seconds,
        report.entries_per_second,
        human_bytes(report.bytes_per_second as u64),
        report.retries,
        report.throttles,
        report.failed,
    );
    for failure in report.failures.iter().take(20) {
        println!(
            "failed: s3://{}/{} version {}: {}",
            failure.bucket, failure.key, failure.version_id, failure.reason
        );
    }
    if report.failures.len() > 20 {
        println!(
            "... and {} more failures (see --report)",
            report.failures.len() - 20
        );
    }
}

fn write_report(args: &CopyArgs, report: &Report) -> Result<(), Error> {
    let Some(path) = &args.report else {
        return Ok(());
    };
    let json = serde_json::to_string_pretty(report).expect("report serializes");
    std::fs::write(path, json + "\n").map_err(|source| Error::File {
        path: path.display().to_string(),
        source,
    })
}

/// Runs `verify`; Ok only when the histories match.
pub async fn verify(args: &VerifyArgs) -> Result<(), Error> {
    let progress = Arc::new(Progress::default());
    let limits = Limits::new(64, None, Arc::clone(&progress));
    let (source, destination) = clients(&args.endpoints, &limits, &progress).await;
    crate::preflight::check_bucket(
        &*source,
        crate::preflight::Side::Source,
        &args.source.bucket,
    )
    .await?;
    crate::preflight::check_bucket(
        &*destination,
        crate::preflight::Side::Destination,
        &args.destination.bucket,
    )
    .await?;
    let mapping = KeyMapping {
        source: args.source.clone(),
        destination: args.destination.clone(),
    };
    let outcome = crate::verify::verify(source, destination, &mapping, args.latest_only)
        .await
        .map_err(|source| Error::Listing {
            bucket: args.source.bucket.clone(),
            prefix: args.source.prefix.clone(),
            source,
        })?;
    if outcome.difference_count == 0 {
        println!(
            "verified {} keys, {} entries: {} and {} match",
            outcome.keys, outcome.entries, args.source, args.destination
        );
        return Ok(());
    }
    println!(
        "{} differences between {} and {} ({} keys, {} entries in the source); the first ones:",
        outcome.difference_count, args.source, args.destination, outcome.keys, outcome.entries
    );
    for difference in &outcome.differences {
        println!("  {difference}");
    }
    Err(Error::Failed(format!(
        "{} differences found",
        outcome.difference_count
    )))
}
