//! The executor: replays each key's history into the destination, oldest entry first, one entry at a
//! time per key, many keys at once, recording progress in the checkpoint (see `checkpoint` for the design).
//!
//! A write that adds a version (CopyObject, DeleteObject, CompleteMultipartUpload) and fails in a way that
//! may nonetheless have been applied (a 500, a reset, a timeout) is never retried blindly: that would add a
//! duplicate version. We look at the destination key first (`was_applied`), exactly as a resumed run does
//! for an entry whose intent was recorded but whose completion was not.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, Semaphore, mpsc};
use tokio::task::JoinSet;

use crate::checkpoint::{FailedEntry, Journal, KeyState, Record};
use crate::history::{KeyHistory, Selection, list_histories_with, list_key};
use crate::multipart::copy_multipart;
use crate::plan::{Action, PlanSettings};
use crate::progress::{Copied, Failure, Progress};
use crate::s3::{
    CopyRequest, Entry, EntryKind, ListRequest, LockSettings, S3Api, S3Error, S3Result, VersionRef,
    WriteSettings, WrittenVersion,
};

/// Everything a copy run needs besides the clients.
#[derive(Debug, Clone)]
pub struct CopyJob {
    pub selection: Selection,
    pub plan: PlanSettings,
    pub write: WriteSettings,
    pub concurrency: usize,
    /// The entries come from an inventory or manifest, which can name versions the source has lost
    /// since: such an entry fails alone and the key goes on (a listing never names one, so there a
    /// missing version means the source changed under the copy and the key stops).
    pub tolerate_missing_source: bool,
    /// Sub-prefixes listed at once (see `history::list_histories_with`).
    pub listers: usize,
}

/// What the destination key held before our next write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DestinationHead {
    /// Nothing: this is the key's first write (the destination range holds only what this job writes).
    Empty,
    /// The version our previous write of this key created.
    Version(String),
    /// Our previous write got no version id (an unversioned destination, where repeating a write is harmless).
    Unversioned,
}

impl DestinationHead {
    fn after(written: WrittenVersion) -> Self {
        written.map_or(DestinationHead::Unversioned, DestinationHead::Version)
    }

    fn version(&self) -> Option<String> {
        match self {
            DestinationHead::Version(id) => Some(id.clone()),
            _ => None,
        }
    }
}

/// What a write is expected to leave as the key's newest entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    Object { size: u64 },
    DeleteMarker,
}

impl Expected {
    fn of(entry: &Entry) -> Self {
        match entry.kind {
            EntryKind::DeleteMarker => Expected::DeleteMarker,
            EntryKind::Object { size, .. } => Expected::Object { size },
        }
    }
}

/// How many times a write of unknown outcome is checked and tried again.
const UNKNOWN_OUTCOME_ATTEMPTS: u32 = 6;

/// Set on SIGINT/SIGTERM: no new keys or entries start; in-flight multipart uploads are aborted.
#[derive(Debug, Default)]
pub struct Stop {
    stopping: AtomicBool,
    notify: Notify,
}

impl Stop {
    pub fn trigger(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    pub fn is_set(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    pub async fn wait(&self) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_set() {
                return;
            }
            notified.await;
        }
    }
}

/// The checkpoint as the executor uses it: the journal, whose state tells where each key resumes.
pub struct Checkpoint {
    pub journal: Journal,
    pub retry_failed: bool,
    /// Reconcile no pending write before this moment: a request the interrupted run sent just before it
    /// died can still be applied by the server afterwards, and a destination checked too early would not
    /// show it yet (the write would then be repeated, and the late one would land as a duplicate).
    pub settle_until: Option<tokio::time::Instant>,
}

/// Keys in dispatch (listing) order; the front ones that are finished advance the watermark. It is
/// recorded every `WATERMARK_EVERY` keys or second (an older watermark is only more conservative).
#[derive(Default)]
struct Watermark {
    keys: VecDeque<(String, bool)>,
    unrecorded: Option<String>,
    moved: usize,
    recorded_at: Option<std::time::Instant>,
}

const WATERMARK_EVERY: usize = 256;

impl Watermark {
    fn dispatched(&mut self, key: &str) {
        self.keys.push_back((key.to_string(), false));
    }

    /// Marks `key` finished; returns the watermark to record, if it moved and is due.
    fn finished(&mut self, key: &str) -> Option<String> {
        if let Some(slot) = self.keys.iter_mut().find(|(k, _)| k == key) {
            slot.1 = true;
        }
        while self.keys.front().is_some_and(|(_, done)| *done) {
            self.unrecorded = self.keys.pop_front().map(|(k, _)| k);
            self.moved += 1;
        }
        let due = self.moved >= WATERMARK_EVERY
            || self
                .recorded_at
                .is_none_or(|at| at.elapsed() >= std::time::Duration::from_secs(1));
        if due && self.unrecorded.is_some() {
            self.moved = 0;
            self.recorded_at = Some(std::time::Instant::now());
            return self.unrecorded.take();
        }
        None
    }

    /// The latest watermark not yet recorded, to record now.
    fn take_unrecorded(&mut self) -> Option<String> {
        self.moved = 0;
        self.recorded_at = Some(std::time::Instant::now());
        self.unrecorded.take()
    }
}

pub struct Executor<C> {
    pub source: Arc<C>,
    pub destination: Arc<C>,
    pub job: CopyJob,
    pub progress: Arc<Progress>,
    pub checkpoint: Option<Checkpoint>,
    pub stop: Arc<Stop>,
}

impl<C: S3Api> Executor<C> {
    fn record(&self, record: Record) {
        if let Some(checkpoint) = &self.checkpoint {
            checkpoint.journal.append(record);
        }
    }

    async fn record_durable(&self, record: Record) {
        if let Some(checkpoint) = &self.checkpoint {
            checkpoint.journal.append_durable(record).await;
        }
    }

    fn destination_bucket(&self) -> &str {
        &self.job.selection.mapping.destination.bucket
    }

    /// Lists the source and replays every selected history. Per-entry failures are recorded in the
    /// progress and do not stop the run; a failed listing does.
    ///
    /// `input` replaces the listing with histories read from an inventory or manifest (in key order,
    /// failed keys to retry included).
    pub async fn run(
        self: Arc<Self>,
        input: Option<mpsc::Receiver<S3Result<KeyHistory>>>,
    ) -> S3Result<()> {
        self.abort_recorded_uploads().await;
        let slots = Arc::new(Semaphore::new(self.job.concurrency.max(1)));
        let mut running = JoinSet::new();
        // Failed keys the watermark has passed are retried first, each listed on its own.
        let retry = if input.is_some() {
            Vec::new()
        } else {
            self.failed_keys_to_retry()
        };
        for key in retry {
            if self.stop.is_set() {
                break;
            }
            let bucket = &self.job.selection.mapping.source.bucket;
            if let Some(history) =
                list_key(&*self.source, bucket, &key, &self.job.selection).await?
            {
                self.progress.listed(
                    history.entries.len() as u64,
                    history.entries.iter().map(Entry::size).sum(),
                );
                self.dispatch(history, &mut running, &slots, None).await;
            }
        }
        let watermark = Arc::new(Mutex::new(Watermark::default()));
        let mut histories = match input {
            Some(histories) => histories,
            None => list_histories_with(
                Arc::clone(&self.source),
                self.job.selection.mapping.source.bucket.clone(),
                self.job.selection.clone(),
                Arc::clone(&self.progress),
                self.checkpoint
                    .as_ref()
                    .and_then(|c| c.journal.state().watermark.clone()),
                self.job.listers,
            ),
        };
        while let Some(history) = histories.recv().await {
            if self.stop.is_set() {
                break;
            }
            self.dispatch(history?, &mut running, &slots, Some(Arc::clone(&watermark)))
                .await;
            while let Some(finished) = running.try_join_next() {
                finished.expect("replay task panicked");
            }
        }
        while let Some(finished) = running.join_next().await {
            finished.expect("replay task panicked");
        }
        if let Some(key) = watermark.lock().expect("watermark lock").take_unrecorded() {
            self.record(Record::Watermark { key });
        }
        Ok(())
    }

    /// Starts replaying a key once one of the `concurrency` key slots is free.
    async fn dispatch(
        self: &Arc<Self>,
        history: KeyHistory,
        running: &mut JoinSet<()>,
        slots: &Arc<Semaphore>,
        watermark: Option<Arc<Mutex<Watermark>>>,
    ) {
        let slot = Arc::clone(slots)
            .acquire_owned()
            .await
            .expect("never closed");
        if let Some(watermark) = &watermark {
            watermark
                .lock()
                .expect("watermark lock")
                .dispatched(&history.key);
        }
        let executor = Arc::clone(self);
        running.spawn(async move {
            let key = history.key.clone();
            let finished = executor.replay_key(history).await;
            if let Some(watermark) = watermark
                && finished
                && let Some(key) = watermark.lock().expect("watermark lock").finished(&key)
            {
                executor.record(Record::Watermark { key });
            }
            drop(slot);
        });
    }

    fn failed_keys_to_retry(&self) -> Vec<String> {
        match &self.checkpoint {
            Some(checkpoint) if checkpoint.retry_failed => {
                let state = checkpoint.journal.state();
                state
                    .failed
                    .keys()
                    .filter(|key| state.below_watermark(key))
                    .cloned()
                    .collect()
            }
            _ => Vec::new(),
        }
    }

    /// Uploads an earlier run created and did not finish are aborted: nothing is left to bill.
    async fn abort_recorded_uploads(&self) {
        let Some(checkpoint) = &self.checkpoint else {
            return;
        };
        let uploads: Vec<_> = checkpoint
            .journal
            .state()
            .uploads
            .clone()
            .into_iter()
            .collect();
        for (upload_id, key) in &uploads {
            let bucket = self.destination_bucket();
            match self
                .destination
                .abort_multipart(bucket, key, upload_id)
                .await
            {
                Ok(()) | Err(S3Error::NotFound { .. }) => self.record(Record::UploadEnded {
                    upload_id: upload_id.clone(),
                }),
                Err(error) => eprintln!(
                    "warning: failed to abort multipart upload {upload_id} of s3://{bucket}/{key}: {error}"
                ),
            }
        }
    }

    /// Replays one key; returns false when the run stopped before the key was finished.
    async fn replay_key(&self, history: KeyHistory) -> bool {
        let destination_key = self.job.selection.mapping.destination_key(&history.key);
        let fail = |index: usize, error: S3Error| {
            let entry = &history.entries[index];
            let reason = failure_reason(&error, &self.job.selection.mapping.source.bucket, entry);
            self.record(Record::Failed {
                key: history.key.clone(),
                index: index as u32,
                version_id: entry.version_id.clone(),
                reason: reason.clone(),
            });
            // Later entries of this key would land out of order: the key stops here.
            self.progress.failed(
                Failure {
                    bucket: self.job.selection.mapping.source.bucket.clone(),
                    key: entry.key.clone(),
                    version_id: entry.version_id.clone(),
                    reason,
                },
                (history.entries.len() - index - 1) as u64,
            );
        };
        let (start, mut head) = match self.resume_point(&history, &destination_key).await {
            Ok(point) => point,
            Err((index, error)) => {
                fail(index, error);
                return true;
            }
        };
        self.progress.resumed(start as u64);
        for (index, entry) in history.entries.iter().enumerate().skip(start) {
            if self.stop.is_set() {
                return false;
            }
            self.record_durable(Record::Intent {
                key: history.key.clone(),
                index: index as u32,
                version_id: entry.version_id.clone(),
                previous: head.version(),
            })
            .await;
            match self.replay_entry(entry, &destination_key, &mut head).await {
                Ok(()) => self.record(Record::Done {
                    key: history.key.clone(),
                    index: index as u32,
                    written: head.version(),
                    last: index + 1 == history.entries.len(),
                }),
                Err(S3Error::Interrupted) => return false,
                Err(S3Error::NotFound { code })
                    if self.job.tolerate_missing_source && code != "NoSuchUpload" =>
                {
                    // Nothing was written: the destination's head stays where it was.
                    self.progress.failed(
                        Failure {
                            bucket: self.job.selection.mapping.source.bucket.clone(),
                            key: entry.key.clone(),
                            version_id: entry.version_id.clone(),
                            reason: format!(
                                "not in the source ({code}): deleted since the inventory or manifest was made; \
                                 the key's other versions were copied"
                            ),
                        },
                        0,
                    );
                    // With nothing written yet the next intent's "no previous version" says it all.
                    if head != DestinationHead::Empty {
                        self.record(Record::Done {
                            key: history.key.clone(),
                            index: index as u32,
                            written: head.version(),
                            last: index + 1 == history.entries.len(),
                        });
                    }
                }
                Err(error) => {
                    fail(index, error);
                    return true;
                }
            }
        }
        if start == history.entries.len() {
            // Nothing was left to write (finished earlier, or its last entry just reconciled).
            self.record(Record::KeyDone {
                key: history.key.clone(),
            });
        }
        true
    }

    /// Where to start replaying `history`: after what the checkpoint proves written, reconciling an entry
    /// that was pending (or failed) when the last run ended.
    async fn resume_point(
        &self,
        history: &KeyHistory,
        destination_key: &str,
    ) -> Result<(usize, DestinationHead), (usize, S3Error)> {
        let Some(checkpoint) = &self.checkpoint else {
            return Ok((0, DestinationHead::Empty));
        };
        let (failed, known) = {
            let state = checkpoint.journal.state();
            (
                state.failed.get(&history.key).cloned(),
                state.keys.get(&history.key).cloned(),
            )
        };
        if failed.is_some() && !checkpoint.retry_failed {
            return Ok((history.entries.len(), DestinationHead::Unversioned));
        }
        let pending = match known {
            None => failed.map(
                |FailedEntry {
                     index, version_id, ..
                 }| (index, version_id, None),
            ),
            Some(KeyState::Complete) => {
                return Ok((history.entries.len(), DestinationHead::Unversioned));
            }
            Some(KeyState::Written { index, written }) => {
                return Ok((index as usize + 1, DestinationHead::after(written)));
            }
            Some(KeyState::Pending {
                index,
                version_id,
                previous,
            }) => Some((index, version_id, previous)),
        };
        let Some((index, version_id, previous)) = pending else {
            return Ok((0, DestinationHead::Empty));
        };
        let index = index as usize;
        // No previous version: nothing of this key was written before this entry (on the versioned
        // destination every multi-entry history needs, each write creates a version id; a latest-only
        // copy to an unversioned bucket has one entry per key).
        let head = match previous {
            Some(version) => DestinationHead::Version(version),
            None => DestinationHead::Empty,
        };
        let Some(entry) = history
            .entries
            .get(index)
            .filter(|e| e.version_id == version_id)
        else {
            return Err((
                index.min(history.entries.len().saturating_sub(1)),
                S3Error::Other {
                    code: "SourceChanged".into(),
                    message: format!(
                        "the checkpoint's entry {} of this key (version {version_id}) is no longer there in the \
                         source; inspect the key and rerun with --restart",
                        index + 1
                    ),
                },
            ));
        };
        if let Some(until) = checkpoint.settle_until
            && tokio::time::Instant::now() < until
        {
            tokio::time::sleep_until(until).await;
        }
        self.abort_uploads_of(destination_key).await;
        match self
            .applied(destination_key, Expected::of(entry), &head)
            .await
            .map_err(|e| (index, e))?
        {
            Some(written) => {
                self.record(Record::Done {
                    key: history.key.clone(),
                    index: index as u32,
                    written: Some(written.clone()),
                    last: index + 1 == history.entries.len(),
                });
                self.progress.reconciled();
                Ok((index + 1, DestinationHead::Version(written)))
            }
            None => Ok((index, head)),
        }
    }

    /// A crash between CreateMultipartUpload and its record leaves an upload only the destination knows.
    async fn abort_uploads_of(&self, destination_key: &str) {
        let bucket = self.destination_bucket();
        if let Ok(uploads) = self.destination.list_uploads(bucket, destination_key).await {
            for upload_id in uploads {
                let _ = self
                    .destination
                    .abort_multipart(bucket, destination_key, &upload_id)
                    .await;
            }
        }
    }

    async fn replay_entry(
        &self,
        entry: &Entry,
        destination_key: &str,
        head: &mut DestinationHead,
    ) -> S3Result<()> {
        let bucket = self.destination_bucket();
        let unnamed = self.job.selection.source_unversioned && entry.version_id == "null";
        let source = VersionRef {
            bucket: self.job.selection.mapping.source.bucket.clone(),
            key: entry.key.clone(),
            version_id: if unnamed {
                String::new()
            } else {
                entry.version_id.clone()
            },
        };
        let size = entry.size();
        match self.job.plan.action(entry) {
            Action::DeleteMarker => {
                self.write(destination_key, Expected::DeleteMarker, head, || {
                    self.destination.delete_object(bucket, destination_key)
                })
                .await?;
                self.progress.copied(Copied::DeleteMarker);
            }
            Action::Copy => {
                let storage_class = match &entry.kind {
                    EntryKind::Object { storage_class, .. } => storage_class.clone(),
                    EntryKind::DeleteMarker => None,
                };
                // CopyObject does not carry retention or a legal hold: read them from the version
                // (one HEAD, only when the source has Object Lock) and set them on the copy.
                let object_lock = if self.job.write.object_lock {
                    self.source.head_object(&source, None).await?.object_lock
                } else {
                    LockSettings::default()
                };
                let request = CopyRequest {
                    object_lock,
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
                self.write(destination_key, Expected::Object { size }, head, || {
                    self.destination.copy_object(&request)
                })
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

    pub(crate) fn upload_started(&self, destination_key: &str, upload_id: &str) {
        self.record(Record::UploadStarted {
            key: destination_key.to_string(),
            upload_id: upload_id.to_string(),
        });
    }

    pub(crate) fn upload_ended(&self, upload_id: &str) {
        self.record(Record::UploadEnded {
            upload_id: upload_id.to_string(),
        });
    }

    /// Runs a write that adds a version, reconciling with the destination when its outcome is unknown.
    pub(crate) async fn write<F, Fut>(
        &self,
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
            let error = match attempt().await {
                Ok(version) => {
                    *head = DestinationHead::after(version);
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
            if let Some(written) = self.applied(key, expected, head).await? {
                *head = DestinationHead::Version(written);
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

    /// The destination version our write created, if the destination shows it was applied.
    async fn applied(
        &self,
        key: &str,
        expected: Expected,
        head: &DestinationHead,
    ) -> S3Result<Option<String>> {
        let newest = newest_entries(&*self.destination, self.destination_bucket(), key).await?;
        Ok(was_applied(&newest, head, expected).then(|| newest[0].version_id.clone()))
    }
}

/// What the report says about a failed entry: the error, and the fix when there is one to give.
fn failure_reason(error: &S3Error, bucket: &str, entry: &Entry) -> String {
    match error {
        S3Error::InvalidObjectState { .. } => format!(
            "{error}: restore it (`aws s3api restore-object --bucket {bucket} --key {} --version-id {} \
             --restore-request Days=7`), then rerun the same command: the checkpoint retries this key",
            crate::error::shell_quoted(&entry.key),
            entry.version_id
        ),
        other => other.to_string(),
    }
}

/// The two newest entries of exactly `key` on the destination, by one cheap listing.
async fn newest_entries<C: S3Api>(client: &C, bucket: &str, key: &str) -> S3Result<Vec<Entry>> {
    // Keys sort before every longer key they prefix, so `key`'s entries come first.
    let page = client
        .list_versions(ListRequest {
            bucket: bucket.to_string(),
            prefix: key.to_string(),
            max_keys: Some(2),
            ..ListRequest::default()
        })
        .await?;
    Ok(page.entries.into_iter().filter(|e| e.key == key).collect())
}

/// Decides from the destination key's newest entries (newest first) whether the write we attempted
/// after `head` was applied.
pub fn was_applied(newest: &[Entry], head: &DestinationHead, expected: Expected) -> bool {
    let Some(first) = newest.first() else {
        return false;
    };
    let same_kind = match expected {
        Expected::DeleteMarker => first.is_delete_marker(),
        Expected::Object { size } => !first.is_delete_marker() && first.size() == size,
    };
    same_kind
        && match head {
            DestinationHead::Version(previous) => &first.version_id != previous,
            DestinationHead::Empty => newest.len() == 1,
            // Repeating a write on an unversioned destination adds nothing: just repeat it.
            DestinationHead::Unversioned => false,
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, marker: bool, size: u64) -> Entry {
        Entry {
            key: "k".into(),
            version_id: id.into(),
            is_latest: true,
            last_modified: String::new(),
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
        let object = Expected::Object { size: 5 };
        assert!(was_applied(
            &[entry("v2", false, 5), entry("v1", false, 5)],
            &head,
            object
        ));
        assert!(!was_applied(&[entry("v1", false, 5)], &head, object));
        assert!(!was_applied(&[entry("v2", false, 6)], &head, object));
        assert!(!was_applied(
            &[entry("v2", true, 0)],
            &head,
            Expected::Object { size: 0 }
        ));
        assert!(was_applied(
            &[entry("v2", true, 0)],
            &head,
            Expected::DeleteMarker
        ));
        assert!(!was_applied(&[], &head, object));
    }

    #[test]
    fn a_first_write_was_applied_only_if_it_is_the_only_entry() {
        let object = Expected::Object { size: 1 };
        assert!(was_applied(
            &[entry("x", false, 1)],
            &DestinationHead::Empty,
            object
        ));
        assert!(!was_applied(
            &[entry("x", false, 1), entry("y", false, 1)],
            &DestinationHead::Empty,
            object
        ));
        assert!(!was_applied(&[], &DestinationHead::Empty, object));
        assert!(!was_applied(
            &[entry("x", false, 1)],
            &DestinationHead::Unversioned,
            object
        ));
    }

    #[test]
    fn the_watermark_moves_over_finished_keys_in_dispatch_order() {
        let mut watermark = Watermark::default();
        for key in ["a", "b", "c", "d"] {
            watermark.dispatched(key);
        }
        assert_eq!(watermark.finished("b"), None);
        assert_eq!(watermark.finished("c"), None);
        // The first move is recorded at once; the next within a second only every 256 keys.
        assert_eq!(watermark.finished("a"), Some("c".into()));
        assert_eq!(watermark.finished("d"), None);
        assert_eq!(watermark.take_unrecorded(), Some("d".into()));
        for index in 0..WATERMARK_EVERY {
            watermark.dispatched(&format!("e{index:04}"));
        }
        let recorded: Vec<_> = (0..WATERMARK_EVERY)
            .filter_map(|i| watermark.finished(&format!("e{i:04}")))
            .collect();
        assert_eq!(recorded, [format!("e{:04}", WATERMARK_EVERY - 1)]);
    }
}
