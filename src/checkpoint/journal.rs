//! The journal file: append-only, group commit, compaction.
//!
//! One writer thread owns the file. Workers send records; a record sent with `append_durable` is
//! acknowledged once it is written to the file (in the kernel: it survives any crash of this process,
//! kill -9 included), and every record waiting at that moment shares that write. fsync runs at most every
//! `SYNC_INTERVAL` and at every flush (group commit): on the 2 cores this was measured on, an fsync per
//! intent cost 13% of copy throughput; this costs none. What it gives up: after a crash of the machine
//! itself, up to `SYNC_INTERVAL` of records can be gone, so entries in flight then may be written again. The writer applies each record
//! to a live `State`; when the file has grown to several times what that state needs, it writes the
//! state as a new journal beside it, fsyncs it and renames it over the old one.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use super::record::{Decoded, JobIdentity, Record, decode, encode};
use super::state::State;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error(
        "failed to open checkpoint {path}: {source}; choose a writable path with --checkpoint, or --no-checkpoint"
    )]
    Open {
        path: String,
        source: std::io::Error,
    },
    #[error("failed to write checkpoint {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "checkpoint {path} is corrupt at line {line} ({reason}); pass --restart to discard it: that is safe, the copy compares every key with the destination and writes only what it lacks"
    )]
    Corrupt {
        path: String,
        line: usize,
        reason: &'static str,
    },
    #[error("checkpoint {path} has no job record; pass --restart to discard it")]
    NoJob { path: String },
}

/// Reads a journal into the state it proves. A damaged last line is a torn append and is dropped.
pub fn replay(path: &Path) -> Result<State, JournalError> {
    let file = File::open(path).map_err(|source| JournalError::Open {
        path: path.display().to_string(),
        source,
    })?;
    let mut state = State::default();
    let mut damaged: Option<(usize, &'static str)> = None;
    for (number, line) in BufReader::new(file).split(b'\n').enumerate() {
        let line = line.map_err(|source| JournalError::Open {
            path: path.display().to_string(),
            source,
        })?;
        if let Some((line, reason)) = damaged {
            // A damaged line followed by more lines is not a torn append.
            return Err(JournalError::Corrupt {
                path: path.display().to_string(),
                line,
                reason,
            });
        }
        match decode(&line) {
            Decoded::Record(record) => state.apply(&record),
            Decoded::Damaged(reason) => damaged = Some((number + 1, reason)),
        }
    }
    if state.identity.is_none()
        && std::fs::metadata(path)
            .map(|m| m.len() > 0)
            .unwrap_or(false)
    {
        return Err(JournalError::NoJob {
            path: path.display().to_string(),
        });
    }
    Ok(state)
}

enum Command {
    Append(Record),
    Durable(Record, oneshot::Sender<()>),
    Flush(oneshot::Sender<Result<(), String>>),
}

/// Appends to a journal from many tasks. Dropping it flushes and closes the file.
pub struct Journal {
    sender: Option<Sender<Command>>,
    writer: Option<JoinHandle<()>>,
    path: PathBuf,
    /// What the journal proves, kept current by the writer (one copy: it can hold many keys).
    state: Arc<Mutex<State>>,
    /// The writer's first error; from then on it acknowledges nothing.
    failure: Arc<Mutex<Option<String>>>,
}

/// Compact when the file holds this many times the records the live state needs (and at least this many).
const COMPACT_RATIO: usize = 4;
const COMPACT_MIN_RECORDS: usize = 100_000;
/// How long written records may wait for an fsync.
const SYNC_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);
/// After a batch of at least `GATHER_FROM` records the writer waits this long before the next: under
/// load the records of that time arrive while it is not waiting on the channel, so their senders wake
/// no thread. Writing as each record came cost a wake-up (a futex, a context switch on a loaded core)
/// per batch of 1-2 records: at 1,024 copies in flight the writer switched 15,700 times a second and
/// the checkpoint cost a fifth of the client's CPU per copy. A record sent alone (one key replayed
/// version after version) is written at once, as before.
const GATHER: std::time::Duration = std::time::Duration::from_micros(500);
const GATHER_FROM: usize = 4;

fn open_append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

impl Journal {
    /// Opens (or creates) the journal at `path` for `identity`, after `state` was replayed from it. A new
    /// or restarted journal starts with the job record.
    pub fn open(
        path: &Path,
        identity: &JobIdentity,
        state: State,
        fresh: bool,
    ) -> Result<Journal, JournalError> {
        let open_error = |source| JournalError::Open {
            path: path.display().to_string(),
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(open_error)?;
        }
        let mut state = state;
        let file = if fresh {
            let mut file = OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .mode(0o600)
                .open(path)
                .map_err(open_error)?;
            let job = Record::Job {
                identity: Box::new(identity.clone()),
                created_unix: now_unix(),
            };
            let mut bytes = Vec::new();
            encode(&job, &mut bytes);
            file.write_all(&bytes)
                .and_then(|()| file.sync_all())
                .map_err(open_error)?;
            state = State::default();
            state.apply(&job);
            file
        } else {
            // Rewrite what the journal proves before appending: this drops a torn last line, which
            // appends would otherwise glue to the next record, and bounds the file.
            compact(path, &state).map_err(open_error)?
        };
        let (sender, receiver) = channel();
        let writer_path = path.to_path_buf();
        let state = Arc::new(Mutex::new(state));
        let writer_state = Arc::clone(&state);
        let failure = Arc::new(Mutex::new(None));
        let writer_failure = Arc::clone(&failure);
        let writer = std::thread::Builder::new()
            .name("checkpoint-journal".into())
            .spawn(move || write_loop(&writer_path, file, &writer_state, receiver, &writer_failure))
            .map_err(open_error)?;
        Ok(Journal {
            sender: Some(sender),
            writer: Some(writer),
            path: path.to_path_buf(),
            state,
            failure,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the journal proves now, including the records appended so far (a key's entry in it changes
    /// only once that key is being replayed, so it tells where a key not yet started resumes).
    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("journal state lock")
    }

    pub fn append(&self, record: Record) {
        if let Some(sender) = &self.sender {
            let _ = sender.send(Command::Append(record));
        }
    }

    /// Appends and waits until the record is written to the file (see the module doc for when it is
    /// synced). An error means it is not, and will not be: the journal could not be written (disk
    /// full, a file-size limit, an I/O error), and the write the record announces must not be sent.
    pub async fn append_durable(&self, record: Record) -> Result<(), JournalError> {
        let (done, wait) = oneshot::channel();
        let sent = self
            .sender
            .as_ref()
            .is_some_and(|s| s.send(Command::Durable(record, done)).is_ok());
        match (sent, if sent { wait.await.ok() } else { None }) {
            (true, Some(())) => Ok(()),
            _ => Err(self.write_error()),
        }
    }

    /// Why the writer stopped acknowledging: the first write error it met.
    fn write_error(&self) -> JournalError {
        let message = self
            .failure
            .lock()
            .expect("journal failure lock")
            .clone()
            .unwrap_or_else(|| "the journal writer stopped".into());
        JournalError::Write {
            path: self.path.display().to_string(),
            source: std::io::Error::other(message),
        }
    }

    /// Waits until everything appended so far is on disk.
    pub async fn flush(&self) -> Result<(), JournalError> {
        let (done, wait) = oneshot::channel();
        let sent = self
            .sender
            .as_ref()
            .is_some_and(|s| s.send(Command::Flush(done)).is_ok());
        let result = if sent { wait.await.ok() } else { None };
        match result {
            Some(Ok(())) => Ok(()),
            Some(Err(message)) => Err(JournalError::Write {
                path: self.path.display().to_string(),
                source: std::io::Error::other(message),
            }),
            None => Err(self.write_error()),
        }
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.sender.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn write_loop(
    path: &Path,
    mut file: File,
    shared: &Mutex<State>,
    receiver: Receiver<Command>,
    first_failure: &Mutex<Option<String>>,
) {
    let mut records_in_file = shared.lock().expect("journal state lock").record_count();
    let mut buffer = Vec::new();
    let mut failure: Option<String> = None;
    // When written but not yet synced records exist: the time of the first of them.
    let mut unsynced_since: Option<std::time::Instant> = None;
    loop {
        let first = match unsynced_since {
            Some(since) => {
                match receiver.recv_timeout(SYNC_INTERVAL.saturating_sub(since.elapsed())) {
                    Ok(command) => Some(command),
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => None,
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                }
            }
            None => match receiver.recv() {
                Ok(command) => Some(command),
                Err(_) => break,
            },
        };
        let mut written = Vec::new();
        let mut flushes = Vec::new();
        let mut batch = 0;
        if let Some(first) = first {
            let mut state = shared.lock().expect("journal state lock");
            let mut take = |command: Command, buffer: &mut Vec<u8>, state: &mut State| match command
            {
                Command::Append(record) => {
                    encode(&record, buffer);
                    state.apply(&record);
                }
                Command::Durable(record, done) => {
                    encode(&record, buffer);
                    state.apply(&record);
                    written.push(done);
                }
                Command::Flush(done) => flushes.push(done),
            };
            take(first, &mut buffer, &mut state);
            batch = 1;
            while let Ok(command) = receiver.try_recv() {
                take(command, &mut buffer, &mut state);
                batch += 1;
                if batch >= 10_000 {
                    break;
                }
            }
        }
        records_in_file += batch;
        if failure.is_none() && !buffer.is_empty() {
            match file.write_all(&buffer) {
                Ok(()) => {
                    unsynced_since.get_or_insert_with(std::time::Instant::now);
                }
                Err(error) => failure = Some(error.to_string()),
            }
        }
        buffer.clear();
        // Without the record in the journal the run must not go on writing: never acknowledge then.
        if failure.is_none() {
            written.into_iter().for_each(|done| {
                let _ = done.send(());
            });
        }
        let sync_due = unsynced_since.is_some_and(|since| since.elapsed() >= SYNC_INTERVAL);
        if failure.is_none() && (sync_due || !flushes.is_empty()) && unsynced_since.is_some() {
            match file.sync_data() {
                Ok(()) => unsynced_since = None,
                Err(error) => failure = Some(error.to_string()),
            }
        }
        if let Some(failure) = &failure {
            first_failure
                .lock()
                .expect("journal failure lock")
                .get_or_insert_with(|| failure.clone());
        }
        for done in flushes {
            let _ = done.send(failure.clone().map_or(Ok(()), Err));
        }
        if batch >= GATHER_FROM {
            std::thread::sleep(GATHER);
        }
        let state = shared.lock().expect("journal state lock");
        let live = state.record_count();
        if failure.is_none() && records_in_file > COMPACT_MIN_RECORDS.max(live * COMPACT_RATIO) {
            match compact(path, &state) {
                Ok(new_file) => {
                    file = new_file;
                    records_in_file = live;
                    unsynced_since = None;
                }
                Err(error) => failure = Some(format!("compaction failed: {error}")),
            }
        }
    }
    let _ = file.sync_data();
}

/// Writes `state` as a new journal and renames it over `path`; returns the new file, open for appends.
fn compact(path: &Path, state: &State) -> std::io::Result<File> {
    let staging = path.with_extension("compacting");
    {
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&staging)?;
        let mut writer = std::io::BufWriter::with_capacity(1 << 20, file);
        let mut bytes = Vec::new();
        let mut result = Ok(());
        state.each_record(|record| {
            if result.is_ok() {
                bytes.clear();
                encode(&record, &mut bytes);
                result = writer.write_all(&bytes);
            }
        });
        result?;
        writer
            .into_inner()
            .map_err(|e| e.into_error())?
            .sync_all()?;
    }
    std::fs::rename(&staging, path)?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        File::open(parent)?.sync_all()?;
    }
    open_append(path)
}
