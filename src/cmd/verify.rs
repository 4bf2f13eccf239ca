//! `verify`: compares two version histories and each version's attributes.

use std::sync::Arc;

use super::clients_and_places;
use crate::cli::VerifyArgs;
use crate::error::Error;
use crate::location::KeyMapping;
use crate::progress::Progress;
use crate::s3::limit::Limits;

/// Runs `verify`; Ok only when the histories match.
pub async fn verify(args: &VerifyArgs) -> Result<(), Error> {
    let progress = Arc::new(Progress::default());
    let limits = Limits::new(64, None, Arc::clone(&progress));
    let (source, destination, _) = clients_and_places(
        &args.endpoints,
        &limits,
        &progress,
        args.source_sse_c_key.clone(),
        args.sse_c_key.clone(),
    )
    .await;
    crate::preflight::check_bucket(
        &*source,
        crate::preflight::Side::Source,
        &args.source.bucket,
    )
    .await?;
    crate::preflight::check_bucket(
        &*destination,
        crate::preflight::Side::Destination,
        &args.destination.bucket,
    )
    .await?;
    let mapping = KeyMapping {
        source: args.source.clone(),
        destination: args.destination.clone(),
    };
    // The comparison's own progress: the source's entries listed, then compared.
    let compared = Arc::new(Progress::default());
    let options = crate::verify::VerifyOptions {
        latest_only: args.latest_only,
        kms_key: args.sse_kms_key_id.clone(),
        progress: Arc::clone(&compared),
        compare: args.compare,
        provenance: crate::checkpoint::machine_directory("provenance")
            .ok()
            .and_then(|directory| {
                crate::replay::Provenance::open(&directory, &args.destination.bucket).ok()
            })
            .map(Arc::new),
    };
    let renderer = crate::progress::Renderer::start(
        compared,
        args.progress,
        "verify",
        std::time::Duration::from_secs_f64(args.progress_interval),
    );
    let outcome = crate::verify::verify(source, destination, &mapping, &options).await;
    renderer.finish().await;
    let outcome = outcome.map_err(|source| Error::Listing {
        bucket: args.source.bucket.clone(),
        prefix: args.source.prefix.clone(),
        source,
    })?;
    if outcome.difference_count == 0 {
        println!(
            "verified {} keys, {} entries: {} and {} match",
            outcome.keys, outcome.entries, args.source, args.destination
        );
        print_weak_matches(&options.progress);
        return Ok(());
    }
    print_weak_matches(&options.progress);
    println!(
        "{} differences between {} and {} ({} keys, {} entries in the source); the first ones:",
        outcome.difference_count, args.source, args.destination, outcome.keys, outcome.entries
    );
    for difference in &outcome.differences {
        println!("  {}", crate::error::printable(difference));
    }
    Err(Error::Failed(format!(
        "{} differences found",
        outcome.difference_count
    )))
}

/// How the pairs whose ETags could not be compared were proven.
fn print_weak_matches(progress: &Progress) {
    use std::sync::atomic::Ordering::Relaxed;
    let (record, checksum, content, size) = (
        progress.matched_by_record.load(Relaxed),
        progress.matched_by_checksum.load(Relaxed),
        progress.matched_by_content.load(Relaxed),
        progress.matched_by_size.load(Relaxed),
    );
    if record + checksum + content + size > 0 {
        println!(
            "matched without comparable ETags: {record} by this machine's record of its copies, \
             {checksum} by checksum, {content} by content ({} read), {size} by size alone \
             (--compare size: not proof)",
            crate::size::human_bytes(progress.compared_bytes.load(Relaxed))
        );
    }
}
