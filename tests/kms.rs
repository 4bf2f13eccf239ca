//! SSE-KMS through both copy paths, on moto (SeaweedFS has no KMS here): each copy keeps its version's
//! encryption, KMS key and S3 Bucket Key, `verify` names what a copy lost, and `--carry-encryption`
//! decides between the version's encryption and the destination's default.

mod common;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketVersioningStatus, ServerSideEncryption, ServerSideEncryptionByDefault,
    ServerSideEncryptionConfiguration, ServerSideEncryptionRule, VersioningConfiguration,
};
use common::moto::{moto_s3, on_moto};
use common::{bucket_name, text};
use std::process::Output;

const KEY_1: &str = "arn:aws:kms:us-east-1:123456789012:key/11111111-aaaa";
const KEY_2: &str = "arn:aws:kms:us-east-1:123456789012:key/22222222-bbbb";

fn verify(source: &str, destination: &str, extra: &[&str]) -> Output {
    let (source, destination) = (format!("s3://{source}"), format!("s3://{destination}"));
    let args: Vec<&str> = ["verify", source.as_str(), destination.as_str()]
        .into_iter()
        .chain(extra.iter().copied())
        .collect();
    on_moto(&args)
}

/// A versioned bucket whose default encryption is `default` (algorithm, KMS key, Bucket Key).
async fn bucket(
    label: &str,
    default: Option<(ServerSideEncryption, Option<&str>, bool)>,
) -> String {
    let client = moto_s3().await;
    let name = bucket_name(label);
    client.create_bucket().bucket(&name).send().await.unwrap();
    client
        .put_bucket_versioning()
        .bucket(&name)
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap();
    if let Some((algorithm, key, bucket_key)) = default {
        let rule = ServerSideEncryptionRule::builder()
            .apply_server_side_encryption_by_default(
                ServerSideEncryptionByDefault::builder()
                    .sse_algorithm(algorithm)
                    .set_kms_master_key_id(key.map(str::to_string))
                    .build()
                    .unwrap(),
            )
            .bucket_key_enabled(bucket_key)
            .build();
        client
            .put_bucket_encryption()
            .bucket(&name)
            .server_side_encryption_configuration(
                ServerSideEncryptionConfiguration::builder()
                    .rules(rule)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
    }
    name
}

/// Each object's (encryption, KMS key, Bucket Key), read back by HEAD.
async fn encryption(bucket: &str, key: &str) -> (Option<String>, Option<String>, bool) {
    let head = moto_s3()
        .await
        .head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    (
        head.server_side_encryption()
            .map(|s| s.as_str().to_string()),
        head.ssekms_key_id().map(str::to_string),
        head.bucket_key_enabled().unwrap_or(false),
    )
}

fn kms(key: &str, bucket_key: bool) -> (Option<String>, Option<String>, bool) {
    (Some("aws:kms".into()), Some(key.into()), bucket_key)
}

/// A source whose default is SSE-KMS with KEY_1 and a Bucket Key, holding: "default" (written with the
/// default), "own-key" (written with KEY_2 and a Bucket Key), both small (CopyObject), and "large"
/// (6 MiB with KEY_2 and no Bucket Key, copied by UploadPartCopy under `--multipart-threshold 5MiB`).
async fn kms_source() -> String {
    let source = bucket(
        "kms-src",
        Some((ServerSideEncryption::AwsKms, Some(KEY_1), true)),
    )
    .await;
    let client = moto_s3().await;
    client
        .put_object()
        .bucket(&source)
        .key("default")
        .body(ByteStream::from_static(b"default encryption"))
        .send()
        .await
        .unwrap();
    // (moto keeps no Bucket Key through CreateMultipartUpload, so "large" has none.)
    for (key, size, bucket_key) in [("own-key", 12, true), ("large", 6 << 20, false)] {
        client
            .put_object()
            .bucket(&source)
            .key(key)
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .ssekms_key_id(KEY_2)
            .bucket_key_enabled(bucket_key)
            .body(ByteStream::from(vec![3u8; size]))
            .send()
            .await
            .unwrap();
    }
    source
}

#[tokio::test(flavor = "multi_thread")]
async fn sse_kms_keeps_its_key_and_bucket_key_on_both_copy_paths() {
    let source = kms_source().await;
    assert_eq!(encryption(&source, "default").await, kms(KEY_1, true));
    // The destination's default is SSE-S3: a copy without encryption headers would get that.
    let destination = bucket("kms-dst", Some((ServerSideEncryption::Aes256, None, false))).await;
    let output = on_moto(&[
        "copy",
        "--progress",
        "never",
        &format!("s3://{source}"),
        &format!("s3://{destination}"),
        "--multipart-threshold",
        "5MiB",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    for key in ["default", "own-key", "large"] {
        let (source, copy) = (
            encryption(&source, key).await,
            encryption(&destination, key).await,
        );
        assert_eq!(copy, source, "{key}");
        assert_eq!(copy.0.as_deref(), Some("aws:kms"), "{key}");
    }
    assert_eq!(
        encryption(&destination, "default").await.1.as_deref(),
        Some(KEY_1)
    );
    assert_eq!(
        encryption(&destination, "own-key").await.1.as_deref(),
        Some(KEY_2)
    );
    let output = verify(&source, &destination, &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_names_a_lost_kms_key_and_carry_encryption_never_gives_the_destination_default() {
    let source = kms_source().await;
    let destination = bucket(
        "kms-never",
        Some((ServerSideEncryption::Aes256, None, false)),
    )
    .await;
    let output = on_moto(&[
        "copy",
        "--progress",
        "never",
        &format!("s3://{source}"),
        &format!("s3://{destination}"),
        "--carry-encryption",
        "never",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_eq!(
        encryption(&destination, "default").await,
        (Some("AES256".into()), None, false)
    );
    let output = verify(&source, &destination, &[]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    for key in ["default", "own-key", "large"] {
        assert!(
            text(&output).contains(&format!(
                "key {key:?}, version {}",
                version_of(&source, key).await
            )) && text(&output).contains(
                "server-side encryption: source Some(\"aws:kms\"), destination Some(\"AES256\")"
            ),
            "{key}: {}",
            text(&output)
        );
    }
    // A copy with another KMS key and no Bucket Key: verify names both. (`only` holds one copy with
    // the source's encryption, `alone` a copy of it with KEY_2 and no Bucket Key.)
    let client = moto_s3().await;
    let only = bucket("kms-one", None).await;
    client
        .copy_object()
        .bucket(&only)
        .key("default")
        .copy_source(format!("{source}/default"))
        .server_side_encryption(ServerSideEncryption::AwsKms)
        .ssekms_key_id(KEY_1)
        .bucket_key_enabled(true)
        .send()
        .await
        .unwrap();
    let alone = bucket("kms-alone", None).await;
    client
        .copy_object()
        .bucket(&alone)
        .key("default")
        .copy_source(format!("{only}/default"))
        .server_side_encryption(ServerSideEncryption::AwsKms)
        .ssekms_key_id(KEY_2)
        .send()
        .await
        .unwrap();
    let output = verify(&only, &alone, &[]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(
        text(&output).contains("SSE-KMS key: source"),
        "{}",
        text(&output)
    );
    assert!(
        text(&output).contains("S3 Bucket Key: source enabled, destination not"),
        "{}",
        text(&output)
    );
    // Told the key the copies were made with, verify checks each copy has it.
    let output = verify(&only, &alone, &["--sse-kms-key-id", KEY_2]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let output = verify(&only, &alone, &["--sse-kms-key-id", KEY_1]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(
        text(&output).contains("--sse-kms-key-id"),
        "{}",
        text(&output)
    );
}

/// The one case `auto` misses, by design: both buckets default to SSE-S3, so no version is read, and a
/// version written with its own SSE-KMS headers gets the destination's SSE-S3. `always` reads each one.
#[tokio::test(flavor = "multi_thread")]
async fn carry_encryption_always_keeps_a_version_written_with_its_own_encryption() {
    let sse_s3 = || Some((ServerSideEncryption::Aes256, None, false));
    let source = bucket("own-src", sse_s3()).await;
    moto_s3()
        .await
        .put_object()
        .bucket(&source)
        .key("own")
        .server_side_encryption(ServerSideEncryption::AwsKms)
        .ssekms_key_id(KEY_2)
        .body(ByteStream::from_static(b"its own key"))
        .send()
        .await
        .unwrap();
    for (mode, expected) in [
        ("auto", (Some("AES256".to_string()), None, false)),
        ("always", kms(KEY_2, false)),
    ] {
        let destination = bucket(&format!("own-{mode}"), sse_s3()).await;
        let output = on_moto(&[
            "copy",
            "--progress",
            "never",
            &format!("s3://{source}"),
            &format!("s3://{destination}"),
            "--carry-encryption",
            mode,
        ]);
        assert_eq!(output.status.code(), Some(0), "{}", text(&output));
        assert_eq!(encryption(&destination, "own").await, expected, "{mode}");
        // verify sees what auto missed.
        let verified = verify(&source, &destination, &[]);
        assert_eq!(
            verified.status.code(),
            Some(if mode == "auto" { 1 } else { 0 }),
            "{mode}: {}",
            text(&verified)
        );
    }
}

async fn version_of(bucket: &str, key: &str) -> String {
    moto_s3()
        .await
        .head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap()
        .version_id()
        .unwrap()
        .to_string()
}
