//! `status`: what a job's checkpoints say about it, without touching S3 — live while a run writes them
//! (the run brings their counts up to date every `--report-interval`), summed over a job's shards.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::write_private;
use crate::checkpoint::{KeyState, State, holder, now_unix, replay};
use crate::cli::StatusArgs;
use crate::error::Error;

/// One checkpoint's figures.
#[derive(Debug, Serialize)]
struct Shard {
    checkpoint: String,
    shard: Option<String>,
    /// `complete`, `stopped`, `running` or `killed`.
    state: &'static str,
    /// The run writing it now (pid and host), when one is.
    writer: Option<String>,
    listed_entries: u64,
    listing_complete: bool,
    done_entries: u64,
    failed_keys: usize,
    diverged_keys: usize,
    keys_in_progress: usize,
    open_uploads: usize,
    /// Entries a second between the last two updates.
    entries_per_second: Option<f64>,
    updated_at: String,
    seconds_since_update: u64,
}

#[derive(Debug, Serialize)]
struct Status {
    source: String,
    destination: String,
    /// The job's state over its shards: `complete` only when every shard is.
    state: &'static str,
    listed_entries: u64,
    done_entries: u64,
    failed_keys: usize,
    entries_per_second: Option<f64>,
    shards: Vec<Shard>,
}

fn shard(path: &Path, state: &State) -> Shard {
    let identity = state.identity.as_ref().expect("checked");
    let writer = holder(path);
    let modified = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(state.updated_unix, |d| d.as_secs());
    let run_state = if state.pass_complete {
        "complete"
    } else if writer.is_some() {
        "running"
    } else if state.ended_cleanly {
        "stopped"
    } else {
        "killed"
    };
    let entries_per_second = state.previous_stats.and_then(|(at, done)| {
        let seconds = state.updated_unix.saturating_sub(at);
        (at > 0 && seconds > 0)
            .then(|| state.done_entries.saturating_sub(done) as f64 / seconds as f64)
    });
    Shard {
        checkpoint: path.display().to_string(),
        shard: identity.shard.clone(),
        state: run_state,
        writer,
        listed_entries: state.listed_entries,
        listing_complete: state.pass_complete,
        done_entries: state.done_entries,
        failed_keys: state.failed.len(),
        diverged_keys: state
            .failed
            .values()
            .filter(|f| f.reason.starts_with("diverged: "))
            .count(),
        keys_in_progress: state
            .keys
            .values()
            .filter(|s| !matches!(s, KeyState::Complete))
            .count(),
        open_uploads: state.uploads.len(),
        entries_per_second,
        updated_at: crate::s3::DateTime::from_secs(modified as i64)
            .fmt(crate::s3::DateFormat::DateTime)
            .unwrap_or_default(),
        seconds_since_update: now_unix().saturating_sub(modified),
    }
}

/// The default checkpoints (`.s3-backfill/` here) whose job copies `source` into `destination`, with
/// what each holds.
fn find_job(source: &str, destination: &str) -> Result<Vec<(PathBuf, State)>, Error> {
    let normal = |url: &str| {
        crate::cli::parse_range(url)
            .map(|l| l.to_string())
            .map_err(|e| Error::Usage(e.to_string()))
    };
    let (source, destination) = (normal(source)?, normal(destination)?);
    let mut found = Vec::new();
    for entry in std::fs::read_dir(".s3-backfill")
        .into_iter()
        .flatten()
        .flatten()
    {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "checkpoint") {
            continue;
        }
        if let Ok(state) = replay(&path)
            && let Some(identity) = &state.identity
            && identity.source == source
            && identity.destination == destination
        {
            found.push((path, state));
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    if found.is_empty() {
        return Err(Error::Usage(format!(
            "no checkpoint of a job from {source} to {destination} in .s3-backfill/ here: run status in the \
             directory the copy ran in, or name the file with --checkpoint"
        )));
    }
    Ok(found)
}

/// Runs `status`.
pub fn status(args: &StatusArgs) -> Result<(), Error> {
    let found = match &args.job {
        Some(job) => find_job(&job[0], &job[1])?,
        None => {
            let mut found = Vec::new();
            for path in &args.checkpoint {
                if !path.exists() {
                    return Err(Error::Usage(format!(
                        "no checkpoint at {}: a copy writes its checkpoint under .s3-backfill/ in the directory \
                         it ran from (or where its --checkpoint said): run status there, give that path, or \
                         use status --job s3://SOURCE s3://DESTINATION",
                        path.display()
                    )));
                }
                let state = replay(path).map_err(|e| Error::Usage(e.to_string()))?;
                if state.identity.is_none() {
                    return Err(Error::Usage(format!(
                        "checkpoint {} is empty: no run has recorded progress in it",
                        path.display()
                    )));
                }
                found.push((path.clone(), state));
            }
            found
        }
    };
    let (paths, states): (Vec<PathBuf>, Vec<State>) = found.into_iter().unzip();
    let shards: Vec<Shard> = paths
        .iter()
        .zip(&states)
        .map(|(path, state)| shard(path, state))
        .collect();
    let identity = states[0].identity.as_ref().expect("checked");
    let state = if shards.iter().all(|s| s.state == "complete") {
        "complete"
    } else if shards.iter().any(|s| s.state == "running") {
        "running"
    } else if shards.iter().any(|s| s.state == "killed") {
        "killed"
    } else {
        "stopped"
    };
    let rates: Vec<f64> = shards.iter().filter_map(|s| s.entries_per_second).collect();
    let status = Status {
        source: identity.source.clone(),
        destination: identity.destination.clone(),
        state,
        listed_entries: shards.iter().map(|s| s.listed_entries).sum(),
        done_entries: shards.iter().map(|s| s.done_entries).sum(),
        failed_keys: shards.iter().map(|s| s.failed_keys).sum(),
        entries_per_second: (!rates.is_empty()).then(|| rates.iter().sum()),
        shards,
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&status).expect("status serializes")
        );
    } else {
        print_text(&status, &states, identity.latest_only);
    }
    if let Some(out) = &args.failed_csv {
        let source: crate::location::Location = identity
            .source
            .parse()
            .map_err(|e: crate::location::LocationError| Error::Usage(e.to_string()))?;
        let mut csv = String::new();
        for state in &states {
            for (key, failure) in &state.failed {
                csv.push_str(&format!(
                    "{},{},{}\n",
                    source.bucket,
                    crate::s3::manifest_key(key),
                    failure.version_id
                ));
            }
        }
        write_private(out, csv.as_bytes())?;
        println!(
            "wrote {} failed entries to {}",
            status.failed_keys,
            out.display()
        );
    }
    Ok(())
}

fn print_text(status: &Status, states: &[State], latest_only: bool) {
    use crate::progress::thousands;
    println!(
        "job:          {} -> {}{}",
        status.source,
        status.destination,
        if latest_only { " (latest only)" } else { "" }
    );
    let what = match status.state {
        "complete" => {
            "complete: the last run went over every key (the next run is a catch-up pass)"
        }
        "running" => "running",
        "killed" => "ended without a word (killed): the next run waits --resume-wait, then resumes",
        _ => "stopped: the next run of the same command resumes",
    };
    println!("state:        {what}");
    for shard in &status.shards {
        let listed = if shard.listing_complete {
            thousands(shard.listed_entries)
        } else {
            format!("{}+ (listing)", thousands(shard.listed_entries))
        };
        println!("checkpoint {}", shard.checkpoint);
        if let Some(name) = &shard.shard {
            println!("  shard:        {name}");
        }
        println!("  state:        {}", shard.state);
        if let Some(writer) = &shard.writer {
            println!("  writer:       {writer}");
        }
        println!(
            "  done:         {} of {listed} entries listed so far",
            thousands(shard.done_entries)
        );
        if let Some(rate) = shard.entries_per_second {
            println!("  rate:         {rate:.0} entries/s (between the last two updates)");
        }
        println!(
            "  failed:       {} keys, {} of them diverged (looked at again by the next run unless \
             --retry-failed=false)",
            shard.failed_keys, shard.diverged_keys
        );
        println!("  in progress:  {} keys", shard.keys_in_progress);
        println!(
            "  open uploads: {} multipart uploads to abort on the next run",
            shard.open_uploads
        );
        println!(
            "  last update:  {} ({} s ago)",
            shard.updated_at, shard.seconds_since_update
        );
    }
    for state in states {
        println!(
            "  listed up to: {}",
            state
                .watermark
                .as_deref()
                .unwrap_or("(nothing finished yet)")
        );
        for (key, failure) in state.failed.iter().take(20) {
            println!(
                "  failed: {} version {}: {}",
                crate::error::printable(&format!("{key:?}")),
                failure.version_id,
                failure.reason
            );
        }
    }
}
