//! Writes S3 Inventory reports the way S3 does, for tests, fixtures and benchmarks: gzip'd CSV data files
//! with every field quoted and keys form-encoded (a space as `+`), rows shuffled and split across files,
//! a manifest.json naming each file with its size and MD5, and manifest.checksum, in the AWS layout
//! `PREFIX/SRC/CONFIG_ID/data/*.csv.gz` and `PREFIX/SRC/CONFIG_ID/DATE/manifest.json`.

use std::io::Write;

use crate::history::KeyHistory;
use crate::s3::EntryKind;

/// The columns of an inventory of all versions, plus two the engine ignores, in a non-default order.
pub const SCHEMA: &str = "Bucket, Key, Size, VersionId, ReplicationStatus, IsLatest, LastModifiedDate, \
                          IsDeleteMarker, ETag, StorageClass, EncryptionStatus";

pub struct ReportOptions<'a> {
    /// Key prefix of the report in its bucket (the inventory configuration's destination prefix).
    pub prefix: &'a str,
    pub config_id: &'a str,
    pub date: &'a str,
    pub schema: &'a str,
    pub data_files: usize,
    pub seed: u64,
}

impl Default for ReportOptions<'_> {
    fn default() -> Self {
        ReportOptions {
            prefix: "inventory",
            config_id: "all-versions",
            date: "2026-11-25T01-00Z",
            schema: SCHEMA,
            data_files: 3,
            seed: 1,
        }
    }
}

/// A key as S3 Inventory encodes it: percent-encoded UTF-8, a space as `+`.
pub fn inventory_key(key: &str) -> String {
    crate::s3::manifest_key(key).replace("%20", "+")
}

/// The objects of an inventory report of `bucket` (histories oldest first): (key, bytes), the manifest
/// last. Returns them and the manifest's key.
pub fn inventory_report(
    bucket: &str,
    histories: &[KeyHistory],
    options: &ReportOptions,
) -> (Vec<(String, Vec<u8>)>, String) {
    let columns: Vec<&str> = options.schema.split(',').map(str::trim).collect();
    let mut rows: Vec<Vec<String>> = Vec::new();
    for history in histories {
        let newest = history.entries.len().saturating_sub(1);
        for (n, entry) in history.entries.iter().enumerate() {
            let (size, etag, class, marker) = match &entry.kind {
                EntryKind::Object {
                    size,
                    etag,
                    storage_class,
                } => (
                    size.to_string(),
                    etag.trim_matches('"').to_string(),
                    storage_class.clone().unwrap_or_else(|| "STANDARD".into()),
                    "false",
                ),
                EntryKind::DeleteMarker => (String::new(), String::new(), String::new(), "true"),
            };
            let row = columns
                .iter()
                .map(|column| match *column {
                    "Bucket" => bucket.to_string(),
                    "Key" => inventory_key(&entry.key),
                    "VersionId" if entry.version_id == "null" => String::new(),
                    "VersionId" => entry.version_id.clone(),
                    "IsLatest" => (n == newest).to_string(),
                    "IsDeleteMarker" => marker.to_string(),
                    "Size" => size.clone(),
                    "LastModifiedDate" => entry.last_modified.clone(),
                    "ETag" => etag.clone(),
                    "StorageClass" => class.clone(),
                    "ReplicationStatus" => String::new(),
                    "EncryptionStatus" => "SSE-S3".into(),
                    _ => String::new(),
                })
                .collect();
            rows.push(row);
        }
    }
    let mut rng = fastrand::Rng::with_seed(options.seed);
    rng.shuffle(&mut rows);
    let base = format!("{}/{bucket}/{}", options.prefix, options.config_id);
    let files = options.data_files.max(1);
    let per_file = rows.len().div_ceil(files).max(1);
    let mut objects = Vec::new();
    let mut entries = Vec::new();
    for (n, chunk) in rows.chunks(per_file).enumerate() {
        let mut csv = csv::WriterBuilder::new()
            .quote_style(csv::QuoteStyle::Always)
            .from_writer(Vec::new());
        for row in chunk {
            csv.write_record(row).expect("writing to memory");
        }
        let text = csv.into_inner().expect("writing to memory");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&text).expect("writing to memory");
        let bytes = gz.finish().expect("writing to memory");
        let key = format!("{base}/data/{:08x}-{n}.csv.gz", rng.u32(..));
        entries.push(serde_json::json!({
            "key": key,
            "size": bytes.len(),
            "MD5checksum": md5_hex(&bytes),
        }));
        objects.push((key, bytes));
    }
    let manifest = serde_json::json!({
        "sourceBucket": bucket,
        "destinationBucket": "arn:aws:s3:::inventory-reports",
        "version": "2016-11-30",
        "creationTimestamp": "1764032400000",
        "fileFormat": "CSV",
        "fileSchema": options.schema,
        "files": entries,
    });
    let manifest = serde_json::to_vec_pretty(&manifest).expect("json");
    let manifest_key = format!("{base}/{}/manifest.json", options.date);
    objects.push((
        format!("{base}/{}/manifest.checksum", options.date),
        md5_hex(&manifest).into_bytes(),
    ));
    objects.push((manifest_key.clone(), manifest));
    (objects, manifest_key)
}

pub use crate::digest::md5_hex;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::rows::decode_key;
    use crate::input::{InputSpec, KeyPlan, plan_key};
    use crate::s3::Entry;

    /// The histories behind fixtures/inventory: awkward keys, null versions, delete markers in the
    /// middle and on top, and a tie that only IsLatest breaks.
    pub fn fixture_histories() -> Vec<KeyHistory> {
        let entry = |key: &str, id: &str, second: u32, size: Option<u64>| Entry {
            key: key.into(),
            version_id: id.into(),
            is_latest: false,
            last_modified: format!("2026-11-20T10:00:{second:02}.000Z"),
            kind: match size {
                Some(size) => EntryKind::Object {
                    size,
                    etag: format!("\"{:032x}\"", u64::from(second) * 7919 + size),
                    storage_class: None,
                },
                None => EntryKind::DeleteMarker,
            },
        };
        let history = |key: &str, entries: Vec<Entry>| KeyHistory {
            key: key.into(),
            entries,
        };
        vec![
            history(
                "docs/a b+c%d.txt",
                vec![
                    entry("docs/a b+c%d.txt", "v1", 1, Some(10)),
                    entry("docs/a b+c%d.txt", "v2", 2, Some(20)),
                ],
            ),
            history(
                "docs/deleted",
                vec![
                    entry("docs/deleted", "d1", 3, Some(5)),
                    entry("docs/deleted", "d2", 4, None),
                ],
            ),
            history(
                "docs/revived",
                vec![
                    entry("docs/revived", "null", 5, Some(1)),
                    entry("docs/revived", "r2", 6, None),
                    entry("docs/revived", "r3", 7, Some(0)),
                ],
            ),
            history(
                "unicode/日本語 ?#.bin",
                vec![entry("unicode/日本語 ?#.bin", "u1", 8, Some(3))],
            ),
            history(
                "same-second",
                vec![
                    entry("same-second", "s1", 9, Some(1)),
                    entry("same-second", "s2", 9, Some(2)),
                ],
            ),
        ]
    }

    fn fixture_dir() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/inventory")
    }

    /// fixtures/inventory is this generator's output; S3_BACKFILL_REGENERATE=1 rewrites it.
    #[test]
    fn the_committed_fixture_is_the_generators_output() {
        let (objects, _) = inventory_report(
            "fixture-src",
            &fixture_histories(),
            &ReportOptions::default(),
        );
        let dir = fixture_dir();
        for (key, bytes) in &objects {
            let path = dir.join(key);
            if std::env::var_os("S3_BACKFILL_REGENERATE").is_some() {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, bytes).unwrap();
            }
            let committed = std::fs::read(&path).unwrap_or_else(|e| {
                panic!(
                    "{}: {e} (regenerate with S3_BACKFILL_REGENERATE=1)",
                    path.display()
                )
            });
            assert_eq!(
                &committed,
                bytes,
                "{} differs from the generator's output",
                path.display()
            );
        }
    }

    #[test]
    fn inventory_keys_encode_a_space_as_plus_and_a_plus_as_2b() {
        assert_eq!(inventory_key("a b+c%d.txt"), "a+b%2Bc%25d.txt");
        assert_eq!(
            decode_key(inventory_key("a b+c%d.txt").as_bytes()).unwrap(),
            "a b+c%d.txt"
        );
    }

    /// Reads the committed fixture as `copy --inventory` would and plans every key from it.
    #[tokio::test]
    async fn the_fixture_plans_into_the_original_histories() {
        let manifest = fixture_dir()
            .join("inventory/fixture-src/all-versions/2026-11-25T01-00Z/manifest.json");
        let spec = InputSpec::Inventory {
            uri: manifest.display().to_string(),
            check: false,
        };
        let loaded = crate::input::load(
            &spec,
            &crate::s3::fake::FakeS3::default(),
            "fixture-src",
            false,
        )
        .await
        .unwrap();
        assert_eq!(loaded.files, 3);
        let expected = fixture_histories();
        assert_eq!(
            loaded.rows,
            expected.iter().map(|h| h.entries.len() as u64).sum::<u64>()
        );
        let mut groups: Vec<(String, Vec<crate::input::rows::Row>)> = Vec::new();
        for row in loaded.sorted {
            let row = row.unwrap();
            match groups.last_mut() {
                Some((key, rows)) if *key == row.key => rows.push(row),
                _ => groups.push((row.key.clone(), vec![row])),
            }
        }
        let mut expected_sorted = expected.clone();
        expected_sorted.sort_by(|a, b| a.key.cmp(&b.key));
        assert_eq!(groups.len(), expected_sorted.len());
        for ((key, rows), want) in groups.into_iter().zip(expected_sorted) {
            assert_eq!(key, want.key);
            match plan_key(key, rows, false) {
                KeyPlan::Ready(history) => {
                    let got: Vec<_> = history
                        .entries
                        .iter()
                        .map(|e| (&e.version_id, e.is_delete_marker(), e.size()))
                        .collect();
                    let wanted: Vec<_> = want
                        .entries
                        .iter()
                        .map(|e| (&e.version_id, e.is_delete_marker(), e.size()))
                        .collect();
                    assert_eq!(got, wanted, "{}", want.key);
                }
                // Both versions of same-second were written in one second; IsLatest orders them.
                KeyPlan::List { key, .. } => panic!("{key} needed a listing"),
            }
        }
    }
}
