//! `copy`: preflight, checkpoint, the executor over the listing or an input, the summary and report.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use super::{Client, Places, clients_and_places, write_private};
use crate::checkpoint::{
    HEARTBEAT, JobIdentity, Journal, Record, State, in_flight_bound, now_unix, replay,
};
use crate::cli::CopyArgs;
use crate::error::Error;
use crate::history::{KeyHistory, Selection};
use crate::input::InputSpec;
use crate::location::KeyMapping;
use crate::plan::PlanSettings;
use crate::preflight::preflight;
use crate::progress::{Failure, Progress, Renderer};
use crate::replay::{Checkpoint, CopyJob, Executor, Stop};
use crate::s3::WriteSettings;
use crate::s3::limit::Limits;
use crate::size::human_bytes;

/// The report's schema: 2 added the state, the timestamps, the shard, listed bytes and failure codes.
const REPORT_SCHEMA: u32 = 2;

/// The JSON report of a copy run (`--report FILE`).
#[derive(Debug, Serialize)]
pub struct Report {
    pub schema_version: u32,
    /// `running` (rewritten every `--report-interval`), `finished`, `interrupted` (Ctrl-C) or `stopped`
    /// (an error after the start; a rerun resumes).
    pub state: &'static str,
    /// RFC 3339.
    pub started_at: String,
    pub updated_at: String,
    pub shard: Option<String>,
    pub source: String,
    pub destination: String,
    pub dry_run: bool,
    pub listed_entries: u64,
    pub listed_bytes: u64,
    pub copied_versions: u64,
    pub multipart_copies: u64,
    pub delete_markers: u64,
    pub copied_bytes: u64,
    pub failed: u64,
    pub skipped_after_failure: u64,
    pub reconciled_writes: u64,
    /// Entries the destination already held (written by an earlier run, or by anyone): not written again.
    pub already_done: u64,
    /// The bytes of those entries: what this run did not copy again.
    pub bytes_saved: u64,
    /// The write requests (copies, parts, delete markers) those entries would have taken.
    pub requests_saved: u64,
    /// Keys whose destination history was the source's already.
    pub keys_in_step: u64,
    /// Keys this run wrote entries to (a dry run: would write to).
    pub keys_written: u64,
    /// Entries matched though their ETags are not comparable (part layouts, SSE-KMS, SSE-C): by
    /// checksum; by their bytes (`--compare content`, `compared_bytes` read from both sides); by size
    /// alone (`--compare size`: proves nothing).
    pub matched_by_checksum: u64,
    pub matched_by_content: u64,
    pub compared_bytes: u64,
    /// ... by this machine's record of the copies it wrote (their ETags cannot prove them).
    pub matched_by_record: u64,
    pub matched_by_size_only: u64,
    /// Keys whose destination history is neither the source's nor a prefix of it.
    pub diverged: Vec<crate::progress::Diverged>,
    /// Keys left untouched because nothing proved an entry the same as its source or different.
    pub unproven: Vec<crate::progress::Unproven>,
    pub checkpoint: Option<String>,
    pub retries: u64,
    pub throttles: u64,
    pub duration_seconds: f64,
    pub entries_per_second: f64,
    pub bytes_per_second: f64,
    /// S3 request latency percentiles (milliseconds, within 10%).
    pub latency_ms_p50: f64,
    pub latency_ms_p95: f64,
    pub latency_ms_p99: f64,
    pub requests: u64,
    pub failures: Vec<Failure>,
}

impl Report {
    fn destination_bucket(&self) -> &str {
        let rest = self.destination.trim_start_matches("s3://");
        rest.split('/').next().unwrap_or(rest)
    }

    /// Keys left diverged or unproven and untouched: the run did not finish the job.
    pub fn unfinished_keys(&self) -> u64 {
        self.diverged.iter().filter(|d| !d.appended).count() as u64 + self.unproven.len() as u64
    }
}

/// Where the run is, for the report.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Run {
    pub started: Instant,
    pub started_unix: u64,
}

fn report(
    args: &CopyArgs,
    progress: &Progress,
    run: Run,
    checkpoint: Option<&Path>,
    state: &'static str,
) -> Report {
    use std::sync::atomic::Ordering::Relaxed;
    let started = run.started;
    let duration = started.elapsed().as_secs_f64();
    let copied = progress.copied_versions.load(Relaxed) + progress.delete_markers.load(Relaxed);
    let bytes = progress.copied_bytes.load(Relaxed);
    Report {
        schema_version: REPORT_SCHEMA,
        state,
        started_at: crate::clock::rfc3339(run.started_unix),
        updated_at: crate::clock::now_rfc3339(),
        shard: shard(args).ok().flatten().map(|s| s.to_string()),
        source: args.source.to_string(),
        destination: args.destination.to_string(),
        dry_run: args.dry_run,
        listed_entries: progress.listed_entries.load(Relaxed),
        listed_bytes: progress.listed_bytes.load(Relaxed),
        copied_versions: progress.copied_versions.load(Relaxed),
        multipart_copies: progress.multipart_copies.load(Relaxed),
        delete_markers: progress.delete_markers.load(Relaxed),
        copied_bytes: bytes,
        failed: progress.failure_count(),
        skipped_after_failure: progress.skipped_after_failure.load(Relaxed),
        reconciled_writes: progress.reconciled.load(Relaxed),
        already_done: progress.already_done.load(Relaxed),
        bytes_saved: progress.already_done_bytes.load(Relaxed),
        requests_saved: progress.requests_saved.load(Relaxed),
        keys_in_step: progress.keys_in_step.load(Relaxed),
        keys_written: progress.keys_written.load(Relaxed),
        matched_by_checksum: progress.matched_by_checksum.load(Relaxed),
        matched_by_content: progress.matched_by_content.load(Relaxed),
        compared_bytes: progress.compared_bytes.load(Relaxed),
        matched_by_record: progress.matched_by_record.load(Relaxed),
        matched_by_size_only: progress.matched_by_size.load(Relaxed),
        diverged: progress.diverged_keys(),
        unproven: progress.unproven_keys(),
        checkpoint: checkpoint.map(|p| p.display().to_string()),
        retries: progress.retries.load(Relaxed),
        throttles: progress.throttles.load(Relaxed),
        duration_seconds: duration,
        entries_per_second: copied as f64 / duration.max(1e-9),
        bytes_per_second: bytes as f64 / duration.max(1e-9),
        latency_ms_p50: progress.latency.percentile_ms(0.50),
        latency_ms_p95: progress.latency.percentile_ms(0.95),
        latency_ms_p99: progress.latency.percentile_ms(0.99),
        requests: progress.latency.count(),
        failures: progress.failures(),
    }
}

fn identity(args: &CopyArgs, places: &Places) -> JobIdentity {
    JobIdentity {
        source_endpoint: places.source.clone(),
        destination_endpoint: places.destination.clone(),
        source: args.source.to_string(),
        destination: args.destination.to_string(),
        include: args.include.clone(),
        exclude: args.exclude.clone(),
        latest_only: args.latest_only,
        storage_class: args.storage_class.clone(),
        sse_kms_key_id: args.sse_kms_key_id.clone(),
        input: input_spec(args).map(|spec| spec.to_string()),
        as_of: args.as_of.clone(),
        shard: shard(args).ok().flatten().map(|s| s.to_string()),
    }
}

/// `--shard K/N`, or `--shard auto[/N]` from a Kubernetes Indexed Job (JOB_COMPLETION_INDEX, the count
/// from /N or S3_BACKFILL_SHARDS) or an AWS Batch array job (AWS_BATCH_JOB_ARRAY_INDEX and _SIZE).
pub fn shard(args: &CopyArgs) -> Result<Option<crate::history::Shard>, Error> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    args.shard
        .as_deref()
        .map(|text| parse_shard(text, env))
        .transpose()
}

/// `K/N`, `auto` or `auto/N`, with `env` for the job's variables.
fn parse_shard(
    text: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<crate::history::Shard, Error> {
    let usage = |why: String| {
        Error::Usage(format!(
            "--shard {text}: {why}; write --shard K/N (shard K of N, 0 <= K < N), or --shard auto in a \
             Kubernetes Indexed Job (JOB_COMPLETION_INDEX, with --shard auto/N or S3_BACKFILL_SHARDS) or an AWS \
             Batch array job (AWS_BATCH_JOB_ARRAY_INDEX and AWS_BATCH_JOB_ARRAY_SIZE)"
        ))
    };
    let from_job = || env("JOB_COMPLETION_INDEX").or_else(|| env("AWS_BATCH_JOB_ARRAY_INDEX"));
    let (index, count) = match text.split_once('/') {
        Some(("auto", count)) => (from_job(), Some(count.to_string())),
        None if text == "auto" => (
            from_job(),
            env("AWS_BATCH_JOB_ARRAY_SIZE").or_else(|| env("S3_BACKFILL_SHARDS")),
        ),
        Some((index, count)) => (Some(index.to_string()), Some(count.to_string())),
        None => return Err(usage("it is neither K/N nor auto".into())),
    };
    let number = |what: &str, value: Option<String>, missing: &str| {
        let value = value.ok_or_else(|| usage(missing.to_string()))?;
        value.parse::<u64>().map_err(|error| {
            usage(match error.kind() {
                std::num::IntErrorKind::PosOverflow => {
                    format!(
                        "the shard {what} {value} is too large (at most {})",
                        u64::MAX
                    )
                }
                _ => format!("the shard {what} {value:?} is not a whole number"),
            })
        })
    };
    let index = number(
        "index",
        index,
        "no shard index: neither JOB_COMPLETION_INDEX nor AWS_BATCH_JOB_ARRAY_INDEX is set",
    )?;
    let count = number(
        "count",
        count,
        "no shard count: write --shard auto/N, or set S3_BACKFILL_SHARDS or AWS_BATCH_JOB_ARRAY_SIZE",
    )?;
    if count == 0 || index >= count {
        return Err(usage(format!(
            "the index ({index}) must be below the count ({count})"
        )));
    }
    Ok(crate::history::Shard { index, count })
}

/// The inventory or manifest the copy reads instead of listing, if any.
fn input_spec(args: &CopyArgs) -> Option<InputSpec> {
    match (&args.inventory, &args.manifest) {
        (Some(uri), _) => Some(InputSpec::Inventory {
            uri: uri.clone(),
            check: args.inventory_check,
        }),
        (None, Some(uri)) => Some(InputSpec::Manifest { uri: uri.clone() }),
        (None, None) => None,
    }
}

/// Reads, checks and sorts the inventory or manifest; a bad one is a usage error (exit 2), found
/// before any write.
async fn load_input(
    args: &CopyArgs,
    source: &Client,
) -> Result<Option<(InputSpec, crate::input::Loaded)>, Error> {
    let Some(spec) = input_spec(args) else {
        return Ok(None);
    };
    let started = Instant::now();
    // Reading a large inventory takes minutes: say how far it got, as the copy's progress does.
    let ticker = (args.progress != crate::progress::ProgressMode::Never).then(|| {
        let interval = std::time::Duration::from_secs_f64(args.progress_interval);
        let label = spec.to_string();
        eprintln!("{} reading {label}", crate::clock::now_rfc3339());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                eprintln!(
                    "{} reading {label}: {} rows so far",
                    crate::clock::now_rfc3339(),
                    crate::progress::thousands(
                        crate::input::sort::ROWS_READ.load(std::sync::atomic::Ordering::Relaxed)
                    )
                );
            }
        })
    });
    let loaded = crate::input::load(&spec, source, &args.source.bucket, args.latest_only).await;
    if let Some(ticker) = ticker {
        ticker.abort();
    }
    let loaded = loaded.map_err(|e| Error::Usage(format!("{e}; nothing was copied")))?;
    eprintln!(
        "read {} rows from {} file{} of {spec} in {:.1} s",
        loaded.rows,
        loaded.files,
        if loaded.files == 1 { "" } else { "s" },
        started.elapsed().as_secs_f64()
    );
    Ok(Some((spec, loaded)))
}

/// The histories to replay: from the loaded input when there is one (skipping keys `skip` names),
/// else None and the executor lists the source.
fn input_histories(
    input: Option<(InputSpec, crate::input::Loaded)>,
    source: &Arc<Client>,
    selection: &Selection,
    progress: &Arc<Progress>,
    skip: Box<dyn Fn(&str) -> bool + Send>,
) -> Option<tokio::sync::mpsc::Receiver<Result<KeyHistory, crate::s3::S3Error>>> {
    input.map(|(_, loaded)| {
        crate::input::histories(
            loaded,
            Arc::clone(source),
            selection.clone(),
            skip,
            Arc::clone(progress),
        )
    })
}

/// Where the checkpoint of a job lives unless `--checkpoint` says otherwise.
pub fn default_checkpoint_path(identity: &JobIdentity) -> PathBuf {
    PathBuf::from(".s3-backfill").join(format!("{}.checkpoint", identity.fingerprint()))
}

/// Opens the job's checkpoint, refusing one written for another job or in use by another run. Errors
/// are usage errors (exit 2): they are found before any write.
fn open_checkpoint(args: &CopyArgs, places: &Places) -> Result<Option<Checkpoint>, Error> {
    if args.no_checkpoint {
        return Ok(None);
    }
    let identity = identity(args, places);
    let path = args
        .checkpoint
        .clone()
        .unwrap_or_else(|| default_checkpoint_path(&identity));
    let usage = |e: crate::checkpoint::JournalError| Error::Usage(e.to_string());
    let lock = crate::checkpoint::lock(&path).map_err(|e| Error::Usage(e.to_string()))?;
    let existing = if path.exists() {
        Some(replay(&path).map_err(usage)?)
    } else {
        None
    };
    // An empty file (`mktemp`) has no job record yet: it is a new checkpoint.
    let existing = existing.filter(|state| state.identity.is_some());
    if let Some(recorded) = existing.as_ref().and_then(|s| s.identity.as_ref())
        && !args.restart
    {
        let differences = recorded.differences(&identity);
        if !differences.is_empty() {
            return Err(Error::Usage(format!(
                "checkpoint {} was written for another job: {}; rerun that job's command, choose another \
                 --checkpoint, or pass --restart to discard it (safe: the copy then compares every key with \
                 the destination and writes only what is missing)",
                path.display(),
                differences.join(", ")
            )));
        }
    }
    // A write the last run had in flight may land until its attempt's deadline after the run died,
    // whether its progress is kept or discarded (`--restart`): see `in_flight_bound`.
    let settle_until = existing
        .as_ref()
        .filter(|state| !state.ended_cleanly)
        .and_then(|state| {
            let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok()?;
            let gone_for = modified.elapsed().unwrap_or_default();
            let wait = in_flight_bound(state, args.resume_wait).saturating_sub(gone_for);
            Some(tokio::time::Instant::now() + wait)
        });
    let (state, fresh) = match existing {
        None => (State::default(), true),
        Some(_) if args.restart => (State::default(), true),
        Some(state) if state.pass_complete => {
            eprintln!(
                "checkpoint {}: the last run went over every key; this run is a new pass, which compares \
                 every key with the destination and copies only what the source gained since",
                path.display()
            );
            // A new pass keeps nothing but the job, and the failed keys when they are not to be retried.
            let next = State {
                identity: state.identity,
                failed: if args.retry_failed {
                    Default::default()
                } else {
                    state.failed
                },
                ..State::default()
            };
            (next, false)
        }
        Some(state) => (state, false),
    };
    let journal = Journal::open(&path, &identity, state, fresh).map_err(usage)?;
    Ok(Some(Checkpoint {
        journal,
        retry_failed: args.retry_failed,
        settle_until,
        _lock: lock,
    }))
}

/// The command line to resume with, quoted for a POSIX shell; secrets masked.
fn resume_command() -> String {
    resume_command_of(std::env::args())
}

/// `args` as a command line to print: SSE-C keys given as values (not `file:PATH`) replaced by `***`,
/// a proxy URL's credentials taken out. README: keys are never printed.
fn resume_command_of(args: impl Iterator<Item = String>) -> String {
    const KEYS: [&str; 2] = ["--sse-c-key", "--source-sse-c-key"];
    let masked = |option: &str, value: &str| -> String {
        if KEYS.contains(&option) && !value.starts_with("file:") {
            "***".to_string()
        } else if option == "--proxy" {
            crate::s3::without_credentials(value)
        } else {
            value.to_string()
        }
    };
    let mut words = Vec::new();
    let mut option_before: Option<String> = None;
    for arg in args {
        let word = match option_before.take() {
            Some(option) => masked(&option, &arg),
            None => match arg.split_once('=') {
                Some((option, value)) if option.starts_with("--") => {
                    format!("{option}={}", masked(option, value))
                }
                _ => {
                    if KEYS.contains(&arg.as_str()) || arg == "--proxy" {
                        option_before = Some(arg.clone());
                    }
                    arg
                }
            },
        };
        words.push(word);
    }
    words
        .into_iter()
        .map(|arg| {
            if !arg.is_empty()
                && arg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+".contains(c))
            {
                arg
            } else {
                crate::error::shell_quoted(&arg)
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `copy`; returns the report. Entry failures are in the report, not an error.
pub async fn copy(args: &CopyArgs, stop: Arc<Stop>) -> Result<Report, Error> {
    let plan = PlanSettings {
        multipart_threshold: args
            .multipart_threshold
            .unwrap_or(crate::plan::DEFAULT_MULTIPART_THRESHOLD),
        part_size: args.part_size,
    };
    plan.validate().map_err(Error::Usage)?;
    let run = Run {
        started: Instant::now(),
        started_unix: now_unix(),
    };
    tracing::info!(
        source = %args.source,
        destination = %args.destination,
        concurrency = args.concurrency,
        latest_only = args.latest_only,
        dry_run = args.dry_run,
        "copy started"
    );
    let progress = Arc::new(Progress::default());
    let limits = Limits::new(
        args.concurrency as usize,
        args.rate_limit,
        Arc::clone(&progress),
    );
    let (source, destination, places) = clients_and_places(
        &args.endpoints,
        &limits,
        &progress,
        args.source_sse_c_key.clone(),
        args.sse_c_key.clone(),
    )
    .await;
    preflight(
        &*source,
        &*destination,
        &args.source,
        &args.destination,
        !args.latest_only && !args.dry_run,
        places.same_endpoint(),
    )
    .await?;
    let carry_object_lock = crate::preflight::object_lock(
        &*source,
        &*destination,
        &args.source,
        &args.destination,
        args.no_object_lock,
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
        shard: shard(args)?,
        // Only a definite "never versioned" counts; an error (no s3:GetBucketVersioning) keeps the
        // version listing.
        source_unversioned: crate::s3::S3Api::bucket_versioning(&*source, &args.source.bucket)
            .await
            == Ok(crate::s3::Versioning::Never),
        as_of: args.as_of.as_deref().and_then(crate::history::unix_millis),
    };
    if let Some(as_of) = &args.as_of {
        eprintln!(
            "as of {as_of}: each key's history up to that moment; later entries are not copied"
        );
    }
    if let Some(shard) = selection.shard {
        eprintln!("shard {shard}: copying the keys whose hash falls in shard {shard}");
    }
    // Bound before anything is created here: a port in use refuses the run as it stands.
    let metrics = match args.metrics_addr {
        Some(addr) => Some(
            crate::metrics::serve(
                addr,
                Arc::clone(&progress),
                // The job's fingerprint (the default checkpoint's name) labels its series.
                identity(args, &places).fingerprint(),
                shard(args).ok().flatten().map(|s| s.to_string()),
            )
            .await
            .map_err(|e| {
                Error::Usage(format!(
                    "cannot serve metrics on {addr}: {e}; choose another --metrics-addr"
                ))
            })?,
        ),
        None => None,
    };
    let input = load_input(args, &source).await?;
    crate::preflight::check_destination_listing(&*destination, &args.destination).await?;
    // A dry run plans against the destination like a run, and writes nothing: no checkpoint, no lock.
    let checkpoint = if args.dry_run {
        None
    } else {
        open_checkpoint(args, &places)?
    };
    // One run at a time into any destination range on this machine, whatever its checkpoint: ranges
    // that overlap are refused, by what they cover. A manifest or inventory names keys anywhere in
    // the bucket: it holds the whole bucket.
    let range = crate::checkpoint::Range {
        bucket: args.destination.bucket.clone(),
        prefix: if input.is_some() {
            String::new()
        } else {
            args.destination.prefix.clone()
        },
        shard: selection.shard.map(|shard| {
            (
                shard.index,
                shard.count,
                format!("s3://{}/{}", args.source.bucket, args.source.prefix),
            )
        }),
    };
    let _destination_lock = (!args.dry_run)
        .then(|| crate::checkpoint::lock_destination(&range))
        .transpose()
        .map_err(|e| Error::Usage(e.to_string()))?;
    let destination_versioning =
        crate::s3::S3Api::bucket_versioning(&*destination, &args.destination.bucket).await;
    // Website redirects matter on a bucket that serves a website; CopyObject drops them, so there
    // each version's is read and set. Where the configuration cannot be read, they are not.
    let carry_website_redirect = match crate::s3::S3Api::serves_website(
        &*source,
        &args.source.bucket,
    )
    .await
    {
        Ok(serves) => serves,
        Err(crate::s3::S3Error::AccessDenied { .. }) => {
            eprintln!(
                "note: cannot read the website configuration of source bucket {}: if it serves a website, \
                 its objects' website redirects are not carried by CopyObject (multipart copies carry them)",
                args.source.bucket
            );
            false
        }
        Err(_) => false,
    };
    let carry_encryption = carry_encryption(args, &*source, &*destination).await;
    // A resumed run over an input skips the keys below the watermark, except failed ones to retry.
    let skip: Box<dyn Fn(&str) -> bool + Send> = match &checkpoint {
        Some(c) => {
            let state = c.journal.state();
            let watermark = state.watermark.clone();
            let retry: std::collections::HashSet<String> = if c.retry_failed {
                state.failed.keys().cloned().collect()
            } else {
                Default::default()
            };
            Box::new(move |key| {
                watermark.as_deref().is_some_and(|w| key <= w) && !retry.contains(key)
            })
        }
        None => Box::new(|_| false),
    };
    let histories = input_histories(input, &source, &selection, &progress, skip);
    let checkpoint_path = checkpoint.as_ref().map(|c| c.journal.path().to_path_buf());
    // What earlier runs had done, for the totals recorded at the end.
    let (listed_before, done_before) = checkpoint.as_ref().map_or((0, 0), |c| {
        let state = c.journal.state();
        (state.listed_entries, state.done_entries)
    });
    let job = CopyJob {
        selection,
        plan,
        write: WriteSettings {
            storage_class: args.storage_class.clone(),
            sse_kms_key_id: args.sse_kms_key_id.clone(),
            object_lock: carry_object_lock,
            carry_encryption,
            source_customer_key: args.source_sse_c_key.is_some(),
            carry_website_redirect,
        },
        concurrency: args.concurrency as usize,
        tolerate_missing_source: args.inventory.is_some() || args.manifest.is_some(),
        listers: args.listers as usize,
        on_diverged: args.on_diverged,
        compare: args.compare,
        encrypted_etags: args.sse_kms_key_id.is_some()
            || args.sse_c_key.is_some()
            || args.source_sse_c_key.is_some(),
        destination_versioned: destination_versioning == Ok(crate::s3::Versioning::Enabled),
        destination_never_versioned: destination_versioning == Ok(crate::s3::Versioning::Never),
        destination_per_key: args.manifest.is_some(),
        dry_run: args.dry_run,
    };
    let version_map = args
        .version_map
        .as_deref()
        .map(|path| {
            let pending = checkpoint
                .as_ref()
                .map(|checkpoint| {
                    checkpoint
                        .journal
                        .state()
                        .keys
                        .iter()
                        .filter(|(_, state)| {
                            matches!(state, crate::checkpoint::KeyState::Pending { .. })
                        })
                        .map(|(key, _)| key.clone())
                        .collect()
                })
                .unwrap_or_default();
            crate::replay::VersionMap::open(path, &pending).map_err(|e| {
                Error::Usage(format!(
                    "failed to open the version map {}: {e}; choose a writable path",
                    path.display()
                ))
            })
        })
        .transpose()?;
    // Best effort: without it, copies whose ETags cannot prove them are proven by --compare content.
    let provenance = match crate::checkpoint::machine_directory("provenance")
        .map_err(|e| e.to_string())
        .and_then(|directory| {
            crate::replay::Provenance::open(&directory, &args.destination.bucket)
                .map_err(|e| format!("{}: {e}", directory.display()))
        }) {
        Ok(provenance) => Some(provenance),
        Err(error) => {
            tracing::warn!(
                error = %error,
                "cannot record the provenance of copies whose ETags cannot prove them; a later run \
                 proves those only with --compare content"
            );
            None
        }
    };
    let renderer = Renderer::start(
        Arc::clone(&progress),
        args.progress,
        "copy",
        std::time::Duration::from_secs_f64(args.progress_interval),
    );
    let executor = Arc::new(Executor {
        source,
        destination,
        job,
        progress: Arc::clone(&progress),
        checkpoint,
        stop: Arc::clone(&stop),
        halted: std::sync::Mutex::new(None),
        version_map,
        provenance,
    });
    let live = tokio::spawn(live_updates(
        args.clone(),
        Arc::clone(&executor),
        run,
        checkpoint_path.clone(),
        (listed_before, done_before),
    ));
    let beat = checkpoint_path
        .clone()
        .map(|path| tokio::spawn(heartbeat(path)));
    let outcome = Arc::clone(&executor).run(histories).await;
    live.abort();
    if let Some(beat) = beat {
        beat.abort();
    }
    drop(metrics);
    renderer.finish().await;
    if let Some(checkpoint) = &executor.checkpoint {
        checkpoint
            .journal
            .append(stats(&progress, (listed_before, done_before), true));
        let flushed = checkpoint.journal.flush().await;
        if let Err(error) = flushed {
            executor.halt(error.to_string());
        }
    }
    // The summary and the report, in the state the run ends in.
    let conclude = |state: &'static str| -> Result<Report, Error> {
        let report = report(args, &progress, run, checkpoint_path.as_deref(), state);
        print_summary(&report);
        write_report(args, &report)?;
        Ok(report)
    };
    let halted = executor.halted.lock().expect("halt lock").clone();
    if let Some(reason) = halted {
        conclude("stopped")?;
        return Err(Error::Stopped(format!(
            "the run stopped: {reason}; nothing was written after that. Fix the cause (free space, reach the \
             endpoint, fresh credentials), then rerun the same command to resume:\n  {}",
            resume_command()
        )));
    }
    if stop.is_set() {
        conclude("interrupted")?;
        match &checkpoint_path {
            Some(path) => eprintln!(
                "interrupted: progress is saved in {}; to resume, run the same command again:\n  {}",
                path.display(),
                resume_command()
            ),
            None => eprintln!("interrupted: without a checkpoint a rerun starts over"),
        }
        return Err(Error::Interrupted);
    }
    match outcome {
        Ok(()) => {}
        // The listing outlasted every retry on a temporary error, or its credentials were refused
        // after the run started (a session token that expired): a rerun resumes (exit 3).
        Err(source) if crate::replay::stops_the_run(&source) => {
            conclude("stopped")?;
            return Err(Error::Stopped(format!(
                "listing s3://{}/{} {}; nothing is lost: rerun the same command to resume:\n  {}",
                args.source.bucket,
                args.source.prefix,
                crate::replay::why_the_run_stops(&source),
                resume_command()
            )));
        }
        Err(source) => {
            return Err(Error::Listing {
                bucket: args.source.bucket.clone(),
                prefix: args.source.prefix.clone(),
                source,
            });
        }
    }
    conclude("finished")
}

fn plural(count: u64, one: &str, many: &str) -> String {
    format!("{count} {}", if count == 1 { one } else { many })
}

/// What the destination held already (a run or a dry run alike), when it held anything.
fn print_already_there(report: &Report) {
    if report.already_done > 0 {
        println!(
            "already in the destination, not copied again: {} ({}, {} write requests); {} wholly in step",
            plural(report.already_done, "entry", "entries"),
            human_bytes(report.bytes_saved),
            report.requests_saved,
            plural(report.keys_in_step, "key", "keys"),
        );
    }
}

fn print_summary(report: &Report) {
    let written = report.copied_versions + report.delete_markers;
    if report.dry_run {
        println!(
            "dry run: would copy {} ({}, {} of them multipart) and recreate {} across {} from {} to {}; \
             nothing was written",
            plural(report.copied_versions, "version", "versions"),
            human_bytes(report.copied_bytes),
            report.multipart_copies,
            plural(report.delete_markers, "delete marker", "delete markers"),
            plural(report.keys_written, "key", "keys"),
            report.source,
            report.destination,
        );
        print_already_there(report);
    } else if written == 0
        && report.failed == 0
        && report.diverged.is_empty()
        && report.unproven.is_empty()
    {
        println!(
            "nothing to do: {} already in step ({}, {}, {} write requests saved) between {} and {}; \
             checked in {:.1} s",
            plural(report.keys_in_step, "key", "keys"),
            plural(report.already_done, "entry", "entries"),
            human_bytes(report.bytes_saved),
            report.requests_saved,
            report.source,
            report.destination,
            report.duration_seconds,
        );
    } else {
        println!(
            "copied {} ({}, {} multipart) and {} from {} to {} in {:.1} s \
             ({:.0} entries/s, {}/s); {} retries, {} SlowDowns, {} failed",
            plural(report.copied_versions, "version", "versions"),
            human_bytes(report.copied_bytes),
            report.multipart_copies,
            plural(report.delete_markers, "delete marker", "delete markers"),
            report.source,
            report.destination,
            report.duration_seconds,
            report.entries_per_second,
            human_bytes(report.bytes_per_second as u64),
            report.retries,
            report.throttles,
            report.failed,
        );
        print_already_there(report);
    }
    if report.matched_by_checksum
        + report.matched_by_content
        + report.matched_by_record
        + report.matched_by_size_only
        > 0
    {
        println!(
            "matched without comparable ETags (part layouts, SSE-KMS or SSE-C): {} by this machine's \
             record of its copies, {} by checksum, {} by content ({} read), {} by size alone \
             (--compare size: not proof)",
            report.matched_by_record,
            report.matched_by_checksum,
            report.matched_by_content,
            human_bytes(report.compared_bytes),
            report.matched_by_size_only
        );
    }
    if !report.unproven.is_empty() {
        println!(
            "{} unproven and left untouched: a destination entry's ETag cannot be compared with its \
             source's and they share no checksum; rerun with --compare content to compare their bytes \
             (both are read), or --compare size to accept equal sizes",
            plural(report.unproven.len() as u64, "key", "keys"),
        );
        for unproven in report.unproven.iter().take(20) {
            let line = format!(
                "unproven: s3://{}/{} at entry {}: {}",
                report.destination_bucket(),
                unproven.key,
                unproven.position,
                unproven.reason
            );
            println!("{}", crate::error::printable(&line));
        }
        if report.unproven.len() > 20 {
            println!(
                "... and {} more unproven keys (see --report)",
                report.unproven.len() - 20
            );
        }
    }
    if !report.diverged.is_empty() {
        let appended = report.diverged.iter().filter(|d| d.appended).count();
        println!(
            "{} diverged: the destination holds entries the source history does not explain{}",
            plural(report.diverged.len() as u64, "key", "keys"),
            if appended > 0 {
                " (--on-diverged append: the missing source entries were appended)"
            } else {
                " (left untouched; --on-diverged append appends the missing source entries anyway)"
            }
        );
        for diverged in report.diverged.iter().take(20) {
            let line = format!(
                "diverged: s3://{}/{} at entry {}: {}",
                report.destination_bucket(),
                diverged.key,
                diverged.position,
                diverged.reason
            );
            println!("{}", crate::error::printable(&line));
        }
        if report.diverged.len() > 20 {
            println!(
                "... and {} more diverged keys (see --report)",
                report.diverged.len() - 20
            );
        }
    }
    for failure in report.failures.iter().take(20) {
        let line = format!(
            "failed: s3://{}/{} version {}: {}",
            failure.bucket, failure.key, failure.version_id, failure.reason
        );
        println!("{}", crate::error::printable(&line));
    }
    if report.failures.len() > 20 {
        println!(
            "... and {} more failures (see --report)",
            report.failures.len() - 20
        );
    }
}

/// Touches the journal every `HEARTBEAT` while the run goes (see `in_flight_bound`).
async fn heartbeat(path: PathBuf) {
    loop {
        tokio::time::sleep(HEARTBEAT).await;
        let _ = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|file| file.set_modified(std::time::SystemTime::now()));
    }
}

/// The job's totals for the checkpoint: what earlier runs had listed and done, plus this run's.
fn stats(progress: &Progress, (listed_before, done_before): (u64, u64), finished: bool) -> Record {
    use std::sync::atomic::Ordering::Relaxed;
    Record::Stats {
        listed_entries: listed_before.max(progress.listed_entries.load(Relaxed)),
        done_entries: done_before
            + progress.copied_versions.load(Relaxed)
            + progress.delete_markers.load(Relaxed)
            + progress.reconciled.load(Relaxed),
        updated_unix: now_unix(),
        finished,
    }
}

/// While the run goes: the report rewritten every `--report-interval` (state `running`), and the
/// checkpoint's counts brought up to date, so `status` shows a live job.
async fn live_updates(
    args: CopyArgs,
    executor: Arc<Executor<Client>>,
    run: Run,
    checkpoint_path: Option<PathBuf>,
    (listed_before, done_before): (u64, u64),
) {
    let interval = std::time::Duration::from_secs_f64(args.report_interval);
    loop {
        tokio::time::sleep(interval).await;
        let progress = &executor.progress;
        if let Some(checkpoint) = &executor.checkpoint {
            checkpoint
                .journal
                .append(stats(progress, (listed_before, done_before), false));
        }
        let report = report(&args, progress, run, checkpoint_path.as_deref(), "running");
        if let Err(error) = write_report(&args, &report) {
            tracing::warn!(error = %error, "the report could not be rewritten; the run goes on");
        }
    }
}

/// Writes the report atomically (a reader never sees half of it): a file beside it, then a rename.
fn write_report(args: &CopyArgs, report: &Report) -> Result<(), Error> {
    let Some(path) = &args.report else {
        return Ok(());
    };
    let json = serde_json::to_string_pretty(report).expect("report serializes");
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    write_private(&temporary, (json + "\n").as_bytes())?;
    std::fs::rename(&temporary, path).map_err(|source| Error::File {
        path: path.display().to_string(),
        source,
    })
}

/// Whether CopyObject must carry each version's encryption (one HEAD per version). A CopyObject
/// without encryption headers gets the destination's default: right when that default equals the
/// source's (algorithm, KMS key, Bucket Key) or the source has none (a plaintext version may gain
/// encryption), for versions written with their bucket's default; wrong otherwise (plaintext on a
/// store without default encryption, SSE-S3 for a KMS source). `auto` reads both defaults and carries
/// unless the copy is right without; a default we cannot read counts as different.
async fn carry_encryption<S: crate::s3::S3Api>(
    args: &CopyArgs,
    source: &S,
    destination: &S,
) -> bool {
    use crate::cli::CarryEncryption;
    if args.sse_kms_key_id.is_some() || args.sse_c_key.is_some() {
        // The user chose the copies' encryption.
        return false;
    }
    match args.carry_encryption {
        CarryEncryption::Always => true,
        CarryEncryption::Never => false,
        CarryEncryption::Auto => {
            let (source_default, destination_default) = futures::join!(
                source.default_encryption(&args.source.bucket),
                destination.default_encryption(&args.destination.bucket)
            );
            match (source_default, destination_default) {
                (Ok(None), Ok(Some(_))) => false,
                (Ok(Some(source)), Ok(Some(destination))) => source != destination,
                _ => true,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_resume_waits_out_the_longest_pending_write() {
        use crate::checkpoint::{KeyState, State};
        use std::time::Duration;
        let pending = |timeout_ms| KeyState::Pending {
            index: 0,
            version_id: "v".into(),
            previous: None,
            timeout_ms,
        };
        let mut state = State::default();
        // A journal from before intents recorded timeouts: the floor alone.
        state.keys.insert("old".into(), pending(None));
        assert_eq!(
            crate::checkpoint::in_flight_bound(&state, 10.0),
            Duration::from_secs(10)
        );
        // 30 s: + 5 s (a tenth is less) + the 2 s heartbeat.
        state.keys.insert("a".into(), pending(Some(30_000)));
        assert_eq!(
            crate::checkpoint::in_flight_bound(&state, 10.0),
            Duration::from_secs(37)
        );
        // 286 s (a 4 GiB complete): + 28.6 s + 2 s.
        state.keys.insert("b".into(), pending(Some(286_000)));
        assert_eq!(
            crate::checkpoint::in_flight_bound(&state, 10.0),
            Duration::from_millis(316_600)
        );
        // --resume-wait is the floor.
        assert_eq!(
            crate::checkpoint::in_flight_bound(&state, 400.0),
            Duration::from_secs(400)
        );
        state.keys.insert("a".into(), KeyState::Complete);
        state.keys.insert("b".into(), KeyState::Complete);
        assert_eq!(
            crate::checkpoint::in_flight_bound(&state, 1.0),
            Duration::from_secs(1)
        );
    }

    proptest::proptest! {
        /// `--shard` and the job variables it reads, any text: a shard or an error, never a panic.
        #[test]
        fn no_shard_text_panics(
            text in "[0-9a-z/ -]{0,24}|\\PC{0,12}",
            index in proptest::option::of("[0-9]{0,22}|\\PC{0,6}"),
            count in proptest::option::of("[0-9]{0,22}|\\PC{0,6}"),
        ) {
            let _ = super::parse_shard(&text, |name| match name {
                "JOB_COMPLETION_INDEX" => index.clone(),
                "S3_BACKFILL_SHARDS" => count.clone(),
                _ => None,
            });
        }
    }

    #[test]
    fn the_resume_command_never_shows_a_key_nor_a_proxy_password() {
        let args = [
            "s3-backfill",
            "copy",
            "s3://a",
            "s3://b",
            "--sse-c-key",
            "c2VjcmV0a2V5c2VjcmV0a2V5c2VjcmV0a2V5MDE=",
            "--source-sse-c-key=c2VjcmV0a2V5c2VjcmV0a2V5c2VjcmV0a2V5MDI=",
            "--proxy",
            "http://user:hunter2@proxy:3128",
            "--sse-c-key",
            "file:/keys/dst",
            "--concurrency",
            "64",
        ];
        let shown = super::resume_command_of(args.iter().map(|a| a.to_string()));
        assert_eq!(
            shown,
            "s3-backfill copy s3://a s3://b --sse-c-key '***' '--source-sse-c-key=***' --proxy \
             http://proxy:3128 --sse-c-key file:/keys/dst --concurrency 64"
        );
    }

    use super::*;

    #[test]
    fn shard_messages_name_what_is_wrong() {
        let none = |_: &str| None;
        let message = |text: &str| parse_shard(text, none).unwrap_err().to_string();
        assert_eq!(
            parse_shard("3/8", none).unwrap(),
            crate::history::Shard { index: 3, count: 8 }
        );
        assert!(
            message("abc").contains("neither K/N nor auto"),
            "{}",
            message("abc")
        );
        assert!(
            message("1/18446744073709551616")
                .contains("the shard count 18446744073709551616 is too large"),
            "{}",
            message("1/18446744073709551616")
        );
        assert!(message("x/4").contains("the shard index \"x\" is not a whole number"));
        assert!(message("4/4").contains("the index (4) must be below the count (4)"));
        assert!(message("auto").contains("neither JOB_COMPLETION_INDEX"));
        let kubernetes = |name: &str| (name == "JOB_COMPLETION_INDEX").then(|| "2".to_string());
        assert!(
            parse_shard("auto", kubernetes)
                .unwrap_err()
                .to_string()
                .contains("no shard count")
        );
        assert_eq!(
            parse_shard("auto/4", kubernetes).unwrap(),
            crate::history::Shard { index: 2, count: 4 }
        );
    }
}
