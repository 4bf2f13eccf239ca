//! s3-backfill: backfills the existing objects of an S3 bucket — every version and delete marker, in
//! each key's order — into another bucket with concurrent server-side copies.
//!
//! The pipeline, one module a stage: listing (`history`) -> per-key history -> plan (`plan`) ->
//! bounded executor (`replay`, with `replay::multipart`) -> progress and report (`progress`, `commands`). All S3 access
//! goes through the `s3` seam.

pub mod checkpoint;
pub mod cli;
pub(crate) mod clock;
pub mod cmd;
pub(crate) mod digest;
pub mod error;
pub mod history;
pub mod input;
pub mod local_server;
pub(crate) mod location;
pub mod logging;
pub(crate) mod merge;
pub(crate) mod metrics;
pub mod plan;
pub(crate) mod preflight;
pub(crate) mod progress;
pub(crate) mod replay;
pub mod s3;
pub(crate) mod setup;
pub(crate) mod size;
pub(crate) mod verify;

/// mimalloc: the engine makes millions of small, short-lived allocations (keys, version ids, rows);
/// glibc's allocator spent a third of the inventory pipeline's time consolidating freed chunks.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Set on the first Ctrl-C: the run stops cleanly (the binary's signal handler holds it).
pub use replay::Stop;
