//! Listing a source range into per-key histories, oldest entry first, streamed with backpressure.
//!
//! ListObjectVersions returns keys in order and, within a key, entries newest first, so a key's history
//! is a contiguous run of entries (possibly across pages). Only the key being assembled is held in
//! memory; finished histories go into a bounded channel that the executor drains.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::location::KeyMapping;
use crate::progress::Progress;
use crate::s3::{Entry, ListRequest, S3Api, S3Error};

/// Every entry of one key, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyHistory {
    pub key: String,
    pub entries: Vec<Entry>,
}

/// Groups a listing's entries (newest first within a key) into histories (oldest first).
#[derive(Debug, Default)]
pub struct HistoryBuilder {
    current: Option<KeyHistory>,
}

impl HistoryBuilder {
    /// Adds an entry; returns the previous key's history when this entry starts a new key.
    pub fn push(&mut self, entry: Entry) -> Option<KeyHistory> {
        match &mut self.current {
            Some(history) if history.key == entry.key => {
                history.entries.push(entry);
                None
            }
            _ => {
                let finished = self.finish();
                self.current = Some(KeyHistory {
                    key: entry.key.clone(),
                    entries: vec![entry],
                });
                finished
            }
        }
    }

    pub fn finish(&mut self) -> Option<KeyHistory> {
        self.current.take().map(|mut history| {
            put_in_listing_order(&mut history.entries);
            history.entries.reverse();
            history
        })
    }
}

/// S3 lists a key's entries newest first, versions and delete markers interleaved, and that order is
/// the truth (times tie). Some S3-compatible servers list a key's versions, then its delete markers:
/// when the listing contradicts itself (an entry newer than the one before it, or the current entry
/// not first), the entries are put back in order by IsLatest, then LastModified, keeping the listed
/// order among ties.
fn put_in_listing_order(newest_first: &mut [Entry]) {
    let contradicted = newest_first.iter().skip(1).any(|e| e.is_latest)
        || newest_first
            .windows(2)
            .any(|w| w[0].last_modified < w[1].last_modified);
    if contradicted {
        newest_first
            .sort_by(|a, b| (b.is_latest, &b.last_modified).cmp(&(a.is_latest, &a.last_modified)));
    }
}

/// This process's part of the keys: shard `index` of `count` (0-based), by a stable hash of the source
/// key, so a key's versions never split and N processes together cover every key once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl Shard {
    pub fn owns(&self, source_key: &str) -> bool {
        crate::digest::fnv1a(source_key.as_bytes()) % self.count == self.index
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Which keys and entries a run copies.
#[derive(Debug, Clone)]
pub struct Selection {
    pub mapping: KeyMapping,
    /// Prefixes relative to the source prefix.
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub latest_only: bool,
    pub shard: Option<Shard>,
    /// The source bucket has never been versioned: it is listed with ListObjectsV2 and its (null)
    /// versions are copied without naming them, which costs the server less.
    pub source_unversioned: bool,
    /// `--as-of`: only entries last modified at or before this moment (Unix milliseconds), so each
    /// key's history is what it was then.
    pub as_of: Option<i64>,
}

impl Selection {
    /// Every key and every entry of `mapping`'s source: no filter, shard or cut-off.
    pub fn all(mapping: KeyMapping) -> Selection {
        Selection {
            mapping,
            include: Vec::new(),
            exclude: Vec::new(),
            latest_only: false,
            shard: None,
            source_unversioned: false,
            as_of: None,
        }
    }

    pub fn selects_key(&self, source_key: &str) -> bool {
        if self.shard.is_some_and(|shard| !shard.owns(source_key)) {
            return false;
        }
        let relative = self.mapping.relative(source_key);
        (self.include.is_empty()
            || self
                .include
                .iter()
                .any(|p| relative.starts_with(p.as_str())))
            && !self
                .exclude
                .iter()
                .any(|p| relative.starts_with(p.as_str()))
    }

    /// The part of a history to replay, or None for nothing.
    pub fn select(&self, mut history: KeyHistory) -> Option<KeyHistory> {
        if !self.selects_key(&history.key) {
            return None;
        }
        if let Some(as_of) = self.as_of {
            // Histories are oldest first: what came later is cut off. An entry without a readable time
            // (none comes from a listing) is kept.
            let later = history
                .entries
                .iter()
                .position(|e| unix_millis(&e.last_modified).is_some_and(|at| at > as_of))
                .unwrap_or(history.entries.len());
            history.entries.truncate(later);
            if history.entries.is_empty() {
                return None;
            }
        }
        if self.latest_only {
            // The current entry is the newest; a key whose current entry is a delete marker is skipped.
            let current = history.entries.pop()?;
            if current.is_delete_marker() {
                return None;
            }
            history.entries = vec![current];
        }
        Some(history)
    }
}

impl Selection {
    /// The part of `history` to replay, counted as listed in `progress`; None when nothing is selected.
    pub fn select_counted(&self, history: KeyHistory, progress: &Progress) -> Option<KeyHistory> {
        let selected = self.select(history)?;
        progress.listed(
            selected.entries.len() as u64,
            selected.entries.iter().map(Entry::size).sum(),
        );
        Some(selected)
    }
}

/// An S3 timestamp (`2026-11-26T13:43:01.000Z`) as Unix milliseconds.
pub fn unix_millis(time: &str) -> Option<i64> {
    crate::s3::DateTime::from_str(time, crate::s3::DateFormat::DateTime)
        .ok()
        .and_then(|t| t.to_millis().ok())
}

/// How many histories may wait between the lister and the executor, and in each part of the listing
/// being consumed (a prefix's lister, a level's walk).
const QUEUE: usize = 1024;
const PREFIX_QUEUE: usize = 1024;
/// Entries listed ahead of the part being consumed, over every level of one listing. A prefix's
/// pages come one after the other (each asks for the keys after the last), so the prefixes after it
/// must be listed ahead for the copies not to wait on the next page; this bounds what they hold.
const HELD: usize = 16 * 1024;
/// Prefixes listed ahead of the one being consumed.
pub const LISTERS: usize = 16;
/// Levels of sub-prefixes that are split again (each by a delimiter listing of its own) rather than
/// listed by one paginator: a hot prefix with sub-prefixes is listed in parallel too.
const SPLIT_DEPTH: usize = 3;
/// Below the top level, fewer sub-prefixes are listed ahead, so the listers (each holding a page)
/// stay bounded however the levels multiply.
const NESTED_AHEAD: usize = 4;

type Histories = mpsc::Receiver<Result<KeyHistory, S3Error>>;

/// Lists `bucket/prefix` into selected histories, in key order, on background tasks; with `start_after`,
/// only keys after that one.
///
/// The range is split at the first `/` level where it branches (a range whose keys all sit under one
/// sub-prefix is descended into first): one ListObjectVersions with a delimiter names the sub-prefixes,
/// and up to `LISTERS` of them are listed at once, each split again the same way down to `SPLIT_DEPTH`
/// levels (below that by one paginator), while their results are handed on strictly in key order (a
/// prefix's keys all sort between the names around it). At most `LISTERS` list requests are in flight,
/// and the parts listed ahead of the one being consumed hold at most `HELD` entries between them.
pub fn list_histories<C: S3Api>(
    client: Arc<C>,
    bucket: String,
    selection: Selection,
    progress: Arc<Progress>,
    start_after: Option<String>,
) -> Histories {
    list_histories_with(client, bucket, selection, progress, start_after, LISTERS)
}

/// `list_histories` with `listers` list requests at once; 1 lists the range with one paginator.
pub fn list_histories_with<C: S3Api>(
    client: Arc<C>,
    bucket: String,
    selection: Selection,
    progress: Arc<Progress>,
    start_after: Option<String>,
    listers: usize,
) -> Histories {
    list_held(
        client,
        bucket,
        selection,
        progress,
        start_after,
        listers,
        HELD,
    )
}

/// `list_histories_with` whose parts listed ahead hold at most `held` entries between them.
fn list_held<C: S3Api>(
    client: Arc<C>,
    bucket: String,
    selection: Selection,
    progress: Arc<Progress>,
    start_after: Option<String>,
    listers: usize,
    held: usize,
) -> Histories {
    let listing = Arc::new(Listing {
        client,
        bucket,
        selection,
        progress,
        listers: listers.max(1),
        requests: tokio::sync::Semaphore::new(listers.max(1)),
        budget: Budget::new(held),
    });
    let range = listing.selection.mapping.source.prefix.clone();
    let (sender, receiver) = mpsc::channel(QUEUE);
    ordered(
        listing,
        range,
        start_after,
        0,
        Turn::first(),
        Out::Top(sender),
    );
    receiver
}

/// What every lister of one listing shares.
struct Listing<C> {
    client: Arc<C>,
    bucket: String,
    selection: Selection,
    progress: Arc<Progress>,
    listers: usize,
    /// One permit per list request in flight, over all levels.
    requests: tokio::sync::Semaphore,
    budget: Budget,
}

impl<C: S3Api> Listing<C> {
    async fn list(&self, request: ListRequest) -> Result<crate::s3::ListPage, S3Error> {
        let _permit = self.requests.acquire().await.expect("never closed");
        self.client.list_versions(request).await
    }

    fn request(&self, prefix: String, key_marker: Option<String>) -> ListRequest {
        ListRequest {
            bucket: self.bucket.clone(),
            prefix,
            key_marker,
            current_only: self.selection.source_unversioned,
            ..ListRequest::default()
        }
    }

    /// The selected part of `history`, with room for it in the budget unless `turn` is being consumed.
    async fn emit(&self, history: KeyHistory, turn: &Turn) -> Option<Held> {
        let history = self.selection.select_counted(history, &self.progress)?;
        let room = self.budget.admit(turn, history.entries.len()).await;
        Some(Held {
            history,
            _room: room,
        })
    }
}

/// A history listed ahead, with the room it takes in the budget (none if listed while its part was
/// being consumed); the room is freed when the history is handed on to the consumer.
struct Held {
    history: KeyHistory,
    _room: Option<tokio::sync::OwnedSemaphorePermit>,
}

type HeldHistories = mpsc::Receiver<Result<Held, S3Error>>;

/// Entries listed ahead, counted over every level of one listing. A part of the listing that is not
/// being consumed waits for room; the part being consumed never does, since it is what frees room (the
/// parts ahead hold theirs until the consumer reaches them).
struct Budget {
    room: Arc<tokio::sync::Semaphore>,
    size: usize,
    /// Some part of the listing became the one being consumed.
    turned: tokio::sync::Notify,
}

impl Budget {
    fn new(size: usize) -> Budget {
        Budget {
            room: Arc::new(tokio::sync::Semaphore::new(size.max(1))),
            size: size.max(1),
            turned: tokio::sync::Notify::new(),
        }
    }

    /// Room for `entries` (a history larger than the whole budget takes all of it), or None once
    /// `turn` is being consumed.
    async fn admit(
        &self,
        turn: &Turn,
        entries: usize,
    ) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let wanted = entries.clamp(1, self.size) as u32;
        loop {
            let turned = self.turned.notified();
            tokio::pin!(turned);
            // Registered before the check, so a turn that comes between them still wakes this.
            turned.as_mut().enable();
            if turn.is_now() {
                return None;
            }
            tokio::select! {
                room = Arc::clone(&self.room).acquire_many_owned(wanted) => {
                    return Some(room.expect("never closed"));
                }
                _ = &mut turned => {}
            }
        }
    }

    fn turn(&self, turn: &Turn) {
        turn.now.store(true, std::sync::atomic::Ordering::Release);
        self.turned.notify_waiters();
    }
}

/// Whether a part of the listing is being consumed: the level above is draining it, and that level is
/// being consumed too. Once true it stays true (a part is drained to its end).
struct Turn {
    now: std::sync::atomic::AtomicBool,
    above: Option<Arc<Turn>>,
}

impl Turn {
    /// The whole listing: always being consumed.
    fn first() -> Arc<Turn> {
        Arc::new(Turn {
            now: std::sync::atomic::AtomicBool::new(true),
            above: None,
        })
    }

    /// A part of this one, consumed once this one is and its turn comes.
    fn below(self: &Arc<Self>) -> Arc<Turn> {
        Arc::new(Turn {
            now: std::sync::atomic::AtomicBool::new(false),
            above: Some(Arc::clone(self)),
        })
    }

    fn is_now(&self) -> bool {
        self.now.load(std::sync::atomic::Ordering::Acquire)
            && self.above.as_ref().is_none_or(|above| above.is_now())
    }
}

/// Where a level's histories go: to the consumer (the top level, which frees their room) or to the
/// level above.
enum Out {
    Top(mpsc::Sender<Result<KeyHistory, S3Error>>),
    Nested(mpsc::Sender<Result<Held, S3Error>>),
}

impl Out {
    /// False once the receiving side is gone.
    async fn send(&self, result: Result<Held, S3Error>) -> bool {
        match self {
            Out::Top(sender) => sender.send(result.map(|held| held.history)).await.is_ok(),
            Out::Nested(sender) => sender.send(result).await.is_ok(),
        }
    }
}

/// Sends the histories of `range` (after `start_after`) in key order into `out`: split by sub-prefix
/// at `depth` (the top level is 0), or listed by one paginator when there is nothing to gain. `turn`
/// says when this range is being consumed.
fn ordered<C: S3Api>(
    listing: Arc<Listing<C>>,
    range: String,
    start_after: Option<String>,
    depth: usize,
    turn: Arc<Turn>,
    out: Out,
) {
    let top = depth == 0;
    let (segments_tx, mut segments_rx) = mpsc::channel::<Segment>(PREFIX_QUEUE);
    let done = Arc::clone(&listing.progress);
    let emitter = Arc::clone(&listing);
    // The emitter: segments in order, each one drained before the next. Keys must come out strictly
    // increasing (the checkpoint's watermark depends on it): a listing that breaks that is an error.
    tokio::spawn(async move {
        let mut last: Option<String> = None;
        while let Some(segment) = segments_rx.recv().await {
            let mut results = match segment {
                Segment::Ready(result) => SegmentResults::One(Some(result)),
                Segment::Prefix(prefix) => {
                    emitter.budget.turn(&prefix.turn);
                    SegmentResults::Many(prefix)
                }
            };
            while let Some(result) = results.next().await {
                let result = match result {
                    Ok(held) if last.as_ref().is_some_and(|last| held.history.key <= *last) => {
                        Err(S3Error::Other {
                            code: "ListingOutOfOrder".into(),
                            message: format!(
                                "the listing returned {:?} after {:?}: keys must come in order",
                                held.history.key,
                                last.clone().unwrap_or_default()
                            ),
                        })
                    }
                    other => other,
                };
                if let Ok(held) = &result {
                    last = Some(held.history.key.clone());
                }
                let failed = result.is_err();
                if !out.send(result).await || failed {
                    return;
                }
            }
        }
        if top {
            done.listing_done
                .store(true, std::sync::atomic::Ordering::Relaxed);
            tracing::info!(
                entries = done
                    .listed_entries
                    .load(std::sync::atomic::Ordering::Relaxed),
                "listing complete"
            );
        }
    });
    tokio::spawn(async move {
        if listing.listers <= 1 {
            let (sender, receiver) = mpsc::channel(PREFIX_QUEUE);
            let prefix = Prefix {
                histories: receiver,
                turn: turn.below(),
                _ahead: None,
            };
            let turn = Arc::clone(&prefix.turn);
            if segments_tx.send(Segment::Prefix(prefix)).await.is_ok() {
                list_range(&listing, range, start_after, &turn, &sender).await;
            }
        } else if let Err(error) =
            split_range(&listing, range, start_after, depth, &turn, &segments_tx).await
        {
            let _ = segments_tx.send(Segment::Ready(Err(error))).await;
        }
    });
}

/// The results of one segment, one at a time.
enum SegmentResults {
    One(Option<Result<Held, S3Error>>),
    Many(Prefix),
}

impl SegmentResults {
    async fn next(&mut self) -> Option<Result<Held, S3Error>> {
        match self {
            SegmentResults::One(result) => result.take(),
            SegmentResults::Many(prefix) => prefix.histories.recv().await,
        }
    }
}

/// A piece of the ordered output: a history found by the delimiter listing itself, or a sub-prefix
/// being listed by its own task.
enum Segment {
    Ready(Result<Held, S3Error>),
    Prefix(Prefix),
}

/// A sub-prefix being listed ahead: its histories, when it is being consumed, and its place among the
/// sub-prefixes its level lists ahead (freed once it has been drained).
struct Prefix {
    histories: HeldHistories,
    turn: Arc<Turn>,
    _ahead: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// Walks the delimiter listing of `range`, sending its keys and sub-prefixes as segments in order;
/// sub-prefixes are split again down to `SPLIT_DEPTH`, then listed by one paginator each, up to
/// `LISTERS` of them at once at the top level and `NESTED_AHEAD` below.
async fn split_range<C: S3Api>(
    listing: &Arc<Listing<C>>,
    range: String,
    start_after: Option<String>,
    depth: usize,
    turn: &Arc<Turn>,
    segments: &mpsc::Sender<Segment>,
) -> Result<(), S3Error> {
    let after = |key: &str| start_after.as_deref().is_none_or(|marker| key > marker);
    let ahead = if depth == 0 {
        listing.listers
    } else {
        NESTED_AHEAD
    };
    let places = Arc::new(tokio::sync::Semaphore::new(ahead.max(1)));
    let mut builder = HistoryBuilder::default();
    let range = if depth == 0 {
        hot_range(listing, range).await?
    } else {
        range
    };
    // A resume after a key at this level can start the delimiter listing there; one inside a prefix
    // cannot (that prefix sorts before it and would be left out), and walks the level again.
    let level_marker = start_after
        .clone()
        .filter(|marker| !marker[range.len().min(marker.len())..].contains('/'));
    let mut request = listing.request(range, level_marker);
    request.delimiter = Some("/".to_string());
    loop {
        let page = listing.list(request.clone()).await?;
        // The page's keys and prefixes, merged in order (each list is sorted; none is a prefix of a key).
        let mut entries = page.entries.into_iter().peekable();
        let mut prefixes = page.common_prefixes.into_iter().peekable();
        loop {
            let take_prefix = match (entries.peek(), prefixes.peek()) {
                (None, None) => break,
                (Some(_), None) => false,
                (None, Some(_)) => true,
                (Some(entry), Some(prefix)) => prefix.as_str() < entry.key.as_str(),
            };
            if take_prefix {
                let prefix = prefixes.next().expect("peeked");
                if let Some(history) = builder.finish()
                    && let Some(held) = listing.emit(history, turn).await
                    && segments.send(Segment::Ready(Ok(held))).await.is_err()
                {
                    return Ok(());
                }
                // Everything under this prefix sorts below the marker unless the marker is inside it.
                let marker = start_after.clone().filter(|m| m.starts_with(&prefix));
                if marker.is_none() && !after(&prefix) {
                    continue;
                }
                let place = Arc::clone(&places)
                    .acquire_owned()
                    .await
                    .expect("never closed");
                let (sender, receiver) = mpsc::channel(PREFIX_QUEUE);
                let below = turn.below();
                if depth + 1 < SPLIT_DEPTH {
                    ordered(
                        Arc::clone(listing),
                        prefix,
                        marker,
                        depth + 1,
                        Arc::clone(&below),
                        Out::Nested(sender),
                    );
                } else {
                    let listing = Arc::clone(listing);
                    let below = Arc::clone(&below);
                    tokio::spawn(async move {
                        list_range(&listing, prefix, marker, &below, &sender).await;
                    });
                }
                let prefix = Prefix {
                    histories: receiver,
                    turn: below,
                    _ahead: Some(place),
                };
                if segments.send(Segment::Prefix(prefix)).await.is_err() {
                    return Ok(());
                }
            } else {
                let entry = entries.next().expect("peeked");
                if !after(&entry.key) {
                    continue;
                }
                if let Some(history) = builder.push(entry)
                    && let Some(held) = listing.emit(history, turn).await
                    && segments.send(Segment::Ready(Ok(held))).await.is_err()
                {
                    return Ok(());
                }
            }
        }
        if !request.advance(page.next) {
            break;
        }
    }
    if let Some(history) = builder.finish()
        && let Some(held) = listing.emit(history, turn).await
    {
        let _ = segments.send(Segment::Ready(Ok(held))).await;
    }
    Ok(())
}

/// Levels descended at most to find where the key space branches.
const MAX_DESCENT: usize = 8;

/// Where to split `range`: the first level below it with more than one child. A range whose keys all
/// sit under one sub-prefix (`logs/2026/...` under `logs/`) would otherwise be listed by one paginator.
async fn hot_range<C: S3Api>(listing: &Listing<C>, mut range: String) -> Result<String, S3Error> {
    for _ in 0..MAX_DESCENT {
        let mut request = listing.request(range.clone(), None);
        request.delimiter = Some("/".to_string());
        request.max_keys = Some(2);
        let page = listing.list(request).await?;
        match &page.common_prefixes[..] {
            [only] if page.entries.is_empty() && page.next.is_none() => range = only.clone(),
            _ => break,
        }
    }
    Ok(range)
}

/// Lists every key under `prefix` (after `key_marker`) with one paginator into `sender`; `turn` says
/// when that prefix is being consumed.
async fn list_range<C: S3Api>(
    listing: &Listing<C>,
    prefix: String,
    key_marker: Option<String>,
    turn: &Turn,
    sender: &mpsc::Sender<Result<Held, S3Error>>,
) {
    let mut builder = HistoryBuilder::default();
    let mut request = listing.request(prefix, key_marker);
    loop {
        let page = match listing.list(request.clone()).await {
            Ok(page) => page,
            Err(error) => {
                let _ = sender.send(Err(error)).await;
                return;
            }
        };
        for entry in page.entries {
            if let Some(history) = builder.push(entry)
                && let Some(held) = listing.emit(history, turn).await
                && sender.send(Ok(held)).await.is_err()
            {
                return;
            }
        }
        if !request.advance(page.next) {
            break;
        }
    }
    if let Some(history) = builder.finish()
        && let Some(held) = listing.emit(history, turn).await
    {
        let _ = sender.send(Ok(held)).await;
    }
}

/// The selected history of exactly `key` (for retrying a key the main listing has passed).
pub async fn list_key<C: S3Api>(
    client: &C,
    bucket: &str,
    key: &str,
    selection: &Selection,
) -> Result<Option<KeyHistory>, S3Error> {
    let mut builder = HistoryBuilder::default();
    let mut request = ListRequest {
        bucket: bucket.to_string(),
        prefix: key.to_string(),
        current_only: selection.source_unversioned,
        ..ListRequest::default()
    };
    loop {
        let page = client.list_versions(request.clone()).await?;
        // `key` sorts before every longer key it prefixes: its entries come first.
        for entry in page.entries {
            if entry.key != key {
                return Ok(builder.finish().and_then(|h| selection.select(h)));
            }
            builder.push(entry);
        }
        if !request.advance(page.next) {
            return Ok(builder.finish().and_then(|h| selection.select(h)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::location::Location;
    use crate::s3::EntryKind;

    fn entry(key: &str, id: &str, marker: bool) -> Entry {
        Entry {
            key: key.into(),
            version_id: id.into(),
            is_latest: false,
            last_modified: String::new(),
            kind: if marker {
                EntryKind::DeleteMarker
            } else {
                EntryKind::Object {
                    size: 1,
                    etag: String::new(),
                    storage_class: None,
                }
            },
        }
    }

    fn ids(history: &KeyHistory) -> Vec<&str> {
        history
            .entries
            .iter()
            .map(|e| e.version_id.as_str())
            .collect()
    }

    /// `prefixes` prefixes of `keys` keys each (one version), in S3's order.
    fn keys_under_prefixes(prefixes: usize, keys: usize) -> Vec<Entry> {
        let mut entries = Vec::new();
        for p in 0..prefixes {
            for k in 0..keys {
                entries.push(entry(&format!("p{p:02}/k{k:05}"), "v", false));
            }
        }
        entries
    }

    /// Lists every key of a bucket whose listing is `entries`, with `listers`, a budget of `held` and
    /// `start_after`: the fake that answered, the progress it counts into, and the histories.
    fn list_bucket(
        entries: Vec<Entry>,
        listers: usize,
        held: usize,
        start_after: Option<String>,
    ) -> (Arc<crate::s3::fake::FakeS3>, Arc<Progress>, Histories) {
        let fake = Arc::new(crate::s3::fake::FakeS3::listing(entries));
        let progress = Arc::new(Progress::default());
        let mut all = selection(&[], &[], false);
        all.mapping.source = "s3://src".parse::<Location>().unwrap();
        let histories = list_held(
            Arc::clone(&fake),
            "src".into(),
            all,
            Arc::clone(&progress),
            start_after,
            listers,
            held,
        );
        (fake, progress, histories)
    }

    /// How many entries the listing has counted once it has stopped listing more.
    async fn listed_when_settled(progress: &Progress) -> u64 {
        let mut last = u64::MAX;
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(30)).await;
            let now = progress
                .listed_entries
                .load(std::sync::atomic::Ordering::Relaxed);
            if now == last {
                return now;
            }
            last = now;
        }
    }

    /// Lists 12 prefixes of 2,500 keys (three pages each) with `listers` and a budget of `held`, takes
    /// one history and waits: how many entries were listed, and how many pages after the first were
    /// asked for prefixes other than the one being consumed. Then checks that everything comes, in
    /// order, once the consumer goes on.
    async fn listed_ahead(listers: usize, held: usize) -> (u64, usize) {
        let entries = keys_under_prefixes(12, 2500);
        let total = entries.len() as u64;
        let (fake, progress, mut histories) = list_bucket(entries, listers, held, None);
        assert_eq!(histories.recv().await.unwrap().unwrap().key, "p00/k00000");
        let listed = listed_when_settled(&progress).await;
        let later_pages = fake
            .requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| {
                !r.prefix.starts_with("p00/")
                    && r.key_marker.as_deref().is_some_and(|m| m.contains("/k"))
            })
            .count();
        let mut got = 1;
        let mut last = "p00/k00000".to_string();
        while let Some(history) = histories.recv().await {
            let key = history.unwrap().key;
            assert!(key > last, "{key} after {last}");
            last = key;
            got += 1;
        }
        assert_eq!(got, total);
        (listed, later_pages)
    }

    #[tokio::test]
    async fn prefixes_ahead_are_listed_past_their_first_page() {
        // A prefix's pages come one after the other: for the copies not to wait on the next page of
        // the prefix being consumed, the prefixes after it are listed ahead beyond their first page
        // (where the listing used to stop: 36 histories a prefix), as far as the budget allows.
        let held = 6000;
        let (listed, later_pages) = listed_ahead(4, held).await;
        assert!(later_pages > 0, "no prefix ahead went past its first page");
        assert!(
            listed >= held as u64,
            "{listed} entries listed with a budget of {held}"
        );
    }

    #[tokio::test]
    async fn what_the_prefixes_ahead_hold_is_bounded_by_the_budget() {
        let held = 1500;
        let (listed, _) = listed_ahead(4, held).await;
        // The part being consumed fills its queues without taking room: the top queue, its level's
        // segments and its output, and the page in hand; each lister ahead holds one history it has
        // counted and is waiting to find room for.
        let consumed_part = (QUEUE + 2 * PREFIX_QUEUE + 1000) as u64;
        assert!(
            listed <= held as u64 + consumed_part + 4,
            "{listed} entries listed: the budget of {held} does not bind"
        );
    }

    #[tokio::test]
    async fn a_budget_smaller_than_one_history_still_lists_everything_in_order() {
        // The part being consumed never waits for room, however small the budget: nested levels,
        // keys at every level, and histories of more entries than the whole budget.
        let mut entries = vec![entry("a/1", "v", false), entry("c/1", "v", false)];
        for day in 0..6 {
            for hour in 0..3 {
                for n in 0..10 {
                    let key = format!("b/{day:02}/{hour}/{n:02}");
                    for v in (0..4).rev() {
                        entries.push(entry(&key, &format!("v{v}"), false));
                    }
                }
            }
            entries.push(entry(&format!("b/{day:02}/index"), "v", false));
        }
        entries.push(entry("root", "v", false));
        entries.sort_by(|a, b| a.key.cmp(&b.key));
        let mut want: Vec<String> = entries.iter().map(|e| e.key.clone()).collect();
        want.dedup();
        for held in [1, 2, 3] {
            let (_, _, mut histories) = list_bucket(entries.clone(), 16, held, None);
            let mut got = Vec::new();
            let listed = async {
                while let Some(history) = histories.recv().await {
                    got.push(history.unwrap().key);
                }
            };
            tokio::time::timeout(std::time::Duration::from_secs(20), listed)
                .await
                .unwrap_or_else(|_| panic!("the listing stalled with a budget of {held}"));
            assert_eq!(got, want, "budget {held}");
        }
    }

    #[test]
    fn groups_newest_first_listing_into_oldest_first_histories() {
        let mut builder = HistoryBuilder::default();
        // Pages split inside key b: the builder does not care where pages end.
        let listing = [
            entry("a", "a2", true),
            entry("a", "a1", false),
            entry("b", "b3", false),
            entry("b", "b2", true),
            entry("b", "b1", false),
            entry("c", "null", false),
        ];
        let mut histories: Vec<_> = listing
            .into_iter()
            .filter_map(|e| builder.push(e))
            .collect();
        histories.extend(builder.finish());
        assert_eq!(histories.len(), 3);
        assert_eq!(ids(&histories[0]), ["a1", "a2"]);
        assert_eq!(ids(&histories[1]), ["b1", "b2", "b3"]);
        assert_eq!(ids(&histories[2]), ["null"]);
        assert!(builder.finish().is_none());
    }

    #[test]
    fn a_listing_of_versions_then_delete_markers_is_put_back_in_order() {
        // As moto lists it: the versions, then the delete marker that is the current entry.
        let mut builder = HistoryBuilder::default();
        let mut second = entry("k", "second", false);
        second.last_modified = "2026-11-26T13:43:01.000Z".into();
        let mut first = entry("k", "first", false);
        first.last_modified = "2026-11-26T13:43:01.000Z".into();
        let mut marker = entry("k", "marker", true);
        marker.last_modified = "2026-11-26T13:43:01.000Z".into();
        marker.is_latest = true;
        for e in [second, first, marker] {
            assert!(builder.push(e).is_none());
        }
        assert_eq!(
            ids(&builder.finish().unwrap()),
            ["first", "second", "marker"]
        );
        // Newer times listed after older ones are reordered too; a consistent listing is left alone.
        let mut builder = HistoryBuilder::default();
        for (id, time) in [
            ("old", "2026-01-01T00:00:01Z"),
            ("new", "2026-01-01T00:00:02Z"),
        ] {
            let mut e = entry("k", id, false);
            e.last_modified = time.into();
            builder.push(e);
        }
        assert_eq!(ids(&builder.finish().unwrap()), ["old", "new"]);
    }

    fn selection(include: &[&str], exclude: &[&str], latest_only: bool) -> Selection {
        Selection {
            include: include.iter().map(|s| s.to_string()).collect(),
            exclude: exclude.iter().map(|s| s.to_string()).collect(),
            latest_only,
            ..Selection::all(KeyMapping {
                source: "s3://src/data/".parse::<Location>().unwrap(),
                destination: "s3://dst".parse::<Location>().unwrap(),
            })
        }
    }

    #[test]
    fn include_and_exclude_are_relative_to_the_source_prefix() {
        let s = selection(&["logs/", "img/"], &["logs/tmp/"], false);
        assert!(s.selects_key("data/logs/1"));
        assert!(s.selects_key("data/img/a.png"));
        assert!(!s.selects_key("data/logs/tmp/1"));
        assert!(!s.selects_key("data/other"));
        assert!(selection(&[], &[], false).selects_key("data/anything"));
    }

    #[tokio::test]
    async fn a_range_under_one_prefix_is_split_where_it_branches_and_comes_out_in_order() {
        // Everything under data/logs/2026/, which branches into 12 months: keys at every level.
        let mut entries = vec![entry("data/logs/2026/01/a", "v2", false)];
        entries.push(entry("data/logs/2026/01/a", "v1", false));
        for month in 1..=12 {
            for day in 0..30 {
                entries.push(entry(
                    &format!("data/logs/2026/{month:02}/{day:02}"),
                    "v",
                    false,
                ));
            }
        }
        entries.push(entry("data/logs/2026/index", "v", true));
        entries.sort_by(|a, b| a.key.cmp(&b.key));
        let want: Vec<String> = {
            let mut keys: Vec<String> = entries.iter().map(|e| e.key.clone()).collect();
            keys.dedup();
            keys
        };
        let fake = Arc::new(crate::s3::fake::FakeS3::listing(entries));
        let mut histories = list_histories_with(
            Arc::clone(&fake),
            "src".into(),
            selection(&[], &[], false),
            Arc::new(Progress::default()),
            None,
            16,
        );
        let mut got = Vec::new();
        while let Some(history) = histories.recv().await {
            got.push(history.unwrap().key);
        }
        assert_eq!(got, want);
        // Below the two one-child levels, each month was listed by requests of its own.
        let requests = fake.requests.lock().unwrap();
        let mut months: Vec<&str> = requests
            .iter()
            .map(|r| r.prefix.as_str())
            .filter(|p| p.len() == "data/logs/2026/01/".len())
            .collect();
        months.dedup();
        assert_eq!(months.len(), 12, "{months:?}");
    }

    #[tokio::test]
    async fn a_hot_prefix_among_others_is_split_again_and_nothing_is_lost_or_reordered() {
        // b/ holds most keys, in 20 sub-prefixes two levels deep; a/ and c/ are small; keys at every level.
        let mut entries = vec![entry("a/1", "v", false), entry("c/1", "v", false)];
        entries.push(entry("b/top", "v2", true));
        entries.push(entry("b/top", "v1", false));
        for day in 0..20 {
            for hour in 0..3 {
                for n in 0..40 {
                    entries.push(entry(&format!("b/{day:02}/{hour}/{n:02}"), "v", false));
                }
            }
            entries.push(entry(&format!("b/{day:02}/index"), "v", false));
        }
        entries.push(entry("root", "v", false));
        entries.sort_by(|a, b| a.key.cmp(&b.key));
        let mut want: Vec<String> = entries.iter().map(|e| e.key.clone()).collect();
        want.dedup();
        for listers in [16, 1] {
            let (fake, _, mut histories) = list_bucket(entries.clone(), listers, HELD, None);
            let mut got = Vec::new();
            while let Some(history) = histories.recv().await {
                got.push(history.unwrap().key);
            }
            assert_eq!(got, want, "listers {listers}");
            let requests = fake.requests.lock().unwrap();
            let hours = requests
                .iter()
                .filter(|r| r.prefix.starts_with("b/") && r.prefix.len() == "b/00/0/".len())
                .count();
            // With parallel listing the hot prefix's third level is listed part by part.
            assert_eq!(
                hours,
                if listers == 1 { 0 } else { 60 },
                "listers {listers}"
            );
        }
        // A resume from a key three levels down lists exactly the keys after it.
        for marker in ["b/07/1/20", "b/07/", "b/top", "a/1", "root"] {
            let (_, _, mut histories) =
                list_bucket(entries.clone(), 16, HELD, Some(marker.to_string()));
            let mut got = Vec::new();
            while let Some(history) = histories.recv().await {
                got.push(history.unwrap().key);
            }
            let after: Vec<String> = want
                .iter()
                .filter(|k| k.as_str() > marker)
                .cloned()
                .collect();
            assert_eq!(got, after, "after {marker}");
        }
    }

    #[test]
    fn shards_split_the_keys_without_overlap() {
        let keys: Vec<String> = (0..3000).map(|i| format!("data/{i}")).collect();
        let count = 4;
        let mut owners = vec![0; keys.len()];
        for index in 0..count {
            let shard = Shard { index, count };
            let owned = keys.iter().filter(|k| shard.owns(k)).count();
            assert!(
                (600..900).contains(&owned),
                "shard {shard}: {owned} of 3000"
            );
            for (n, key) in keys.iter().enumerate() {
                owners[n] += usize::from(shard.owns(key));
            }
        }
        assert!(owners.iter().all(|&o| o == 1));
    }

    #[test]
    fn as_of_keeps_each_history_as_it_was_then() {
        let timed = |id: &str, marker: bool, time: &str| Entry {
            last_modified: time.into(),
            ..entry("data/k", id, marker)
        };
        let history = KeyHistory {
            key: "data/k".into(),
            entries: vec![
                timed("1", false, "2026-01-01T00:00:00.000Z"),
                timed("2", true, "2026-01-02T00:00:00.000Z"),
                timed("3", false, "2026-01-03T00:00:00.500Z"),
            ],
        };
        let mut s = selection(&[], &[], false);
        s.as_of = unix_millis("2026-01-02T00:00:00Z");
        assert_eq!(ids(&s.select(history.clone()).unwrap()), ["1", "2"]);
        // Latest only: the current entry then was the delete marker, so the key is skipped.
        s.latest_only = true;
        assert!(s.select(history.clone()).is_none());
        s.as_of = unix_millis("2025-12-31T23:59:59Z");
        assert!(s.select(history).is_none());
    }

    #[test]
    fn latest_only_keeps_the_current_version_and_skips_deleted_keys() {
        let s = selection(&[], &[], true);
        let live = KeyHistory {
            key: "data/k".into(),
            entries: vec![entry("data/k", "1", false), entry("data/k", "2", false)],
        };
        assert_eq!(ids(&s.select(live).unwrap()), ["2"]);
        let deleted = KeyHistory {
            key: "data/k".into(),
            entries: vec![entry("data/k", "1", false), entry("data/k", "2", true)],
        };
        assert!(s.select(deleted).is_none());
    }
}
