//! Test support: one SeaweedFS per test binary, seeding helpers, the CLI, and an independent oracle that
//! reads what arrived from the raw ListObjectVersions XML with its own scanner (not the engine's parser).

#![allow(dead_code)] // each test binary uses its own part of this module

pub mod chaos_proxy;
pub mod forward_proxy;
pub mod moto;

use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::FinalizerInterceptorContextRef;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use s3_backfill::local_server::SeaweedFs;

pub fn server() -> &'static SeaweedFs {
    static SERVER: OnceLock<SeaweedFs> = OnceLock::new();
    SERVER.get_or_init(|| SeaweedFs::start().expect("start SeaweedFS"))
}

pub fn client() -> Client {
    server().client()
}

/// A bucket name no other test uses.
pub fn bucket_name(label: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{label}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

pub async fn create_bucket(label: &str, versioned: bool) -> String {
    let bucket = bucket_name(label);
    let client = client();
    client
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("create bucket");
    if versioned {
        client
            .put_bucket_versioning()
            .bucket(&bucket)
            .versioning_configuration(
                VersioningConfiguration::builder()
                    .status(BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .expect("enable versioning");
    }
    bucket
}

/// A bucket created with Object Lock (so versioned), with a default retention of `default_days` in
/// GOVERNANCE mode when given.
pub async fn create_locked_bucket(label: &str, default_days: Option<i32>) -> String {
    use aws_sdk_s3::types::{
        DefaultRetention, ObjectLockConfiguration, ObjectLockEnabled, ObjectLockRetentionMode,
        ObjectLockRule,
    };
    let bucket = bucket_name(label);
    client()
        .create_bucket()
        .bucket(&bucket)
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .expect("create bucket with Object Lock");
    if let Some(days) = default_days {
        let retention = DefaultRetention::builder()
            .mode(ObjectLockRetentionMode::Governance)
            .days(days)
            .build();
        client()
            .put_object_lock_configuration()
            .bucket(&bucket)
            .object_lock_configuration(
                ObjectLockConfiguration::builder()
                    .object_lock_enabled(ObjectLockEnabled::Enabled)
                    .rule(
                        ObjectLockRule::builder()
                            .default_retention(retention)
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await
            .expect("default retention");
    }
    bucket
}

pub async fn enable_versioning(bucket: &str) {
    client()
        .put_bucket_versioning()
        .bucket(bucket)
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .expect("enable versioning");
}

pub async fn put(bucket: &str, key: &str, body: impl Into<Vec<u8>>) {
    client()
        .put_object()
        .bucket(bucket)
        .key(key)
        .content_type("text/plain")
        .body(ByteStream::from(body.into()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("put {key}: {e:?}"));
}

pub async fn delete(bucket: &str, key: &str) {
    client()
        .delete_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("delete {key}: {e:?}"));
}

/// A working directory for the binary, so default checkpoints stay out of the source tree.
pub fn work_dir() -> &'static std::path::Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("temp dir"))
        .path()
}

/// The real binary, without the machine's proxy variables (a test that wants a proxy sets them).
pub fn binary() -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_s3-backfill"));
    s3_backfill::local_server::without_proxies(&mut command);
    command
}

/// The real binary, set up for the test server.
pub fn command(args: &[&str]) -> std::process::Command {
    let mut command = binary();
    command
        .current_dir(work_dir())
        .args(args)
        .args(["--endpoint-url", &server().endpoint])
        .envs(server().env())
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL");
    command
}

/// Runs a command that talks to no server (status).
pub fn offline(args: &[&str]) -> Output {
    binary()
        .current_dir(work_dir())
        .args(args)
        .output()
        .expect("run s3-backfill")
}

/// Runs the real binary against the test server.
pub fn cli(args: &[&str]) -> Output {
    command(args).output().expect("run s3-backfill")
}

/// `copy s3://SOURCE s3://DESTINATION` through `endpoint` (the server or a proxy in front of it), with
/// the server's credentials; callers add their options.
pub fn copy_via(endpoint: &str, source: &str, destination: &str) -> std::process::Command {
    let mut command = binary();
    command
        .current_dir(work_dir())
        .args([
            "copy",
            &format!("s3://{source}"),
            &format!("s3://{destination}"),
        ])
        .args(["--endpoint-url", endpoint])
        .envs(server().env())
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL");
    command
}

/// `verify s3://SOURCE s3://DESTINATION` (each `bucket` or `bucket/prefix`) finds no difference.
pub fn assert_verified(source: &str, destination: &str) {
    let output = cli(&[
        "verify",
        &format!("s3://{source}"),
        &format!("s3://{destination}"),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
}

/// The independent listing of `destination` shows every history of `source`: the same keys, and per
/// key the same versions and delete markers in the same order.
pub async fn assert_same_histories(source: &str, destination: &str) {
    let (want, got) = (
        histories(source, "").await,
        histories(destination, "").await,
    );
    assert_eq!(
        want.iter().map(|(key, _)| key).collect::<Vec<_>>(),
        got.iter().map(|(key, _)| key).collect::<Vec<_>>(),
        "missing or extra keys"
    );
    for ((key, a), (_, b)) in want.iter().zip(&got) {
        assert!(
            same_history(a, b),
            "{key}: duplicated, missing or reordered:\n{a:?}\n{b:?}"
        );
    }
}

pub fn text(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// One entry as the oracle sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    Version { size: u64, etag: String },
    DeleteMarker,
}

#[derive(Debug, Clone, Default)]
struct RawBody(Arc<Mutex<Option<Vec<u8>>>>);

impl Intercept for RawBody {
    fn name(&self) -> &'static str {
        "OracleRawBody"
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(bytes) = context.response().and_then(|r| r.body().bytes()) {
            *self.0.lock().unwrap() = Some(bytes.to_vec());
        }
        Ok(())
    }
}

fn between<'a>(text: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = text.find(open)? + open.len();
    let end = text[start..].find(close)? + start;
    Some(&text[start..end])
}

fn unescape(text: &str) -> String {
    text.replace("&#34;", "\"")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#39;", "'")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// Every key under `prefix` with its history, oldest first, read in the XML's own order.
pub async fn histories(bucket: &str, prefix: &str) -> Vec<(String, Vec<Seen>)> {
    raw_histories(bucket, prefix)
        .await
        .into_iter()
        .map(|(key, entries)| (key, entries.into_iter().map(|e| e.seen).collect()))
        .collect()
}

/// One entry with its version id and LastModified, as the XML gives them.
#[derive(Debug, Clone)]
pub struct RawEntry {
    pub version_id: String,
    pub last_modified: String,
    pub seen: Seen,
}

/// `histories` with version ids and times.
pub async fn raw_histories(bucket: &str, prefix: &str) -> Vec<(String, Vec<RawEntry>)> {
    let client = client();
    let mut result: Vec<(String, Vec<RawEntry>)> = Vec::new();
    let (mut key_marker, mut version_marker) = (None::<String>, None::<String>);
    loop {
        let raw = RawBody::default();
        client
            .list_object_versions()
            .bucket(bucket)
            .prefix(prefix)
            .max_keys(97) // small pages: histories cross page boundaries
            .set_key_marker(key_marker.clone())
            .set_version_id_marker(version_marker.clone())
            .customize()
            .interceptor(raw.clone())
            .send()
            .await
            .expect("oracle listing");
        let body = String::from_utf8(raw.0.lock().unwrap().take().expect("body")).unwrap();
        let mut rest = body.as_str();
        loop {
            let version = rest.find("<Version>");
            let marker = rest.find("<DeleteMarker>");
            let (start, close, is_marker) = match (version, marker) {
                (Some(v), Some(m)) if m < v => (m, "</DeleteMarker>", true),
                (Some(v), _) => (v, "</Version>", false),
                (None, Some(m)) => (m, "</DeleteMarker>", true),
                (None, None) => break,
            };
            let end = rest[start..].find(close).expect("closed entry") + start;
            let element = &rest[start..end];
            let key = unescape(between(element, "<Key>", "</Key>").expect("key"));
            let seen = if is_marker {
                Seen::DeleteMarker
            } else {
                Seen::Version {
                    size: between(element, "<Size>", "</Size>")
                        .unwrap()
                        .parse()
                        .unwrap(),
                    etag: unescape(between(element, "<ETag>", "</ETag>").unwrap_or_default()),
                }
            };
            let seen = RawEntry {
                version_id: unescape(
                    between(element, "<VersionId>", "</VersionId>").unwrap_or("null"),
                ),
                last_modified: between(element, "<LastModified>", "</LastModified>")
                    .unwrap_or_default()
                    .to_string(),
                seen,
            };
            match result.last_mut() {
                Some((last, entries)) if *last == key => entries.push(seen),
                _ => result.push((key, vec![seen])),
            }
            rest = &rest[end..];
        }
        if between(&body, "<IsTruncated>", "</IsTruncated>") != Some("true") {
            break;
        }
        key_marker = between(&body, "<NextKeyMarker>", "</NextKeyMarker>").map(unescape);
        version_marker =
            between(&body, "<NextVersionIdMarker>", "</NextVersionIdMarker>").map(unescape);
    }
    for (_, entries) in &mut result {
        entries.reverse();
    }
    result
}

/// Histories with the prefix removed from each key, for comparing ranges.
pub async fn relative_histories(bucket: &str, prefix: &str) -> Vec<(String, Vec<Seen>)> {
    histories(bucket, prefix)
        .await
        .into_iter()
        .map(|(key, entries)| (key[prefix.len()..].to_string(), entries))
        .collect()
}

/// Equal histories, except that multipart ETags are not compared: SeaweedFS gives UploadPartCopy parts
/// composite ETags, so a multipart copy's ETag differs there even with the source's part layout (on S3 it
/// matches). Callers compare those versions' bytes instead (`same_bytes`).
pub fn same_history(source: &[Seen], destination: &[Seen]) -> bool {
    source.len() == destination.len()
        && source.iter().zip(destination).all(|pair| match pair {
            (Seen::DeleteMarker, Seen::DeleteMarker) => true,
            (Seen::Version { size: a, etag: x }, Seen::Version { size: b, etag: y }) => {
                a == b && (x.contains('-') || y.contains('-') || x == y)
            }
            _ => false,
        })
}

/// Version ids of a key with no delete markers, oldest first (the SDK keeps the order among versions).
pub async fn version_ids(bucket: &str, key: &str) -> Vec<String> {
    let out = client()
        .list_object_versions()
        .bucket(bucket)
        .prefix(key)
        .send()
        .await
        .unwrap();
    let mut ids: Vec<String> = out
        .versions()
        .iter()
        .filter(|v| v.key() == Some(key))
        .map(|v| v.version_id().unwrap().to_string())
        .collect();
    ids.reverse();
    ids
}

/// Compares the bytes of every version of `key` in the two buckets, in order.
pub async fn same_bytes(source: &str, destination: &str, key: &str) -> bool {
    let read = |bucket: String, version: String| async move {
        let object = client()
            .get_object()
            .bucket(bucket)
            .key(key)
            .version_id(version)
            .send()
            .await
            .unwrap();
        object.body.collect().await.unwrap().into_bytes()
    };
    let (left, right) = (
        version_ids(source, key).await,
        version_ids(destination, key).await,
    );
    if left.len() != right.len() {
        return false;
    }
    for (a, b) in left.into_iter().zip(right) {
        if read(source.to_string(), a).await != read(destination.to_string(), b).await {
            return false;
        }
    }
    true
}

/// A multipart upload in 5 MiB parts: a copy that keeps the source's part layout keeps its ETag.
pub async fn put_multipart(bucket: &str, key: &str, size: usize, seed: usize) {
    let client = client();
    let upload = client
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    let upload_id = upload.upload_id().unwrap();
    let body: Vec<u8> = (0..size).map(|i| ((i + seed) % 241) as u8).collect();
    let mut parts = Vec::new();
    for (index, chunk) in body.chunks(5 << 20).enumerate() {
        let number = index as i32 + 1;
        let part = client
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .body(ByteStream::from(chunk.to_vec()))
            .send()
            .await
            .unwrap();
        parts.push(
            aws_sdk_s3::types::CompletedPart::builder()
                .part_number(number)
                .e_tag(part.e_tag().unwrap())
                .build(),
        );
    }
    client
        .complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(upload_id)
        .multipart_upload(
            aws_sdk_s3::types::CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .unwrap();
}
