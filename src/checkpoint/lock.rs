//! One run per checkpoint: an advisory lock (`flock`) on `CHECKPOINT.lock`, held for the whole run.
//!
//! Two runs on one checkpoint would both list the destination before either wrote, and both would write
//! what is missing: every entry twice. The lock is on a file of its own because compaction renames a new
//! journal over the old one (a lock on the journal's inode would be lost with it). The file holds the
//! holder's pid and host, so the second run can name them; the kernel drops the lock when the holder
//! exits, however it exits, so a stale file never blocks anyone.
//!
//! Two runs with different checkpoints (another directory, `--no-checkpoint`) into the same destination
//! range on one machine would race the same way: every run also takes a lock named by the destination
//! (its endpoint, bucket, prefix and shard) in `$XDG_RUNTIME_DIR/s3-backfill`, else
//! `~/.cache/s3-backfill/locks`. Runs on different machines cannot see each other's locks: give each
//! machine its own shard (`--shard`).
//!
//! `flock` works on local filesystems; on NFS Linux emulates it with POSIX locks (NFSv4, or NFSv3 with
//! lockd). Where the filesystem cannot lock at all, the run refuses to start rather than run unguarded.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "checkpoint {checkpoint} is in use by another run ({holder}); wait for it to end or stop it, or give \
         this run another --checkpoint (two runs of one job at once would write every entry twice)"
    )]
    Held { checkpoint: String, holder: String },
    #[error(
        "another run on this machine is copying into {destination} ({holder}); wait for it to end or stop it \
         (two runs into one destination at once would both write what it lacks: every entry twice)"
    )]
    DestinationBusy { destination: String, holder: String },
    #[error(
        "failed to open checkpoint {path}: {source}; choose a writable path with --checkpoint, or --no-checkpoint"
    )]
    Open {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "failed to lock checkpoint {path}: {source}; put the checkpoint on a local filesystem (or NFS with \
         locking) with --checkpoint"
    )]
    Unavailable {
        path: String,
        source: std::io::Error,
    },
}

/// The lock, released when dropped (or when the process ends).
#[derive(Debug)]
pub struct CheckpointLock {
    _file: File,
    path: PathBuf,
}

impl CheckpointLock {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Where the lock of `checkpoint` lives.
pub fn lock_path(checkpoint: &Path) -> PathBuf {
    let mut name = checkpoint.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Who holds the lock of `checkpoint` (pid and host), when a run holds it now; None when none does.
/// Looks with a shared lock, taken and released at once.
pub fn holder(checkpoint: &Path) -> Option<String> {
    let mut file = File::open(lock_path(checkpoint)).ok()?;
    match file.try_lock_shared() {
        Ok(()) => None,
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            Some(holder.trim().to_string())
        }
        Err(std::fs::TryLockError::Error(_)) => None,
    }
}

/// Takes the lock of `checkpoint` without waiting.
pub fn lock(checkpoint: &Path) -> Result<CheckpointLock, LockError> {
    let path = lock_path(checkpoint);
    let cannot_open = |source| LockError::Open {
        path: checkpoint.display().to_string(),
        source,
    };
    take(&path, cannot_open, |holder| LockError::Held {
        checkpoint: checkpoint.display().to_string(),
        holder,
    })
}

/// Takes the machine-wide lock of the destination range `destination` (a description naming its
/// endpoint, bucket, prefix and shard) without waiting.
pub fn lock_destination(destination: &str) -> Result<CheckpointLock, LockError> {
    let directory = std::env::var_os("XDG_RUNTIME_DIR")
        .map(|dir| PathBuf::from(dir).join("s3-backfill"))
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|home| PathBuf::from(home).join(".cache/s3-backfill/locks"))
        })
        .unwrap_or_else(|| std::env::temp_dir().join("s3-backfill-locks"));
    let path = directory.join(format!(
        "destination-{:016x}.lock",
        crate::digest::fnv1a(destination.as_bytes())
    ));
    let unavailable = |source| LockError::Unavailable {
        path: path.display().to_string(),
        source,
    };
    take(&path, unavailable, |holder| LockError::DestinationBusy {
        destination: destination.to_string(),
        holder,
    })
}

/// Creates (if need be) and locks `path`, writing this process's pid and host into it.
fn take(
    path: &Path,
    cannot_open: impl Fn(std::io::Error) -> LockError,
    held: impl FnOnce(String) -> LockError,
) -> Result<CheckpointLock, LockError> {
    let unavailable = |source| LockError::Unavailable {
        path: path.display().to_string(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(&cannot_open)?;
    }
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(&cannot_open)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            return Err(held(if holder.is_empty() {
                "its pid is not recorded yet".into()
            } else {
                holder.to_string()
            }));
        }
        Err(std::fs::TryLockError::Error(error)) => return Err(unavailable(error)),
    }
    let holder = format!(
        "pid {} on host {}, since {}",
        std::process::id(),
        hostname(),
        crate::s3::DateTime::from_secs(super::now_unix() as i64)
            .fmt(crate::s3::DateFormat::DateTime)
            .unwrap_or_default()
    );
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(holder.as_bytes()))
        .map_err(unavailable)?;
    Ok(CheckpointLock {
        _file: file,
        path: path.to_path_buf(),
    })
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .ok()
        .filter(|name| !name.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_naming_the_holder_and_freed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let checkpoint = dir.path().join("job.checkpoint");
        let held = lock(&checkpoint).unwrap();
        let error = lock(&checkpoint).unwrap_err().to_string();
        assert!(
            error.contains(&format!("pid {}", std::process::id())) && error.contains("in use"),
            "{error}"
        );
        assert_eq!(held.path(), lock_path(&checkpoint));
        drop(held);
        lock(&checkpoint).expect("free again once dropped");
        let name = format!("s3://unit-test-{}/prefix/ shard 0/1", std::process::id());
        let held = lock_destination(&name).unwrap();
        let error = lock_destination(&name).unwrap_err().to_string();
        assert!(
            error.contains("another run on this machine") && error.contains(&name),
            "{error}"
        );
        assert!(lock_destination(&format!("{name}x")).is_ok());
        drop(held);
    }
}
