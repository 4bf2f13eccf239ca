use std::sync::Arc;

use clap::Parser;
use s3_backfill::cli::{Cli, Command};
use s3_backfill::commands;
use s3_backfill::error::{Error, exit};
use s3_backfill::replay::Stop;

async fn run(cli: Cli, stop: Arc<Stop>) -> Result<i32, Error> {
    match cli.command {
        Command::Copy(args) => {
            let report = commands::copy(&args, stop).await?;
            Ok(if report.failed > 0 {
                exit::FAILURES
            } else {
                exit::SUCCESS
            })
        }
        Command::Verify(args) => commands::verify(&args).await.map(|()| exit::SUCCESS),
        Command::Status(args) => commands::status(&args).map(|()| exit::SUCCESS),
        Command::Demo => s3_backfill::demo::demo().await.map(|()| exit::SUCCESS),
    }
}

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
            "stopping: finishing in-flight copies, aborting multipart uploads; press Ctrl-C again to stop at once"
        );
        stop.trigger();
    }
}

fn main() {
    // Usage errors exit 2 from clap itself.
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new().expect("start the async runtime");
    let code = runtime.block_on(async {
        let stop = Arc::new(Stop::default());
        let graceful = matches!(cli.command, Command::Copy(_));
        tokio::spawn(watch_signals(Arc::clone(&stop), graceful));
        run(cli, stop).await.unwrap_or_else(|error| {
            eprintln!("error: {error}");
            error.exit_code()
        })
    });
    runtime.shutdown_background();
    std::process::exit(code);
}
