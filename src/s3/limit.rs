//! Request limits as a decorator around the seam: a cap on in-flight requests that adapts to throttling
//! (additive increase, multiplicative decrease on SlowDown), and an optional fixed requests-per-second
//! rate (governor). One `Limits` is shared by the source and destination clients.

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::Notify;

use super::api::*;
use crate::progress::Progress;

/// The AIMD window: how many requests may be in flight. Pure state, driven by the caller's clock.
#[derive(Debug, Clone)]
pub struct Aimd {
    limit: f64,
    max: f64,
    last_decrease: Option<Instant>,
}

impl Aimd {
    /// Several in-flight requests see the same burst of SlowDowns: one decrease per this interval.
    const COOLDOWN: Duration = Duration::from_millis(500);
    const DECREASE: f64 = 0.5;

    pub fn new(max: usize) -> Self {
        Aimd {
            limit: max as f64,
            max: max as f64,
            last_decrease: None,
        }
    }

    pub fn limit(&self) -> usize {
        self.limit.floor() as usize
    }

    pub fn on_throttle(&mut self, now: Instant) {
        if self
            .last_decrease
            .is_some_and(|last| now.duration_since(last) < Self::COOLDOWN)
        {
            return;
        }
        self.last_decrease = Some(now);
        self.limit = (self.limit * Self::DECREASE).max(1.0);
    }

    /// One more request in flight per window's worth of successes: slow, like TCP congestion avoidance.
    pub fn on_success(&mut self) {
        self.limit = (self.limit + 1.0 / self.limit).min(self.max);
    }
}

struct Window {
    aimd: Aimd,
    in_flight: usize,
}

pub struct Limits {
    window: Mutex<Window>,
    released: Notify,
    rate: Option<DefaultDirectRateLimiter>,
    progress: Arc<Progress>,
}

impl Limits {
    pub fn new(
        concurrency: usize,
        rate_limit: Option<NonZeroU32>,
        progress: Arc<Progress>,
    ) -> Arc<Self> {
        Arc::new(Limits {
            window: Mutex::new(Window {
                aimd: Aimd::new(concurrency.max(1)),
                in_flight: 0,
            }),
            released: Notify::new(),
            rate: rate_limit.map(|rps| RateLimiter::direct(Quota::per_second(rps))),
            progress,
        })
    }

    async fn acquire(self: &Arc<Self>) -> Slot {
        loop {
            {
                let mut window = self.window.lock().expect("limits lock");
                if window.in_flight < window.aimd.limit().max(1) {
                    window.in_flight += 1;
                    break;
                }
            }
            self.released.notified().await;
        }
        if let Some(rate) = &self.rate {
            rate.until_ready().await;
        }
        self.progress
            .in_flight
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Slot {
            limits: Arc::clone(self),
        }
    }

    fn observe<T>(&self, result: &S3Result<T>) {
        let mut window = self.window.lock().expect("limits lock");
        match result {
            Err(S3Error::SlowDown { .. }) => {
                window.aimd.on_throttle(Instant::now());
                let limit = window.aimd.limit();
                tracing::debug!(
                    window = limit,
                    "SlowDown: requests in flight limited to the window"
                );
                self.progress.throttled(limit);
            }
            Ok(_) => window.aimd.on_success(),
            Err(_) => {}
        }
    }

    pub fn current_limit(&self) -> usize {
        self.window.lock().expect("limits lock").aimd.limit()
    }
}

/// One in-flight request; frees its place when dropped (also when the request is cancelled).
struct Slot {
    limits: Arc<Limits>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.limits
            .progress
            .in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        self.limits.window.lock().expect("limits lock").in_flight -= 1;
        self.limits.released.notify_one();
    }
}

/// The seam with limits applied to every request.
pub struct Limited<C> {
    inner: C,
    limits: Arc<Limits>,
}

impl<C: S3Api> Limited<C> {
    pub fn new(inner: C, limits: Arc<Limits>) -> Self {
        Limited { inner, limits }
    }

    async fn run<T>(
        &self,
        operation: &'static str,
        request: impl Future<Output = S3Result<T>>,
    ) -> S3Result<T> {
        let _slot = self.limits.acquire().await;
        let started = Instant::now();
        let result = request.await;
        let took = started.elapsed();
        self.limits.progress.latency.record(took);
        let outcome = match &result {
            Ok(_) => "ok",
            Err(error) => error.code(),
        };
        self.limits
            .progress
            .requests
            .observe(operation, outcome, took.as_secs_f64());
        self.limits.observe(&result);
        result
    }
}

impl<C: S3Api> S3Api for Limited<C> {
    fn write_timeout(&self, bytes: u64, multipart: bool) -> Option<std::time::Duration> {
        self.inner.write_timeout(bytes, multipart)
    }
    async fn list_versions(&self, request: ListRequest) -> S3Result<ListPage> {
        self.run("ListObjectVersions", self.inner.list_versions(request))
            .await
    }
    async fn head_object(&self, version: &VersionRef, part: Option<u32>) -> S3Result<ObjectHead> {
        self.run("HeadObject", self.inner.head_object(version, part))
            .await
    }
    async fn get_tags(&self, version: &VersionRef) -> S3Result<Vec<(String, String)>> {
        self.run("GetObjectTagging", self.inner.get_tags(version))
            .await
    }
    async fn copy_object(&self, request: &CopyRequest) -> S3Result<WrittenVersion> {
        self.run("CopyObject", self.inner.copy_object(request))
            .await
    }
    async fn create_multipart(&self, request: &CreateMultipartRequest) -> S3Result<String> {
        self.run(
            "CreateMultipartUpload",
            self.inner.create_multipart(request),
        )
        .await
    }
    async fn upload_part_copy(&self, request: &PartCopyRequest) -> S3Result<CompletedPart> {
        self.run("UploadPartCopy", self.inner.upload_part_copy(request))
            .await
    }
    async fn complete_multipart(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> S3Result<WrittenVersion> {
        self.run(
            "CompleteMultipartUpload",
            self.inner.complete_multipart(bucket, key, upload_id, parts),
        )
        .await
    }
    async fn abort_multipart(&self, bucket: &str, key: &str, upload_id: &str) -> S3Result<()> {
        self.run(
            "AbortMultipartUpload",
            self.inner.abort_multipart(bucket, key, upload_id),
        )
        .await
    }
    async fn delete_object(&self, bucket: &str, key: &str) -> S3Result<WrittenVersion> {
        self.run("DeleteObject", self.inner.delete_object(bucket, key))
            .await
    }
    async fn list_uploads(&self, bucket: &str, key: &str) -> S3Result<Vec<String>> {
        self.run("ListMultipartUploads", self.inner.list_uploads(bucket, key))
            .await
    }
    async fn head_bucket(&self, bucket: &str) -> S3Result<()> {
        self.run("HeadBucket", self.inner.head_bucket(bucket)).await
    }
    async fn content_digest(&self, version: &VersionRef) -> S3Result<ContentDigest> {
        self.run("GetObject", self.inner.content_digest(version))
            .await
    }
    async fn download(&self, bucket: &str, key: &str, to: &std::path::Path) -> S3Result<u64> {
        self.run("GetObject", self.inner.download(bucket, key, to))
            .await
    }
    async fn bucket_versioning(&self, bucket: &str) -> S3Result<Versioning> {
        self.run("GetBucketVersioning", self.inner.bucket_versioning(bucket))
            .await
    }

    async fn object_lock(&self, bucket: &str) -> S3Result<Option<ObjectLock>> {
        self.run("GetObjectLockConfiguration", self.inner.object_lock(bucket))
            .await
    }
    async fn default_encryption(&self, bucket: &str) -> S3Result<Option<DefaultEncryption>> {
        self.run("GetBucketEncryption", self.inner.default_encryption(bucket))
            .await
    }
    async fn serves_website(&self, bucket: &str) -> S3Result<bool> {
        self.run("GetBucketWebsite", self.inner.serves_website(bucket))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slowdown_storm_halves_the_window_within_seconds_and_it_recovers_after() {
        let start = Instant::now();
        let mut aimd = Aimd::new(256);
        // 10 s of a 50% SlowDown storm at 200 answers per second.
        for tick in 0..2_000u64 {
            let now = start + Duration::from_millis(tick * 5);
            if tick % 2 == 0 {
                aimd.on_throttle(now);
            } else {
                aimd.on_success();
            }
            if tick == 400 {
                assert!(aimd.limit() <= 16, "after 2 s of storm: {}", aimd.limit());
            }
        }
        let low = aimd.limit();
        assert!(low <= 16, "a 16-fold reduction at least: {low}");
        // Then the storm ends: the window grows back, slowly.
        for _ in 0..200 {
            aimd.on_success();
        }
        let recovering = aimd.limit();
        assert!(recovering > low && recovering < 64, "{recovering}");
        for _ in 0..100_000 {
            aimd.on_success();
        }
        assert_eq!(aimd.limit(), 256);
    }

    #[test]
    fn one_burst_of_slowdowns_decreases_once() {
        let now = Instant::now();
        let mut aimd = Aimd::new(64);
        for _ in 0..50 {
            aimd.on_throttle(now);
        }
        assert_eq!(aimd.limit(), 32);
        aimd.on_throttle(now + Duration::from_millis(600));
        assert_eq!(aimd.limit(), 16);
    }
}
