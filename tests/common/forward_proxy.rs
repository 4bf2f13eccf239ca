//! A forward HTTP proxy on 127.0.0.1, as a corporate egress proxy works: CONNECT tunnels (for https
//! endpoints) and absolute-form requests it forwards (for http ones). It counts what it carries, can
//! ask for credentials (407) or refuse every tunnel (403), and resolves host names of its own: a route
//! sends `host:port` to a port on 127.0.0.1, so an endpoint can name a place only the proxy can reach.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

#[derive(Default)]
pub struct Counts {
    /// Requests forwarded in absolute form.
    pub forwarded: AtomicU64,
    /// CONNECT tunnels opened.
    pub tunnels: AtomicU64,
    /// Requests and tunnels refused (403, or 407 for missing credentials).
    pub refused: AtomicU64,
    /// The `host:port` of every request or tunnel, in arrival order.
    pub targets: Mutex<Vec<String>>,
}

#[derive(Clone, Default)]
pub struct Settings {
    /// `host:port` -> a port on 127.0.0.1 (other targets are connected to as named).
    pub routes: HashMap<String, u16>,
    /// `Proxy-Authorization` the proxy asks for, e.g. `Basic dXNlcjpzZWNyZXQ=`; 407 without it.
    pub authorization: Option<String>,
    /// Every request and tunnel answered 403.
    pub refuse: bool,
}

pub struct ForwardProxy {
    pub url: String,
    pub counts: Arc<Counts>,
}

impl ForwardProxy {
    pub fn start(settings: Settings) -> ForwardProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let counts = Arc::new(Counts::default());
        let shared = Arc::clone(&counts);
        let settings = Arc::new(settings);
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (counts, settings) = (Arc::clone(&shared), Arc::clone(&settings));
                std::thread::spawn(move || serve(client, &settings, &counts));
            }
        });
        ForwardProxy { url, counts }
    }
}

/// Reads a head (up to the empty line); None at the end of the connection.
fn read_head(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    Some(head)
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.split("\r\n").skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

/// An answer of the proxy's own; a refusal comes with a page, as squid's and tinyproxy's do.
fn answer(client: &mut TcpStream, status: &str, extra: &str) {
    let page = if status.starts_with('2') {
        String::new()
    } else {
        format!(
            "<html><body><h1>{status}</h1>{}</body></html>",
            "proxy says no. ".repeat(100)
        )
    };
    let _ = client.write_all(
        format!(
            "HTTP/1.1 {status}\r\n{extra}Content-Type: text/html\r\nContent-Length: {}\r\n\r\n{page}",
            page.len()
        )
        .as_bytes(),
    );
}

fn upstream(settings: &Settings, target: &str) -> Option<TcpStream> {
    match settings.routes.get(target) {
        Some(port) => TcpStream::connect(("127.0.0.1", *port)).ok(),
        None => TcpStream::connect(target).ok(),
    }
}

fn serve(mut client: TcpStream, settings: &Settings, counts: &Counts) {
    loop {
        let Some(head) = read_head(&mut client) else {
            return;
        };
        let head = String::from_utf8_lossy(&head).into_owned();
        let line = head.split("\r\n").next().unwrap_or("").to_string();
        let mut parts = line.split(' ');
        let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let authority = if method == "CONNECT" {
            target.to_string()
        } else {
            let rest = target.strip_prefix("http://").unwrap_or("");
            rest.split('/').next().unwrap_or("").to_string()
        };
        counts.targets.lock().unwrap().push(authority.clone());
        if settings.refuse {
            counts.refused.fetch_add(1, Relaxed);
            answer(&mut client, "403 Forbidden", "Connection: close\r\n");
            return;
        }
        if let Some(expected) = &settings.authorization
            && header(&head, "proxy-authorization") != Some(expected.as_str())
        {
            counts.refused.fetch_add(1, Relaxed);
            answer(
                &mut client,
                "407 Proxy Authentication Required",
                "Proxy-Authenticate: Basic realm=\"test\"\r\nConnection: close\r\n",
            );
            return;
        }
        if method == "CONNECT" {
            let Some(mut server) = upstream(settings, &authority) else {
                answer(&mut client, "502 Bad Gateway", "Connection: close\r\n");
                return;
            };
            counts.tunnels.fetch_add(1, Relaxed);
            answer(&mut client, "200 Connection established", "");
            let (mut from_client, mut to_server) =
                (client.try_clone().unwrap(), server.try_clone().unwrap());
            let forward = std::thread::spawn(move || {
                let _ = std::io::copy(&mut from_client, &mut to_server);
                let _ = to_server.shutdown(Shutdown::Write);
            });
            let _ = std::io::copy(&mut server, &mut client);
            let _ = client.shutdown(Shutdown::Write);
            let _ = forward.join();
            return;
        }
        if !target.starts_with("http://") {
            // Origin-form to a proxy: a client that does not know it talks to one.
            answer(&mut client, "400 Bad Request", "Connection: close\r\n");
            return;
        }
        counts.forwarded.fetch_add(1, Relaxed);
        // The body, by Content-Length (every request the tool sends has one or none).
        let length: usize = header(&head, "content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        if client.read_exact(&mut body).is_err() {
            return;
        }
        let path = &target["http://".len() + authority.len()..];
        let path = if path.is_empty() { "/" } else { path };
        let mut forwarded = format!("{method} {path} HTTP/1.1\r\n");
        for line in head.split("\r\n").skip(1).filter(|l| !l.is_empty()) {
            let name = line
                .split(':')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            if !matches!(
                name.as_str(),
                "proxy-authorization" | "proxy-connection" | "connection"
            ) {
                forwarded.push_str(line);
                forwarded.push_str("\r\n");
            }
        }
        forwarded.push_str("Connection: close\r\n\r\n");
        let Some(mut server) = upstream(settings, &authority) else {
            answer(&mut client, "502 Bad Gateway", "Connection: close\r\n");
            return;
        };
        let mut request = forwarded.into_bytes();
        request.extend_from_slice(&body);
        if server.write_all(&request).is_err() {
            return;
        }
        let mut response = Vec::new();
        let _ = server.read_to_end(&mut response);
        // The server closes because the proxy asked it to; the client's connection stays open when
        // the answer is framed by its length or chunks.
        let split = response
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(response.len(), |p| p + 4);
        let (response_head, response_body) = response.split_at(split);
        let response_head = String::from_utf8_lossy(response_head);
        let framed = header(&response_head, "content-length").is_some()
            || header(&response_head, "transfer-encoding").is_some();
        let kept: String = response_head
            .split("\r\n")
            .filter(|line| !line.to_ascii_lowercase().starts_with("connection:"))
            .filter(|line| !line.is_empty())
            .map(|line| format!("{line}\r\n"))
            .collect();
        let closing = if framed { "" } else { "Connection: close\r\n" };
        let mut out = format!("{kept}{closing}\r\n").into_bytes();
        out.extend_from_slice(response_body);
        if client.write_all(&out).is_err() || !framed {
            return;
        }
    }
}
