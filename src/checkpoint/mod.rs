//! The checkpoint: a journal of what a copy run did, so that a rerun of the same command continues where
//! the last one stopped, with every source version arriving exactly once and in order.
//!
//! # Design
//!
//! Within a key, entries are written one at a time, oldest first. Before writing entry `i` of a key, the
//! engine appends an *intent* record naming the entry and the destination version our previous write of
//! that key created, and waits until it is written to the journal file (where it survives a crash of
//! the process; fsync follows within 100 ms, see `journal.rs`). After the write it appends *done* with
//! the destination version it created, without waiting. So after a crash at any moment:
//!
//! - an entry with *done* was written;
//! - an entry with an intent and no *done* may or may not have been written (the server may have applied
//!   the request whose answer we never read). Resume *reconciles* it: it reads the destination key's newest
//!   entries; the write happened if the newest entry is of the kind and size we wrote and is newer than the
//!   version the intent names (for a key's first write: it is the key's only entry). Only then does it go
//!   on, so no entry is written twice and none is skipped;
//! - an intent for entry `i` proves entries before `i` were written (they finish before `i` starts).
//!
//! A request can outlive its sender: a CopyObject the killed run sent can still be applied by the server
//! after the rerun has looked at the destination, which would then write the entry again and end up
//! with the late copy as a duplicate (the crash test found exactly this against SeaweedFS). So a resume
//! reconciles nothing until the interrupted run has been gone `--resume-wait` seconds (default 10),
//! counted from the journal file's last modification. A run that ends with no request in flight (done,
//! or stopped by Ctrl-C) writes a final `Stats { finished }` record, and a resume after it waits for
//! nothing.
//!
//! Keys finish out of order, but are dispatched in listing order. A *watermark* record says every key up
//! to and including it is finished; resume lists only after it (ListObjectVersions `key-marker`) and keeps
//! per-key records only for keys above it, which compaction rewrites into a minimal journal. A crash
//! mid-append leaves a torn last line, which replay drops; a damaged line anywhere else is corruption.
//!
//! Multipart uploads are recorded when created and when finished; resume aborts every upload it does not
//! know to be finished, and also any upload in progress on a key whose multipart entry was pending (the
//! crash may have come between CreateMultipartUpload and its record).
//!
//! The design assumes the destination range holds only what this job writes while it runs.

mod journal;
mod record;
mod state;

pub use journal::{Journal, JournalError, now_unix, replay};
pub use record::{Decoded, JobIdentity, Record, decode, encode};
pub use state::{FailedEntry, KeyState, State};
