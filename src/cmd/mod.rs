//! One module per command: each turns its parsed arguments into work and prints what happened.
//! Commands that run another (setup runs copy and batch, bench runs copy) pass typed arguments.

pub(crate) mod batch;
pub(crate) mod bench;
pub(crate) mod copy;
pub(crate) mod demo;
pub(crate) mod setup;
pub(crate) mod status;
pub(crate) mod verify;

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;

use crate::cli::{
    BatchCommand, Cli, Command, EndpointArgs, ReplicationCommand, ReplicationPutArgs, RoleCommand,
    VersioningAction,
};
use crate::error::Error;
use crate::error::exit;
use crate::preflight::Side;
use crate::progress::Progress;
use crate::replay::Stop;
use crate::s3::AwsS3;
use crate::s3::limit::{Limited, Limits};
use crate::s3::retry::{RetryPolicy, Retrying};

/// Runs the parsed command; returns its exit code.
pub async fn run(cli: Cli, stop: Arc<Stop>) -> Result<i32, Error> {
    match cli.command {
        Command::Copy(args) => {
            let report = copy::copy(&args, stop).await?;
            Ok(if report.failed + report.unfinished_keys() > 0 {
                exit::FAILURES
            } else {
                exit::SUCCESS
            })
        }
        Command::Verify(args) => verify::verify(&args).await.map(|()| exit::SUCCESS),
        Command::Status(args) => status::status(&args).map(|()| exit::SUCCESS),
        Command::Demo => crate::cmd::demo::demo().await.map(|()| exit::SUCCESS),
        Command::Mb(args) => {
            let client = crate::s3::admin_client(&args.endpoints.source()).await;
            let region = args.endpoints.source().region;
            crate::setup::make_bucket(
                &client,
                Side::Source,
                &args.bucket.bucket,
                region.as_deref(),
            )
            .await
            .map(|_| exit::SUCCESS)
        }
        Command::Versioning(args) => {
            let client = crate::s3::admin_client(&args.endpoints.source()).await;
            let bucket = &args.bucket.bucket;
            match args.action {
                VersioningAction::Status => {
                    crate::setup::show_versioning(&client, Side::Source, bucket).await
                }
                action => {
                    let enable = action == VersioningAction::Enable;
                    crate::setup::set_versioning(&client, Side::Source, bucket, enable)
                        .await
                        .map(|_| ())
                }
            }
            .map(|()| exit::SUCCESS)
        }
        Command::S3bu(args) => {
            let client = crate::s3::admin_client(&args.endpoints.source()).await;
            crate::setup::set_versioning(&client, Side::Source, &args.bucket.bucket, true)
                .await
                .map(|_| exit::SUCCESS)
        }
        Command::Replication(ReplicationCommand::Put(args)) => {
            put_rule(&args, "replication put").await
        }
        Command::S3ptr(args) => put_rule(&args.into(), "s3ptr").await,
        Command::Replication(ReplicationCommand::Get(args)) => {
            let clients = crate::setup::Clients::connect(&args.endpoints).await;
            crate::setup::show_replication(&clients, &args.source, args.json)
                .await
                .map(|()| exit::SUCCESS)
        }
        Command::Replication(ReplicationCommand::Delete(args)) => {
            let clients = crate::setup::Clients::connect(&args.endpoints).await;
            crate::setup::delete_replication(&clients, &args.source, args.rule_name.as_deref())
                .await
                .map(|_| exit::SUCCESS)
        }
        Command::Setup(args) => setup::setup(&args, stop).await,
        Command::Batch(BatchCommand::Submit(args)) => batch::submit(&args).await,
        Command::Bench(args) => crate::cmd::bench::bench(&args, stop).await,
        Command::Batch(BatchCommand::List(args)) => {
            let control =
                batch::jobs_client(&args.endpoints, args.control_endpoint_url.as_deref()).await;
            let account = batch::account_id(args.account_id.as_deref(), &control).await?;
            batch::list(&control, &account, args.status.as_deref()).await
        }
        Command::Batch(
            command @ (BatchCommand::Status(_) | BatchCommand::Wait(_) | BatchCommand::Cancel(_)),
        ) => {
            let (BatchCommand::Status(args)
            | BatchCommand::Wait(args)
            | BatchCommand::Cancel(args)) = &command
            else {
                unreachable!()
            };
            let control =
                batch::jobs_client(&args.endpoints, args.control_endpoint_url.as_deref()).await;
            let account = batch::account_id(args.account_id.as_deref(), &control).await?;
            match command {
                BatchCommand::Status(_) => batch::status(&control, &account, &args.job_id).await,
                BatchCommand::Wait(_) => {
                    let interval = std::time::Duration::from_secs_f64(args.poll_seconds);
                    batch::wait(&control, &account, &args.job_id, interval).await
                }
                _ => batch::cancel(&control, &account, &args.job_id).await,
            }
        }
        Command::Role(RoleCommand::Policy(args)) => {
            let scope = crate::setup::policy::Scope {
                source_bucket: args.source.bucket.clone(),
                destination_bucket: args.dest.bucket.clone(),
                source_kms_key: args.source_kms_key.clone(),
                destination_kms_key: args.dest_kms_key.clone(),
                report_bucket: args.report_bucket.clone(),
            };
            crate::setup::print_policies(args.role_for, &scope);
            Ok(exit::SUCCESS)
        }
    }
}

/// `replication put` and its alias `s3ptr`.
async fn put_rule(args: &ReplicationPutArgs, command: &str) -> Result<i32, Error> {
    let clients = crate::setup::Clients::connect(&args.endpoints).await;
    crate::setup::put_rule(
        &clients,
        &args.source,
        &args.destination,
        &args.rule_name,
        &args.rule,
        command,
    )
    .await
    .map(|_| exit::SUCCESS)
}

/// The client stack every command uses: retries around limits around aws-sdk-s3.
pub type Client = Retrying<Limited<AwsS3>>;

pub async fn clients(
    endpoints: &EndpointArgs,
    limits: &Arc<Limits>,
    progress: &Arc<Progress>,
) -> (Arc<Client>, Arc<Client>) {
    let (source, destination, _) =
        clients_and_places(endpoints, limits, progress, None, None).await;
    (source, destination)
}

/// Where each side is (`AwsS3::place`), for the job's identity.
pub struct Places {
    pub source: String,
    pub destination: String,
}

impl Places {
    /// Both sides talk to one endpoint URL, where one bucket name is one bucket (on Amazon S3 in
    /// whatever region: bucket names are global there).
    fn same_endpoint(&self) -> bool {
        self.source.split(' ').next() == self.destination.split(' ').next()
    }
}

/// The clients of both sides; with SSE-C keys, the source's reads use `source_key` and the
/// destination's writes `destination_key`, its copies reading the source with `source_key`.
pub(crate) async fn clients_and_places(
    endpoints: &EndpointArgs,
    limits: &Arc<Limits>,
    progress: &Arc<Progress>,
    source_key: Option<crate::s3::CustomerKey>,
    destination_key: Option<crate::s3::CustomerKey>,
) -> (Arc<Client>, Arc<Client>, Places) {
    let build = |aws: AwsS3| {
        Arc::new(Retrying::new(
            Limited::new(aws, Arc::clone(limits)),
            RetryPolicy::default(),
            Arc::clone(progress),
        ))
    };
    let source = AwsS3::connect(&crate::s3::Connection {
        customer_key: source_key.clone(),
        ..endpoints.source()
    })
    .await;
    let destination = AwsS3::connect(&crate::s3::Connection {
        customer_key: destination_key,
        copy_source_customer_key: source_key,
        ..endpoints.destination()
    })
    .await;
    let places = Places {
        source: source.place().to_string(),
        destination: destination.place().to_string(),
    };
    (build(source), build(destination), places)
}

/// Writes a file readable by its owner only (reports and manifests name buckets and keys).
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut file| file.write_all(bytes))
        .map_err(|source| Error::File {
            path: path.display().to_string(),
            source,
        })
}
