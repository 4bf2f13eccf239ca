//! Planning from a 10,000,000-row synthetic S3 Inventory report (2,500,000 keys x 4 versions, rows
//! scattered over 20 gzip'd files): `copy --inventory ... --dry-run` with the release binary against
//! SeaweedFS, measuring the whole run's time, CPU and peak memory (the external sort keeps it bounded).
//!
//! Run: cargo bench --bench inventory   (figures go to BENCHMARKS.md by hand)

mod support;

use std::io::Write;

use s3_backfill::input::fixture::md5_hex;
use s3_backfill::local_server::SeaweedFs;

const KEYS: u64 = 2_500_000;
const VERSIONS: u64 = 4;
const FILES: u64 = 20;
const SCHEMA: &str =
    "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag, StorageClass";

/// Writes the report under `dir` in the AWS layout; returns the manifest's path.
fn write_report(dir: &std::path::Path, bucket: &str) -> std::path::PathBuf {
    let rows = KEYS * VERSIONS;
    let base = dir.join(format!("inventory/{bucket}/all"));
    std::fs::create_dir_all(base.join("data")).unwrap();
    std::fs::create_dir_all(base.join("2026-11-25T01-00Z")).unwrap();
    let mut files = Vec::new();
    let per_file = rows / FILES;
    for file in 0..FILES {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut line = Vec::with_capacity(256);
        for r in file * per_file..(file + 1) * per_file {
            // A bijection of 0..rows (7919 is prime to 10^7): rows of one key land far apart.
            let n = (r * 7919) % rows;
            let (key, version) = (n / VERSIONS, n % VERSIONS);
            line.clear();
            writeln!(
                line,
                "\"{bucket}\",\"keys/{key:09}\",\"v{version}-{key}\",\"{}\",\"false\",\"1024\",\
                 \"2026-11-20T10:00:0{version}.000Z\",\"0123456789abcdef0123456789abcdef\",\"STANDARD\"",
                version == VERSIONS - 1
            )
            .unwrap();
            gz.write_all(&line).unwrap();
        }
        let bytes = gz.finish().unwrap();
        let key = format!("inventory/{bucket}/all/data/part-{file:02}.csv.gz");
        std::fs::write(dir.join(&key), &bytes).unwrap();
        files.push(
            serde_json::json!({"key": key, "size": bytes.len(), "MD5checksum": md5_hex(&bytes)}),
        );
    }
    let manifest = serde_json::to_vec(&serde_json::json!({
        "sourceBucket": bucket,
        "destinationBucket": "arn:aws:s3:::reports",
        "version": "2016-11-30",
        "creationTimestamp": "1764032400000",
        "fileFormat": "CSV",
        "fileSchema": SCHEMA,
        "files": files,
    }))
    .unwrap();
    let path = base.join("2026-11-25T01-00Z/manifest.json");
    std::fs::write(&path, manifest).unwrap();
    path
}

#[tokio::main]
async fn main() {
    let server = SeaweedFs::start().unwrap();
    let client = server.client();
    for bucket in ["bench-inventory", "bench-inventory-dst"] {
        client.create_bucket().bucket(bucket).send().await.unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let manifest = write_report(dir.path(), "bench-inventory");
    let compressed: u64 = std::fs::read_dir(dir.path().join("inventory/bench-inventory/all/data"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    println!(
        "wrote {} rows ({} MiB gzip'd) in {:.1} s",
        KEYS * VERSIONS,
        compressed >> 20,
        started.elapsed().as_secs_f64()
    );
    let (wall, cpu, peak) = support::run(
        &server,
        &[
            "copy",
            "s3://bench-inventory",
            "s3://bench-inventory-dst",
            "--inventory",
            manifest.to_str().unwrap(),
            "--dry-run",
        ],
    );
    let rows = (KEYS * VERSIONS) as f64;
    println!(
        "| plan from a {}-row inventory ({} files, {} MiB gzip'd), dry run | {wall:.1} s ({:.0} rows/s), CPU {cpu:.1} s, peak RSS {} MiB |",
        KEYS * VERSIONS,
        FILES,
        compressed >> 20,
        rows / wall,
        peak / 1024
    );
}
