//! The executor: lists the destination range alongside the source, merges each key's source history
//! with what the destination holds (`merge`), and replays only the missing entries, oldest first, one
//! entry at a time per key, many keys at once, recording progress in the checkpoint (see `checkpoint`).
//!
//! A write that adds a version (CopyObject, DeleteObject, CompleteMultipartUpload) and fails in a way that
//! may nonetheless have been applied (a 500, a reset, a timeout) is never retried blindly: that would add a
//! duplicate version. We look at the destination key first (`applied`: a new entry since the head we
//! wrote after, the same as the source entry by `merge`'s comparison).

mod multipart;
mod provenance;

pub use provenance::Provenance;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, Semaphore, mpsc};
use tokio::task::JoinSet;

use crate::checkpoint::{Journal, KeyState, LATE_WRITE_GRACE, Record};
use crate::history::{KeyHistory, Selection, list_histories_with, list_key};
use crate::merge::{
    Compare, KeyPlan, Likeness, MatchedBy, OnDiverged, Verdict, by_heads, likeness, plan_key,
};
use crate::plan::{Action, PlanSettings};
use crate::progress::{Copied, Diverged, Failure, Progress, Unproven};
use crate::s3::{
    CopyRequest, Entry, EntryKind, ListRequest, LockSettings, S3Api, S3Error, S3Result, VersionRef,
    WriteSettings, WrittenVersion,
};
use multipart::copy_multipart;

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
    pub on_diverged: OnDiverged,
    /// How pairs the ETags and checksums cannot decide are compared.
    pub compare: Compare,
    /// The copies are written (or read) with SSE-KMS or SSE-C: their ETags are not MD5s.
    pub encrypted_etags: bool,
    /// The destination has versioning enabled (each write creates a version id).
    pub destination_versioned: bool,
    /// The destination was never versioned: it is listed with ListObjectsV2.
    pub destination_never_versioned: bool,
    /// Look at the destination one key at a time instead of listing its range (a manifest names a
    /// few keys of what may be a huge destination).
    pub destination_per_key: bool,
    /// Plan every key against the destination and count what would be written; write nothing.
    pub dry_run: bool,
}

/// What the destination key held before our next write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DestinationHead {
    /// Nothing: the destination key was empty when it was listed.
    Empty,
    /// The newest destination version of the key (ours or found there).
    Version(String),
    /// The destination is not versioned, where repeating a write is harmless.
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

    /// The head of a listed destination history.
    fn of(history: &[Entry], versioned: bool) -> Self {
        match history.last() {
            None => DestinationHead::Empty,
            Some(_) if !versioned => DestinationHead::Unversioned,
            Some(newest) => DestinationHead::Version(newest.version_id.clone()),
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

/// The checkpoint as the executor uses it: the journal, whose watermark tells where the listings
/// resume, and the lock that keeps a second run off it.
pub struct Checkpoint {
    pub journal: Journal,
    pub retry_failed: bool,
    /// Read the destination no sooner than this: a request the interrupted run sent just before it
    /// died can still be applied by the server afterwards, and a destination read too early would not
    /// show it yet (the write would then be repeated, and the late one would land as a duplicate).
    pub settle_until: Option<tokio::time::Instant>,
    pub _lock: crate::checkpoint::CheckpointLock,
}

/// Keys in dispatch (listing) order; the front ones that are finished advance the watermark. It is
/// recorded every `WATERMARK_EVERY` keys or second (an older watermark is only more conservative).
///
/// A key is told finished by the number it was given when dispatched, found at once: looking it up by
/// name scanned every key in flight, for every key, under the lock (at 1,024 in flight 3.4% of the
/// client's CPU went into those string comparisons, and four times as much at 4,096).
#[derive(Default)]
struct Watermark {
    /// Dispatched and not yet passed, in dispatch order; the first is number `passed`.
    keys: VecDeque<(String, bool)>,
    passed: u64,
    unrecorded: Option<String>,
    moved: usize,
    recorded_at: Option<std::time::Instant>,
}

const WATERMARK_EVERY: usize = 256;

impl Watermark {
    /// Records `key` as dispatched; returns its number, to tell it finished with.
    fn dispatched(&mut self, key: &str) -> u64 {
        self.keys.push_back((key.to_string(), false));
        self.passed + self.keys.len() as u64 - 1
    }

    /// Marks key number `number` finished; returns the watermark to record, if it moved and is due.
    fn finished(&mut self, number: u64) -> Option<String> {
        if let Some(slot) = number
            .checked_sub(self.passed)
            .and_then(|index| self.keys.get_mut(index as usize))
        {
            slot.1 = true;
        }
        while self.keys.front().is_some_and(|(_, done)| *done) {
            self.unrecorded = self.keys.pop_front().map(|(k, _)| k);
            self.passed += 1;
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
    /// Why the run stopped on its own (the checkpoint could not be written): no write starts after it.
    pub halted: Mutex<Option<String>>,
    /// `--version-map`: one row per entry written.
    pub version_map: Option<VersionMap>,
    /// The copies whose ETags cannot prove them, recorded to prove them later.
    pub provenance: Option<Provenance>,
}

/// `--version-map FILE`: a CSV row per entry written (source key and version id, destination key and
/// version id, kind), appended and flushed as each entry completes, so an auditor can map every copy
/// to its original, across runs: exactly one row per destination entry the job wrote. A row is written
/// before the checkpoint records the entry done, so a kill between the two leaves the entry pending with
/// its row; a resume that finds a pending entry on the destination writes its row unless the map
/// already has it (the map's rows of pending keys are read back when it opens); a torn last line (a
/// kill in the middle of a row) is cut off.
pub struct VersionMap {
    writer: Mutex<csv::Writer<std::fs::File>>,
    path: std::path::PathBuf,
    /// `(source key, source version id)` of the rows already in the map for the keys a killed run left
    /// pending.
    recorded: Mutex<std::collections::HashSet<(String, String)>>,
}

impl VersionMap {
    /// Opens (or creates) the map; `pending`: the keys the checkpoint says a run left pending.
    pub fn open(
        path: &std::path::Path,
        pending: &std::collections::HashSet<String>,
    ) -> std::io::Result<VersionMap> {
        use std::io::{Read, Seek};
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        let mut text = Vec::new();
        file.read_to_end(&mut text)?;
        // A kill in the middle of a row leaves it torn: cut it off (the resume writes it again).
        if !text.is_empty() && !text.ends_with(b"\n") {
            let keep = text
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |at| at + 1);
            file.set_len(keep as u64)?;
            text.truncate(keep);
        }
        file.seek(std::io::SeekFrom::End(0))?;
        let mut recorded = std::collections::HashSet::new();
        if !pending.is_empty() {
            for row in csv::Reader::from_reader(text.as_slice()).records() {
                let row = row.map_err(std::io::Error::other)?;
                if let (Some(key), Some(version)) = (row.get(0), row.get(1))
                    && pending.contains(key)
                {
                    recorded.insert((key.to_string(), version.to_string()));
                }
            }
        }
        let new = text.is_empty();
        let mut writer = csv::Writer::from_writer(file);
        if new {
            writer.write_record([
                "source_key",
                "source_version_id",
                "destination_key",
                "destination_version_id",
                "kind",
            ])?;
            writer.flush()?;
        }
        Ok(VersionMap {
            writer: Mutex::new(writer),
            path: path.to_path_buf(),
            recorded: Mutex::new(recorded),
        })
    }

    /// The row of an entry a killed run wrote and the resume found on the destination, unless the map
    /// has it already.
    fn append_once(
        &self,
        entry: &Entry,
        destination_key: &str,
        written: Option<&str>,
    ) -> std::io::Result<()> {
        let known = self
            .recorded
            .lock()
            .expect("version map lock")
            .contains(&(entry.key.clone(), entry.version_id.clone()));
        if known {
            return Ok(());
        }
        self.append(entry, destination_key, written)
    }

    fn append(
        &self,
        entry: &Entry,
        destination_key: &str,
        written: Option<&str>,
    ) -> std::io::Result<()> {
        let mut writer = self.writer.lock().expect("version map lock");
        writer.write_record([
            entry.key.as_str(),
            entry.version_id.as_str(),
            destination_key,
            written.unwrap_or(""),
            if entry.is_delete_marker() {
                "delete_marker"
            } else {
                "version"
            },
        ])?;
        writer.flush()
    }
}

/// The destination's histories, listed alongside the source's and handed out by key.
struct DestinationCursor {
    histories: Option<mpsc::Receiver<S3Result<KeyHistory>>>,
    next: Option<KeyHistory>,
    /// The destination prefix, stripped to compare keys with the source's relative ones.
    prefix_len: usize,
}

impl DestinationCursor {
    /// The destination history of the key at `relative` (relative to the prefixes); keys must be asked
    /// for in increasing order. Destination keys the source lacks are passed over.
    async fn take(&mut self, relative: &str) -> S3Result<Vec<Entry>> {
        loop {
            if self.next.is_none() {
                let Some(histories) = &mut self.histories else {
                    return Ok(Vec::new());
                };
                match histories.recv().await {
                    Some(history) => self.next = Some(history?),
                    None => {
                        self.histories = None;
                        return Ok(Vec::new());
                    }
                }
            }
            let next = self.next.as_ref().expect("just filled");
            match next.key[self.prefix_len..].cmp(relative) {
                std::cmp::Ordering::Less => self.next = None,
                std::cmp::Ordering::Equal => {
                    return Ok(self.next.take().expect("just filled").entries);
                }
                std::cmp::Ordering::Greater => return Ok(Vec::new()),
            }
        }
    }
}

impl<C: S3Api> Executor<C> {
    fn record(&self, record: Record) {
        if let Some(checkpoint) = &self.checkpoint {
            checkpoint.journal.append(record);
        }
    }

    /// Appends `record` and waits until it is in the journal file; false when it could not be written,
    /// in which case the run halts: a write the checkpoint cannot record must not be sent.
    async fn record_durable(&self, record: Record) -> bool {
        let Some(checkpoint) = &self.checkpoint else {
            return true;
        };
        match checkpoint.journal.append_durable(record).await {
            Ok(()) => true,
            Err(error) => {
                self.halt(error.to_string());
                false
            }
        }
    }

    /// Stops the run on an error of its own: nothing new starts, in-flight writes finish.
    /// A temporary error that outlasted every retry (the endpoint stopped answering, or throttles
    /// without end): not the entry's fault, so it is not recorded as failed; the run stops (exit 3)
    /// and a rerun resumes it. Returns false: the key is not finished.
    ///
    /// Credentials refused in the middle of a run (a session token that expired during a long run)
    /// stop it the same way: every later request would be refused too, and none of it is the entries'
    /// fault.
    fn unreachable(&self, key: &str, error: S3Error) -> bool {
        tracing::info!(key = ?key, error = %error, "stopping the run");
        self.halt(format!(
            "a request for key {key:?} {}",
            why_the_run_stops(&error)
        ));
        false
    }

    pub fn halt(&self, reason: String) {
        self.halted.lock().expect("halt lock").get_or_insert(reason);
        self.stop.trigger();
    }

    fn destination_bucket(&self) -> &str {
        &self.job.selection.mapping.destination.bucket
    }

    /// How the destination range is listed: as a source of its own, all keys, every entry.
    fn destination_selection(&self) -> Selection {
        let destination = self.job.selection.mapping.destination.clone();
        Selection {
            include: self.job.selection.include.clone(),
            exclude: self.job.selection.exclude.clone(),
            source_unversioned: self.job.destination_never_versioned,
            ..Selection::all(crate::location::KeyMapping {
                source: destination.clone(),
                destination,
            })
        }
    }

    /// The destination history of one source key, by a listing of that key alone.
    async fn destination_history(&self, source_key: &str) -> S3Result<Vec<Entry>> {
        let key = self.job.selection.mapping.destination_key(source_key);
        let history = list_key(
            &*self.destination,
            self.destination_bucket(),
            &key,
            &self.destination_selection(),
        )
        .await?;
        Ok(history.map(|h| h.entries).unwrap_or_default())
    }

    /// A request the interrupted run sent just before it died can still be applied by the server
    /// afterwards; the destination is looked at only once that can no longer happen.
    async fn settle(&self) {
        if let Some(until) = self.checkpoint.as_ref().and_then(|c| c.settle_until)
            && tokio::time::Instant::now() < until
        {
            let wait = until - tokio::time::Instant::now();
            eprintln!(
                "the last run of this job did not end cleanly: waiting {:.0} s, until the writes it may have \
                 left in flight can no longer land (their attempts' timeouts, recorded in the checkpoint; \
                 --resume-wait is the floor), before reading the destination",
                wait.as_secs_f64().ceil()
            );
            // A countdown, so the wait does not look like a hang.
            loop {
                let left = until.saturating_duration_since(tokio::time::Instant::now());
                if left.is_zero() {
                    break;
                }
                tokio::time::sleep(left.min(std::time::Duration::from_secs(5))).await;
                let left = until.saturating_duration_since(tokio::time::Instant::now());
                if !left.is_zero() {
                    eprintln!("  {:.0} s left before resuming", left.as_secs_f64().ceil());
                }
            }
        }
    }

    /// Lists the source and the destination and replays every selected history onto what the
    /// destination holds. Per-entry failures are recorded in the progress and do not stop the run; a
    /// failed listing does.
    ///
    /// `input` replaces the source listing with histories read from an inventory or manifest (in key
    /// order, failed keys to retry included).
    pub async fn run(
        self: Arc<Self>,
        input: Option<mpsc::Receiver<S3Result<KeyHistory>>>,
    ) -> S3Result<()> {
        self.abort_recorded_uploads().await;
        self.settle().await;
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
                let destination = self.destination_history(&key).await?;
                self.dispatch(history, destination, &mut running, &slots, None)
                    .await;
            }
        }
        // Without a checkpoint there is nowhere to record it.
        let watermark = self
            .checkpoint
            .is_some()
            .then(|| Arc::new(Mutex::new(Watermark::default())));
        let start_after = self
            .checkpoint
            .as_ref()
            .and_then(|c| c.journal.state().watermark.clone());
        let mut destination = DestinationCursor {
            histories: (!self.job.destination_per_key).then(|| {
                list_histories_with(
                    Arc::clone(&self.destination),
                    self.destination_bucket().to_string(),
                    self.destination_selection(),
                    Arc::new(Progress::default()),
                    start_after
                        .as_deref()
                        .map(|key| self.job.selection.mapping.destination_key(key)),
                    self.job.listers,
                )
            }),
            next: None,
            prefix_len: self.job.selection.mapping.destination.prefix.len(),
        };
        let mut histories = match input {
            Some(histories) => histories,
            None => list_histories_with(
                Arc::clone(&self.source),
                self.job.selection.mapping.source.bucket.clone(),
                self.job.selection.clone(),
                Arc::clone(&self.progress),
                start_after,
                self.job.listers,
            ),
        };
        let mut complete = true;
        let mut last: Option<String> = None;
        while let Some(history) = histories.recv().await {
            if self.stop.is_set() {
                complete = false;
                break;
            }
            let history = history?;
            // The merge needs keys in increasing order (listings give them so, and inputs are sorted);
            // a key out of order is looked up on its own rather than taken for absent.
            let in_order = last
                .as_deref()
                .is_none_or(|last| history.key.as_str() > last);
            let held = if self.job.destination_per_key || !in_order {
                self.destination_history(&history.key).await?
            } else {
                let relative = self.job.selection.mapping.relative(&history.key);
                destination
                    .take(relative)
                    .await
                    .map_err(|error| S3Error::Other {
                        code: "DestinationListing".into(),
                        message: format!(
                            "listing the destination s3://{}/{} to compare with it: {error}",
                            self.destination_bucket(),
                            self.job.selection.mapping.destination.prefix
                        ),
                    })?
            };
            if in_order {
                last = Some(history.key.clone());
            }
            self.dispatch(history, held, &mut running, &slots, watermark.clone())
                .await;
            while let Some(finished) = running.try_join_next() {
                finished.expect("replay task panicked");
            }
        }
        while let Some(finished) = running.join_next().await {
            finished.expect("replay task panicked");
        }
        if let Some(key) = watermark
            .as_ref()
            .and_then(|watermark| watermark.lock().expect("watermark lock").take_unrecorded())
        {
            self.record(Record::Watermark { key });
        }
        if complete && !self.stop.is_set() {
            // The next run of this job is a new pass over everything (a catch-up), never "nothing to do".
            self.record(Record::PassComplete {
                finished_unix: crate::checkpoint::now_unix(),
            });
        }
        Ok(())
    }

    /// Starts replaying a key once one of the `concurrency` key slots is free.
    async fn dispatch(
        self: &Arc<Self>,
        history: KeyHistory,
        destination: Vec<Entry>,
        running: &mut JoinSet<()>,
        slots: &Arc<Semaphore>,
        watermark: Option<Arc<Mutex<Watermark>>>,
    ) {
        let slot = Arc::clone(slots)
            .acquire_owned()
            .await
            .expect("never closed");
        let watermark = watermark.map(|watermark| {
            let number = watermark
                .lock()
                .expect("watermark lock")
                .dispatched(&history.key);
            (watermark, number)
        });
        let executor = Arc::clone(self);
        running.spawn(async move {
            let finished = executor.replay_key(history, destination).await;
            if let Some((watermark, number)) = watermark
                && finished
                && let Some(key) = watermark.lock().expect("watermark lock").finished(number)
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

    /// Whether source entry `source` and destination entry `destination` are the same (see `merge`):
    /// from the listings when their ETags agree, else from this machine's record of its copies, else
    /// by one HEAD of each side, else as `compare` says.
    async fn same_entry(
        &self,
        source: &Entry,
        destination: &Entry,
        destination_key: &str,
        compare: Compare,
    ) -> S3Result<Verdict> {
        match likeness(source, destination) {
            Likeness::Same => Ok(Verdict::Same(MatchedBy::Etag)),
            Likeness::Different => Ok(Verdict::Different),
            // Boxed: the HEADs' and reads' futures would otherwise make every key's replay future
            // (1,024 of them in flight) kilobytes larger for a path few keys take.
            Likeness::Unverified => {
                Box::pin(self.unverified(source, destination, destination_key, compare)).await
            }
        }
    }

    /// `same_entry` for two objects of one size whose listed ETags differ: this machine's record of its
    /// copy, else a HEAD of each side, else as `compare` says.
    async fn unverified(
        &self,
        source: &Entry,
        destination: &Entry,
        destination_key: &str,
        compare: Compare,
    ) -> S3Result<Verdict> {
        let (source, destination) = (
            self.source_ref(source),
            VersionRef {
                bucket: self.destination_bucket().to_string(),
                key: destination_key.to_string(),
                version_id: destination.version_id.clone(),
            },
        );
        if self
            .provenance
            .as_ref()
            .is_some_and(|record| record.proves(destination_key, &destination.version_id, &source))
        {
            return Ok(Verdict::Same(MatchedBy::Record));
        }
        let (theirs, ours) = futures::future::try_join(
            self.source.head_object(&source, None),
            self.destination.head_object(&destination, None),
        )
        .await?;
        match (by_heads(&theirs, &ours), compare) {
            (Verdict::Unproven, Compare::Size) => Ok(Verdict::Same(MatchedBy::Size)),
            (Verdict::Unproven, Compare::Content) => {
                let (theirs, ours) = futures::future::try_join(
                    self.source.content_digest(&source),
                    self.destination.content_digest(&destination),
                )
                .await?;
                self.progress.compared_content(theirs.size + ours.size);
                Ok(if theirs == ours {
                    Verdict::Same(MatchedBy::Content)
                } else {
                    Verdict::Different
                })
            }
            (verdict, _) => Ok(verdict),
        }
    }

    /// What a key's replay starts from: the merge of its source history with the destination's.
    /// `pending`: the entry a killed run may have written without recording it anywhere; found on the
    /// destination with nothing else to prove it, it is compared by content (as the reconcile does).
    async fn plan(
        &self,
        history: &KeyHistory,
        held: &[Entry],
        destination_key: &str,
        pending: Option<usize>,
    ) -> S3Result<KeyPlan> {
        plan_key(
            &history.entries,
            held,
            self.job.selection.latest_only,
            self.job.on_diverged,
            |i, j| {
                let compare = match self.job.compare {
                    Compare::Metadata if Some(i) == pending => Compare::Content,
                    chosen => chosen,
                };
                self.same_entry(&history.entries[i], &held[j], destination_key, compare)
            },
            |how| how.count(&self.progress),
        )
        .await
    }

    /// Whether a copy of `entry` needs a provenance row to be proven later: a copy by parts (in another
    /// layout than its source's, or where the server does not reproduce multipart ETags), or under
    /// SSE-KMS or SSE-C, has an ETag that is not its source's.
    fn needs_provenance(&self, entry: &Entry) -> bool {
        match self.job.plan.action(entry) {
            Action::DeleteMarker => false,
            Action::Multipart => true,
            Action::Copy => self.job.encrypted_etags,
        }
    }

    /// Records the provenance of a copy (see `Provenance`); a row that cannot be written is warned
    /// about, not fatal: that copy can still be proven by `--compare content`.
    fn record_provenance(&self, entry: &Entry, destination_key: &str, written: Option<&str>) {
        let (Some(record), Some(written)) = (&self.provenance, written) else {
            return;
        };
        if !self.needs_provenance(entry) {
            return;
        }
        if let Err(error) = record.record(destination_key, written, &self.source_ref(entry)) {
            tracing::warn!(
                path = %record.path().display(),
                error = %error,
                "failed to record a copy's provenance: a later run proves it only with --compare content"
            );
        }
    }

    /// Replays one key; returns false when the run stopped before the key was finished.
    async fn replay_key(&self, history: KeyHistory, held: Vec<Entry>) -> bool {
        let destination_key = self.job.selection.mapping.destination_key(&history.key);
        let source_bucket = &self.job.selection.mapping.source.bucket;
        let fail = |index: usize, error: S3Error, operation: &'static str| {
            let entry = &history.entries[index];
            let reason = failure_reason(&error, source_bucket, entry);
            let code = error.code().to_string();
            self.record(Record::Failed {
                key: history.key.clone(),
                index: index as u32,
                version_id: entry.version_id.clone(),
                reason: reason.clone(),
            });
            // Later entries of this key would land out of order: the key stops here.
            self.progress.failed(
                Failure {
                    bucket: source_bucket.clone(),
                    key: entry.key.clone(),
                    version_id: entry.version_id.clone(),
                    operation: operation.into(),
                    code,
                    reason,
                },
                (history.entries.len() - index - 1) as u64,
            );
        };
        let mut pending_index = None;
        if let Some(checkpoint) = &self.checkpoint {
            let (failed, pending) = {
                let state = checkpoint.journal.state();
                (
                    state.failed.contains_key(&history.key),
                    match state.keys.get(&history.key) {
                        Some(KeyState::Pending { index, .. }) => Some(*index as usize),
                        _ => None,
                    },
                )
            };
            if failed && !checkpoint.retry_failed {
                return true;
            }
            pending_index = pending;
            if pending.is_some() {
                // The interrupted run may have created an upload it never recorded.
                // Best effort: an upload left here costs storage, not correctness.
                let _ = self
                    .abort_uploads_of(&destination_key, &Default::default())
                    .await;
            }
        }
        let plan = match self
            .plan(&history, &held, &destination_key, pending_index)
            .await
        {
            Ok(plan) => plan,
            Err(error) if stops_the_run(&error) => return self.unreachable(&history.key, error),
            Err(error) => {
                fail(0, error, "comparing with the destination");
                return true;
            }
        };
        let start = match plan {
            KeyPlan::InStep => history.entries.len(),
            KeyPlan::Append { from } => from,
            KeyPlan::Diverged {
                position,
                reason,
                append_from,
            } => {
                let entry = &history.entries[position.min(history.entries.len() - 1)];
                self.progress.diverged(Diverged {
                    key: destination_key.clone(),
                    position: position as u64 + 1,
                    reason: reason.clone(),
                    appended: append_from.is_some(),
                });
                match append_from {
                    Some(from) => from,
                    None => {
                        // Recorded as failed: `status` lists it and the next run looks at it again.
                        self.record(Record::Failed {
                            key: history.key.clone(),
                            index: position.min(history.entries.len() - 1) as u32,
                            version_id: entry.version_id.clone(),
                            reason: format!("diverged: {reason}"),
                        });
                        return true;
                    }
                }
            }
            KeyPlan::Unproven { position, reason } => {
                let entry = &history.entries[position];
                self.progress.unproven(Unproven {
                    key: destination_key.clone(),
                    position: position as u64 + 1,
                    reason: reason.clone(),
                });
                self.record(Record::Failed {
                    key: history.key.clone(),
                    index: position as u32,
                    version_id: entry.version_id.clone(),
                    reason: format!("unproven: {reason}"),
                });
                return true;
            }
        };
        // An entry a killed run left pending and the destination holds was written by the job: its
        // version map row and provenance, if the kill came before them (held, oldest first, ends with
        // the entries in step).
        let pending_written =
            pending_index
                .filter(|&pending| pending < start)
                .and_then(|pending| {
                    let offset = held.len().checked_sub(start)?;
                    Some((pending, held.get(offset + pending)?))
                });
        if let Some((pending, written)) = pending_written {
            self.record_provenance(
                &history.entries[pending],
                &destination_key,
                Some(&written.version_id),
            );
        }
        if let (Some(map), Some((pending, written))) = (&self.version_map, pending_written)
            && let Err(error) = map.append_once(
                &history.entries[pending],
                &destination_key,
                Some(&written.version_id),
            )
        {
            self.halt(format!(
                "failed to write the version map {}: {error}",
                map.path.display()
            ));
            return false;
        }
        let already: &[Entry] = &history.entries[..start];
        self.progress.in_step(
            already.len() as u64,
            already.iter().map(Entry::size).sum(),
            already.iter().map(|e| self.write_requests(e)).sum(),
        );
        if start < history.entries.len() {
            self.progress.key_written();
        }
        if self.job.dry_run {
            for entry in &history.entries[start..] {
                self.progress.copied(match self.job.plan.action(entry) {
                    Action::DeleteMarker => Copied::DeleteMarker,
                    Action::Copy => Copied::Single {
                        bytes: entry.size(),
                    },
                    Action::Multipart => Copied::Multipart {
                        bytes: entry.size(),
                    },
                });
            }
            if start == history.entries.len() {
                self.progress.key_in_step();
            }
            return true;
        }
        let mut head = DestinationHead::of(&held, self.job.destination_versioned);
        for (index, entry) in history.entries.iter().enumerate().skip(start) {
            if self.stop.is_set() {
                return false;
            }
            if !self
                .record_durable(Record::Intent {
                    key: history.key.clone(),
                    index: index as u32,
                    version_id: entry.version_id.clone(),
                    previous: head.version(),
                    timeout_ms: self
                        .destination
                        .write_timeout(
                            entry.size(),
                            self.job.plan.action(entry) == Action::Multipart,
                        )
                        .map(|timeout| timeout.as_millis() as u64),
                })
                .await
            {
                return false;
            }
            match self.replay_entry(entry, &destination_key, &mut head).await {
                Ok(()) => {
                    // The rows before the record: a kill between them leaves the entry pending, and
                    // the resume finds its rows (never a written entry without one).
                    self.record_provenance(entry, &destination_key, head.version().as_deref());
                    if let Some(map) = &self.version_map
                        && let Err(error) =
                            map.append(entry, &destination_key, head.version().as_deref())
                    {
                        // The map must be complete: stop rather than write what it cannot record.
                        self.halt(format!(
                            "failed to write the version map {}: {error}",
                            map.path.display()
                        ));
                        return false;
                    }
                    self.record(Record::Done {
                        key: history.key.clone(),
                        index: index as u32,
                        written: head.version(),
                        last: index + 1 == history.entries.len(),
                    });
                }
                Err(S3Error::Interrupted) => return false,
                Err(S3Error::NotFound { code, message })
                    if self.job.tolerate_missing_source && code != "NoSuchUpload" =>
                {
                    let said = if message.is_empty() {
                        String::new()
                    } else {
                        format!("; {message}")
                    };
                    // Nothing was written: the destination's head stays where it was.
                    self.progress.failed(
                        Failure {
                            bucket: source_bucket.clone(),
                            key: entry.key.clone(),
                            version_id: entry.version_id.clone(),
                            operation: "reading the source version".into(),
                            code: code.clone(),
                            reason: format!(
                                "not in the source ({code}{said}): deleted since the inventory or manifest was \
                                 made; the key's other versions were copied"
                            ),
                        },
                        0,
                    );
                    self.record(Record::Done {
                        key: history.key.clone(),
                        index: index as u32,
                        written: head.version(),
                        last: index + 1 == history.entries.len(),
                    });
                }
                Err(error) if stops_the_run(&error) => {
                    return self.unreachable(&history.key, error);
                }
                Err(error) => {
                    let operation = match self.job.plan.action(&history.entries[index]) {
                        Action::DeleteMarker => "DeleteObject",
                        Action::Copy => "CopyObject",
                        Action::Multipart => "multipart copy",
                    };
                    fail(index, error, operation);
                    return true;
                }
            }
        }
        if start == history.entries.len() {
            // Nothing was left to write: the destination had it all.
            self.progress.key_in_step();
            self.record(Record::KeyDone {
                key: history.key.clone(),
            });
        }
        true
    }

    /// Aborts the multipart uploads in progress for `destination_key`, except those in `keep` (ids the
    /// journal knows): a crash between CreateMultipartUpload and its record, or a lost answer to it,
    /// leaves an upload only the destination knows. Tries every one; returns the first error.
    pub(crate) async fn abort_uploads_of(
        &self,
        destination_key: &str,
        keep: &std::collections::HashSet<String>,
    ) -> S3Result<()> {
        let bucket = self.destination_bucket();
        let mut first_error = None;
        for upload_id in self
            .destination
            .list_uploads(bucket, destination_key)
            .await?
        {
            if keep.contains(&upload_id) {
                continue;
            }
            match self
                .destination
                .abort_multipart(bucket, destination_key, &upload_id)
                .await
            {
                Ok(()) | Err(S3Error::NotFound { .. }) => {}
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// The write requests copying `entry` takes: one, or for a multipart copy one per part (the
    /// source's, or at the default part size) plus its create and complete.
    fn write_requests(&self, entry: &Entry) -> u64 {
        let kept = match &entry.kind {
            EntryKind::Object { etag, .. } if self.job.plan.part_size.is_none() => {
                crate::plan::multipart_parts(etag)
            }
            _ => None,
        };
        match (self.job.plan.action(entry), kept) {
            (Action::Multipart, Some(parts)) => u64::from(parts) + 2,
            (Action::Multipart, None) => self
                .job
                .plan
                .part_size(entry.size())
                .map_or(1, |part| entry.size().div_ceil(part.max(1)) + 2),
            _ => 1,
        }
    }

    /// The source version an entry names (a never-versioned source's null version is not named).
    fn source_ref(&self, entry: &Entry) -> VersionRef {
        let unnamed = self.job.selection.source_unversioned && entry.version_id == "null";
        VersionRef {
            bucket: self.job.selection.mapping.source.bucket.clone(),
            key: entry.key.clone(),
            version_id: if unnamed {
                String::new()
            } else {
                entry.version_id.clone()
            },
        }
    }

    async fn replay_entry(
        &self,
        entry: &Entry,
        destination_key: &str,
        head: &mut DestinationHead,
    ) -> S3Result<()> {
        match self.write_entry(entry, destination_key, head).await {
            // S3 refuses to copy an SSE-C version without its key with a bare 400; a HEAD without
            // the key is refused the same way, which tells that case apart from other bad requests.
            Err(S3Error::Other { code, message })
                if (code == "InvalidRequest" || code == "400")
                    && !self.job.write.source_customer_key =>
            {
                match self.source.head_object(&self.source_ref(entry), None).await {
                    Err(S3Error::Other { code, .. }) if code == "400" => Err(S3Error::Other {
                        code: "SSECustomerKeyRequired".into(),
                        message: "the version is encrypted with a customer-provided key (SSE-C): pass that \
                                  key with --source-sse-c-key (base64, or file:PATH), and --sse-c-key to \
                                  encrypt the copies with a key of yours"
                            .into(),
                    }),
                    _ => Err(S3Error::Other { code, message }),
                }
            }
            other => other,
        }
    }

    async fn write_entry(
        &self,
        entry: &Entry,
        destination_key: &str,
        head: &mut DestinationHead,
    ) -> S3Result<()> {
        let bucket = self.destination_bucket();
        let source = self.source_ref(entry);
        let size = entry.size();
        match self.job.plan.action(entry) {
            Action::DeleteMarker => {
                self.write(destination_key, entry, head, || {
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
                // CopyObject carries neither retention and legal hold, nor encryption (without the
                // header a copy gets the destination's default, none on many S3-compatible stores),
                // nor a website redirect: read them from the version (one HEAD, only when the source
                // has Object Lock or serves a website, or the destination has no default encryption)
                // and ask for them on the copy.
                let carry_encryption =
                    self.job.write.carry_encryption && self.job.write.sse_kms_key_id.is_none();
                let read = if self.job.write.object_lock
                    || carry_encryption
                    || self.job.write.carry_website_redirect
                {
                    Some(self.source.head_object(&source, None).await?)
                } else {
                    None
                };
                let object_lock = match &read {
                    Some(read) if self.job.write.object_lock => read.object_lock.clone(),
                    _ => LockSettings::default(),
                };
                let encryption = read.as_ref().filter(|_| carry_encryption);
                let request = CopyRequest {
                    object_lock,
                    website_redirect: read.as_ref().and_then(|read| read.website_redirect.clone()),
                    server_side_encryption: encryption
                        .and_then(|read| read.server_side_encryption.clone()),
                    sse_kms_key_id: self
                        .job
                        .write
                        .sse_kms_key_id
                        .clone()
                        .or_else(|| encryption.and_then(|read| read.sse_kms_key_id.clone())),
                    bucket_key_enabled: encryption
                        .filter(|read| read.bucket_key_enabled)
                        .map(|_| true),
                    source,
                    size,
                    bucket: bucket.to_string(),
                    key: destination_key.to_string(),
                    // CopyObject makes the copy STANDARD unless told: keep the source's class.
                    storage_class: self
                        .job
                        .write
                        .storage_class
                        .clone()
                        .or(storage_class.filter(|c| c != "STANDARD")),
                };
                self.write(destination_key, entry, head, || {
                    self.destination.copy_object(&request)
                })
                .await?;
                self.progress.copied(Copied::Single { bytes: size });
            }
            Action::Multipart => {
                // Boxed: the multipart copy's future is large and few tasks need it.
                Box::pin(copy_multipart(self, entry, &source, destination_key, head)).await?;
                self.progress.copied(Copied::Multipart { bytes: size });
            }
        }
        Ok(())
    }

    /// The ids of the uploads the journal records as started and not ended.
    pub(crate) fn recorded_uploads(&self) -> std::collections::HashSet<String> {
        self.checkpoint
            .as_ref()
            .map_or_else(Default::default, |checkpoint| {
                checkpoint.journal.state().uploads.keys().cloned().collect()
            })
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

    /// Runs a write of source entry `entry` that adds a version, reconciling with the destination when
    /// its outcome is unknown (after an attempt that timed out, once the time it could still take to
    /// land has passed).
    pub(crate) async fn write<F, Fut>(
        &self,
        key: &str,
        entry: &Entry,
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
                // A versioned destination names the version each write made. An answer that does
                // not (a server or proxy that strips the header, a 200 with an empty body that a
                // broken answer was read as) proves nothing: an outcome the destination decides.
                Ok(None) if self.job.destination_versioned => S3Error::Transient {
                    message: "the write was answered without a version id".into(),
                    maybe_applied: true,
                },
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
            if let S3Error::TimedOut { after, .. } = &error {
                // Given up, not answered: the attempt may still reach the server (a queue in the
                // server or on the path) and land after a check that found nothing, beside its resend.
                // Its own bound, a tenth of its timeout and at least LATE_WRITE_GRACE, is waited out
                // before looking.
                tokio::time::sleep((*after / 10).max(LATE_WRITE_GRACE)).await;
            }
            if let Some(written) = Box::pin(self.applied(key, entry, head)).await? {
                tracing::debug!(
                    key = ?key,
                    version = %entry.version_id,
                    written = %written,
                    error = %error,
                    "reconciled: the write whose answer was lost had been applied; not sent again"
                );
                *head = DestinationHead::Version(written);
                self.progress.reconciled();
                return Ok(());
            }
            let delay = backoff.next_delay();
            tracing::debug!(
                key = ?key,
                version = %entry.version_id,
                head = ?head,
                error = %error,
                delay_ms = delay.as_millis() as u64,
                "reconciled: the destination does not hold the write; sending it again"
            );
            tokio::time::sleep(delay).await;
        }
        Err(S3Error::Transient {
            message: format!(
                "gave up after {UNKNOWN_OUTCOME_ATTEMPTS} attempts whose outcome was unknown"
            ),
            maybe_applied: false,
        })
    }

    /// The destination version our write of `entry` created, if the destination shows it was applied:
    /// its newest entry is new since `head` and is the same as `entry` (kind, size and ETag, or the
    /// HEAD comparison where ETags are not comparable, or else their bytes: a rare case, and a guess
    /// either way would lose or duplicate a version).
    async fn applied(
        &self,
        key: &str,
        entry: &Entry,
        head: &DestinationHead,
    ) -> S3Result<Option<String>> {
        let newest = newest_entries(&*self.destination, self.destination_bucket(), key).await?;
        if !is_new(&newest, head) {
            return Ok(None);
        }
        let written = &newest[0];
        let compare = match self.job.compare {
            Compare::Metadata => Compare::Content,
            chosen => chosen,
        };
        Ok(match self.same_entry(entry, written, key, compare).await? {
            Verdict::Same(_) => Some(written.version_id.clone()),
            Verdict::Different | Verdict::Unproven => None,
        })
    }
}

/// An error that is not the entry's (nor the listing's): the run stops (exit 3) instead of recording
/// the entry failed, and a rerun resumes it.
pub fn stops_the_run(error: &S3Error) -> bool {
    error.is_retryable() || matches!(error, S3Error::BadCredentials { .. })
}

/// What a request that met `error` (one `stops_the_run` accepts) did, and what to do: the end of a
/// sentence about that request.
pub fn why_the_run_stops(error: &S3Error) -> String {
    match error {
        S3Error::BadCredentials { code, .. } => format!(
            "was refused ({error}): {}",
            crate::preflight::credentials_fix(code)
        ),
        _ => format!(
            "kept failing with a temporary error after every retry ({error}); the endpoint may be down or \
             overloaded"
        ),
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

/// Whether the destination key's newest entries (newest first) show a write made after `head`.
pub fn is_new(newest: &[Entry], head: &DestinationHead) -> bool {
    let Some(first) = newest.first() else {
        return false;
    };
    match head {
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
    fn a_write_is_new_only_after_the_head_it_followed() {
        let head = DestinationHead::Version("v1".into());
        assert!(is_new(
            &[entry("v2", false, 5), entry("v1", false, 5)],
            &head
        ));
        assert!(!is_new(&[entry("v1", false, 5)], &head));
        assert!(!is_new(&[], &head));
        // A first write: only if it is the key's only entry.
        assert!(is_new(&[entry("x", false, 1)], &DestinationHead::Empty));
        assert!(!is_new(
            &[entry("x", false, 1), entry("y", false, 1)],
            &DestinationHead::Empty
        ));
        assert!(!is_new(
            &[entry("x", false, 1)],
            &DestinationHead::Unversioned
        ));
    }

    #[test]
    fn the_watermark_moves_over_finished_keys_in_dispatch_order() {
        let mut watermark = Watermark::default();
        let numbers: Vec<u64> = ["a", "b", "c", "d"]
            .iter()
            .map(|key| watermark.dispatched(key))
            .collect();
        assert_eq!(numbers, [0, 1, 2, 3]);
        assert_eq!(watermark.finished(1), None);
        assert_eq!(watermark.finished(2), None);
        // The first move is recorded at once; the next within a second only every 256 keys.
        assert_eq!(watermark.finished(0), Some("c".into()));
        // Numbers go on from where the passed keys left off.
        assert_eq!(watermark.dispatched("e"), 4);
        assert_eq!(watermark.finished(4), None);
        assert_eq!(watermark.finished(3), None);
        assert_eq!(watermark.take_unrecorded(), Some("e".into()));
        // A number already passed, or never given, changes nothing.
        assert_eq!(watermark.finished(0), None);
        assert_eq!(watermark.finished(99), None);
        assert_eq!(watermark.take_unrecorded(), None);
        let first = watermark.dispatched("f0000");
        for index in 1..WATERMARK_EVERY {
            watermark.dispatched(&format!("f{index:04}"));
        }
        let recorded: Vec<_> = (0..WATERMARK_EVERY as u64)
            .filter_map(|i| watermark.finished(first + i))
            .collect();
        assert_eq!(recorded, [format!("f{:04}", WATERMARK_EVERY - 1)]);
    }
}

#[cfg(test)]
mod memory_tests;
