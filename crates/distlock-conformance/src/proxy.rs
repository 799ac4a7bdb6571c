//! A loopback TCP proxy that can cut a client off its server on command.
//!
//! Put it between one client and its server, then switch modes:
//! [`Pass`](ProxyMode::Pass) forwards bytes both ways;
//! [`Blackhole`](ProxyMode::Blackhole) stops forwarding without closing
//! anything (requests go unanswered, like a partition);
//! [`Reset`](ProxyMode::Reset) aborts every connection with a TCP reset and
//! resets new ones at once. Switching back to `Pass` resumes blackholed
//! connections where they stopped.

use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the proxy does with traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyMode {
    /// Forward bytes both ways.
    Pass,
    /// Forward nothing, close nothing.
    Blackhole,
    /// Reset every connection, existing and new.
    Reset,
}

/// A running fault proxy on `127.0.0.1:<ephemeral port>`; stops when dropped.
///
/// ```no_run
/// # async fn demo() -> std::io::Result<()> {
/// use distlock_conformance::{FaultProxy, ProxyMode};
/// let proxy = FaultProxy::start("127.0.0.1:16379".parse().unwrap()).await?;
/// let url = format!("redis://{}", proxy.addr()); // give this to the client
/// proxy.set_mode(ProxyMode::Blackhole);          // partition it
/// proxy.set_mode(ProxyMode::Pass);               // heal
/// # Ok(()) }
/// ```
pub struct FaultProxy {
    addr: SocketAddr,
    mode: watch::Sender<ProxyMode>,
    accept: JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy to `upstream`, in [`ProxyMode::Pass`].
    pub async fn start(upstream: SocketAddr) -> io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (mode, _) = watch::channel(ProxyMode::Pass);
        let accept_mode = mode.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let _ = client.set_nodelay(true);
                tokio::spawn(serve(client, upstream, accept_mode.subscribe()));
            }
        });
        Ok(FaultProxy { addr, mode, accept })
    }

    /// The address clients should connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Switches mode for existing and new connections.
    pub fn set_mode(&self, mode: ProxyMode) {
        self.mode.send_replace(mode);
    }

    /// The current mode.
    pub fn mode(&self) -> ProxyMode {
        *self.mode.borrow()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
        // Connection tasks see the mode channel close and reset their sockets.
        self.mode.send_replace(ProxyMode::Reset);
    }
}

/// What a pump stopped on.
enum Stop {
    Eof,
    Reset,
}

async fn serve(client: TcpStream, upstream: SocketAddr, mut mode: watch::Receiver<ProxyMode>) {
    if let Stop::Reset = wait_for_pass(&mut mode).await {
        reset(&client);
        return;
    }
    let Ok(server) = TcpStream::connect(upstream).await else {
        reset(&client);
        return;
    };
    let _ = server.set_nodelay(true);
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let up = pump(cr, sw, mode.clone());
    let down = pump(sr, cw, mode);
    tokio::pin!(up, down);
    let (mut up_done, mut down_done) = (false, false);
    while !(up_done && down_done) {
        let (stop, halves) = tokio::select! {
            r = &mut up, if !up_done => { up_done = true; r }
            r = &mut down, if !down_done => { down_done = true; r }
        };
        if let Stop::Reset = stop {
            let (reader, writer) = halves;
            // Abort both sockets: a zero linger turns close into a reset.
            reset(reader.as_ref());
            reset(writer.as_ref());
            return;
        }
    }
}

fn reset(stream: &TcpStream) {
    let _ = socket2::SockRef::from(stream).set_linger(Some(std::time::Duration::ZERO));
}

async fn wait_for_pass(mode: &mut watch::Receiver<ProxyMode>) -> Stop {
    loop {
        match *mode.borrow_and_update() {
            ProxyMode::Pass => return Stop::Eof,
            ProxyMode::Reset => return Stop::Reset,
            ProxyMode::Blackhole => {}
        }
        if mode.changed().await.is_err() {
            return Stop::Reset;
        }
    }
}

/// Copies one direction while the mode is `Pass`.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut mode: watch::Receiver<ProxyMode>,
) -> (Stop, (OwnedReadHalf, OwnedWriteHalf)) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if let Stop::Reset = wait_for_pass(&mut mode).await {
            return (Stop::Reset, (from, to));
        }
        tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => {
                    let _ = to.shutdown().await;
                    return (Stop::Eof, (from, to));
                }
                Ok(n) => {
                    // Bytes that arrive as the mode turns to blackhole are
                    // held back too, not forwarded by a race between the
                    // read and the mode change.
                    if let Stop::Reset = wait_for_pass(&mut mode).await {
                        return (Stop::Reset, (from, to));
                    }
                    if to.write_all(&buf[..n]).await.is_err() {
                        return (Stop::Eof, (from, to));
                    }
                }
            },
            changed = mode.changed() => {
                if changed.is_err() {
                    return (Stop::Reset, (from, to));
                }
            }
        }
    }
}
