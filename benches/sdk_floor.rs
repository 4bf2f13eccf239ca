//! The per-request floor (issue 14): what one CopyObject costs the client's CPU, measured apart from the
//! engine, against the synthetic endpoint answering at once (benches/support/synthetic.rs, its own
//! process). Four ways to send the same request, 64 in flight, 20,000 each, 3 rounds, medians:
//!
//! 1. aws-sdk-s3's `copy_object().send()` as the engine used it before the direct sender (retries off,
//!    path-style);
//! 2. the same request built by hand, signed with aws-sigv4 (the SDK's own signer), sent by a bare
//!    hyper client: what is left without the SDK's orchestrator;
//! 3. the bare hyper client unsigned: HTTP/1.1 and the kernel's share;
//! 4. the engine's own client, `AwsS3::copy_object` (src/s3/direct.rs: the endpoint rules' target,
//!    cached credentials, aws-sigv4, hyper, the answer parsed and classified).
//!
//! The difference between 1 and 2 is what bypassing the orchestrator for the hot path could save; 4
//! is what it does save.
//! Run: cargo bench --bench sdk_floor   (prints; the figures are copied into BENCHMARKS.md by hand)

mod support;

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use futures::StreamExt;
use support::synthetic::{Config, Synthetic};

const REQUESTS: usize = 20_000;
const IN_FLIGHT: usize = 64;
const ROUNDS: usize = 3;

fn main() {
    support::synthetic::serve_if_asked();
    let config = Config {
        source: "floor-source".into(),
        keys: 1,
        versions: 1,
        marker_every: 0,
        size: 1024,
        latency: std::time::Duration::ZERO,
        tls: None,
    };
    let endpoint = Synthetic::start(&config);
    let source_key = config.key(0);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let sdk = sdk_client(&endpoint.endpoint);
        let engine = s3_backfill::s3::AwsS3::connect(&s3_backfill::s3::Connection {
            endpoint_url: Some(endpoint.endpoint.clone()),
            region: Some("us-east-1".into()),
            static_credentials: Some(("floor".into(), "floor".into())),
            ..Default::default()
        })
        .await;
        let bare = Bare::new(&endpoint.endpoint);
        let mut results: Vec<(&str, Vec<f64>, Vec<f64>)> = ["aws-sdk-s3", "hyper + aws-sigv4", "hyper", "s3-backfill AwsS3"]
            .into_iter()
            .map(|name| (name, Vec::new(), Vec::new()))
            .collect();
        for round in 0..ROUNDS {
            for (index, result) in results.iter_mut().enumerate() {
                let destination = format!("floor-{round}-{index}");
                let (cpu_before, started) = (support::own_cpu_seconds(), Instant::now());
                let server_before = endpoint.cpu_seconds();
                futures::stream::iter(0..REQUESTS)
                    .for_each_concurrent(IN_FLIGHT, |i| {
                        let (sdk, bare, engine, destination, source_key) =
                            (&sdk, &bare, &engine, &destination, &source_key);
                        async move {
                            let key = format!("object-{i:08}");
                            match index {
                                0 => {
                                    sdk.copy_object()
                                        .bucket(destination)
                                        .key(&key)
                                        .copy_source(format!("floor-source/{source_key}"))
                                        .send()
                                        .await
                                        .unwrap();
                                }
                                3 => {
                                    use s3_backfill::s3::S3Api;
                                    let request = s3_backfill::s3::CopyRequest {
                                        source: s3_backfill::s3::VersionRef {
                                            bucket: "floor-source".into(),
                                            key: source_key.clone(),
                                            version_id: String::new(),
                                        },
                                        size: 1024,
                                        bucket: destination.clone(),
                                        key,
                                        storage_class: None,
                                        server_side_encryption: None,
                                        website_redirect: None,
                                        sse_kms_key_id: None,
                                        bucket_key_enabled: None,
                                        object_lock: Default::default(),
                                    };
                                    engine.copy_object(&request).await.unwrap();
                                }
                                _ => bare.copy(destination, &key, source_key, index == 1).await,
                            }
                        }
                    })
                    .await;
                let (cpu, wall) = (
                    support::own_cpu_seconds() - cpu_before,
                    started.elapsed().as_secs_f64(),
                );
                let server = endpoint.cpu_seconds() - server_before;
                let (requests, _) = endpoint.counts();
                assert_eq!(requests.get("CopyObject"), Some(&(REQUESTS as u64)));
                println!(
                    "round {round} {:18} {:6.1} µs client CPU per request, {:5.1} µs endpoint, {:6.0} requests/s",
                    result.0,
                    cpu * 1e6 / REQUESTS as f64,
                    server * 1e6 / REQUESTS as f64,
                    REQUESTS as f64 / wall
                );
                result.1.push(cpu * 1e6 / REQUESTS as f64);
                result.2.push(REQUESTS as f64 / wall);
            }
        }
        println!("\n| {REQUESTS} CopyObject, {IN_FLIGHT} in flight, no latency | client CPU per request | requests/s |");
        println!("| --- | --- | --- |");
        for (name, cpus, rates) in results {
            println!(
                "| {name} | {:.1} µs | {:.0} |",
                support::median(cpus),
                support::median(rates)
            );
        }
    });
}

fn sdk_client(endpoint: &str) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .force_path_style(true)
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "floor", "floor", None, None, "static",
        ))
        .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// A bare hyper client sending CopyObject built by hand.
struct Bare {
    client: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        http_body_util::Empty<bytes::Bytes>,
    >,
    endpoint: String,
    identity: Arc<aws_smithy_runtime_api::client::identity::Identity>,
}

impl Bare {
    fn new(endpoint: &str) -> Bare {
        let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
        connector.set_nodelay(true);
        Bare {
            client: hyper_util::client::legacy::Client::builder(
                hyper_util::rt::TokioExecutor::new(),
            )
            .build(connector),
            endpoint: endpoint.to_string(),
            identity: Arc::new(
                aws_credential_types::Credentials::new("floor", "floor", None, None, "static")
                    .into(),
            ),
        }
    }

    async fn copy(&self, bucket: &str, key: &str, source_key: &str, signed: bool) {
        let uri = format!("{}/{bucket}/{key}", self.endpoint);
        let mut request = hyper::Request::put(&uri)
            .header("x-amz-copy-source", format!("floor-source/{source_key}"))
            .header("x-amz-content-sha256", "UNSIGNED-PAYLOAD")
            .body(http_body_util::Empty::new())
            .unwrap();
        if signed {
            use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
            let params = aws_sigv4::sign::v4::SigningParams::builder()
                .identity(&self.identity)
                .region("us-east-1")
                .name("s3")
                .time(SystemTime::now())
                .settings(SigningSettings::default())
                .build()
                .unwrap()
                .into();
            let headers: Vec<(String, String)> = request
                .headers()
                .iter()
                .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap().to_string()))
                .chain(std::iter::once((
                    "host".to_string(),
                    self.endpoint.trim_start_matches("http://").to_string(),
                )))
                .collect();
            let signable = SignableRequest::new(
                "PUT",
                uri.as_str(),
                headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                SignableBody::UnsignedPayload,
            )
            .unwrap();
            let (instructions, _) = sign(signable, &params).unwrap().into_parts();
            instructions.apply_to_request_http1x(&mut request);
        }
        let response = self.client.request(request).await.unwrap();
        assert!(response.status().is_success(), "{}", response.status());
        use http_body_util::BodyExt;
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert!(body.starts_with(b"<?xml"));
    }
}
