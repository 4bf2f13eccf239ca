//! The checkpoint: a journal of what a copy run did, so that a rerun of the same command skips what is
//! known to be finished. It is an accelerator, not the truth: the destination is. Every key is merged
//! with what the destination holds before anything is written (`merge`), so a rerun without the
//! checkpoint (`--no-checkpoint`, `--restart`, another directory or machine) writes nothing twice either.
//!
//! # Design
//!
//! Within a key, entries are written one at a time, oldest first. Before writing entry `i` of a key, the
//! engine appends an *intent* record and waits until it is written to the journal file (where it
//! survives a crash of the process; fsync follows within 100 ms, see `journal.rs`); a journal that cannot
//! be written stops the run before the write is sent (exit 3). After the write it appends *done*,
//! without waiting.
//!
//! Keys finish out of order, but are dispatched in listing order. A *watermark* record says every key up
//! to and including it is finished; resume lists the source and the destination only after it
//! (ListObjectVersions `key-marker`) and keeps per-key records only for keys above it, which
//! compaction rewrites into a minimal journal. A crash mid-append leaves a torn last line, which replay
//! drops; a damaged line anywhere else is corruption. A run that lists and replays every key records
//! `PassComplete`: the next run of the job starts a new pass over everything, which writes only what
//! the source gained since (a catch-up), never "nothing to do".
//!
//! A request can outlive its sender: a CopyObject the killed run sent can still be applied by the server
//! after the rerun has looked at the destination, which would then write the entry again and end up
//! with the late copy as a duplicate (the crash test found exactly this against SeaweedFS). So a resume
//! reads the destination only once the interrupted run has been gone `--resume-wait` seconds (default
//! 10), counted from the journal file's last modification. A run that ends with no request in flight
//! (done, or stopped by Ctrl-C) writes a final `Stats { finished }` record, and a resume after it waits
//! for nothing. `--restart` discards the progress but keeps that wait.
//!
//! Multipart uploads are recorded when created and when finished; resume aborts every upload it does not
//! know to be finished, and also any upload in progress on a key whose entry was pending (the crash may
//! have come between CreateMultipartUpload and its record).
//!
//! One run at a time: the checkpoint is locked for the run (`lock.rs`). An empty file is a new
//! checkpoint. The job's identity includes each side's endpoint and region, so the same command against
//! another endpoint is another job.

mod journal;
mod lock;
mod record;
mod state;

pub use journal::{Journal, JournalError, now_unix, replay};
pub use lock::{
    CheckpointLock, LockError, Range, holder, lock, lock_destination, lock_path, machine_directory,
};
pub use record::{Decoded, JobIdentity, Record, decode, encode};
pub use state::{FailedEntry, HEARTBEAT, KeyState, LATE_WRITE_GRACE, State, in_flight_bound};
