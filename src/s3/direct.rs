//! The hot writes — CopyObject, UploadPartCopy and DeleteObject, at least one per version copied —
//! signed with aws-sigv4 and sent on a lean HTTP/1.1 client of our own (`wire`), without aws-sdk-s3's
//! orchestrator.
//!
//! Why: the SDK's fluent client spends about 115 µs of CPU on every request around the network
//! (endpoint rules, interceptors, identity lookups, its configuration bag), several times what signing
//! and sending the same request costs (`cargo bench --bench sdk_floor`); against S3's latency, with
//! thousands of copies in flight, that CPU is what bounds a backfill of small objects.
//!
//! What it takes from the SDK, so both paths address and authenticate the same way: the endpoint,
//! resolved by the SDK's own rules once per bucket (a bucket whose rules ask for anything but plain
//! SigV4 — S3 Express, multi-region access points — stays with the SDK); the credentials, from the
//! same provider chain, cached until shortly before they expire; and the error classification
//! (`classify_code`). The attempt timeouts and the trusted certificates are the connection's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sdk_s3::config::endpoint::{DefaultResolver, Params, ResolveEndpoint};
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode, sign,
};
use aws_smithy_runtime_api::client::identity::Identity;
use aws_smithy_types::Document;
use bytes::Bytes;
use http_body_util::Empty;
use hyper::{HeaderMap, Method};
use quick_xml::Reader;
use quick_xml::events::Event;

use super::api::{S3Error, S3Result};
#[cfg(test)]
use super::aws::Connection;
use super::aws::{classify_answer, error_chain};
use super::proxy::{Proxies, Proxy};
use super::transport::Transport;
use super::wire::{Failure, Origin, Wire};

/// The SHA-256 of an empty body, as `x-amz-content-sha256` carries it.
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Credentials this close to their expiry are fetched again before a request is signed with them.
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(120);

/// The sender of one side's hot writes.
pub(super) struct Direct {
    wire: Wire,
    proxies: Option<Arc<Proxies>>,
    identities: Identities,
    endpoint: EndpointParams,
    resolver: DefaultResolver,
    /// Per bucket: where its requests go, or None when the SDK must send them.
    targets: Mutex<HashMap<String, Option<Arc<Target>>>>,
}

impl std::fmt::Debug for Direct {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Direct")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// What the SDK's endpoint rules are given for a bucket.
#[derive(Debug, Clone)]
pub(super) struct EndpointParams {
    pub region: String,
    pub endpoint_url: Option<String>,
    pub path_style: bool,
    pub fips: bool,
    pub dual_stack: bool,
}

/// Where a bucket's requests go.
#[derive(Debug)]
pub(super) struct Target {
    /// The bucket's URL without a trailing slash: `http://127.0.0.1:8333/bucket`,
    /// `https://bucket.s3.us-east-1.amazonaws.com`.
    base: String,
    host: String,
    origin: Origin,
    /// The proxy its requests go through, if one applies.
    proxy: Option<Proxy>,
    signing_region: String,
}

/// One request: a method on a key, with its query (already encoded) and headers.
pub(super) struct Request<'a> {
    pub method: Method,
    pub bucket: &'a str,
    pub key: &'a str,
    pub query: String,
    pub headers: Headers,
    /// How long the attempt may take, answer included.
    pub timeout: Duration,
}

/// A request's headers, in order.
#[derive(Debug, Default)]
pub(super) struct Headers(pub Vec<(&'static str, String)>);

impl Headers {
    pub fn set(&mut self, name: &'static str, value: String) {
        self.0.push((name, value));
    }

    /// Adds the header when there is a value.
    pub fn add(&mut self, name: &'static str, value: Option<String>) {
        if let Some(value) = value {
            self.set(name, value);
        }
    }
}

/// A successful (2xx) answer.
pub(super) struct Answer {
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_string)
    }
}

impl Direct {
    pub(super) fn new(
        transport: &Transport,
        credentials: Option<SharedCredentialsProvider>,
        endpoint: EndpointParams,
    ) -> Direct {
        Direct {
            wire: Wire::new((*transport.tls).clone()),
            proxies: transport.proxies.clone(),
            identities: Identities {
                provider: credentials,
                current: RwLock::new(None),
                refreshing: tokio::sync::Mutex::new(()),
            },
            endpoint,
            resolver: DefaultResolver::new(),
            targets: Mutex::new(HashMap::new()),
        }
    }

    /// Where `bucket`'s requests go; None when its endpoint rules want more than SigV4 (the SDK then
    /// sends them).
    pub(super) async fn target(&self, bucket: &str) -> Option<Arc<Target>> {
        if let Some(known) = self.targets.lock().expect("targets lock").get(bucket) {
            return known.clone();
        }
        let target = self.resolve(bucket).await.map(Arc::new);
        if target.is_none() {
            tracing::debug!(
                bucket,
                "the SDK sends this bucket's writes (its endpoint is not plain SigV4)"
            );
        }
        self.targets
            .lock()
            .expect("targets lock")
            .insert(bucket.to_string(), target.clone());
        target
    }

    async fn resolve(&self, bucket: &str) -> Option<Target> {
        let params = Params::builder()
            .bucket(bucket)
            .region(&self.endpoint.region)
            .use_fips(self.endpoint.fips)
            .use_dual_stack(self.endpoint.dual_stack)
            .set_endpoint(self.endpoint.endpoint_url.clone())
            .force_path_style(self.endpoint.path_style)
            .accelerate(false)
            .build()
            .ok()?;
        let endpoint = self.resolver.resolve_endpoint(&params).await.ok()?;
        if endpoint.headers().next().is_some() {
            return None;
        }
        // The first auth scheme is the one the SDK would use.
        let scheme = endpoint.auth_schemes().first()?;
        let text = |key: &str| match scheme.get(key) {
            Some(Document::String(value)) => Some(value.clone()),
            _ => None,
        };
        if scheme.name() != "sigv4" || text("signingName").as_deref() != Some("s3") {
            return None;
        }
        let signing_region = text("signingRegion").unwrap_or_else(|| self.endpoint.region.clone());
        let base = endpoint.url().trim_end_matches('/').to_string();
        let uri: hyper::Uri = base.parse().ok()?;
        let host = uri.authority()?.as_str().to_string();
        let origin = Origin::of(&uri)?;
        let proxy = self
            .proxies
            .as_deref()
            .and_then(|proxies| proxies.route(&uri));
        if let Some(proxy) = &proxy {
            tracing::info!(bucket, endpoint = %base, proxy = %proxy.shown, "through a proxy");
        }
        Some(Target {
            base,
            host,
            origin,
            proxy,
            signing_region,
        })
    }

    /// Signs and sends one request; a 2xx answer is returned, anything else is an error of `bucket`.
    pub(super) async fn send(&self, target: &Target, request: Request<'_>) -> S3Result<Answer> {
        let identity = self.identities.get().await?;
        let mut uri = format!(
            "{}/{}",
            target.base,
            percent_encoding::utf8_percent_encode(request.key, super::aws::COPY_SOURCE)
        );
        if !request.query.is_empty() {
            uri.push('?');
            uri.push_str(&request.query);
        }
        let mut builder = hyper::Request::builder()
            .method(request.method.clone())
            .uri(&uri)
            .header("host", &target.host)
            .header("user-agent", USER_AGENT)
            .header("x-amz-content-sha256", EMPTY_SHA256);
        if request.method == Method::PUT {
            // S3 wants every PUT to say its length, an empty one too.
            builder = builder.header("content-length", "0");
        }
        for (name, value) in &request.headers.0 {
            builder = builder.header(*name, value);
        }
        let mut http_request = builder.body(Empty::new()).map_err(|e| S3Error::Other {
            code: "InvalidRequest".into(),
            message: format!("cannot form the request for {}: {e}", request.key),
        })?;
        sign_request(&mut http_request, &uri, &identity, &target.signing_region)?;
        let wire_request = super::wire::Request::of(&http_request, target.proxy.as_ref());
        drop(http_request);
        let exchange = self
            .wire
            .exchange(&target.origin, target.proxy.as_ref(), &wire_request);
        let answer = match tokio::time::timeout(request.timeout, exchange).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(failure)) => {
                // Decided by where the exchange failed, not by its message.
                if let Failure::Connect(error) = &failure
                    && let Some(refused) = super::proxy::refusal(error)
                {
                    return Err(S3Error::Other {
                        code: "ProxyRefused".into(),
                        message: refused.to_string(),
                    });
                }
                return Err(match failure {
                    Failure::Tls {
                        certificate: true, ..
                    } => S3Error::Other {
                        code: "UntrustedCertificate".into(),
                        message: failure.to_string(),
                    },
                    _ => S3Error::Transient {
                        maybe_applied: failure.maybe_sent(),
                        message: failure.to_string(),
                    },
                });
            }
            Err(_) => return Err(S3Error::timed_out(request.timeout)),
        };
        if let Some(proxy) = &target.proxy
            && answer.status == 407
        {
            return Err(S3Error::Other {
                code: "ProxyRefused".into(),
                message: proxy.wants_credentials().to_string(),
            });
        }
        if !(200..300).contains(&answer.status) {
            return Err(error_answer(
                answer.status,
                &answer.headers,
                &answer.body,
                request.bucket,
            ));
        }
        Ok(Answer {
            headers: answer.headers,
            body: answer.body,
        })
    }
}

const USER_AGENT: &str = concat!("s3-backfill/", env!("CARGO_PKG_VERSION"));

fn sign_request(
    request: &mut hyper::Request<Empty<Bytes>>,
    uri: &str,
    identity: &Identity,
    region: &str,
) -> S3Result<()> {
    let mut settings = SigningSettings::default();
    // S3's own rules: the path is encoded once and never normalized.
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    settings.payload_checksum_kind = PayloadChecksumKind::NoHeader;
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(identity)
        .region(region)
        .name("s3")
        .time(SystemTime::now())
        .settings(settings)
        .build()
        .expect("every signing parameter is set")
        .into();
    let failed = |error: &dyn std::error::Error| S3Error::Other {
        code: "SigningFailed".into(),
        message: format!("cannot sign the request: {error}"),
    };
    let headers = request
        .headers()
        .iter()
        .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)));
    let signable = SignableRequest::new(
        request.method().as_str(),
        uri,
        headers,
        SignableBody::Precomputed(EMPTY_SHA256.into()),
    )
    .map_err(|e| failed(&e))?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| failed(&e))?
        .into_parts();
    instructions.apply_to_request_http1x(request);
    Ok(())
}

/// An error answer in the engine's terms, with S3's message and request id.
pub(super) fn error_answer(status: u16, headers: &HeaderMap, body: &[u8], bucket: &str) -> S3Error {
    let (code, message) = match xml_fields(body) {
        Some((root, fields)) if root == "Error" => {
            (field(&fields, "Code"), field(&fields, "Message"))
        }
        _ => (String::new(), String::new()),
    };
    let request_id = headers
        .get("x-amz-request-id")
        .and_then(|id| id.to_str().ok());
    classify_answer(status, code, message, request_id, bucket)
}

/// The root element of an XML answer and its children's text, in order (a child with children of
/// its own gives its inner XML). None when the body is not XML with a root element.
pub(super) fn xml_fields(body: &[u8]) -> Option<(String, Vec<(String, String)>)> {
    let mut reader = Reader::from_reader(body);
    let mut root = None;
    let mut fields = Vec::new();
    loop {
        match reader.read_event().ok()? {
            Event::Start(start) => {
                let name = AsRef::<str>::as_ref(&start.name()).to_string();
                if root.is_none() {
                    root = Some(name);
                    continue;
                }
                let raw = reader.read_text(start.name()).ok()?;
                let text = quick_xml::escape::unescape(&raw).ok()?.into_owned();
                fields.push((name, text));
            }
            Event::Empty(empty) => {
                let name = AsRef::<str>::as_ref(&empty.name()).to_string();
                if root.is_none() {
                    root = Some(name);
                    break;
                }
                fields.push((name, String::new()));
            }
            Event::End(_) | Event::Eof => break,
            _ => {}
        }
    }
    root.map(|root| (root, fields))
}

/// The text of the first field named `name` ("" when there is none).
pub(super) fn field(fields: &[(String, String)], name: &str) -> String {
    fields
        .iter()
        .find(|(field, _)| field == name)
        .map(|(_, value)| value.clone())
        .unwrap_or_default()
}

/// The credentials of the provider chain, fetched once and again shortly before they expire.
struct Identities {
    provider: Option<SharedCredentialsProvider>,
    current: RwLock<Option<(Arc<Identity>, Option<SystemTime>)>>,
    /// One refresh at a time: the others wait for its result.
    refreshing: tokio::sync::Mutex<()>,
}

impl Identities {
    async fn get(&self) -> S3Result<Arc<Identity>> {
        if let Some(identity) = self.fresh() {
            return Ok(identity);
        }
        let _refreshing = self.refreshing.lock().await;
        if let Some(identity) = self.fresh() {
            return Ok(identity);
        }
        let provider = self
            .provider
            .as_ref()
            .ok_or_else(|| S3Error::BadCredentials {
                code: "NoCredentials".into(),
                message: "no credentials provider is configured".into(),
            })?;
        let credentials = provider.provide_credentials().await.map_err(|error| {
            let message = error_chain(&error);
            match error {
                aws_credential_types::provider::error::CredentialsError::CredentialsNotLoaded(
                    _,
                ) => S3Error::BadCredentials {
                    code: "NoCredentials".into(),
                    message,
                },
                // Nothing was sent: the write was not applied.
                _ => S3Error::Transient {
                    message: format!("loading credentials: {message}"),
                    maybe_applied: false,
                },
            }
        })?;
        let expiry = credentials.expiry();
        let identity = Arc::new(Identity::from(credentials));
        *self.current.write().expect("credentials lock") = Some((Arc::clone(&identity), expiry));
        Ok(identity)
    }

    fn fresh(&self) -> Option<Arc<Identity>> {
        let current = self.current.read().expect("credentials lock");
        let (identity, expiry) = current.as_ref()?;
        match expiry {
            Some(expiry) if *expiry < SystemTime::now() + REFRESH_BEFORE_EXPIRY => None,
            _ => Some(Arc::clone(identity)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn direct(endpoint_url: Option<&str>, path_style: bool, region: &str) -> Direct {
        Direct::new(
            &Transport::of(&Connection {
                proxy: super::super::proxy::ProxyChoice::Off,
                ..Connection::default()
            })
            .unwrap(),
            None,
            EndpointParams {
                region: region.into(),
                endpoint_url: endpoint_url.map(str::to_string),
                path_style,
                fips: false,
                dual_stack: false,
            },
        )
    }

    /// Where the SDK's endpoint rules send a bucket's requests is where the direct sender sends them.
    #[tokio::test]
    async fn buckets_are_addressed_by_the_sdks_endpoint_rules() {
        let local = direct(Some("http://127.0.0.1:9000"), true, "us-east-1");
        let target = local.target("dst").await.unwrap();
        assert_eq!(target.base, "http://127.0.0.1:9000/dst");
        assert_eq!(target.host, "127.0.0.1:9000");
        assert_eq!(target.signing_region, "us-east-1");
        let aws = direct(None, false, "eu-west-3");
        let target = aws.target("backups").await.unwrap();
        assert_eq!(target.base, "https://backups.s3.eu-west-3.amazonaws.com");
        assert_eq!(target.host, "backups.s3.eu-west-3.amazonaws.com");
        assert_eq!(target.signing_region, "eu-west-3");
        // A bucket name with dots cannot be a TLS host name: path-style.
        let target = aws.target("my.backups").await.unwrap();
        assert_eq!(target.base, "https://s3.eu-west-3.amazonaws.com/my.backups");
        // S3 Express One Zone directory buckets sign with session credentials: the SDK's.
        assert!(aws.target("fast--euw3-az1--x-s3").await.is_none());
    }

    #[derive(Debug)]
    struct Counting {
        calls: std::sync::atomic::AtomicUsize,
        lifetime: Option<Duration>,
        fail: Option<fn() -> aws_credential_types::provider::error::CredentialsError>,
    }

    impl ProvideCredentials for Counting {
        fn provide_credentials<'a>(
            &'a self,
        ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            let call = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let result = match self.fail {
                Some(fail) => Err(fail()),
                None => Ok(aws_credential_types::Credentials::new(
                    "AKID",
                    format!("secret {call}"),
                    Some("token".into()),
                    self.lifetime.map(|lifetime| SystemTime::now() + lifetime),
                    "test",
                )),
            };
            aws_credential_types::provider::future::ProvideCredentials::ready(result)
        }
    }

    fn identities(provider: Counting) -> (Identities, Arc<Counting>) {
        let provider = Arc::new(provider);
        let identities = Identities {
            provider: Some(SharedCredentialsProvider::new(ArcProvider(Arc::clone(
                &provider,
            )))),
            current: RwLock::new(None),
            refreshing: tokio::sync::Mutex::new(()),
        };
        (identities, provider)
    }

    #[derive(Debug)]
    struct ArcProvider(Arc<Counting>);

    impl ProvideCredentials for ArcProvider {
        fn provide_credentials<'a>(
            &'a self,
        ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            self.0.provide_credentials()
        }
    }

    fn calls(provider: &Counting) -> usize {
        provider.calls.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Credentials are fetched once for thousands of requests, and again when they are about to
    /// expire (a session token in a ten-hour run), never signing with expired ones.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn credentials_are_cached_until_shortly_before_they_expire() {
        let (lasting, provider) = identities(Counting {
            calls: Default::default(),
            lifetime: Some(Duration::from_secs(3600)),
            fail: None,
        });
        let gets = futures::future::join_all((0..500).map(|_| lasting.get())).await;
        assert!(gets.iter().all(Result::is_ok));
        assert_eq!(calls(&provider), 1);
        // Static credentials never expire.
        let (forever, provider) = identities(Counting {
            calls: Default::default(),
            lifetime: None,
            fail: None,
        });
        for _ in 0..3 {
            forever.get().await.unwrap();
        }
        assert_eq!(calls(&provider), 1);
        // Within the refresh margin of their expiry: fetched again for every request.
        let (expiring, provider) = identities(Counting {
            calls: Default::default(),
            lifetime: Some(REFRESH_BEFORE_EXPIRY / 2),
            fail: None,
        });
        for _ in 0..3 {
            expiring.get().await.unwrap();
        }
        assert_eq!(calls(&provider), 3);
    }

    #[tokio::test]
    async fn credentials_that_cannot_be_loaded_are_told_apart_from_a_provider_that_failed() {
        use aws_credential_types::provider::error::CredentialsError;
        let (none, _) = identities(Counting {
            calls: Default::default(),
            lifetime: None,
            fail: Some(|| {
                CredentialsError::not_loaded("no providers in chain provided credentials")
            }),
        });
        let error = none.get().await.unwrap_err();
        assert!(
            matches!(&error, S3Error::BadCredentials { code, .. } if code == "NoCredentials"),
            "{error:?}"
        );
        let (failing, _) = identities(Counting {
            calls: Default::default(),
            lifetime: None,
            fail: Some(|| CredentialsError::provider_error("the STS endpoint timed out")),
        });
        let error = failing.get().await.unwrap_err();
        assert!(error.is_retryable() && !error.maybe_applied(), "{error:?}");
    }

    #[test]
    fn xml_fields_reads_the_root_and_its_leaves() {
        let body = br#"<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>InternalError</Code><Message>We encountered an internal error &amp; more &#x41;.</Message><Nested><Deep>x</Deep></Nested><RequestId>R1</RequestId></Error>"#;
        let (root, fields) = xml_fields(body).unwrap();
        assert_eq!(root, "Error");
        assert_eq!(field(&fields, "Code"), "InternalError");
        assert_eq!(
            field(&fields, "Message"),
            "We encountered an internal error & more A."
        );
        assert_eq!(field(&fields, "RequestId"), "R1");
        assert_eq!(field(&fields, "Nested"), "<Deep>x</Deep>");
        let (root, fields) = xml_fields(
            br#"<CopyObjectResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><LastModified>2026-01-01T00:00:00.000Z</LastModified><ETag>&quot;abc&quot;</ETag></CopyObjectResult>"#,
        )
        .unwrap();
        assert_eq!(root, "CopyObjectResult");
        assert_eq!(field(&fields, "ETag"), "\"abc\"");
        assert!(xml_fields(b"").is_none());
        assert!(xml_fields(b"not xml at all").is_none());
    }

    #[test]
    fn a_non_2xx_answer_is_classified_with_its_request_id() {
        let mut headers = HeaderMap::new();
        headers.insert("x-amz-request-id", "REQ123".parse().unwrap());
        let error = error_answer(
            503,
            &headers,
            b"<Error><Code>SlowDown</Code><Message>Reduce your request rate.</Message></Error>",
            "b",
        );
        assert!(matches!(error, S3Error::SlowDown { .. }), "{error:?}");
        assert!(error.to_string().contains("REQ123"), "{error}");
        // Credentials revoked or expired in the middle of a run: the run stops (exit 3), it does not
        // record every remaining copy as failed.
        let error = error_answer(
            400,
            &headers,
            b"<Error><Code>ExpiredToken</Code><Message>The provided token has expired.</Message></Error>",
            "b",
        );
        assert!(crate::replay::stops_the_run(&error), "{error:?}");
        assert!(matches!(error, S3Error::BadCredentials { .. }), "{error:?}");
        // No body (a HEAD-like answer), or a proxy's HTML page: the status decides.
        let error = error_answer(404, &headers, b"", "b");
        assert!(matches!(error, S3Error::NotFound { .. }), "{error:?}");
        let error = error_answer(502, &HeaderMap::new(), b"<html>Bad Gateway</html>", "b");
        assert!(error.maybe_applied(), "{error:?}");
    }
}
