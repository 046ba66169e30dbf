//! The TCP stream under a session, watching the server's first byte. A PostgreSQL server answers an
//! SSLRequest with `S` or `N` (or `E` when it is very old), and a startup message with `R`
//! (authentication), `v` (protocol negotiation) or `E`. Anything else — a web server's `HTTP/1.1 400`,
//! an SSH banner — is not PostgreSQL; without this check tokio-postgres takes it for "TLS not
//! supported", or for the start of a message gigabytes long and waits for the rest.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The error a [`Sniffed`] stream gives when the server is not PostgreSQL.
#[derive(Debug)]
pub struct NotPostgres;

impl std::fmt::Display for NotPostgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the server's first answer is not PostgreSQL's")
    }
}

impl std::error::Error for NotPostgres {}

/// Whether `error` (or one of its causes) is [`NotPostgres`].
pub fn is_not_postgres(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if e.is::<NotPostgres>()
            || e.downcast_ref::<io::Error>()
                .and_then(io::Error::get_ref)
                .is_some_and(|inner| inner.is::<NotPostgres>())
        {
            return true;
        }
        current = e.source();
    }
    false
}

/// A stream that fails its first read unless the first byte is one PostgreSQL would send.
pub struct Sniffed {
    inner: TcpStream,
    first: Option<&'static [u8]>,
}

impl Sniffed {
    /// Connects to `host:port` (each address in turn); `tls` tells which first bytes are right.
    pub async fn connect(host: &str, port: u16, tls: bool) -> io::Result<Sniffed> {
        let inner = TcpStream::connect((host, port)).await?;
        inner.set_nodelay(true)?;
        Ok(Sniffed {
            inner,
            first: Some(if tls { b"SNE" } else { b"RvE" }),
        })
    }
}

impl AsyncRead for Sniffed {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        if let (Some(allowed), Some(&byte)) = (this.first, buf.filled().get(before)) {
            this.first = None;
            if !allowed.contains(&byte) {
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, NotPostgres)));
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Sniffed {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
