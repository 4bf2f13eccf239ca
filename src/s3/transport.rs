//! One transport for each side: the TLS configuration (the system's trust store and `--ca-bundle`, or
//! `--no-verify-ssl`'s verifier that accepts any certificate) and the proxy rules, built once and shared
//! by both clients — the direct sender's (`wire`) and the SDK's (the HTTP client below, hyper-util's
//! pooled client on a connector of ours). So a certificate is trusted, and a request is routed, the
//! same way whichever client sends it.
//!
//! The SDK's client: every request the SDK sends (listings, HEADs, multipart, configuration, the
//! credentials chain's own requests) goes through `Routed`, which connects directly or through the
//! proxy `Proxies` names — a CONNECT tunnel for https endpoints, plain forwarding (absolute-form
//! requests, `Proxy-Authorization` added here) for http ones.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::aws::Connection as Side;
use super::net::Origin;
use super::proxy::Proxies;

/// Idle connections of the SDK's client are let go after this, as the direct sender's (S3 closes
/// them after about 20 s).
const POOL_IDLE: Duration = Duration::from_secs(15);

/// A side's TLS configuration and proxy rules.
#[derive(Clone)]
pub(super) struct Transport {
    pub tls: Arc<rustls::ClientConfig>,
    pub proxies: Option<Arc<Proxies>>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("proxies", &self.proxies)
            .finish_non_exhaustive()
    }
}

static NATIVE_ROOTS: std::sync::LazyLock<Vec<rustls::pki_types::CertificateDer<'static>>> =
    std::sync::LazyLock::new(|| rustls_native_certs::load_native_certs().certs);

impl Transport {
    pub fn of(side: &Side) -> Result<Transport, String> {
        let tls = if side.no_verify_ssl {
            super::insecure::unverified_tls()
        } else {
            verified_tls(side.ca_bundle.as_deref())?
        };
        Ok(Transport {
            tls: Arc::new(tls),
            proxies: Proxies::new(&side.proxy)?.map(Arc::new),
        })
    }

    /// The SDK's HTTP client on this transport.
    pub fn sdk_client(&self) -> SharedHttpClient {
        let routed = Routed {
            proxies: self.proxies.clone(),
        };
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config((*self.tls).clone())
            .https_or_http()
            .enable_http1()
            .wrap_connector(routed);
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .pool_idle_timeout(POOL_IDLE)
                .pool_timer(hyper_util::rt::TokioTimer::new())
                .build(https);
        SharedHttpClient::new(SdkClient {
            client,
            proxies: self.proxies.clone(),
        })
    }
}

/// The system's trusted certificates and the CA bundle's.
fn verified_tls(ca_bundle: Option<&std::path::Path>) -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(NATIVE_ROOTS.iter().cloned());
    if let Some(path) = ca_bundle {
        let pem = std::fs::read(path)
            .map_err(|e| format!("cannot read the CA bundle {}: {e}", path.display()))?;
        for certificate in CertificateDer::pem_slice_iter(&pem) {
            let bad = |e: &dyn std::fmt::Display| {
                format!(
                    "the CA bundle {} holds a bad certificate: {e}",
                    path.display()
                )
            };
            let certificate = certificate.map_err(|e| bad(&e))?;
            roots.add(certificate).map_err(|e| bad(&e))?;
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

type Client = hyper_util::client::legacy::Client<hyper_rustls::HttpsConnector<Routed>, SdkBody>;

/// Connects to an endpoint directly or through its proxy (TLS, for https, goes on top).
#[derive(Clone)]
struct Routed {
    proxies: Option<Arc<Proxies>>,
}

impl tower_service::Service<hyper::Uri> for Routed {
    type Response = RoutedIo;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RoutedIo>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: hyper::Uri) -> Self::Future {
        let proxies = self.proxies.clone();
        Box::pin(async move {
            let origin = Origin::of(&uri).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("not an http(s) URL: {uri}"),
                )
            })?;
            let proxy = proxies.as_deref().and_then(|proxies| proxies.route(&uri));
            let tcp = super::proxy::connect(&origin, proxy.as_ref()).await?;
            Ok(RoutedIo {
                io: TokioIo::new(tcp),
                // To a proxy that forwards: hyper-util then writes requests in absolute form.
                proxied: proxy.is_some() && !origin.https,
            })
        })
    }
}

/// A connection, and whether it goes to a forwarding proxy (its requests are then written in
/// absolute form by hyper-util's client).
struct RoutedIo {
    io: TokioIo<TcpStream>,
    proxied: bool,
}

impl Connection for RoutedIo {
    fn connected(&self) -> Connected {
        Connected::new().proxy(self.proxied)
    }
}

impl hyper::rt::Read for RoutedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for RoutedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// The SDK's HTTP client: hyper-util's pool on `Routed`.
#[derive(Clone)]
struct SdkClient {
    client: Client,
    proxies: Option<Arc<Proxies>>,
}

impl std::fmt::Debug for SdkClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SdkClient").finish_non_exhaustive()
    }
}

impl HttpClient for SdkClient {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

impl HttpConnector for SdkClient {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let mut request = match request.try_into_http1x() {
            Ok(request) => request,
            Err(error) => {
                return HttpConnectorFuture::ready(Err(ConnectorError::user(error.into())));
            }
        };
        // A plain-http request forwarded by a proxy carries the proxy's credentials; an https one
        // gave them in its tunnel's CONNECT.
        let forwarded = match &self.proxies {
            Some(proxies) if request.uri().scheme_str() == Some("http") => {
                proxies.route(request.uri())
            }
            _ => None,
        };
        if let Some(authorization) = forwarded.as_ref().and_then(|p| p.authorization.clone()) {
            request
                .headers_mut()
                .insert(hyper::header::PROXY_AUTHORIZATION, authorization);
        }
        let sent = self.client.request(request);
        HttpConnectorFuture::new(async move {
            let response = sent
                .await
                .map_err(|error| ConnectorError::io(error.into()))?;
            if let Some(proxy) = forwarded
                && response.status() == hyper::StatusCode::PROXY_AUTHENTICATION_REQUIRED
            {
                return Err(ConnectorError::other(
                    Box::new(proxy.wants_credentials()),
                    None,
                ));
            }
            HttpResponse::try_from(response.map(SdkBody::from_body_1_x))
                .map_err(|error| ConnectorError::other(error.into(), None))
        })
    }
}
