//! The command line: parse, run the command, map its outcome to an exit code; signals.

use std::sync::Arc;

use clap::Parser;
use s3_backfill::Stop;
use s3_backfill::cli::{Cli, Command};
use s3_backfill::error::exit;

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
    s3_backfill::logging::init(cli.verbose, cli.quiet, cli.log_format);
    let runtime = tokio::runtime::Runtime::new().expect("start the async runtime");
    let code = runtime.block_on(async {
        let stop = Arc::new(Stop::default());
        let graceful = matches!(
            cli.command,
            Command::Copy(_) | Command::Setup(_) | Command::Bench(_)
        );
        tokio::spawn(watch_signals(Arc::clone(&stop), graceful));
        s3_backfill::cmd::run(cli, stop)
            .await
            .unwrap_or_else(|error| {
                eprintln!("error: {error}");
                error.exit_code()
            })
    });
    runtime.shutdown_background();
    std::process::exit(code);
}
