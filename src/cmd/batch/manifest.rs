//! The manifests of a Batch Operations submission: the source's versions (from a listing, an inventory
//! or a CSV manifest) written as `bucket,key,version` CSV files, one per job, each named by its hash;
//! versions over Batch copy's limit are set aside for this engine.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use crate::cli::{BatchFrom, BatchSubmitArgs, Operation};
use crate::error::Error;
use crate::history::{KeyHistory, Selection, list_histories};
use crate::location::KeyMapping;
use crate::progress::Progress;
use crate::s3::{S3Error, manifest_key};

/// The largest object S3PutObjectCopy takes.
pub const BATCH_COPY_LIMIT: u64 = 5 * 1024 * 1024 * 1024;

/// One manifest file being written: rows, count, and a hash that names it (and the job's token).
struct ManifestFile {
    file: std::io::BufWriter<std::fs::File>,
    path: std::path::PathBuf,
    rows: u64,
    md5: md5::Md5,
}

impl ManifestFile {
    fn create(dir: &Path, name: &str) -> std::io::Result<ManifestFile> {
        use md5::Digest;
        let path = dir.join(name);
        Ok(ManifestFile {
            file: std::io::BufWriter::new(std::fs::File::create(&path)?),
            path,
            rows: 0,
            md5: md5::Md5::new(),
        })
    }

    fn row(&mut self, bucket: &str, key: &str, version_id: &str) -> std::io::Result<()> {
        use md5::Digest;
        let line = format!("{bucket},{},{version_id}\n", manifest_key(key));
        self.md5.update(line.as_bytes());
        self.rows += 1;
        self.file.write_all(line.as_bytes())
    }

    fn finish(mut self) -> std::io::Result<(std::path::PathBuf, u64, String)> {
        use md5::Digest;
        self.file.flush()?;
        let hash = crate::digest::hex(&self.md5.finalize());
        Ok((self.path, self.rows, hash))
    }
}

/// The manifests of one submission: for replication one file; for copy the noncurrent versions, then
/// the current ones (Batch copy does not keep order), and the entries too large for Batch copy.
/// Per job: (label, file, rows, hash); per version over the copy limit: (key, version, size).
pub(super) struct Manifests {
    pub jobs: Vec<(String, std::path::PathBuf, u64, String)>,
    pub too_large: Vec<(String, String, u64)>,
}

pub(super) async fn build_manifests(
    args: &BatchSubmitArgs,
    source: Arc<crate::cmd::Client>,
    scratch: &Path,
    copy_limit: u64,
) -> Result<Manifests, Error> {
    let bucket = args.source.bucket.clone();
    let selection = Selection::all(KeyMapping {
        source: args.source.clone(),
        destination: args.dest.clone().unwrap_or_else(|| args.source.clone()),
    });
    let progress = Arc::new(Progress::default());
    let mut histories: tokio::sync::mpsc::Receiver<Result<KeyHistory, S3Error>> = match &args.from {
        BatchFrom::Listing => list_histories(
            Arc::clone(&source),
            bucket.clone(),
            selection,
            progress,
            None,
        ),
        BatchFrom::Inventory(uri) | BatchFrom::Manifest(uri) => {
            let spec = match &args.from {
                BatchFrom::Inventory(_) => crate::input::InputSpec::Inventory {
                    uri: uri.clone(),
                    check: false,
                },
                _ => crate::input::InputSpec::Manifest { uri: uri.clone() },
            };
            let loaded = crate::input::load(&spec, &*source, &bucket, false)
                .await
                .map_err(|e| Error::Usage(format!("{e}; nothing was submitted")))?;
            crate::input::histories(
                loaded,
                Arc::clone(&source),
                selection,
                Box::new(|_| false),
                progress,
            )
        }
        BatchFrom::Generator => unreachable!("the generator needs no manifest"),
    };
    let io = |e: std::io::Error| {
        Error::Failed(format!(
            "writing the manifest in {}: {e}",
            scratch.display()
        ))
    };
    let copy = args.operation == Operation::Copy;
    let mut first = ManifestFile::create(scratch, "first.csv").map_err(io)?;
    let mut current = ManifestFile::create(scratch, "current.csv").map_err(io)?;
    let mut too_large = Vec::new();
    while let Some(history) = histories.recv().await {
        let history = history.map_err(|source| Error::Listing {
            bucket: bucket.clone(),
            prefix: args.source.prefix.clone(),
            source,
        })?;
        let newest = history.entries.len() - 1;
        for (index, entry) in history.entries.iter().enumerate() {
            if entry.is_delete_marker() {
                continue;
            }
            if copy && entry.size() > copy_limit {
                too_large.push((entry.key.clone(), entry.version_id.clone(), entry.size()));
                continue;
            }
            let target = if copy && index == newest {
                &mut current
            } else {
                &mut first
            };
            target
                .row(&bucket, &entry.key, &entry.version_id)
                .map_err(io)?;
        }
    }
    let mut jobs = Vec::new();
    let label = if copy {
        "noncurrent versions"
    } else {
        "versions"
    };
    let (path, rows, hash) = first.finish().map_err(io)?;
    jobs.push((label.to_string(), path, rows, hash));
    let (path, rows, hash) = current.finish().map_err(io)?;
    if copy {
        jobs.push(("current versions".to_string(), path, rows, hash));
    }
    Ok(Manifests { jobs, too_large })
}
