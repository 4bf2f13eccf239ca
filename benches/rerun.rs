//! The cost of a rerun over a fully copied bucket: 100,000 versions (50,000 keys x 2, in 16 prefixes)
//! copied once, then, alternating, 3 rounds of
//! - listing the source alone (`copy --dry-run` into an empty bucket: it lists and plans everything,
//!   and the empty destination's listing is one request),
//! - a rerun without the checkpoint (`--no-checkpoint`: both sides listed and merged key by key),
//! - a rerun of the completed job with its checkpoint (a new pass: the same work),
//!
//! against SeaweedFS on the same cores, directly and through a loopback proxy that adds 20 ms to every
//! request (as a distant S3 would, where the server's CPU is not ours). Each rerun must write nothing (its report is checked). The
//! target: a rerun within 1.2x of listing the source alone.
//!
//! Run: cargo bench --bench rerun   (the table replaces the generated block in BENCHMARKS.md)

mod support;

use s3_backfill::local_server::SeaweedFs;

const PREFIXES: usize = 16;
const KEYS: usize = 50_000;
const VERSIONS: usize = 2;
const ROUNDS: usize = 3;

#[tokio::main]
async fn main() {
    let server = SeaweedFs::start().unwrap();
    let client = server.client();
    support::create_bucket(&client, "rerun-src", true).await;
    support::create_bucket(&client, "rerun-dst", true).await;
    support::create_bucket(&client, "rerun-empty", true).await;
    let took =
        support::put_versions_in_prefixes(&client, "rerun-src", KEYS, VERSIONS, PREFIXES).await;
    println!(
        "seeded {} versions in {PREFIXES} prefixes in {:.0} s",
        KEYS * VERSIONS,
        took.as_secs_f64()
    );
    let work = tempfile::tempdir().unwrap();
    let report = work.path().join("report.json");
    let report_arg = report.to_str().unwrap();
    let copy = ["copy", "s3://rerun-src", "s3://rerun-dst"];
    let (wall, cpu, _) = support::measure({
        let mut c = support::backfill(&server, &server.endpoint, &copy);
        c.current_dir(work.path());
        c
    });
    println!("first copy: {wall:.1} s, CPU {cpu:.1} s");
    let into_empty = ["copy", "s3://rerun-src", "s3://rerun-empty", "--dry-run"];
    let runs: [(&str, &[&str]); 3] = [
        (
            "listing the source alone (copy --dry-run into an empty bucket)",
            &into_empty,
        ),
        (
            "rerun, --no-checkpoint",
            &[&copy[..], &["--no-checkpoint"]].concat(),
        ),
        ("rerun of the completed job, with its checkpoint", &copy),
    ];
    let proxy = support::latency_proxy(server.port, std::time::Duration::from_millis(20)).await;
    let mut out = String::new();
    for (place, endpoint) in [
        ("direct", server.endpoint.clone()),
        ("+20 ms per request", format!("http://127.0.0.1:{proxy}")),
    ] {
        let mut samples = vec![(Vec::new(), Vec::new(), Vec::new()); runs.len()];
        for round in 0..ROUNDS {
            for (index, (label, args)) in runs.iter().enumerate() {
                let mut command = support::backfill(
                    &server,
                    &endpoint,
                    &[args, &["--report", report_arg][..]].concat(),
                );
                command.current_dir(work.path());
                let server_before = support::server_cpu_seconds(server.port);
                let (wall, cpu, peak) = support::measure(command);
                let server_cpu = support::server_cpu_seconds(server.port) - server_before;
                let json: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
                let written = json["copied_versions"].as_u64().unwrap()
                    + json["delete_markers"].as_u64().unwrap();
                // The dry run would copy everything into the empty bucket; the reruns write nothing.
                let expected = if index == 0 { KEYS * VERSIONS } else { 0 } as u64;
                assert_eq!(written, expected, "{label}: {written} entries written");
                println!(
                    "{place} round {round} {label}: {wall:.2} s, client CPU {cpu:.2} s, server CPU {server_cpu:.2} s, peak RSS {} MiB",
                    peak / 1024
                );
                samples[index].0.push(wall);
                samples[index].1.push(cpu);
                samples[index].2.push(server_cpu);
            }
        }
        out.push_str(&format!(
            "\n| {} versions in {PREFIXES} prefixes, all copied, {place} | wall (median) | client CPU | server CPU | / listing alone |\n| --- | --- | --- | --- | --- |\n",
            KEYS * VERSIONS
        ));
        let medians: Vec<(f64, f64, f64)> = samples
            .into_iter()
            .map(|(wall, cpu, server)| {
                (
                    support::median(wall),
                    support::median(cpu),
                    support::median(server),
                )
            })
            .collect();
        for ((label, _), (wall, cpu, server)) in runs.iter().zip(&medians) {
            out.push_str(&format!(
                "| {label} | {wall:.2} s | {cpu:.2} s | {server:.2} s | {:.2}x |\n",
                wall / medians[0].0
            ));
        }
    }
    println!("{out}");
    support::write_results(
        "rerun",
        &format!("s3-backfill {}", env!("CARGO_PKG_VERSION")),
        &out,
    );
}
