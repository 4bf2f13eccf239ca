//! `status`: what a checkpoint says about its job, without touching S3.

use super::write_private;
use crate::checkpoint::{now_unix, replay};
use crate::cli::StatusArgs;
use crate::error::Error;

/// Runs `status`: what a checkpoint holds.
pub fn status(args: &StatusArgs) -> Result<(), Error> {
    let state = replay(&args.checkpoint).map_err(|e| Error::Usage(e.to_string()))?;
    let Some(identity) = &state.identity else {
        return Err(Error::Usage(format!(
            "checkpoint {} is empty: no run has recorded progress in it",
            args.checkpoint.display()
        )));
    };
    let pending_keys = state
        .keys
        .values()
        .filter(|s| !matches!(s, crate::checkpoint::KeyState::Complete))
        .count();
    let modified = std::fs::metadata(&args.checkpoint)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(state.updated_unix, |d| d.as_secs());
    let when = crate::s3::DateTime::from_secs(modified as i64)
        .fmt(crate::s3::DateFormat::DateTime)
        .unwrap_or_default();
    println!("checkpoint {}", args.checkpoint.display());
    println!(
        "  job:          {} -> {}{}",
        identity.source,
        identity.destination,
        if identity.latest_only {
            " (latest only)"
        } else {
            ""
        }
    );
    println!(
        "  state:        {}",
        if state.pass_complete {
            "complete: the last run went over every key (the next run is a catch-up pass)"
        } else if state.ended_cleanly {
            "stopped: the next run of the same command resumes"
        } else {
            "running, or ended without a word (killed): the next run waits --resume-wait, then resumes"
        }
    );
    println!("  done:         {} entries", state.done_entries);
    let diverged = state
        .failed
        .values()
        .filter(|f| f.reason.starts_with("diverged: "))
        .count();
    println!(
        "  failed:       {} keys, {diverged} of them diverged (looked at again by the next run unless \
         --retry-failed=false)",
        state.failed.len()
    );
    println!("  in progress:  {pending_keys} keys");
    println!(
        "  pending:      about {} entries of {} listed so far (the listing continues on the next run)",
        state.listed_entries.saturating_sub(state.done_entries),
        state.listed_entries
    );
    println!(
        "  listed up to: {}",
        state
            .watermark
            .as_deref()
            .unwrap_or("(nothing finished yet)")
    );
    println!(
        "  open uploads: {} multipart uploads to abort on the next run",
        state.uploads.len()
    );
    println!(
        "  last update:  {when} ({} s ago)",
        now_unix().saturating_sub(modified)
    );
    for (key, failure) in state.failed.iter().take(20) {
        println!(
            "  failed: {key:?} version {}: {}",
            failure.version_id, failure.reason
        );
    }
    if let Some(out) = &args.failed_csv {
        let source: crate::location::Location = identity
            .source
            .parse()
            .map_err(|e: crate::location::LocationError| Error::Usage(e.to_string()))?;
        let mut csv = String::new();
        for (key, failure) in &state.failed {
            csv.push_str(&format!(
                "{},{},{}\n",
                source.bucket,
                crate::s3::manifest_key(key),
                failure.version_id
            ));
        }
        write_private(out, csv.as_bytes())?;
        println!(
            "wrote {} failed entries to {}",
            state.failed.len(),
            out.display()
        );
    }
    Ok(())
}
