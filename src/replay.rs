//! The executor: replays each key's history into the destination, oldest entry first, one entry at a
//! time per key, many keys at once.
//!
//! A write that adds a version (CopyObject, DeleteObject, CompleteMultipartUpload) and fails in a way that
//! may nonetheless have been applied (a 500, a reset, a timeout) is never retried blindly: that would add a
//! duplicate version. We look at the destination key's newest entry first. It was our write when it is
//! of the kind and size we wrote and is newer than what the key held before (a version id we saw our
//! previous write create, or, for a key's first write, a LastModified no older than the attempt).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_smithy_types::DateTime;
use aws_smithy_types::date_time::Format;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::history::{KeyHistory, Selection, list_histories};
use crate::multipart::copy_multipart;
use crate::plan::{Action, PlanSettings};
use crate::progress::{Copied, Failure, Progress};
use crate::s3::{
    CopyRequest, Entry, ListRequest, S3Api, S3Error, S3Result, VersionRef, WriteSettings,
    WrittenVersion,
};

/// Everything a copy run needs besides the clients.
#[derive(Debug, Clone)]
pub struct CopyJob {
    pub selection: Selection,
    pub plan: PlanSettings,
    pub write: WriteSettings,
    pub concurrency: usize,
}

/// What the destination key held before our next write, as far as we know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DestinationHead {
    Unknown,
    Version(String),
}

/// What a write is expected to leave as the key's newest entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    Object { size: u64 },
    DeleteMarker,
}

/// How many times a write of unknown outcome is checked and tried again.
const UNKNOWN_OUTCOME_ATTEMPTS: u32 = 6;
/// Server clocks report whole seconds; allow that much plus some skew when comparing with our clock.
const CLOCK_ALLOWANCE: Duration = Duration::from_secs(2);

pub struct Executor<C> {
    pub source: Arc<C>,
    pub destination: Arc<C>,
    pub job: CopyJob,
    pub progress: Arc<Progress>,
}

impl<C: S3Api> Executor<C> {
    /// Lists the source and replays every selected history. Per-entry failures are recorded in the
    /// progress and do not stop the run; a failed listing does.
    pub async fn run(self: Arc<Self>) -> S3Result<()> {
        let mut histories = list_histories(
            Arc::clone(&self.source),
            self.job.selection.mapping.source.bucket.clone(),
            self.job.selection.clone(),
            Arc::clone(&self.progress),
        );
        let slots = Arc::new(Semaphore::new(self.job.concurrency.max(1)));
        let mut running = JoinSet::new();
        while let Some(history) = histories.recv().await {
            let history = history?;
            let slot = Arc::clone(&slots)
                .acquire_owned()
                .await
                .expect("never closed");
            let executor = Arc::clone(&self);
            running.spawn(async move {
                executor.replay_key(history).await;
                drop(slot);
            });
            while let Some(finished) = running.try_join_next() {
                finished.expect("replay task panicked");
            }
        }
        while let Some(finished) = running.join_next().await {
            finished.expect("replay task panicked");
        }
        Ok(())
    }

    async fn replay_key(&self, history: KeyHistory) {
        let destination_key = self.job.selection.mapping.destination_key(&history.key);
        let mut head = DestinationHead::Unknown;
        for (index, entry) in history.entries.iter().enumerate() {
            if let Err(error) = self.replay_entry(entry, &destination_key, &mut head).await {
                // Later entries of this key would land out of order: stop the key here.
                let later = (history.entries.len() - index - 1) as u64;
                self.progress.failed(
                    Failure {
                        bucket: self.job.selection.mapping.source.bucket.clone(),
                        key: entry.key.clone(),
                        version_id: entry.version_id.clone(),
                        reason: error.to_string(),
                    },
                    later,
                );
                return;
            }
        }
    }

    async fn replay_entry(
        &self,
        entry: &Entry,
        destination_key: &str,
        head: &mut DestinationHead,
    ) -> S3Result<()> {
        let bucket = self.job.selection.mapping.destination.bucket.as_str();
        let source = VersionRef {
            bucket: self.job.selection.mapping.source.bucket.clone(),
            key: entry.key.clone(),
            version_id: entry.version_id.clone(),
        };
        let size = entry.size();
        match self.job.plan.action(entry) {
            Action::DeleteMarker => {
                self.write(
                    bucket,
                    destination_key,
                    Expected::DeleteMarker,
                    head,
                    || self.destination.delete_object(bucket, destination_key),
                )
                .await?;
                self.progress.copied(Copied::DeleteMarker);
            }
            Action::Copy => {
                let storage_class = match &entry.kind {
                    crate::s3::EntryKind::Object { storage_class, .. } => storage_class.clone(),
                    crate::s3::EntryKind::DeleteMarker => None,
                };
                let request = CopyRequest {
                    source,
                    bucket: bucket.to_string(),
                    key: destination_key.to_string(),
                    // CopyObject makes the copy STANDARD unless told: keep the source's class.
                    storage_class: self
                        .job
                        .write
                        .storage_class
                        .clone()
                        .or(storage_class.filter(|c| c != "STANDARD")),
                    sse_kms_key_id: self.job.write.sse_kms_key_id.clone(),
                };
                self.write(
                    bucket,
                    destination_key,
                    Expected::Object { size },
                    head,
                    || self.destination.copy_object(&request),
                )
                .await?;
                self.progress.copied(Copied::Single { bytes: size });
            }
            Action::Multipart => {
                copy_multipart(self, &source, size, destination_key, head).await?;
                self.progress.copied(Copied::Multipart { bytes: size });
            }
        }
        Ok(())
    }

    /// Runs a write that adds a version, reconciling with the destination when its outcome is unknown.
    pub(crate) async fn write<F, Fut>(
        &self,
        bucket: &str,
        key: &str,
        expected: Expected,
        head: &mut DestinationHead,
        mut attempt: F,
    ) -> S3Result<()>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = S3Result<WrittenVersion>>,
    {
        let mut backoff = crate::s3::retry::RetryPolicy::default().backoff(fastrand::u64(..));
        let mut uncertain = false;
        for _ in 0..UNKNOWN_OUTCOME_ATTEMPTS {
            let started = SystemTime::now();
            let error = match attempt().await {
                Ok(version) => {
                    *head = version.map_or(DestinationHead::Unknown, DestinationHead::Version);
                    return Ok(());
                }
                Err(error) => error,
            };
            // After an attempt of unknown outcome, "not found" (NoSuchUpload) can mean it was applied.
            let check =
                error.maybe_applied() || (uncertain && matches!(error, S3Error::NotFound { .. }));
            if !check {
                return Err(error);
            }
            uncertain = true;
            self.progress.retried();
            if let Some(newest) = newest_entry(&*self.destination, bucket, key).await?
                && was_applied(&newest, head, expected, started)
            {
                *head = DestinationHead::Version(newest.version_id);
                self.progress.reconciled();
                return Ok(());
            }
            tokio::time::sleep(backoff.next_delay()).await;
        }
        Err(S3Error::Transient {
            message: format!(
                "gave up after {UNKNOWN_OUTCOME_ATTEMPTS} attempts whose outcome was unknown"
            ),
            maybe_applied: false,
        })
    }
}

/// The newest entry of exactly `key` on the destination, by one cheap listing.
async fn newest_entry<C: S3Api>(client: &C, bucket: &str, key: &str) -> S3Result<Option<Entry>> {
    // Keys sort before every longer key they prefix, so the first entry is `key`'s newest if it exists.
    let page = client
        .list_versions(ListRequest {
            bucket: bucket.to_string(),
            prefix: key.to_string(),
            max_keys: Some(1),
            ..ListRequest::default()
        })
        .await?;
    Ok(page.entries.into_iter().next().filter(|e| e.key == key))
}

/// Decides whether the destination's newest entry is the write we attempted at `started`.
pub fn was_applied(
    newest: &Entry,
    head: &DestinationHead,
    expected: Expected,
    started: SystemTime,
) -> bool {
    let same_kind = match expected {
        Expected::DeleteMarker => newest.is_delete_marker(),
        Expected::Object { size } => !newest.is_delete_marker() && newest.size() == size,
    };
    if !same_kind {
        return false;
    }
    match head {
        DestinationHead::Version(previous) => &newest.version_id != previous,
        DestinationHead::Unknown => DateTime::from_str(&newest.last_modified, Format::DateTime)
            .ok()
            .and_then(|modified| SystemTime::try_from(modified).ok())
            .is_some_and(|modified| modified + CLOCK_ALLOWANCE >= started),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::s3::EntryKind;

    fn newest(id: &str, marker: bool, size: u64, modified: &str) -> Entry {
        Entry {
            key: "k".into(),
            version_id: id.into(),
            is_latest: true,
            last_modified: modified.into(),
            kind: if marker {
                EntryKind::DeleteMarker
            } else {
                EntryKind::Object {
                    size,
                    etag: String::new(),
                    storage_class: None,
                }
            },
        }
    }

    #[test]
    fn a_new_version_after_a_known_head_is_ours() {
        let head = DestinationHead::Version("v1".into());
        let now = SystemTime::now();
        let old = "2001-01-01T00:00:00Z";
        assert!(was_applied(
            &newest("v2", false, 5, old),
            &head,
            Expected::Object { size: 5 },
            now
        ));
        assert!(!was_applied(
            &newest("v1", false, 5, old),
            &head,
            Expected::Object { size: 5 },
            now
        ));
        assert!(!was_applied(
            &newest("v2", false, 6, old),
            &head,
            Expected::Object { size: 5 },
            now
        ));
        assert!(!was_applied(
            &newest("v2", true, 0, old),
            &head,
            Expected::Object { size: 0 },
            now
        ));
        assert!(was_applied(
            &newest("v2", true, 0, old),
            &head,
            Expected::DeleteMarker,
            now
        ));
    }

    #[test]
    fn without_a_known_head_the_entry_must_be_as_new_as_the_attempt() {
        let started = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let same_second = "2023-11-14T22:13:20Z"; // 1_700_000_000
        let a_minute_before = "2023-11-14T22:12:20Z";
        let with_millis = "2023-11-14T22:13:19.500Z";
        let expected = Expected::Object { size: 1 };
        let unknown = DestinationHead::Unknown;
        assert!(was_applied(
            &newest("x", false, 1, same_second),
            &unknown,
            expected,
            started
        ));
        assert!(was_applied(
            &newest("x", false, 1, with_millis),
            &unknown,
            expected,
            started
        ));
        assert!(!was_applied(
            &newest("x", false, 1, a_minute_before),
            &unknown,
            expected,
            started
        ));
        assert!(!was_applied(
            &newest("x", false, 1, "garbage"),
            &unknown,
            expected,
            started
        ));
    }
}
