//! Listing a bucket of 100,000 versions spread over 16 prefixes, with one paginator (--listers 1) and
//! with the range split into its prefixes, listed 16 at once (the default), alternating, 3 rounds, as
//! `copy --dry-run` (which lists and plans everything and writes nothing), against SeaweedFS.
//!
//! Run: cargo bench --bench listing   (figures go to BENCHMARKS.md by hand)

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
    support::create_bucket(&client, "listing", true).await;
    let took =
        support::put_versions_in_prefixes(&client, "listing", KEYS, VERSIONS, PREFIXES).await;
    support::create_bucket(&client, "listing-dst", false).await;
    println!(
        "seeded {} versions in {PREFIXES} prefixes in {:.0} s",
        KEYS * VERSIONS,
        took.as_secs_f64()
    );
    let proxy = support::latency_proxy(server.port, std::time::Duration::from_millis(20)).await;
    for (label, endpoint) in [
        ("direct", server.endpoint.clone()),
        ("+20 ms per request", format!("http://127.0.0.1:{proxy}")),
    ] {
        let mut one = Vec::new();
        let mut split = Vec::new();
        for round in 0..ROUNDS {
            for listers in ["1", "16"] {
                let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_s3-backfill"));
                command
                    .args([
                        "copy",
                        "s3://listing",
                        "s3://listing-dst",
                        "--dry-run",
                        "--listers",
                        listers,
                    ])
                    .args(["--endpoint-url", &endpoint, "--progress", "never"])
                    .envs(server.env());
                let (wall, cpu, peak) = support::measure(command);
                println!(
                    "{label} round {round} --listers {listers:2}: {wall:.2} s ({:.0} versions/s), CPU {cpu:.2} s, peak RSS {} MiB",
                    (KEYS * VERSIONS) as f64 / wall,
                    peak / 1024
                );
                if listers == "1" {
                    one.push(wall)
                } else {
                    split.push(wall)
                }
            }
        }
        let (one, split) = (support::median(one), support::median(split));
        println!(
            "| {} versions, {PREFIXES} prefixes, {label} | one paginator {one:.2} s | 16 listers {split:.2} s | {:.1}x |",
            KEYS * VERSIONS,
            one / split
        );
    }
}
