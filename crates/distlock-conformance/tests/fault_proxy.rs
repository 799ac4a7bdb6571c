//! The fault proxy does what each mode promises, against a loopback echo
//! server.

use std::time::Duration;

use distlock_conformance::{FaultProxy, ProxyMode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn echo_server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

async fn round_trip(s: &mut TcpStream, msg: &[u8]) -> std::io::Result<Vec<u8>> {
    s.write_all(msg).await?;
    let mut buf = vec![0u8; msg.len()];
    s.read_exact(&mut buf).await?;
    Ok(buf)
}

#[tokio::test]
async fn pass_mode_forwards_both_ways() {
    let proxy = FaultProxy::start(echo_server().await).await.unwrap();
    let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(round_trip(&mut s, b"hello").await.unwrap(), b"hello");
}

#[tokio::test]
async fn blackhole_stalls_without_closing_and_pass_resumes() {
    let proxy = FaultProxy::start(echo_server().await).await.unwrap();
    let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(round_trip(&mut s, b"one").await.unwrap(), b"one");
    proxy.set_mode(ProxyMode::Blackhole);
    let stalled =
        tokio::time::timeout(Duration::from_millis(300), round_trip(&mut s, b"two")).await;
    assert!(
        stalled.is_err(),
        "a blackholed connection answered: {stalled:?}"
    );
    proxy.set_mode(ProxyMode::Pass);
    // The bytes written during the blackhole arrive once healed.
    let mut buf = [0u8; 3];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut buf))
        .await
        .expect("resumed")
        .unwrap();
    assert_eq!(&buf, b"two");
}

#[tokio::test]
async fn new_connections_wait_out_a_blackhole() {
    let proxy = FaultProxy::start(echo_server().await).await.unwrap();
    proxy.set_mode(ProxyMode::Blackhole);
    let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
    let stalled = tokio::time::timeout(Duration::from_millis(300), round_trip(&mut s, b"x")).await;
    assert!(stalled.is_err());
    proxy.set_mode(ProxyMode::Pass);
    let mut buf = [0u8; 1];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut buf))
        .await
        .expect("served after the blackhole")
        .unwrap();
}

#[tokio::test]
async fn reset_aborts_existing_and_new_connections() {
    let proxy = FaultProxy::start(echo_server().await).await.unwrap();
    let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(round_trip(&mut s, b"a").await.unwrap(), b"a");
    proxy.set_mode(ProxyMode::Reset);
    let r = tokio::time::timeout(Duration::from_secs(5), round_trip(&mut s, b"b"))
        .await
        .expect("a reset connection fails fast");
    assert!(r.is_err(), "a reset connection still answered");
    let mut fresh = TcpStream::connect(proxy.addr()).await.unwrap();
    let r = tokio::time::timeout(Duration::from_secs(5), round_trip(&mut fresh, b"c"))
        .await
        .expect("a new connection fails fast");
    assert!(r.is_err(), "a new connection was served in reset mode");
}
