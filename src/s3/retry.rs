//! Retries as a decorator around the seam, with decorrelated-jitter backoff.
//!
//! Reads and idempotent writes (part copies, aborts) are retried on any transient error. A write that
//! adds a version (CopyObject, DeleteObject, CompleteMultipartUpload) or an upload
//! (CreateMultipartUpload) is retried here only when the failure proves it was not applied (SlowDown,
//! RequestTimeout); when it may have been applied the error goes up to the engine, which looks at the
//! destination before deciding (see `replay.rs` and `multipart.rs`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::api::*;
use crate::progress::Progress;

/// Decorrelated jitter (as in AWS's "Exponential Backoff And Jitter"): each delay is drawn between the
/// base and three times the previous delay, capped. The RNG is injected so tests are deterministic.
#[derive(Debug)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    previous: Duration,
    rng: fastrand::Rng,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration, rng: fastrand::Rng) -> Self {
        Backoff {
            base,
            cap,
            previous: base,
            rng,
        }
    }

    pub fn next_delay(&mut self) -> Duration {
        let low = self.base.as_micros() as u64;
        let high = (self.previous.as_micros() as u64 * 3).max(low + 1);
        let delay = Duration::from_micros(self.rng.u64(low..high)).min(self.cap);
        self.previous = delay;
        delay
    }
}

#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base: Duration,
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 10,
            base: Duration::from_millis(50),
            cap: Duration::from_secs(20),
        }
    }
}

impl RetryPolicy {
    pub fn backoff(&self, seed: u64) -> Backoff {
        Backoff::new(self.base, self.cap, fastrand::Rng::with_seed(seed))
    }
}

pub struct Retrying<C> {
    inner: C,
    policy: RetryPolicy,
    progress: Arc<Progress>,
    seeds: Mutex<fastrand::Rng>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Safe to repeat whatever happened to the previous attempt.
    Idempotent,
    /// Adds a version: repeat only when the previous attempt surely did nothing.
    AddsVersion,
}

impl<C: S3Api> Retrying<C> {
    /// The decorated client.
    pub fn inner(&self) -> &C {
        &self.inner
    }

    pub fn new(inner: C, policy: RetryPolicy, progress: Arc<Progress>) -> Self {
        Retrying {
            inner,
            policy,
            progress,
            seeds: Mutex::new(fastrand::Rng::new()),
        }
    }

    /// Runs `attempt` until it succeeds or fails for good; `operation` and `subject` (bucket/key) name
    /// it in the log.
    async fn run<T, F, Fut>(
        &self,
        kind: Kind,
        (operation, subject): (&'static str, &str),
        mut attempt: F,
    ) -> S3Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = S3Result<T>>,
    {
        let seed = self.seeds.lock().expect("seed lock").u64(..);
        let mut backoff = self.policy.backoff(seed);
        let mut attempts = 1;
        loop {
            match attempt().await {
                Err(error)
                    if error.is_retryable()
                        && attempts < self.policy.max_attempts
                        && (kind == Kind::Idempotent || !error.maybe_applied()) =>
                {
                    let delay = backoff.next_delay();
                    tracing::debug!(
                        operation,
                        subject = ?subject,
                        attempt = attempts,
                        delay_ms = delay.as_millis() as u64,
                        error = %error,
                        "retrying"
                    );
                    attempts += 1;
                    self.progress.retried();
                    tokio::time::sleep(delay).await;
                }
                Err(error) if error.maybe_applied() && kind == Kind::AddsVersion => {
                    tracing::debug!(
                        operation,
                        subject = ?subject,
                        error = %error,
                        "outcome unknown: not retried blindly, the engine checks the destination"
                    );
                    return Err(error);
                }
                result => return result,
            }
        }
    }
}

impl<C: S3Api> S3Api for Retrying<C> {
    fn write_timeout(&self, bytes: u64, multipart: bool) -> Option<std::time::Duration> {
        self.inner.write_timeout(bytes, multipart)
    }
    async fn list_versions(&self, request: ListRequest) -> S3Result<ListPage> {
        self.run(
            Kind::Idempotent,
            ("ListObjectVersions", &request.bucket),
            || self.inner.list_versions(request.clone()),
        )
        .await
    }
    async fn head_object(&self, version: &VersionRef, part: Option<u32>) -> S3Result<ObjectHead> {
        self.run(Kind::Idempotent, ("HeadObject", &version.key), || {
            self.inner.head_object(version, part)
        })
        .await
    }
    async fn get_tags(&self, version: &VersionRef) -> S3Result<Vec<(String, String)>> {
        self.run(Kind::Idempotent, ("GetObjectTagging", &version.key), || {
            self.inner.get_tags(version)
        })
        .await
    }
    async fn copy_object(&self, request: &CopyRequest) -> S3Result<WrittenVersion> {
        self.run(Kind::AddsVersion, ("CopyObject", &request.key), || {
            self.inner.copy_object(request)
        })
        .await
    }
    // Not idempotent: each attempt that reaches the server creates an upload, and one whose answer is
    // lost is an upload nobody knows the id of. The engine cleans up before trying again.
    async fn create_multipart(&self, request: &CreateMultipartRequest) -> S3Result<String> {
        self.run(
            Kind::AddsVersion,
            ("CreateMultipartUpload", &request.key),
            || self.inner.create_multipart(request),
        )
        .await
    }
    async fn upload_part_copy(&self, request: &PartCopyRequest) -> S3Result<CompletedPart> {
        self.run(Kind::Idempotent, ("UploadPartCopy", &request.key), || {
            self.inner.upload_part_copy(request)
        })
        .await
    }
    async fn complete_multipart(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> S3Result<WrittenVersion> {
        self.run(Kind::AddsVersion, ("CompleteMultipartUpload", key), || {
            self.inner.complete_multipart(bucket, key, upload_id, parts)
        })
        .await
    }
    async fn abort_multipart(&self, bucket: &str, key: &str, upload_id: &str) -> S3Result<()> {
        self.run(Kind::Idempotent, ("AbortMultipartUpload", key), || {
            self.inner.abort_multipart(bucket, key, upload_id)
        })
        .await
    }
    async fn delete_object(&self, bucket: &str, key: &str) -> S3Result<WrittenVersion> {
        self.run(Kind::AddsVersion, ("DeleteObject", key), || {
            self.inner.delete_object(bucket, key)
        })
        .await
    }
    async fn list_uploads(&self, bucket: &str, key: &str) -> S3Result<Vec<String>> {
        self.run(Kind::Idempotent, ("ListMultipartUploads", key), || {
            self.inner.list_uploads(bucket, key)
        })
        .await
    }
    async fn head_bucket(&self, bucket: &str) -> S3Result<()> {
        self.run(Kind::Idempotent, ("HeadBucket", bucket), || {
            self.inner.head_bucket(bucket)
        })
        .await
    }
    async fn content_digest(&self, version: &VersionRef) -> S3Result<ContentDigest> {
        self.run(Kind::Idempotent, ("GetObject", &version.key), || {
            self.inner.content_digest(version)
        })
        .await
    }
    async fn download(&self, bucket: &str, key: &str, to: &std::path::Path) -> S3Result<u64> {
        self.run(Kind::Idempotent, ("GetObject", key), || {
            self.inner.download(bucket, key, to)
        })
        .await
    }
    async fn bucket_versioning(&self, bucket: &str) -> S3Result<Versioning> {
        self.run(Kind::Idempotent, ("GetBucketVersioning", bucket), || {
            self.inner.bucket_versioning(bucket)
        })
        .await
    }

    async fn object_lock(&self, bucket: &str) -> S3Result<Option<ObjectLock>> {
        self.run(
            Kind::Idempotent,
            ("GetObjectLockConfiguration", bucket),
            || self.inner.object_lock(bucket),
        )
        .await
    }
    async fn default_encryption(&self, bucket: &str) -> S3Result<Option<DefaultEncryption>> {
        self.run(Kind::Idempotent, ("GetBucketEncryption", bucket), || {
            self.inner.default_encryption(bucket)
        })
        .await
    }
    async fn serves_website(&self, bucket: &str) -> S3Result<bool> {
        self.run(Kind::Idempotent, ("GetBucketWebsite", bucket), || {
            self.inner.serves_website(bucket)
        })
        .await
    }
}

/// The configuration calls are idempotent (setting a state twice sets it once) except PutObject, which
/// adds a version.
impl<C: super::admin::S3Admin> super::admin::S3Admin for Retrying<C> {
    async fn bucket_exists(&self, bucket: &str) -> S3Result<bool> {
        self.run(Kind::Idempotent, ("HeadBucket", bucket), || {
            self.inner.bucket_exists(bucket)
        })
        .await
    }
    async fn create_bucket(
        &self,
        bucket: &str,
        region: Option<&str>,
    ) -> S3Result<super::admin::Created> {
        self.run(Kind::Idempotent, ("CreateBucket", bucket), || {
            self.inner.create_bucket(bucket, region)
        })
        .await
    }
    async fn put_versioning(&self, bucket: &str, enabled: bool) -> S3Result<()> {
        self.run(Kind::Idempotent, ("PutBucketVersioning", bucket), || {
            self.inner.put_versioning(bucket, enabled)
        })
        .await
    }
    async fn bucket_region(&self, bucket: &str) -> S3Result<String> {
        self.run(Kind::Idempotent, ("GetBucketLocation", bucket), || {
            self.inner.bucket_region(bucket)
        })
        .await
    }
    async fn replication(
        &self,
        bucket: &str,
    ) -> S3Result<Option<super::admin::ReplicationConfiguration>> {
        self.run(Kind::Idempotent, ("GetBucketReplication", bucket), || {
            self.inner.replication(bucket)
        })
        .await
    }
    async fn put_replication(
        &self,
        bucket: &str,
        configuration: &super::admin::ReplicationConfiguration,
    ) -> S3Result<()> {
        self.run(Kind::Idempotent, ("PutBucketReplication", bucket), || {
            self.inner.put_replication(bucket, configuration)
        })
        .await
    }
    async fn delete_replication(&self, bucket: &str) -> S3Result<()> {
        self.run(
            Kind::Idempotent,
            ("DeleteBucketReplication", bucket),
            || self.inner.delete_replication(bucket),
        )
        .await
    }
    async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        body: bytes::Bytes,
        options: &super::admin::PutOptions,
    ) -> S3Result<WrittenVersion> {
        self.run(Kind::AddsVersion, ("PutObject", key), || {
            self.inner.put_object(bucket, key, body.clone(), options)
        })
        .await
    }
    async fn upload_file(
        &self,
        bucket: &str,
        key: &str,
        path: &std::path::Path,
        content_type: &str,
    ) -> S3Result<String> {
        self.run(Kind::Idempotent, ("PutObject", key), || {
            self.inner.upload_file(bucket, key, path, content_type)
        })
        .await
    }
    async fn delete_versions(&self, bucket: &str, versions: &[(String, String)]) -> S3Result<()> {
        self.run(Kind::Idempotent, ("DeleteObjects", bucket), || {
            self.inner.delete_versions(bucket, versions)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_are_jittered_grow_and_stay_capped() {
        let policy = RetryPolicy::default();
        let delays: Vec<_> = {
            let mut backoff = policy.backoff(7);
            (0..30).map(|_| backoff.next_delay()).collect()
        };
        assert!(delays.iter().all(|d| *d >= policy.base && *d <= policy.cap));
        assert!(delays[20..].iter().any(|d| *d > Duration::from_secs(1)));
        // Same seed, same delays: a failing run can be replayed.
        let mut again = policy.backoff(7);
        assert_eq!(
            delays,
            (0..30).map(|_| again.next_delay()).collect::<Vec<_>>()
        );
        let mut other = policy.backoff(8);
        assert_ne!(
            delays,
            (0..30).map(|_| other.next_delay()).collect::<Vec<_>>()
        );
    }
}
