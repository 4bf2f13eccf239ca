//! The configuration side of S3, for the commands that set buckets up (`mb`, `versioning`, `replication`,
//! `setup`), write their own objects (`bench`, `demo`, Batch Operations manifests) or clean them up:
//! one trait next to the data path's `S3Api`, implemented by the aws-sdk-s3 client and wrapped by the
//! same retry decorator. Replication configurations are aws-sdk-s3's own types, re-exported here.

use std::future::Future;
use std::path::Path;

pub use aws_sdk_s3::types::{
    AccessControlTranslation, DeleteMarkerReplication, DeleteMarkerReplicationStatus, Destination,
    OwnerOverride, ReplicationConfiguration, ReplicationRule, ReplicationRuleFilter,
    ReplicationRuleStatus, StorageClass, Tag,
};

use super::api::*;

/// What CreateBucket did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    Created,
    /// The bucket exists and is ours already.
    AlreadyOurs,
}

/// What PutObject sets besides the bytes.
#[derive(Debug, Clone, Default)]
pub struct PutOptions {
    pub content_type: Option<String>,
    pub metadata: Vec<(String, String)>,
    pub tags: Vec<(String, String)>,
}

pub trait S3Admin: S3Api {
    /// HeadBucket: false when the bucket does not exist.
    fn bucket_exists(&self, bucket: &str) -> impl Future<Output = S3Result<bool>> + Send;
    /// CreateBucket in `region` (None or us-east-1: no location constraint). A name another account
    /// holds fails with code `BucketAlreadyExists`.
    fn create_bucket(
        &self,
        bucket: &str,
        region: Option<&str>,
    ) -> impl Future<Output = S3Result<Created>> + Send;
    fn put_versioning(
        &self,
        bucket: &str,
        enabled: bool,
    ) -> impl Future<Output = S3Result<()>> + Send;
    /// GetBucketLocation, as a region name (an empty constraint is us-east-1, `EU` eu-west-1).
    fn bucket_region(&self, bucket: &str) -> impl Future<Output = S3Result<String>> + Send;
    /// The bucket's replication configuration; None when it has none.
    fn replication(
        &self,
        bucket: &str,
    ) -> impl Future<Output = S3Result<Option<ReplicationConfiguration>>> + Send;
    fn put_replication(
        &self,
        bucket: &str,
        configuration: &ReplicationConfiguration,
    ) -> impl Future<Output = S3Result<()>> + Send;
    fn delete_replication(&self, bucket: &str) -> impl Future<Output = S3Result<()>> + Send;
    /// PutObject; returns the version id on a versioned bucket.
    fn put_object(
        &self,
        bucket: &str,
        key: &str,
        body: bytes::Bytes,
        options: &PutOptions,
    ) -> impl Future<Output = S3Result<WrittenVersion>> + Send;
    /// Uploads a local file (multipart above 16 MiB, aborted on failure); returns its ETag.
    fn upload_file(
        &self,
        bucket: &str,
        key: &str,
        path: &Path,
        content_type: &str,
    ) -> impl Future<Output = S3Result<String>> + Send;
    /// DeleteObjects of up to 1,000 `(key, version id)`: removes those versions for good.
    fn delete_versions(
        &self,
        bucket: &str,
        versions: &[(String, String)],
    ) -> impl Future<Output = S3Result<()>> + Send;
}
