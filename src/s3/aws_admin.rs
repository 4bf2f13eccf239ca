//! `S3Admin` on aws-sdk-s3.

use std::path::Path;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketLocationConstraint, BucketVersioningStatus, CompletedMultipartUpload,
    CompletedPart as SdkCompletedPart, CreateBucketConfiguration, Delete, ObjectIdentifier,
    VersioningConfiguration,
};

use super::admin::*;
use super::api::*;
use super::aws::{AwsS3, classify, tagging_query};

/// Files above this are uploaded in parts of this size.
const UPLOAD_PART: usize = 16 << 20;

fn io_error(path: &Path, error: std::io::Error) -> S3Error {
    S3Error::Other {
        code: "LocalFile".into(),
        message: format!("{}: {error}", path.display()),
    }
}

impl AwsS3 {
    async fn upload_parts(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        path: &Path,
    ) -> S3Result<String> {
        let mut parts = Vec::new();
        let mut file = std::fs::File::open(path).map_err(|e| io_error(path, e))?;
        let mut number = 1;
        loop {
            let mut chunk = vec![0; UPLOAD_PART];
            let mut filled = 0;
            while filled < UPLOAD_PART {
                let n = std::io::Read::read(&mut file, &mut chunk[filled..])
                    .map_err(|e| io_error(path, e))?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
            if filled == 0 {
                break;
            }
            chunk.truncate(filled);
            let part = self
                .client
                .upload_part()
                .bucket(bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(number)
                .body(ByteStream::from(chunk))
                .send()
                .await
                .map_err(|e| classify(e, bucket))?;
            parts.push(
                SdkCompletedPart::builder()
                    .part_number(number)
                    .e_tag(part.e_tag().unwrap_or_default())
                    .build(),
            );
            number += 1;
        }
        let out = self
            .client
            .complete_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| classify(e, bucket))?;
        Ok(out.e_tag().unwrap_or_default().to_string())
    }
}

impl S3Admin for AwsS3 {
    async fn bucket_exists(&self, bucket: &str) -> S3Result<bool> {
        match self.client.head_bucket().bucket(bucket).send().await {
            Ok(_) => Ok(true),
            Err(e) => match classify(e, bucket) {
                S3Error::NotFound { .. } | S3Error::NoSuchBucket { .. } => Ok(false),
                other => Err(other),
            },
        }
    }

    async fn create_bucket(&self, bucket: &str, region: Option<&str>) -> S3Result<Created> {
        let mut request = self.client.create_bucket().bucket(bucket);
        if let Some(region) = region.filter(|r| *r != "us-east-1") {
            request = request.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(region))
                    .build(),
            );
        }
        match request.send().await {
            Ok(_) => Ok(Created::Created),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_bucket_already_owned_by_you()) =>
            {
                Ok(Created::AlreadyOurs)
            }
            Err(e) => Err(classify(e, bucket)),
        }
    }

    async fn put_versioning(&self, bucket: &str, enabled: bool) -> S3Result<()> {
        let status = if enabled {
            BucketVersioningStatus::Enabled
        } else {
            BucketVersioningStatus::Suspended
        };
        self.client
            .put_bucket_versioning()
            .bucket(bucket)
            .versioning_configuration(VersioningConfiguration::builder().status(status).build())
            .send()
            .await
            .map_err(|e| classify(e, bucket))?;
        Ok(())
    }

    async fn bucket_region(&self, bucket: &str) -> S3Result<String> {
        let out = self
            .client
            .get_bucket_location()
            .bucket(bucket)
            .send()
            .await
            .map_err(|e| classify(e, bucket))?;
        Ok(match out.location_constraint().map(|c| c.as_str()) {
            None | Some("") => "us-east-1".to_string(),
            Some("EU") => "eu-west-1".to_string(),
            Some(region) => region.to_string(),
        })
    }

    async fn replication(&self, bucket: &str) -> S3Result<Option<ReplicationConfiguration>> {
        match self
            .client
            .get_bucket_replication()
            .bucket(bucket)
            .send()
            .await
        {
            Ok(out) => Ok(out.replication_configuration().cloned()),
            Err(e) => match classify(e, bucket) {
                S3Error::NotFound { .. } => Ok(None),
                S3Error::Other { code, .. } if code.contains("Replication") => Ok(None),
                other => Err(other),
            },
        }
    }

    async fn put_replication(
        &self,
        bucket: &str,
        configuration: &ReplicationConfiguration,
    ) -> S3Result<()> {
        self.client
            .put_bucket_replication()
            .bucket(bucket)
            .replication_configuration(configuration.clone())
            .send()
            .await
            .map_err(|e| classify(e, bucket))?;
        Ok(())
    }

    async fn delete_replication(&self, bucket: &str) -> S3Result<()> {
        self.client
            .delete_bucket_replication()
            .bucket(bucket)
            .send()
            .await
            .map_err(|e| classify(e, bucket))?;
        Ok(())
    }

    async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        body: bytes::Bytes,
        options: &PutOptions,
    ) -> S3Result<WrittenVersion> {
        let tagging = tagging_query(&options.tags);
        let metadata =
            (!options.metadata.is_empty()).then(|| options.metadata.iter().cloned().collect());
        let out = self
            .client
            .put_object()
            .bucket(bucket)
            .key(key)
            .set_content_type(options.content_type.clone())
            .set_metadata(metadata)
            .set_tagging(tagging)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| classify(e, bucket))?;
        Ok(out.version_id().map(str::to_string))
    }

    async fn upload_file(
        &self,
        bucket: &str,
        key: &str,
        path: &Path,
        content_type: &str,
    ) -> S3Result<String> {
        let size = std::fs::metadata(path)
            .map_err(|e| io_error(path, e))?
            .len();
        if size <= UPLOAD_PART as u64 {
            let body = ByteStream::from_path(path)
                .await
                .map_err(|e| S3Error::Other {
                    code: "LocalFile".into(),
                    message: format!("{}: {e}", path.display()),
                })?;
            let out = self
                .client
                .put_object()
                .bucket(bucket)
                .key(key)
                .content_type(content_type)
                .body(body)
                .send()
                .await
                .map_err(|e| classify(e, bucket))?;
            return Ok(out.e_tag().unwrap_or_default().to_string());
        }
        let upload = self
            .client
            .create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .content_type(content_type)
            .send()
            .await
            .map_err(|e| classify(e, bucket))?;
        let upload_id = upload.upload_id().unwrap_or_default().to_string();
        let result = self.upload_parts(bucket, key, &upload_id, path).await;
        if result.is_err() {
            // Best effort: the upload's own error is the one to report.
            let _ = self
                .client
                .abort_multipart_upload()
                .bucket(bucket)
                .key(key)
                .upload_id(&upload_id)
                .send()
                .await;
        }
        result
    }

    async fn delete_versions(&self, bucket: &str, versions: &[(String, String)]) -> S3Result<()> {
        if versions.is_empty() {
            return Ok(());
        }
        let objects: Vec<ObjectIdentifier> = versions
            .iter()
            .filter_map(|(key, version)| {
                ObjectIdentifier::builder()
                    .key(key)
                    .set_version_id(Some(version.clone()).filter(|v| !v.is_empty()))
                    .build()
                    .ok()
            })
            .collect();
        let delete = Delete::builder()
            .set_objects(Some(objects))
            .quiet(true)
            .build()
            .map_err(|e| S3Error::Other {
                code: "InvalidRequest".into(),
                message: e.to_string(),
            })?;
        self.client
            .delete_objects()
            .bucket(bucket)
            .delete(delete)
            .send()
            .await
            .map_err(|e| classify(e, bucket))?;
        Ok(())
    }
}
