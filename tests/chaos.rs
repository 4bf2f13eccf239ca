//! Faults between the engine and SeaweedFS: a seeded, fault-injecting HTTP proxy in the harness answers
//! some requests with 503 SlowDown or 500 InternalError, some CopyObjects with a 200 whose body is an
//! error, and forwards others but then loses the answer (the connection is cut after the server applied
//! the request, or the answer is cut short). The independent listing afterwards must show every source
//! history exactly: nothing missing, nothing duplicated, order kept.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use common::*;

/// Per mille of requests that get each fault.
#[derive(Clone, Copy)]
struct Faults {
    slow_down: u32,
    internal_error: u32,
    /// Forwarded and applied by the server, then the connection is cut: the answer is lost.
    reset_after_applied: u32,
    /// Forwarded and applied, then only half of the answer arrives.
    truncated: u32,
    /// CopyObject only: 200 OK whose body is an error (not forwarded).
    error_in_200: u32,
}

#[derive(Default)]
struct Counts {
    requests: AtomicU64,
    slow_down: AtomicU64,
    internal_error: AtomicU64,
    reset_after_applied: AtomicU64,
    truncated: AtomicU64,
    error_in_200: AtomicU64,
}

struct ChaosProxy {
    endpoint: String,
    counts: Arc<Counts>,
}

/// Reads one HTTP/1.1 request (head and Content-Length body); None at the end of the connection.
fn read_request(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut data = Vec::new();
    let mut byte = [0u8; 1];
    while !data.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => data.push(byte[0]),
            _ => return None,
        }
    }
    let head = String::from_utf8_lossy(&data).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    stream.read_exact(&mut body).ok()?;
    data.extend(body);
    Some(data)
}

/// The request with `Connection: close`, so the server's answer ends at EOF.
fn closing(request: &[u8]) -> Vec<u8> {
    let split = request
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head")
        + 2;
    let head = String::from_utf8_lossy(&request[..split]);
    let mut out: String = head
        .split("\r\n")
        .filter(|l| !l.is_empty() && !l.to_ascii_lowercase().starts_with("connection:"))
        .map(|l| format!("{l}\r\n"))
        .collect();
    out.push_str("Connection: close\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&request[split..]);
    bytes
}

fn error_response(status: &str, code: &str) -> Vec<u8> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>injected by the chaos proxy</Message><RequestId>chaos</RequestId></Error>"
    );
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

impl ChaosProxy {
    fn start(upstream: u16, faults: Faults, seed: u64) -> ChaosProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let counts = Arc::new(Counts::default());
        let rng = Arc::new(Mutex::new(fastrand::Rng::with_seed(seed)));
        let shared = Arc::clone(&counts);
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (counts, rng) = (Arc::clone(&shared), Arc::clone(&rng));
                std::thread::spawn(move || serve(client, upstream, faults, &counts, &rng));
            }
        });
        ChaosProxy { endpoint, counts }
    }
}

fn serve(
    mut client: TcpStream,
    upstream: u16,
    faults: Faults,
    counts: &Counts,
    rng: &Mutex<fastrand::Rng>,
) {
    // One request per connection: every answer is followed by a close, so the engine reconnects.
    let Some(request) = read_request(&mut client) else {
        return;
    };
    counts.requests.fetch_add(1, Relaxed);
    let head = String::from_utf8_lossy(&request[..request.len().min(2048)]).to_ascii_lowercase();
    let is_copy = head.contains("x-amz-copy-source:") && !head.contains("partnumber=");
    let roll = rng.lock().unwrap().u32(0..1000);
    let mut threshold = 0;
    let mut hit = |per_mille: u32| {
        threshold += per_mille;
        roll < threshold
    };
    if hit(faults.slow_down) {
        counts.slow_down.fetch_add(1, Relaxed);
        let _ = client.write_all(&error_response("503 Slow Down", "SlowDown"));
        return;
    }
    if hit(faults.internal_error) {
        counts.internal_error.fetch_add(1, Relaxed);
        let _ = client.write_all(&error_response(
            "500 Internal Server Error",
            "InternalError",
        ));
        return;
    }
    if is_copy && hit(faults.error_in_200) {
        counts.error_in_200.fetch_add(1, Relaxed);
        let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>InternalError</Code><Message>injected: a 200 whose body is an error</Message></Error>";
        let _ = client.write_all(
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        );
        return;
    }
    let reset = hit(faults.reset_after_applied);
    let truncate = !reset && hit(faults.truncated);
    let Ok(mut server) = TcpStream::connect(("127.0.0.1", upstream)) else {
        return;
    };
    if server.write_all(&closing(&request)).is_err() {
        return;
    }
    let mut answer = Vec::new();
    let _ = server.read_to_end(&mut answer);
    if reset {
        counts.reset_after_applied.fetch_add(1, Relaxed);
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    if truncate && answer.len() > 1 {
        counts.truncated.fetch_add(1, Relaxed);
        let _ = client.write_all(&answer[..answer.len() / 2]);
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    let _ = client.write_all(&answer);
}

/// Multi-version keys, delete markers in the middle and on top, a null version, and a multipart object.
async fn seed(bucket: &str) -> usize {
    put(bucket, "null-first", "before versioning").await;
    enable_versioning(bucket).await;
    let keys = 400;
    futures::future::join_all((0..keys).map(|index| {
        let bucket = bucket.to_string();
        async move {
            let key = format!("k/{index:04}");
            for version in 0..(1 + index % 4) {
                put(&bucket, &key, format!("{index} v{version}")).await;
            }
            if index % 7 == 0 {
                delete(&bucket, &key).await;
            }
            if index % 21 == 0 {
                put(&bucket, &key, "after the marker").await;
            }
        }
    }))
    .await;
    put(bucket, "null-first", "after").await;
    let big = vec![7u8; 12 << 20];
    put(bucket, "z-big", big).await;
    keys
}

#[tokio::test(flavor = "multi_thread")]
async fn faults_of_every_kind_leave_the_destination_exact() {
    let source = create_bucket("chaos-src", false).await;
    let destination = create_bucket("chaos-dst", true).await;
    seed(&source).await;
    let proxy = ChaosProxy::start(
        server().port,
        Faults {
            slow_down: 50,
            internal_error: 20,
            reset_after_applied: 10,
            truncated: 10,
            error_in_200: 20,
        },
        20261126,
    );
    let report = tempfile::NamedTempFile::new().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_s3-backfill"))
        .current_dir(work_dir())
        .args([
            "copy",
            &format!("s3://{source}"),
            &format!("s3://{destination}"),
            "--endpoint-url",
            &proxy.endpoint,
            "--multipart-threshold",
            "6MiB",
            "--part-size",
            "5MiB",
            "--concurrency",
            "32",
            "--no-checkpoint",
            "--progress",
            "never",
            "--report",
            report.path().to_str().unwrap(),
        ])
        .envs(server().env())
        .output()
        .unwrap();
    let counts = &proxy.counts;
    let summary = format!(
        "{} requests: {} SlowDown, {} InternalError, {} reset after applied, {} truncated, {} 200-with-error",
        counts.requests.load(Relaxed),
        counts.slow_down.load(Relaxed),
        counts.internal_error.load(Relaxed),
        counts.reset_after_applied.load(Relaxed),
        counts.truncated.load(Relaxed),
        counts.error_in_200.load(Relaxed),
    );
    eprintln!("{summary}");
    assert!(output.status.success(), "{summary}\n{}", text(&output));
    for (name, count) in [
        ("SlowDown", &counts.slow_down),
        ("InternalError", &counts.internal_error),
        ("reset", &counts.reset_after_applied),
        ("truncated", &counts.truncated),
        ("200-with-error", &counts.error_in_200),
    ] {
        assert!(count.load(Relaxed) > 0, "no {name} was injected: {summary}");
    }
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(report.path()).unwrap()).unwrap();
    assert!(json["retries"].as_u64().unwrap() > 0, "{json}");
    assert!(json["throttles"].as_u64().unwrap() > 0, "{json}");

    let expected = histories(&source, "").await;
    let arrived = histories(&destination, "").await;
    assert_eq!(
        expected.iter().map(|(k, _)| k).collect::<Vec<_>>(),
        arrived.iter().map(|(k, _)| k).collect::<Vec<_>>(),
        "missing or extra keys"
    );
    for ((key, want), (_, got)) in expected.iter().zip(&arrived) {
        assert!(
            same_history(want, got),
            "{key}: duplicated, missing or reordered:\n{want:?}\n{got:?}"
        );
    }
    assert!(same_bytes(&source, &destination, "z-big").await);
}
