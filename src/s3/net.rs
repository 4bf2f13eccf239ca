//! Where connections go and how one is made: the origin of an endpoint (scheme, host, port) and a
//! TCP connection within the connect timeout, for both clients and the proxy tunnel.

use std::io;
use std::time::Duration;

use tokio::net::TcpStream;

/// As the SDK's clients.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where connections go: scheme, host and port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Origin {
    pub https: bool,
    pub host: String,
    pub port: u16,
}

impl Origin {
    /// The origin of a base URL (`https://s3.us-east-1.amazonaws.com`, `http://127.0.0.1:8333`).
    pub fn of(uri: &hyper::Uri) -> Option<Origin> {
        let https = match uri.scheme_str()? {
            "https" => true,
            "http" => false,
            _ => return None,
        };
        let host = uri.host()?.trim_start_matches('[').trim_end_matches(']');
        Some(Origin {
            https,
            host: host.to_string(),
            port: uri.port_u16().unwrap_or(if https { 443 } else { 80 }),
        })
    }
}

/// A host as it goes in a URL or a CONNECT: an IPv6 address in brackets.
pub(super) fn bracketed(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// A TCP connection to `host:port`, without Nagle's delay, within the connect timeout.
pub(super) async fn connect_tcp(host: &str, port: u16) -> io::Result<TcpStream> {
    let connecting = async {
        let tcp = TcpStream::connect((host, port)).await?;
        tcp.set_nodelay(true)?;
        Ok(tcp)
    };
    tokio::time::timeout(CONNECT_TIMEOUT, connecting)
        .await
        .unwrap_or_else(|_| {
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "no connection to {}:{port} within {} s",
                    bracketed(host),
                    CONNECT_TIMEOUT.as_secs()
                ),
            ))
        })
}
