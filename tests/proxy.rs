//! Forward proxies between the tool and its endpoints (issue 26): a real proxy on 127.0.0.1
//! (`common::forward_proxy`) that carries CONNECT tunnels and absolute-form requests, and resolves a
//! host name of its own, so an endpoint can name a place only the proxy reaches — then a request that
//! went around it could not have been answered at all. Both senders, http and https endpoints,
//! credentials, NO_PROXY, `--no-proxy`, and proxies that refuse.

mod common;

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;

use common::forward_proxy::{ForwardProxy, Settings};
use common::*;

/// `user:secret` as a Proxy-Authorization header.
const AUTHORIZATION: &str = "Basic dXNlcjpzZWNyZXQ=";

/// The proxy URL with `user:secret` in it.
fn with_credentials(proxy: &ForwardProxy) -> String {
    proxy.url.replace("http://", "http://user:secret@")
}

async fn seed(source: &str) -> usize {
    let mut entries = 0;
    for index in 0..20 {
        let key = format!("p/{index:02}");
        for version in 0..(1 + index % 3) {
            put(source, &key, format!("{index} v{version}")).await;
            entries += 1;
        }
        if index % 6 == 0 {
            delete(source, &key).await;
            entries += 1;
        }
    }
    put(source, "z-big", vec![5u8; 12 << 20]).await;
    entries + 1
}

/// An http endpoint whose host name only the proxy knows: every request of both senders, the
/// multipart copy's and `verify`'s included, is forwarded by it with the credentials from its URL,
/// which are never printed.
#[tokio::test(flavor = "multi_thread")]
async fn an_http_endpoint_only_the_proxy_reaches_is_copied_through_it() {
    for sender in ["direct", "sdk"] {
        let source = create_bucket(&format!("proxied-{sender}-src"), true).await;
        let destination = create_bucket(&format!("proxied-{sender}-dst"), true).await;
        let entries = seed(&source).await;
        let proxy = ForwardProxy::start(Settings {
            routes: HashMap::from([("s3.proxy-only.test:1".to_string(), server().port)]),
            authorization: Some(AUTHORIZATION.into()),
            ..Settings::default()
        });
        let output = copy_via("http://s3.proxy-only.test:1", &source, &destination)
            .env("S3_BACKFILL_SEND", sender)
            .env("HTTP_PROXY", with_credentials(&proxy))
            .args(["--multipart-threshold", "6MiB", "--part-size", "5MiB"])
            .args(["--no-checkpoint", "--progress", "never"])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(0), "{sender}: {}", text(&output));
        assert!(!text(&output).contains("secret"), "{}", text(&output));
        assert_same_histories(&source, &destination).await;
        assert!(same_bytes(&source, &destination, "z-big").await);
        let forwarded = proxy.counts.forwarded.load(Relaxed) as usize;
        assert!(
            forwarded > entries,
            "{sender}: {forwarded} requests forwarded"
        );
        assert_eq!(proxy.counts.tunnels.load(Relaxed), 0);
        assert_eq!(proxy.counts.refused.load(Relaxed), 0);

        // verify, through `--proxy` this time.
        let output = binary()
            .current_dir(work_dir())
            .args([
                "verify",
                &format!("s3://{source}"),
                &format!("s3://{destination}"),
            ])
            .args(["--endpoint-url", "http://s3.proxy-only.test:1"])
            .args(["--proxy", &with_credentials(&proxy)])
            .envs(server().env())
            .env("S3_BACKFILL_SEND", sender)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(0), "{sender}: {}", text(&output));
        assert!(!text(&output).contains("secret"), "{}", text(&output));
    }
}

/// An https endpoint through CONNECT tunnels: the endpoint's port is closed here, the proxy alone
/// knows where it is; TLS is end to end (the proxy sees only the host name), the certificate checked
/// against `--ca-bundle` as without a proxy.
#[tokio::test(flavor = "multi_thread")]
async fn an_https_endpoint_is_reached_through_connect_tunnels() {
    let dir = tempfile::tempdir().unwrap();
    use s3_backfill::local_server::SeaweedFs;
    let (certificate, key) = SeaweedFs::self_signed_certificate(dir.path());
    let tls = SeaweedFs::start_tls(&certificate, &key).unwrap();
    let seeding = tls.client();
    for bucket in ["tunnel-src", "tunnel-dst", "tunnel-dst2"] {
        seeding.create_bucket().bucket(bucket).send().await.unwrap();
        seeding
            .put_bucket_versioning()
            .bucket(bucket)
            .versioning_configuration(
                aws_sdk_s3::types::VersioningConfiguration::builder()
                    .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }
    for index in 0..12 {
        for version in 0..2 {
            seeding
                .put_object()
                .bucket("tunnel-src")
                .key(format!("t/{index}"))
                .body(format!("{index} v{version}").into_bytes().into())
                .send()
                .await
                .unwrap();
        }
    }
    let proxy = ForwardProxy::start(Settings {
        routes: HashMap::from([("localhost:1".to_string(), tls.port)]),
        authorization: Some(AUTHORIZATION.into()),
        ..Settings::default()
    });
    for (sender, destination) in [("direct", "tunnel-dst"), ("sdk", "tunnel-dst2")] {
        let output = binary()
            .current_dir(work_dir())
            .args(["copy", "s3://tunnel-src", &format!("s3://{destination}")])
            .args(["--endpoint-url", "https://localhost:1", "--no-checkpoint"])
            .args(["--ca-bundle", certificate.to_str().unwrap()])
            .envs(tls.env())
            .env("HTTPS_PROXY", with_credentials(&proxy))
            .env("S3_BACKFILL_SEND", sender)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(0), "{sender}: {}", text(&output));
        assert!(!text(&output).contains("secret"), "{}", text(&output));
    }
    for destination in ["tunnel-dst", "tunnel-dst2"] {
        let listed = seeding
            .list_object_versions()
            .bucket(destination)
            .send()
            .await
            .unwrap();
        assert_eq!(listed.versions().len(), 24, "{destination}");
    }
    assert!(proxy.counts.tunnels.load(Relaxed) >= 2);
    assert_eq!(proxy.counts.forwarded.load(Relaxed), 0);
    let targets = proxy.counts.targets.lock().unwrap().clone();
    assert!(targets.iter().all(|t| t == "localhost:1"), "{targets:?}");
}

/// NO_PROXY naming the endpoint's host, and `--no-proxy`, go around the proxy: it sees nothing.
#[tokio::test(flavor = "multi_thread")]
async fn no_proxy_and_the_no_proxy_option_bypass_it() {
    let source = create_bucket("bypass-src", true).await;
    put(&source, "k", "one").await;
    let proxy = ForwardProxy::start(Settings::default());
    for (label, no_proxy, extra) in [
        ("NO_PROXY", Some("localhost,127.0.0.1"), None),
        ("--no-proxy", None, Some("--no-proxy")),
    ] {
        let destination = create_bucket(&format!("bypass-dst-{}", label.len()), true).await;
        let mut command = copy_via(&server().endpoint, &source, &destination);
        command
            .env("HTTP_PROXY", &proxy.url)
            .args(["--no-checkpoint", "--progress", "never"]);
        if let Some(no_proxy) = no_proxy {
            command.env("NO_PROXY", no_proxy);
        }
        command.args(extra);
        let output = command.output().unwrap();
        assert_eq!(output.status.code(), Some(0), "{label}: {}", text(&output));
        assert_same_histories(&source, &destination).await;
    }
    assert!(proxy.counts.targets.lock().unwrap().is_empty());
}

/// A proxy that refuses, one that wants credentials it was not given, one that is not there, and a
/// proxy URL that cannot be used: one line naming the proxy (never its password) and the fix, exit 2,
/// nothing written.
#[tokio::test(flavor = "multi_thread")]
async fn a_proxy_that_refuses_is_named_in_one_line() {
    let source = create_bucket("refused-src", true).await;
    let destination = create_bucket("refused-dst", true).await;
    put(&source, "k", "one").await;
    let refusing = ForwardProxy::start(Settings {
        refuse: true,
        ..Settings::default()
    });
    let wanting = ForwardProxy::start(Settings {
        authorization: Some(AUTHORIZATION.into()),
        ..Settings::default()
    });
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let down = format!("http://127.0.0.1:{closed}");
    let cases: Vec<(&str, String, &str, String)> = vec![
        (
            "HTTPS_PROXY",
            refusing.url.clone(),
            "https://localhost:1",
            format!(
                "the proxy {} refused to connect to localhost:1 (HTTP 403)",
                refusing.url
            ),
        ),
        (
            "HTTPS_PROXY",
            wanting.url.clone(),
            "https://localhost:1",
            format!(
                "the proxy {} refused to connect to localhost:1 (HTTP 407)",
                wanting.url
            ),
        ),
        (
            "HTTP_PROXY",
            wanting.url.replace("http://", "http://user:wrong@"),
            "http://s3.proxy-only.test:1",
            format!("the proxy {} refused the request (HTTP 407)", wanting.url),
        ),
        (
            "HTTP_PROXY",
            down.replace("http://", "http://user:wrong@"),
            "http://s3.proxy-only.test:1",
            format!("cannot connect to the proxy {down}"),
        ),
        (
            "HTTPS_PROXY",
            "socks5://user:wrong@127.0.0.1:1080".into(),
            "https://localhost:1",
            "HTTPS_PROXY=socks5://127.0.0.1:1080: socks5:// proxies are not supported".into(),
        ),
    ];
    for (variable, url, endpoint, expected) in cases {
        let output = copy_via(endpoint, &source, &destination)
            .env(variable, &url)
            .args(["--no-checkpoint", "--progress", "never"])
            .output()
            .unwrap();
        let shown = text(&output);
        assert_eq!(output.status.code(), Some(2), "{url}: {shown}");
        assert!(
            shown.contains(&expected),
            "{url}: expected {expected:?} in {shown}"
        );
        assert!(!shown.contains("wrong"), "{shown}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        let lines: Vec<&str> = stderr.lines().filter(|l| l.contains("proxy")).collect();
        assert_eq!(lines.len(), 1, "{stderr}");
    }
    assert!(histories(&destination, "").await.is_empty());
}
