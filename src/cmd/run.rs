//! The dispatch from a parsed command line to its command.

use std::sync::Arc;

use super::{batch, copy, setup, status, verify};
use crate::cli::{
    BatchCommand, Cli, Command, ReplicationCommand, ReplicationPutArgs, RoleCommand,
    VersioningAction,
};
use crate::error::{Error, exit};
use crate::preflight::Side;
use crate::replay::Stop;

/// Runs the parsed command; returns its exit code.
pub async fn run(cli: Cli, stop: Arc<Stop>) -> Result<i32, Error> {
    if let Some(endpoints) = cli.command.endpoints() {
        for profile in endpoints.profiles() {
            crate::s3::check_profile(profile).map_err(Error::Usage)?;
        }
        if let Some(bundle) = &endpoints.ca_bundle {
            crate::s3::check_ca_bundle(bundle).map_err(Error::Usage)?;
        }
        crate::s3::check_proxy(&endpoints.proxy_choice()).map_err(Error::Usage)?;
        if endpoints.no_verify_ssl {
            eprintln!(
                "WARNING: --no-verify-ssl: the endpoints' TLS certificates are not checked; anyone on the \
                 network path can read and change every request. Give the endpoint's CA with --ca-bundle instead."
            );
        }
    }
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
        Command::Demo(args) => crate::cmd::demo::demo(args.keep)
            .await
            .map(|()| exit::SUCCESS),
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
        Command::Man => {
            use clap::CommandFactory;
            clap_mangen::Man::new(Cli::command())
                .render(&mut std::io::stdout())
                .map_err(|e| Error::Failed(format!("failed to write the manual page: {e}")))?;
            Ok(exit::SUCCESS)
        }
        Command::Completions(args) => {
            use clap::CommandFactory;
            let mut command = Cli::command();
            clap_complete::generate(
                args.shell,
                &mut command,
                "s3-backfill",
                &mut std::io::stdout(),
            );
            Ok(exit::SUCCESS)
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
