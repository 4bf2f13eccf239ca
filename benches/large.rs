//! Workload 3: large objects, one of 1 GiB and ten of 100 MiB, copied by s3-backfill (one CopyObject up
//! to the 5 GiB default threshold, and with parallel 64 MiB parts at --multipart-threshold 64MiB) and by
//! s5cmd, rclone and aws s3 cp, alternating, 3 rounds, medians; each destination checked by size.
//!
//! Run: cargo bench --bench large   (the table replaces the generated block in BENCHMARKS.md)

mod support;

use aws_sdk_s3::primitives::ByteStream;
use s3_backfill::local_server::SeaweedFs;

const ROUNDS: usize = 3;

async fn upload(client: &aws_sdk_s3::Client, key: &str, size: usize) {
    let part = 64 << 20;
    let upload = client
        .create_multipart_upload()
        .bucket("large-source")
        .key(key)
        .send()
        .await
        .unwrap();
    let id = upload.upload_id().unwrap();
    let mut parts = Vec::new();
    for (index, start) in (0..size).step_by(part).enumerate() {
        let len = part.min(size - start);
        let body: Vec<u8> = (start..start + len).map(|i| (i % 251) as u8).collect();
        let out = client
            .upload_part()
            .bucket("large-source")
            .key(key)
            .upload_id(id)
            .part_number(index as i32 + 1)
            .body(ByteStream::from(body))
            .send()
            .await
            .unwrap();
        parts.push(
            aws_sdk_s3::types::CompletedPart::builder()
                .part_number(index as i32 + 1)
                .e_tag(out.e_tag().unwrap())
                .build(),
        );
    }
    client
        .complete_multipart_upload()
        .bucket("large-source")
        .key(key)
        .upload_id(id)
        .multipart_upload(
            aws_sdk_s3::types::CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .unwrap();
}

async fn total_size(client: &aws_sdk_s3::Client, bucket: &str) -> i64 {
    let out = client
        .list_objects_v2()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    out.contents().iter().map(|o| o.size().unwrap_or(0)).sum()
}

#[tokio::main]
async fn main() {
    let server = SeaweedFs::start().unwrap();
    let client = server.client();
    let peers = support::Peers::install("64");
    support::create_bucket(&client, "large-source", false).await;
    upload(&client, "one-gib", 1 << 30).await;
    for index in 0..10 {
        upload(&client, &format!("hundred-mib-{index}"), 100 << 20).await;
    }
    let expected = total_size(&client, "large-source").await;
    let endpoint = server.endpoint.clone();
    let mut tools = vec!["s3-backfill (one CopyObject)", "s3-backfill (64 MiB parts)"];
    // s3sync 1.62.4 cannot copy these objects from SeaweedFS: it reads the source's first part with a
    // ranged GET and stops with "get_object() returned no content range" (SeaweedFS answers without
    // Content-Range), whatever its verify options. It takes part in workloads 1 and 2.
    tools.extend(peers.names().into_iter().filter(|name| *name != "s3sync"));
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); tools.len()];
    let mut cpus: Vec<Vec<f64>> = vec![Vec::new(); tools.len()];
    let mut peaks: Vec<Vec<f64>> = vec![Vec::new(); tools.len()];
    for round in 0..ROUNDS {
        for (index, tool) in tools.iter().enumerate() {
            let destination = format!("large-{round}-{index}");
            support::create_bucket(&client, &destination, false).await;
            let target = format!("s3://{destination}/");
            let mut command = match index {
                0 | 1 => {
                    let mut c = support::backfill(
                        &server,
                        &endpoint,
                        &[
                            "copy",
                            "s3://large-source/",
                            &target,
                            "--latest-only",
                            "--concurrency",
                            "64",
                            "--no-checkpoint",
                        ],
                    );
                    if index == 1 {
                        c.args(["--multipart-threshold", "64MiB", "--part-size", "64MiB"]);
                    }
                    c
                }
                _ => peers.copy(tool, "large-source", &destination, &endpoint, "64"),
            };
            command.envs(server.env());
            let (wall, cpu, peak) = support::measure(command);
            assert_eq!(total_size(&client, &destination).await, expected, "{tool}");
            let rate = expected as f64 / (1 << 20) as f64 / wall;
            println!(
                "round {round} {tool:30} {wall:6.1} s {rate:6.0} MiB/s, client CPU {cpu:.2} s"
            );
            rates[index].push(rate);
            cpus[index].push(cpu);
            peaks[index].push(peak as f64 / 1024.0);
            client
                .delete_objects()
                .bucket(&destination)
                .delete(
                    aws_sdk_s3::types::Delete::builder()
                        .set_objects(Some(
                            client
                                .list_objects_v2()
                                .bucket(&destination)
                                .send()
                                .await
                                .unwrap()
                                .contents()
                                .iter()
                                .map(|o| {
                                    aws_sdk_s3::types::ObjectIdentifier::builder()
                                        .key(o.key().unwrap())
                                        .build()
                                        .unwrap()
                                })
                                .collect(),
                        ))
                        .build()
                        .unwrap(),
                )
                .send()
                .await
                .unwrap();
        }
    }
    let mut out = String::from(
        "| workload 3: 1 GiB + 10 x 100 MiB | MiB/s (median of 3) | client CPU | peak RSS |\n| --- | --- | --- | --- |\n",
    );
    for (index, tool) in tools.iter().enumerate() {
        out += &format!(
            "| {tool} | {:.0} | {:.2} s | {:.0} MiB |\n",
            support::median(rates[index].clone()),
            support::median(cpus[index].clone()),
            support::median(peaks[index].clone())
        );
    }
    println!("\n{out}");
    let versions = format!(
        "s3-backfill {}, {}",
        env!("CARGO_PKG_VERSION"),
        peers.versions()
    );
    support::write_results("large", &versions, &out);
}
