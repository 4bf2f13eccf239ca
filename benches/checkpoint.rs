//! End-to-end cost of the checkpoint, against SeaweedFS on 127.0.0.1 (the real release binary):
//!
//! 1. Throughput on 1 KiB objects with the checkpoint and with --no-checkpoint, alternating A B A B.
//! 2. Resuming a job whose journal records 1,000,000 finished keys: time to finish and peak memory.
//!
//! Run: cargo bench --bench checkpoint   (figures go to BENCHMARKS.md by hand)

mod support;

use aws_sdk_s3::primitives::ByteStream;
use s3_backfill::checkpoint::{JobIdentity, Journal, Record, State, encode};
use s3_backfill::local_server::SeaweedFs;

const OBJECTS: usize = 3_000;
const ROUNDS: usize = 5;

async fn versioned_bucket(client: &aws_sdk_s3::Client, bucket: &str) {
    support::create_bucket(client, bucket, true).await;
    // SeaweedFS's first write into a new versioned bucket takes up to a second: keep it out of the timing.
    client
        .put_object()
        .bucket(bucket)
        .key("~warm-up")
        .body(ByteStream::from_static(b"w"))
        .send()
        .await
        .unwrap();
}

#[tokio::main]
async fn main() {
    let server = SeaweedFs::start().unwrap();
    let client = server.client();
    versioned_bucket(&client, "bench-source").await;
    support::put_small_objects(&client, "bench-source", OBJECTS).await;
    let dir = tempfile::tempdir().unwrap();
    let (mut with, mut without) = (Vec::new(), Vec::new());
    let (mut cpu_with, mut cpu_without) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        for checkpoint in [true, false] {
            let destination = format!(
                "bench-{round}-{}",
                if checkpoint { "journal" } else { "plain" }
            );
            versioned_bucket(&client, &destination).await;
            let journal = dir.path().join(format!("{destination}.checkpoint"));
            let mut args = vec![
                "copy".to_string(),
                "s3://bench-source/objects/".into(),
                format!("s3://{destination}/objects/"),
            ];
            if checkpoint {
                args.extend(["--checkpoint".into(), journal.display().to_string()]);
            } else {
                args.push("--no-checkpoint".into());
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let (wall, cpu, _) = support::run(&server, &args);
            let rate = OBJECTS as f64 / wall;
            println!(
                "round {round} {:13} {rate:7.0} objects/s, client CPU {cpu:.2} s",
                if checkpoint {
                    "checkpoint"
                } else {
                    "no-checkpoint"
                }
            );
            if checkpoint {
                with.push(rate);
                cpu_with.push(cpu);
            } else {
                without.push(rate);
                cpu_without.push(cpu);
            }
        }
    }
    let (with, without) = (support::median(with), support::median(without));
    println!(
        "| 1 KiB objects, {OBJECTS} per run, median of {ROUNDS} | {with:.0} objects/s, {:.2} s CPU | {without:.0} objects/s, {:.2} s CPU | {:+.1}% |",
        support::median(cpu_with),
        support::median(cpu_without),
        (with / without - 1.0) * 100.0
    );

    // A journal of a job that already finished 1,000,000 keys, and one key left to copy: first as the
    // engine writes it (watermarks, compaction), then the worst case (no watermark: every key kept).
    versioned_bucket(&client, "resume-source").await;
    versioned_bucket(&client, "resume-destination").await;
    client
        .put_object()
        .bucket("resume-source")
        .key("zzz-last")
        .body(ByteStream::from_static(b"1"))
        .send()
        .await
        .unwrap();
    let identity = JobIdentity {
        source: "s3://resume-source/".into(),
        destination: "s3://resume-destination/".into(),
        include: vec![],
        exclude: vec![],
        latest_only: false,
        storage_class: None,
        sse_kms_key_id: None,
        input: None,
        shard: None,
        source_endpoint: String::new(),
        destination_endpoint: String::new(),
        as_of: None,
    };
    let realistic = dir.path().join("million-with-watermark.checkpoint");
    {
        let journal = Journal::open(&realistic, &identity, State::default(), true).unwrap();
        for index in 0..1_000_000u32 {
            let key = format!("done/{index:07}");
            let version = format!("{index:032x}");
            journal.append(Record::Intent {
                key: key.clone(),
                index: 0,
                version_id: version.clone(),
                previous: None,
                timeout_ms: Some(30_000),
            });
            journal.append(Record::Done {
                key: key.clone(),
                index: 0,
                written: Some(version),
                last: true,
            });
            if index % 256 == 255 {
                journal.append(Record::Watermark { key });
            }
        }
    }
    let size = std::fs::metadata(&realistic).unwrap().len() >> 20;
    let (wall, cpu, rss) = support::run(
        &server,
        &[
            "copy",
            "s3://resume-source",
            "s3://resume-destination",
            "--checkpoint",
            realistic.to_str().unwrap(),
        ],
    );
    println!(
        "| resume with 1,000,000 finished keys, journal as the engine leaves it ({size} MiB after compactions) | whole run {wall:.2} s, CPU {cpu:.2} s, peak RSS {} MiB |",
        rss / 1024
    );
    client
        .delete_object()
        .bucket("resume-destination")
        .key("zzz-last")
        .send()
        .await
        .unwrap();
    let journal = dir.path().join("million.checkpoint");
    let mut bytes = Vec::new();
    encode(
        &Record::Job {
            identity: Box::new(identity),
            created_unix: 0,
        },
        &mut bytes,
    );
    for index in 0..1_000_000u32 {
        let key = format!("done/{index:07}");
        encode(
            &Record::Intent {
                key: key.clone(),
                index: 0,
                version_id: format!("{index:032x}"),
                previous: None,
                timeout_ms: Some(30_000),
            },
            &mut bytes,
        );
        encode(
            &Record::Done {
                key,
                index: 0,
                written: Some(format!("{index:032x}")),
                last: true,
            },
            &mut bytes,
        );
    }
    std::fs::write(&journal, &bytes).unwrap();
    let (wall, cpu, rss) = support::run(
        &server,
        &[
            "copy",
            "s3://resume-source",
            "s3://resume-destination",
            "--checkpoint",
            journal.to_str().unwrap(),
        ],
    );
    println!(
        "| resume with 1,000,000 finished keys ({} MiB journal, no watermark) | whole run {wall:.2} s, CPU {cpu:.2} s, peak RSS {} MiB |",
        bytes.len() >> 20,
        rss / 1024
    );
}
