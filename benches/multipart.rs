//! The multipart threshold: one 1 GiB object (uploaded as a plain 1 GiB PUT, so the copy chooses its
//! own parts) copied with a single CopyObject (the default threshold, 5GiB) and with parallel
//! UploadPartCopy (--multipart-threshold 512MiB, 64 MiB parts), alternating A B A B, against SeaweedFS.
//!
//! Run: cargo bench --bench multipart   (figures go to BENCHMARKS.md by hand)

mod support;

use aws_sdk_s3::primitives::ByteStream;
use s3_backfill::local_server::SeaweedFs;

const SIZE: usize = 1 << 30;
const ROUNDS: usize = 3;

#[tokio::main]
async fn main() {
    let server = SeaweedFs::start().unwrap();
    let client = server.client();
    support::create_bucket(&client, "big-source", true).await;
    let body: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8).collect();
    client
        .put_object()
        .bucket("big-source")
        .key("one-gib")
        .body(ByteStream::from(body))
        .send()
        .await
        .unwrap();
    let mut results: Vec<(&str, Vec<f64>, Vec<f64>)> = vec![
        ("single CopyObject (default threshold)", vec![], vec![]),
        (
            "parallel UploadPartCopy (--multipart-threshold 512MiB, 64 MiB parts)",
            vec![],
            vec![],
        ),
    ];
    for round in 0..ROUNDS {
        for (variant, (_, rates, cpus)) in results.iter_mut().enumerate() {
            let destination = format!("big-{round}-{variant}");
            support::create_bucket(&client, &destination, true).await;
            let target = format!("s3://{destination}");
            let mut args = vec!["copy", "s3://big-source", &target, "--no-checkpoint"];
            if variant == 1 {
                args.extend(["--multipart-threshold", "512MiB"]);
            }
            let (wall, cpu, _) = support::run(&server, &args);
            let rate = 1024.0 / wall;
            println!(
                "round {round} variant {variant}: {wall:.1} s, {rate:.0} MiB/s, client CPU {cpu:.2} s"
            );
            rates.push(rate);
            cpus.push(cpu);
        }
    }
    for (name, rates, cpus) in results {
        println!(
            "| 1 GiB object, {name} | {:.0} MiB/s (median of {ROUNDS}), client CPU {:.2} s |",
            support::median(rates),
            support::median(cpus)
        );
    }
}
