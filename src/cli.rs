//! Command-line arguments (the names are a fixed interface: scripts outside the project use them).

use std::num::NonZeroU32;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::location::Location;
use crate::progress::ProgressMode;
use crate::s3::Connection;
use crate::size::parse_size;

#[derive(Debug, Parser)]
#[command(
    name = "s3-backfill",
    version,
    about = "Backfill every existing version of an S3 bucket into another, in order"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// More detail on stderr: -v each failure and milestone, -vv each retry, SlowDown and reconcile
    /// (overrides RUST_LOG).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Errors only on stderr.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Log lines as text or JSON (one object a line: timestamp, level, fields).
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = crate::logging::LogFormat::Text, global = true, env = "S3_BACKFILL_LOG_FORMAT")]
    pub log_format: crate::logging::LogFormat,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Copy every version and delete marker (or only current versions) from SRC to DST.
    #[command(after_help = "Examples:
  s3-backfill copy s3://prod-data s3://dr-data                 # every version, resumable
  s3-backfill copy s3://prod-data/logs s3://dr-data/logs --latest-only --dry-run
  s3-backfill copy s3://src s3://dst --shard auto/8 -v --log-format json --metrics-addr 0.0.0.0:9100
  s3-backfill copy s3://src s3://dst --inventory s3://inv/src/config/2026-12-01T01-00Z/manifest.json")]
    Copy(CopyArgs),
    /// Compare the version histories of SRC and DST key by key; exit 0 only if they match.
    #[command(after_help = "Examples:
  s3-backfill verify s3://prod-data s3://dr-data
  s3-backfill verify s3://prod-data/logs s3://dr-data/logs --latest-only")]
    Verify(VerifyArgs),
    /// Show what a job's checkpoints hold, live while it runs: state, listed, done, rate, failed.
    #[command(after_help = "Examples:
  s3-backfill status --job s3://prod-data s3://dr-data         # in the directory the copy runs in
  s3-backfill status --checkpoint .s3-backfill/0123456789abcdef.checkpoint --json
  s3-backfill status --checkpoint FILE --failed-csv failed.csv # then: copy ... --manifest failed.csv")]
    Status(StatusArgs),
    /// Start a local S3 server, seed a versioned bucket, back it up, verify, and stop.
    Demo(DemoArgs),
    /// Create a bucket (one that exists already is fine). Alias: s3mb (S3 make bucket).
    #[command(alias = "s3mb")]
    Mb(BucketArgs),
    /// Show or change a bucket's versioning: enable, suspend or status.
    Versioning(VersioningArgs),
    /// S3 bucket versioning: enable it on a bucket (= versioning s3://BUCKET enable).
    S3bu(BucketArgs),
    /// Replication rules of a source bucket: put, get, delete.
    #[command(subcommand)]
    Replication(ReplicationCommand),
    /// S3 put replication rule: s3ptr s3://SRC s3://DST RULE_NAME --role-arn ARN|--create-role NAME
    /// [rule options] (= replication put; a role option is required).
    S3ptr(S3ptrArgs),
    /// Set up replication from scratch: buckets, versioning on both, role, rule; then optionally the backfill.
    Setup(SetupArgs),
    /// IAM role documents for replication or Batch Operations.
    #[command(subcommand)]
    Role(RoleCommand),
    /// S3 Batch Operations: submit a replication (or copy) job for the existing objects and follow it.
    #[command(subcommand)]
    Batch(BatchCommand),
    /// Measure copy throughput against any endpoint: seed, copy at each concurrency, report, clean up.
    Bench(BenchArgs),
    /// Print the manual page (roff): s3-backfill man > s3-backfill.1 && man ./s3-backfill.1
    Man,
    /// Print a shell completion script: bash, zsh, fish, elvish or powershell.
    #[command(after_help = "Examples:
  s3-backfill completions bash > /etc/bash_completion.d/s3-backfill
  s3-backfill completions zsh > \"${fpath[1]}/_s3-backfill\"")]
    Completions(CompletionsArgs),
}

impl Command {
    /// The endpoint options of a command that talks to S3.
    pub fn endpoints(&self) -> Option<&EndpointArgs> {
        match self {
            Command::Copy(args) => Some(&args.endpoints),
            Command::Verify(args) => Some(&args.endpoints),
            Command::Mb(args) | Command::S3bu(args) => Some(&args.endpoints),
            Command::Versioning(args) => Some(&args.endpoints),
            Command::Replication(ReplicationCommand::Put(args)) => Some(&args.endpoints),
            Command::Replication(ReplicationCommand::Get(args)) => Some(&args.endpoints),
            Command::Replication(ReplicationCommand::Delete(args)) => Some(&args.endpoints),
            Command::S3ptr(args) => Some(&args.endpoints),
            Command::Setup(args) => Some(&args.endpoints),
            Command::Batch(BatchCommand::Submit(args)) => Some(&args.endpoints),
            Command::Batch(BatchCommand::List(args)) => Some(&args.endpoints),
            Command::Batch(
                BatchCommand::Status(args) | BatchCommand::Wait(args) | BatchCommand::Cancel(args),
            ) => Some(&args.endpoints),
            Command::Bench(args) => Some(&args.endpoints),
            Command::Status(_)
            | Command::Demo(_)
            | Command::Role(_)
            | Command::Completions(_)
            | Command::Man => None,
        }
    }
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the server running at the end (until Ctrl-C) and print the commands to look at it.
    #[arg(long)]
    pub keep: bool,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Where to work: s3://BUCKET[/PREFIX] (everything goes under PREFIX/s3-backfill-bench/).
    pub bucket: Location,
    /// Objects to seed.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub objects: u64,
    /// Size of each object.
    #[arg(long, value_name = "SIZE", default_value = "1KiB", value_parser = parse_size)]
    pub size: u64,
    /// Versions of each object (more than 1 needs a versioned bucket).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub versions: u32,
    /// Concurrency levels to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "16,64,256", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub concurrency: Vec<u32>,
    /// Passed to each copy.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub multipart_threshold: Option<u64>,
    /// Leave the seeded objects and the copies in place.
    #[arg(long)]
    pub keep: bool,
    /// Also write the table as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    #[command(flatten)]
    pub endpoints: EndpointArgs,
}

#[derive(Debug, Subcommand)]
#[expect(clippy::large_enum_variant, reason = "parsed once per run")]
pub enum BatchCommand {
    /// Build the manifest, submit the job, print its id (and follow it with --wait).
    Submit(BatchSubmitArgs),
    /// A job's status and progress.
    Status(BatchJobArgs),
    /// Follow a job to its end with a progress bar; ends with the completion report's location.
    Wait(BatchJobArgs),
    /// The account's jobs.
    List(BatchListArgs),
    /// Cancel a job.
    Cancel(BatchJobArgs),
}

/// Where the job's list of objects comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchFrom {
    Listing,
    Inventory(String),
    Manifest(String),
    Generator,
}

fn parse_from(text: &str) -> Result<BatchFrom, String> {
    match text {
        "listing" => Ok(BatchFrom::Listing),
        "generator" => Ok(BatchFrom::Generator),
        _ => match text.split_once('=') {
            Some(("inventory", uri)) if !uri.is_empty() => {
                Ok(BatchFrom::Inventory(uri.to_string()))
            }
            Some(("manifest", uri)) if !uri.is_empty() => Ok(BatchFrom::Manifest(uri.to_string())),
            _ => Err(format!(
                "{text:?}: use listing, inventory=URI, manifest=URI or generator"
            )),
        },
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Operation {
    /// S3ReplicateObject: keeps version ids and creation times; needs a replication configuration.
    Replicate,
    /// S3PutObjectCopy to --dest: objects up to 5 GB, order not kept.
    Copy,
}

/// Whether a CopyObject carries each source version's own encryption (read with one HEAD per version).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CarryEncryption {
    /// Read and carry it unless the destination's default encryption equals the source's (then a
    /// copy gets the same setting without it; see README for the one case this misses).
    Auto,
    /// Read and carry it for every version (objects written with their own encryption headers).
    Always,
    /// Never: copies get the destination bucket's default encryption.
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportScope {
    All,
    Failed,
}

/// Which objects the manifest generator takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchFilter {
    Eligible,
    Statuses(Vec<String>),
}

fn parse_filter(text: &str) -> Result<BatchFilter, String> {
    if text == "eligible" {
        return Ok(BatchFilter::Eligible);
    }
    let statuses = text.strip_prefix("statuses=").ok_or_else(|| {
        format!("{text:?}: use eligible or statuses=NONE,FAILED,COMPLETED,REPLICA")
    })?;
    let statuses: Vec<String> = statuses.split(',').map(str::to_string).collect();
    match statuses
        .iter()
        .find(|s| !["NONE", "FAILED", "COMPLETED", "REPLICA"].contains(&s.as_str()))
    {
        Some(bad) => Err(format!(
            "{bad:?} is not a replication status: NONE, FAILED, COMPLETED or REPLICA"
        )),
        None => Ok(BatchFilter::Statuses(statuses)),
    }
}

#[derive(Debug, Args)]
pub struct BatchSubmitArgs {
    /// Source: s3://BUCKET[/PREFIX]
    pub source: Location,
    /// IAM role Batch Operations runs as (trusted by batchoperations.s3.amazonaws.com; see `role policy --for batch`).
    #[arg(long, value_name = "ARN")]
    pub role_arn: String,
    /// Where the completion report goes: s3://BUCKET/PREFIX.
    #[arg(long, value_name = "s3://BUCKET/PREFIX")]
    pub report: Location,
    /// Where the manifest is written (default: under the report prefix).
    #[arg(long, value_name = "s3://BUCKET/KEY_PREFIX")]
    pub manifest_location: Option<Location>,
    /// listing | inventory=URI | manifest=URI | generator (AWS builds the list itself).
    #[arg(long, value_name = "FROM", default_value = "listing", value_parser = parse_from)]
    pub from: BatchFrom,
    /// replicate (S3ReplicateObject: keeps version ids and times; needs a replication rule) or copy
    /// (S3PutObjectCopy to --dest).
    #[arg(long, value_enum, default_value_t = Operation::Replicate)]
    pub operation: Operation,
    /// Destination of --operation copy: s3://DST[/PREFIX].
    #[arg(long, value_name = "s3://DST[/PREFIX]")]
    pub dest: Option<Location>,
    /// The account of the job (default: the caller's, from STS).
    #[arg(long, value_name = "ID")]
    pub account_id: Option<String>,
    /// The job's priority among the account's jobs (higher runs first).
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub priority: i32,
    /// Report every task, or only failed ones.
    #[arg(long, value_enum, default_value_t = ReportScope::All)]
    pub report_scope: ReportScope,
    /// With --from generator: eligible (for replication) or statuses=NONE,FAILED.
    #[arg(long, value_name = "FILTER", value_parser = parse_filter)]
    pub filter: Option<BatchFilter>,
    /// With --from generator: only objects created after this time (2024-01-31T00:00:00Z).
    #[arg(long, value_name = "T")]
    pub created_after: Option<String>,
    /// With --from generator: only objects created before this time.
    #[arg(long, value_name = "T")]
    pub created_before: Option<String>,
    /// Run the job without confirmation in the console.
    #[arg(long)]
    pub no_confirmation: bool,
    /// S3 Control endpoint (requests go to this host exactly).
    #[arg(long, value_name = "URL")]
    pub control_endpoint_url: Option<String>,
    /// Follow the job to its end.
    #[arg(long)]
    pub wait: bool,
    /// Print the job id as JSON too.
    #[arg(long)]
    pub json: bool,
    /// Seconds between DescribeJob calls while waiting.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0, value_parser = parse_seconds)]
    pub poll_seconds: f64,
    /// Batch copy's size limit (tests lower it to exercise the over-limit path).
    #[arg(long, value_name = "SIZE", value_parser = parse_size, hide = true)]
    pub batch_copy_limit: Option<u64>,
    #[command(flatten)]
    pub endpoints: EndpointArgs,
}

#[derive(Debug, Args)]
pub struct BatchJobArgs {
    /// The job's id (as `batch submit` printed it).
    pub job_id: String,
    /// The job's account (default: the caller's, from STS).
    #[arg(long, value_name = "ID")]
    pub account_id: Option<String>,
    /// S3 Control endpoint (requests go to this host exactly).
    #[arg(long, value_name = "URL")]
    pub control_endpoint_url: Option<String>,
    /// Seconds between DescribeJob calls (wait).
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0, value_parser = parse_seconds)]
    pub poll_seconds: f64,
    #[command(flatten)]
    pub endpoints: EndpointArgs,
}

#[derive(Debug, Args)]
pub struct BatchListArgs {
    /// Only jobs in this status (Active, Complete, Failed, Cancelled, Suspended, ...).
    #[arg(long, value_name = "S")]
    pub status: Option<String>,
    /// The jobs' account (default: the caller's, from STS).
    #[arg(long, value_name = "ID")]
    pub account_id: Option<String>,
    /// S3 Control endpoint (requests go to this host exactly).
    #[arg(long, value_name = "URL")]
    pub control_endpoint_url: Option<String>,
    #[command(flatten)]
    pub endpoints: EndpointArgs,
}

#[derive(Debug, Args)]
pub struct BucketArgs {
    /// s3://BUCKET
    pub bucket: Location,
    #[command(flatten)]
    pub endpoints: EndpointArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum VersioningAction {
    Enable,
    Suspend,
    Status,
}

#[derive(Debug, Args)]
pub struct VersioningArgs {
    /// s3://BUCKET
    pub bucket: Location,
    /// enable, suspend, or status (print it).
    #[arg(value_enum)]
    pub action: VersioningAction,
    #[command(flatten)]
    pub endpoints: EndpointArgs,
}

/// Who assumes a role (`role policy --for`); its trust and permissions are in `setup::policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RoleFor {
    /// S3 Replication (the role of a replication rule).
    Replication,
    /// S3 Batch Operations (the role of a replication or copy job).
    Batch,
}

/// Which objects a rule replicates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleScope {
    All,
    Prefix(String),
    Tag(String, String),
}

fn parse_scope(text: &str) -> Result<RuleScope, String> {
    if text == "all" {
        return Ok(RuleScope::All);
    }
    if let Some(prefix) = text.strip_prefix("prefix=") {
        return Ok(RuleScope::Prefix(prefix.to_string()));
    }
    if let Some((key, value)) = text.strip_prefix("tag=").and_then(|t| t.split_once('='))
        && !key.is_empty()
    {
        return Ok(RuleScope::Tag(key.to_string(), value.to_string()));
    }
    Err(format!(
        "{text:?} is not a rule scope: use all, prefix=PREFIX or tag=KEY=VALUE"
    ))
}

fn parse_on_off(text: &str) -> Result<bool, String> {
    match text {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("{text:?}: use on or off")),
    }
}

/// The options of a replication rule.
#[derive(Debug, Args, Clone)]
pub struct RuleArgs {
    /// Which objects: all, prefix=PREFIX or tag=KEY=VALUE.
    #[arg(long, default_value = "all", value_parser = parse_scope)]
    pub rule_scope: RuleScope,
    /// The destination bucket's region (checked against the bucket's real region).
    #[arg(long, value_name = "REGION")]
    pub destination_region: Option<String>,
    /// The destination bucket's account, when it is another one (the replicas are then owned by it).
    #[arg(long, value_name = "ID")]
    pub dest_account: Option<String>,
    /// Storage class of the replicas (default: the source object's).
    #[arg(long, value_name = "CLASS")]
    pub storage_class: Option<String>,
    /// Replicate delete markers too (off by default, as in the console and the API).
    #[arg(long, value_name = "on|off", default_value = "off", value_parser = parse_on_off, action = clap::ArgAction::Set)]
    pub delete_marker_replication: bool,
    /// Rule priority (default: the rule's current one, else one above the bucket's highest).
    #[arg(long, value_name = "N")]
    pub priority: Option<i32>,
    /// IAM role S3 replicates with (trusted by s3.amazonaws.com).
    #[arg(long, value_name = "ARN", conflicts_with = "create_role")]
    pub role_arn: Option<String>,
    /// Create (or reuse) this IAM role with least-privilege permissions for the rule.
    #[arg(long, value_name = "NAME")]
    pub create_role: Option<String>,
}

#[derive(Debug, Subcommand)]
#[expect(clippy::large_enum_variant, reason = "parsed once per run")]
pub enum ReplicationCommand {
    /// Add or update a rule (other rules are kept; the same rule name updates that rule).
    Put(ReplicationPutArgs),
    /// Print the source's replication configuration.
    Get(ReplicationGetArgs),
    /// Delete one rule, or the whole configuration.
    Delete(ReplicationDeleteArgs),
}

#[derive(Debug, Args)]
pub struct ReplicationPutArgs {
    /// The bucket replicated from: s3://SRC (its rule; a prefix in the URL is ignored: see --rule-scope).
    pub source: Location,
    /// The bucket replicated to: s3://DST.
    pub destination: Location,
    /// The rule's id: the same name updates that rule, another adds one.
    #[arg(long, value_name = "NAME")]
    pub rule_name: String,
    #[command(flatten)]
    pub rule: RuleArgs,
    #[command(flatten)]
    pub endpoints: EndpointArgs,
}

#[derive(Debug, Args)]
pub struct ReplicationGetArgs {
    /// The bucket whose replication configuration to print: s3://SRC.
    pub source: Location,
    /// JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub endpoints: EndpointArgs,
}

#[derive(Debug, Args)]
pub struct ReplicationDeleteArgs {
    /// The bucket whose rule (or configuration) to delete: s3://SRC.
    pub source: Location,
    /// Delete only this rule (default: the whole configuration).
    #[arg(long, value_name = "NAME")]
    pub rule_name: Option<String>,
    #[command(flatten)]
    pub endpoints: EndpointArgs,
}

#[derive(Debug, Args)]
pub struct S3ptrArgs {
    /// The bucket replicated from: s3://SRC.
    pub source: Location,
    /// The bucket replicated to: s3://DST.
    pub destination: Location,
    /// The rule's id (as `replication put --rule-name`).
    pub rule_name: String,
    #[command(flatten)]
    pub rule: RuleArgs,
    #[command(flatten)]
    pub endpoints: EndpointArgs,
}

impl From<S3ptrArgs> for ReplicationPutArgs {
    fn from(args: S3ptrArgs) -> Self {
        ReplicationPutArgs {
            source: args.source,
            destination: args.destination,
            rule_name: args.rule_name,
            rule: args.rule,
            endpoints: args.endpoints,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Existing {
    /// Leave existing objects alone (print the command that copies them).
    None,
    /// Copy them now with this engine.
    Copy,
    /// Submit an S3 Batch Operations replication job for them.
    Batch,
}

#[derive(Debug, Args)]
pub struct SetupArgs {
    /// The bucket replicated from: s3://SRC (created if missing).
    pub source: Location,
    /// The bucket replicated to: s3://DST (created if missing, in --destination-region).
    pub destination: Location,
    /// The replication rule's id: the same name updates that rule.
    #[arg(long, value_name = "NAME")]
    pub rule_name: String,
    #[command(flatten)]
    pub rule: RuleArgs,
    /// What to do with the objects that exist before the rule.
    #[arg(long, value_enum, default_value_t = Existing::None)]
    pub existing: Existing,
    /// With --existing batch: the role the job runs as (trusted by batchoperations.s3.amazonaws.com).
    #[arg(long, value_name = "ARN")]
    pub batch_role_arn: Option<String>,
    /// With --existing batch: where the completion report goes, s3://BUCKET/PREFIX.
    #[arg(long, value_name = "s3://BUCKET/PREFIX")]
    pub report: Option<Location>,
    /// With --existing batch: the job's account (default: the caller's).
    #[arg(long, value_name = "ID")]
    pub account_id: Option<String>,
    /// With --existing batch: the S3 Control endpoint.
    #[arg(long, value_name = "URL")]
    pub control_endpoint_url: Option<String>,
    #[command(flatten)]
    pub endpoints: EndpointArgs,
}

#[derive(Debug, Subcommand)]
pub enum RoleCommand {
    /// Print the trust policy and the least-privilege permissions policy of the role.
    Policy(RolePolicyArgs),
}

#[derive(Debug, Args)]
pub struct RolePolicyArgs {
    /// The source bucket the role reads.
    #[arg(long, value_name = "s3://SRC")]
    pub source: Location,
    /// The destination bucket the role writes.
    #[arg(long, value_name = "s3://DST")]
    pub dest: Location,
    /// Who assumes the role.
    #[arg(long = "for", value_enum, default_value_t = RoleFor::Replication)]
    pub role_for: RoleFor,
    /// KMS key that encrypts the source objects (adds kms:Decrypt).
    #[arg(long, value_name = "ARN")]
    pub source_kms_key: Option<String>,
    /// KMS key for the destination copies (adds kms:Encrypt).
    #[arg(long, value_name = "ARN")]
    pub dest_kms_key: Option<String>,
    /// Bucket of Batch Operations manifests and reports (default: the source bucket).
    #[arg(long, value_name = "BUCKET")]
    pub report_bucket: Option<String>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The checkpoint file; repeat it for the checkpoints of every shard of a job (their counts are
    /// summed).
    #[arg(long, value_name = "FILE", required_unless_present = "job")]
    pub checkpoint: Vec<PathBuf>,
    /// Find the job's checkpoints (every shard's) in .s3-backfill/ of the current directory, where
    /// `copy` keeps them by default.
    #[arg(long, num_args = 2, value_names = ["SRC", "DST"], conflicts_with = "checkpoint")]
    pub job: Option<Vec<String>>,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Write the failed entries as a bucket,key,versionId CSV manifest (for `copy --manifest` or S3 Batch Operations).
    #[arg(long, value_name = "OUT")]
    pub failed_csv: Option<PathBuf>,
}

#[derive(Debug, Args, Clone)]
pub struct CopyArgs {
    /// Source: s3://BUCKET[/PREFIX]; a prefix is a directory, as in `aws s3 cp --recursive`
    /// (s3://B/logs is logs/ and below, not logs2/).
    #[arg(value_parser = parse_range)]
    pub source: Location,
    /// Destination: s3://BUCKET[/PREFIX]; the source prefix is replaced by this prefix (a directory too).
    #[arg(value_parser = parse_range)]
    pub destination: Location,
    /// Copy only each key's current version (keys whose current entry is a delete marker are skipped).
    #[arg(long)]
    pub latest_only: bool,
    /// Copy each key's history up to this moment (RFC 3339, e.g. 2026-11-30T00:00:00Z): the bucket as
    /// it was then. With --latest-only, the version that was current then.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub as_of: Option<String>,
    /// Requests in flight at once (lowered by itself on SlowDown).
    #[arg(long, default_value_t = DEFAULT_CONCURRENCY, value_parser = clap::value_parser!(u32).range(1..=100_000), env = "S3_BACKFILL_CONCURRENCY")]
    pub concurrency: u32,
    /// Requests per second over all S3 calls (default: unlimited).
    #[arg(long, value_name = "RPS", env = "S3_BACKFILL_RATE_LIMIT")]
    pub rate_limit: Option<NonZeroU32>,
    /// Objects larger than this are copied with parallel UploadPartCopy (default 5GiB, the CopyObject
    /// limit; at most 5GiB).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub multipart_threshold: Option<u64>,
    /// Part size for multipart copies (default: the source's own layout, else 64MiB or more for <= 10,000 parts).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub part_size: Option<u64>,
    /// Copy only keys under this prefix (relative to the source prefix). Repeatable.
    #[arg(long = "include-prefix", value_name = "P")]
    pub include: Vec<String>,
    /// Skip keys under this prefix (relative to the source prefix). Repeatable.
    #[arg(long = "exclude-prefix", value_name = "P")]
    pub exclude: Vec<String>,
    /// Storage class for the copies (default: keep the source's).
    #[arg(long, value_name = "CLASS")]
    pub storage_class: Option<String>,
    /// Encrypt the copies with this KMS key (default: the destination bucket's default encryption).
    #[arg(long, value_name = "KEY")]
    pub sse_kms_key_id: Option<String>,
    /// Carry each source version's encryption (SSE-S3, SSE-KMS with its key and Bucket Key) on
    /// CopyObject, which otherwise gives copies the destination's default. Multipart copies always
    /// carry it.
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = CarryEncryption::Auto, env = "S3_BACKFILL_CARRY_ENCRYPTION")]
    pub carry_encryption: CarryEncryption,
    /// The key of SSE-C encrypted source versions (as `aws s3 cp --sse-c-copy-source-key`): base64 of
    /// the 32 bytes, or file:PATH of a file holding them. Never logged or stored.
    #[arg(long, value_name = "KEY", value_parser = parse_customer_key)]
    pub source_sse_c_key: Option<crate::s3::CustomerKey>,
    /// Encrypt the copies with this customer-provided key (SSE-C), as `aws s3 cp --sse-c-key`: base64
    /// or file:PATH. Needed to copy SSE-C sources, whose copies S3 cannot decrypt otherwise.
    #[arg(long, value_name = "KEY", value_parser = parse_customer_key)]
    pub sse_c_key: Option<crate::s3::CustomerKey>,
    /// Copy from a source with Object Lock without carrying each version's retention and legal hold
    /// (needed when the destination has no Object Lock).
    #[arg(long)]
    pub no_object_lock: bool,
    /// Copy the versions an S3 Inventory report lists instead of listing the source: its manifest.json,
    /// s3://BUCKET/KEY or a local path (data files are read from the same bucket or directory tree).
    #[arg(long, value_name = "URI", conflicts_with = "manifest")]
    pub inventory: Option<String>,
    /// Copy the versions a CSV manifest names instead of listing the source: bucket,key[,versionId] rows,
    /// URL-encoded keys, s3://BUCKET/KEY, a local path or - (standard input), optionally gzip'd.
    #[arg(long, value_name = "URI")]
    pub manifest: Option<String>,
    /// With --inventory: check every key against the source first (one listing per key), so versions
    /// deleted since the report are reported before any copy instead of failing one by one.
    #[arg(long, requires = "inventory")]
    pub inventory_check: bool,
    /// Sub-prefixes of the source listed at once (the range is split at its first '/' level); 1 lists
    /// it with one paginator.
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1024), env = "S3_BACKFILL_LISTERS")]
    pub listers: u32,
    /// Copy only shard K of N of the keys (by a hash of the key; a key's versions never split), with its own
    /// checkpoint: K/N, or auto in a Kubernetes Indexed Job or an AWS Batch array job (see README).
    #[arg(long, value_name = "K/N|auto")]
    pub shard: Option<String>,
    /// List and plan, print what would be copied, write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Progress display: bars on a terminal (auto), always, or never.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
    /// Seconds between progress lines off a terminal (and with --progress json).
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0, value_parser = parse_seconds, env = "S3_BACKFILL_PROGRESS_INTERVAL")]
    pub progress_interval: f64,
    /// Serve Prometheus metrics of the run on http://HOST:PORT/metrics (e.g. 0.0.0.0:9100 in a pod).
    #[arg(long, value_name = "HOST:PORT", env = "S3_BACKFILL_METRICS_ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Seconds between rewrites of --report (state "running") and of the checkpoint's live counts.
    #[arg(long, value_name = "SECONDS", default_value_t = 60.0, value_parser = parse_seconds, env = "S3_BACKFILL_REPORT_INTERVAL")]
    pub report_interval: f64,
    /// Write a JSON summary (counts, bytes, rates, retries, failures) to FILE.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Append a CSV row per entry written (source key and version id, destination key and version id,
    /// kind) to FILE as each completes: the provenance of every copy.
    #[arg(long, value_name = "FILE")]
    pub version_map: Option<PathBuf>,
    /// Record progress in FILE; rerunning the same command with it resumes
    /// (default: .s3-backfill/JOB.checkpoint, JOB a hash of source, destination and selection options).
    #[arg(long, value_name = "FILE", conflicts_with = "no_checkpoint")]
    pub checkpoint: Option<PathBuf>,
    /// Do not record progress.
    #[arg(long)]
    pub no_checkpoint: bool,
    /// Discard the checkpoint's progress and start over (safe: every key is compared with the
    /// destination, and only what it lacks is written).
    #[arg(long)]
    pub restart: bool,
    /// A key whose destination history is neither the source's nor a prefix of it (someone else wrote
    /// to it, or a version was deleted on either side): skip it and report it (exit 1), or append the
    /// source entries the destination lacks anyway.
    #[arg(long, value_enum, default_value_t = crate::merge::OnDiverged::Skip)]
    pub on_diverged: crate::merge::OnDiverged,
    /// A destination entry whose ETag cannot be compared with its source's (another part layout,
    /// SSE-KMS, SSE-C) and with no checksum in common: metadata leaves the key untouched and reports it
    /// (exit 1); content reads and hashes both sides; size accepts equal sizes (said in the summary).
    #[arg(long, value_enum, default_value_t = crate::merge::Compare::Metadata)]
    pub compare: crate::merge::Compare,
    /// Retry the entries the checkpoint records as failed (on by default; --retry-failed=false to skip them).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_value_t = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub retry_failed: bool,
    /// On resume, wait until the interrupted run has been gone this many seconds before checking the
    /// writes it left in flight (the server may still apply a request whose sender died).
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0, value_parser = parse_seconds, env = "S3_BACKFILL_RESUME_WAIT")]
    pub resume_wait: f64,
    #[command(flatten)]
    pub endpoints: EndpointArgs,
}

/// An SSE-C key: base64 of its 32 bytes, or `file:PATH` of a file holding the 32 bytes.
fn parse_customer_key(text: &str) -> Result<crate::s3::CustomerKey, String> {
    let bytes = match text.strip_prefix("file:") {
        Some(path) => std::fs::read(path)
            .map_err(|e| format!("cannot read the SSE-C key file {path}: {e}"))?,
        None => crate::s3::base64::decode(text.trim())
            .map_err(|_| "an SSE-C key is base64 of 32 bytes, or file:PATH".to_string())?,
    };
    crate::s3::CustomerKey::new(&bytes)
}

/// A copy range: `s3://B/logs` is the directory `logs/`, as `aws s3 cp --recursive` reads it, so
/// `logs2/x` and `logsX` are not in it (nor a key exactly `logs`, which aws leaves out too).
pub(crate) fn parse_range(text: &str) -> Result<Location, crate::location::LocationError> {
    let location: Location = text.parse()?;
    Ok(Location {
        prefix: crate::location::as_directory(&location.prefix),
        ..location
    })
}

/// An RFC 3339 time, kept in UTC (the form S3 timestamps have).
fn parse_time(text: &str) -> Result<String, String> {
    use crate::s3::DateFormat as Format;
    use crate::s3::DateTime;
    let millis = crate::clock::parse_rfc3339(text)?;
    DateTime::from_millis(millis)
        .fmt(Format::DateTime)
        .map_err(|_| format!("{text:?} cannot be written as an S3 time"))
}

fn parse_timeout(text: &str) -> Result<f64, String> {
    match parse_seconds(text)? {
        0.0 => Err("a request timeout must be more than 0 seconds".into()),
        seconds => Ok(seconds),
    }
}

fn parse_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(seconds) if seconds.is_finite() && (0.0..=3600.0).contains(&seconds) => Ok(seconds),
        _ => Err(format!(
            "{text:?} is not a number of seconds between 0 and 3600"
        )),
    }
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Source: s3://BUCKET[/PREFIX] (a prefix is a directory, as for copy).
    #[arg(value_parser = parse_range)]
    pub source: Location,
    /// Destination: s3://BUCKET[/PREFIX].
    #[arg(value_parser = parse_range)]
    pub destination: Location,
    /// Compare only current versions.
    #[arg(long)]
    pub latest_only: bool,
    /// The KMS key the copies were encrypted with (`copy --sse-kms-key-id`): every copy must use it.
    #[arg(long, value_name = "KEY")]
    pub sse_kms_key_id: Option<String>,
    /// The key of SSE-C encrypted source versions (as for copy): base64 or file:PATH.
    #[arg(long, value_name = "KEY", value_parser = parse_customer_key)]
    pub source_sse_c_key: Option<crate::s3::CustomerKey>,
    /// The key of SSE-C encrypted copies (as for copy): base64 or file:PATH.
    #[arg(long, value_name = "KEY", value_parser = parse_customer_key)]
    pub sse_c_key: Option<crate::s3::CustomerKey>,
    /// A pair whose ETags cannot be compared and that shares no checksum (as for copy): metadata
    /// reports it as unproven (a difference), content reads and hashes both, size accepts equal sizes.
    #[arg(long, value_enum, default_value_t = crate::merge::Compare::Metadata)]
    pub compare: crate::merge::Compare,
    /// Progress while comparing, as for copy.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
    /// Seconds between progress lines off a terminal.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0, value_parser = parse_seconds)]
    pub progress_interval: f64,
    #[command(flatten)]
    pub endpoints: EndpointArgs,
}

/// Endpoint and identity, for both sides or each side. The usual AWS environment (AWS_PROFILE,
/// AWS_REGION, AWS_ENDPOINT_URL, the credentials chain) applies as in the aws CLI.
#[derive(Debug, Args, Clone)]
pub struct EndpointArgs {
    /// S3 endpoint for both sides (http:// or https://).
    #[arg(long, value_name = "URL", value_parser = parse_endpoint)]
    pub endpoint_url: Option<String>,
    /// S3 endpoint of the source side (overrides --endpoint-url there).
    #[arg(long, value_name = "URL", value_parser = parse_endpoint)]
    pub source_endpoint_url: Option<String>,
    /// S3 endpoint of the destination side (overrides --endpoint-url there).
    #[arg(long, value_name = "URL", value_parser = parse_endpoint)]
    pub dest_endpoint_url: Option<String>,
    /// Region of both sides (default: AWS_REGION, the profile's, else us-east-1).
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// Region of the source side.
    #[arg(long, value_name = "REGION")]
    pub source_region: Option<String>,
    /// Region of the destination side.
    #[arg(long, value_name = "REGION")]
    pub dest_region: Option<String>,
    /// Named profile of ~/.aws/config and credentials for both sides (default: AWS_PROFILE).
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// Profile of the source side (e.g. read-only credentials).
    #[arg(long, value_name = "NAME")]
    pub source_profile: Option<String>,
    /// Profile of the destination side.
    #[arg(long, value_name = "NAME")]
    pub dest_profile: Option<String>,
    /// PEM file of certificate authorities to trust besides the system's, for endpoints with a private
    /// CA (as the aws CLI's --ca-bundle).
    #[arg(long, value_name = "FILE", env = "AWS_CA_BUNDLE")]
    pub ca_bundle: Option<PathBuf>,
    /// Do not check the endpoints' TLS certificates (as the aws CLI's --no-verify-ssl): anyone on the
    /// path can then read and change the requests. For a test endpoint only; --ca-bundle is the safe fix.
    #[arg(long)]
    pub no_verify_ssl: bool,
    /// Send every request (both sides) through this forward proxy, http://[USER:PASSWORD@]HOST:PORT:
    /// https endpoints by a CONNECT tunnel, http ones forwarded. NO_PROXY still applies. Default: the
    /// environment's HTTPS_PROXY, HTTP_PROXY, ALL_PROXY and NO_PROXY, as the aws CLI reads them.
    #[arg(long, value_name = "URL", conflicts_with = "no_proxy")]
    pub proxy: Option<String>,
    /// Connect to every endpoint directly, whatever HTTPS_PROXY, HTTP_PROXY or ALL_PROXY say.
    #[arg(long)]
    pub no_proxy: bool,
    /// Path-style addressing (on by default when an endpoint is configured: these options,
    /// AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_S3 or a profile's endpoint_url): --path-style=false to turn off.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub path_style: Option<bool>,
    /// Give up on a request attempt that has not answered after this many seconds (then retry it; a
    /// write is first checked against the destination). Copies get 1 s more per 16 MiB they copy.
    #[arg(long, value_name = "SECONDS", default_value_t = 30.0, value_parser = parse_timeout, env = "S3_BACKFILL_REQUEST_TIMEOUT")]
    pub request_timeout: f64,
}

impl EndpointArgs {
    fn connection(
        &self,
        endpoint: &Option<String>,
        region: &Option<String>,
        profile: &Option<String>,
    ) -> Connection {
        let endpoint_url = endpoint.clone().or_else(|| self.endpoint_url.clone());
        Connection {
            // Path-style by default wherever an endpoint is configured (decided when connecting,
            // where the environment and the profile's endpoint_url are known).
            path_style: self.path_style.or(endpoint_url.as_ref().map(|_| true)),
            endpoint_url,
            region: region.clone().or_else(|| self.region.clone()),
            profile: profile.clone().or_else(|| self.profile.clone()),
            request_timeout: Some(std::time::Duration::from_secs_f64(self.request_timeout)),
            customer_key: None,
            copy_source_customer_key: None,
            static_credentials: None,
            ca_bundle: self.ca_bundle.clone(),
            no_verify_ssl: self.no_verify_ssl,
            proxy: self.proxy_choice(),
            sdk_only: false,
        }
    }

    /// Where the proxy settings come from: `--proxy`, `--no-proxy`, else the environment.
    pub fn proxy_choice(&self) -> crate::s3::ProxyChoice {
        match (&self.proxy, self.no_proxy) {
            (_, true) => crate::s3::ProxyChoice::Off,
            (Some(url), false) => crate::s3::ProxyChoice::Url(url.clone()),
            (None, false) => crate::s3::ProxyChoice::Environment,
        }
    }

    pub fn source(&self) -> Connection {
        self.connection(
            &self.source_endpoint_url,
            &self.source_region,
            &self.source_profile,
        )
    }

    pub fn destination(&self) -> Connection {
        self.connection(
            &self.dest_endpoint_url,
            &self.dest_region,
            &self.dest_profile,
        )
    }
}

/// An endpoint URL: a scheme and a host, as the SDK needs it.
fn parse_endpoint(text: &str) -> Result<String, String> {
    let Some((scheme, rest)) = text.split_once("://") else {
        return Err(format!(
            "{text:?} has no scheme: write it as http://{text} (or https://{text})"
        ));
    };
    if scheme != "http" && scheme != "https" {
        return Err(format!("{text:?}: the scheme must be http or https"));
    }
    if rest.trim_end_matches('/').is_empty() {
        return Err(format!(
            "{text:?} names no host: write it as {scheme}://HOST[:PORT]"
        ));
    }
    Ok(text.to_string())
}

impl EndpointArgs {
    /// The profiles named on the command line, each with the side it is for.
    pub fn profiles(&self) -> Vec<&str> {
        [&self.profile, &self.source_profile, &self.dest_profile]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect()
    }

    /// The defaults: the usual AWS environment (AWS_CA_BUNDLE included, as clap reads it), a 30 s
    /// request timeout.
    pub fn from_environment() -> EndpointArgs {
        EndpointArgs {
            endpoint_url: None,
            source_endpoint_url: None,
            dest_endpoint_url: None,
            region: None,
            source_region: None,
            dest_region: None,
            profile: None,
            source_profile: None,
            dest_profile: None,
            path_style: None,
            ca_bundle: std::env::var_os("AWS_CA_BUNDLE")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            no_verify_ssl: false,
            proxy: None,
            no_proxy: false,
            request_timeout: 30.0,
        }
    }
}

/// Copies in flight unless `--concurrency` says otherwise. Objects/s ≈ in flight / latency up to the
/// client's CPU bound: at 0.07 ms of CPU per copy two cores copy ~17,000 objects/s (BENCHMARKS.md,
/// workload 5), which takes ~512 in flight at 30 ms a request (S3's CopyObject of a small object takes
/// 20-80 ms). 128, the former default, chosen on a local server, held S3 runs to 1,600-6,400/s.
pub const DEFAULT_CONCURRENCY: u32 = 512;

impl CopyArgs {
    /// `copy SOURCE DESTINATION` with every option at its default: how `setup` and `bench` run a copy
    /// (a value, not a command line parsed again). A unit test holds it equal to clap's defaults.
    pub fn new(source: Location, destination: Location, endpoints: EndpointArgs) -> CopyArgs {
        CopyArgs {
            source,
            destination,
            latest_only: false,
            as_of: None,
            concurrency: DEFAULT_CONCURRENCY,
            rate_limit: None,
            multipart_threshold: None,
            part_size: None,
            include: Vec::new(),
            exclude: Vec::new(),
            storage_class: None,
            sse_kms_key_id: None,
            carry_encryption: CarryEncryption::Auto,
            source_sse_c_key: None,
            sse_c_key: None,
            no_object_lock: false,
            inventory: None,
            manifest: None,
            inventory_check: false,
            listers: 16,
            shard: None,
            dry_run: false,
            progress: ProgressMode::Auto,
            progress_interval: 10.0,
            report_interval: 60.0,
            metrics_addr: None,
            report: None,
            version_map: None,
            checkpoint: None,
            no_checkpoint: false,
            restart: false,
            on_diverged: crate::merge::OnDiverged::Skip,
            compare: crate::merge::Compare::Metadata,
            retry_failed: true,
            resume_wait: 10.0,
            endpoints,
        }
    }
}

impl BatchSubmitArgs {
    /// `batch submit SOURCE --role-arn ROLE --report REPORT` with every other option at its default
    /// (how `setup --existing batch` submits its job). A unit test holds it equal to clap's defaults.
    pub fn new(
        source: Location,
        role_arn: String,
        report: Location,
        endpoints: EndpointArgs,
    ) -> BatchSubmitArgs {
        BatchSubmitArgs {
            source,
            role_arn,
            report,
            manifest_location: None,
            from: BatchFrom::Listing,
            operation: Operation::Replicate,
            dest: None,
            account_id: None,
            priority: 10,
            report_scope: ReportScope::All,
            filter: None,
            created_after: None,
            created_before: None,
            no_confirmation: false,
            control_endpoint_url: None,
            wait: false,
            json: false,
            poll_seconds: 10.0,
            batch_copy_limit: None,
            endpoints,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Every parser of a command-line value, fed any text (and printable ASCII, nearer the
        /// forms they expect): a value or an error, never a panic (`--as-of Téaaaaa` panicked).
        #[test]
        fn no_text_panics_a_value_parser(
            text in proptest::prelude::any::<String>(),
            ascii in "[ -~]{0,40}",
        ) {
            for text in [&text, &ascii] {
                let _ = parse_time(text);
                let _ = parse_timeout(text);
                let _ = parse_seconds(text);
                let _ = parse_endpoint(text);
                let _ = parse_customer_key(text);
                let _ = parse_range(text);
                let _ = crate::size::parse_size(text);
                let _ = parse_scope(text);
                let _ = parse_on_off(text);
                let _ = parse_filter(text);
                let _ = parse_from(text);
                let _ = crate::s3::check_proxy(&crate::s3::ProxyChoice::Url(text.clone()));
                let _ = crate::input::Uri::parse(text);
            }
        }
    }

    #[test]
    fn as_of_times_are_rfc_3339_with_any_offset_kept_in_utc() {
        assert_eq!(
            parse_time("2026-11-30T00:00:00Z").unwrap(),
            "2026-11-30T00:00:00Z"
        );
        assert_eq!(
            parse_time("2026-11-30T01:00:00.250+01:00").unwrap(),
            "2026-11-30T00:00:00.25Z"
        );
        for bad in [
            "yesterday",
            "2026-11-30",
            "2026-11-30 00:00:00",
            "2026-12-07T10:00:00+99:99",
            "Téaaaaa",
        ] {
            assert!(parse_time(bad).unwrap_err().contains("RFC 3339"), "{bad}");
        }
    }

    #[test]
    fn typed_commands_have_clap_defaults() {
        use clap::Parser;
        let parsed = |line: &str| {
            Cli::try_parse_from(line.split(' '))
                .expect("parses")
                .command
        };
        let Command::Copy(copy) = parsed("s3-backfill copy s3://aaa/x s3://bbb/y") else {
            panic!("copy")
        };
        let built = CopyArgs::new(
            parse_range("s3://aaa/x").unwrap(),
            parse_range("s3://bbb/y").unwrap(),
            EndpointArgs::from_environment(),
        );
        assert_eq!(format!("{built:?}"), format!("{copy:?}"));
        let Command::Batch(BatchCommand::Submit(submit)) =
            parsed("s3-backfill batch submit s3://aaa --role-arn r --report s3://rep/p")
        else {
            panic!("batch submit")
        };
        let built = BatchSubmitArgs::new(
            "s3://aaa".parse().unwrap(),
            "r".into(),
            "s3://rep/p".parse().unwrap(),
            EndpointArgs::from_environment(),
        );
        assert_eq!(format!("{built:?}"), format!("{submit:?}"));
    }

    /// Every option and positional of every command says what it is (`--help` shows no bare name).
    #[test]
    fn every_argument_of_every_command_is_described() {
        use clap::CommandFactory;
        fn walk(command: &clap::Command, path: &str, bare: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    bare.push(format!("{path} {id}"));
                }
            }
            for sub in command.get_subcommands() {
                if sub.get_about().is_none() && sub.get_long_about().is_none() {
                    bare.push(format!("{path} {} (the command)", sub.get_name()));
                }
                walk(sub, &format!("{path} {}", sub.get_name()), bare);
            }
        }
        let mut bare = Vec::new();
        walk(&Cli::command(), "s3-backfill", &mut bare);
        assert!(bare.is_empty(), "described nowhere:\n{}", bare.join("\n"));
    }
}
