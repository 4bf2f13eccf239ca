//! An S3 Inventory report: its manifest.json (checked against manifest.checksum when there is one), the
//! column layout its `fileSchema` gives, and its CSV data files, each checked against its size and MD5.
//!
//! Layout (AWS): `PREFIX/SRC/CONFIG_ID/DATE/manifest.json` names data files by key,
//! `PREFIX/SRC/CONFIG_ID/data/UUID.csv.gz`, in the same bucket. A local copy mirrors that tree: the data
//! files are found under the directory that, joined with a data file's key, holds it.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::rows::Schema;
use super::sort::{DEFAULT_BUDGET, Sorter};
use super::{Checked, Data, InputError, Uri, read_csv};
use crate::s3::{S3Api, S3Error};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ManifestJson {
    source_bucket: String,
    file_format: String,
    file_schema: String,
    files: Vec<DataFile>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DataFile {
    pub key: String,
    pub size: Option<u64>,
    #[serde(rename = "MD5checksum")]
    pub md5: Option<String>,
}

/// A checked manifest.json and where its data files are on this machine.
pub struct Report {
    pub manifest: String,
    pub schema: Schema,
    /// Each data file: its entry in manifest.json and a local path to read it from.
    pub files: Vec<(DataFile, PathBuf)>,
}

fn file_error(file: &str, message: impl Into<String>) -> InputError {
    InputError::File {
        file: file.to_string(),
        message: message.into(),
    }
}

impl Report {
    /// Reads and checks manifest.json, and makes each data file available locally (downloading the
    /// ones on S3 into `scratch`).
    pub async fn open<C: S3Api>(
        uri: &Uri,
        client: &C,
        source_bucket: &str,
        scratch: &Path,
    ) -> Result<Report, InputError> {
        let name = uri.to_string();
        let (json, checksum) = match uri {
            Uri::Local(path) => {
                let json = std::fs::read(path)
                    .map_err(|e| file_error(&name, format!("cannot read: {e}")))?;
                let checksum = std::fs::read(path.with_file_name("manifest.checksum")).ok();
                (json, checksum)
            }
            Uri::S3 { bucket, key } => {
                let read = |key: String, local: &'static str| async move {
                    let path = scratch.join(local);
                    client.download(bucket, &key, &path).await?;
                    Ok::<_, S3Error>(std::fs::read(&path).unwrap_or_default())
                };
                let json = read(key.clone(), "manifest.json").await.map_err(|source| {
                    InputError::Read {
                        file: name.clone(),
                        source,
                    }
                })?;
                let checksum_key = match key.rsplit_once('/') {
                    Some((dir, _)) => format!("{dir}/manifest.checksum"),
                    None => "manifest.checksum".into(),
                };
                let checksum = match read(checksum_key.clone(), "manifest.checksum").await {
                    Ok(bytes) => Some(bytes),
                    Err(S3Error::NotFound { .. }) => None,
                    Err(source) => {
                        return Err(InputError::Read {
                            file: format!("s3://{bucket}/{checksum_key}"),
                            source,
                        });
                    }
                };
                (json, checksum)
            }
        };
        if let Some(checksum) = checksum {
            let expected = String::from_utf8_lossy(&checksum)
                .trim()
                .to_ascii_lowercase();
            let actual = crate::digest::md5_hex(&json);
            if expected != actual {
                return Err(file_error(
                    &name,
                    format!(
                        "MD5 {actual} does not match manifest.checksum ({expected}): the manifest is corrupt \
                         or was changed; fetch the report again"
                    ),
                ));
            }
        }
        let manifest: ManifestJson = serde_json::from_slice(&json).map_err(|e| {
            file_error(
                &name,
                format!(
                    "not a valid S3 Inventory manifest.json ({e}); it needs sourceBucket, fileFormat, \
                     fileSchema and files"
                ),
            )
        })?;
        if !manifest.file_format.eq_ignore_ascii_case("CSV") {
            return Err(file_error(
                &name,
                format!(
                    "unsupported inventory format {}: s3-backfill reads CSV inventory reports (and CSV \
                     manifests with --manifest); configure the inventory with the CSV output format",
                    manifest.file_format
                ),
            ));
        }
        if manifest.source_bucket != source_bucket {
            return Err(file_error(
                &name,
                format!(
                    "this is an inventory of bucket {}, not of the source bucket {source_bucket}",
                    manifest.source_bucket
                ),
            ));
        }
        let schema = Schema::parse(&manifest.file_schema).map_err(|m| file_error(&name, m))?;
        let mut files = Vec::with_capacity(manifest.files.len());
        match uri {
            Uri::Local(path) => {
                let root = manifest.files.first().and_then(|first| {
                    path.ancestors()
                        .skip(1)
                        .find(|dir| dir.join(&first.key).is_file())
                        .map(Path::to_path_buf)
                });
                for file in manifest.files {
                    let local = match &root {
                        Some(root) => root.join(&file.key),
                        None => {
                            return Err(file_error(
                                &name,
                                format!(
                                    "data file {} is not in any directory above the manifest; keep the \
                                     report's layout (PREFIX/SRC/CONFIG/data/...) when copying it locally",
                                    file.key
                                ),
                            ));
                        }
                    };
                    files.push((file, local));
                }
            }
            Uri::S3 { bucket, .. } => {
                for (n, file) in manifest.files.into_iter().enumerate() {
                    let local = scratch.join(format!("data-{n}"));
                    client
                        .download(bucket, &file.key, &local)
                        .await
                        .map_err(|source| InputError::Read {
                            file: format!("s3://{bucket}/{}", file.key),
                            source,
                        })?;
                    files.push((file, local));
                }
            }
        }
        Ok(Report {
            manifest: name,
            schema,
            files,
        })
    }

    /// Reads every data file's rows into a sorter, checking each file's size and MD5.
    pub fn read_rows(self, source_bucket: &str) -> Result<(Sorter, u64), InputError> {
        let mut sorter = Sorter::new(DEFAULT_BUDGET);
        let mut named = 0;
        for (file, path) in &self.files {
            let name = file.key.clone();
            let raw = std::fs::File::open(path)
                .map_err(|e| file_error(&name, format!("cannot open {}: {e}", path.display())))?;
            let mut reader = Data::new(
                std::io::BufReader::with_capacity(1 << 20, Checked::new(raw)),
                &name,
            )?;
            named += read_csv(&mut reader, &name, &mut sorter, |record| {
                self.schema.row(record, source_bucket)
            })?;
            let (bytes, md5) = reader.into_inner().into_inner().finish();
            if let Some(expected) = file.size.filter(|&s| s != bytes) {
                return Err(file_error(
                    &name,
                    format!(
                        "{bytes} bytes, but manifest.json says {expected}: the file is truncated or was replaced"
                    ),
                ));
            }
            if let Some(expected) = file.md5.as_ref().filter(|m| !m.eq_ignore_ascii_case(&md5)) {
                return Err(file_error(
                    &name,
                    format!(
                        "MD5 {md5} does not match manifest.json's MD5checksum {expected}: the file is corrupt or \
                         was replaced"
                    ),
                ));
            }
        }
        Ok((sorter, named))
    }
}
