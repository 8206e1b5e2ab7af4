//! Transport limits for a protected tonic server ([`ServerLimits`]): streams, time, connection
//! lifetime and sizes bounded before any token is looked at, and the listener that cuts a connection
//! at the end of its lifetime.
//!
//! The auth layer refuses a call without a valid token, but an anonymous caller still gets the
//! transport: tonic's `Server::builder()` advertises no stream limit (it overrides hyper's default),
//! sets no request timeout, no keepalive and no connection lifetime, and each generated service
//! accepts 4 MiB messages. Public methods (health, reflection, a public RPC) make that reachable
//! without any credential.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use std::sync::Arc;

use futures_util::{Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;
use tonic::transport::Server;
use tonic::transport::server::{Connected, TcpConnectInfo, TcpIncoming};

/// Default largest request message a service accepts, bytes (64 KiB; tonic's default is 4 MiB).
///
/// tonic sets this per generated service, not on the [`Server`]: pass
/// [`ServerLimits::max_decoding_message_size`] (this value by default) to each service's
/// `max_decoding_message_size`, as in the example of [`ServerLimits`]. A method that takes larger
/// messages needs its service raised explicitly, which is the point: every 4 MiB an anonymous caller
/// may send is 4 MiB of memory per open stream.
pub const DEFAULT_MAX_DECODING_MESSAGE_SIZE: usize = 64 * 1024;

/// Limits for a `tonic::transport::Server` that faces callers it does not trust yet.
///
/// Each field is documented with its default and why; override any of them with struct update
/// syntax (`ServerLimits { request_timeout: Some(Duration::from_secs(5)), ..ServerLimits::default() }`).
///
/// Use all three parts:
/// - [`ServerLimits::server`] (or [`ServerLimits::apply`] on a builder you already have, e.g. one with
///   `tls_config`) for the HTTP/2, timeout and concurrency settings;
/// - [`ServerLimits::max_decoding_message_size`] on every service you add;
/// - [`ServerLimits::bind`] (or [`ServerLimits::incoming`] for a listener you bound yourself) with
///   `serve_with_incoming[_shutdown]`: it applies the TCP options and cuts a connection still open
///   [`max_connection_age_grace`](Self::max_connection_age_grace) after its maximum age. With plain
///   `.serve(addr)` everything else still applies, but a connection holding a never-ending stream
///   (`grpc.health.v1.Health/Watch` is public and never ends) outlives its maximum age.
///
/// ```no_run
/// # use auth_proto::demo::greeter_service_server::{GreeterService, GreeterServiceServer};
/// # async fn run(greeter: impl GreeterService, auth: auth_interceptor::AuthLayer)
/// #     -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use auth_interceptor::ServerLimits;
///
/// let limits = ServerLimits {
///     request_timeout: Some(Duration::from_secs(10)), // override what you need
///     ..ServerLimits::default()
/// };
/// limits
///     .server()
///     .layer(auth)
///     .add_service(
///         GreeterServiceServer::new(greeter)
///             .max_decoding_message_size(limits.max_decoding_message_size),
///     )
///     .serve_with_incoming(limits.bind("127.0.0.1:50052".parse()?)?)
///     .await?;
/// # Ok(()) }
/// ```
///
/// Two bounds tonic does not offer are enforced by the listener of [`ServerLimits::bind`] /
/// [`ServerLimits::incoming`]: a cap on open connections (at the cap, new connections wait in the
/// kernel's accept queue, and a warning is logged), and a handshake timeout (a connection that sends
/// nothing, not even the HTTP/2 preface, is closed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerLimits {
    /// HTTP/2 `SETTINGS_MAX_CONCURRENT_STREAMS`: streams one connection may have open at once; more
    /// are refused (`RST_STREAM REFUSED_STREAM`). Default 100, the lowest value RFC 9113 recommends
    /// and a common edge setting. tonic otherwise advertises no limit, so one connection can hold
    /// thousands of half-open streams.
    pub max_concurrent_streams: u32,
    /// Handlers of one connection running at once; further calls wait their turn (within
    /// `max_concurrent_streams`). Default `Some(64)`: one connection (a single tonic `Channel`
    /// multiplexes all of a client's calls on one) cannot occupy more than 64 handlers. The permit is
    /// held until a call's response headers are sent, so streaming responses do not count once
    /// started.
    pub concurrency_limit_per_connection: Option<usize>,
    /// Upper bound of a call until its response headers: for a unary call, receiving the request,
    /// the handler and the answer. A caller's shorter `grpc-timeout` wins. On expiry the call ends
    /// with `CANCELLED`. Default `Some(30 s)`. Without it a caller can keep a unary call open forever
    /// by never finishing its request.
    pub request_timeout: Option<Duration>,
    /// Interval of HTTP/2 PINGs the server sends on every connection. Default `Some(30 s)`: with
    /// `http2_keepalive_timeout`, a peer that vanished (no FIN, no RST) is detected within 40 s
    /// instead of holding its streams until TCP gives up.
    pub http2_keepalive_interval: Option<Duration>,
    /// How long to wait for a PING's acknowledgement before closing the connection. Default 10 s
    /// (tonic's is 20 s). Only used with `http2_keepalive_interval`.
    pub http2_keepalive_timeout: Duration,
    /// Age at which a connection is asked to go away (HTTP/2 `GOAWAY`): calls in flight finish, new
    /// ones go to a new connection (tonic clients reconnect by themselves). Default `Some(5 min)`:
    /// bounds how long an idle connection stays open and lets clients rebalance across replicas.
    pub max_connection_age: Option<Duration>,
    /// How long a connection may stay open after `max_connection_age` for its calls to finish; then
    /// it is closed. Default `Some(30 s)`, the default `request_timeout`, so no unary call admitted
    /// before the `GOAWAY` is cut short. Enforced by the listener of [`ServerLimits::bind`] /
    /// [`ServerLimits::incoming`], not by tonic: tonic 0.14's own `max_connection_age_grace`, when
    /// set, replaces the `GOAWAY` at `max_connection_age` by an abrupt close at age + grace, which
    /// would fail every call in flight; these limits never set it.
    pub max_connection_age_grace: Option<Duration>,
    /// HTTP/2 `SETTINGS_MAX_HEADER_LIST_SIZE`, bytes: larger request metadata is refused by HTTP/2
    /// before any service sees it. Default 16 KiB: room for a maximal access token (8 KiB, the
    /// verifier's limit) and ordinary metadata. The auth server uses the same.
    pub http2_max_header_list_size: u32,
    /// Idle time before TCP keepalive probes on accepted sockets. Default `Some(60 s)`: detects dead
    /// peers also where HTTP/2 PINGs cannot (before the HTTP/2 handshake).
    pub tcp_keepalive: Option<Duration>,
    /// `TCP_NODELAY` on accepted sockets. Default `true` (as tonic's): gRPC messages are small and
    /// latency-bound.
    pub tcp_nodelay: bool,
    /// Connections open at once. At the cap the listener stops accepting (new connections wait in
    /// the kernel's backlog) and logs a warning at most every 10 s. Default `Some(1024)`: without a
    /// cap, idle sockets exhaust the process's file descriptors (often limited to 1024) and new
    /// clients time out with nothing logged. Keep it below the descriptor limit.
    pub max_connections: Option<usize>,
    /// How long an accepted connection may take to send its first bytes (the HTTP/2 preface) before
    /// it is closed. Default `Some(10 s)`: a socket that sends nothing holds a descriptor and a
    /// connection slot for free.
    pub handshake_timeout: Option<Duration>,
    /// Largest request message, bytes, for each service's `max_decoding_message_size` (tonic sets it
    /// per service; the server builder cannot). Larger messages get `OUT_OF_RANGE` (tonic 0.14's status
    /// for it) before the handler runs. Default
    /// [`DEFAULT_MAX_DECODING_MESSAGE_SIZE`] (64 KiB).
    pub max_decoding_message_size: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            max_concurrent_streams: 100,
            concurrency_limit_per_connection: Some(64),
            request_timeout: Some(Duration::from_secs(30)),
            http2_keepalive_interval: Some(Duration::from_secs(30)),
            http2_keepalive_timeout: Duration::from_secs(10),
            max_connection_age: Some(Duration::from_secs(300)),
            max_connection_age_grace: Some(Duration::from_secs(30)),
            http2_max_header_list_size: 16 * 1024,
            tcp_keepalive: Some(Duration::from_secs(60)),
            tcp_nodelay: true,
            max_connections: Some(1024),
            handshake_timeout: Some(Duration::from_secs(10)),
            max_decoding_message_size: DEFAULT_MAX_DECODING_MESSAGE_SIZE,
        }
    }
}

impl ServerLimits {
    /// A new `Server::builder()` with these limits.
    pub fn server(&self) -> Server {
        self.apply(Server::builder())
    }

    /// Applies these limits to `server` (a builder that already has e.g. `tls_config` or layers).
    ///
    /// A field that is `None` leaves the builder's own setting as it was (tonic cannot unset a
    /// timeout or concurrency limit once set). The grace period and the TCP options of accepted
    /// sockets take effect only with the incoming stream of [`ServerLimits::bind`] or
    /// [`ServerLimits::incoming`] (or, for the TCP options, with `.serve(addr)`).
    pub fn apply<L>(&self, server: Server<L>) -> Server<L> {
        let mut server = server
            .max_concurrent_streams(self.max_concurrent_streams)
            .http2_keepalive_interval(self.http2_keepalive_interval)
            .http2_keepalive_timeout(Some(self.http2_keepalive_timeout))
            .http2_max_header_list_size(self.http2_max_header_list_size)
            .tcp_keepalive(self.tcp_keepalive)
            .tcp_nodelay(self.tcp_nodelay);
        if let Some(limit) = self.concurrency_limit_per_connection {
            server = server.concurrency_limit_per_connection(limit);
        }
        if let Some(timeout) = self.request_timeout {
            server = server.timeout(timeout);
        }
        if let Some(age) = self.max_connection_age {
            server = server.max_connection_age(age);
        }
        server
    }

    /// Binds `addr` and returns its connections for `serve_with_incoming[_shutdown]`, with the TCP
    /// options applied and each connection closed once it is `max_connection_age` +
    /// `max_connection_age_grace` old.
    pub fn bind(
        &self,
        addr: SocketAddr,
    ) -> io::Result<impl Stream<Item = io::Result<LimitedConnection<TcpStream>>> + Send + 'static>
    {
        Ok(self.limit(TcpIncoming::bind(addr)?))
    }

    /// [`ServerLimits::bind`] for a listener you bound yourself (e.g. on port 0, to learn the port).
    pub fn incoming(
        &self,
        listener: TcpListener,
    ) -> impl Stream<Item = io::Result<LimitedConnection<TcpStream>>> + Send + 'static {
        self.limit(TcpIncoming::from(listener))
    }

    fn limit(
        &self,
        incoming: TcpIncoming,
    ) -> impl Stream<Item = io::Result<LimitedConnection<TcpStream>>> + Send + 'static {
        let lifetime = self.max_connection_age.zip(self.max_connection_age_grace);
        let handshake = self.handshake_timeout;
        let slots = self
            .max_connections
            .map(|n| (Arc::new(Semaphore::new(n.max(1))), n));
        let incoming = incoming
            .with_nodelay(Some(self.tcp_nodelay))
            .with_keepalive(self.tcp_keepalive);
        let state = (Box::pin(incoming), slots, None::<tokio::time::Instant>);
        futures_util::stream::unfold(state, move |(mut incoming, slots, mut warned)| async move {
            // A slot first: at the cap, stop accepting until a connection closes.
            let slot = match &slots {
                None => None,
                Some((semaphore, max)) => match semaphore.clone().try_acquire_owned() {
                    Ok(slot) => Some(slot),
                    Err(_) => {
                        if warned.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                            tracing::warn!(
                                max_connections = max,
                                "connection limit reached: new connections wait until one closes"
                            );
                            warned = Some(tokio::time::Instant::now());
                        }
                        Some(semaphore.clone().acquire_owned().await.ok()?)
                    }
                },
            };
            let conn = incoming.next().await?;
            let conn = conn.map(|io| LimitedConnection {
                io,
                end: lifetime.map(|(age, grace)| Box::pin(tokio::time::sleep(age + grace))),
                handshake: handshake.map(|t| Box::pin(tokio::time::sleep(t))),
                _slot: slot,
            });
            Some((conn, (incoming, slots, warned)))
        })
    }
}

/// An accepted connection that fails every read and write once its lifetime (`max_connection_age` +
/// `max_connection_age_grace` of its [`ServerLimits`]) is over, or when it has sent nothing within the
/// handshake timeout, which makes the server drop it; it holds one of the listener's connection slots
/// until then. Yielded by [`ServerLimits::bind`] and [`ServerLimits::incoming`]; the connection info
/// (`remote_addr`) is the wrapped stream's.
#[derive(Debug)]
pub struct LimitedConnection<IO> {
    io: IO,
    end: Option<Pin<Box<Sleep>>>,
    /// Until the first bytes arrive: when they must have arrived.
    handshake: Option<Pin<Box<Sleep>>>,
    _slot: Option<OwnedSemaphorePermit>,
}

impl<IO> LimitedConnection<IO> {
    /// Whether the lifetime (or the handshake time) is over; registers the task to be woken then.
    fn is_over(&mut self, cx: &mut Context<'_>) -> bool {
        let handshake_over = self
            .handshake
            .as_mut()
            .is_some_and(|t| t.as_mut().poll(cx).is_ready());
        handshake_over
            || self
                .end
                .as_mut()
                .is_some_and(|end| end.as_mut().poll(cx).is_ready())
    }
}

fn lifetime_over() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "connection silent past handshake_timeout, or open past max_connection_age + grace",
    )
}

impl<IO: AsyncRead + Unpin> AsyncRead for LimitedConnection<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.is_over(cx) {
            return Poll::Ready(Err(lifetime_over()));
        }
        let filled = buf.filled().len();
        let read = Pin::new(&mut this.io).poll_read(cx, buf);
        if matches!(read, Poll::Ready(Ok(()))) && buf.filled().len() > filled {
            // The peer spoke: the handshake deadline no longer applies.
            this.handshake = None;
        }
        read
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for LimitedConnection<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.is_over(cx) {
            return Poll::Ready(Err(lifetime_over()));
        }
        Pin::new(&mut this.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.is_over(cx) {
            return Poll::Ready(Err(lifetime_over()));
        }
        Pin::new(&mut this.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.is_over(cx) {
            return Poll::Ready(Err(lifetime_over()));
        }
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

impl<IO: Connected> Connected for LimitedConnection<IO> {
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

/// The connection info of a limited TCP connection is the TCP stream's: `Request::remote_addr` works.
const _: fn(&LimitedConnection<TcpStream>) -> TcpConnectInfo = Connected::connect_info;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_documented_ones() {
        let l = ServerLimits::default();
        assert_eq!(l.max_concurrent_streams, 100);
        assert_eq!(l.concurrency_limit_per_connection, Some(64));
        assert_eq!(l.request_timeout, Some(Duration::from_secs(30)));
        assert_eq!(l.max_connection_age, Some(Duration::from_secs(300)));
        assert_eq!(l.max_connection_age_grace, l.request_timeout);
        assert_eq!(l.http2_max_header_list_size, 16 * 1024);
        assert!(
            l.http2_max_header_list_size as usize > crate::DEFAULT_MAX_TOKEN_LEN + 1024,
            "a maximal token fits in the header list"
        );
        assert_eq!(l.max_decoding_message_size, 64 * 1024);
        assert_eq!(l.max_connections, Some(1024));
        assert_eq!(l.handshake_timeout, Some(Duration::from_secs(10)));
    }
}
