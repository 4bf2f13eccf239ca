use clap::Parser;
use s3_backfill::cli::{Cli, Command};
use s3_backfill::commands;
use s3_backfill::error::{Error, exit};

async fn run(cli: Cli) -> Result<i32, Error> {
    match cli.command {
        Command::Copy(args) => {
            let report = commands::copy(&args).await?;
            Ok(if report.failed > 0 {
                exit::FAILURES
            } else {
                exit::SUCCESS
            })
        }
        Command::Verify(args) => commands::verify(&args).await.map(|()| exit::SUCCESS),
        Command::Demo => s3_backfill::demo::demo().await.map(|()| exit::SUCCESS),
    }
}

async fn interrupted() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("install SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}

fn main() {
    // Usage errors exit 2 from clap itself.
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new().expect("start the async runtime");
    let code = runtime.block_on(async {
        tokio::select! {
            result = run(cli) => result.unwrap_or_else(|error| {
                eprintln!("error: {error}");
                error.exit_code()
            }),
            () = interrupted() => {
                eprintln!("interrupted");
                Error::Interrupted.exit_code()
            }
        }
    });
    runtime.shutdown_background();
    std::process::exit(code);
}
