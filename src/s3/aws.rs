//! The seam implemented with aws-sdk-s3. One `AwsS3` per side (source, destination), each with its own
//! endpoint, region and credentials, so cross-account and cross-region runs work.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_config::BehaviorVersion;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{Region, RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::{DateTime, DateTimeFormat};
use aws_sdk_s3::types::{
    BucketVersioningStatus, CompletedMultipartUpload, CompletedPart as SdkCompletedPart,
    EncodingType, ObjectLockEnabled, ObjectLockLegalHoldStatus, ObjectLockMode,
    ServerSideEncryption, StorageClass,
};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::AfterDeserializationInterceptorContextRef;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::api::*;
use super::direct::{self, Direct, EndpointParams, Target};
use super::list_xml::{parse_list_versions, url_decode};
use super::proxy::ProxyChoice;
use super::transport::Transport;

/// Where and as whom one side talks to S3.
#[derive(Debug, Clone, Default)]
pub struct Connection {
    pub endpoint_url: Option<String>,
    pub region: Option<String>,
    pub profile: Option<String>,
    /// None: path-style when an endpoint is configured anywhere (option, environment, profile).
    pub path_style: Option<bool>,
    /// How long one request attempt may go unanswered (default 30 s); copies get more by size.
    pub request_timeout: Option<std::time::Duration>,
    /// SSE-C: the key of this side's objects (read by HEAD; on the destination, written with it).
    pub customer_key: Option<CustomerKey>,
    /// SSE-C, destination side: the key of the source objects its copies read.
    pub copy_source_customer_key: Option<CustomerKey>,
    /// `(access key, secret key)` instead of the credentials chain (the demo's local server).
    pub static_credentials: Option<(String, String)>,
    /// PEM certificates to trust besides the system's (`--ca-bundle`, AWS_CA_BUNDLE).
    pub ca_bundle: Option<std::path::PathBuf>,
    /// Accept any TLS certificate (`--no-verify-ssl`).
    pub no_verify_ssl: bool,
    /// Where the proxy settings come from (`--proxy`, `--no-proxy`, the environment).
    pub proxy: ProxyChoice,
    /// Every request through the SDK's client, the copies too (as `S3_BACKFILL_SEND=sdk`).
    pub sdk_only: bool,
}

#[derive(Clone, Debug)]
pub struct AwsS3 {
    pub(super) client: aws_sdk_s3::Client,
    request_timeout: std::time::Duration,
    customer_key: Option<CustomerKey>,
    copy_source_customer_key: Option<CustomerKey>,
    /// The endpoint URL as resolved (`AWS` for Amazon S3's own) and the region, e.g.
    /// `http://127.0.0.1:9000 us-east-1`: where this side's buckets are.
    place: String,
    /// The sender of the hot writes (CopyObject, UploadPartCopy, DeleteObject) without the SDK's
    /// orchestrator; None when `S3_BACKFILL_SEND=sdk` asks for the SDK's.
    direct: Option<Arc<Direct>>,
}

/// Checks that a CA bundle is a readable file of PEM certificates.
pub fn check_ca_bundle(path: &std::path::Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "cannot read the CA bundle {}: {e}; give a PEM file with --ca-bundle or AWS_CA_BUNDLE",
            path.display()
        )
    })?;
    if !text.contains("-----BEGIN CERTIFICATE-----") {
        return Err(format!(
            "the CA bundle {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        ));
    }
    Ok(())
}

/// Checks that profile `name` exists in the AWS config or credentials file (`AWS_CONFIG_FILE`,
/// `AWS_SHARED_CREDENTIALS_FILE`, else ~/.aws/): the SDK would otherwise skip it silently and use
/// whatever else it finds.
pub fn check_profile(name: &str) -> Result<(), String> {
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    let file = |variable: &str, default: &str| {
        std::env::var_os(variable)
            .map(std::path::PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".aws").join(default)))
    };
    let files = [
        file("AWS_CONFIG_FILE", "config"),
        file("AWS_SHARED_CREDENTIALS_FILE", "credentials"),
    ];
    for path in files.iter().flatten() {
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        for line in text.lines() {
            let header = line.trim();
            let Some(section) = header.strip_prefix('[').and_then(|h| h.strip_suffix(']')) else {
                continue;
            };
            let section = section.trim();
            if section == name || section.strip_prefix("profile ").map(str::trim) == Some(name) {
                return Ok(());
            }
        }
    }
    let shown: Vec<String> = files
        .iter()
        .flatten()
        .map(|p| p.display().to_string())
        .collect();
    Err(format!(
        "profile {name:?} is not in {}: check its name (`aws configure list-profiles`), or set \
         AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE",
        shown.join(" nor ")
    ))
}

/// The shared AWS configuration of one side: profile, region, endpoint, the credentials chain.
pub async fn load_config(connection: &Connection) -> aws_config::SdkConfig {
    load_config_on(connection, Transport::of(connection)).await
}

/// `load_config` with the side's transport, or the SDK's own client (no proxy, the system's trust
/// store) when it could not be built: the commands check the CA bundle and the proxy settings before
/// they connect, so only a caller that did not gets here.
async fn load_config_on(
    connection: &Connection,
    transport: Result<Transport, String>,
) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(profile) = &connection.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(region) = &connection.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some(url) = &connection.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    match transport {
        Ok(transport) => loader = loader.http_client(transport.sdk_client()),
        Err(error) => tracing::warn!(error = %error, "the SDK's own HTTP client is used"),
    }
    if let Some((access, secret)) = &connection.static_credentials {
        loader = loader.credentials_provider(aws_sdk_s3::config::Credentials::new(
            access, secret, None, None, "static",
        ));
    }
    let mut shared = loader.load().await;
    if shared.region().is_none() {
        shared = shared
            .into_builder()
            .region(Region::new("us-east-1"))
            .build();
    }
    shared
}

impl AwsS3 {
    pub async fn connect(connection: &Connection) -> Self {
        let transport = Transport::of(connection);
        let shared = load_config_on(connection, transport.clone()).await;
        let request_timeout = connection
            .request_timeout
            .unwrap_or(DEFAULT_REQUEST_TIMEOUT);
        let builder = aws_sdk_s3::config::Builder::from(&shared)
            // Our own retry layer decides what to retry: the SDK's blind retries of a write whose answer
            // was lost add duplicate versions on a versioned destination.
            .retry_config(RetryConfig::disabled())
            // Without an attempt timeout an answer that never comes waits forever.
            .timeout_config(timeouts(request_timeout))
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        // The S3 endpoint as the SDK will resolve it: the option, AWS_ENDPOINT_URL_S3, or the shared
        // endpoint (AWS_ENDPOINT_URL, a profile's endpoint_url).
        let endpoint = connection
            .endpoint_url
            .clone()
            .or_else(|| {
                std::env::var("AWS_ENDPOINT_URL_S3")
                    .ok()
                    .filter(|v| !v.is_empty())
            })
            .or_else(|| shared.endpoint_url().map(str::to_string));
        let path_style = connection.path_style.unwrap_or(endpoint.is_some());
        let builder = builder.force_path_style(path_style);
        let region = shared.region().map_or("us-east-1", |r| r.as_ref());
        let place = format!("{} {region}", endpoint.as_deref().unwrap_or("AWS"));
        let direct =
            if connection.sdk_only || std::env::var("S3_BACKFILL_SEND").as_deref() == Ok("sdk") {
                None
            } else {
                let params = EndpointParams {
                    region: region.to_string(),
                    endpoint_url: endpoint.clone(),
                    path_style,
                    fips: shared.use_fips().unwrap_or(false),
                    dual_stack: shared.use_dual_stack().unwrap_or(false),
                };
                match transport {
                    Ok(transport) => Some(Arc::new(Direct::new(
                        &transport,
                        shared.credentials_provider(),
                        params,
                    ))),
                    Err(error) => {
                        tracing::warn!(error = %error, "the SDK sends every request");
                        None
                    }
                }
            };
        AwsS3 {
            client: aws_sdk_s3::Client::from_conf(builder.build()),
            request_timeout,
            customer_key: connection.customer_key.clone(),
            copy_source_customer_key: connection.copy_source_customer_key.clone(),
            place,
            direct,
        }
    }

    /// The direct sender and where `bucket`'s requests go, unless the SDK must send them.
    async fn direct(&self, bucket: &str) -> Option<(&Direct, Arc<Target>)> {
        let direct = self.direct.as_deref()?;
        Some((direct, direct.target(bucket).await?))
    }

    /// How long a copy of `bytes` may take: the base, plus 1 s per 16 MiB.
    fn copy_timeout(&self, bytes: u64) -> std::time::Duration {
        self.request_timeout + std::time::Duration::from_secs(bytes / COPY_BYTES_PER_SECOND)
    }

    /// A request's configuration with an attempt timeout for copying `bytes`: the base, plus 1 s per
    /// 16 MiB (S3 copies at well over that; a copy that answers later is a copy that hangs).
    fn copying(&self, bytes: u64) -> aws_sdk_s3::config::Builder {
        aws_sdk_s3::config::Builder::default().timeout_config(timeouts(self.copy_timeout(bytes)))
    }

    pub fn place(&self) -> &str {
        &self.place
    }
}

/// An SDK request's future, on the heap: it takes kilobytes, and every engine task that might send one
/// (a copy's task may fall back to a HEAD or a listing) would otherwise carry that size all its life,
/// thousands of tasks at a time.
trait Boxed: std::future::Future + Sized {
    fn boxed(self) -> std::pin::Pin<Box<Self>> {
        Box::pin(self)
    }
}

impl<F: std::future::Future> Boxed for F {}

/// `(algorithm, key, key MD5)` for SSE-C headers.
fn customer(key: &Option<CustomerKey>) -> (Option<String>, Option<String>, Option<String>) {
    match key {
        Some(key) => (
            Some("AES256".into()),
            Some(key.key_base64.clone()),
            Some(key.md5_base64.clone()),
        ),
        None => (None, None, None),
    }
}

/// The next chunk of a GetObject body (`what` names the object for the error): a body cut short is a
/// transient failure of the read.
async fn next_chunk(
    body: &mut aws_sdk_s3::primitives::ByteStream,
    what: &str,
) -> S3Result<Option<bytes::Bytes>> {
    body.try_next().await.map_err(|e| S3Error::Transient {
        message: format!("reading {what}: {e}"),
        maybe_applied: false,
    })
}

/// How long a request attempt may go unanswered unless `--request-timeout` says otherwise.
pub const DEFAULT_REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// The slowest copy rate a copy's timeout allows for (bytes per second).
const COPY_BYTES_PER_SECOND: u64 = 16 << 20;
/// CompleteMultipartUpload gets as long as a copy of the object, up to this many bytes: S3 can take
/// minutes to assemble a large object.
const COMPLETE_TIMEOUT_BYTES: u64 = 4 << 30;

/// The bytes CompleteMultipartUpload's timeout allows for: the object's, at most `COMPLETE_TIMEOUT_BYTES`.
fn complete_bytes(parts: &[CompletedPart]) -> u64 {
    parts
        .iter()
        .map(|part| part.size)
        .sum::<u64>()
        .min(COMPLETE_TIMEOUT_BYTES)
}

fn timeouts(attempt: std::time::Duration) -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(std::time::Duration::from_secs(10))
        .operation_attempt_timeout(attempt)
        .build()
}

/// The first checksum an SDK output carries, as `(algorithm, value)`: HeadObject's output and
/// UploadPartCopy's result name the same getters without sharing a trait.
macro_rules! first_checksum {
    ($out:expr) => {
        [
            ("CRC32", $out.checksum_crc32()),
            ("CRC32C", $out.checksum_crc32_c()),
            ("CRC64NVME", $out.checksum_crc64_nvme()),
            ("SHA1", $out.checksum_sha1()),
            ("SHA256", $out.checksum_sha256()),
        ]
        .into_iter()
        .find_map(|(algorithm, value)| Some((algorithm.to_string(), value?.to_string())))
    };
}

/// Characters kept as they are in a key in a URL's path or in `x-amz-copy-source`: unreserved ones
/// and `/`.
pub(super) const COPY_SOURCE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// A key URL-encoded as S3 Batch Operations manifests (and `copy --manifest`) expect it.
pub fn manifest_key(key: &str) -> String {
    utf8_percent_encode(key, COPY_SOURCE).to_string()
}

/// `bucket/url-encoded-key?versionId=ID`.
pub fn copy_source(version: &VersionRef) -> String {
    if version.version_id.is_empty() {
        return format!(
            "{}/{}",
            version.bucket,
            utf8_percent_encode(&version.key, COPY_SOURCE)
        );
    }
    format!(
        "{}/{}?versionId={}",
        version.bucket,
        utf8_percent_encode(&version.key, COPY_SOURCE),
        utf8_percent_encode(&version.version_id, NON_ALPHANUMERIC)
    )
}

/// Turns an SDK failure into the engine's terms.
pub fn classify<E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static>(
    error: SdkError<E, aws_smithy_runtime_api::http::Response>,
    bucket: &str,
) -> S3Error {
    match &error {
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let code = service.err().code().unwrap_or_default().to_string();
            let message = service.err().message().unwrap_or_default().to_string();
            let request_id = service.raw().headers().get("x-amz-request-id");
            classify_answer(status, code, message, request_id, bucket)
        }
        SdkError::ConstructionFailure(_) => S3Error::Other {
            code: "ConstructionFailure".into(),
            message: error_chain(&error),
        },
        _ => match super::proxy::refusal(&error) {
            Some(refused) => S3Error::Other {
                code: "ProxyRefused".into(),
                message: refused.to_string(),
            },
            None => classify_unanswered(error_chain(&error)),
        },
    }
}

/// `classify` of a write's error: a success status with a body that is not S3's tells nothing of
/// whether the write was carried out (a broken proxy, a cut answer the client read as whole), so it is
/// an answer of unknown outcome, reconciled and sent again like a lost one, as the direct sender
/// takes it.
fn classify_write<E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static>(
    error: SdkError<E, aws_smithy_runtime_api::http::Response>,
    bucket: &str,
    timeout: std::time::Duration,
) -> S3Error {
    if let SdkError::TimeoutError(_) = &error {
        return S3Error::timed_out(timeout);
    }
    match classify(error, bucket) {
        S3Error::Other { code, message } if code == "NotS3" => S3Error::Transient {
            message,
            maybe_applied: true,
        },
        other => other,
    }
}

/// `classify_code` of an error S3 answered, with its request id (for a support case) logged and
/// kept in the message.
pub(super) fn classify_answer(
    status: u16,
    code: String,
    mut message: String,
    request_id: Option<&str>,
    bucket: &str,
) -> S3Error {
    tracing::debug!(
        status,
        code = %code,
        bucket = %bucket,
        request_id = request_id.unwrap_or(""),
        "S3 answered with an error"
    );
    if let Some(id) = request_id {
        if message.is_empty() {
            message = format!("request id {id}");
        } else {
            message.push_str(&format!(" (request id {id})"));
        }
    }
    classify_code(status, code, message, bucket)
}

/// A request that got no answer from S3, by its error's messages (`error_chain`).
pub(super) fn classify_unanswered(message: String) -> S3Error {
    if message.contains("invalid peer certificate") {
        // An untrusted certificate: nothing was sent, and sending again will not help.
        S3Error::Other {
            code: "UntrustedCertificate".into(),
            message,
        }
    } else if credentials_missing(&message) {
        // No credentials at all, or a profile that does not exist: nothing was sent.
        S3Error::BadCredentials {
            code: "NoCredentials".into(),
            message,
        }
    } else {
        // Timeouts, dispatch failures and garbled responses: the request may have been carried out.
        S3Error::Transient {
            message,
            maybe_applied: true,
        }
    }
}

/// An error and its causes as one line of their messages (`dispatch failure: io error: Connection
/// refused`), without the Debug dumps the SDK's own display appends; the full error goes to the debug
/// log.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    tracing::debug!(error = ?error, "the error in full");
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(current) = next {
        let text = current.to_string();
        // A message that already contains the next one's is not repeated.
        if !text.is_empty() && !parts.iter().any(|part| part.contains(&text)) {
            parts.push(text);
        }
        next = current.source();
    }
    parts.join(": ")
}

/// The credentials chain found nothing (or the named profile does not exist), by the error's
/// messages (`error_chain`).
fn credentials_missing(messages: &str) -> bool {
    messages.contains("loading credentials")
        || messages.contains("no credentials found")
        || messages.contains("no providers in chain provided credentials")
        || messages.contains("profile") && messages.contains("not") && messages.contains("found")
}

/// The encryption a CopyObject asks for: `(algorithm, KMS key, Bucket Key)`. An SSE-C copy
/// (`customer_key`) asks for no other.
fn copy_encryption(
    request: &CopyRequest,
    customer_key: bool,
) -> (Option<String>, Option<String>, Option<bool>) {
    if customer_key {
        return (None, None, None);
    }
    let sse = match (&request.server_side_encryption, &request.sse_kms_key_id) {
        (Some(algorithm), _) => Some(algorithm.clone()),
        (None, Some(_)) => Some("aws:kms".to_string()),
        (None, None) => None,
    };
    let kms = sse.as_ref().is_some_and(|sse| sse.starts_with("aws:kms"));
    (
        sse,
        request.sse_kms_key_id.clone().filter(|_| kms),
        request.bucket_key_enabled.filter(|_| kms),
    )
}

/// The checksum algorithms, as S3 names them in `Checksum<ALGORITHM>` fields and headers.
const CHECKSUMS: [&str; 5] = ["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"];

/// Object Lock headers of a write.
fn add_lock_headers(headers: &mut direct::Headers, lock: &LockSettings) {
    headers.add("x-amz-object-lock-mode", lock.mode.clone());
    headers.add(
        "x-amz-object-lock-retain-until-date",
        lock_until(lock).and_then(|date| date.fmt(DateTimeFormat::DateTime).ok()),
    );
    headers.add("x-amz-object-lock-legal-hold", lock.legal_hold.clone());
}

/// SSE-C headers of a copy: the key it writes with and the key it reads the source with.
fn add_customer_headers(
    headers: &mut direct::Headers,
    key: &Option<CustomerKey>,
    source_key: &Option<CustomerKey>,
) {
    let (algorithm, key, md5) = customer(key);
    headers.add("x-amz-server-side-encryption-customer-algorithm", algorithm);
    headers.add("x-amz-server-side-encryption-customer-key", key);
    headers.add("x-amz-server-side-encryption-customer-key-md5", md5);
    let (algorithm, key, md5) = customer(source_key);
    headers.add(
        "x-amz-copy-source-server-side-encryption-customer-algorithm",
        algorithm,
    );
    headers.add("x-amz-copy-source-server-side-encryption-customer-key", key);
    headers.add(
        "x-amz-copy-source-server-side-encryption-customer-key-md5",
        md5,
    );
}

/// The fields of a copy's 200 answer, whose body is `<root>` or, when the copy failed after S3 had
/// answered 200, `<Error>`.
fn copy_result(
    answer: &direct::Answer,
    root: &str,
    bucket: &str,
) -> S3Result<Vec<(String, String)>> {
    match direct::xml_fields(&answer.body) {
        Some((name, fields)) if name == root => Ok(fields),
        Some((name, _)) if name == "Error" => Err(direct::error_answer(
            200,
            &answer.headers,
            &answer.body,
            bucket,
        )),
        // An empty body: some S3-compatible servers say nothing more than 200.
        None if answer.body.iter().all(u8::is_ascii_whitespace) => Ok(Vec::new()),
        // Something else: the copy may or may not have happened.
        _ => Err(S3Error::Transient {
            message: format!(
                "the copy was answered 200 with something that is not S3's {root}: {:?}",
                String::from_utf8_lossy(&answer.body[..answer.body.len().min(200)])
            ),
            maybe_applied: true,
        }),
    }
}

fn named_version(version: &VersionRef) -> Option<String> {
    Some(version.version_id.clone()).filter(|id| !id.is_empty())
}

fn lock_mode(lock: &LockSettings) -> Option<ObjectLockMode> {
    lock.mode.as_deref().map(ObjectLockMode::from)
}

fn lock_until(lock: &LockSettings) -> Option<DateTime> {
    lock.retain_until
        .as_deref()
        .and_then(|d| DateTime::from_str(d, DateTimeFormat::DateTime).ok())
}

fn legal_hold(lock: &LockSettings) -> Option<ObjectLockLegalHoldStatus> {
    lock.legal_hold
        .as_deref()
        .map(ObjectLockLegalHoldStatus::from)
}

pub fn classify_code(status: u16, code: String, message: String, bucket: &str) -> S3Error {
    match (status, code.as_str()) {
        (_, "NoSuchBucket") => S3Error::NoSuchBucket {
            bucket: bucket.to_string(),
        },
        (_, "NoSuchKey" | "NoSuchVersion" | "NotFound" | "NoSuchUpload") | (404, _) => {
            S3Error::NotFound {
                code: if code.is_empty() {
                    "404 Not Found".into()
                } else {
                    code
                },
                message,
            }
        }
        (
            _,
            "InvalidAccessKeyId"
            | "SignatureDoesNotMatch"
            | "ExpiredToken"
            | "InvalidToken"
            | "TokenRefreshRequired"
            | "RequestTimeTooSkewed",
        ) => S3Error::BadCredentials { code, message },
        // S3 answers InvalidObjectState with 403: match it before the catch-all for 403.
        (_, "InvalidObjectState") => S3Error::InvalidObjectState { code, message },
        (_, "PreconditionFailed") | (412, _) => S3Error::PreconditionFailed { code, message },
        (_, "AccessDenied" | "AllAccessDisabled") | (403, _) => S3Error::AccessDenied {
            code: if code.is_empty() {
                "403 Forbidden".into()
            } else {
                code
            },
            message,
        },
        (
            _,
            "SlowDown"
            | "ServiceUnavailable"
            | "Throttling"
            | "ThrottlingException"
            | "RequestLimitExceeded",
        )
        | (503 | 429, _) => S3Error::SlowDown {
            code: if code.is_empty() {
                status.to_string()
            } else {
                code
            },
            message,
        },
        // The server never received the whole request.
        (_, "RequestTimeout") => S3Error::Transient {
            message: format!("{code}: {message}"),
            maybe_applied: false,
        },
        (_, "InternalError") | (500..=599, _) => S3Error::Transient {
            message: format!("{status} {code}: {message}"),
            maybe_applied: true,
        },
        // A status S3 never sends (101, 999): something on the path broke the answer.
        (0..=199 | 600.., _) => S3Error::Transient {
            message: format!(
                "the endpoint answered HTTP {status}, which S3 never sends; the request may have been \
                 carried out"
            ),
            maybe_applied: true,
        },
        // A success status the SDK could not read as S3's answer: not an S3 endpoint.
        (200..=299, "") => S3Error::Other {
            code: "NotS3".into(),
            message: format!(
                "the endpoint answered HTTP {status} with something that is not an S3 response; check that \
                 the endpoint URL points at an S3 API (not a web page or a proxy)"
            ),
        },
        _ => S3Error::Other {
            code: if code.is_empty() {
                status.to_string()
            } else {
                code
            },
            message,
        },
    }
}

/// Keeps the raw body of the (last) ListObjectVersions attempt, whose XML order we need.
#[derive(Debug, Clone, Default)]
struct CaptureBody(Arc<Mutex<Option<Vec<u8>>>>);

impl Intercept for CaptureBody {
    fn name(&self) -> &'static str {
        "CaptureListObjectVersionsBody"
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(bytes) = context.response().body().bytes() {
            *self.0.lock().expect("capture lock") = Some(bytes.to_vec());
        }
        Ok(())
    }
}

fn http_date(text: &Option<String>) -> Option<DateTime> {
    text.as_deref()
        .and_then(|t| DateTime::from_str(t, DateTimeFormat::HttpDate).ok())
}

pub(super) fn tagging_query(tags: &[(String, String)]) -> Option<String> {
    if tags.is_empty() {
        return None;
    }
    let encode = |text: &str| utf8_percent_encode(text, NON_ALPHANUMERIC).to_string();
    Some(
        tags.iter()
            .map(|(key, value)| format!("{}={}", encode(key), encode(value)))
            .collect::<Vec<_>>()
            .join("&"),
    )
}

impl AwsS3 {
    /// ListObjectsV2 of a never-versioned bucket, as a page of null versions.
    async fn list_current(&self, request: ListRequest) -> S3Result<ListPage> {
        let out = self
            .client
            .list_objects_v2()
            .bucket(&request.bucket)
            .prefix(&request.prefix)
            .encoding_type(EncodingType::Url)
            // A page after the first continues from the token (carried as the version marker);
            // the first starts after the caller's key marker.
            .set_start_after(
                request
                    .key_marker
                    .filter(|_| request.version_id_marker.is_none()),
            )
            .set_continuation_token(request.version_id_marker)
            .set_max_keys(request.max_keys)
            .set_delimiter(request.delimiter)
            .send()
            .boxed()
            .await
            .map_err(|e| classify(e, &request.bucket))?;
        let decode = |name: &str| {
            url_decode(name).map_err(|e| S3Error::Transient {
                message: format!("ListObjectsV2: {e}"),
                maybe_applied: false,
            })
        };
        let mut entries = Vec::with_capacity(out.contents().len());
        for object in out.contents() {
            entries.push(Entry {
                key: decode(object.key().unwrap_or_default())?,
                version_id: "null".into(),
                is_latest: true,
                last_modified: object
                    .last_modified()
                    .and_then(|d| d.fmt(DateTimeFormat::DateTime).ok())
                    .unwrap_or_default(),
                kind: EntryKind::Object {
                    size: object.size().unwrap_or(0) as u64,
                    etag: object.e_tag().unwrap_or_default().to_string(),
                    storage_class: object.storage_class().map(|c| c.as_str().to_string()),
                },
            });
        }
        let common_prefixes = out
            .common_prefixes()
            .iter()
            .filter_map(|p| p.prefix())
            .map(decode)
            .collect::<Result<Vec<_>, _>>()?;
        // The last name on the page (key or prefix) with the continuation token.
        let next = match (out.is_truncated(), out.next_continuation_token()) {
            (Some(true), Some(token)) => {
                let key = entries.last().map(|e| e.key.clone());
                let name = key.max(common_prefixes.last().cloned()).unwrap_or_default();
                Some((name, token.to_string()))
            }
            _ => None,
        };
        Ok(ListPage {
            entries,
            common_prefixes,
            next,
        })
    }
}

impl S3Api for AwsS3 {
    fn write_timeout(&self, bytes: u64, multipart: bool) -> Option<std::time::Duration> {
        let bytes = if multipart {
            bytes.min(COMPLETE_TIMEOUT_BYTES)
        } else {
            bytes
        };
        Some(self.copy_timeout(bytes))
    }

    async fn list_versions(&self, request: ListRequest) -> S3Result<ListPage> {
        if request.current_only {
            return self.list_current(request).await;
        }
        let capture = CaptureBody::default();
        self.client
            .list_object_versions()
            .bucket(&request.bucket)
            .prefix(&request.prefix)
            .encoding_type(EncodingType::Url)
            .set_key_marker(request.key_marker)
            .set_version_id_marker(request.version_id_marker)
            .set_max_keys(request.max_keys)
            .set_delimiter(request.delimiter)
            .customize()
            .interceptor(capture.clone())
            .send()
            .boxed()
            .await
            .map_err(|e| classify(e, &request.bucket))?;
        let body = capture
            .0
            .lock()
            .expect("capture lock")
            .take()
            .ok_or_else(|| S3Error::Transient {
                message: "ListObjectVersions answered without a body".into(),
                maybe_applied: false,
            })?;
        let text = String::from_utf8_lossy(&body);
        parse_list_versions(&text).map_err(|e| S3Error::Transient {
            message: e.to_string(),
            maybe_applied: false,
        })
    }

    async fn head_object(
        &self,
        version: &VersionRef,
        part_number: Option<u32>,
    ) -> S3Result<ObjectHead> {
        let (sse_c_algorithm, sse_c_key, sse_c_md5) = customer(&self.customer_key);
        let out = self
            .client
            .head_object()
            .bucket(&version.bucket)
            .key(&version.key)
            .set_version_id(named_version(version))
            .set_part_number(part_number.map(|n| n as i32))
            .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
            .set_sse_customer_algorithm(sse_c_algorithm)
            .set_sse_customer_key(sse_c_key)
            .set_sse_customer_key_md5(sse_c_md5)
            .send()
            .boxed()
            .await
            .map_err(|e| classify(e, &version.bucket))?;
        let any_checksum = first_checksum!(out);
        let checksum_algorithm = any_checksum
            .as_ref()
            .map(|(algorithm, _)| algorithm.clone());
        let checksum = any_checksum.filter(|(_, value)| {
            !value.contains('-')
                && out.checksum_type() != Some(&aws_sdk_s3::types::ChecksumType::Composite)
        });
        let length = out.content_length().unwrap_or(0).max(0) as u64;
        let full_size = out
            .content_range()
            .and_then(|range| range.rsplit('/').next())
            .and_then(|total| total.parse().ok())
            .unwrap_or(length);
        Ok(ObjectHead {
            size: full_size,
            etag: out.e_tag().unwrap_or_default().to_string(),
            parts_count: out.parts_count().map(|n| n as u32),
            part_size: part_number.map(|_| length),
            content_type: out.content_type().map(str::to_string),
            cache_control: out.cache_control().map(str::to_string),
            content_disposition: out.content_disposition().map(str::to_string),
            content_encoding: out.content_encoding().map(str::to_string),
            content_language: out.content_language().map(str::to_string),
            expires: out.expires_string().map(str::to_string),
            metadata: out
                .metadata()
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default(),
            storage_class: out.storage_class().map(|c| c.as_str().to_string()),
            website_redirect: out.website_redirect_location().map(str::to_string),
            server_side_encryption: out.server_side_encryption().map(|s| s.as_str().to_string()),
            sse_kms_key_id: out.ssekms_key_id().map(str::to_string),
            bucket_key_enabled: out.bucket_key_enabled().unwrap_or(false),
            object_lock: LockSettings {
                mode: out.object_lock_mode().map(|m| m.as_str().to_string()),
                retain_until: out
                    .object_lock_retain_until_date()
                    .and_then(|d| d.fmt(DateTimeFormat::DateTime).ok()),
                legal_hold: out
                    .object_lock_legal_hold_status()
                    .map(|s| s.as_str().to_string()),
            },
            checksum,
            sse_customer: out.sse_customer_algorithm().is_some(),
            checksum_algorithm,
        })
    }

    async fn get_tags(&self, version: &VersionRef) -> S3Result<Vec<(String, String)>> {
        let out = self
            .client
            .get_object_tagging()
            .bucket(&version.bucket)
            .key(&version.key)
            .set_version_id(named_version(version))
            .send()
            .boxed()
            .await
            .map_err(|e| classify(e, &version.bucket))?;
        Ok(out
            .tag_set()
            .iter()
            .map(|tag| (tag.key().to_string(), tag.value().to_string()))
            .collect())
    }

    async fn copy_object(&self, request: &CopyRequest) -> S3Result<WrittenVersion> {
        let (sse, kms_key, bucket_key) = copy_encryption(request, self.customer_key.is_some());
        if let Some((direct, target)) = self.direct(&request.bucket).await {
            let mut headers = direct::Headers::default();
            headers.set("x-amz-copy-source", copy_source(&request.source));
            headers.add("x-amz-storage-class", request.storage_class.clone());
            headers.add("x-amz-server-side-encryption", sse);
            headers.add("x-amz-server-side-encryption-aws-kms-key-id", kms_key);
            headers.add(
                "x-amz-server-side-encryption-bucket-key-enabled",
                bucket_key.map(|enabled| enabled.to_string()),
            );
            add_lock_headers(&mut headers, &request.object_lock);
            headers.add(
                "x-amz-website-redirect-location",
                request.website_redirect.clone(),
            );
            add_customer_headers(
                &mut headers,
                &self.customer_key,
                &self.copy_source_customer_key,
            );
            let answer = direct
                .send(
                    &target,
                    direct::Request {
                        method: hyper::Method::PUT,
                        bucket: &request.bucket,
                        key: &request.key,
                        query: String::new(),
                        headers,
                        timeout: self.copy_timeout(request.size),
                    },
                )
                .await?;
            // S3 can answer 200 and then report the copy's failure in the body.
            copy_result(&answer, "CopyObjectResult", &request.bucket)?;
            return Ok(answer.header("x-amz-version-id"));
        }
        let sse = sse.map(|algorithm| ServerSideEncryption::from(algorithm.as_str()));
        let (sse_c_algorithm, sse_c_key, sse_c_md5) = customer(&self.customer_key);
        let (source_algorithm, source_key, source_md5) = customer(&self.copy_source_customer_key);
        let out = self
            .client
            .copy_object()
            .bucket(&request.bucket)
            .key(&request.key)
            .copy_source(copy_source(&request.source))
            .set_storage_class(request.storage_class.as_deref().map(StorageClass::from))
            .set_server_side_encryption(sse)
            .set_ssekms_key_id(kms_key)
            .set_bucket_key_enabled(bucket_key)
            .set_object_lock_mode(lock_mode(&request.object_lock))
            .set_object_lock_retain_until_date(lock_until(&request.object_lock))
            .set_object_lock_legal_hold_status(legal_hold(&request.object_lock))
            .set_website_redirect_location(request.website_redirect.clone())
            .set_sse_customer_algorithm(sse_c_algorithm)
            .set_sse_customer_key(sse_c_key)
            .set_sse_customer_key_md5(sse_c_md5)
            .set_copy_source_sse_customer_algorithm(source_algorithm)
            .set_copy_source_sse_customer_key(source_key)
            .set_copy_source_sse_customer_key_md5(source_md5)
            .customize()
            .config_override(self.copying(request.size))
            .send()
            .boxed()
            .await
            .map_err(|e| classify_write(e, &request.bucket, self.copy_timeout(request.size)))?;
        Ok(out.version_id().map(str::to_string))
    }

    async fn create_multipart(&self, request: &CreateMultipartRequest) -> S3Result<String> {
        let (sse_c_algorithm, sse_c_key, sse_c_md5) = customer(&self.customer_key);
        let head = &request.head;
        let (sse, kms_key) = match (
            &request.settings.sse_kms_key_id,
            &head.server_side_encryption,
        ) {
            // An SSE-C copy asks for no other encryption.
            _ if self.customer_key.is_some() => (None, None),
            (Some(key), _) => (Some(ServerSideEncryption::AwsKms), Some(key.clone())),
            (None, Some(algorithm)) => (
                Some(ServerSideEncryption::from(algorithm.as_str())),
                head.sse_kms_key_id.clone(),
            ),
            (None, None) => (None, None),
        };
        let kms = sse
            .as_ref()
            .is_some_and(|sse| sse.as_str().starts_with("aws:kms"));
        // With the user's key, the Bucket Key is the destination bucket's choice, as on CopyObject.
        let bucket_key =
            (kms && head.bucket_key_enabled && request.settings.sse_kms_key_id.is_none())
                .then_some(true);
        let storage_class = request
            .settings
            .storage_class
            .as_ref()
            .or(head.storage_class.as_ref())
            .map(|c| StorageClass::from(c.as_str()));
        let metadata: HashMap<String, String> = head.metadata.clone().into_iter().collect();
        let lock = if request.settings.object_lock {
            head.object_lock.clone()
        } else {
            LockSettings::default()
        };
        let out = self
            .client
            .create_multipart_upload()
            .bucket(&request.bucket)
            .key(&request.key)
            .set_content_type(head.content_type.clone())
            .set_cache_control(head.cache_control.clone())
            .set_content_disposition(head.content_disposition.clone())
            .set_content_encoding(head.content_encoding.clone())
            .set_content_language(head.content_language.clone())
            .set_expires(http_date(&head.expires))
            .set_metadata((!metadata.is_empty()).then_some(metadata))
            .set_tagging(tagging_query(&request.tags))
            .set_storage_class(storage_class)
            .set_website_redirect_location(head.website_redirect.clone())
            .set_server_side_encryption(sse)
            .set_ssekms_key_id(kms_key)
            .set_bucket_key_enabled(bucket_key)
            .set_object_lock_mode(lock_mode(&lock))
            .set_object_lock_retain_until_date(lock_until(&lock))
            .set_object_lock_legal_hold_status(legal_hold(&lock))
            .set_sse_customer_algorithm(sse_c_algorithm)
            .set_sse_customer_key(sse_c_key)
            .set_sse_customer_key_md5(sse_c_md5)
            // The source's checksum algorithm: the copy gets a (composite) checksum of it.
            .set_checksum_algorithm(
                head.checksum_algorithm
                    .as_deref()
                    .map(aws_sdk_s3::types::ChecksumAlgorithm::from),
            )
            .send()
            .boxed()
            .await
            .map_err(|e| classify(e, &request.bucket))?;
        out.upload_id()
            .map(str::to_string)
            .ok_or_else(|| S3Error::Other {
                code: "MissingUploadId".into(),
                message: "CreateMultipartUpload answered without an upload id".into(),
            })
    }

    async fn upload_part_copy(&self, request: &PartCopyRequest) -> S3Result<CompletedPart> {
        let range = format!("bytes={}-{}", request.first_byte, request.last_byte);
        let size = request.last_byte + 1 - request.first_byte;
        if let Some((direct, target)) = self.direct(&request.bucket).await {
            let mut headers = direct::Headers::default();
            headers.set("x-amz-copy-source", copy_source(&request.source));
            headers.set("x-amz-copy-source-range", range);
            headers.set("x-amz-copy-source-if-match", request.if_match.clone());
            add_customer_headers(
                &mut headers,
                &self.customer_key,
                &self.copy_source_customer_key,
            );
            let answer = direct
                .send(
                    &target,
                    direct::Request {
                        method: hyper::Method::PUT,
                        bucket: &request.bucket,
                        key: &request.key,
                        query: format!(
                            "partNumber={}&uploadId={}",
                            request.part_number,
                            utf8_percent_encode(&request.upload_id, NON_ALPHANUMERIC)
                        ),
                        headers,
                        timeout: self.copy_timeout(size),
                    },
                )
                .await?;
            let fields = copy_result(&answer, "CopyPartResult", &request.bucket)?;
            let etag = direct::field(&fields, "ETag");
            if etag.is_empty() {
                return Err(S3Error::Transient {
                    message: "UploadPartCopy answered without an ETag".into(),
                    maybe_applied: false,
                });
            }
            let checksum = CHECKSUMS.iter().find_map(|algorithm| {
                let value = direct::field(&fields, &format!("Checksum{algorithm}"));
                (!value.is_empty()).then(|| (algorithm.to_string(), value))
            });
            return Ok(CompletedPart {
                part_number: request.part_number,
                etag,
                checksum,
                size,
            });
        }
        let (sse_c_algorithm, sse_c_key, sse_c_md5) = customer(&self.customer_key);
        let (source_algorithm, source_key, source_md5) = customer(&self.copy_source_customer_key);
        let out = self
            .client
            .upload_part_copy()
            .bucket(&request.bucket)
            .key(&request.key)
            .upload_id(&request.upload_id)
            .part_number(request.part_number as i32)
            .copy_source(copy_source(&request.source))
            .copy_source_range(range)
            .copy_source_if_match(&request.if_match)
            .set_sse_customer_algorithm(sse_c_algorithm)
            .set_sse_customer_key(sse_c_key)
            .set_sse_customer_key_md5(sse_c_md5)
            .set_copy_source_sse_customer_algorithm(source_algorithm)
            .set_copy_source_sse_customer_key(source_key)
            .set_copy_source_sse_customer_key_md5(source_md5)
            .customize()
            .config_override(self.copying(size))
            .send()
            .boxed()
            .await
            .map_err(|e| classify_write(e, &request.bucket, self.copy_timeout(size)))?;
        let result = out.copy_part_result();
        let etag = result
            .and_then(|r| r.e_tag())
            .map(str::to_string)
            .ok_or_else(|| S3Error::Transient {
                message: "UploadPartCopy answered without an ETag".into(),
                maybe_applied: false,
            })?;
        let checksum = result.and_then(|r| first_checksum!(r));
        Ok(CompletedPart {
            part_number: request.part_number,
            etag,
            checksum,
            size,
        })
    }

    async fn complete_multipart(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> S3Result<WrittenVersion> {
        let (sse_c_algorithm, sse_c_key, sse_c_md5) = customer(&self.customer_key);
        let bytes = complete_bytes(parts);
        let parts = parts
            .iter()
            .map(|p| {
                let part = SdkCompletedPart::builder()
                    .part_number(p.part_number as i32)
                    .e_tag(&p.etag);
                let value = |algorithm: &str| {
                    p.checksum
                        .as_ref()
                        .filter(|(a, _)| a == algorithm)
                        .map(|(_, value)| value.clone())
                };
                part.set_checksum_crc32(value("CRC32"))
                    .set_checksum_crc32_c(value("CRC32C"))
                    .set_checksum_crc64_nvme(value("CRC64NVME"))
                    .set_checksum_sha1(value("SHA1"))
                    .set_checksum_sha256(value("SHA256"))
                    .build()
            })
            .collect();
        let out = self
            .client
            .complete_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .set_sse_customer_algorithm(sse_c_algorithm)
            .set_sse_customer_key(sse_c_key)
            .set_sse_customer_key_md5(sse_c_md5)
            .customize()
            .config_override(self.copying(bytes))
            .send()
            .boxed()
            .await
            .map_err(|e| classify_write(e, bucket, self.copy_timeout(bytes)))?;
        Ok(out.version_id().map(str::to_string))
    }

    async fn abort_multipart(&self, bucket: &str, key: &str, upload_id: &str) -> S3Result<()> {
        self.client
            .abort_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .boxed()
            .await
            .map_err(|e| classify(e, bucket))?;
        Ok(())
    }

    async fn delete_object(&self, bucket: &str, key: &str) -> S3Result<WrittenVersion> {
        if let Some((direct, target)) = self.direct(bucket).await {
            let answer = direct
                .send(
                    &target,
                    direct::Request {
                        method: hyper::Method::DELETE,
                        bucket,
                        key,
                        query: String::new(),
                        headers: direct::Headers::default(),
                        timeout: self.request_timeout,
                    },
                )
                .await?;
            return Ok(answer.header("x-amz-version-id"));
        }
        let out = self
            .client
            .delete_object()
            .bucket(bucket)
            .key(key)
            .send()
            .boxed()
            .await
            .map_err(|e| classify_write(e, bucket, self.request_timeout))?;
        Ok(out.version_id().map(str::to_string))
    }

    async fn list_uploads(&self, bucket: &str, key: &str) -> S3Result<Vec<String>> {
        let mut ids = Vec::new();
        let (mut key_marker, mut upload_marker) = (None, None);
        loop {
            let out = self
                .client
                .list_multipart_uploads()
                .bucket(bucket)
                .prefix(key)
                .set_key_marker(key_marker)
                .set_upload_id_marker(upload_marker)
                .send()
                .boxed()
                .await
                .map_err(|e| classify(e, bucket))?;
            ids.extend(
                out.uploads()
                    .iter()
                    .filter(|upload| upload.key() == Some(key))
                    .filter_map(|upload| upload.upload_id().map(str::to_string)),
            );
            if out.is_truncated() != Some(true) {
                return Ok(ids);
            }
            key_marker = out.next_key_marker().map(str::to_string);
            upload_marker = out.next_upload_id_marker().map(str::to_string);
            if key_marker.is_none() {
                return Ok(ids);
            }
        }
    }

    async fn head_bucket(&self, bucket: &str) -> S3Result<()> {
        match self
            .client
            .head_bucket()
            .bucket(bucket)
            .send()
            .boxed()
            .await
        {
            Ok(_) => Ok(()),
            // HeadBucket has no body: a 404 means the bucket is missing.
            Err(e) => match classify(e, bucket) {
                S3Error::NotFound { .. } => Err(S3Error::NoSuchBucket {
                    bucket: bucket.to_string(),
                }),
                other => Err(other),
            },
        }
    }

    async fn content_digest(&self, version: &VersionRef) -> S3Result<ContentDigest> {
        use sha2::Digest;
        let (sse_c_algorithm, sse_c_key, sse_c_md5) = customer(&self.customer_key);
        let out = self
            .client
            .get_object()
            .bucket(&version.bucket)
            .key(&version.key)
            .set_version_id(named_version(version))
            .set_sse_customer_algorithm(sse_c_algorithm)
            .set_sse_customer_key(sse_c_key)
            .set_sse_customer_key_md5(sse_c_md5)
            .send()
            .boxed()
            .await
            .map_err(|e| classify(e, &version.bucket))?;
        let what = format!(
            "s3://{}/{} version {}",
            version.bucket, version.key, version.version_id
        );
        let (mut body, mut hash, mut size) = (out.body, sha2::Sha256::new(), 0);
        while let Some(chunk) = next_chunk(&mut body, &what).await? {
            size += chunk.len() as u64;
            hash.update(&chunk);
        }
        Ok(ContentDigest {
            size,
            sha256: hash.finalize().into(),
        })
    }

    async fn download(&self, bucket: &str, key: &str, to: &std::path::Path) -> S3Result<u64> {
        use tokio::io::AsyncWriteExt;
        let out = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .boxed()
            .await
            .map_err(|e| classify(e, bucket))?;
        let local = |e: std::io::Error| S3Error::Other {
            code: "LocalFile".into(),
            message: format!("cannot write {}: {e}", to.display()),
        };
        let mut file = tokio::fs::File::create(to).await.map_err(local)?;
        let what = format!("s3://{bucket}/{key}");
        let (mut body, mut size) = (out.body, 0);
        while let Some(chunk) = next_chunk(&mut body, &what).await? {
            size += chunk.len() as u64;
            file.write_all(&chunk).await.map_err(local)?;
        }
        file.flush().await.map_err(local)?;
        Ok(size)
    }

    async fn bucket_versioning(&self, bucket: &str) -> S3Result<Versioning> {
        let out = self
            .client
            .get_bucket_versioning()
            .bucket(bucket)
            .send()
            .boxed()
            .await
            .map_err(|e| classify(e, bucket))?;
        Ok(match out.status() {
            Some(BucketVersioningStatus::Enabled) => Versioning::Enabled,
            Some(BucketVersioningStatus::Suspended) => Versioning::Suspended,
            _ => Versioning::Never,
        })
    }

    async fn default_encryption(&self, bucket: &str) -> S3Result<Option<DefaultEncryption>> {
        match self
            .client
            .get_bucket_encryption()
            .bucket(bucket)
            .send()
            .boxed()
            .await
            .map_err(|e| classify(e, bucket))
        {
            Ok(out) => {
                let rule = out
                    .server_side_encryption_configuration()
                    .and_then(|config| config.rules().first());
                Ok(rule.and_then(|rule| {
                    let default = rule.apply_server_side_encryption_by_default()?;
                    Some(DefaultEncryption {
                        algorithm: default.sse_algorithm().as_str().to_string(),
                        kms_key_id: default.kms_master_key_id().map(str::to_string),
                        bucket_key_enabled: rule.bucket_key_enabled().unwrap_or(false),
                    })
                }))
            }
            // S3 answers 404 ServerSideEncryptionConfigurationNotFoundError for a bucket without.
            Err(S3Error::NotFound { .. }) => Ok(None),
            Err(S3Error::Other { code, .. })
                if code == "ServerSideEncryptionConfigurationNotFoundError" =>
            {
                Ok(None)
            }
            Err(error) => Err(error),
        }
    }

    async fn serves_website(&self, bucket: &str) -> S3Result<bool> {
        match self
            .client
            .get_bucket_website()
            .bucket(bucket)
            .send()
            .boxed()
            .await
            .map_err(|e| classify(e, bucket))
        {
            Ok(_) => Ok(true),
            // S3 answers 404 NoSuchWebsiteConfiguration for a bucket without.
            Err(S3Error::NotFound { .. }) => Ok(false),
            Err(S3Error::Other { code, .. }) if code == "NoSuchWebsiteConfiguration" => Ok(false),
            Err(error) => Err(error),
        }
    }

    async fn object_lock(&self, bucket: &str) -> S3Result<Option<ObjectLock>> {
        let out = match self
            .client
            .get_object_lock_configuration()
            .bucket(bucket)
            .send()
            .boxed()
            .await
            .map_err(|e| classify(e, bucket))
        {
            Ok(out) => out,
            // S3 answers 404 ObjectLockConfigurationNotFoundError for a bucket without Object Lock.
            Err(S3Error::NotFound { .. }) => return Ok(None),
            Err(S3Error::Other { code, .. }) if code == "ObjectLockConfigurationNotFoundError" => {
                return Ok(None);
            }
            Err(error) => return Err(error),
        };
        let Some(config) = out.object_lock_configuration() else {
            return Ok(None);
        };
        if config.object_lock_enabled() != Some(&ObjectLockEnabled::Enabled) {
            return Ok(None);
        }
        let default_retention =
            config
                .rule()
                .and_then(|rule| rule.default_retention())
                .map(|retention| {
                    let mode = retention.mode().map(|m| m.as_str()).unwrap_or("?");
                    match (retention.days(), retention.years()) {
                        (Some(days), _) => format!("{mode} for {days} day(s)"),
                        (_, Some(years)) => format!("{mode} for {years} year(s)"),
                        _ => mode.to_string(),
                    }
                });
        Ok(Some(ObjectLock { default_retention }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_source_encodes_awkward_keys_and_keeps_slashes() {
        let version = VersionRef {
            bucket: "src".into(),
            key: "dir/a b+c%d#e?f é".into(),
            version_id: "null".into(),
        };
        assert_eq!(
            copy_source(&version),
            "src/dir/a%20b%2Bc%25d%23e%3Ff%20%C3%A9?versionId=null"
        );
        // A never-versioned source's current version is copied without naming it.
        let current = VersionRef {
            version_id: String::new(),
            ..version
        };
        assert_eq!(
            copy_source(&current),
            "src/dir/a%20b%2Bc%25d%23e%3Ff%20%C3%A9"
        );
    }

    #[test]
    fn classifies_service_errors() {
        let c = |status, code: &str| classify_code(status, code.into(), String::new(), "b");
        assert!(matches!(
            c(404, "NoSuchBucket"),
            S3Error::NoSuchBucket { .. }
        ));
        assert!(matches!(c(404, ""), S3Error::NotFound { .. }));
        assert!(matches!(
            c(403, "SignatureDoesNotMatch"),
            S3Error::BadCredentials { .. }
        ));
        assert!(matches!(
            c(400, "ExpiredToken"),
            S3Error::BadCredentials { .. }
        ));
        assert!(matches!(
            c(403, "RequestTimeTooSkewed"),
            S3Error::BadCredentials { .. }
        ));
        assert!(matches!(c(403, ""), S3Error::AccessDenied { .. }));
        // A bucket without Object Lock: `object_lock` reads this as None.
        assert!(matches!(
            c(404, "ObjectLockConfigurationNotFoundError"),
            S3Error::NotFound { .. }
        ));
        assert!(matches!(c(503, "SlowDown"), S3Error::SlowDown { .. }));
        assert!(c(500, "InternalError").maybe_applied());
        // A 200 whose body is an error (CopyObject) arrives with the error's code.
        assert!(c(200, "InternalError").maybe_applied());
        assert!(!c(400, "RequestTimeout").maybe_applied());
        assert!(c(400, "RequestTimeout").is_retryable());
        assert!(matches!(
            c(403, "InvalidObjectState"),
            S3Error::InvalidObjectState { .. }
        ));
        assert!(matches!(c(400, "Weird"), S3Error::Other { .. }));
    }
}

#[cfg(test)]
mod sizes {
    use super::*;
    use crate::s3::limit::{Limited, Limits};
    use crate::s3::retry::{RetryPolicy, Retrying};

    /// A copy's task holds its request's future while it waits: thousands are in flight at once,
    /// so the futures of the hot calls through the whole client stack must stay small (the SDK's,
    /// tens of kilobytes, are boxed; unboxed, a copy's task took 32 KiB).
    #[tokio::test]
    async fn the_hot_calls_futures_are_small() {
        let aws = AwsS3::connect(&Connection {
            endpoint_url: Some("http://127.0.0.1:9".into()),
            static_credentials: Some(("a".into(), "b".into())),
            ..Connection::default()
        })
        .await;
        let client = Retrying::new(
            Limited::new(
                aws,
                Limits::new(64, None, Arc::new(crate::progress::Progress::default())),
            ),
            RetryPolicy::default(),
            Arc::new(crate::progress::Progress::default()),
        );
        let version = VersionRef {
            bucket: "b".into(),
            key: "k".into(),
            version_id: String::new(),
        };
        let copy = CopyRequest {
            source: version.clone(),
            size: 1,
            bucket: "d".into(),
            key: "k".into(),
            storage_class: None,
            server_side_encryption: None,
            website_redirect: None,
            sse_kms_key_id: None,
            bucket_key_enabled: None,
            object_lock: LockSettings::default(),
        };
        let sizes = [
            (
                "copy_object",
                std::mem::size_of_val(&client.copy_object(&copy)),
            ),
            (
                "delete_object",
                std::mem::size_of_val(&client.delete_object("d", "k")),
            ),
            (
                "head_object",
                std::mem::size_of_val(&client.head_object(&version, None)),
            ),
            (
                "list_versions",
                std::mem::size_of_val(&client.list_versions(ListRequest::default())),
            ),
        ];
        eprintln!("{sizes:?}");
        for (call, size) in sizes {
            assert!(size <= 4096, "{call}: {size} bytes");
        }
    }
}
