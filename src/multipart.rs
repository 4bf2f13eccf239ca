//! Multipart copy of one version: CreateMultipartUpload carrying everything CopyObject would have kept
//! (CreateMultipartUpload copies nothing from the source), UploadPartCopy parts in parallel guarded by the
//! source's ETag, CompleteMultipartUpload; the upload is aborted on any failure so none is left orphaned.

use futures::{StreamExt, TryStreamExt, stream};

use crate::plan::part_ranges;
use crate::replay::{DestinationHead, Executor};
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
    let upload_id = destination
        .create_multipart(&CreateMultipartRequest {
            bucket: bucket.to_string(),
            key: destination_key.to_string(),
            head: object.clone(),
            tags,
            settings: executor.job.write.clone(),
        })
        .await?;
    executor.upload_started(destination_key, &upload_id);
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
