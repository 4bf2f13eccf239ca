//! `setup`: the replication set-up steps (`crate::setup`), then what `--existing` asks for the objects
//! replication never copies: a backfill in the order that never fights live replication, or a Batch
//! Operations job.

use std::sync::Arc;

use crate::cli::CopyArgs;
use crate::error::Error;
use crate::replay::Stop;

use super::copy::copy;

/// Runs `setup`: buckets, versioning, role and rule, then what `--existing` asks for the objects
/// replication will never copy. Returns the exit code.
pub async fn setup(args: &crate::cli::SetupArgs, stop: Arc<Stop>) -> Result<i32, Error> {
    use crate::cli::Existing;
    let batch = match (&args.existing, &args.batch_role_arn, &args.report) {
        (Existing::Batch, Some(role), Some(report)) => Some(crate::cli::BatchSubmitArgs {
            no_confirmation: true,
            account_id: args.account_id.clone(),
            control_endpoint_url: args.control_endpoint_url.clone(),
            ..crate::cli::BatchSubmitArgs::new(
                args.source.clone(),
                role.clone(),
                report.clone(),
                args.endpoints.clone(),
            )
        }),
        (Existing::Batch, _, _) => {
            return Err(Error::Usage(
                "--existing batch submits an S3 Batch Operations replication job: it needs --batch-role-arn ARN \
                 (a role trusted by batchoperations.s3.amazonaws.com; `s3-backfill role policy --for batch` prints \
                 its policies) and --report s3://BUCKET/PREFIX for the completion report"
                    .into(),
            ));
        }
        _ => None,
    };
    let clients = crate::setup::Clients::connect(&args.endpoints).await;
    let copy_args = CopyArgs::new(
        args.source.clone(),
        args.destination.clone(),
        args.endpoints.clone(),
    );
    if args.existing == Existing::Copy {
        return seed_then_replicate(args, &clients, copy_args, stop).await;
    }
    crate::setup::setup(
        &clients,
        &args.source,
        &args.destination,
        &args.rule_name,
        &args.rule,
        &args.endpoints,
    )
    .await?;
    if let Some(submit) = batch {
        println!("4. existing objects: an S3 Batch Operations replication job");
        return crate::cmd::batch::submit(&submit).await;
    }
    println!(
        "4. existing objects: not copied (replication never copies objects older than the rule); copy \
         them with:\n  s3-backfill copy {} {}",
        copy_args.source, copy_args.destination
    );
    Ok(crate::error::exit::SUCCESS)
}

/// `setup --existing copy`, in the order that never fights live replication: buckets and versioning,
/// the backfill, the rule, then a catch-up copy of what was written during the backfill. Had the rule
/// come first, every write after it would reach the destination twice (S3's replica, then our copy),
/// and a key written during the backfill would get its old versions copied on top of its newer
/// replica, leaving a stale current version.
async fn seed_then_replicate(
    args: &crate::cli::SetupArgs,
    clients: &crate::setup::Clients,
    copy_args: CopyArgs,
    stop: Arc<Stop>,
) -> Result<i32, Error> {
    let changes = crate::setup::prepare(
        clients,
        &args.source,
        &args.destination,
        &args.rule_name,
        &args.rule,
        &args.endpoints,
    )
    .await?;
    println!(
        "3. existing objects: copying every version with this engine, before the rule exists (so no \
         replica lands under the copies)"
    );
    let backfill = copy(&copy_args, Arc::clone(&stop)).await?;
    crate::setup::put_rule_step(
        clients,
        &args.source,
        &args.destination,
        &args.rule_name,
        &args.rule,
        changes,
        4,
    )
    .await?;
    // What replication will never copy is what was written before the rule: the catch-up copies each
    // key's history up to now (an entry written in the instant after the rule may then arrive twice,
    // which is better than not at all), and leaves everything later to replication.
    let rule_time = crate::s3::DateTime::from_millis(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64),
    )
    .fmt(crate::s3::DateFormat::DateTime)
    .unwrap_or_default();
    println!(
        "5. catch-up: copying what was written to the source during the backfill, up to {rule_time} \
         (replication covers everything written from now on); a key written both during the backfill and \
         after the rule is reported as diverged with what its destination lacks, and keeps the source's \
         current version"
    );
    let catch_up_args = CopyArgs {
        as_of: Some(rule_time),
        ..copy_args
    };
    let catch_up = copy(&catch_up_args, stop).await?;
    Ok(
        if backfill.failed + catch_up.failed + catch_up.unfinished_keys() > 0 {
            crate::error::exit::FAILURES
        } else {
            crate::error::exit::SUCCESS
        },
    )
}
