//! s3-backfill: backfills the existing objects of an S3 bucket — every version and delete marker, in
//! each key's order — into another bucket with concurrent server-side copies.
//!
//! The pipeline, one module a stage: listing (`history`) -> per-key history -> plan (`plan`) ->
//! bounded executor (`replay`, with `replay::multipart`) -> progress and report (`progress`, `commands`). All S3 access
//! goes through the `s3` seam.

pub mod checkpoint;
pub mod cli;
pub mod cmd;
pub mod digest;
pub mod error;
pub mod history;
pub mod input;
pub mod local_server;
pub mod location;
pub mod merge;
pub mod plan;
pub mod preflight;
pub mod progress;
pub mod replay;
pub mod s3;
pub mod setup;
pub mod size;
pub mod verify;

/// mimalloc: the engine makes millions of small, short-lived allocations (keys, version ids, rows);
/// glibc's allocator spent a third of the inventory pipeline's time consolidating freed chunks.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
