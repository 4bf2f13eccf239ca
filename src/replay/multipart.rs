//! Multipart copy of one version: CreateMultipartUpload carrying everything CopyObject would have kept
//! (CreateMultipartUpload copies nothing from the source), UploadPartCopy parts in parallel guarded by the
//! source's ETag, CompleteMultipartUpload; the upload is aborted on any failure so none is left orphaned.

use futures::{StreamExt, TryStreamExt, stream};

/// Attempts at CreateMultipartUpload whose outcome is unknown before giving up on the entry.
const CREATE_ATTEMPTS: u32 = 5;

use super::{DestinationHead, Executor};
use crate::plan::part_ranges;
use crate::s3::{
    CreateMultipartRequest, Entry, PartCopyRequest, S3Api, S3Error, S3Result, VersionRef,
};

pub async fn copy_multipart<C: S3Api>(
    executor: &Executor<C>,
    entry: &Entry,
    source: &VersionRef,
    destination_key: &str,
    head: &mut DestinationHead,
) -> S3Result<()> {
    let size = entry.size();
    let client = &executor.source;
    let destination = &executor.destination;
    let bucket = executor.job.selection.mapping.destination.bucket.as_str();
    let object = client.head_object(source, None).await?;
    // A multipart source's ETag ends in -N; its first part's size gives the layout to reproduce.
    let source_part_size = if object.etag.contains('-') && executor.job.plan.part_size.is_none() {
        client
            .head_object(source, Some(1))
            .await
            .ok()
            .and_then(|part| part.part_size)
    } else {
        None
    };
    let part_size = executor
        .job
        .plan
        .part_size(size, source_part_size)
        .map_err(|message| S3Error::Other {
            code: "InvalidPartSize".into(),
            message,
        })?;
    let tags = client.get_tags(source).await?;
    let request = CreateMultipartRequest {
        bucket: bucket.to_string(),
        key: destination_key.to_string(),
        head: object.clone(),
        tags,
        settings: executor.job.write.clone(),
    };
    let upload_id = create_upload(executor, &request).await?;
    let result = async {
        let requests = part_ranges(size, part_size).into_iter().enumerate().map(
            |(index, (first_byte, last_byte))| PartCopyRequest {
                bucket: bucket.to_string(),
                key: destination_key.to_string(),
                upload_id: upload_id.clone(),
                part_number: index as u32 + 1,
                source: source.clone(),
                first_byte,
                last_byte,
                if_match: object.etag.clone(),
            },
        );
        let copy_parts = stream::iter(requests)
            .map(|request| async move { destination.upload_part_copy(&request).await })
            .buffer_unordered(executor.job.concurrency.max(1))
            .try_collect::<Vec<_>>();
        // On SIGINT the parts are dropped and the upload aborted; the pending intent makes the next run redo it.
        let mut parts = tokio::select! {
            parts = copy_parts => parts?,
            () = executor.stop.wait() => return Err(S3Error::Interrupted),
        };
        parts.sort_by_key(|part| part.part_number);
        executor
            .write(destination_key, entry, head, || {
                destination.complete_multipart(bucket, destination_key, &upload_id, &parts)
            })
            .await
    }
    .await;
    let finished = match &result {
        Ok(()) => true,
        // Best effort: the run reports the copy's own error, which matters more than the abort's.
        Err(_) => destination
            .abort_multipart(bucket, destination_key, &upload_id)
            .await
            .is_ok(),
    };
    if finished {
        executor.upload_ended(&upload_id);
    }
    result
}

/// CreateMultipartUpload, recorded in the journal as soon as its id is known. An attempt whose answer
/// was lost may have created an upload whose id only the server knows: before trying again, the
/// uploads in progress for the key that the journal does not know are listed and aborted (this run
/// copies one entry of a key at a time, so none of them is in use), so none is left to bill.
async fn create_upload<C: S3Api>(
    executor: &Executor<C>,
    request: &CreateMultipartRequest,
) -> S3Result<String> {
    let destination = &executor.destination;
    let mut backoff = crate::s3::retry::RetryPolicy::default().backoff(fastrand::u64(..));
    let mut attempts = 0;
    loop {
        attempts += 1;
        match destination.create_multipart(request).await {
            Ok(upload_id) => {
                executor.upload_started(&request.key, &upload_id);
                return Ok(upload_id);
            }
            Err(error) if error.maybe_applied() && attempts < CREATE_ATTEMPTS => {
                executor.progress.retried();
                executor
                    .abort_uploads_of(&request.key, &executor.recorded_uploads())
                    .await?;
                tokio::time::sleep(backoff.next_delay()).await;
            }
            Err(error) => return Err(error),
        }
    }
}
