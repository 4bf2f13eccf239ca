//! Logging to stderr with `tracing`: `-v` info (start, listing milestones, every failure), `-vv` debug
//! (each retry with its reason and delay, each SlowDown and the new window, each reconcile decision,
//! checkpoint compactions), `-q` errors only; without a flag `RUST_LOG` decides, else our warnings.
//! The AWS SDK's own events show only through `RUST_LOG` (or as errors).
//! `--log-format json` writes one JSON object a line (timestamp, level, fields).
//!
//! Keys are logged with `?` (Debug), so control characters in a key are escaped. The AWS SDK's own
//! debug and trace events (request dumps, signing) are dropped whatever the filter says: they can
//! carry a request's signature.

use tracing::Level;
use tracing_subscriber::filter::{EnvFilter, filter_fn};
use tracing_subscriber::fmt;
use tracing_subscriber::prelude::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// The wire-level crates whose detailed events may include signed requests.
fn wire_level(target: &str) -> bool {
    [
        "aws_sigv4",
        "aws_smithy",
        "aws_sdk",
        "aws_config",
        "hyper",
        "h2",
        "rustls",
    ]
    .iter()
    .any(|prefix| target.starts_with(prefix))
}

/// The filter for `-v` counts and `-q`; None leaves it to `RUST_LOG`.
pub fn directives(verbose: u8, quiet: bool) -> Option<&'static str> {
    match (quiet, verbose) {
        (true, _) => Some("error"),
        (false, 0) => None,
        (false, 1) => Some("error,s3_backfill=info"),
        (false, 2) => Some("error,s3_backfill=debug"),
        (false, _) => Some("error,s3_backfill=trace"),
    }
}

/// Installs the subscriber for the whole process.
pub fn init(verbose: u8, quiet: bool, format: LogFormat) {
    let filter = match directives(verbose, quiet) {
        Some(directives) => EnvFilter::new(directives),
        // The SDK's own warnings (a region not found on an instance metadata service that is not
        // there, ...) come with Debug dumps: only RUST_LOG shows them.
        None => EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| EnvFilter::new("error,s3_backfill=warn")),
    };
    let no_wire_detail =
        filter_fn(|meta| !(wire_level(meta.target()) && *meta.level() > Level::INFO));
    let layer = fmt::layer().with_writer(std::io::stderr).with_target(false);
    match format {
        LogFormat::Text => tracing_subscriber::registry()
            .with(layer.with_filter(filter).with_filter(no_wire_detail))
            .init(),
        LogFormat::Json => tracing_subscriber::registry()
            .with(
                layer
                    .json()
                    .flatten_event(true)
                    .with_filter(filter)
                    .with_filter(no_wire_detail),
            )
            .init(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flags_win_over_rust_log() {
        assert_eq!(directives(0, false), None);
        assert_eq!(directives(1, false), Some("error,s3_backfill=info"));
        assert_eq!(directives(2, false), Some("error,s3_backfill=debug"));
        assert_eq!(directives(0, true), Some("error"));
        assert!(wire_level("aws_sigv4::http_request"));
        assert!(!wire_level("s3_backfill::replay"));
    }
}
