//! Serving HTTP connections with limits a slow or hostile client cannot outlast: request
//! headers must arrive within [`HttpLimits::header_timeout`] (also how long an idle
//! keep-alive connection is kept), a body within [`HttpLimits::body_timeout`] (408), an
//! answer that the client stops reading for [`HttpLimits::send_timeout`] closes the
//! connection, and at most [`HttpLimits::max_connections`] are open at once; one more gets
//! a `503` problem and is closed, so the process never runs out of file descriptors. Stops
//! gracefully: open connections finish their requests.

use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// Time and connection limits of the HTTP server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpLimits {
    /// Time a client has to send a request's headers, and to start the next request on a
    /// kept-alive connection.
    pub header_timeout: Duration,
    /// Time a request's body has to arrive in full (the handler's own work is not limited).
    pub body_timeout: Duration,
    /// Time a write to the client may make no progress (a client that stops reading).
    pub send_timeout: Duration,
    /// Connections open at once; further ones get a `503` and are closed.
    pub max_connections: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            header_timeout: Duration::from_secs(15),
            body_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(30),
            max_connections: 1024,
        }
    }
}

/// File descriptors kept for the database, the data directory and connector calls.
const RESERVED_FDS: u64 = 128;

impl HttpLimits {
    /// The connection cap this process can honour: raises the soft limit on open files to
    /// the hard one, and keeps the cap below it with room for everything else.
    pub fn effective_max_connections(&self) -> usize {
        let soft = match rlimit::increase_nofile_limit(u64::MAX) {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the open-file limit");
                return self.max_connections;
            }
        };
        let room = soft.saturating_sub(RESERVED_FDS).max(16);
        let cap = self
            .max_connections
            .min(usize::try_from(room).unwrap_or(usize::MAX));
        if cap < self.max_connections {
            tracing::warn!(
                open_files = soft,
                max_connections = cap,
                "the open-file limit lowers the connection cap"
            );
        }
        cap
    }
}

/// Serves `app` on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.effective_max_connections()));
    // HTTP/1.1 only: its header timer runs from the first read of a connection, so one that
    // sends nothing is closed too (serving HTTP/2 in the clear as well would first wait,
    // with no timer, for enough bytes to tell the two apart).
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let builder = Arc::new(builder);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(e) => {
                // Out of descriptors or the like: wait a moment instead of spinning.
                tracing::warn!(error = %e, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            metrics::counter!("trellis_http_connections_refused_total").increment(1);
            tokio::spawn(refuse(stream));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let io = TokioIo::new(SendTimeout::new(stream, limits.send_timeout));
        let conn = builder.serve_connection(io, service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    // Open connections finish what they are doing, for at most a request's time.
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(limits.body_timeout) => {
            tracing::warn!("connections still open at shutdown were closed");
        }
    }
    Ok(())
}

/// A connection whose writes may not stall: a write that makes no progress for `limit`
/// fails, and hyper closes the connection.
struct SendTimeout<S> {
    inner: S,
    limit: Duration,
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> SendTimeout<S> {
    fn new(inner: S, limit: Duration) -> Self {
        SendTimeout {
            inner,
            limit,
            stalled: None,
        }
    }

    /// `poll` made progress, or the write has been stalled for less than the limit.
    fn guard<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match poll {
            Poll::Ready(r) => {
                self.stalled = None;
                Poll::Ready(r)
            }
            Poll::Pending => {
                let limit = self.limit;
                let timer = self
                    .stalled
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        metrics::counter!("trellis_http_stalled_sends_total").increment(1);
                        Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "the client stopped reading the answer",
                        )))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for SendTimeout<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for SendTimeout<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.guard(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.guard(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.guard(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Answers a connection beyond the cap with a `503` problem and closes it.
async fn refuse(mut stream: TcpStream) {
    let body = serde_json::json!({
        "type": "about:blank",
        "title": "service unavailable",
        "status": 503,
        "detail": "the server has too many open connections; retry shortly",
    })
    .to_string();
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\n\
         content-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(answer.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}
