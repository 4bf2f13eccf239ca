//! The S3 operations the engine uses, as one trait with plain parameter structs and semantic errors.
//! The aws-sdk-s3 implementation (`aws.rs`) and the decorators (`limit.rs`, `retry.rs`) sit behind it,
//! and unit tests use an in-memory fake.

use std::collections::BTreeMap;
use std::future::Future;

/// One entry of a key's history, as ListObjectVersions reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    /// The literal `null` for objects written before versioning was enabled.
    pub version_id: String,
    pub is_latest: bool,
    pub last_modified: String,
    pub kind: EntryKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    Object {
        size: u64,
        etag: String,
        storage_class: Option<String>,
    },
    DeleteMarker,
}

impl Entry {
    pub fn is_delete_marker(&self) -> bool {
        matches!(self.kind, EntryKind::DeleteMarker)
    }

    pub fn size(&self) -> u64 {
        match &self.kind {
            EntryKind::Object { size, .. } => *size,
            EntryKind::DeleteMarker => 0,
        }
    }
}

/// One page of ListObjectVersions, entries in the order the server sent them (newest first within a key).
#[derive(Debug, Clone, Default)]
pub struct ListPage {
    pub entries: Vec<Entry>,
    /// With a delimiter: the prefixes rolled up on this page, in order.
    pub common_prefixes: Vec<String>,
    /// `(key marker, version id marker)` to continue with, when the listing is truncated.
    pub next: Option<(String, String)>,
}

#[derive(Debug, Clone, Default)]
pub struct ListRequest {
    pub bucket: String,
    pub prefix: String,
    pub key_marker: Option<String>,
    pub version_id_marker: Option<String>,
    pub max_keys: Option<i32>,
    pub delimiter: Option<String>,
    /// The bucket has never been versioned: list with ListObjectsV2, which names the same (null)
    /// versions and costs the server less (its continuation token travels as `version_id_marker`).
    pub current_only: bool,
}

impl ListRequest {
    /// Points the request at the page after one whose `next` is given; false when there is none.
    /// `next` is the page's `(key marker, version id marker)`; an empty version marker is none (with
    /// `current_only`, the marker slot carries ListObjectsV2's continuation token).
    pub fn advance(&mut self, next: Option<(String, String)>) -> bool {
        let Some((key, version)) = next else {
            return false;
        };
        self.key_marker = Some(key);
        self.version_id_marker = Some(version).filter(|v| !v.is_empty());
        true
    }
}

/// A specific version of an object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionRef {
    pub bucket: String,
    pub key: String,
    /// Empty: the current version, without naming it (a never-versioned source, whose only version
    /// is the null one).
    pub version_id: String,
}

/// What HeadObject tells about one version: everything a multipart copy must carry over by hand.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObjectHead {
    pub size: u64,
    pub etag: String,
    pub parts_count: Option<u32>,
    /// With `part_number` asked for: the size of that part.
    pub part_size: Option<u64>,
    pub content_type: Option<String>,
    pub cache_control: Option<String>,
    pub content_disposition: Option<String>,
    pub content_encoding: Option<String>,
    pub content_language: Option<String>,
    pub expires: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub storage_class: Option<String>,
    pub website_redirect: Option<String>,
    pub server_side_encryption: Option<String>,
    pub sse_kms_key_id: Option<String>,
    /// SSE-KMS with an S3 Bucket Key (fewer KMS requests).
    pub bucket_key_enabled: bool,
    pub object_lock: LockSettings,
    /// The object's full-object checksum, `(algorithm, value)`, when it has one (a composite checksum
    /// of a multipart upload is left out: it never equals a single-part object's).
    pub checksum: Option<(String, String)>,
    /// The object is encrypted with a customer-provided key (SSE-C): its ETag is not an MD5.
    pub sse_customer: bool,
    /// The algorithm of the object's checksum, full-object or composite (CRC32, SHA256, ...).
    pub checksum_algorithm: Option<String>,
}

impl ObjectHead {
    /// Whether this object's ETag is the MD5 of its bytes, comparable with another copy's: not for a
    /// multipart upload (`-N`), SSE-KMS or SSE-C.
    pub fn etag_is_md5(&self) -> bool {
        !self.etag.contains('-')
            && !self.sse_customer
            && !self
                .server_side_encryption
                .as_deref()
                .is_some_and(|sse| sse.starts_with("aws:kms"))
    }
}

/// What a version's bytes hash to (`S3Api::content_digest`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentDigest {
    pub size: u64,
    pub sha256: [u8; 32],
}

/// A bucket's default encryption: what a copy written without encryption headers gets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DefaultEncryption {
    /// `AES256`, `aws:kms`, `aws:kms:dsse`.
    pub algorithm: String,
    pub kms_key_id: Option<String>,
    pub bucket_key_enabled: bool,
}

/// A customer-provided encryption key (SSE-C), as S3 wants it: base64 of the 32 bytes and of their MD5.
/// Its Debug output shows neither: it is never logged, reported or stored.
#[derive(Clone, PartialEq, Eq)]
pub struct CustomerKey {
    pub key_base64: String,
    pub md5_base64: String,
}

impl std::fmt::Debug for CustomerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CustomerKey(redacted)")
    }
}

impl CustomerKey {
    /// From the 32 bytes of an AES-256 key.
    pub fn new(key: &[u8]) -> Result<CustomerKey, String> {
        use md5::Digest;
        if key.len() != 32 {
            return Err(format!(
                "an SSE-C key is 32 bytes (AES-256), this one has {}",
                key.len()
            ));
        }
        Ok(CustomerKey {
            key_base64: aws_smithy_types::base64::encode(key),
            md5_base64: aws_smithy_types::base64::encode(md5::Md5::digest(key)),
        })
    }
}

/// Settings the user overrides on the destination.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteSettings {
    pub storage_class: Option<String>,
    pub sse_kms_key_id: Option<String>,
    /// Carry each version's Object Lock retention and legal hold (the source has Object Lock enabled).
    pub object_lock: bool,
    /// Carry each version's encryption on CopyObject (one HEAD per version): the destination has no
    /// default encryption, so a copy without encryption headers would land unencrypted.
    pub carry_encryption: bool,
    /// An SSE-C key for the source was given (`--source-sse-c-key`); the key itself stays in the client.
    pub source_customer_key: bool,
    /// Carry each version's website redirect on CopyObject (one HEAD per version): the source bucket
    /// serves a website, and CopyObject does not copy redirects.
    pub carry_website_redirect: bool,
}

#[derive(Debug, Clone, Default)]
pub struct CopyRequest {
    pub source: VersionRef,
    /// The source version's size (the request's timeout grows with it).
    pub size: u64,
    pub bucket: String,
    pub key: String,
    /// Storage class to set; CopyObject otherwise makes the copy STANDARD.
    pub storage_class: Option<String>,
    /// Encryption to ask for (`AES256`, `aws:kms`); None: the destination's default.
    pub server_side_encryption: Option<String>,
    /// The website redirect to set (CopyObject does not copy it).
    pub website_redirect: Option<String>,
    /// The KMS key of an `aws:kms` copy (the user's `--sse-kms-key-id`, else the source version's).
    pub sse_kms_key_id: Option<String>,
    /// Ask for an S3 Bucket Key on a KMS copy (the source version had one).
    pub bucket_key_enabled: Option<bool>,
    pub object_lock: LockSettings,
}

#[derive(Debug, Clone)]
pub struct CreateMultipartRequest {
    pub bucket: String,
    pub key: String,
    pub head: ObjectHead,
    pub tags: Vec<(String, String)>,
    pub settings: WriteSettings,
}

#[derive(Debug, Clone)]
pub struct PartCopyRequest {
    pub bucket: String,
    pub key: String,
    pub upload_id: String,
    pub part_number: u32,
    pub source: VersionRef,
    /// Inclusive byte range of the source.
    pub first_byte: u64,
    pub last_byte: u64,
    /// The source's ETag, sent as `x-amz-copy-source-if-match` so a changed source fails the copy.
    pub if_match: String,
}

#[derive(Debug, Clone)]
pub struct CompletedPart {
    pub part_number: u32,
    pub etag: String,
    /// `(algorithm, value)` of the part's checksum, when the upload was created with an algorithm
    /// (CompleteMultipartUpload then needs every part's).
    pub checksum: Option<(String, String)>,
    /// The part's size in bytes (not sent: CompleteMultipartUpload's timeout grows with the object).
    pub size: u64,
}

/// The version id a write created on the destination (None when the server did not say).
pub type WrittenVersion = Option<String>;

/// A bucket's Object Lock configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectLock {
    /// The default retention given to every new version, e.g. "GOVERNANCE for 30 days".
    pub default_retention: Option<String>,
}

/// A version's Object Lock settings, carried from the source to its copy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LockSettings {
    pub mode: Option<String>,
    /// RFC 3339.
    pub retain_until: Option<String>,
    pub legal_hold: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Versioning {
    Enabled,
    Suspended,
    Never,
}

/// Why an S3 call failed, in the terms the engine decides on.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum S3Error {
    #[error("bucket {bucket} does not exist")]
    NoSuchBucket { bucket: String },
    #[error("not found ({code}){}", detail(message))]
    NotFound { code: String, message: String },
    #[error("access denied ({code}: {message})")]
    AccessDenied { code: String, message: String },
    #[error("the credentials were rejected ({code}: {message})")]
    BadCredentials { code: String, message: String },
    #[error("the source changed during the copy ({code}){}", detail(message))]
    PreconditionFailed { code: String, message: String },
    #[error(
        "the object is archived and must be restored first ({code}){}",
        detail(message)
    )]
    InvalidObjectState { code: String, message: String },
    #[error("throttled by the server ({code}){}", detail(message))]
    SlowDown { code: String, message: String },
    /// A transient failure. `maybe_applied` is true when the request may have reached the server and been
    /// carried out (a 500, a reset or a timeout after sending): a write must then be reconciled, not retried blindly.
    #[error("{message}")]
    Transient {
        message: String,
        maybe_applied: bool,
    },
    /// An attempt given up after `after` without an answer: it may have been carried out, and may
    /// still be (a request queued in the server or on the path lands late).
    #[error("{message}")]
    TimedOut {
        message: String,
        after: std::time::Duration,
    },
    #[error("{code}: {message}")]
    Other { code: String, message: String },
    /// The run is stopping (SIGINT/SIGTERM): not a failure of the entry.
    #[error("interrupted")]
    Interrupted,
}

/// S3's message and request id after an error's code, when it sent them (a HEAD's error has no body).
fn detail(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(": {message}")
    }
}

impl S3Error {
    /// An attempt given up after `after` (`--request-timeout`, more for a large copy).
    pub fn timed_out(after: std::time::Duration) -> S3Error {
        S3Error::TimedOut {
            message: format!(
                "no answer within {} s (--request-timeout)",
                after.as_secs_f64()
            ),
            after,
        }
    }

    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            S3Error::SlowDown { .. } | S3Error::Transient { .. } | S3Error::TimedOut { .. }
        )
    }

    /// S3's error code, or a name for an error S3 did not send (a lost connection: `Transient`).
    pub fn code(&self) -> &str {
        match self {
            S3Error::NoSuchBucket { .. } => "NoSuchBucket",
            S3Error::NotFound { code, .. }
            | S3Error::AccessDenied { code, .. }
            | S3Error::BadCredentials { code, .. }
            | S3Error::PreconditionFailed { code, .. }
            | S3Error::InvalidObjectState { code, .. }
            | S3Error::SlowDown { code, .. }
            | S3Error::Other { code, .. } => code,
            S3Error::Transient { .. } => "Transient",
            S3Error::TimedOut { .. } => "Timeout",
            S3Error::Interrupted => "Interrupted",
        }
    }

    /// A write that failed this way may nonetheless have been applied.
    pub fn maybe_applied(&self) -> bool {
        matches!(
            self,
            S3Error::Transient {
                maybe_applied: true,
                ..
            } | S3Error::TimedOut { .. }
        )
    }
}

pub type S3Result<T> = Result<T, S3Error>;

/// The S3 seam. Every method is one request; retries and limits are decorators around it.
pub trait S3Api: Send + Sync + 'static {
    fn list_versions(
        &self,
        request: ListRequest,
    ) -> impl Future<Output = S3Result<ListPage>> + Send;
    fn head_object(
        &self,
        version: &VersionRef,
        part_number: Option<u32>,
    ) -> impl Future<Output = S3Result<ObjectHead>> + Send;
    fn get_tags(
        &self,
        version: &VersionRef,
    ) -> impl Future<Output = S3Result<Vec<(String, String)>>> + Send;
    fn copy_object(
        &self,
        request: &CopyRequest,
    ) -> impl Future<Output = S3Result<WrittenVersion>> + Send;
    fn create_multipart(
        &self,
        request: &CreateMultipartRequest,
    ) -> impl Future<Output = S3Result<String>> + Send;
    fn upload_part_copy(
        &self,
        request: &PartCopyRequest,
    ) -> impl Future<Output = S3Result<CompletedPart>> + Send;
    fn complete_multipart(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> impl Future<Output = S3Result<WrittenVersion>> + Send;
    fn abort_multipart(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> impl Future<Output = S3Result<()>> + Send;
    /// DeleteObject without a version id: on a versioned bucket it adds a delete marker.
    fn delete_object(
        &self,
        bucket: &str,
        key: &str,
    ) -> impl Future<Output = S3Result<WrittenVersion>> + Send;
    /// Ids of the multipart uploads in progress for exactly `key`.
    fn list_uploads(
        &self,
        bucket: &str,
        key: &str,
    ) -> impl Future<Output = S3Result<Vec<String>>> + Send;
    fn head_bucket(&self, bucket: &str) -> impl Future<Output = S3Result<()>> + Send;
    /// How long one attempt of the request that creates a version may take before it is given up:
    /// CopyObject of `bytes` (DeleteObject: 0), or with `multipart` the CompleteMultipartUpload. None
    /// where attempts are not timed (the in-memory S3).
    fn write_timeout(&self, bytes: u64, multipart: bool) -> Option<std::time::Duration> {
        let _ = (bytes, multipart);
        None
    }
    /// GetObject of one version, streamed through SHA-256 and dropped: its size and digest, for
    /// `--compare content` (never held in memory).
    fn content_digest(
        &self,
        version: &VersionRef,
    ) -> impl Future<Output = S3Result<ContentDigest>> + Send;
    /// GetObject of the current version into the file at `to` (created or truncated), streamed; returns
    /// its size. For reading inputs (inventory reports, manifests), never objects being copied.
    fn download(
        &self,
        bucket: &str,
        key: &str,
        to: &std::path::Path,
    ) -> impl Future<Output = S3Result<u64>> + Send;
    fn bucket_versioning(&self, bucket: &str) -> impl Future<Output = S3Result<Versioning>> + Send;
    /// The bucket's Object Lock configuration; None when Object Lock is not enabled on it.
    fn object_lock(
        &self,
        bucket: &str,
    ) -> impl Future<Output = S3Result<Option<ObjectLock>>> + Send;
    /// The bucket's default encryption; None when the bucket has none, and a copy without encryption
    /// headers lands unencrypted.
    fn default_encryption(
        &self,
        bucket: &str,
    ) -> impl Future<Output = S3Result<Option<DefaultEncryption>>> + Send;
    /// Whether the bucket serves a website (has a website configuration), where objects' website
    /// redirects matter.
    fn serves_website(&self, bucket: &str) -> impl Future<Output = S3Result<bool>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_single_part_unencrypted_or_sse_s3_etag_is_an_md5() {
        let plain = ObjectHead {
            etag: "\"9a0364b9e99bb480dd25e1f0284c8555\"".into(),
            ..ObjectHead::default()
        };
        assert!(plain.etag_is_md5());
        let sse_s3 = ObjectHead {
            server_side_encryption: Some("AES256".into()),
            ..plain.clone()
        };
        assert!(sse_s3.etag_is_md5());
        for not_md5 in [
            ObjectHead {
                etag: "\"9a0364b9e99bb480dd25e1f0284c8555-3\"".into(),
                ..plain.clone()
            },
            ObjectHead {
                server_side_encryption: Some("aws:kms".into()),
                ..plain.clone()
            },
            ObjectHead {
                server_side_encryption: Some("aws:kms:dsse".into()),
                ..plain.clone()
            },
            ObjectHead {
                sse_customer: true,
                ..plain.clone()
            },
        ] {
            assert!(!not_md5.etag_is_md5(), "{not_md5:?}");
        }
    }
}
