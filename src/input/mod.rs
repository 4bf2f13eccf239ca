//! Copying from an S3 Inventory report (`--inventory`) or a CSV manifest (`--manifest`) instead of
//! listing the source.
//!
//! # Design
//!
//! An inventory's rows are unsorted and split across files, but the executor replays one key at a time,
//! oldest entry first, in key order (the order the checkpoint's watermark relies on). So loading is a
//! phase of its own, finished before the first write: every data file is read (from the local tree, or
//! downloaded to a temporary file), checked against its size and MD5 from manifest.json, and its rows go
//! through an external sort by key (`sort`: runs of at most 64 MiB of rows spilled to temporary files,
//! then merged). Any bad row, file or checksum stops the run with its file and line before anything is
//! copied, and memory stays bounded whatever the inventory's size.
//!
//! The merged rows are grouped by key and each key's history is planned:
//! - from the rows alone when they tell everything: version ids, IsDeleteMarker, Size, and
//!   LastModifiedDate values that order the versions (IsLatest breaks a tie with the newest). This is the
//!   common case and costs no request.
//! - by listing that key on the source (one ListObjectVersions call) when they cannot: a manifest
//!   (bucket,key[,versionId] carries no order), an inventory without those columns, versions of a key that
//!   share a LastModifiedDate (the report cannot order them; the output says so), and every key with
//!   `--inventory-check`. The listing gives the true order, sizes and kinds; only the versions the input
//!   names are kept, and a named version the source no longer has is reported as a failed entry (the
//!   report can be up to two days old).
//!
//! Resuming re-reads the input (it is the same file), skipping the keys the checkpoint proves done.

#[cfg(any(test, feature = "testing"))]
pub mod fixture;
pub mod inventory;
pub mod rows;
pub mod sort;

use std::collections::HashSet;
use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use futures::StreamExt;
use tokio::sync::mpsc;

use crate::history::{KeyHistory, Selection, list_key};
use crate::progress::{Failure, Progress};
use crate::s3::{Entry, EntryKind, S3Api, S3Error};
use rows::Row;
use sort::{Sorted, Sorter};

/// Where a copy's entries come from when not from a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputSpec {
    /// An S3 Inventory report's manifest.json (s3:// or a local path); `check` lists every key first.
    Inventory { uri: String, check: bool },
    /// A CSV of bucket,key[,versionId] rows (s3:// or a local path, optionally gzip'd).
    Manifest { uri: String },
}

impl fmt::Display for InputSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputSpec::Inventory { uri, .. } => write!(f, "inventory {uri}"),
            InputSpec::Manifest { uri } => write!(f, "manifest {uri}"),
        }
    }
}

/// A local path or an object, as the user named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uri {
    Local(PathBuf),
    S3 { bucket: String, key: String },
}

impl Uri {
    pub fn parse(text: &str) -> Result<Uri, InputError> {
        match text.strip_prefix("s3://") {
            None => Ok(Uri::Local(PathBuf::from(text))),
            Some(rest) => match rest.split_once('/') {
                Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() => Ok(Uri::S3 {
                    bucket: bucket.to_string(),
                    key: key.to_string(),
                }),
                _ => Err(InputError::File {
                    file: text.to_string(),
                    message: "an s3:// input names an object: s3://BUCKET/KEY".into(),
                }),
            },
        }
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Uri::Local(path) => write!(f, "{}", path.display()),
            Uri::S3 { bucket, key } => write!(f, "s3://{bucket}/{key}"),
        }
    }
}

/// A bad input, named by file and, where it is a row, line. Found before anything is copied.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{file}, line {line}: {message}")]
    Row {
        file: String,
        line: u64,
        message: String,
    },
    #[error("{file}: {message}")]
    File { file: String, message: String },
    #[error("failed to read {file}: {source}")]
    Read { file: String, source: S3Error },
}

/// The input's rows, sorted by key, ready to be planned.
pub struct Loaded {
    pub sorted: Sorted,
    pub rows: u64,
    pub files: usize,
    /// Every key is planned by listing it (a manifest, or `--inventory-check`).
    pub list_every_key: bool,
}

/// Reads, checks and sorts the input. Nothing is copied before this returns, so a bad input copies nothing.
pub async fn load<C: S3Api>(
    spec: &InputSpec,
    client: &C,
    source_bucket: &str,
    latest_only: bool,
) -> Result<Loaded, InputError> {
    let scratch = tempfile::tempdir().map_err(|e| InputError::File {
        file: std::env::temp_dir().display().to_string(),
        message: format!("cannot create a temporary directory: {e}"),
    })?;
    match spec {
        InputSpec::Inventory { uri, check } => {
            let uri = Uri::parse(uri)?;
            let report =
                inventory::Report::open(&uri, client, source_bucket, scratch.path()).await?;
            let files = report.files.len();
            let bucket = source_bucket.to_string();
            let (sorter, _) = blocking(move || report.read_rows(&bucket)).await?;
            Ok(Loaded {
                rows: sorter.rows(),
                sorted: finish(sorter)?,
                files,
                list_every_key: *check,
            })
        }
        InputSpec::Manifest { uri } => {
            let (path, name) = if uri == "-" {
                let path = scratch.path().join("manifest.csv");
                (stdin_to(path).await?, "standard input".to_string())
            } else {
                let uri = Uri::parse(uri)?;
                let path = fetch(&uri, client, scratch.path(), "manifest.csv").await?;
                (path, uri.to_string())
            };
            let bucket = source_bucket.to_string();
            let shown = name.clone();
            let (sorter, named_versions) = blocking(move || {
                let mut sorter = Sorter::new(sort::DEFAULT_BUDGET);
                let mut reader = open_data(&path, &name)?;
                let named = read_csv(&mut reader, &name, &mut sorter, |record| {
                    rows::manifest_row(record, &bucket)
                })?;
                Ok((sorter, named))
            })
            .await?;
            if latest_only && named_versions > 0 {
                return Err(InputError::File {
                    file: shown,
                    message: "--latest-only conflicts with a manifest that names versions: drop \
                              --latest-only to copy the named versions, or use a manifest of bucket,key rows"
                        .into(),
                });
            }
            Ok(Loaded {
                rows: sorter.rows(),
                sorted: finish(sorter)?,
                files: 1,
                list_every_key: true,
            })
        }
    }
}

/// `--manifest -`: standard input copied into `path`, to be read (and sorted) like a file.
async fn stdin_to(path: PathBuf) -> Result<PathBuf, InputError> {
    blocking(move || {
        let failed = |e: std::io::Error| InputError::File {
            file: "standard input".into(),
            message: e.to_string(),
        };
        let mut file = std::fs::File::create(&path).map_err(failed)?;
        std::io::copy(&mut std::io::stdin().lock(), &mut file).map_err(failed)?;
        Ok(path)
    })
    .await
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, InputError> + Send + 'static,
) -> Result<T, InputError> {
    tokio::task::spawn_blocking(work)
        .await
        .expect("input reader panicked")
}

fn finish(sorter: Sorter) -> Result<Sorted, InputError> {
    sorter.finish().map_err(|e| InputError::File {
        file: std::env::temp_dir().display().to_string(),
        message: format!("sorting the input's rows in temporary files failed: {e}"),
    })
}

/// A local path for `uri`: the file itself, or the object downloaded into `scratch`.
async fn fetch<C: S3Api>(
    uri: &Uri,
    client: &C,
    scratch: &Path,
    name: &str,
) -> Result<PathBuf, InputError> {
    match uri {
        Uri::Local(path) => Ok(path.clone()),
        Uri::S3 { bucket, key } => {
            let path = scratch.join(name);
            client
                .download(bucket, key, &path)
                .await
                .map_err(|source| InputError::Read {
                    file: uri.to_string(),
                    source,
                })?;
            Ok(path)
        }
    }
}

/// Counts bytes and computes the MD5 of what is read through it (a data file's checks).
pub struct Checked<R> {
    inner: R,
    md5: md5::Md5,
    bytes: u64,
}

impl<R: Read> Read for Checked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use md5::Digest;
        let n = self.inner.read(buf)?;
        self.md5.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

impl<R> Checked<R> {
    pub fn new(inner: R) -> Self {
        use md5::Digest;
        Checked {
            inner,
            md5: md5::Md5::new(),
            bytes: 0,
        }
    }

    /// (bytes read, lowercase hex MD5).
    pub fn finish(self) -> (u64, String) {
        use md5::Digest;
        let digest = self.md5.finalize();
        (self.bytes, crate::digest::hex(&digest))
    }
}

/// A data file's text: as it is, or gunzipped when it starts with the gzip magic bytes.
pub enum Data<R: BufRead> {
    Plain(R),
    Gzip(BufReader<flate2::bufread::MultiGzDecoder<R>>),
}

impl<R: BufRead> Data<R> {
    pub fn new(mut reader: R, name: &str) -> Result<Self, InputError> {
        let head = reader.fill_buf().map_err(|e| InputError::File {
            file: name.to_string(),
            message: format!("cannot read: {e}"),
        })?;
        Ok(if head.starts_with(&[0x1f, 0x8b]) {
            Data::Gzip(BufReader::with_capacity(
                1 << 20,
                flate2::bufread::MultiGzDecoder::new(reader),
            ))
        } else {
            Data::Plain(reader)
        })
    }

    pub fn into_inner(self) -> R {
        match self {
            Data::Plain(reader) => reader,
            Data::Gzip(reader) => reader.into_inner().into_inner(),
        }
    }
}

impl<R: BufRead> Read for Data<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Data::Plain(reader) => reader.read(buf),
            Data::Gzip(reader) => reader.read(buf),
        }
    }
}

/// Opens a local data file.
pub fn open_data(path: &Path, name: &str) -> Result<Data<BufReader<std::fs::File>>, InputError> {
    let file = std::fs::File::open(path).map_err(|e| InputError::File {
        file: name.to_string(),
        message: format!("cannot open: {e}"),
    })?;
    Data::new(BufReader::with_capacity(1 << 20, file), name)
}

/// Reads CSV rows (no header) into the sorter; returns how many rows named a version id.
pub fn read_csv<R: Read>(
    reader: &mut R,
    name: &str,
    sorter: &mut Sorter,
    mut parse: impl FnMut(&csv::ByteRecord) -> Result<Row, rows::RowError>,
) -> Result<u64, InputError> {
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .buffer_capacity(1 << 20)
        .from_reader(reader);
    let mut record = csv::ByteRecord::new();
    let mut named_versions = 0;
    loop {
        let line = csv.position().line();
        match csv.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(error) => {
                let message = match error.kind() {
                    csv::ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
                        "the file ends early: a truncated gzip stream; download or regenerate it"
                            .into()
                    }
                    csv::ErrorKind::Io(io) => format!("cannot read: {io} (a corrupt gzip stream?)"),
                    _ => format!("not CSV: {error}"),
                };
                return Err(InputError::Row {
                    file: name.to_string(),
                    line,
                    message,
                });
            }
        }
        let line = record.position().map_or(line, |p| p.line());
        // A blank line (a trailing newline) is not a row.
        if record.len() == 1 && record[0].is_empty() {
            continue;
        }
        let row = parse(&record).map_err(|e| InputError::Row {
            file: name.to_string(),
            line,
            message: e.0,
        })?;
        named_versions += u64::from(row.version_id.is_some());
        sorter.push(row).map_err(|e| InputError::File {
            file: std::env::temp_dir().display().to_string(),
            message: format!("spilling sorted rows to a temporary file failed: {e}"),
        })?;
    }
    Ok(named_versions)
}

/// How one key's history is obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPlan {
    /// The rows say everything.
    Ready(KeyHistory),
    /// List the key on the source and keep these versions (None: the current one).
    List {
        key: String,
        wanted: Vec<Option<String>>,
        /// Versions share a LastModifiedDate: say so.
        tie: bool,
    },
}

/// Plans one key from its rows (in any order).
pub fn plan_key(key: String, mut rows: Vec<Row>, list_every_key: bool) -> KeyPlan {
    // Oldest first; a row repeated (same version, so same time) lands next to itself and is dropped.
    rows.sort_by_key(|r| (r.last_modified, r.is_latest.unwrap_or(false)));
    rows.dedup_by(|a, b| a.version_id == b.version_id);
    let complete = rows.iter().all(|r| {
        r.version_id.is_some()
            && r.last_modified.is_some()
            && match r.is_delete_marker {
                Some(true) => true,
                Some(false) => r.size.is_some(),
                None => false,
            }
    });
    let list = |rows: Vec<Row>, tie| KeyPlan::List {
        key: key.clone(),
        wanted: rows.into_iter().map(|r| r.version_id).collect(),
        tie,
    };
    if list_every_key || !complete {
        return list(rows, false);
    }
    let tie = rows.windows(2).any(|w| {
        w[0].last_modified == w[1].last_modified
            && w[0].is_latest.unwrap_or(false) == w[1].is_latest.unwrap_or(false)
    });
    // IsLatest on anything but the newest contradicts the timestamps: trust a listing instead.
    let contradiction = rows.iter().rev().skip(1).any(|r| r.is_latest == Some(true));
    if tie || contradiction {
        return list(rows, tie);
    }
    let entries = rows
        .into_iter()
        .map(|row| Entry {
            key: key.clone(),
            version_id: row.version_id.expect("complete"),
            is_latest: row.is_latest.unwrap_or(false),
            last_modified: String::new(),
            kind: if row.is_delete_marker == Some(true) {
                EntryKind::DeleteMarker
            } else {
                EntryKind::Object {
                    size: row.size.expect("complete"),
                    etag: String::new(),
                    storage_class: row.storage_class,
                }
            },
        })
        .collect();
    KeyPlan::Ready(KeyHistory { key, entries })
}

/// Keeps the listed entries the input names; returns them and the named versions the source lacks.
pub fn keep_wanted(
    listed: Option<KeyHistory>,
    key: &str,
    wanted: &[Option<String>],
) -> (Option<KeyHistory>, Vec<String>) {
    let entries = listed.map(|h| h.entries).unwrap_or_default();
    let mut keep = HashSet::new();
    let mut missing = Vec::new();
    for version in wanted {
        match version {
            Some(id) if entries.iter().any(|e| &e.version_id == id) => {
                keep.insert(id.clone());
            }
            Some(id) => missing.push(id.clone()),
            None => match entries.last() {
                Some(current) if !current.is_delete_marker() => {
                    keep.insert(current.version_id.clone());
                }
                _ => missing.push("(current)".into()),
            },
        }
    }
    let entries: Vec<Entry> = entries
        .into_iter()
        .filter(|e| keep.contains(&e.version_id))
        .collect();
    let history = (!entries.is_empty()).then(|| KeyHistory {
        key: key.to_string(),
        entries,
    });
    (history, missing)
}

/// How many histories wait between the stages.
const QUEUE: usize = 1024;
/// Keys listed at once to plan them.
const LISTINGS_IN_FLIGHT: usize = 32;
/// Tie notes printed before only a count is kept.
const TIE_NOTES: u64 = 10;

/// Streams the loaded rows as selected histories in key order. `skip` names keys an earlier run finished.
pub fn histories<C: S3Api>(
    loaded: Loaded,
    client: Arc<C>,
    selection: Selection,
    skip: Box<dyn Fn(&str) -> bool + Send>,
    progress: Arc<Progress>,
) -> mpsc::Receiver<Result<KeyHistory, S3Error>> {
    let (keys_tx, mut keys_rx) = mpsc::channel::<Result<(String, Vec<Row>), String>>(QUEUE);
    let prefix = selection.mapping.source.prefix.clone();
    let chosen = selection.clone();
    let Loaded {
        sorted,
        list_every_key,
        ..
    } = loaded;
    tokio::task::spawn_blocking(move || {
        let mut current: Option<(String, Vec<Row>)> = None;
        let wanted = |key: &str| key.starts_with(&prefix) && chosen.selects_key(key) && !skip(key);
        for row in sorted {
            let row = match row {
                Ok(row) => row,
                Err(error) => {
                    let _ = keys_tx.blocking_send(Err(format!(
                        "reading the sorted rows back from a temporary file failed: {error}"
                    )));
                    return;
                }
            };
            match &mut current {
                Some((key, rows)) if *key == row.key => rows.push(row),
                _ => {
                    if let Some(done) = current.take()
                        && wanted(&done.0)
                        && keys_tx.blocking_send(Ok(done)).is_err()
                    {
                        return;
                    }
                    current = Some((row.key.clone(), vec![row]));
                }
            }
        }
        if let Some(done) = current.take().filter(|(key, _)| wanted(key)) {
            let _ = keys_tx.blocking_send(Ok(done));
        }
    });

    let (sender, receiver) = mpsc::channel(QUEUE);
    let bucket = selection.mapping.source.bucket.clone();
    let ties = Arc::new(AtomicU64::new(0));
    tokio::spawn(async move {
        let keys = futures::stream::poll_fn(move |cx| keys_rx.poll_recv(cx));
        let mut planned = keys
            .map(|grouped| {
                let client = Arc::clone(&client);
                let (bucket, selection, progress, ties) = (
                    bucket.clone(),
                    selection.clone(),
                    Arc::clone(&progress),
                    Arc::clone(&ties),
                );
                async move {
                    let (key, rows) = grouped.map_err(|message| S3Error::Other {
                        code: "InputRead".into(),
                        message,
                    })?;
                    let history = match plan_key(key, rows, list_every_key) {
                        KeyPlan::Ready(history) => Some(history),
                        KeyPlan::List { key, wanted, tie } => {
                            if tie && ties.fetch_add(1, Relaxed) < TIE_NOTES {
                                eprintln!(
                                    "note: versions of {key:?} share a LastModifiedDate, so the report cannot order \
                                     them; their order is read from the source's listing"
                                );
                            }
                            let mut all = selection.clone();
                            all.latest_only = false;
                            let listed = list_key(&*client, &bucket, &key, &all).await?;
                            let (history, missing) = keep_wanted(listed, &key, &wanted);
                            for version_id in missing {
                                progress.failed(
                                    Failure {
                                        bucket: bucket.clone(),
                                        key: key.clone(),
                                        version_id,
                                        operation: "listing the source key".into(),
                                        code: "NoSuchVersion".into(),
                                        reason: "named by the input but not in the source (deleted since the \
                                                 report was made?)"
                                            .into(),
                                    },
                                    0,
                                );
                            }
                            history
                        }
                    };
                    Ok(history.and_then(|h| selection.select_counted(h, &progress)))
                }
            })
            .buffered(LISTINGS_IN_FLIGHT);
        while let Some(result) = planned.next().await {
            let history = match result {
                Ok(Some(history)) => history,
                Ok(None) => continue,
                Err(error) => {
                    let _ = sender.send(Err(error)).await;
                    return;
                }
            };
            if sender.send(Ok(history)).await.is_err() {
                return;
            }
        }
        let tied = ties.load(Relaxed);
        if tied > TIE_NOTES {
            eprintln!(
                "note: {tied} keys in all had versions sharing a LastModifiedDate and were ordered by listing them"
            );
        }
        progress.listing_done.store(true, Relaxed);
        tracing::info!(
            entries = progress.listed_entries.load(Relaxed),
            "input read to the end"
        );
    });
    receiver
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(version: &str, modified: &str, latest: bool, marker: bool) -> Row {
        Row {
            key: "k".into(),
            version_id: Some(version.into()),
            is_latest: Some(latest),
            is_delete_marker: Some(marker),
            size: (!marker).then_some(3),
            last_modified: rows::parse_time(modified.as_bytes()),
            storage_class: None,
        }
    }

    fn ids(plan: &KeyPlan) -> Vec<&str> {
        match plan {
            KeyPlan::Ready(h) => h.entries.iter().map(|e| e.version_id.as_str()).collect(),
            KeyPlan::List { .. } => panic!("expected a ready plan, got {plan:?}"),
        }
    }

    #[test]
    fn orders_a_keys_rows_by_last_modified_oldest_first() {
        let rows = vec![
            row("c", "2024-01-03T00:00:00.000Z", true, false),
            row("a", "2024-01-01T00:00:00.000Z", false, false),
            row("b", "2024-01-02T00:00:00.000Z", false, true),
            row("a", "2024-01-01T00:00:00.000Z", false, false), // a duplicate row
        ];
        let plan = plan_key("k".into(), rows, false);
        assert_eq!(ids(&plan), ["a", "b", "c"]);
        let KeyPlan::Ready(history) = plan else {
            unreachable!()
        };
        assert!(history.entries[1].is_delete_marker());
    }

    #[test]
    fn is_latest_breaks_a_tie_with_the_newest() {
        let rows = vec![
            row("new", "2024-01-01T00:00:00.000Z", true, false),
            row("old", "2024-01-01T00:00:00.000Z", false, false),
        ];
        assert_eq!(ids(&plan_key("k".into(), rows, false)), ["old", "new"]);
    }

    #[test]
    fn ties_missing_columns_and_contradictions_are_listed() {
        let tied = vec![
            row("x", "2024-01-01T00:00:00.000Z", false, false),
            row("y", "2024-01-01T00:00:00.000Z", false, false),
            row("z", "2024-01-02T00:00:00.000Z", true, false),
        ];
        assert!(matches!(
            plan_key("k".into(), tied, false),
            KeyPlan::List { tie: true, .. }
        ));
        let mut no_size = row("x", "2024-01-01T00:00:00.000Z", true, false);
        no_size.size = None;
        assert!(matches!(
            plan_key("k".into(), vec![no_size], false),
            KeyPlan::List { tie: false, .. }
        ));
        let contradiction = vec![
            row("x", "2024-01-01T00:00:00.000Z", true, false),
            row("y", "2024-01-02T00:00:00.000Z", false, false),
        ];
        assert!(matches!(
            plan_key("k".into(), contradiction, false),
            KeyPlan::List { .. }
        ));
        let fine = vec![row("x", "2024-01-01T00:00:00.000Z", true, false)];
        assert!(matches!(
            plan_key("k".into(), fine, true),
            KeyPlan::List { .. }
        ));
    }

    #[test]
    fn listing_keeps_only_the_named_versions_and_reports_the_missing_ones() {
        let entry = |id: &str, marker: bool| Entry {
            key: "k".into(),
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
        };
        let listed = KeyHistory {
            key: "k".into(),
            entries: vec![entry("1", false), entry("2", true), entry("3", false)],
        };
        let wanted = [Some("3".to_string()), Some("1".into()), Some("gone".into())];
        let (history, missing) = keep_wanted(Some(listed.clone()), "k", &wanted);
        let ids: Vec<_> = history
            .unwrap()
            .entries
            .into_iter()
            .map(|e| e.version_id)
            .collect();
        assert_eq!(ids, ["1", "3"]);
        assert_eq!(missing, ["gone"]);
        let (current, missing) = keep_wanted(Some(listed), "k", &[None]);
        assert_eq!(current.unwrap().entries[0].version_id, "3");
        assert!(missing.is_empty());
        let (nothing, missing) = keep_wanted(None, "k", &[None]);
        assert!(nothing.is_none());
        assert_eq!(missing, ["(current)"]);
    }
}
