//! One run per checkpoint: an advisory lock (`flock`) on `CHECKPOINT.lock`, held for the whole run.
//!
//! Two runs on one checkpoint would both list the destination before either wrote, and both would write
//! what is missing: every entry twice. The lock is on a file of its own because compaction renames a new
//! journal over the old one (a lock on the journal's inode would be lost with it). The file holds the
//! holder's pid and host, so the second run can name them; the kernel drops the lock when the holder
//! exits, however it exits, so a stale file never blocks anyone.
//!
//! Two runs with different checkpoints (another directory, `--no-checkpoint`) into overlapping
//! destination ranges on one machine would race the same way. So every run also holds its destination
//! range (`Range`: the destination bucket, its prefix after mapping, its shard) in
//! `~/.cache/s3-backfill/locks` (the home directory from the user database, so a run from cron and one
//! from a login shell look in one place): a file of its own, locked for the run, naming its range. A run starting looks, under a short lock of the whole directory, at every
//! range held by a live run (a file whose lock it cannot share) and refuses to start if one overlaps its
//! own. Ranges are compared by what they cover, never by how they are written: the endpoint is not part
//! of a range (one bucket behind `127.0.0.1` and `localhost`, or behind rotating S3 and load-balancer
//! addresses, is one bucket; two endpoints that hold buckets of one name only cost a refusal, exit 2).
//! Runs on different machines cannot see each other's ranges: give each machine its own shard.
//!
//! `flock` works on local filesystems; on NFS Linux emulates it with POSIX locks (NFSv4, or NFSv3 with
//! lockd). Where the filesystem cannot lock at all, the run refuses to start rather than run unguarded.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
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
        "failed to hold the destination range in {path}: {source}; every run records the destination range \
         it writes there (even with --no-checkpoint): make it a writable local directory of this user's"
    )]
    RangesUnavailable {
        path: String,
        source: std::io::Error,
    },
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
    /// A range's file is this run's alone: removed when the run lets it go.
    remove: bool,
}

impl Drop for CheckpointLock {
    fn drop(&mut self) {
        if self.remove {
            let _ = std::fs::remove_file(&self.path);
        }
    }
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

/// What a run writes into: a destination bucket, the prefix its keys get there (a directory, or empty
/// for the whole bucket), and its shard of the source range it reads.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Range {
    pub bucket: String,
    pub prefix: String,
    /// `index/count` with the source range (bucket and prefix) it shards.
    pub shard: Option<(u64, u64, String)>,
}

impl Range {
    /// Whether a run into `self` and a run into `other` could write the same key.
    pub fn overlaps(&self, other: &Range) -> bool {
        if self.bucket != other.bucket
            || !(self.prefix.starts_with(&other.prefix) || other.prefix.starts_with(&self.prefix))
        {
            return false;
        }
        // Shards of one count over one source range into one prefix own disjoint keys; any other pair
        // can meet (shard 1/2 into `dst/` writes `dst/doc/a` from `doc/a`, shard 0/2 into `dst/doc/`
        // writes it from `a`).
        !(self.prefix == other.prefix
            && matches!(
                (&self.shard, &other.shard),
                (Some((a, count, source)), Some((b, other_count, other_source)))
                    if count == other_count && source == other_source && a != b
            ))
    }
}

impl std::fmt::Display for Range {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)?;
        if let Some((index, count, source)) = &self.shard {
            write!(f, " (shard {index}/{count} of {source})")?;
        }
        Ok(())
    }
}

/// Where the ranges held on this machine are recorded: one place for every run of this user, whatever
/// its environment (a login shell, cron, a systemd unit, non-interactive ssh) — the home directory from
/// the user database, not `$HOME` or `$XDG_RUNTIME_DIR`, which differ between them and would hide one
/// run's range from another. Without a home, a directory of this user's own under /tmp.
fn ranges_directory() -> Result<PathBuf, LockError> {
    machine_directory("locks")
}

/// A directory of this machine's state for this user, `name`d: `~/.cache/s3-backfill/NAME` (the home
/// directory from the user database, see `ranges_directory`), else `/tmp/s3-backfill-NAME-UID`, which
/// must be this user's alone.
pub fn machine_directory(name: &str) -> Result<PathBuf, LockError> {
    if let Some(home) = home_of_this_user() {
        return Ok(home.join(".cache/s3-backfill").join(name));
    }
    // SAFETY: getuid cannot fail and touches no memory of ours.
    let uid = unsafe { libc::getuid() };
    let directory = PathBuf::from(format!("/tmp/s3-backfill-{name}-{uid}"));
    let unavailable = |source| LockError::RangesUnavailable {
        path: directory.display().to_string(),
        source,
    };
    match std::fs::DirBuilder::new().mode(0o700).create(&directory) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(error) => return Err(unavailable(error)),
    }
    // Anyone can make a directory in /tmp: use it only if it is this user's and no one else's.
    use std::os::unix::fs::MetadataExt;
    let metadata = std::fs::symlink_metadata(&directory).map_err(unavailable)?;
    if !metadata.is_dir() || metadata.uid() != uid || metadata.mode() & 0o077 != 0 {
        return Err(unavailable(std::io::Error::other(
            "it is not a directory of this user's alone (mode 700)",
        )));
    }
    Ok(directory)
}

/// This user's home directory, from the user database (getpwuid_r).
fn home_of_this_user() -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    let mut buffer = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: a zeroed passwd is a valid out-parameter; getpwuid_r writes only into it and `buffer`
    // (whose length it is given), and the strings it points to live in `buffer`, read before it goes.
    unsafe {
        let mut entry: libc::passwd = std::mem::zeroed();
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        let status = libc::getpwuid_r(
            libc::getuid(),
            &mut entry,
            buffer.as_mut_ptr(),
            buffer.len(),
            &mut found,
        );
        if status != 0 || found.is_null() || entry.pw_dir.is_null() {
            return None;
        }
        let home = std::ffi::CStr::from_ptr(entry.pw_dir).to_bytes();
        (!home.is_empty() && home != b"/").then(|| PathBuf::from(std::ffi::OsStr::from_bytes(home)))
    }
}

/// Holds `range` for this run, machine-wide, without waiting: refused when a live run holds a range
/// that overlaps it.
pub fn lock_destination(range: &Range) -> Result<CheckpointLock, LockError> {
    lock_range_in(&ranges_directory()?, range)
}

fn lock_range_in(directory: &Path, range: &Range) -> Result<CheckpointLock, LockError> {
    let unavailable = |source| LockError::RangesUnavailable {
        path: directory.display().to_string(),
        source,
    };
    std::fs::create_dir_all(directory).map_err(unavailable)?;
    // The whole directory, for as long as it takes to look and to record this run's range.
    let registry = open_lock_file(&directory.join("ranges.lock")).map_err(unavailable)?;
    registry.lock().map_err(unavailable)?;
    for entry in std::fs::read_dir(directory).map_err(unavailable)? {
        let path = entry.map_err(unavailable)?.path();
        let is_range = path
            .file_name()
            .and_then(|name| name.to_str())
            .is_some_and(|name| name.starts_with("range-") && name.ends_with(".lock"));
        if !is_range {
            continue;
        }
        let Ok(mut file) = File::open(&path) else {
            continue;
        };
        match file.try_lock_shared() {
            // No live run holds it: what is left of one that ended.
            Ok(()) => {
                let _ = std::fs::remove_file(&path);
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let (holder, held) = text.split_once('\n').unwrap_or((text.as_str(), ""));
                let held: Option<Range> = serde_json::from_str(held.trim()).ok();
                // A range that cannot be read is taken as overlapping: never run unguarded.
                if held.as_ref().is_none_or(|held| held.overlaps(range)) {
                    return Err(LockError::DestinationBusy {
                        destination: match held {
                            Some(held) if &held == range => range.to_string(),
                            Some(held) => format!("{held}, which overlaps {range}"),
                            None => format!("{range} or a range overlapping it"),
                        },
                        holder: holder.trim().to_string(),
                    });
                }
            }
            Err(std::fs::TryLockError::Error(error)) => return Err(unavailable(error)),
        }
    }
    let path = directory.join(format!(
        "range-{}-{:016x}.lock",
        std::process::id(),
        fastrand::u64(..)
    ));
    let mut file = open_lock_file(&path).map_err(unavailable)?;
    file.lock().map_err(unavailable)?;
    let record = format!(
        "{}\n{}\n",
        holder_text(),
        serde_json::to_string(range).map_err(|e| unavailable(std::io::Error::other(e)))?
    );
    file.write_all(record.as_bytes()).map_err(unavailable)?;
    drop(registry);
    Ok(CheckpointLock {
        _file: file,
        path,
        remove: true,
    })
}

fn open_lock_file(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .mode(0o600)
        .open(path)
}

/// This process, as a lock names its holder.
fn holder_text() -> String {
    format!(
        "pid {} on host {}, since {}",
        std::process::id(),
        hostname(),
        crate::s3::DateTime::from_secs(super::now_unix() as i64)
            .fmt(crate::s3::DateFormat::DateTime)
            .unwrap_or_default()
    )
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
    let mut file = open_lock_file(path).map_err(&cannot_open)?;
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
    let holder = holder_text();
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(holder.as_bytes()))
        .map_err(unavailable)?;
    Ok(CheckpointLock {
        _file: file,
        path: path.to_path_buf(),
        remove: false,
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
    }

    fn range(bucket: &str, prefix: &str, shard: Option<(u64, u64)>) -> Range {
        Range {
            bucket: bucket.into(),
            prefix: prefix.into(),
            shard: shard.map(|(index, count)| (index, count, "src/".to_string())),
        }
    }

    #[test]
    fn ranges_overlap_by_what_they_cover() {
        let whole = range("b", "", None);
        let logs = range("b", "logs/", None);
        let cases = [
            (&whole, &logs, true),
            (&logs, &range("b", "logs/2026/", None), true),
            (&logs, &range("b", "logs2/", None), false),
            (&logs, &range("other", "logs/", None), false),
            (
                &range("b", "", Some((0, 2))),
                &range("b", "", Some((1, 2))),
                false,
            ),
            (
                &range("b", "", Some((0, 2))),
                &range("b", "", Some((0, 2))),
                true,
            ),
            (&range("b", "", Some((0, 2))), &whole, true),
            (
                &range("b", "", Some((0, 2))),
                &range("b", "", Some((1, 3))),
                true,
            ),
        ];
        for (a, b, overlap) in cases {
            assert_eq!(a.overlaps(b), overlap, "{a} / {b}");
            assert_eq!(b.overlaps(a), overlap, "{b} / {a}");
        }
        // Shards of one count over different sources can write the same destination key.
        let mut other_source = range("b", "", Some((1, 2)));
        other_source.shard.as_mut().unwrap().2 = "elsewhere/".into();
        assert!(range("b", "", Some((0, 2))).overlaps(&other_source));
    }

    #[test]
    fn an_overlapping_range_is_refused_naming_its_holder_and_a_disjoint_one_runs_beside_it() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock_range_in(dir.path(), &range("b", "", Some((0, 2)))).unwrap();
        for overlapping in [
            range("b", "", None),
            range("b", "p01/", None),
            range("b", "", Some((0, 2))),
            range("b", "", Some((2, 3))),
        ] {
            let error = lock_range_in(dir.path(), &overlapping)
                .unwrap_err()
                .to_string();
            assert!(
                error.contains(&format!("pid {}", std::process::id()))
                    && error.contains("shard 0/2"),
                "{error}"
            );
        }
        let beside = lock_range_in(dir.path(), &range("b", "", Some((1, 2)))).unwrap();
        let elsewhere = lock_range_in(dir.path(), &range("c", "", None)).unwrap();
        drop(held);
        // Once the holder is gone its range is free, and its file is removed.
        let whole_c = lock_range_in(dir.path(), &range("b", "", Some((0, 2)))).unwrap();
        // A shard of the same count into a prefix overlaps (its keys map elsewhere).
        assert!(lock_range_in(dir.path(), &range("b", "p01/", Some((0, 2)))).is_err());
        drop((beside, elsewhere, whole_c));
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|name| name.starts_with("range-"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn the_file_of_a_run_that_died_does_not_block() {
        let dir = tempfile::tempdir().unwrap();
        // What kill -9 leaves: a range file nobody holds.
        std::fs::write(
            dir.path().join("range-1-0.lock"),
            "pid 1 on host x\n{\"bucket\":\"b\",\"prefix\":\"\",\"shard\":null}\n",
        )
        .unwrap();
        lock_range_in(dir.path(), &range("b", "", None)).expect("a dead run's range is free");
    }
}
