//! Multipart copy of one version: CreateMultipartUpload carrying everything CopyObject would have kept
//! (CreateMultipartUpload copies nothing from the source), UploadPartCopy parts in parallel guarded by the
//! source's ETag, CompleteMultipartUpload; the upload is aborted on any failure so none is left orphaned.

use futures::{StreamExt, TryStreamExt, stream};

/// Attempts at CreateMultipartUpload whose outcome is unknown before giving up on the entry.
const CREATE_ATTEMPTS: u32 = 5;

use super::{DestinationHead, Executor};
use crate::plan::{layout_ranges, multipart_parts, part_ranges, uniform_layout, valid_layout};
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
    let ranges = match source_layout(executor, source, &object.etag, size).await {
        Some(sizes) => layout_ranges(&sizes),
        None => {
            let part_size =
                executor
                    .job
                    .plan
                    .part_size(size)
                    .map_err(|message| S3Error::Other {
                        code: "InvalidPartSize".into(),
                        message,
                    })?;
            part_ranges(size, part_size)
        }
    };
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
        let requests = ranges
            .into_iter()
            .enumerate()
            .map(|(index, (first_byte, last_byte))| PartCopyRequest {
                bucket: bucket.to_string(),
                key: destination_key.to_string(),
                upload_id: upload_id.clone(),
                part_number: index as u32 + 1,
                source: source.clone(),
                first_byte,
                last_byte,
                if_match: object.etag.clone(),
            });
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

/// The sizes of a multipart source's parts, so that its copy has the same ETag (an ETag `…-N` is the MD5
/// of its parts' MD5s): from the first part's HEAD when the parts are all that size but the last, else
/// from a HEAD of each part. None when there is no layout to keep (a single-part source, `--part-size`
/// given, a server that does not answer HEAD with a part number): the tool's own part size is used.
async fn source_layout<C: S3Api>(
    executor: &Executor<C>,
    source: &VersionRef,
    etag: &str,
    size: u64,
) -> Option<Vec<u64>> {
    let parts = multipart_parts(etag)?;
    if executor.job.plan.part_size.is_some() {
        return None;
    }
    let client = &executor.source;
    let first = client.head_object(source, Some(1)).await.ok()?;
    let count = first.parts_count.unwrap_or(parts);
    let sizes = match uniform_layout(size, count, first.part_size?) {
        Some(sizes) => sizes,
        None => {
            let mut sizes = vec![first.part_size?];
            let rest = stream::iter(2..=count)
                .map(|number| async move {
                    client
                        .head_object(source, Some(number))
                        .await
                        .ok()
                        .and_then(|part| part.part_size)
                })
                .buffered(executor.job.concurrency.clamp(1, 64))
                .collect::<Vec<_>>()
                .await;
            for part in rest {
                sizes.push(part?);
            }
            sizes
        }
    };
    valid_layout(size, &sizes).then_some(sizes)
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
