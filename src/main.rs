use std::sync::Arc;

use clap::Parser;
use s3_backfill::batch;
use s3_backfill::cli::{
    BatchCommand, Cli, Command, ReplicationCommand, ReplicationPutArgs, RoleCommand,
    VersioningAction,
};
use s3_backfill::commands;
use s3_backfill::error::{Error, exit};
use s3_backfill::preflight::Side;
use s3_backfill::replay::Stop;
use s3_backfill::setup;

async fn run(cli: Cli, stop: Arc<Stop>) -> Result<i32, Error> {
    match cli.command {
        Command::Copy(args) => {
            let report = commands::copy(&args, stop).await?;
            Ok(if report.failed + report.unfinished_keys() > 0 {
                exit::FAILURES
            } else {
                exit::SUCCESS
            })
        }
        Command::Verify(args) => commands::verify(&args).await.map(|()| exit::SUCCESS),
        Command::Status(args) => commands::status(&args).map(|()| exit::SUCCESS),
        Command::Demo => s3_backfill::demo::demo().await.map(|()| exit::SUCCESS),
        Command::Mb(args) => {
            let client = s3_backfill::s3::admin_client(&args.endpoints.source()).await;
            let region = args.endpoints.source().region;
            setup::make_bucket(
                &client,
                Side::Source,
                &args.bucket.bucket,
                region.as_deref(),
            )
            .await
            .map(|_| exit::SUCCESS)
        }
        Command::Versioning(args) => {
            let client = s3_backfill::s3::admin_client(&args.endpoints.source()).await;
            let bucket = &args.bucket.bucket;
            match args.action {
                VersioningAction::Status => {
                    setup::show_versioning(&client, Side::Source, bucket).await
                }
                action => {
                    let enable = action == VersioningAction::Enable;
                    setup::set_versioning(&client, Side::Source, bucket, enable)
                        .await
                        .map(|_| ())
                }
            }
            .map(|()| exit::SUCCESS)
        }
        Command::S3bu(args) => {
            let client = s3_backfill::s3::admin_client(&args.endpoints.source()).await;
            setup::set_versioning(&client, Side::Source, &args.bucket.bucket, true)
                .await
                .map(|_| exit::SUCCESS)
        }
        Command::Replication(ReplicationCommand::Put(args)) => {
            put_rule(&args, "replication put").await
        }
        Command::S3ptr(args) => put_rule(&args.into(), "s3ptr").await,
        Command::Replication(ReplicationCommand::Get(args)) => {
            let clients = setup::Clients::connect(&args.endpoints).await;
            setup::show_replication(&clients, &args.source, args.json)
                .await
                .map(|()| exit::SUCCESS)
        }
        Command::Replication(ReplicationCommand::Delete(args)) => {
            let clients = setup::Clients::connect(&args.endpoints).await;
            setup::delete_replication(&clients, &args.source, args.rule_name.as_deref())
                .await
                .map(|_| exit::SUCCESS)
        }
        Command::Setup(args) => commands::setup(&args, stop).await,
        Command::Batch(BatchCommand::Submit(args)) => batch::submit(&args).await,
        Command::Bench(args) => s3_backfill::bench::bench(&args, stop).await,
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
            let scope = setup::policy::Scope {
                source_bucket: args.source.bucket.clone(),
                destination_bucket: args.dest.bucket.clone(),
                source_kms_key: args.source_kms_key.clone(),
                destination_kms_key: args.dest_kms_key.clone(),
                report_bucket: args.report_bucket.clone(),
            };
            setup::print_policies(args.role_for, &scope);
            Ok(exit::SUCCESS)
        }
    }
}

/// `replication put` and its alias `s3ptr`.
async fn put_rule(args: &ReplicationPutArgs, command: &str) -> Result<i32, Error> {
    let clients = setup::Clients::connect(&args.endpoints).await;
    setup::put_rule(
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

/// How long the first Ctrl-C waits for in-flight requests before it stops the run anyway.
const GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// The first SIGINT/SIGTERM asks a copy to stop cleanly (other commands stop at once); the second stops
/// at once. Either way nothing is lost: every write's intent is on disk before the write is sent.
async fn watch_signals(stop: Arc<Stop>, graceful: bool) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).expect("install SIGINT handler");
    let mut terminate = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    let mut count = 0;
    loop {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        count += 1;
        if !graceful || count > 1 {
            eprintln!("interrupted");
            std::process::exit(exit::INTERRUPTED);
        }
        eprintln!(
            "stopping: finishing in-flight copies (at most {} s), aborting multipart uploads; press Ctrl-C \
             again to stop at once",
            GRACE.as_secs()
        );
        stop.trigger();
        // A request that never answers must not hold the stop up: after the grace period the run ends
        // as a kill would (every write's intent is on disk; the next run checks them).
        tokio::spawn(async {
            tokio::time::sleep(GRACE).await;
            eprintln!(
                "interrupted: in-flight requests did not finish within {} s and were abandoned; the next run \
                 waits for them and checks them against the destination",
                GRACE.as_secs()
            );
            std::process::exit(exit::INTERRUPTED);
        });
    }
}

fn main() {
    // Output piped into `head` and the like: end quietly when the reader goes away (exit 141, as Unix
    // tools do), not with a panic. Rust ignores SIGPIPE by default, which makes every println! panic.
    // SAFETY: setting a signal's disposition to the default before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // Usage errors exit 2 from clap itself.
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new().expect("start the async runtime");
    let code = runtime.block_on(async {
        let stop = Arc::new(Stop::default());
        let graceful = matches!(
            cli.command,
            Command::Copy(_) | Command::Setup(_) | Command::Bench(_)
        );
        tokio::spawn(watch_signals(Arc::clone(&stop), graceful));
        run(cli, stop).await.unwrap_or_else(|error| {
            eprintln!("error: {error}");
            error.exit_code()
        })
    });
    runtime.shutdown_background();
    std::process::exit(code);
}
