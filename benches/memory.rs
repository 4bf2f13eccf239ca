//! Peak memory while copying 100,000 versions (50,000 keys x 2 in 16 prefixes), against a copy of an
//! eighth of them (two prefixes), with the checkpoint on: memory must stay flat as the bucket grows.
//!
//! Run: cargo bench --bench memory   (figures go to BENCHMARKS.md by hand)

mod support;

use aws_sdk_s3::primitives::ByteStream;
use futures::StreamExt;
use s3_backfill::local_server::SeaweedFs;

const PREFIXES: usize = 16;
const KEYS: usize = 50_000;

#[tokio::main]
async fn main() {
    let server = SeaweedFs::start().unwrap();
    let client = server.client();
    for bucket in ["memory-src", "memory-small", "memory-all"] {
        support::create_bucket(&client, bucket, true).await;
    }
    futures::stream::iter(0..KEYS)
        .for_each_concurrent(64, |index| {
            let client = client.clone();
            async move {
                for version in 0..2 {
                    client
                        .put_object()
                        .bucket("memory-src")
                        .key(format!("p{:02}/{index:07}", index % PREFIXES))
                        .body(ByteStream::from(vec![b'm'; 100 + version]))
                        .send()
                        .await
                        .unwrap();
                }
            }
        })
        .await;
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small.checkpoint");
    let all = dir.path().join("all.checkpoint");
    let runs: [(&str, Vec<&str>); 2] = [
        (
            "12,500 versions (2 of 16 prefixes)",
            vec![
                "copy",
                "s3://memory-src",
                "s3://memory-small",
                "--include-prefix",
                "p00/",
                "--include-prefix",
                "p01/",
                "--checkpoint",
                small.to_str().unwrap(),
            ],
        ),
        (
            "100,000 versions (16 prefixes)",
            vec![
                "copy",
                "s3://memory-src",
                "s3://memory-all",
                "--checkpoint",
                all.to_str().unwrap(),
            ],
        ),
    ];
    for (label, args) in runs {
        let (wall, cpu, peak) = support::run(&server, &args);
        println!(
            "| copy {label} | {wall:.1} s | CPU {cpu:.1} s | peak RSS {} MiB |",
            peak / 1024
        );
    }
}
