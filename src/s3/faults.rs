//! A fault-injecting decorator for unit tests (behind the `testing` feature), in the manner of
//! mountpoint-s3-client's `FailureClient`: before or after the inner call, a schedule decides whether
//! the request fails, and how — the way a network and an overloaded S3 make requests fail.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::api::*;

/// How a request fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The request is applied and its answer lost (a reset after the server acted).
    DropAnswer,
    /// 500 InternalError without applying it (the client cannot tell which).
    ServerError,
    /// 503 SlowDown, not applied.
    SlowDown,
    /// The connection resets before the request is sent.
    Reset,
    /// 400 ExpiredToken: the credentials' session token ran out; not applied.
    ExpiredToken,
    /// A write applied and answered 200 without its version id (a server or proxy that strips
    /// `x-amz-version-id`, a broken answer read as an empty 200); on other requests, no fault.
    NoVersionId,
    /// A write that lands late: unanswered until the client gives up (`LATE_TIMEOUT`, a timeout), then
    /// applied `LATE_BY` after that (a queue in the server or on the path), within the bound a write's
    /// attempt may still land in; on other requests, no fault.
    LateApply,
}

/// How long a write attempt waits for an answer here (`S3Api::write_timeout`), and when a late write
/// lands after it was given up: within max(5 s, a tenth of the timeout), the bound the engine waits out.
pub const LATE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);
pub const LATE_BY: std::time::Duration = std::time::Duration::from_secs(3);

/// A write applied later, owning what it needs.
type Late = std::pin::Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Decides the fault of the `n`th (0-based) request of an operation, by operation name.
pub type Schedule = Box<dyn FnMut(&'static str, u64) -> Option<Fault> + Send>;

pub struct Faulty<C> {
    inner: C,
    schedule: Mutex<(Schedule, BTreeMap<&'static str, u64>)>,
    injected: Mutex<Vec<(&'static str, Fault)>>,
}

impl<C: S3Api> Faulty<C> {
    pub fn new(inner: C, schedule: Schedule) -> Faulty<C> {
        Faulty {
            inner,
            schedule: Mutex::new((schedule, BTreeMap::new())),
            injected: Mutex::new(Vec::new()),
        }
    }

    /// No faults: the same type as a faulty client, for the side that must not fail.
    pub fn none(inner: C) -> Faulty<C> {
        Faulty::new(inner, Box::new(|_, _| None))
    }

    /// Each request of the named operations fails with probability `rate`, the fault drawn uniformly,
    /// from a seeded RNG (a failing case replays exactly).
    pub fn random(
        inner: C,
        seed: u64,
        rate: f64,
        operations: &'static [&'static str],
    ) -> Faulty<C> {
        Faulty::new(inner, Self::random_schedule(seed, rate, operations))
    }

    /// The schedule of `random`.
    pub fn random_schedule(seed: u64, rate: f64, operations: &'static [&'static str]) -> Schedule {
        let mut rng = fastrand::Rng::with_seed(seed);
        Box::new(move |operation, _| {
            if !operations.contains(&operation) || rng.f64() >= rate {
                return None;
            }
            Some(
                [
                    Fault::DropAnswer,
                    Fault::ServerError,
                    Fault::SlowDown,
                    Fault::Reset,
                    Fault::LateApply,
                ][rng.usize(..5)],
            )
        })
    }

    /// The faults injected so far, in order.
    pub fn injected(&self) -> Vec<(&'static str, Fault)> {
        self.injected.lock().expect("injected").clone()
    }

    /// The fault the schedule gives the next request of `operation`, recorded when there is one.
    fn next_fault(&self, operation: &'static str) -> Option<Fault> {
        let fault = {
            let mut guard = self.schedule.lock().expect("schedule");
            let (schedule, counts) = &mut *guard;
            let n = counts.entry(operation).or_default();
            let fault = schedule(operation, *n);
            *n += 1;
            fault
        }?;
        self.injected
            .lock()
            .expect("injected")
            .push((operation, fault));
        Some(fault)
    }

    /// A write that makes a version: `NoVersionId` applies it and drops the version id; `LateApply`
    /// times out and applies `late` afterwards.
    async fn run_write(
        &self,
        operation: &'static str,
        call: impl Future<Output = S3Result<WrittenVersion>>,
        late: impl FnOnce() -> Late,
    ) -> S3Result<WrittenVersion> {
        match self.next_fault(operation) {
            Some(Fault::NoVersionId) => call.await.map(|_| None),
            Some(Fault::LateApply) => {
                drop(call);
                let apply = late();
                tokio::spawn(async move {
                    tokio::time::sleep(LATE_TIMEOUT + LATE_BY).await;
                    apply.await;
                });
                tokio::time::sleep(LATE_TIMEOUT).await;
                Err(S3Error::timed_out(LATE_TIMEOUT))
            }
            fault => self.apply(operation, fault, call).await,
        }
    }

    async fn run<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = S3Result<T>>,
    ) -> S3Result<T> {
        let fault = self.next_fault(operation);
        self.apply(operation, fault, call).await
    }

    async fn apply<T>(
        &self,
        operation: &'static str,
        fault: Option<Fault>,
        call: impl Future<Output = S3Result<T>>,
    ) -> S3Result<T> {
        let Some(fault) = fault else {
            return call.await;
        };
        match fault {
            Fault::NoVersionId => call.await,
            Fault::LateApply => call.await,
            Fault::DropAnswer => {
                let _ = call.await;
                Err(S3Error::Transient {
                    message: format!("{operation}: connection reset after sending (injected)"),
                    maybe_applied: true,
                })
            }
            Fault::ServerError => Err(S3Error::Transient {
                message: format!("{operation}: 500 InternalError (injected)"),
                maybe_applied: true,
            }),
            Fault::SlowDown => Err(S3Error::SlowDown {
                code: "SlowDown".into(),
                message: String::new(),
            }),
            Fault::Reset => Err(S3Error::Transient {
                message: format!("{operation}: connection reset before sending (injected)"),
                maybe_applied: false,
            }),
            Fault::ExpiredToken => Err(S3Error::BadCredentials {
                code: "ExpiredToken".into(),
                message: "The provided token has expired. (injected)".into(),
            }),
        }
    }
}

impl<C: S3Api + Clone> S3Api for Faulty<C> {
    fn write_timeout(&self, bytes: u64, multipart: bool) -> Option<std::time::Duration> {
        self.inner
            .write_timeout(bytes, multipart)
            .or(Some(LATE_TIMEOUT))
    }
    async fn list_versions(&self, request: ListRequest) -> S3Result<ListPage> {
        self.run("ListObjectVersions", self.inner.list_versions(request))
            .await
    }
    async fn head_object(
        &self,
        version: &VersionRef,
        part_number: Option<u32>,
    ) -> S3Result<ObjectHead> {
        self.run("HeadObject", self.inner.head_object(version, part_number))
            .await
    }
    async fn get_tags(&self, version: &VersionRef) -> S3Result<Vec<(String, String)>> {
        self.run("GetObjectTagging", self.inner.get_tags(version))
            .await
    }
    async fn copy_object(&self, request: &CopyRequest) -> S3Result<WrittenVersion> {
        let late = || -> Late {
            let (inner, request) = (self.inner.clone(), request.clone());
            Box::pin(async move {
                let _ = inner.copy_object(&request).await;
            })
        };
        self.run_write("CopyObject", self.inner.copy_object(request), late)
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
        let late = || -> Late {
            let inner = self.inner.clone();
            let (bucket, key, upload_id) =
                (bucket.to_string(), key.to_string(), upload_id.to_string());
            let parts = parts.to_vec();
            Box::pin(async move {
                let _ = inner
                    .complete_multipart(&bucket, &key, &upload_id, &parts)
                    .await;
            })
        };
        self.run_write(
            "CompleteMultipartUpload",
            self.inner.complete_multipart(bucket, key, upload_id, parts),
            late,
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
        let late = || -> Late {
            let (inner, bucket, key) = (self.inner.clone(), bucket.to_string(), key.to_string());
            Box::pin(async move {
                let _ = inner.delete_object(&bucket, &key).await;
            })
        };
        self.run_write("DeleteObject", self.inner.delete_object(bucket, key), late)
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
