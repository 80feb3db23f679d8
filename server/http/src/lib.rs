//! `datakube-http`: the HTTPS front door.
//!
//! TLS (rustls; a self-signed certificate generated on first start, or a configured one),
//! HTTP/1.1 and HTTP/2 (hyper), request-body limits, `/health` and `/version`, and graceful
//! shutdown. Everything protocol-specific (XMLA, portal) plugs in through [`Handler`].
//!
//! A handler answers with a [`Body`]: either a complete one ([`full`], sent with
//! `Content-Length`) or a stream fed from another thread through a bounded channel
//! ([`body_channel`], sent with `Transfer-Encoding: chunked` on HTTP/1.1 and as DATA frames
//! on HTTP/2), so a large answer never has to be in memory as a whole.

pub mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// Largest request body accepted (XMLA requests are small; Excel's largest are a few KiB).
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// Longest time a client may take to send its request headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest time a TLS handshake may take.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);
/// How long shutdown waits for requests in flight.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// A request after its body has been read (bounded by [`MAX_BODY_BYTES`]).
#[derive(Debug)]
pub struct HttpRequest {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
    pub peer: SocketAddr,
}

/// Why a response body ended early (the streaming side went away before finishing).
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;
/// A response body: complete ([`full`]) or streamed ([`body_channel`]).
pub type Body = http_body_util::combinators::BoxBody<Bytes, BodyError>;
pub type HttpResponse = Response<Body>;
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A complete body (sent with `Content-Length`).
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed()
}

/// A streamed body and the sender that feeds it, connected by a channel holding at most
/// `capacity` chunks: the sender waits while the client has not taken them (backpressure),
/// so memory stays bounded by `capacity` × the chunk size, however large the answer.
///
/// The body ends normally only after [`BodySender::finish`]. If the sender is dropped
/// without it (the producer failed or panicked half-way), the body ends with an error, so
/// hyper aborts the response (HTTP/1.1: no terminating chunk; HTTP/2: RST_STREAM) and the
/// client sees a broken transfer rather than a truncated document that looks complete.
pub fn body_channel(capacity: usize) -> (BodySender, Body) {
    let (tx, rx) = tokio::sync::mpsc::channel(capacity.max(1));
    let finished = Arc::new(AtomicBool::new(false));
    let body = ChannelBody {
        rx,
        finished: finished.clone(),
    };
    (BodySender { tx, finished }, body.boxed())
}

/// The receiving side of a streamed body is gone: the client disconnected (or the
/// connection was shut down), so nobody will read further chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the client is gone: the response body is no longer read")]
pub struct ClientGone;

/// Feeds a body made by [`body_channel`].
#[derive(Debug)]
pub struct BodySender {
    tx: tokio::sync::mpsc::Sender<Bytes>,
    finished: Arc<AtomicBool>,
}

impl BodySender {
    /// Send a chunk from a thread outside the async runtime (e.g. `spawn_blocking`),
    /// waiting while the channel is full. Fails once the body has been dropped.
    pub fn send_blocking(&self, chunk: Bytes) -> Result<(), ClientGone> {
        self.tx.blocking_send(chunk).map_err(|_| ClientGone)
    }

    /// Send a chunk from async code, waiting while the channel is full.
    pub async fn send(&self, chunk: Bytes) -> Result<(), ClientGone> {
        self.tx.send(chunk).await.map_err(|_| ClientGone)
    }

    /// The body is complete: it ends normally once the chunks already sent are read.
    pub fn finish(self) {
        self.finished.store(true, Ordering::Release);
    }
}

struct ChannelBody {
    rx: tokio::sync::mpsc::Receiver<Bytes>,
    finished: Arc<AtomicBool>,
}

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.rx.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(chunk)) => Poll::Ready(Some(Ok(Frame::data(chunk)))),
            // The channel closes when the sender is dropped; `finish` stored its flag before.
            Poll::Ready(None) if self.finished.load(Ordering::Acquire) => Poll::Ready(None),
            Poll::Ready(None) => Poll::Ready(Some(Err("the response was abandoned before its end".into()))),
        }
    }

    fn size_hint(&self) -> SizeHint {
        // Unknown length: HTTP/1.1 uses chunked transfer encoding.
        SizeHint::default()
    }
}

/// What the server answers for paths other than `/health` and `/version`.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, req: HttpRequest) -> BoxFuture<HttpResponse>;
}

/// Facts `/health` and `/version` report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ServerInfo {
    pub name: &'static str,
    pub version: &'static str,
    pub duckdb: String,
    pub catalog: String,
    pub cubes: Vec<String>,
}

pub struct Server {
    pub listen: SocketAddr,
    pub tls: Arc<rustls::ServerConfig>,
    pub info: ServerInfo,
    pub handler: Arc<dyn Handler>,
}

/// A plain-text response.
pub fn text(status: StatusCode, body: impl Into<String>) -> HttpResponse {
    let mut r = Response::new(full(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        "text/plain; charset=utf-8".parse().unwrap(),
    );
    r
}

/// A JSON response.
pub fn json(status: StatusCode, value: &impl serde::Serialize) -> HttpResponse {
    let body = serde_json::to_vec_pretty(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(hyper::header::CONTENT_TYPE, "application/json".parse().unwrap());
    r
}

/// Dispatches requests by path to handlers, next to a fallback (the XMLA endpoint): `/login`,
/// `/callback`, `/tokens…` (auth), later `/saml/…` and the portal. A route is an exact path or
/// a prefix ending in `/` (which also matches the path without that slash); the longest
/// matching route wins.
pub struct Router {
    routes: Vec<(String, Arc<dyn Handler>)>,
    fallback: Arc<dyn Handler>,
}

impl Router {
    pub fn new(fallback: Arc<dyn Handler>) -> Router {
        Router {
            routes: Vec::new(),
            fallback,
        }
    }

    /// Route `path` (exact, or a prefix when it ends in `/`) to `handler`.
    pub fn route(mut self, path: &str, handler: Arc<dyn Handler>) -> Router {
        self.routes.push((path.to_string(), handler));
        self.routes.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        self
    }

    /// The handler for `path`.
    pub fn handler_for(&self, path: &str) -> &Arc<dyn Handler> {
        self.routes
            .iter()
            .find(|(p, _)| match p.strip_suffix('/') {
                Some(prefix) if !prefix.is_empty() => path == prefix || path.starts_with(p.as_str()),
                _ => path == p,
            })
            .map(|(_, h)| h)
            .unwrap_or(&self.fallback)
    }
}

impl Handler for Router {
    fn handle(&self, req: HttpRequest) -> BoxFuture<HttpResponse> {
        self.handler_for(&req.path).handle(req)
    }
}

/// Answers only `/health` and `/version`; everything else is 404.
pub struct NotFound;
impl Handler for NotFound {
    fn handle(&self, req: HttpRequest) -> BoxFuture<HttpResponse> {
        Box::pin(async move { text(StatusCode::NOT_FOUND, format!("no such path: {}\n", req.path)) })
    }
}

async fn route(
    req: Request<Incoming>,
    peer: SocketAddr,
    info: Arc<ServerInfo>,
    handler: Arc<dyn Handler>,
) -> Result<HttpResponse, std::convert::Infallible> {
    let started = std::time::Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let resp = match (&method, path.as_str()) {
        (&Method::GET, "/health") => json(
            StatusCode::OK,
            &serde_json::json!({"status": "ok", "duckdb": info.duckdb, "cubes": info.cubes.len()}),
        ),
        (&Method::GET, "/version") => json(StatusCode::OK, &*info),
        _ => {
            let (parts, body) = req.into_parts();
            if let Some(len) = parts.headers.get(hyper::header::CONTENT_LENGTH) {
                let too_big = len
                    .to_str()
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok())
                    .is_some_and(|n| n > MAX_BODY_BYTES as u64);
                if too_big {
                    return Ok(too_large());
                }
            }
            match Limited::new(body, MAX_BODY_BYTES).collect().await {
                Ok(collected) => {
                    let r = HttpRequest {
                        method: parts.method,
                        path: parts.uri.path().to_string(),
                        query: parts.uri.query().map(str::to_string),
                        headers: parts.headers,
                        body: collected.to_bytes(),
                        peer,
                    };
                    handler.handle(r).await
                }
                Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => too_large(),
                Err(e) => text(
                    StatusCode::BAD_REQUEST,
                    format!("could not read the request body: {e}\n"),
                ),
            }
        }
    };
    tracing::info!(
        target: "datakube::http",
        %method, path = %path, status = resp.status().as_u16(), ms = started.elapsed().as_millis() as u64,
        "request"
    );
    Ok(resp)
}

fn too_large() -> HttpResponse {
    text(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("request body larger than the limit of {MAX_BODY_BYTES} bytes\n"),
    )
}

impl Server {
    /// Bind the listening socket (so the caller learns the real port before serving).
    pub async fn bind(&self) -> anyhow::Result<TcpListener> {
        TcpListener::bind(self.listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", self.listen))
    }

    /// Serve on `listener` until `shutdown` completes, then wait up to [`SHUTDOWN_GRACE`]
    /// for requests in flight.
    pub async fn run(self, listener: TcpListener, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let acceptor = TlsAcceptor::from(self.tls.clone());
        let info = Arc::new(self.info);
        let handler = self.handler;
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT);
        let builder = Arc::new(builder);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let (tcp, peer) = match accepted {
                        Ok(x) => x,
                        Err(e) => { tracing::warn!("accept failed: {e}"); continue; }
                    };
                    let acceptor = acceptor.clone();
                    let info = info.clone();
                    let handler = handler.clone();
                    let builder = builder.clone();
                    let watcher = graceful.watcher();
                    tokio::spawn(async move {
                        let tls = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => { tracing::debug!(%peer, "TLS handshake failed: {e}"); return; }
                            Err(_) => { tracing::debug!(%peer, "TLS handshake timed out"); return; }
                        };
                        let svc = hyper::service::service_fn(move |req| route(req, peer, info.clone(), handler.clone()));
                        let conn = builder.serve_connection(TokioIo::new(tls), svc);
                        if let Err(e) = watcher.watch(conn.into_owned()).await {
                            tracing::debug!(%peer, "connection ended: {e}");
                        }
                    });
                }
                _ = &mut shutdown => {
                    tracing::info!("shutting down: no new connections; waiting for requests in flight");
                    break;
                }
            }
        }
        drop(listener);
        tokio::select! {
            _ = graceful.shutdown() => tracing::info!("all connections closed"),
            _ = tokio::time::sleep(SHUTDOWN_GRACE) => tracing::warn!("shutdown grace period over; closing remaining connections"),
        }
        Ok(())
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().build().unwrap()
    }

    #[test]
    fn a_finished_stream_arrives_whole_and_in_order() {
        let (tx, body) = body_channel(2);
        // The producer runs on its own thread and blocks while the channel is full.
        let producer = std::thread::spawn(move || {
            for i in 0..50 {
                tx.send_blocking(Bytes::from(format!("<c{i}/>"))).unwrap();
            }
            tx.finish();
        });
        let got = runtime().block_on(body.collect()).unwrap().to_bytes();
        producer.join().unwrap();
        let expected: String = (0..50).map(|i| format!("<c{i}/>")).collect();
        assert_eq!(got, expected.as_bytes());
    }

    #[test]
    fn a_stream_abandoned_without_finish_ends_in_an_error() {
        let (tx, body) = body_channel(4);
        tx.send_blocking(Bytes::from_static(b"<root>")).unwrap();
        drop(tx);
        let err = runtime().block_on(body.collect()).unwrap_err();
        assert!(err.to_string().contains("abandoned"), "{err}");
    }

    #[test]
    fn sending_after_the_body_is_dropped_fails() {
        let (tx, body) = body_channel(1);
        drop(body);
        assert_eq!(tx.send_blocking(Bytes::from_static(b"x")), Err(ClientGone));
    }

    struct Named(&'static str);
    impl Handler for Named {
        fn handle(&self, _req: HttpRequest) -> BoxFuture<HttpResponse> {
            let n = self.0;
            Box::pin(async move { text(StatusCode::OK, n) })
        }
    }

    #[test]
    fn the_router_picks_exact_paths_then_prefixes_then_the_fallback() {
        let r = Router::new(Arc::new(Named("xmla")))
            .route("/login", Arc::new(Named("login")))
            .route("/tokens/", Arc::new(Named("tokens")))
            .route("/saml/", Arc::new(Named("saml")));
        let name = |p: &str| {
            let req = HttpRequest {
                method: Method::GET,
                path: p.into(),
                query: None,
                headers: Default::default(),
                body: Bytes::new(),
                peer: "127.0.0.1:1".parse().unwrap(),
            };
            let resp = runtime().block_on(r.handle(req));
            String::from_utf8(
                runtime()
                    .block_on(resp.into_body().collect())
                    .unwrap()
                    .to_bytes()
                    .to_vec(),
            )
            .unwrap()
        };
        assert_eq!(name("/login"), "login");
        assert_eq!(name("/login/x"), "xmla");
        assert_eq!(name("/tokens"), "tokens");
        assert_eq!(name("/tokens/abc/revoke"), "tokens");
        assert_eq!(name("/tokensx"), "xmla");
        assert_eq!(name("/saml/acs"), "saml");
        assert_eq!(name("/xmla"), "xmla");
        assert_eq!(name("/"), "xmla");
    }

    #[test]
    fn full_bodies_have_an_exact_length_and_streams_none() {
        use hyper::body::Body as _;
        assert_eq!(full("abc").size_hint().exact(), Some(3));
        let (_tx, body) = body_channel(1);
        assert_eq!(body.size_hint().exact(), None);
    }
}
