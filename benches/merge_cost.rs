//! What merging with the destination costs a first copy into an empty destination: this binary against
//! a baseline binary built from a commit that did not list the destination (a049eb9), on workload 2's
//! shape (1,000 keys x 3 versions), 8 rounds, alternating which goes first, each into a new bucket.
//!
//! Run: S3_BACKFILL_BENCH_BASELINE=/path/to/old/s3-backfill cargo bench --bench merge_cost
//! (build the baseline with `git worktree add ../old a049eb9 && cd ../old && cargo build --release`).

mod support;

use s3_backfill::local_server::SeaweedFs;

const KEYS: usize = 1_000;
const VERSIONS: usize = 3;
const ROUNDS: usize = 8;

#[tokio::main]
async fn main() {
    let baseline = std::env::var("S3_BACKFILL_BENCH_BASELINE")
        .expect("set S3_BACKFILL_BENCH_BASELINE to a binary built from a049eb9");
    let server = SeaweedFs::start().unwrap();
    let client = server.client();
    support::create_bucket(&client, "merge-src", true).await;
    support::put_versions_in_prefixes(&client, "merge-src", KEYS, VERSIONS, 16).await;
    let binaries = [
        ("this build", env!("CARGO_BIN_EXE_s3-backfill").to_string()),
        ("baseline", baseline),
    ];
    let mut samples = vec![(Vec::new(), Vec::new()); binaries.len()];
    for round in 0..ROUNDS {
        for index in (0..binaries.len()).map(|i| (i + round) % binaries.len()) {
            let (label, binary) = &binaries[index];
            let destination = format!("merge-{round}-{index}");
            support::create_bucket(&client, &destination, true).await;
            let mut command = std::process::Command::new(binary);
            command
                .args(["copy", "s3://merge-src", &format!("s3://{destination}")])
                .args([
                    "--no-checkpoint",
                    "--concurrency",
                    "64",
                    "--progress",
                    "never",
                ])
                .args(["--endpoint-url", &server.endpoint])
                .envs(server.env());
            let (wall, cpu, _) = support::measure(command);
            println!("round {round} {label:10}: {wall:.2} s, client CPU {cpu:.2} s");
            samples[index].0.push(wall);
            samples[index].1.push(cpu);
        }
    }
    let medians: Vec<(f64, f64)> = samples
        .into_iter()
        .map(|(wall, cpu)| (support::median(wall), support::median(cpu)))
        .collect();
    for ((label, _), (wall, cpu)) in binaries.iter().zip(&medians) {
        println!(
            "| {label} | {:.0} versions/s | {wall:.2} s | client CPU {cpu:.2} s |",
            (KEYS * VERSIONS) as f64 / wall
        );
    }
    println!(
        "this build / baseline: {:.3}x versions/s, {:.3}x client CPU",
        medians[1].0 / medians[0].0,
        medians[0].1 / medians[1].1
    );
}
