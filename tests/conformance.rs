//! The S3 behaviours the engine relies on, written once and run on every backend the tests use (issue
//! 26, item 4): the in-memory S3 that drives the property tests, SeaweedFS through both senders (the
//! direct one and the SDK's), and moto. If the in-memory S3 passes where a real server fails, or the
//! other way round, the property tests prove things about a wrong model.
//!
//! Each check seeds its own buckets through a backend's seeder (the SDK's client for a real server,
//! `MemoryS3`'s own calls for the fake), then asks the engine's `S3Api` what it sees. Where a real server
//! deviates from S3, the deviation is named in `DEVIATIONS` with its reason and printed; it is never a
//! silent skip, and a deviation that no longer happens fails the suite (the list must stay true).
//!
//! Against any endpoint (a real S3 bucket too) — `CONFORMANCE_ENDPOINT=https://s3.us-east-1.amazonaws.com
//! CONFORMANCE_REGION=us-east-1 cargo test --test conformance -- --ignored`, with credentials in the usual
//! AWS variables: it creates 14 buckets named `s3-backfill-conformance-*`, a few bytes and one 5 MiB object
//! a sender (under a cent), and leaves them for you to delete.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use aws_sdk_s3::primitives::ByteStream;
use s3_backfill::s3::memory::MemoryS3;
use s3_backfill::s3::{
    AwsS3, Connection, CopyRequest, Entry, ListRequest, ProxyChoice, S3Api, S3Error, VersionRef,
    Versioning,
};

/// Where the buckets of a check are made, and how objects are put there (outside the engine).
enum Seeder {
    Memory(MemoryS3),
    Sdk(aws_sdk_s3::Client),
}

impl Seeder {
    async fn bucket(&self, label: &str, versioned: bool) -> String {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        // Unique on a real S3 too, where bucket names are global.
        let name = format!(
            "s3-backfill-conformance-{label}-{:08x}-{}",
            fastrand::u32(..),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        match self {
            Seeder::Memory(s3) => s3.create_bucket(
                &name,
                if versioned {
                    Versioning::Enabled
                } else {
                    Versioning::Never
                },
            ),
            Seeder::Sdk(client) => {
                let region = client.config().region().map(|r| r.to_string());
                let mut create = client.create_bucket().bucket(&name);
                if let Some(region) = region.filter(|r| r != "us-east-1") {
                    create = create.create_bucket_configuration(
                        aws_sdk_s3::types::CreateBucketConfiguration::builder()
                            .location_constraint(region.as_str().into())
                            .build(),
                    );
                }
                create.send().await.unwrap();
                if versioned {
                    self.enable_versioning(&name).await;
                }
            }
        }
        name
    }

    async fn enable_versioning(&self, bucket: &str) {
        match self {
            Seeder::Memory(s3) => s3.set_versioning(bucket, Versioning::Enabled),
            Seeder::Sdk(client) => {
                client
                    .put_bucket_versioning()
                    .bucket(bucket)
                    .versioning_configuration(
                        aws_sdk_s3::types::VersioningConfiguration::builder()
                            .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                            .build(),
                    )
                    .send()
                    .await
                    .unwrap();
            }
        }
    }

    /// Puts `size` bytes (in parts of `parts` when given, by a multipart upload).
    async fn put(&self, bucket: &str, key: &str, size: usize, parts: Option<Vec<usize>>) {
        match self {
            Seeder::Memory(s3) => {
                s3.put(
                    bucket,
                    key,
                    size as u64,
                    parts.map(|p| p.into_iter().map(|s| s as u64).collect()),
                );
            }
            Seeder::Sdk(client) => {
                let body: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
                let Some(parts) = parts else {
                    client
                        .put_object()
                        .bucket(bucket)
                        .key(key)
                        .body(ByteStream::from(body))
                        .send()
                        .await
                        .unwrap();
                    return;
                };
                let upload = client
                    .create_multipart_upload()
                    .bucket(bucket)
                    .key(key)
                    .send()
                    .await
                    .unwrap();
                let id = upload.upload_id().unwrap();
                let mut completed = Vec::new();
                let mut offset = 0;
                for (index, size) in parts.iter().enumerate() {
                    let number = index as i32 + 1;
                    let part = client
                        .upload_part()
                        .bucket(bucket)
                        .key(key)
                        .upload_id(id)
                        .part_number(number)
                        .body(ByteStream::from(body[offset..offset + size].to_vec()))
                        .send()
                        .await
                        .unwrap();
                    offset += size;
                    completed.push(
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
                    .upload_id(id)
                    .multipart_upload(
                        aws_sdk_s3::types::CompletedMultipartUpload::builder()
                            .set_parts(Some(completed))
                            .build(),
                    )
                    .send()
                    .await
                    .unwrap();
            }
        }
    }

    async fn delete(&self, bucket: &str, key: &str) {
        match self {
            Seeder::Memory(s3) => s3.delete(bucket, key),
            Seeder::Sdk(client) => {
                client
                    .delete_object()
                    .bucket(bucket)
                    .key(key)
                    .send()
                    .await
                    .unwrap();
            }
        }
    }
}

/// Every entry of `bucket` in one listing.
async fn list_all(api: &impl S3Api, bucket: &str, max_keys: i32) -> Vec<Entry> {
    let mut request = ListRequest {
        bucket: bucket.to_string(),
        max_keys: Some(max_keys),
        ..ListRequest::default()
    };
    let mut entries = Vec::new();
    loop {
        let page = api.list_versions(request.clone()).await.unwrap();
        entries.extend(page.entries);
        if !request.advance(page.next) {
            return entries;
        }
    }
}

/// `(key, kind)` of each entry, kind `D` for a delete marker and the size for an object.
fn shape(entries: &[Entry]) -> Vec<(String, String)> {
    entries
        .iter()
        .map(|e| {
            let kind = if e.is_delete_marker() {
                "D".to_string()
            } else {
                e.size().to_string()
            };
            (e.key.clone(), kind)
        })
        .collect()
}

type Outcome = Result<(), String>;

/// Versions and delete markers in ListObjectVersions: keys in byte order (`a` < `a-x` < `a/b` < `b`),
/// each key's entries newest first with its delete markers in their place (not after its versions),
/// the newest alone `is_latest`.
async fn versions_and_markers_in_order(api: &impl S3Api, seed: &Seeder) -> Outcome {
    let bucket = seed.bucket("order", true).await;
    seed.put(&bucket, "a", 1, None).await;
    seed.put(&bucket, "a", 2, None).await;
    seed.delete(&bucket, "a").await;
    seed.put(&bucket, "a", 3, None).await;
    seed.delete(&bucket, "a").await;
    seed.put(&bucket, "a/b", 4, None).await;
    seed.put(&bucket, "a-x", 5, None).await;
    seed.put(&bucket, "b", 6, None).await;
    let entries = list_all(api, &bucket, 1000).await;
    let want: Vec<(String, String)> = [
        ("a", "D"),
        ("a", "3"),
        ("a", "D"),
        ("a", "2"),
        ("a", "1"),
        ("a-x", "5"),
        ("a/b", "4"),
        ("b", "6"),
    ]
    .iter()
    .map(|(k, s)| (k.to_string(), s.to_string()))
    .collect();
    check(shape(&entries) == want, || {
        format!("listed {:?}, want {want:?}", shape(&entries))
    })?;
    let latest: Vec<bool> = entries.iter().map(|e| e.is_latest).collect();
    check(
        latest == [true, false, false, false, false, true, true, true],
        || format!("is_latest {latest:?}"),
    )
}

/// Paging with key and version markers, page sizes 1, 2 and 3 (so boundaries fall inside one key's
/// history, between a delete marker and a version): the pages add up to the one listing.
async fn pages_add_up_to_the_listing(api: &impl S3Api, seed: &Seeder) -> Outcome {
    let bucket = seed.bucket("paging", true).await;
    for key in ["k1", "k2"] {
        seed.put(&bucket, key, 1, None).await;
        seed.delete(&bucket, key).await;
        seed.put(&bucket, key, 2, None).await;
        seed.put(&bucket, key, 3, None).await;
    }
    let whole = list_all(api, &bucket, 1000).await;
    let ids = |entries: &[Entry]| -> Vec<(String, String)> {
        entries
            .iter()
            .map(|e| (e.key.clone(), e.version_id.clone()))
            .collect()
    };
    check(whole.len() == 8, || format!("{} entries", whole.len()))?;
    for size in [1, 2, 3] {
        let paged = list_all(api, &bucket, size).await;
        check(ids(&paged) == ids(&whole), || {
            format!(
                "pages of {size}: {:?}\nwhole: {:?}",
                ids(&paged),
                ids(&whole)
            )
        })?;
    }
    Ok(())
}

/// An object put before versioning keeps the version id `null` after it, beneath the new versions.
async fn null_versions_from_before_versioning(api: &impl S3Api, seed: &Seeder) -> Outcome {
    let bucket = seed.bucket("null", false).await;
    seed.put(&bucket, "n", 1, None).await;
    seed.enable_versioning(&bucket).await;
    seed.put(&bucket, "n", 2, None).await;
    let entries = list_all(api, &bucket, 1000).await;
    let ids: Vec<(&str, u64)> = entries
        .iter()
        .map(|e| (e.version_id.as_str(), e.size()))
        .collect();
    check(
        ids.len() == 2 && ids[0].0 != "null" && !ids[0].0.is_empty() && ids[1] == ("null", 1),
        || format!("{ids:?}"),
    )
}

/// A multipart object's ETag is `"<md5 of the parts' md5s>-<parts>"`, and HeadObject of its first part
/// gives the part's size and the part count (what a multipart copy reproduces the layout from).
async fn multipart_etags_and_part_layouts(api: &impl S3Api, seed: &Seeder) -> Outcome {
    let bucket = seed.bucket("multipart", true).await;
    seed.put(&bucket, "m", (5 << 20) + 1024, Some(vec![5 << 20, 1024]))
        .await;
    let entries = list_all(api, &bucket, 1000).await;
    let etag = match entries.first().map(|e| &e.kind) {
        Some(s3_backfill::s3::EntryKind::Object { etag, .. }) => etag.clone(),
        other => return Err(format!("{other:?}")),
    };
    check(etag.trim_matches('"').ends_with("-2"), || {
        format!("ETag {etag}")
    })?;
    let head = api
        .head_object(
            &VersionRef {
                bucket: bucket.clone(),
                key: "m".into(),
                version_id: entries[0].version_id.clone(),
            },
            Some(1),
        )
        .await
        .map_err(|e| e.to_string())?;
    check(
        head.parts_count == Some(2) && head.part_size == Some(5 << 20),
        || {
            format!(
                "parts_count {:?}, part_size {:?}",
                head.parts_count, head.part_size
            )
        },
    )
}

/// CopyObject of a named version of awkward keys lands under the same key, with its size; a delete
/// answers the marker's version id, listed as a marker.
async fn awkward_keys_copy_and_delete_markers_are_named(
    api: &impl S3Api,
    seed: &Seeder,
) -> Outcome {
    let source = seed.bucket("awkward-src", true).await;
    let destination = seed.bucket("awkward-dst", true).await;
    let keys = [
        "with space",
        "plus+sign",
        "per%20cent",
        "ünïcödé/ключ",
        "q?x=1&y=2",
        "a//double",
    ];
    for (index, key) in keys.iter().enumerate() {
        seed.put(&source, key, index + 1, None).await;
    }
    let listed = list_all(api, &source, 1000).await;
    for entry in &listed {
        let request = CopyRequest {
            bucket: destination.clone(),
            key: entry.key.clone(),
            source: VersionRef {
                bucket: source.clone(),
                key: entry.key.clone(),
                version_id: entry.version_id.clone(),
            },
            size: entry.size(),
            ..CopyRequest::default()
        };
        api.copy_object(&request)
            .await
            .map_err(|e| format!("copy {:?}: {e}", entry.key))?;
    }
    let copied = list_all(api, &destination, 1000).await;
    check(shape(&copied) == shape(&listed), || {
        format!("{:?} / {:?}", shape(&copied), shape(&listed))
    })?;
    let marker = api
        .delete_object(&destination, keys[0])
        .await
        .map_err(|e| e.to_string())?;
    let after = list_all(api, &destination, 1000).await;
    let first = after.iter().find(|e| e.key == keys[0]).unwrap();
    check(
        first.is_delete_marker() && marker.as_deref() == Some(first.version_id.as_str()),
        || format!("delete answered {marker:?}, listed {first:?}"),
    )
}

/// The errors the engine branches on: a version that does not exist (NoSuchVersion: NotFound), a
/// bucket that does not exist (NoSuchBucket).
async fn errors_the_engine_branches_on(api: &impl S3Api, seed: &Seeder) -> Outcome {
    let bucket = seed.bucket("errors", true).await;
    seed.put(&bucket, "k", 1, None).await;
    let copy = CopyRequest {
        bucket: bucket.clone(),
        key: "copy".into(),
        source: VersionRef {
            bucket: bucket.clone(),
            key: "k".into(),
            version_id: "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY".into(),
        },
        size: 1,
        ..CopyRequest::default()
    };
    let missing_version = api.copy_object(&copy).await;
    check(
        matches!(missing_version, Err(S3Error::NotFound { .. })),
        || format!("copy of a missing version: {missing_version:?}"),
    )?;
    let missing_bucket = api
        .list_versions(ListRequest {
            bucket: format!("{bucket}-missing"),
            ..ListRequest::default()
        })
        .await;
    check(
        matches!(missing_bucket, Err(S3Error::NoSuchBucket { .. })),
        || format!("listing a missing bucket: {missing_bucket:?}"),
    )
}

fn check(ok: bool, why: impl FnOnce() -> String) -> Outcome {
    if ok { Ok(()) } else { Err(why()) }
}

/// A real server's known deviations from S3: (backend, check, why). Printed on every run.
const DEVIATIONS: &[(&str, &str, &str)] = &[
    (
        "moto",
        "versions_and_markers_in_order",
        "moto 5.1.22 writes a key's <Version> elements before its <DeleteMarker> elements instead of \
         interleaving them newest first, as S3 and SeaweedFS do; the engine's data path is tested on \
         SeaweedFS, moto serves configuration (replication, IAM, KMS, S3 Control)",
    ),
    (
        "moto",
        "pages_add_up_to_the_listing",
        "the same order, cut into pages by key and version markers, gives yet another order",
    ),
    (
        "moto",
        "awkward_keys_copy_and_delete_markers_are_named",
        "the same order: a new delete marker is listed after the key's versions, not first",
    ),
];

/// Runs every check on one backend; the failures not in `DEVIATIONS`, and deviations that did not
/// happen.
async fn run_all(backend: &str, api: &impl S3Api, seed: &Seeder) -> Vec<String> {
    let mut problems = Vec::new();
    let mut record = |check: &str, outcome: Outcome| {
        let allowed = DEVIATIONS
            .iter()
            .find(|(b, c, _)| *b == backend && *c == check);
        match (outcome, allowed) {
            (Ok(()), None) => eprintln!("{backend}: {check}: ok"),
            (Err(why), Some((_, _, reason))) => {
                eprintln!("{backend}: {check}: deviates, allowed ({reason}): {why}")
            }
            (Err(why), None) => problems.push(format!("{backend}: {check}: {why}")),
            (Ok(()), Some(_)) => problems.push(format!(
                "{backend}: {check}: listed in DEVIATIONS but conforms now: take it off the list"
            )),
        }
    };
    record(
        "versions_and_markers_in_order",
        versions_and_markers_in_order(api, seed).await,
    );
    record(
        "pages_add_up_to_the_listing",
        pages_add_up_to_the_listing(api, seed).await,
    );
    record(
        "null_versions_from_before_versioning",
        null_versions_from_before_versioning(api, seed).await,
    );
    record(
        "multipart_etags_and_part_layouts",
        multipart_etags_and_part_layouts(api, seed).await,
    );
    record(
        "awkward_keys_copy_and_delete_markers_are_named",
        awkward_keys_copy_and_delete_markers_are_named(api, seed).await,
    );
    record(
        "errors_the_engine_branches_on",
        errors_the_engine_branches_on(api, seed).await,
    );
    problems
}

async fn engine_client(endpoint: &str, credentials: (&str, &str), sdk_only: bool) -> AwsS3 {
    AwsS3::connect(&Connection {
        endpoint_url: Some(endpoint.to_string()),
        region: Some("us-east-1".into()),
        path_style: Some(true),
        static_credentials: Some((credentials.0.to_string(), credentials.1.to_string())),
        proxy: ProxyChoice::Off,
        sdk_only,
        ..Connection::default()
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn every_backend_behaves_as_the_engine_relies_on() {
    eprintln!("allowed deviations: {DEVIATIONS:?}");
    let mut problems = Vec::new();
    let memory = MemoryS3::new();
    problems.extend(run_all("memory", &memory, &Seeder::Memory(memory.clone())).await);
    let seaweed = common::server();
    let credentials = seaweed.credentials();
    for (backend, sdk_only) in [("seaweedfs-direct", false), ("seaweedfs-sdk", true)] {
        let api = engine_client(&seaweed.endpoint, credentials, sdk_only).await;
        problems.extend(run_all(backend, &api, &Seeder::Sdk(seaweed.client())).await);
    }
    let moto = common::moto::moto();
    let api = engine_client(&moto.endpoint, ("testing", "testing"), false).await;
    problems.extend(run_all("moto", &api, &Seeder::Sdk(common::moto::moto_s3().await)).await);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The same checks against any endpoint, a real S3 bucket included (see the module doc for the command
/// and what it costs). Both senders.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs an endpoint and credentials: CONFORMANCE_ENDPOINT, CONFORMANCE_REGION"]
async fn a_given_endpoint_behaves_as_the_engine_relies_on() {
    let endpoint = std::env::var("CONFORMANCE_ENDPOINT").ok();
    let region = std::env::var("CONFORMANCE_REGION").unwrap_or_else(|_| "us-east-1".into());
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.clone()));
    if let Some(endpoint) = &endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    let seeder = Seeder::Sdk(aws_sdk_s3::Client::new(&loader.load().await));
    let mut problems = Vec::new();
    for (backend, sdk_only) in [("endpoint-direct", false), ("endpoint-sdk", true)] {
        let api = AwsS3::connect(&Connection {
            endpoint_url: endpoint.clone(),
            region: Some(region.clone()),
            sdk_only,
            ..Connection::default()
        })
        .await;
        problems.extend(run_all(backend, &api, &seeder).await);
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
