//! The copy engine against a real S3 server (SeaweedFS), through the real binary. What arrived is
//! checked by the oracle's independent listing, never by the engine's report.

mod common;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Tag, Tagging};
use common::*;
use futures::StreamExt;

const AWKWARD: [&str; 6] = [
    "with space",
    "plus+sign",
    "per%cent%20",
    "hash#and?question",
    "unicodé/日本語/ключ",
    "xml \"quote\" 'apos' &amp <tag>",
];

/// A source with the histories that trip other tools, written in quick succession (whole-second ties).
async fn seed_histories(bucket: &str) -> usize {
    // Before versioning: the null version.
    put(bucket, "null-then-more", "null version").await;
    put(bucket, "only-null", "only the null version").await;
    enable_versioning(bucket).await;
    put(bucket, "null-then-more", "after versioning").await;
    for revision in 0..4 {
        put(
            bucket,
            "many",
            format!("revision {revision} {}", "x".repeat(revision)),
        )
        .await;
    }
    // Delete markers in the middle and at the top, put/delete/put/delete within a second.
    put(bucket, "middle-marker", "one").await;
    delete(bucket, "middle-marker").await;
    put(bucket, "middle-marker", "three!").await;
    put(bucket, "top-marker", "a").await;
    delete(bucket, "top-marker").await;
    put(bucket, "top-marker", "bb").await;
    delete(bucket, "top-marker").await;
    put(bucket, "empty", "").await;
    for key in AWKWARD {
        put(bucket, key, key).await;
    }
    put(bucket, &"k".repeat(1024), "longest key").await;
    // More keys than one listing page, so histories cross the engine's pages too.
    for index in 0..1100 {
        put(bucket, &format!("bulk/{index:05}"), format!("{index}")).await;
    }
    1100 + 20
}

#[tokio::test(flavor = "multi_thread")]
async fn copies_every_version_and_delete_marker_in_order() {
    let source = create_bucket("src", false).await;
    let destination = create_bucket("dst", true).await;
    seed_histories(&source).await;
    let report = tempfile::NamedTempFile::new().unwrap();
    let output = cli(&[
        "copy",
        &format!("s3://{source}"),
        &format!("s3://{destination}"),
        "--progress",
        "never",
        "--report",
        report.path().to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));

    let expected = histories(&source, "").await;
    let arrived = histories(&destination, "").await;
    assert_eq!(expected.len(), arrived.len());
    for ((source_key, source_entries), (key, entries)) in expected.iter().zip(&arrived) {
        assert_eq!(source_key, key);
        assert_eq!(source_entries, entries, "history of {key:?}");
    }
    // Spot checks that the oracle itself saw the interesting cases.
    let top = &arrived.iter().find(|(k, _)| k == "top-marker").unwrap().1;
    assert!(matches!(
        top[..],
        [
            Seen::Version { .. },
            Seen::DeleteMarker,
            Seen::Version { .. },
            Seen::DeleteMarker
        ]
    ));
    assert_eq!(
        arrived.iter().find(|(k, _)| k == "many").unwrap().1.len(),
        4
    );

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report.path()).unwrap()).unwrap();
    assert_eq!(report["delete_markers"], 3);
    assert_eq!(report["failed"], 0);
    assert_verified(&source, &destination);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_never_versioned_source_is_listed_with_list_objects_v2_and_copied_exactly() {
    let source = create_bucket("nv-src", false).await;
    let destination = create_bucket("nv-dst", true).await;
    // More than a page at the top level and inside one prefix, and names that need URL encoding.
    let keys: Vec<String> = (0..1_010)
        .map(|i| format!("top-{i:04}"))
        .chain((0..1_050).map(|i| format!("flat/{i:04}")))
        .chain(["other/a b+c%d".to_string(), "other/ü".to_string()])
        .collect();
    futures::stream::iter(keys.clone())
        .for_each_concurrent(32, |key| {
            let source = source.clone();
            async move { put(&source, &key, key.clone()).await }
        })
        .await;
    let proxy = common::chaos_proxy::ChaosProxy::start(server().port, Default::default(), 1);
    let output = copy_via(&proxy.endpoint, &source, &destination)
        .args(["--no-checkpoint", "--progress", "never"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    // The proxy sees requests lowercased.
    let lines = proxy.counts.request_lines.lock().unwrap().clone();
    let source_lists: Vec<&String> = lines
        .iter()
        .filter(|line| {
            line.starts_with(&format!("get /{source}/?"))
                && !line.contains("?object-lock")
                && !line.contains("?versioning ")
                && !line.contains("?website ")
                && !line.contains("?encryption ")
        })
        .collect();
    assert!(
        source_lists.iter().all(|line| line.contains("list-type=2")),
        "{source_lists:?}"
    );
    assert!(
        source_lists
            .iter()
            .any(|line| line.contains("continuation-token")),
        "{source_lists:?}"
    );
    assert_eq!(histories(&source, "").await.len(), keys.len());
    assert_same_histories(&source, &destination).await;
}

async fn put_large(bucket: &str, key: &str, size: usize) {
    let body: Vec<u8> = (0..size).map(|i| (i * 7 % 253) as u8).collect();
    client()
        .put_object()
        .bucket(bucket)
        .key(key)
        .content_type("application/x-test")
        .cache_control("max-age=60")
        .content_disposition("attachment; filename=\"big.bin\"")
        .content_language("en")
        .expires(aws_sdk_s3::primitives::DateTime::from_secs(2_000_000_000))
        .storage_class(aws_sdk_s3::types::StorageClass::StandardIa)
        .metadata("origin", "camera-1")
        .metadata("shot", "42")
        .tagging("project=apollo&stage=raw")
        .body(ByteStream::from(body))
        .send()
        .await
        .expect("put large object");
}

#[tokio::test(flavor = "multi_thread")]
async fn multipart_copy_keeps_metadata_tags_and_content_like_a_single_copy() {
    let source = create_bucket("src", true).await;
    let destination = create_bucket("dst", true).await;
    put_large(&source, "big.bin", 41 << 20).await;
    put_large(&source, "small.bin", 1 << 20).await;
    let output = cli(&[
        "copy",
        &format!("s3://{source}"),
        &format!("s3://{destination}"),
        "--multipart-threshold",
        "8MiB",
        "--part-size",
        "5MiB",
        "--progress",
        "never",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("1 multipart"),
        "{}",
        text(&output)
    );

    let client = client();
    for key in ["big.bin", "small.bin"] {
        let head = client
            .head_object()
            .bucket(&destination)
            .key(key)
            .send()
            .await
            .unwrap();
        let original = client
            .head_object()
            .bucket(&source)
            .key(key)
            .send()
            .await
            .unwrap();
        assert_eq!(head.content_length(), original.content_length(), "{key}");
        assert_eq!(head.content_type(), Some("application/x-test"), "{key}");
        assert_eq!(head.cache_control(), Some("max-age=60"), "{key}");
        assert_eq!(
            head.content_disposition(),
            original.content_disposition(),
            "{key}"
        );
        assert_eq!(head.metadata(), original.metadata(), "{key}");
        let mut tags: Vec<_> = client
            .get_object_tagging()
            .bucket(&destination)
            .key(key)
            .send()
            .await
            .unwrap()
            .tag_set()
            .iter()
            .map(|t| format!("{}={}", t.key(), t.value()))
            .collect();
        tags.sort();
        assert_eq!(tags, ["project=apollo", "stage=raw"], "{key}");
    }
    // The bytes themselves, compared in full.
    let read = |bucket: String| {
        let client = client.clone();
        async move {
            let object = client
                .get_object()
                .bucket(bucket)
                .key("big.bin")
                .send()
                .await
                .unwrap();
            object.body.collect().await.unwrap().into_bytes()
        }
    };
    assert!(read(source.clone()).await == read(destination.clone()).await);
    let uploads = client
        .list_multipart_uploads()
        .bucket(&destination)
        .send()
        .await
        .unwrap();
    assert!(
        uploads.uploads().is_empty(),
        "orphaned uploads: {:?}",
        uploads.uploads()
    );
    // verify compares every attribute of both copies (the table in README): none differs.
    assert_verified(&source, &destination);
}

#[tokio::test(flavor = "multi_thread")]
async fn maps_prefixes_and_applies_include_and_exclude() {
    let source = create_bucket("src", true).await;
    let destination = create_bucket("dst", true).await;
    for key in [
        "data/logs/a",
        "data/logs/tmp/b",
        "data/img/c",
        "data/other/d",
        "outside/e",
    ] {
        put(&source, key, key).await;
        put(&source, key, format!("{key} v2")).await;
    }
    let output = cli(&[
        "copy",
        &format!("s3://{source}/data/"),
        &format!("s3://{destination}/backup/2024/"),
        "--include-prefix",
        "logs/",
        "--include-prefix",
        "img/",
        "--exclude-prefix",
        "logs/tmp/",
        "--progress",
        "never",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let arrived = histories(&destination, "").await;
    let keys: Vec<_> = arrived.iter().map(|(k, e)| (k.as_str(), e.len())).collect();
    assert_eq!(keys, [("backup/2024/img/c", 2), ("backup/2024/logs/a", 2)]);
}

#[tokio::test(flavor = "multi_thread")]
async fn latest_only_copies_current_versions_into_an_unversioned_bucket() {
    let source = create_bucket("src", true).await;
    let destination = create_bucket("dst", false).await;
    put(&source, "live", "old").await;
    put(&source, "live", "current!").await;
    put(&source, "deleted", "gone").await;
    delete(&source, "deleted").await;
    let output = cli(&[
        "copy",
        &format!("s3://{source}"),
        &format!("s3://{destination}"),
        "--latest-only",
        "--progress",
        "never",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let arrived = histories(&destination, "").await;
    assert_eq!(arrived.len(), 1, "{arrived:?}");
    assert_eq!(arrived[0].0, "live");
    assert!(matches!(arrived[0].1[..], [Seen::Version { size: 8, .. }]));
    let verify = cli(&[
        "verify",
        &format!("s3://{source}"),
        &format!("s3://{destination}"),
        "--latest-only",
    ]);
    assert_eq!(verify.status.code(), Some(0), "{}", text(&verify));
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_plans_and_writes_nothing() {
    let source = create_bucket("src", true).await;
    let destination = create_bucket("dst", true).await;
    put(&source, "a", "1").await;
    put(&source, "a", "22").await;
    delete(&source, "a").await;
    put(&source, "b", "333").await;
    let output = cli(&[
        "copy",
        &format!("s3://{source}"),
        &format!("s3://{destination}"),
        "--dry-run",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("would copy 3 versions (6 B, 0 of them multipart) and recreate 1 delete marker across 2 keys"),
        "{stdout}"
    );
    assert!(histories(&destination, "").await.is_empty());
    // Planned against the destination: once "a" is copied and "b" has a new version, only that
    // version would be copied.
    let output = cli(&[
        "copy",
        &format!("s3://{source}"),
        &format!("s3://{destination}"),
        "--include-prefix",
        "a",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    put(&source, "b", "4444").await;
    let before = histories(&destination, "").await;
    let output = cli(&[
        "copy",
        &format!("s3://{source}"),
        &format!("s3://{destination}"),
        "--dry-run",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("would copy 2 versions (7 B, 0 of them multipart) and recreate 0 delete markers across 1 key")
            && stdout.contains(
                "already in the destination, not copied again: 3 entries (3 B, 3 write requests); 1 key wholly in step"
            ),
        "{stdout}"
    );
    assert_eq!(histories(&destination, "").await, before);
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_detects_missing_extra_and_reordered_versions() {
    let source = create_bucket("src", true).await;
    put(&source, "k", "one").await;
    put(&source, "k", "twotwo").await;
    let run = |destination: &str| {
        cli(&[
            "verify",
            &format!("s3://{source}"),
            &format!("s3://{destination}"),
        ])
    };

    let missing = create_bucket("missing", true).await;
    put(&missing, "k", "one").await;
    let output = run(&missing);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(
        text(&output).contains("1 versions missing"),
        "{}",
        text(&output)
    );

    let extra = create_bucket("extra", true).await;
    for body in ["one", "twotwo", "three"] {
        put(&extra, "k", body).await;
    }
    let output = run(&extra);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(
        text(&output).contains("1 versions extra"),
        "{}",
        text(&output)
    );

    let reordered = create_bucket("reordered", true).await;
    put(&reordered, "k", "twotwo").await;
    put(&reordered, "k", "one").await;
    let output = run(&reordered);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(
        text(&output).contains("entry 1 (oldest is 1)"),
        "{}",
        text(&output)
    );

    let exact = create_bucket("exact", true).await;
    put(&exact, "k", "one").await;
    put(&exact, "k", "twotwo").await;
    assert_eq!(run(&exact).status.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unversioned_destination_is_refused_before_any_write() {
    let source = create_bucket("src", true).await;
    let destination = create_bucket("dst", false).await;
    put(&source, "a", "1").await;
    let output = cli(&[
        "copy",
        &format!("s3://{source}"),
        &format!("s3://{destination}"),
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "destination bucket {destination} has versioning not enabled"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("--latest-only"), "{stderr}");
    assert!(histories(&destination, "").await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_buckets_credentials_and_urls_exit_2_naming_the_problem() {
    let source = create_bucket("src", true).await;
    let destination = create_bucket("dst", true).await;

    let output = cli(&[
        "copy",
        &format!("s3://{source}"),
        "s3://no-such-bucket-here",
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(
        text(&output).contains("destination bucket no-such-bucket-here does not exist"),
        "{}",
        text(&output)
    );

    let output = cli(&["copy", "s3:/typo", &format!("s3://{destination}")]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(
        text(&output).contains("invalid S3 URL \"s3:/typo\""),
        "{}",
        text(&output)
    );

    let output = cli(&[
        "copy",
        &format!("s3://{source}/a/"),
        &format!("s3://{source}/a/b/"),
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(text(&output).contains("overlap"), "{}", text(&output));

    let output = binary()
        .args([
            "copy",
            &format!("s3://{source}"),
            &format!("s3://{destination}"),
        ])
        .args(["--endpoint-url", &server().endpoint])
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "wrong-secret")
        .env("AWS_REGION", "us-east-1")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(
        text(&output).contains("rejected the credentials"),
        "{}",
        text(&output)
    );

    let output = cli(&[
        "copy",
        &format!("s3://{source}"),
        &format!("s3://{destination}"),
        "--concurrency",
        "0",
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    let output = cli(&[
        "copy",
        &format!("s3://{source}"),
        &format!("s3://{destination}"),
        "--part-size",
        "1MiB",
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(text(&output).contains("5MiB to 5GiB"), "{}", text(&output));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_permanent_failure_fails_that_key_only_and_is_reported() {
    let source = create_bucket("src", true).await;
    let destination = create_bucket("dst", true).await;
    // Under the destination prefix this key exceeds S3's 1,024 bytes: a permanent error for its entries.
    // Its carriage return must not reach the terminal raw (it would rewrite the line).
    let long = format!("{}\r", "L".repeat(1019));
    put(&source, &long, "first").await;
    put(&source, &long, "second").await;
    for key in ["fine/1", "fine/2", "fine/3"] {
        put(&source, key, key).await;
        put(&source, key, "again").await;
    }
    let report = tempfile::NamedTempFile::new().unwrap();
    let output = cli(&[
        "copy",
        &format!("s3://{source}"),
        &format!("s3://{destination}/prefix/"),
        "--report",
        report.path().to_str().unwrap(),
        "--progress",
        "never",
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        !stdout.contains('\r') && stdout.contains(&format!("/{}\\r version", "L".repeat(1019))),
        "{stdout:?}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report.path()).unwrap()).unwrap();
    assert_eq!(report["failed"], 1, "{report}");
    // The key's later version is not copied out of order.
    assert_eq!(report["skipped_after_failure"], 1, "{report}");
    let failure = &report["failures"][0];
    assert_eq!(failure["bucket"], source.as_str());
    assert_eq!(failure["key"], long.as_str());
    assert!(
        failure["version_id"]
            .as_str()
            .is_some_and(|v| !v.is_empty())
    );
    assert!(
        failure["reason"].as_str().unwrap().contains("KeyTooLong"),
        "{report}"
    );
    let arrived = histories(&destination, "prefix/").await;
    let keys: Vec<_> = arrived.iter().map(|(k, e)| (k.as_str(), e.len())).collect();
    assert_eq!(
        keys,
        [
            ("prefix/fine/1", 2),
            ("prefix/fine/2", 2),
            ("prefix/fine/3", 2)
        ]
    );
    // Tag the test as using tags so the import stays meaningful.
    let _ = Tagging::builder()
        .tag_set(Tag::builder().key("k").value("v").build().unwrap())
        .build();
}

#[tokio::test(flavor = "multi_thread")]
async fn shards_together_copy_the_whole_bucket_exactly_once() {
    let source = create_bucket("shard-src", true).await;
    let destination = create_bucket("shard-dst", true).await;
    for index in 0..60 {
        let key = format!("k/{index:03}");
        put(&source, &key, format!("{index} first")).await;
        if index % 2 == 0 {
            put(&source, &key, format!("{index} second")).await;
        }
        if index % 5 == 0 {
            delete(&source, &key).await;
        }
    }
    // Three processes at once, one a Kubernetes-style `auto`, one an AWS Batch array-job `auto`.
    let shard_args = |shard: &str| {
        let mut command = command(&[
            "copy",
            &format!("s3://{source}"),
            &format!("s3://{destination}"),
            "--shard",
            shard,
            "--progress",
            "never",
        ]);
        command
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        command
    };
    let mut first = shard_args("0/3");
    let mut second = shard_args("auto/3");
    second.env("JOB_COMPLETION_INDEX", "1");
    let mut third = shard_args("auto");
    third
        .env("AWS_BATCH_JOB_ARRAY_INDEX", "2")
        .env("AWS_BATCH_JOB_ARRAY_SIZE", "3");
    let children: Vec<_> = [first.spawn(), second.spawn(), third.spawn()]
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let mut copied = 0;
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "{}", text(&output));
        let shown = text(&output);
        let line = shown
            .lines()
            .find(|l| l.starts_with("copied "))
            .expect("summary");
        let versions: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        assert!(versions > 0, "every shard has work: {line}");
        copied += versions;
    }
    assert_eq!(
        copied, 90,
        "60 first versions and 30 second ones, each copied once"
    );
    assert_same_histories(&source, &destination).await;
    // A shard outside the count is refused before anything is written.
    let output = cli(&[
        "copy",
        &format!("s3://{source}"),
        &format!("s3://{destination}"),
        "--shard",
        "3/3",
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(
        text(&output).contains("the index (3) must be below the count (3)"),
        "{}",
        text(&output)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bench_measures_each_concurrency_and_cleans_up() {
    let bucket = create_bucket("bench", true).await;
    put(&bucket, "unrelated", "stays").await;
    let json = work_dir().join(format!("{bucket}.json"));
    let output = cli(&[
        "bench",
        &format!("s3://{bucket}/scratch/"),
        "--objects",
        "40",
        "--versions",
        "2",
        "--concurrency",
        "4,16",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("| concurrency | versions | objects/s"),
        "{}",
        text(&output)
    );
    let rows: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    for (row, concurrency) in rows.iter().zip([4, 16]) {
        assert_eq!(row["concurrency"], concurrency);
        assert_eq!(row["versions"], 80, "{row}");
        assert!(row["objects_per_second"].as_f64().unwrap() > 0.0, "{row}");
        assert!(row["latency_ms_p50"].as_f64().unwrap() > 0.0, "{row}");
        assert!(row["latency_ms_p99"].as_f64().unwrap() >= row["latency_ms_p50"].as_f64().unwrap());
    }
    // Everything bench wrote is gone; what was there before stays.
    let left = histories(&bucket, "").await;
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].0, "unrelated");

    // With --keep the scratch prefix stays, and a second bench refuses to work over it.
    let keep = cli(&[
        "bench",
        &format!("s3://{bucket}"),
        "--objects",
        "3",
        "--concurrency",
        "2",
        "--keep",
    ]);
    assert!(keep.status.success(), "{}", text(&keep));
    assert!(!histories(&bucket, "s3-backfill-bench/").await.is_empty());
    let again = cli(&[
        "bench",
        &format!("s3://{bucket}"),
        "--objects",
        "3",
        "--concurrency",
        "2",
    ]);
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    assert!(
        text(&again).contains("already holds objects"),
        "{}",
        text(&again)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_prefix_is_a_directory_as_in_aws_s3_cp_recursive() {
    let source = create_bucket("dir-src", true).await;
    let destination = create_bucket("dir-dst", true).await;
    for key in ["logs", "logs/a", "logs/sub/b", "logs2/b", "logsX"] {
        put(&source, key, key).await;
    }
    // Without the trailing slash, as users type it: logs2/b, logsX and the key exactly "logs" are
    // outside the range (aws s3 cp --recursive s3://B/logs s3://D/x copies logs/a and logs/sub/b only).
    let output = cli(&[
        "copy",
        &format!("s3://{source}/logs"),
        &format!("s3://{destination}/x"),
        "--progress",
        "never",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let keys: Vec<String> = histories(&destination, "")
        .await
        .into_iter()
        .map(|(key, _)| key)
        .collect();
    assert_eq!(keys, ["x/a", "x/sub/b"]);
    assert_verified(&format!("{source}/logs"), &format!("{destination}/x"));
    // The aws CLI's own answer, for both spellings of the range.
    let aws = s3_backfill::local_server::aws_cli().expect("install the aws CLI from PyPI");
    for range in ["logs", "logs/"] {
        let output = std::process::Command::new("python3")
            .arg(aws.join("bin").join("aws"))
            .args(["s3", "cp", "--recursive", "--dryrun"])
            .arg(format!("s3://{source}/{range}"))
            .arg(format!("s3://{destination}/x"))
            .args(["--endpoint-url", &server().endpoint])
            .env("PYTHONPATH", &aws)
            .envs(server().env())
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env_remove("AWS_PROFILE")
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", text(&output));
        let mut theirs: Vec<String> = String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| line.rsplit_once(&format!(" to s3://{destination}/")))
            .map(|(_, key)| key.to_string())
            .collect();
        theirs.sort();
        assert_eq!(theirs, keys, "aws s3 cp --recursive s3://{source}/{range}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_independent_endpoints_are_refused_before_any_write() {
    // A second SeaweedFS: an independent cluster. The destination endpoint performs every server-side
    // copy, reading the source bucket by name on its own side, so it can never reach the first cluster.
    let other = s3_backfill::local_server::SeaweedFs::start().unwrap();
    let bucket = bucket_name("xfer");
    client()
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    put(&bucket, "a", "one").await;
    let there = other.client();
    let target = bucket_name("xfer-dst");
    for name in [&bucket, &target] {
        there.create_bucket().bucket(name).send().await.unwrap();
        there
            .put_object()
            .bucket(name)
            .key("a")
            .body(aws_sdk_s3::primitives::ByteStream::from_static(b"theirs"))
            .send()
            .await
            .unwrap();
    }
    let run = |from: &str, to: &str| {
        binary()
            .current_dir(work_dir())
            .args(["copy", from, to, "--latest-only", "--progress", "never"])
            .args(["--source-endpoint-url", &server().endpoint])
            .args(["--dest-endpoint-url", &other.endpoint])
            .envs(server().env())
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_ENDPOINT_URL")
            .output()
            .unwrap()
    };
    // The same bucket name on both: the destination would copy its own "a" onto itself.
    let output = run(&format!("s3://{bucket}"), &format!("s3://{bucket}"));
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(
        text(&output).contains("overlap") && text(&output).contains("by name on its own side"),
        "{}",
        text(&output)
    );
    // Another name, but the destination cluster has no such source bucket.
    let missing = bucket_name("only-here");
    client()
        .create_bucket()
        .bucket(&missing)
        .send()
        .await
        .unwrap();
    put(&missing, "a", "one").await;
    let output = run(&format!("s3://{missing}"), &format!("s3://{target}"));
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(
        text(&output).contains(&format!("the destination endpoint has no bucket {missing}")),
        "{}",
        text(&output)
    );
    // Nothing was written on the other cluster.
    for name in [&bucket, &target] {
        let listed = there
            .list_object_versions()
            .bucket(name)
            .send()
            .await
            .unwrap();
        assert_eq!(listed.versions().len(), 1, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_names_every_attribute_that_differs() {
    use aws_sdk_s3::types::{ChecksumAlgorithm, ServerSideEncryption, StorageClass};
    let source = create_bucket("attr-src", true).await;
    let destination = create_bucket("attr-dst", true).await;
    let put_with = |bucket: String, key: &'static str, change: bool| async move {
        let mut request = client()
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_type("text/plain")
            .body(ByteStream::from_static(b"same bytes"));
        if change {
            request = match key {
                "Content-Type" => request.content_type("text/html"),
                "Cache-Control" => request.cache_control("no-cache"),
                "Content-Disposition" => request.content_disposition("inline"),
                "Content-Encoding" => request.content_encoding("identity"),
                "Content-Language" => request.content_language("fr"),
                "Expires" => {
                    request.expires(aws_sdk_s3::primitives::DateTime::from_secs(2_000_000_000))
                }
                "user metadata" => request.metadata("owner", "someone"),
                "storage class" => request.storage_class(StorageClass::StandardIa),
                "tags" => request.tagging("team=x"),
                // The source has these; the destination's copy lacks them.
                _ => request,
            };
        } else {
            request = match key {
                "server-side encryption" => {
                    request.server_side_encryption(ServerSideEncryption::Aes256)
                }
                "checksum algorithm" => request.checksum_algorithm(ChecksumAlgorithm::Sha256),
                _ => request,
            };
        }
        request.send().await.unwrap();
    };
    let attributes = [
        "Content-Type",
        "Cache-Control",
        "Content-Disposition",
        "Content-Encoding",
        "Content-Language",
        "Expires",
        "user metadata",
        "storage class",
        "tags",
        "server-side encryption",
        "checksum algorithm",
    ];
    for key in attributes {
        put_with(source.clone(), key, false).await;
        put_with(destination.clone(), key, true).await;
    }
    let output = cli(&[
        "verify",
        &format!("s3://{source}"),
        &format!("s3://{destination}"),
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    for attribute in attributes {
        let named = if attribute == "tags" {
            "tags differ"
        } else {
            attribute
        };
        assert!(
            stdout
                .lines()
                .any(|l| l.contains(&format!("key {attribute:?}")) && l.contains(named)),
            "{attribute}: {stdout}"
        );
    }
}

/// Copies `source` into `destination` with a 5 MiB multipart threshold: objects above it go by
/// UploadPartCopy, the rest by CopyObject.
fn copy_by_both_paths(source: &str, destination: &str) {
    let output = cli(&[
        "copy",
        &format!("s3://{source}"),
        &format!("s3://{destination}"),
        "--multipart-threshold",
        "5MiB",
        "--progress",
        "never",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
}

#[tokio::test(flavor = "multi_thread")]
async fn sse_s3_survives_both_copy_paths_into_a_bucket_without_default_encryption() {
    use aws_sdk_s3::types::ServerSideEncryption;
    let source = create_bucket("sse-src", true).await;
    let destination = create_bucket("sse-dst", true).await;
    for (key, size) in [("small", 10), ("large", 6 << 20)] {
        client()
            .put_object()
            .bucket(&source)
            .key(key)
            .server_side_encryption(ServerSideEncryption::Aes256)
            .body(ByteStream::from(vec![7u8; size]))
            .send()
            .await
            .unwrap();
    }
    put(&source, "plain", "not encrypted").await;
    // "small" goes by CopyObject, "large" by UploadPartCopy.
    copy_by_both_paths(&source, &destination);
    for (key, encrypted) in [("small", true), ("large", true), ("plain", false)] {
        let head = client()
            .head_object()
            .bucket(&destination)
            .key(key)
            .send()
            .await
            .unwrap();
        assert_eq!(
            head.server_side_encryption() == Some(&ServerSideEncryption::Aes256),
            encrypted,
            "{key}: {head:?}"
        );
    }
    assert_verified(&source, &destination);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_checksum_algorithm_survives_both_copy_paths() {
    use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode};
    let source = create_bucket("sum-src", true).await;
    let destination = create_bucket("sum-dst", true).await;
    for (key, size, algorithm) in [
        ("small", 10, ChecksumAlgorithm::Crc32),
        ("large", 6 << 20, ChecksumAlgorithm::Sha256),
    ] {
        client()
            .put_object()
            .bucket(&source)
            .key(key)
            .checksum_algorithm(algorithm)
            .body(ByteStream::from(vec![3u8; size]))
            .send()
            .await
            .unwrap();
    }
    copy_by_both_paths(&source, &destination);
    let head = |key: &'static str| {
        client()
            .head_object()
            .bucket(&destination)
            .key(key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
    };
    assert!(head("small").await.unwrap().checksum_crc32().is_some());
    // The multipart copy's checksum is composite (of its parts): the algorithm is what survives.
    let large = head("large").await.unwrap();
    assert!(
        large.checksum_sha256().is_some_and(|v| v.contains('-')),
        "{large:?}"
    );
    assert_verified(&source, &destination);
}

#[tokio::test(flavor = "multi_thread")]
async fn sse_c_sources_need_their_key_and_copy_with_it() {
    use md5::Digest;
    let source = create_bucket("ssec-src", true).await;
    let destination = create_bucket("ssec-dst", true).await;
    let (theirs, ours) = ([7u8; 32], [9u8; 32]);
    let base64 = |bytes: &[u8]| aws_smithy_types::base64::encode(bytes);
    let md5 = |key: &[u8]| base64(&md5::Md5::digest(key));
    client()
        .put_object()
        .bucket(&source)
        .key("secret")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(base64(&theirs))
        .sse_customer_key_md5(md5(&theirs))
        .body(ByteStream::from_static(b"encrypted with their key"))
        .send()
        .await
        .unwrap();
    put(&source, "plain", "not encrypted").await;
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("our.key");
    std::fs::write(&key_file, ours).unwrap();
    let run = |extra: &[&str]| {
        let mut command = command(&[
            "copy",
            &format!("s3://{source}"),
            &format!("s3://{destination}"),
            "--progress",
            "never",
        ]);
        command
            .current_dir(dir.path())
            .args(extra)
            .output()
            .unwrap()
    };
    // Without the key: that version fails, saying it is SSE-C and which options to pass.
    let output = run(&[]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(
        text(&output).contains("customer-provided key (SSE-C)")
            && text(&output).contains("--source-sse-c-key"),
        "{}",
        text(&output)
    );
    // With their key to read and ours to write: copied, readable with our key, and no key printed.
    let output = run(&[
        "--source-sse-c-key",
        &base64(&theirs),
        "--sse-c-key",
        &format!("file:{}", key_file.display()),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(
        !text(&output).contains(&base64(&theirs)) && !text(&output).contains(&base64(&ours)),
        "{}",
        text(&output)
    );
    // Read back with our key. (SeaweedFS sends the key-MD5 header twice on GET and HEAD, which the
    // SDK refuses, so the copy is decrypted by a CopyObject with our key into a plain object.)
    client()
        .copy_object()
        .bucket(&destination)
        .key("decrypted")
        .copy_source(format!("{destination}/secret"))
        .copy_source_sse_customer_algorithm("AES256")
        .copy_source_sse_customer_key(base64(&ours))
        .copy_source_sse_customer_key_md5(md5(&ours))
        .send()
        .await
        .unwrap();
    let copy = client()
        .get_object()
        .bucket(&destination)
        .key("decrypted")
        .send()
        .await
        .unwrap();
    let body = copy.body.collect().await.unwrap().into_bytes();
    assert_eq!(&body[..], b"encrypted with their key");
    // A key of the wrong length is refused before anything runs.
    let output = run(&["--sse-c-key", &base64(&[1u8; 16])]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(text(&output).contains("32 bytes"), "{}", text(&output));
}

/// README's first command: the demo starts its own server, seeds, copies, verifies, stops.
#[test]
fn the_demo_runs_end_to_end() {
    let output = offline(&["demo"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(text(&output).contains("demo complete"), "{}", text(&output));
    // The histories are shown before and after: the draft's put, delete, put, delete in order.
    let shown = text(&output);
    let drafts = shown
        .lines()
        .filter(|l| {
            l.trim_start().starts_with("docs/draft.txt ")
                && l.ends_with("7 B -> (deleted) -> 7 B -> (deleted)")
        })
        .count();
    assert_eq!(drafts, 2, "{shown}");
}

/// An endpoint set only by AWS_ENDPOINT_URL_S3 (or a profile's endpoint_url) switches on path-style
/// addressing as --endpoint-url does: `bucket.127.0.0.1` would not resolve.
#[tokio::test(flavor = "multi_thread")]
async fn an_endpoint_from_aws_endpoint_url_s3_is_addressed_path_style() {
    let source = create_bucket("envurl-src", true).await;
    let destination = create_bucket("envurl-dst", true).await;
    put(&source, "k", "v").await;
    let output = binary()
        .current_dir(work_dir())
        .args([
            "copy",
            &format!("s3://{source}"),
            &format!("s3://{destination}"),
        ])
        .args(["--no-checkpoint", "--progress", "never"])
        .envs(server().env())
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .env("AWS_ENDPOINT_URL_S3", &server().endpoint)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_same_histories(&source, &destination).await;
}
