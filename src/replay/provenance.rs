//! The copies this machine wrote whose ETags cannot prove them: a multipart source copied where the
//! server does not reproduce multipart ETags (SeaweedFS's UploadPartCopy answers are not part MD5s),
//! SSE-KMS or SSE-C on either side. Each such copy is a row — destination key and version id, and the
//! source version it was copied from by a server-side copy of that version id — so a later run proves
//! the pair from the row instead of guessing from sizes or reading both sides' bytes: a version id names
//! one immutable version, so the row is proof for as long as that version exists.
//!
//! One CSV file per destination bucket, machine-wide (beside the range locks: whichever directory and
//! checkpoint a rerun uses), appended by whole rows (O_APPEND: runs side by side never interleave a
//! row), read once when a run first needs it. Each row ends with a hash of its fields: a row torn by a
//! kill is passed over wherever it is. Losing the
//! file costs no correctness: those pairs are unproven again (`--compare content` proves them).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use crate::s3::VersionRef;

/// `(destination key, destination version id)` -> `(source bucket, key, version id)`.
type Rows = HashMap<(String, String), (String, String, String)>;

#[derive(Debug)]
pub struct Provenance {
    path: PathBuf,
    file: Mutex<std::fs::File>,
    rows: OnceLock<Mutex<Rows>>,
}

impl Provenance {
    /// The file of `destination_bucket` under `directory` (created, mode 700).
    pub fn open(directory: &Path, destination_bucket: &str) -> std::io::Result<Provenance> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(directory)?;
        let name: String = destination_bucket
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = directory.join(format!(
            "{name}-{:016x}.csv",
            crate::digest::fnv1a(destination_bucket.as_bytes())
        ));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .mode(0o600)
            .open(&path)?;
        Ok(Provenance {
            path,
            file: Mutex::new(file),
            rows: OnceLock::new(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records that `destination_version` of `destination_key` is a copy of `source`; durable on
    /// return (before the journal says the entry is done).
    pub fn record(
        &self,
        destination_key: &str,
        destination_version: &str,
        source: &VersionRef,
    ) -> std::io::Result<()> {
        let fields = [
            destination_key,
            destination_version,
            &source.bucket,
            &source.key,
            &source.version_id,
        ];
        let mut row = csv::Writer::from_writer(Vec::new());
        let check = format!("{:016x}", row_hash(fields));
        row.write_record(fields.into_iter().chain([check.as_str()]))?;
        // A torn row before this one (a killed run) must not swallow it: start on a line of its own.
        let mut line = b"\n".to_vec();
        line.extend(row.into_inner().map_err(|e| e.into_error())?);
        self.file
            .lock()
            .expect("provenance lock")
            .write_all(&line)?;
        if let Some(rows) = self.rows.get() {
            rows.lock().expect("provenance rows lock").insert(
                (destination_key.to_string(), destination_version.to_string()),
                (
                    source.bucket.clone(),
                    source.key.clone(),
                    source.version_id.clone(),
                ),
            );
        }
        Ok(())
    }

    /// Whether a row says `destination_version` of `destination_key` was copied from `source`.
    pub fn proves(
        &self,
        destination_key: &str,
        destination_version: &str,
        source: &VersionRef,
    ) -> bool {
        if destination_version.is_empty() || destination_version == "null" {
            // Not one version: an unversioned key's "null" is overwritten in place.
            return false;
        }
        let rows = self.rows.get_or_init(|| Mutex::new(self.read()));
        rows.lock()
            .expect("provenance rows lock")
            .get(&(destination_key.to_string(), destination_version.to_string()))
            .is_some_and(|(bucket, key, version)| {
                *bucket == source.bucket && *key == source.key && *version == source.version_id
            })
    }

    fn read(&self) -> Rows {
        let mut text = Vec::new();
        let _ = std::fs::File::open(&self.path).and_then(|mut f| f.read_to_end(&mut text));
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(text.as_slice());
        reader
            .records()
            .filter_map(Result::ok)
            .filter(|row| {
                row.len() == 6
                    && format!(
                        "{:016x}",
                        row_hash([&row[0], &row[1], &row[2], &row[3], &row[4]])
                    ) == row[5]
            })
            .map(|row| {
                (
                    (row[0].to_string(), row[1].to_string()),
                    (row[2].to_string(), row[3].to_string(), row[4].to_string()),
                )
            })
            .collect()
    }
}

/// FNV-1a of the fields, each followed by a NUL (which no S3 name holds).
fn row_hash(fields: [&str; 5]) -> u64 {
    let mut joined = Vec::new();
    for field in fields {
        joined.extend_from_slice(field.as_bytes());
        joined.push(0);
    }
    crate::digest::fnv1a(&joined)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(version: &str) -> VersionRef {
        VersionRef {
            bucket: "src".into(),
            key: "k\n\"odd\",key".into(),
            version_id: version.into(),
        }
    }

    #[test]
    fn a_row_proves_exactly_its_pair_across_opens_and_torn_rows() {
        let dir = tempfile::tempdir().unwrap();
        let first = Provenance::open(dir.path(), "dst").unwrap();
        assert!(!first.proves("d", "v1", &source("s1")));
        first.record("d", "v1", &source("s1")).unwrap();
        assert!(first.proves("d", "v1", &source("s1")));
        assert!(!first.proves("d", "v1", &source("s2")));
        assert!(!first.proves("d", "v2", &source("s1")));
        assert!(!first.proves("e", "v1", &source("s1")));
        // A kill in the middle of a row, then another run.
        let path = first.path().to_path_buf();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"\nd,v9,src,k,s9,0123")
            .unwrap();
        let second = Provenance::open(dir.path(), "dst").unwrap();
        second.record("d", "v2", &source("s2")).unwrap();
        assert!(second.proves("d", "v1", &source("s1")));
        assert!(second.proves("d", "v2", &source("s2")));
        assert!(!second.proves("d", "v9", &source("s9")));
        // Another bucket's file, and "null" never proves.
        let other = Provenance::open(dir.path(), "other").unwrap();
        assert!(!other.proves("d", "v1", &source("s1")));
        other.record("d", "null", &source("s1")).unwrap();
        assert!(!other.proves("d", "null", &source("s1")));
    }
}
