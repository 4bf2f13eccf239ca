//! Which requests go through a forward proxy, and how they get there: an `https://` endpoint through
//! an HTTP CONNECT tunnel (TLS end to end, the proxy sees only the host name), an `http://` endpoint by
//! plain forwarding (the request in absolute form, as the proxy expects). Both clients — the direct
//! sender's and the SDK's — route by the same `Proxies`, so a request never takes another path
//! because of the client that sends it.
//!
//! The rules are curl's, as the aws CLI, rclone and s5cmd read them: `HTTPS_PROXY` for https
//! endpoints, `HTTP_PROXY` for http ones, `ALL_PROXY` for both, each in either case (upper first);
//! `NO_PROXY` lists host names (a name also matches its subdomains), IP addresses, CIDR ranges, or
//! `*`. `--proxy URL` sends both kinds through URL (NO_PROXY still applies); `--no-proxy` ignores
//! them all. Matching is hyper-util's `Matcher`, a maintained implementation of exactly these rules.
//!
//! Credentials in a proxy URL (`http://user:password@host:port`) go in `Proxy-Authorization` and are
//! never printed: every message names the proxy by `shown`, its URL without them.

use std::io;

use bytes::BytesMut;
use hyper::header::HeaderValue;
use hyper_util::client::proxy::matcher::Matcher;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::answer::Decoder;
use super::net::{CONNECT_TIMEOUT, Origin, bracketed, connect_tcp};

/// A proxy said no (403 to a CONNECT, 407 for credentials): sending again will not change it. Carried
/// inside the I/O error of a failed connection, found again by `refusal`.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(super) struct ProxyRefused(pub String);

/// The proxy's refusal somewhere in `error`'s chain (an I/O error's inner error included).
pub(super) fn refusal<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a ProxyRefused> {
    let mut next = Some(error);
    while let Some(current) = next {
        if let Some(refused) = current.downcast_ref::<ProxyRefused>() {
            return Some(refused);
        }
        let inner = current
            .downcast_ref::<io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<ProxyRefused>());
        if inner.is_some() {
            return inner;
        }
        next = current.source();
    }
    None
}

/// Where a side's proxy settings come from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ProxyChoice {
    /// HTTPS_PROXY, HTTP_PROXY, ALL_PROXY and NO_PROXY, in either case (the default).
    #[default]
    Environment,
    /// `--proxy URL`: every endpoint not in NO_PROXY through this one.
    Url(String),
    /// `--no-proxy`: every endpoint directly.
    Off,
}

/// The proxy rules of one side.
#[derive(Debug)]
pub(super) struct Proxies {
    matcher: Matcher,
}

/// A proxy a request goes through.
#[derive(Debug, Clone)]
pub(super) struct Proxy {
    /// Where the proxy listens (always plain HTTP).
    pub origin: Origin,
    /// `Basic ...` from the URL's user and password, if it had them.
    pub authorization: Option<HeaderValue>,
    /// The proxy's URL without credentials, for messages.
    pub shown: String,
}

impl Proxies {
    /// The rules `choice` gives, with the process's environment; None when no request can go
    /// through a proxy. A proxy URL that cannot be used is an error naming where it came from (the
    /// variable or the option) and why.
    pub fn new(choice: &ProxyChoice) -> Result<Option<Proxies>, String> {
        Proxies::with(choice, |name| std::env::var(name).ok())
    }

    /// `new` with the environment read through `variable`.
    fn with(
        choice: &ProxyChoice,
        variable: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Proxies>, String> {
        let first = |names: [&'static str; 2]| {
            names
                .into_iter()
                .find_map(|name| Some((name, variable(name).filter(|v| !v.is_empty())?)))
        };
        let no_proxy = first(["NO_PROXY", "no_proxy"]).map(|(_, value)| value);
        // `*` bypasses every host, IP addresses included (hyper-util's matcher applies it to names
        // only).
        if no_proxy
            .as_deref()
            .is_some_and(|rules| rules.split(',').any(|rule| rule.trim() == "*"))
        {
            return Ok(None);
        }
        let builder = match choice {
            ProxyChoice::Off => return Ok(None),
            ProxyChoice::Url(url) => {
                check_url("--proxy", url)?;
                Matcher::builder().all(url.as_str())
            }
            ProxyChoice::Environment => {
                let https = first(["HTTPS_PROXY", "https_proxy"]);
                let http = first(["HTTP_PROXY", "http_proxy"]);
                let all = first(["ALL_PROXY", "all_proxy"]);
                if https.is_none() && http.is_none() && all.is_none() {
                    return Ok(None);
                }
                let mut builder = Matcher::builder();
                for (set, found) in [(0, https), (1, http), (2, all)] {
                    let Some((name, url)) = found else { continue };
                    check_url(name, &url)?;
                    builder = match set {
                        0 => builder.https(url),
                        1 => builder.http(url),
                        _ => builder.all(url),
                    };
                }
                builder
            }
        };
        let matcher = match no_proxy {
            Some(rules) => builder.no(rules),
            None => builder,
        }
        .build();
        Ok(Some(Proxies { matcher }))
    }

    /// The proxy a request to `uri` goes through, or None for a direct connection.
    pub fn route(&self, uri: &hyper::Uri) -> Option<Proxy> {
        let intercept = self.matcher.intercept(uri)?;
        let origin = Origin::of(intercept.uri())?;
        Some(Proxy {
            shown: format!("http://{}:{}", bracketed(&origin.host), origin.port),
            origin,
            authorization: intercept.basic_auth().cloned(),
        })
    }
}

/// Checks a proxy URL before anything runs: an http:// URL with a host (or a bare host:port, read as
/// http:// as curl does). `source` names where it came from.
pub fn check_url(source: &str, url: &str) -> Result<(), String> {
    let shown = without_credentials(url);
    let uri: hyper::Uri = url.parse().map_err(|e| {
        format!("{source}={shown} is not a proxy URL ({e}): write it as http://HOST:PORT")
    })?;
    match uri.scheme_str() {
        None | Some("http") => {}
        Some(scheme) => {
            return Err(format!(
                "{source}={shown}: {scheme}:// proxies are not supported; give the proxy's http:// URL \
                 (https endpoints still go through it encrypted end to end, by CONNECT)"
            ));
        }
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!(
            "{source}={shown} names no host: write it as http://HOST:PORT"
        ));
    }
    // An `@` past the authority: a user or password with `/`, `?` or `#` in it, which would be read
    // as the host and a path.
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if rest.contains('@') && !authority.contains('@') {
        return Err(format!(
            "{source}={shown}: its user or password holds a character that must be percent-encoded \
             (/ as %2F, ? as %3F, # as %23, @ as %40)"
        ));
    }
    let host_port = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    if let Some((_, port)) = host_port
        .rsplit_once(':')
        .filter(|(_, port)| !port.contains(']'))
        && !port.is_empty()
        && port.parse::<u16>().ok().is_none_or(|port| port == 0)
    {
        return Err(format!(
            "{source}={shown}: the port {port:?} is not a number from 1 to 65535"
        ));
    }
    Ok(())
}

/// Checks a side's proxy settings before anything runs.
pub fn check_proxy(choice: &ProxyChoice) -> Result<(), String> {
    Proxies::new(choice).map(|_| ())
}

/// `url` with any `user:password@` taken out: everything up to its last `@` (so a password with an
/// unencoded `/` is never shown either).
pub fn without_credentials(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url),
    };
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    match scheme {
        Some(scheme) => format!("{scheme}://{rest}"),
        None => rest.to_string(),
    }
}

/// A TCP connection for requests to `origin`, by the route `proxy` gives: directly, through the
/// proxy's CONNECT tunnel (https: TLS goes on top), or to the proxy itself (http: forwarded). Both
/// clients connect by it. Nothing of a request has been sent when it fails.
pub(super) async fn connect(origin: &Origin, proxy: Option<&Proxy>) -> io::Result<TcpStream> {
    match proxy {
        None => connect_tcp(&origin.host, origin.port).await,
        Some(proxy) if origin.https => proxy.tunnel(origin).await,
        Some(proxy) => connect_tcp(&proxy.origin.host, proxy.origin.port)
            .await
            .map_err(|error| {
                io::Error::new(
                    error.kind(),
                    format!("cannot connect to the proxy {}: {error}", proxy.shown),
                )
            }),
    }
}

impl Proxy {
    /// The proxy's 407 to a request it forwards (an http endpoint's).
    pub fn wants_credentials(&self) -> ProxyRefused {
        ProxyRefused(format!(
            "the proxy {} refused the request (HTTP 407): it wants credentials; give them in its URL, \
             http://USER:PASSWORD@HOST:PORT",
            self.shown
        ))
    }

    /// A connection to `origin` through this proxy's CONNECT tunnel: the proxy connects to the origin
    /// and then carries bytes both ways (TLS goes on top, end to end). Nothing of the request has been
    /// sent when this fails.
    pub async fn tunnel(&self, origin: &Origin) -> io::Result<TcpStream> {
        let failed = |error: io::Error| {
            io::Error::new(
                error.kind(),
                format!("cannot connect through the proxy {}: {error}", self.shown),
            )
        };
        let mut tcp = connect_tcp(&self.origin.host, self.origin.port)
            .await
            .map_err(failed)?;
        let target = format!("{}:{}", bracketed(&origin.host), origin.port);
        let mut request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
        if let Some(authorization) = &self.authorization {
            request.push_str("Proxy-Authorization: ");
            request.push_str(authorization.to_str().unwrap_or_default());
            request.push_str("\r\n");
        }
        request.push_str("\r\n");
        let handshake = async {
            tcp.write_all(request.as_bytes()).await?;
            // A CONNECT's answer has no body: read as a HEAD's.
            let mut decoder = Decoder::new(true);
            let mut buffer = BytesMut::with_capacity(1024);
            loop {
                let closed = tcp.read_buf(&mut buffer).await? == 0;
                match decoder.decode(&mut buffer, closed) {
                    Ok(Some(decoded)) => {
                        let status = decoded.answer.status;
                        // A refusal comes with a page (squid's, tinyproxy's): its status is what
                        // counts. A tunnel carries nothing before the client's TLS handshake.
                        if (200..300).contains(&status) && !buffer.is_empty() {
                            return Err(io::Error::new(
                                io::ErrorKind::InvalidData,
                                "the proxy sent bytes after its answer to CONNECT",
                            ));
                        }
                        return Ok(status);
                    }
                    Ok(None) => {}
                    Err(malformed) => {
                        return Err(io::Error::new(io::ErrorKind::InvalidData, malformed));
                    }
                }
            }
        };
        let status = tokio::time::timeout(CONNECT_TIMEOUT, handshake)
            .await
            .unwrap_or_else(|_| {
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "no answer to CONNECT within {} s",
                        CONNECT_TIMEOUT.as_secs()
                    ),
                ))
            })
            .map_err(failed)?;
        if !(200..300).contains(&status) {
            let fix = if status == 407 {
                ": the proxy wants credentials; give them in its URL, http://USER:PASSWORD@HOST:PORT"
            } else {
                ""
            };
            return Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                ProxyRefused(format!(
                    "the proxy {} refused to connect to {target} (HTTP {status}){fix}",
                    self.shown
                )),
            ));
        }
        Ok(tcp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_found_inside_io_errors_and_their_wrappers() {
        let refused = io::Error::new(io::ErrorKind::ConnectionRefused, ProxyRefused("no".into()));
        assert_eq!(refusal(&refused).unwrap().0, "no");
        #[derive(Debug, thiserror::Error)]
        #[error("wrapped")]
        struct Wrapper(#[source] io::Error);
        assert_eq!(refusal(&Wrapper(refused)).unwrap().0, "no");
        assert!(refusal(&io::Error::other("plain")).is_none());
    }

    #[test]
    fn proxy_urls_are_checked_and_their_credentials_never_shown() {
        assert!(check_url("--proxy", "http://127.0.0.1:3128").is_ok());
        assert!(check_url("HTTPS_PROXY", "proxy.corp:8080").is_ok());
        let error = check_url("HTTPS_PROXY", "socks5://user:secret@proxy:1080").unwrap_err();
        assert!(
            error.contains("socks5:// proxies are not supported"),
            "{error}"
        );
        assert!(!error.contains("secret"), "{error}");
        let error = check_url("--proxy", "http://user:secret@").unwrap_err();
        assert!(!error.contains("secret"), "{error}");
        assert!(error.starts_with("--proxy="), "{error}");
        assert_eq!(
            without_credentials("http://u:p@proxy:3128/x"),
            "http://proxy:3128/x"
        );
        assert_eq!(without_credentials("u:p@proxy:3128"), "proxy:3128");
        assert_eq!(
            without_credentials("http://user:1234/secret@proxy:3128"),
            "http://proxy:3128"
        );
        for bad in [
            "http://user:1234/secret@127.0.0.1:3128",
            "http://user:pa/ss@127.0.0.1:3128",
            "http://us/er:hunter2@127.0.0.1:3128",
        ] {
            let error = check_url("--proxy", bad).unwrap_err();
            assert!(error.contains("percent-encoded"), "{bad}: {error}");
            assert!(
                !error.contains("secret") && !error.contains("hunter2") && !error.contains("pa/ss")
            );
        }
        let error = check_url("--proxy", "http://u:hunter2@127.0.0.1:99999").unwrap_err();
        assert!(
            error.contains("port") && !error.contains("hunter2"),
            "{error}"
        );
        assert_eq!(
            without_credentials("http://proxy:3128"),
            "http://proxy:3128"
        );
    }

    #[test]
    fn a_url_proxy_routes_both_schemes_and_off_routes_none() {
        let proxies = Proxies::new(&ProxyChoice::Url("http://a:b@127.0.0.1:3128".into()))
            .unwrap()
            .unwrap();
        for endpoint in ["http://s3.example:9000/b", "https://s3.example/b"] {
            let proxy = proxies.route(&endpoint.parse().unwrap()).unwrap();
            assert_eq!(proxy.shown, "http://127.0.0.1:3128");
            assert_eq!(proxy.authorization.unwrap(), "Basic YTpi");
        }
        assert!(Proxies::new(&ProxyChoice::Off).unwrap().is_none());
    }

    #[test]
    fn the_environment_is_read_as_curl_reads_it() {
        let environment = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(key, _)| *key == name)
                    .map(|(_, value)| value.to_string())
            }
        };
        let route = |pairs: &'static [(&'static str, &'static str)], uri: &str| {
            Proxies::with(&ProxyChoice::Environment, environment(pairs))
                .unwrap()
                .and_then(|proxies| proxies.route(&uri.parse().unwrap()))
                .map(|proxy| proxy.shown)
        };
        // Nothing set, or only NO_PROXY: no proxy at all.
        assert!(route(&[], "https://s3.amazonaws.com").is_none());
        assert!(route(&[("NO_PROXY", "*")], "https://s3.amazonaws.com").is_none());
        // `*` covers addresses too, with HTTP_PROXY set.
        let everything: &[(&str, &str)] = &[("HTTP_PROXY", "http://p:3128"), ("NO_PROXY", " *")];
        assert!(route(everything, "http://127.0.0.1:9000").is_none());
        assert!(route(everything, "http://169.254.169.254").is_none());
        // Each scheme its own variable; upper case first; ALL_PROXY for the rest.
        let both: &[(&str, &str)] = &[
            ("https_proxy", "http://lower:1"),
            ("HTTPS_PROXY", "http://upper:2"),
            ("ALL_PROXY", "http://all:3"),
        ];
        assert_eq!(
            route(both, "https://s3.amazonaws.com").unwrap(),
            "http://upper:2"
        );
        assert_eq!(
            route(both, "http://127.0.0.1:9000").unwrap(),
            "http://all:3"
        );
        // NO_PROXY by name (and subdomains), address and range; `--proxy` honours it too.
        let bypass: &[(&str, &str)] = &[
            ("HTTP_PROXY", "http://p:3128"),
            ("no_proxy", "internal.corp, 10.0.0.0/8 ,127.0.0.1"),
        ];
        assert!(route(bypass, "http://s3.internal.corp:9000").is_none());
        assert!(route(bypass, "http://10.1.2.3:9000").is_none());
        assert!(route(bypass, "http://127.0.0.1:9000").is_none());
        assert_eq!(
            route(bypass, "http://localhost:9000").unwrap(),
            "http://p:3128"
        );
        let explicit = Proxies::with(&ProxyChoice::Url("http://q:1".into()), environment(bypass))
            .unwrap()
            .unwrap();
        assert!(
            explicit
                .route(&"http://10.9.9.9".parse().unwrap())
                .is_none()
        );
        // `--no-proxy` ignores them all; a variable that cannot be used is named.
        assert!(
            Proxies::with(&ProxyChoice::Off, environment(bypass))
                .unwrap()
                .is_none()
        );
        let error = Proxies::with(
            &ProxyChoice::Environment,
            environment(&[("https_proxy", "https://u:pw@proxy:443")]),
        )
        .unwrap_err();
        assert!(
            error.starts_with("https_proxy=https://proxy:443: https://"),
            "{error}"
        );
    }
}
