//! A synthetic S3 endpoint for the throughput benchmarks (issue 14): S3 answers without S3's work, so
//! that what is measured is the client. It serves a generated source bucket (N keys, V versions each,
//! optionally a delete marker on top of every k-th key) and records what is written into any other
//! bucket, answering each request after a configured latency, over HTTP or TLS, in its own process
//! (this benchmark binary run again with S3_BACKFILL_SYNTHETIC set), whose CPU time the benchmark
//! reads apart from the client's. It counts requests by operation: a benchmark checks that every
//! expected copy arrived once.
//!
//! Requests it understands (path-style only, signatures not checked): HeadBucket, CreateBucket,
//! Get/PutBucketVersioning, GetBucketLocation, GetBucketEncryption (SSE-S3 everywhere),
//! GetObjectLockConfiguration (none), ListObjectVersions, ListObjectsV2, ListMultipartUploads (none),
//! HeadObject, GetObjectTagging (none), CopyObject, UploadPartCopy, Create/Complete/AbortMultipartUpload,
//! DeleteObject. Anything else is answered 501 NotImplemented naming it, so a gap shows at once.

#![allow(dead_code, reason = "not every benchmark uses every helper")]

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, Response, StatusCode};

const VARIABLE: &str = "S3_BACKFILL_SYNTHETIC";

/// What a client of the endpoint is given (it checks no signature).
pub const CREDENTIALS: [(&str, &str); 3] = [
    ("AWS_ACCESS_KEY_ID", "synthetic"),
    ("AWS_SECRET_ACCESS_KEY", "synthetic"),
    ("AWS_REGION", "us-east-1"),
];

/// What the endpoint serves and how.
#[derive(Clone, Debug)]
pub struct Config {
    /// The generated bucket's name; every other bucket name is an empty bucket that records writes.
    pub source: String,
    pub keys: usize,
    pub versions: usize,
    /// A delete marker on top of every `marker_every`th key (0: none).
    pub marker_every: usize,
    pub size: u64,
    /// Every answer waits this long (the round trip of a remote S3).
    pub latency: Duration,
    /// PEM certificate and key: serve HTTPS.
    pub tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

impl Config {
    fn encode(&self) -> String {
        let (certificate, key) = self
            .tls
            .as_ref()
            .map(|(c, k)| (c.display().to_string(), k.display().to_string()))
            .unwrap_or_default();
        format!(
            "{}\n{}\n{}\n{}\n{}\n{}\n{certificate}\n{key}",
            self.source,
            self.keys,
            self.versions,
            self.marker_every,
            self.size,
            self.latency.as_micros()
        )
    }

    fn decode(text: &str) -> Config {
        let lines: Vec<&str> = text.split('\n').collect();
        Config {
            source: lines[0].to_string(),
            keys: lines[1].parse().unwrap(),
            versions: lines[2].parse().unwrap(),
            marker_every: lines[3].parse().unwrap(),
            size: lines[4].parse().unwrap(),
            latency: Duration::from_micros(lines[5].parse().unwrap()),
            tls: lines
                .get(6)
                .filter(|c| !c.is_empty())
                .map(|c| (c.into(), lines[7].into())),
        }
    }

    /// The source's keys in S3's order: spread over 64 prefixes, as a bucket's keys usually are.
    pub fn key(&self, index: usize) -> String {
        format!("p{:02}/object-{index:08}", index % 64)
    }

    /// Entries (versions and delete markers) the source holds.
    pub fn entries(&self) -> usize {
        self.keys * self.versions + self.markers()
    }

    pub fn markers(&self) -> usize {
        if self.marker_every == 0 {
            0
        } else {
            self.keys.div_ceil(self.marker_every)
        }
    }
}

/// What a written bucket holds: keys, versions, delete markers.
pub type Written = (u64, u64, u64);

/// One client run against the endpoint (`Synthetic::measure`).
pub struct Measured {
    pub wall: f64,
    pub cpu: f64,
    pub peak_kib: i64,
    pub server_cpu: f64,
    pub requests: BTreeMap<String, u64>,
    pub buckets: BTreeMap<String, Written>,
    /// Requests the endpoint held (waiting out the latency) on average: how much of the client's
    /// in-flight count reached the server.
    pub held: f64,
    /// Connections the client opened.
    pub connections: u64,
    /// The machine's cores busy meanwhile, as a share of all of them (/proc/stat: what the client and
    /// the endpoint ran, the kernel's network work on their behalf that is charged to no process, and
    /// this bench's sampling); time the hypervisor took is not counted as available.
    pub machine_busy: f64,
    /// The copy phase: from the first write the endpoint received (a copy, part copy, delete marker,
    /// upload) to its last answer to one, in seconds, and the machine's cores busy meanwhile. The
    /// whole run adds the client's start (preflight, the first listing pages: round trips in a row
    /// with nothing to copy yet), which a long backfill pays once.
    pub copy_phase: f64,
    pub copy_phase_busy: f64,
    /// The endpoint's nice value: -10 when the bench may raise its priority (see `serve_if_asked`).
    pub endpoint_nice: i32,
}

/// (busy, available) jiffies of the whole machine so far.
fn machine_jiffies() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let idle = fields[3] + fields[4];
    let steal = fields.get(7).copied().unwrap_or(0);
    let all: u64 = fields.iter().take(8).sum();
    (all - idle - steal, all - steal)
}

#[derive(Default)]
struct Counts {
    requests: BTreeMap<String, u64>,
    buckets: BTreeMap<String, Written>,
    held: f64,
    connections: u64,
    copy_phase: f64,
    copy_phase_busy: f64,
    nice: i32,
}

/// A running endpoint; stopped when dropped.
pub struct Synthetic {
    pub endpoint: String,
    /// Plain HTTP, for the counts (the same as `endpoint` unless that is TLS).
    control: String,
    child: std::process::Child,
}

impl Synthetic {
    /// Starts this benchmark binary again as the endpoint (see `serve_if_asked`).
    pub fn start(config: &Config) -> Synthetic {
        use std::io::BufRead;
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .env(VARIABLE, config.encode())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let Some((endpoint, control)) = line.trim().split_once(' ') else {
            panic!("the endpoint did not start: {line:?}");
        };
        Synthetic {
            endpoint: endpoint.to_string(),
            control: control.to_string(),
            child,
        }
    }

    /// Runs `command` (a client of this endpoint) to its end: what `support::measure` gives, the
    /// endpoint's CPU seconds meanwhile, and the requests and writes it counted for this run alone.
    pub fn measure(&self, command: std::process::Command) -> Measured {
        let _ = self.read_counts();
        let server_before = self.cpu_seconds();
        let machine_before = machine_jiffies();
        let (wall, cpu, peak_kib) = super::measure(command);
        let machine_after = machine_jiffies();
        let server_cpu = self.cpu_seconds() - server_before;
        let counts = self.read_counts();
        Measured {
            wall,
            cpu,
            peak_kib,
            server_cpu,
            requests: counts.requests,
            buckets: counts.buckets,
            held: counts.held,
            connections: counts.connections,
            copy_phase: counts.copy_phase,
            copy_phase_busy: counts.copy_phase_busy,
            endpoint_nice: counts.nice,
            machine_busy: (machine_after.0 - machine_before.0) as f64
                / (machine_after.1 - machine_before.1).max(1) as f64,
        }
    }

    /// CPU seconds the endpoint has used so far.
    pub fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        (fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap()) / ticks
    }

    /// Requests by operation since the last call (`GET /_synthetic/counts` resets them), and per
    /// written bucket: keys, versions, delete markers.
    pub fn counts(&self) -> (BTreeMap<String, u64>, BTreeMap<String, Written>) {
        let counts = self.read_counts();
        (counts.requests, counts.buckets)
    }

    /// What the endpoint counted since the last call (`GET /_synthetic/counts` resets it).
    fn read_counts(&self) -> Counts {
        let text = http_get(&format!("{}/_synthetic/counts", self.control));
        let mut counts = Counts::default();
        for line in text.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            match fields[0] {
                "request" => {
                    counts
                        .requests
                        .insert(fields[1].to_string(), fields[2].parse().unwrap());
                }
                "bucket" => {
                    counts.buckets.insert(
                        fields[1].to_string(),
                        (
                            fields[2].parse().unwrap(),
                            fields[3].parse().unwrap(),
                            fields[4].parse().unwrap(),
                        ),
                    );
                }
                "held" => counts.held = fields[1].parse().unwrap(),
                "connections" => counts.connections = fields[1].parse().unwrap(),
                "phase" => {
                    counts.copy_phase = fields[1].parse().unwrap();
                    counts.copy_phase_busy = fields[2].parse().unwrap();
                }
                "nice" => counts.nice = fields[1].parse().unwrap(),
                _ => {}
            }
        }
        counts
    }
}

impl Drop for Synthetic {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A GET over plain HTTP/1.0 (the benchmark has no HTTP client of its own outside the SDK).
fn http_get(url: &str) -> String {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").unwrap();
    let (address, path) = rest.split_once('/').unwrap();
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(stream, "GET /{path} HTTP/1.0\r\nHost: {address}\r\n\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text.split_once("\r\n\r\n").unwrap().1.to_string()
}

/// When this process was started as the endpoint: serves until killed and never returns. Every
/// benchmark that starts one calls it first thing in `main`.
pub fn serve_if_asked() {
    let Ok(text) = std::env::var(VARIABLE) else {
        return;
    };
    let config = Config::decode(&text);
    // The endpoint stands in for a remote S3, whose latency does not grow when the client is busy.
    // Sharing two cores with the client at normal priority, it waited for a core a third of the time
    // at 1,024 in flight and answered 3-4 ms late on average (33.5 ms for 30), so the latency
    // measured was the client's load as much as the server's; at a higher priority (nice -10) it
    // runs as soon as a request or a deadline wakes it, and answers 30-31 ms after each request.
    // Its CPU still comes out of the same two cores. Raising it needs root or CAP_SYS_NICE; without
    // them it runs at normal priority and says so in its counts (`nice`).
    // SAFETY: setpriority on the calling thread (pid 0), before any other thread exists; every
    // thread started later inherits it.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, -10);
    }
    // One thread: the endpoint's CPU stays small and on one core, the other free for the client.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(serve(config));
    std::process::exit(0);
}

async fn serve(config: Config) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let state = Arc::new(State::new(&config));
    let acceptor = config
        .tls
        .as_ref()
        .map(|(certificate, key)| tls_acceptor(certificate, key));
    let mut control = format!("http://127.0.0.1:{port}");
    if acceptor.is_some() {
        // The counts, over plain HTTP on a port of their own.
        let counts = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        control = format!("http://127.0.0.1:{}", counts.local_addr().unwrap().port());
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            loop {
                let (stream, _) = counts.accept().await.unwrap();
                let state = Arc::clone(&state);
                tokio::spawn(async move {
                    let _ = serve_connection(hyper_util::rt::TokioIo::new(stream), state).await;
                });
            }
        });
    }
    let scheme = if acceptor.is_some() { "https" } else { "http" };
    println!("{scheme}://127.0.0.1:{port} {control}");
    use std::io::Write;
    std::io::stdout().flush().unwrap();
    loop {
        let (stream, _) = listener.accept().await.unwrap();
        let _ = stream.set_nodelay(true);
        state
            .connections
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let state = Arc::clone(&state);
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            match acceptor {
                Some(acceptor) => {
                    if let Ok(stream) = acceptor.accept(stream).await {
                        let _ = serve_connection(hyper_util::rt::TokioIo::new(stream), state).await;
                    }
                }
                None => {
                    let _ = serve_connection(hyper_util::rt::TokioIo::new(stream), state).await;
                }
            }
        });
    }
}

fn tls_acceptor(certificate: &std::path::Path, key: &std::path::Path) -> tokio_rustls::TlsAcceptor {
    use rustls::pki_types::pem::PemObject;
    let chain: Vec<_> = rustls::pki_types::CertificateDer::pem_file_iter(certificate)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = rustls::pki_types::PrivateKeyDer::from_pem_file(key).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

async fn serve_connection<I>(io: I, state: Arc<State>) -> Result<(), hyper::Error>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        // Head and body in one write: one TLS record an answer, as a TLS terminator in front of S3
        // sends it (hyper's vectored writes make a record of each piece, which the client then pays
        // for twice).
        .writev(false)
        .serve_connection(
            io,
            hyper::service::service_fn(move |request| {
                let state = Arc::clone(&state);
                async move { Ok::<_, std::convert::Infallible>(state.answer(request).await) }
            }),
        )
        .await
}

/// One version or delete marker, oldest first in its key's list.
#[derive(Clone)]
struct Version {
    id: String,
    marker: bool,
    size: u64,
    second: u32,
    /// As S3 gives it, quotes included: a copy has its source's (same bytes), as on S3.
    etag: String,
}

type Bucket = BTreeMap<String, Vec<Version>>;

struct State {
    config: Config,
    buckets: Mutex<HashMap<String, Bucket>>,
    requests: Mutex<BTreeMap<&'static str, u64>>,
    uploads: Mutex<HashMap<String, (String, String)>>,
    next_id: std::sync::atomic::AtomicU64,
    held: Mutex<Held>,
    /// The copy phase so far (see `Measured::copy_phase`).
    phase: Mutex<Phase>,
    /// The machine's (time, busy, available) every 20 ms, for the copy phase's share busy.
    machine: Arc<Mutex<Vec<(std::time::Instant, u64, u64)>>>,
    /// Connections accepted (the client's pool at work: one per request in flight, reused).
    connections: std::sync::atomic::AtomicU64,
}

/// How many requests the endpoint holds (waiting out the latency) over time: its mean between the
/// first request and the last answer is how much of the client's in-flight count reached the server.
#[derive(Default)]
struct Held {
    now: u64,
    since: Option<std::time::Instant>,
    first: Option<std::time::Instant>,
    area: f64,
}

impl Held {
    fn change(&mut self, up: bool) {
        let now = std::time::Instant::now();
        if let Some(since) = self.since {
            self.area += self.now as f64 * (now - since).as_secs_f64();
        }
        self.first.get_or_insert(now);
        self.since = Some(now);
        if up {
            self.now += 1;
        } else {
            self.now -= 1;
        }
    }

    fn mean(&self) -> f64 {
        match (self.first, self.since) {
            (Some(first), Some(last)) if last > first => self.area / (last - first).as_secs_f64(),
            _ => 0.0,
        }
    }
}

/// From the first write received to the last write answered.
#[derive(Default)]
struct Phase {
    first: Option<std::time::Instant>,
    last: Option<std::time::Instant>,
}

/// Samples the machine's busy and available jiffies every 20 ms on a thread of its own, so that a
/// window (the copy phase) can be read off afterwards without reading /proc/stat on every request.
fn sample_machine() -> Arc<Mutex<Vec<(std::time::Instant, u64, u64)>>> {
    let samples = Arc::new(Mutex::new(Vec::new()));
    let writer = Arc::clone(&samples);
    std::thread::spawn(move || {
        loop {
            let (busy, available) = machine_jiffies();
            writer
                .lock()
                .unwrap()
                .push((std::time::Instant::now(), busy, available));
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    samples
}

/// The machine's share busy between the first sample at or after `from` and the last at or before
/// `to` (0 when the window holds fewer than two samples).
fn busy_between(
    samples: &[(std::time::Instant, u64, u64)],
    from: std::time::Instant,
    to: std::time::Instant,
) -> f64 {
    let inside: Vec<_> = samples
        .iter()
        .filter(|(at, _, _)| *at >= from && *at <= to)
        .collect();
    match (inside.first(), inside.last()) {
        (Some(first), Some(last)) if last.2 > first.2 => {
            (last.1 - first.1) as f64 / (last.2 - first.2) as f64
        }
        _ => 0.0,
    }
}

impl State {
    fn new(config: &Config) -> State {
        let mut source = Bucket::new();
        for index in 0..config.keys {
            let mut versions: Vec<Version> = (0..config.versions)
                .map(|v| {
                    let id = format!("v{v:04}{index:08}");
                    Version {
                        etag: format!("\"{:032x}\"", fingerprint(&id)),
                        id,
                        marker: false,
                        size: config.size,
                        second: v as u32,
                    }
                })
                .collect();
            if config.marker_every > 0 && index % config.marker_every == 0 {
                versions.push(Version {
                    id: format!("m{index:012}"),
                    marker: true,
                    size: 0,
                    second: config.versions as u32,
                    etag: String::new(),
                });
            }
            source.insert(config.key(index), versions);
        }
        State {
            config: config.clone(),
            buckets: Mutex::new(HashMap::from([(config.source.clone(), source)])),
            requests: Mutex::new(BTreeMap::new()),
            uploads: Mutex::new(HashMap::new()),
            next_id: std::sync::atomic::AtomicU64::new(1),
            held: Mutex::new(Held::default()),
            phase: Mutex::new(Phase::default()),
            machine: sample_machine(),
            connections: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn count(&self, operation: &'static str) {
        *self.requests.lock().unwrap().entry(operation).or_default() += 1;
    }

    fn new_id(&self) -> u64 {
        self.next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    async fn answer(&self, request: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
        let arrived = std::time::Instant::now();
        let (parts, body) = request.into_parts();
        // The body (CompleteMultipartUpload's part list) is read and not needed.
        let _ = body.collect().await;
        let path = parts.uri.path();
        if path == "/_synthetic/counts" {
            return self.counts();
        }
        let query = Query::parse(parts.uri.query().unwrap_or(""));
        let has = |name: &str| query.has(name);
        let get = |name: &str| query.get(name);
        let trimmed = path.trim_start_matches('/');
        let (bucket, key) = match trimmed.split_once('/') {
            Some((bucket, key)) => (bucket.to_string(), percent_decode(key)),
            None => (trimmed.to_string(), String::new()),
        };
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let (operation, response) = match (&parts.method, key.is_empty()) {
            (&Method::HEAD, true) => ("HeadBucket", ok_empty()),
            (&Method::PUT, true) if has("versioning") => ("PutBucketVersioning", ok_empty()),
            (&Method::PUT, true) if query.0.is_empty() => {
                self.buckets.lock().unwrap().entry(bucket).or_default();
                ("CreateBucket", ok_empty())
            }
            (&Method::GET, true) if has("versioning") => (
                "GetBucketVersioning",
                xml("<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>"),
            ),
            (&Method::GET, true) if has("location") => {
                ("GetBucketLocation", xml("<LocationConstraint/>"))
            }
            (&Method::GET, true) if has("encryption") => (
                "GetBucketEncryption",
                xml(
                    "<ServerSideEncryptionConfiguration><Rule><ApplyServerSideEncryptionByDefault>\
                     <SSEAlgorithm>AES256</SSEAlgorithm></ApplyServerSideEncryptionByDefault>\
                     <BucketKeyEnabled>false</BucketKeyEnabled></Rule></ServerSideEncryptionConfiguration>",
                ),
            ),
            (&Method::GET, true) if has("object-lock") => (
                "GetObjectLockConfiguration",
                error(
                    StatusCode::NOT_FOUND,
                    "ObjectLockConfigurationNotFoundError",
                ),
            ),
            (&Method::GET, true) if has("website") => (
                "GetBucketWebsite",
                error(StatusCode::NOT_FOUND, "NoSuchWebsiteConfiguration"),
            ),
            (&Method::GET, true) if has("uploads") => (
                "ListMultipartUploads",
                xml(&format!(
                    "<ListMultipartUploadsResult><Bucket>{bucket}</Bucket><IsTruncated>false</IsTruncated>\
                     </ListMultipartUploadsResult>"
                )),
            ),
            (&Method::GET, true) if has("versions") => {
                ("ListObjectVersions", self.list_versions(&bucket, &query))
            }
            (&Method::GET, true) if get("list-type") == Some("2") => {
                ("ListObjectsV2", self.list_current(&bucket, &query))
            }
            (&Method::HEAD, false) => ("HeadObject", self.head(&bucket, &key, get("versionId"))),
            (&Method::GET, false) if has("tagging") => (
                "GetObjectTagging",
                xml("<Tagging><TagSet></TagSet></Tagging>"),
            ),
            (&Method::PUT, false) if has("partNumber") => match header("x-amz-copy-source") {
                Some(_) => (
                    "UploadPartCopy",
                    xml(&format!(
                        "<CopyPartResult><ETag>\"{:032x}\"</ETag><LastModified>2026-01-01T00:00:00.000Z\
                         </LastModified></CopyPartResult>",
                        self.new_id()
                    )),
                ),
                None => (
                    "UploadPart",
                    error(StatusCode::NOT_IMPLEMENTED, "UploadPart"),
                ),
            },
            (&Method::PUT, false) => match header("x-amz-copy-source") {
                Some(source) => ("CopyObject", self.copy(&bucket, &key, &source)),
                None => ("PutObject", error(StatusCode::NOT_IMPLEMENTED, "PutObject")),
            },
            (&Method::POST, false) if has("uploads") => {
                let id = format!("upload{:016}", self.new_id());
                self.uploads
                    .lock()
                    .unwrap()
                    .insert(id.clone(), (bucket.clone(), key.clone()));
                (
                    "CreateMultipartUpload",
                    xml(&format!(
                        "<InitiateMultipartUploadResult><Bucket>{bucket}</Bucket><Key>{}</Key>\
                         <UploadId>{id}</UploadId></InitiateMultipartUploadResult>",
                        escape(&key)
                    )),
                )
            }
            (&Method::POST, false) if has("uploadId") => {
                let upload = self
                    .uploads
                    .lock()
                    .unwrap()
                    .remove(get("uploadId").unwrap());
                match upload {
                    Some(_) => {
                        let etag = format!("\"{:032x}-2\"", self.new_id());
                        let id = self.write(&bucket, &key, false, self.config.size, etag.clone());
                        let mut response = xml(&format!(
                            "<CompleteMultipartUploadResult><Bucket>{bucket}</Bucket><Key>{}</Key>\
                             <ETag>{etag}</ETag></CompleteMultipartUploadResult>",
                            escape(&key),
                        ));
                        response
                            .headers_mut()
                            .insert("x-amz-version-id", id.parse().unwrap());
                        ("CompleteMultipartUpload", response)
                    }
                    None => (
                        "CompleteMultipartUpload",
                        error(StatusCode::NOT_FOUND, "NoSuchUpload"),
                    ),
                }
            }
            (&Method::DELETE, false) if has("uploadId") => {
                self.uploads
                    .lock()
                    .unwrap()
                    .remove(get("uploadId").unwrap());
                ("AbortMultipartUpload", no_content())
            }
            (&Method::DELETE, false) if !has("versionId") => {
                let id = self.write(&bucket, &key, true, 0, String::new());
                let mut response = no_content();
                response
                    .headers_mut()
                    .insert("x-amz-delete-marker", "true".parse().unwrap());
                response
                    .headers_mut()
                    .insert("x-amz-version-id", id.parse().unwrap());
                ("DeleteObject", response)
            }
            (method, _) => (
                {
                    eprintln!(
                        "synthetic endpoint: not implemented: {method} {path}?{}",
                        parts.uri.query().unwrap_or("")
                    );
                    "Unknown"
                },
                error(
                    StatusCode::NOT_IMPLEMENTED,
                    &format!("{method} {path}?{}", parts.uri.query().unwrap_or("")),
                ),
            ),
        };
        self.count(operation);
        let write = matches!(
            operation,
            "CopyObject"
                | "UploadPartCopy"
                | "DeleteObject"
                | "CreateMultipartUpload"
                | "CompleteMultipartUpload"
                | "AbortMultipartUpload"
        );
        if write {
            self.phase.lock().unwrap().first.get_or_insert(arrived);
        }
        self.held.lock().unwrap().change(true);
        tokio::time::sleep(self.config.latency).await;
        self.held.lock().unwrap().change(false);
        if write {
            self.phase.lock().unwrap().last = Some(std::time::Instant::now());
        }
        response
    }

    fn counts(&self) -> Response<Full<Bytes>> {
        let mut text = String::new();
        for (operation, count) in std::mem::take(&mut *self.requests.lock().unwrap()) {
            text.push_str(&format!("request {operation} {count}\n"));
        }
        let held = std::mem::take(&mut *self.held.lock().unwrap());
        text.push_str(&format!("held {:.1}\n", held.mean()));
        let connections = self
            .connections
            .swap(0, std::sync::atomic::Ordering::Relaxed);
        text.push_str(&format!("connections {connections}\n"));
        let phase = std::mem::take(&mut *self.phase.lock().unwrap());
        let mut samples = self.machine.lock().unwrap();
        if let (Some(first), Some(last)) = (phase.first, phase.last) {
            text.push_str(&format!(
                "phase {} {}\n",
                (last - first).as_secs_f64(),
                busy_between(&samples, first, last)
            ));
        }
        // The next run's phase starts after this; only the last sample can begin it.
        let kept = samples.len().saturating_sub(1);
        samples.drain(..kept);
        drop(samples);
        // SAFETY: getpriority has no preconditions; errno is not consulted (-10 and 0 are the values).
        let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        text.push_str(&format!("nice {nice}\n"));
        for (name, bucket) in self.buckets.lock().unwrap().iter() {
            if *name == self.config.source {
                continue;
            }
            let versions = bucket.values().flatten().filter(|v| !v.marker).count();
            let markers = bucket.values().flatten().filter(|v| v.marker).count();
            text.push_str(&format!(
                "bucket {name} {} {versions} {markers}\n",
                bucket.len()
            ));
        }
        Response::new(Full::new(Bytes::from(text)))
    }

    /// Records a new version (or delete marker) of `key` in `bucket`; returns its id.
    fn write(&self, bucket: &str, key: &str, marker: bool, size: u64, etag: String) -> String {
        let id = format!("w{:015}", self.new_id());
        let mut buckets = self.buckets.lock().unwrap();
        let versions = buckets
            .entry(bucket.to_string())
            .or_default()
            .entry(key.to_string())
            .or_default();
        let second = versions.len() as u32;
        versions.push(Version {
            id: id.clone(),
            marker,
            size,
            second,
            etag,
        });
        id
    }

    fn copy(&self, bucket: &str, key: &str, source: &str) -> Response<Full<Bytes>> {
        let source = percent_decode(source.trim_start_matches('/'));
        let (path, version) = match source.split_once("?versionId=") {
            Some((path, version)) => (path.to_string(), Some(version.to_string())),
            None => (source.clone(), None),
        };
        let Some((source_bucket, source_key)) = path.split_once('/') else {
            return error(StatusCode::BAD_REQUEST, "InvalidArgument");
        };
        let size = {
            let buckets = self.buckets.lock().unwrap();
            let found = buckets
                .get(source_bucket)
                .and_then(|b| b.get(source_key))
                .and_then(|versions| match &version {
                    Some(id) => versions.iter().find(|v| &v.id == id),
                    None => versions.last(),
                });
            match found {
                Some(v) if !v.marker => (v.size, v.etag.clone()),
                _ => return error(StatusCode::NOT_FOUND, "NoSuchVersion"),
            }
        };
        let (size, etag) = size;
        let id = self.write(bucket, key, false, size, etag.clone());
        let mut response = xml(&format!(
            "<CopyObjectResult><ETag>{etag}</ETag><LastModified>2026-01-01T00:00:00.000Z\
             </LastModified></CopyObjectResult>"
        ));
        response
            .headers_mut()
            .insert("x-amz-version-id", id.parse().unwrap());
        if let Some(version) = version {
            response
                .headers_mut()
                .insert("x-amz-copy-source-version-id", version.parse().unwrap());
        }
        response
    }

    fn head(&self, bucket: &str, key: &str, version: Option<&str>) -> Response<Full<Bytes>> {
        let buckets = self.buckets.lock().unwrap();
        let found =
            buckets
                .get(bucket)
                .and_then(|b| b.get(key))
                .and_then(|versions| match version {
                    Some(id) => versions.iter().find(|v| v.id == id),
                    None => versions.last(),
                });
        match found {
            Some(v) if v.marker => {
                let mut response = error(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed");
                response
                    .headers_mut()
                    .insert("x-amz-delete-marker", "true".parse().unwrap());
                response
            }
            Some(v) => {
                let mut response = Response::new(Full::new(Bytes::new()));
                let headers = response.headers_mut();
                headers.insert("content-length", v.size.to_string().parse().unwrap());
                headers.insert("etag", v.etag.parse().unwrap());
                headers.insert(
                    "last-modified",
                    format!("Thu, 01 Jan 2026 00:00:{:02} GMT", v.second % 60)
                        .parse()
                        .unwrap(),
                );
                headers.insert("x-amz-version-id", v.id.parse().unwrap());
                headers.insert("x-amz-server-side-encryption", "AES256".parse().unwrap());
                headers.insert("content-type", "binary/octet-stream".parse().unwrap());
                response
            }
            None => error(StatusCode::NOT_FOUND, "NoSuchKey"),
        }
    }

    /// Runs `list` on bucket `name`: every bucket exists (HeadBucket says so), and one never written
    /// to is empty.
    fn with_bucket<T>(&self, name: &str, list: impl FnOnce(&Bucket) -> T) -> T {
        let buckets = self.buckets.lock().unwrap();
        match buckets.get(name) {
            Some(objects) => list(objects),
            None => list(&Bucket::new()),
        }
    }

    fn list_versions(&self, bucket: &str, query: &Query) -> Response<Full<Bytes>> {
        let listing = Listing::from(query);
        let key_marker = query.get("key-marker").filter(|m| !m.is_empty());
        let version_marker = query.get("version-id-marker").filter(|m| !m.is_empty());
        let mut body = String::with_capacity(256 * listing.max.min(1000));
        body.push_str(&format!(
            "<ListVersionsResult><Name>{bucket}</Name><Prefix>{}</Prefix>",
            escape(listing.prefix)
        ));
        let mut count = 0;
        let mut last: Option<(String, String)> = None;
        let mut truncated = false;
        let mut cursor = match (key_marker, version_marker) {
            (Some(key), Some(_)) => Bound::Included(key.to_string()),
            (Some(name), None) => listing.after(name),
            (None, _) => Bound::Included(listing.prefix.to_string()),
        };
        self.with_bucket(bucket, |objects| {
            'keys: while let Some((key, versions)) = listing.next(objects, &cursor) {
                if let Some(rolled) = listing.rolled_up(key) {
                    if count == listing.max {
                        truncated = true;
                        break;
                    }
                    common_prefix(&mut body, &rolled);
                    count += 1;
                    cursor = past(&rolled);
                    last = Some((rolled, String::new()));
                    continue;
                }
                // Newest first; after the version marker when resuming inside this key.
                let resume_after = match (key_marker, version_marker) {
                    (Some(marker_key), Some(id)) if marker_key == key => Some(id),
                    _ => None,
                };
                let mut skipping = resume_after.is_some();
                for (position, version) in versions.iter().rev().enumerate() {
                    if skipping {
                        if Some(version.id.as_str()) == resume_after {
                            skipping = false;
                        }
                        continue;
                    }
                    if count == listing.max {
                        truncated = true;
                        break 'keys;
                    }
                    let latest = position == 0;
                    let modified = format!("2026-01-01T00:00:{:02}.000Z", version.second % 60);
                    if version.marker {
                        body.push_str(&format!(
                            "<DeleteMarker><Key>{}</Key><VersionId>{}</VersionId><IsLatest>{latest}</IsLatest>\
                             <LastModified>{modified}</LastModified></DeleteMarker>",
                            escape(key),
                            version.id
                        ));
                    } else {
                        body.push_str(&format!(
                            "<Version><Key>{}</Key><VersionId>{}</VersionId><IsLatest>{latest}</IsLatest>\
                             <LastModified>{modified}</LastModified><ETag>{}</ETag><Size>{}</Size>\
                             <StorageClass>STANDARD</StorageClass></Version>",
                            escape(key),
                            version.id,
                            version.etag,
                            version.size
                        ));
                    }
                    count += 1;
                    last = Some((key.clone(), version.id.clone()));
                }
                cursor = Bound::Excluded(key.clone());
            }
        });
        body.push_str(&format!(
            "<MaxKeys>{}</MaxKeys><IsTruncated>{truncated}</IsTruncated>",
            listing.max
        ));
        if let (true, Some((key, version))) = (truncated, last) {
            body.push_str(&format!("<NextKeyMarker>{}</NextKeyMarker>", escape(&key)));
            if !version.is_empty() {
                body.push_str(&format!(
                    "<NextVersionIdMarker>{version}</NextVersionIdMarker>"
                ));
            }
        }
        body.push_str("</ListVersionsResult>");
        xml(&body)
    }

    /// ListObjectsV2: the current version of every key whose newest entry is not a delete marker.
    fn list_current(&self, bucket: &str, query: &Query) -> Response<Full<Bytes>> {
        let listing = Listing::from(query);
        // The continuation token is the last name returned.
        let after = query
            .get("continuation-token")
            .or(query.get("start-after"))
            .filter(|m| !m.is_empty());
        let mut body = String::with_capacity(200 * listing.max.min(1000));
        body.push_str(&format!(
            "<ListBucketResult><Name>{bucket}</Name><Prefix>{}</Prefix>",
            escape(listing.prefix)
        ));
        let mut cursor = match after {
            Some(name) => listing.after(name),
            None => Bound::Included(listing.prefix.to_string()),
        };
        let (mut count, mut truncated, mut last) = (0, false, String::new());
        self.with_bucket(bucket, |objects| {
            while let Some((key, versions)) = listing.next(objects, &cursor) {
                match (listing.rolled_up(key), versions.last().filter(|v| !v.marker)) {
                    // Its newest entry is a delete marker: not listed.
                    (None, None) => cursor = Bound::Excluded(key.clone()),
                    _ if count == listing.max => {
                        truncated = true;
                        break;
                    }
                    (Some(rolled), _) => {
                        common_prefix(&mut body, &rolled);
                        count += 1;
                        cursor = past(&rolled);
                        last = rolled;
                    }
                    (None, Some(version)) => {
                        body.push_str(&format!(
                            "<Contents><Key>{}</Key><LastModified>2026-01-01T00:00:{:02}.000Z</LastModified>\
                             <ETag>{}</ETag><Size>{}</Size><StorageClass>STANDARD</StorageClass></Contents>",
                            escape(key),
                            version.second % 60,
                            version.etag,
                            version.size
                        ));
                        count += 1;
                        cursor = Bound::Excluded(key.clone());
                        last = key.clone();
                    }
                }
            }
        });
        body.push_str(&format!(
            "<KeyCount>{count}</KeyCount><MaxKeys>{}</MaxKeys><IsTruncated>{truncated}</IsTruncated>",
            listing.max
        ));
        if truncated {
            body.push_str(&format!(
                "<NextContinuationToken>{}</NextContinuationToken>",
                escape(&last)
            ));
        }
        body.push_str("</ListBucketResult>");
        xml(&body)
    }
}

/// What both listings take: prefix, delimiter and page size.
struct Listing<'q> {
    prefix: &'q str,
    delimiter: Option<&'q str>,
    max: usize,
}

impl<'q> Listing<'q> {
    fn from(query: &'q Query) -> Listing<'q> {
        Listing {
            prefix: query.get("prefix").unwrap_or(""),
            delimiter: query.get("delimiter").filter(|d| !d.is_empty()),
            max: query
                .get("max-keys")
                .and_then(|m| m.parse().ok())
                .unwrap_or(1000),
        }
    }

    /// Where a page resumes after `name`, the last it returned: a key, or a rolled-up prefix, which
    /// resumes after all its keys.
    fn after(&self, name: &str) -> Bound<String> {
        if self.delimiter.is_some_and(|d| name.ends_with(d)) {
            past(name)
        } else {
            Bound::Excluded(name.to_string())
        }
    }

    /// The first key at `cursor` or after it, while it is under the prefix.
    fn next<'b>(
        &self,
        objects: &'b Bucket,
        cursor: &Bound<String>,
    ) -> Option<(&'b String, &'b Vec<Version>)> {
        objects
            .range::<String, _>((cursor.clone(), Bound::Unbounded))
            .next()
            .filter(|(key, _)| key.starts_with(self.prefix))
    }

    /// The common prefix `key` rolls up into, with a delimiter after the prefix.
    fn rolled_up(&self, key: &str) -> Option<String> {
        let delimiter = self.delimiter?;
        let at = key[self.prefix.len()..].find(delimiter)?;
        Some(key[..self.prefix.len() + at + delimiter.len()].to_string())
    }
}

/// A cursor past every key that starts with `prefix` (the keys here are ASCII).
fn past(prefix: &str) -> Bound<String> {
    Bound::Excluded(format!("{prefix}\u{10ffff}"))
}

fn common_prefix(body: &mut String, prefix: &str) {
    body.push_str(&format!(
        "<CommonPrefixes><Prefix>{}</Prefix></CommonPrefixes>",
        escape(prefix)
    ));
}

/// A stable number for an id (an ETag that does not change between listings and HEADs).
fn fingerprint(id: &str) -> u128 {
    id.bytes().fold(0xcbf29ce484222325u128, |hash, byte| {
        (hash ^ byte as u128).wrapping_mul(0x100000001b3)
    })
}

/// A request's query parameters, decoded.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(query: &str) -> Query {
        Query(
            query
                .split('&')
                .filter(|pair| !pair.is_empty())
                .map(|pair| match pair.split_once('=') {
                    Some((k, v)) => (percent_decode(k), percent_decode(v)),
                    None => (percent_decode(pair), String::new()),
                })
                .collect(),
        )
    }

    fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(&text.replace('+', "%20"))
        .decode_utf8_lossy()
        .into_owned()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn xml(body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{body}"
    ))));
    response
        .headers_mut()
        .insert("content-type", "application/xml".parse().unwrap());
    response
}

fn ok_empty() -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    response
        .headers_mut()
        .insert("x-amz-bucket-region", "us-east-1".parse().unwrap());
    response
}

fn no_content() -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

fn error(status: StatusCode, code: &str) -> Response<Full<Bytes>> {
    let mut response = xml(&format!(
        "<Error><Code>{}</Code><Message>synthetic endpoint</Message><RequestId>synthetic</RequestId></Error>",
        escape(code)
    ));
    *response.status_mut() = status;
    response
}
