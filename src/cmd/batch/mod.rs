//! S3 Batch Operations mode: builds the job's manifest (from a listing, an inventory or a manifest),
//! uploads it, submits the job through S3 Control (or lets AWS's manifest generator build the list), and
//! follows it to the end.
//! S3 Control itself is behind `crate::s3::control`; the manifests are built in `manifest`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::s3::control::{
    CreateJob, GeneratedManifestFormat, JobDescriptor, JobManifest, JobManifestFieldName,
    JobManifestFormat, JobManifestGenerator, JobManifestGeneratorFilter, JobManifestLocation,
    JobManifestSpec, JobOperation, JobProgressSummary, JobReport, JobReportFormat, JobReportScope,
    JobStatus, Jobs, KeyNameConstraint, ReplicationStatus, S3CopyObjectOperation,
    S3JobManifestGenerator, S3ManifestOutputLocation, S3ReplicateObjectOperation, ServiceError,
};

use crate::cli::{BatchFrom, BatchSubmitArgs, EndpointArgs, Operation, ReportScope};
use crate::error::Error;
use crate::location::Location;
use crate::preflight::{Side, bucket_error, check_bucket, require_versioning};
use crate::progress::Progress;
use crate::s3::{Admin, S3Admin, manifest_key};

mod manifest;

use manifest::{BATCH_COPY_LIMIT, build_manifests};

fn control_error(what: &str, error: ServiceError) -> Error {
    Error::Failed(format!("S3 Control {what} failed: {error}"))
}

/// The account of the jobs: `--account-id`, else the caller's (STS GetCallerIdentity).
pub async fn account_id(given: Option<&str>, jobs: &impl Jobs) -> Result<String, Error> {
    if let Some(id) = given {
        return Ok(id.to_string());
    }
    jobs.account_id().await.map_err(|e| {
        Error::Usage(format!(
            "cannot find the account id (STS GetCallerIdentity: {e}); pass --account-id"
        ))
    })
}

/// The S3 Control and STS clients of the source side.
pub async fn jobs_client(
    endpoints: &EndpointArgs,
    control_endpoint: Option<&str>,
) -> crate::s3::control::AwsJobs {
    crate::s3::control::AwsJobs::connect(&endpoints.source(), control_endpoint).await
}

/// Uploads a manifest file (multipart above 16 MiB, so size is no limit); returns its ETag.
async fn upload(client: &Admin, bucket: &str, key: &str, path: &Path) -> Result<String, Error> {
    client
        .upload_file(bucket, key, path, "text/csv")
        .await
        .map_err(|e| bucket_error(Side::Destination, bucket, e))
}

/// Where manifests go: `--manifest-location`, else under the report prefix.
fn manifest_prefix(args: &BatchSubmitArgs) -> Location {
    args.manifest_location.clone().unwrap_or_else(|| Location {
        bucket: args.report.bucket.clone(),
        prefix: format!(
            "{}s3-backfill-manifests/",
            crate::location::as_directory(&args.report.prefix)
        ),
    })
}

/// A token that is the same for the same job: re-submitting does not create a second one.
fn request_token(parts: &[&str]) -> String {
    format!(
        "s3-backfill-{}",
        crate::digest::md5_hex(parts.join("\n").as_bytes())
    )
}

/// `batch submit`; returns the exit code.
pub async fn submit(args: &BatchSubmitArgs) -> Result<i32, Error> {
    let copy = args.operation == Operation::Copy;
    if copy && args.dest.is_none() {
        return Err(Error::Usage(
            "--operation copy needs --dest s3://DST[/PREFIX]".into(),
        ));
    }
    if copy && !args.wait {
        return Err(Error::Usage(
            "--operation copy submits two jobs, noncurrent versions first and current versions after the first \
             completes (Batch copy does not keep order): add --wait so this command can follow the first job"
                .into(),
        ));
    }
    if copy && args.from == BatchFrom::Generator {
        return Err(Error::Usage(
            "--from generator works with --operation replicate only: a copy needs the manifest split in two".into(),
        ));
    }
    let progress = Arc::new(Progress::default());
    let limits = crate::s3::limit::Limits::new(64, None, Arc::clone(&progress));
    let (source, _) = crate::cmd::clients(&args.endpoints, &limits, &progress).await;
    let plain = crate::s3::admin_client(&args.endpoints.source()).await;
    check_bucket(&plain, Side::Source, &args.source.bucket).await?;
    check_bucket(&plain, Side::Destination, &args.report.bucket).await?;
    if copy {
        let dest = args.dest.as_ref().expect("checked");
        check_bucket(&plain, Side::Destination, &dest.bucket).await?;
        if !args.source.prefix.is_empty() && dest.prefix != args.source.prefix {
            return Err(Error::Usage(format!(
                "Batch copy keeps each key and can only add a prefix in front of it: {} -> {dest} would need the \
                 source prefix replaced; copy the whole bucket, use the same prefix, or use `s3-backfill copy`",
                args.source
            )));
        }
    } else {
        replication_ready(&plain, &args.source).await?;
    }
    let control = jobs_client(&args.endpoints, args.control_endpoint_url.as_deref()).await;
    let account = account_id(args.account_id.as_deref(), &control).await?;
    if args.from == BatchFrom::Generator {
        let id = create_job(
            args,
            &control,
            &account,
            None,
            "all versions (manifest generator)",
        )
        .await?;
        return follow(args, &control, &account, &id).await;
    }
    let scratch = tempfile::tempdir().map_err(|e| Error::Failed(e.to_string()))?;
    let copy_limit = args.batch_copy_limit.unwrap_or(BATCH_COPY_LIMIT);
    let manifests = build_manifests(args, source, scratch.path(), copy_limit).await?;
    if !manifests.too_large.is_empty() {
        let path = std::env::current_dir()
            .unwrap_or_default()
            .join("s3-backfill-too-large-for-batch.csv");
        let mut csv = String::new();
        for (key, version, _) in &manifests.too_large {
            csv.push_str(&format!(
                "{},{},{version}\n",
                args.source.bucket,
                manifest_key(key)
            ));
        }
        std::fs::write(&path, csv).map_err(|e| Error::File {
            path: path.display().to_string(),
            source: e,
        })?;
        println!(
            "{} versions are over Batch copy's {} limit and are left out of the jobs:",
            manifests.too_large.len(),
            crate::size::human_bytes(copy_limit)
        );
        for (key, version, size) in manifests.too_large.iter().take(10) {
            println!(
                "  {key:?} version {version} ({})",
                crate::size::human_bytes(*size)
            );
        }
        println!(
            "copy them with this engine (multipart, in order):\n  s3-backfill copy {} {} --manifest {}",
            args.source,
            args.dest.as_ref().expect("copy"),
            path.display()
        );
    }
    if copy {
        println!(
            "Batch copy does not keep the order of a key's versions: the noncurrent versions go in a first job, \
             the current versions in a second one submitted when the first completes"
        );
    }
    let location = manifest_prefix(args);
    let mut exit = crate::error::exit::SUCCESS;
    for (label, path, rows, hash) in manifests.jobs {
        if rows == 0 {
            println!("{label}: no entries, no job");
            continue;
        }
        let key = format!(
            "{}{hash}.csv",
            crate::location::as_directory(&location.prefix)
        );
        let etag = upload(&plain, &location.bucket, &key, &path).await?;
        println!(
            "{label}: manifest of {rows} entries written to s3://{}/{key} (ETag {etag})",
            location.bucket
        );
        let manifest = (format!("arn:aws:s3:::{}/{key}", location.bucket), etag);
        let id = create_job(args, &control, &account, Some(&manifest), &label).await?;
        exit = exit.max(follow(args, &control, &account, &id).await?);
    }
    Ok(exit)
}

/// The source needs a replication configuration and both ends versioning, or S3ReplicateObject fails.
async fn replication_ready(client: &Admin, source: &Location) -> Result<(), Error> {
    let fix = format!("enable it with `s3-backfill s3bu s3://{}`", source.bucket);
    require_versioning(client, Side::Source, &source.bucket, &fix).await?;
    let Some(configuration) = crate::setup::get_replication(client, &source.bucket).await? else {
        return Err(Error::Usage(format!(
            "bucket {} has no replication configuration, which a replication job needs: create one with \
             `s3-backfill setup s3://{} s3://DST --rule-name NAME --create-role ROLE` (or `s3-backfill s3ptr`), \
             or copy with --operation copy --dest s3://DST",
            source.bucket, source.bucket
        )));
    };
    for rule in configuration.rules() {
        if let Some(bucket) = rule.destination().map(|d| d.bucket()) {
            let name = bucket.trim_start_matches("arn:aws:s3:::");
            let fix = format!("enable it with `s3-backfill s3bu s3://{name}`");
            if check_bucket(client, Side::Destination, name).await.is_ok() {
                require_versioning(client, Side::Destination, name, &fix).await?;
            }
        }
    }
    Ok(())
}

async fn create_job(
    args: &BatchSubmitArgs,
    control: &impl Jobs,
    account: &str,
    manifest: Option<&(String, String)>,
    label: &str,
) -> Result<String, Error> {
    let build = |what: &str, e: &dyn std::fmt::Display| {
        Error::Failed(format!("building the job's {what}: {e}"))
    };
    let operation = match (&args.operation, &args.dest) {
        (Operation::Copy, Some(dest)) => {
            let mut copy = S3CopyObjectOperation::builder()
                .target_resource(format!("arn:aws:s3:::{}", dest.bucket));
            if args.source.prefix.is_empty() && !dest.prefix.is_empty() {
                copy = copy.target_key_prefix(&dest.prefix);
            }
            JobOperation::builder()
                .s3_put_object_copy(copy.build())
                .build()
        }
        _ => JobOperation::builder()
            .s3_replicate_object(S3ReplicateObjectOperation::builder().build())
            .build(),
    };
    let report = JobReport::builder()
        .bucket(format!("arn:aws:s3:::{}", args.report.bucket))
        .prefix(args.report.prefix.trim_end_matches('/'))
        .format(JobReportFormat::ReportCsv20180820)
        .enabled(true)
        .report_scope(match args.report_scope {
            ReportScope::All => JobReportScope::AllTasks,
            ReportScope::Failed => JobReportScope::FailedTasksOnly,
        })
        .build();
    let token_parts = [
        account.to_string(),
        format!("{:?}", args.operation),
        args.source.to_string(),
        format!("{:?}", args.dest),
        args.role_arn.clone(),
        args.report.to_string(),
        manifest.map_or("generator".to_string(), |(arn, etag)| {
            format!("{arn} {etag}")
        }),
        format!(
            "{:?} {:?} {:?}",
            args.filter, args.created_after, args.created_before
        ),
    ];
    let token_parts: Vec<&str> = token_parts.iter().map(String::as_str).collect();
    let mut job = CreateJob {
        operation,
        report,
        manifest: None,
        generator: None,
        token: request_token(&token_parts),
        priority: args.priority,
        role_arn: args.role_arn.clone(),
        confirmation_required: !args.no_confirmation,
        description: format!("s3-backfill: {label} of {}", args.source),
    };
    match manifest {
        Some((arn, etag)) => {
            job.manifest = Some(
                JobManifest::builder()
                    .spec(
                        JobManifestSpec::builder()
                            .format(JobManifestFormat::S3BatchOperationsCsv20180820)
                            .fields(JobManifestFieldName::Bucket)
                            .fields(JobManifestFieldName::Key)
                            .fields(JobManifestFieldName::VersionId)
                            .build()
                            .map_err(|e| build("manifest spec", &e))?,
                    )
                    .location(
                        JobManifestLocation::builder()
                            .object_arn(arn)
                            .e_tag(etag)
                            .build()
                            .map_err(|e| build("manifest location", &e))?,
                    )
                    .build(),
            );
        }
        None => {
            let output = manifest_prefix(args);
            let mut filter = JobManifestGeneratorFilter::builder();
            match &args.filter {
                Some(crate::cli::BatchFilter::Eligible) | None => {
                    filter = filter.eligible_for_replication(true);
                }
                Some(crate::cli::BatchFilter::Statuses(statuses)) => {
                    for status in statuses {
                        filter = filter
                            .object_replication_statuses(ReplicationStatus::from(status.as_str()));
                    }
                }
            }
            if let Some(after) = &args.created_after {
                filter = filter.created_after(parse_time(after)?);
            }
            if let Some(before) = &args.created_before {
                filter = filter.created_before(parse_time(before)?);
            }
            if !args.source.prefix.is_empty() {
                filter = filter.key_name_constraint(
                    KeyNameConstraint::builder()
                        .match_any_prefix(&args.source.prefix)
                        .build(),
                );
            }
            let generator = S3JobManifestGenerator::builder()
                .source_bucket(format!("arn:aws:s3:::{}", args.source.bucket))
                .enable_manifest_output(true)
                .manifest_output_location(
                    S3ManifestOutputLocation::builder()
                        .bucket(format!("arn:aws:s3:::{}", output.bucket))
                        .manifest_prefix(output.prefix.trim_end_matches('/'))
                        .manifest_format(GeneratedManifestFormat::S3InventoryReportCsv20211130)
                        .build()
                        .map_err(|e| build("manifest output", &e))?,
                )
                .filter(filter.build())
                .build()
                .map_err(|e| build("manifest generator", &e))?;
            job.generator = Some(JobManifestGenerator::S3JobManifestGenerator(generator));
        }
    }
    let id = control
        .create_job(account, &job)
        .await
        .map_err(|e| control_error("CreateJob", e))?;
    println!(
        "{label}: job {id} submitted in account {account} ({}, priority {}, report to s3://{}/{}){}",
        match args.operation {
            Operation::Copy => "S3PutObjectCopy",
            Operation::Replicate => "S3ReplicateObject",
        },
        args.priority,
        args.report.bucket,
        args.report.prefix,
        if args.no_confirmation {
            ""
        } else {
            "; it waits for confirmation in the console"
        }
    );
    if args.json {
        println!(
            "{}",
            serde_json::json!({ "job_id": id, "account_id": account, "label": label })
        );
    }
    Ok(id)
}

fn parse_time(text: &str) -> Result<crate::s3::control::DateTime, Error> {
    crate::clock::parse_rfc3339(text)
        .map(crate::s3::control::DateTime::from_millis)
        .map_err(Error::Usage)
}

async fn follow(
    args: &BatchSubmitArgs,
    control: &impl Jobs,
    account: &str,
    id: &str,
) -> Result<i32, Error> {
    if args.wait {
        wait(
            control,
            account,
            id,
            Duration::from_secs_f64(args.poll_seconds),
        )
        .await
    } else {
        println!("follow it with: s3-backfill batch wait {id} --account-id {account}");
        Ok(crate::error::exit::SUCCESS)
    }
}

/// A job's (total, succeeded, failed) tasks, 0 where S3 Control gives no figure.
fn tasks(summary: Option<&JobProgressSummary>) -> (i64, i64, i64) {
    summary.map_or((0, 0, 0), |s| {
        (
            s.total_number_of_tasks().unwrap_or(0),
            s.number_of_tasks_succeeded().unwrap_or(0),
            s.number_of_tasks_failed().unwrap_or(0),
        )
    })
}

/// DescribeJob of `id`.
async fn describe_job(
    control: &impl Jobs,
    account: &str,
    id: &str,
) -> Result<JobDescriptor, Error> {
    control
        .describe_job(account, id)
        .await
        .map_err(|e| control_error("DescribeJob", e))
}

/// Prints a job's state in one line.
fn describe(job: &JobDescriptor) -> String {
    let (total, succeeded, failed) = tasks(job.progress_summary());
    format!(
        "job {}: {} — {succeeded} of {total} tasks succeeded, {failed} failed",
        job.job_id().unwrap_or("?"),
        job.status().map_or("?", |s| s.as_str()),
    )
}

pub async fn status(control: &impl Jobs, account: &str, id: &str) -> Result<i32, Error> {
    let job = describe_job(control, account, id).await?;
    println!("{}", describe(&job));
    if let Some(reasons) = job.failure_reasons().first() {
        println!(
            "  failure: {} {}",
            reasons.failure_code().unwrap_or(""),
            reasons.failure_reason().unwrap_or("")
        );
    }
    Ok(crate::error::exit::SUCCESS)
}

/// Follows a job to its end with a progress bar; exit 1 when it failed or had failed tasks.
pub async fn wait(
    control: &impl Jobs,
    account: &str,
    id: &str,
    interval: Duration,
) -> Result<i32, Error> {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} tasks, ETA {eta}")
            .expect("template"),
    );
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    loop {
        let job = describe_job(control, account, id).await?;
        let (total, succeeded, failed) = tasks(job.progress_summary());
        bar.set_length(total.max(0) as u64);
        bar.set_position((succeeded + failed).max(0) as u64);
        let status = job.status().cloned();
        bar.set_message(status.as_ref().map_or("?", |s| s.as_str()).to_string());
        if bar.is_hidden() {
            eprintln!("{}", describe(&job));
        }
        let finished = matches!(
            status,
            Some(JobStatus::Complete | JobStatus::Failed | JobStatus::Cancelled)
        );
        if finished {
            bar.finish_and_clear();
            println!("{}", describe(&job));
            if let Some(report) = job.report() {
                println!(
                    "completion report: {}/{}/job-{id}/",
                    report
                        .bucket()
                        .unwrap_or("")
                        .replace("arn:aws:s3:::", "s3://"),
                    report.prefix().unwrap_or("")
                );
            }
            return Ok(if status == Some(JobStatus::Complete) && failed == 0 {
                crate::error::exit::SUCCESS
            } else {
                crate::error::exit::FAILURES
            });
        }
        tokio::time::sleep(interval).await;
    }
}

pub async fn list(control: &impl Jobs, account: &str, status: Option<&str>) -> Result<i32, Error> {
    let jobs = control
        .list_jobs(account, status)
        .await
        .map_err(|e| control_error("ListJobs", e))?;
    if jobs.is_empty() {
        println!("no jobs");
    }
    for job in &jobs {
        let (total, succeeded, failed) = tasks(job.progress_summary());
        println!(
            "{}  {:10}  {succeeded:>8}/{total:<8} failed {failed:<6} {}",
            job.job_id().unwrap_or("?"),
            job.status().map_or("?", |s| s.as_str()),
            job.description().unwrap_or("")
        );
    }
    Ok(crate::error::exit::SUCCESS)
}

pub async fn cancel(control: &impl Jobs, account: &str, id: &str) -> Result<i32, Error> {
    let status = control
        .cancel_job(account, id)
        .await
        .map_err(|e| control_error("UpdateJobStatus", e))?;
    println!(
        "job {id}: {}",
        status.map_or("cancel requested".to_string(), |s| format!("now {s}"))
    );
    Ok(crate::error::exit::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_stable_and_changes_with_the_job() {
        assert_eq!(request_token(&["a", "b"]), request_token(&["a", "b"]));
        assert_ne!(request_token(&["a", "b"]), request_token(&["a", "c"]));
        assert!(
            request_token(&["a"]).len() <= 64,
            "CreateJob takes tokens of up to 64 characters"
        );
    }
}
