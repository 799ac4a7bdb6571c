//! Authentication against a dedicated single-node etcd with auth enabled
//! (started here on free ports with a scratch data directory, so the shared
//! cluster is never touched).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use distlock_core::{AcquireOptions, DistributedLock, LockError, LockName};
use distlock_etcd::{EtcdBackend, EtcdConfig};
use etcd_client::{Client, ConnectOptions, Permission};

const USER: &str = "locker";
const PASSWORD: &str = "locker-secret-pw";
const ROOT_PASSWORD: &str = "root-secret-pw";
const PREFIX: &str = "locks";

/// A single etcd member with auth enabled; killed and its data removed on drop.
struct AuthEtcd {
    child: Child,
    dir: PathBuf,
    endpoint: String,
}

impl Drop for AuthEtcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl AuthEtcd {
    async fn start() -> Self {
        let (client_port, peer_port) = (free_port(), free_port());
        let dir = std::env::temp_dir().join(format!(
            "distlock-etcd-auth-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let client_url = format!("http://127.0.0.1:{client_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let log = std::fs::File::create(dir.join("etcd.log")).expect("log file");
        let child = Command::new("etcd")
            .args([
                "--name",
                "auth-test",
                "--data-dir",
                dir.join("data").to_str().expect("utf-8 path"),
                "--listen-client-urls",
                &client_url,
                "--advertise-client-urls",
                &client_url,
                "--listen-peer-urls",
                &peer_url,
                "--initial-advertise-peer-urls",
                &peer_url,
                "--initial-cluster",
                &format!("auth-test={peer_url}"),
                "--heartbeat-interval",
                "100",
                "--election-timeout",
                "1000",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start `etcd` ({e}); install etcd-server (scripts/services.sh up does)"
                )
            });
        let server = AuthEtcd {
            child,
            dir,
            endpoint: format!("127.0.0.1:{client_port}"),
        };
        server.enable_auth().await;
        server
    }

    /// Creates root and a user allowed `PREFIX/`, then turns auth on.
    async fn enable_auth(&self) {
        let until = Instant::now() + Duration::from_secs(30);
        let mut admin = loop {
            let attempt = async {
                let mut c = Client::connect([self.endpoint.as_str()], None).await?;
                c.status().await?;
                Ok::<_, etcd_client::Error>(c)
            };
            match tokio::time::timeout(Duration::from_secs(2), attempt).await {
                Ok(Ok(c)) => break c,
                _ if Instant::now() < until => tokio::time::sleep(Duration::from_millis(100)).await,
                Ok(Err(e)) => panic!("dedicated etcd did not come up: {e}"),
                Err(_) => panic!("dedicated etcd did not come up within 30 s"),
            }
        };
        admin
            .user_add("root", ROOT_PASSWORD, None)
            .await
            .expect("add root");
        admin
            .user_grant_role("root", "root")
            .await
            .expect("root role");
        admin.role_add(USER).await.expect("add role");
        admin
            .role_grant_permission(
                USER,
                Permission::read_write(format!("{PREFIX}/")).with_prefix(),
            )
            .await
            .expect("grant prefix");
        admin
            .user_add(USER, PASSWORD, None)
            .await
            .expect("add user");
        admin.user_grant_role(USER, USER).await.expect("grant role");
        admin.auth_enable().await.expect("enable auth");
        // Auth is on once an anonymous write is refused.
        let mut check = Client::connect([self.endpoint.as_str()], None)
            .await
            .expect("client");
        assert!(
            check.put(format!("{PREFIX}/x"), "y", None).await.is_err(),
            "auth did not take effect"
        );
        // And root still gets in with its password.
        let opts = ConnectOptions::new().with_user("root", ROOT_PASSWORD);
        Client::connect([self.endpoint.as_str()], Some(opts))
            .await
            .expect("root can authenticate");
    }

    fn url(&self, user: &str, password: &str) -> String {
        format!(
            "etcd://{}/{PREFIX}?user={user}&password={password}&lease_ttl=3",
            self.endpoint
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn correct_credentials_lock_and_a_wrong_password_is_a_clear_error() {
    let server = AuthEtcd::start().await;

    let backend = EtcdBackend::connect(&server.url(USER, PASSWORD))
        .await
        .expect("the right password connects");
    let name = LockName::new("auth/resource").unwrap();
    let lease = backend
        .acquire(&name, &AcquireOptions::try_once(Duration::from_secs(10)))
        .await
        .expect("acquire")
        .expect("free");
    let other = EtcdBackend::from_config(
        EtcdConfig::new([server.endpoint.clone()])
            .with_prefix(PREFIX)
            .with_user(USER, PASSWORD)
            .with_session_timeout(Duration::from_secs(3)),
    )
    .await
    .expect("builder config connects too");
    assert!(other
        .acquire(&name, &AcquireOptions::try_once(Duration::from_secs(10)))
        .await
        .expect("try-acquire")
        .is_none());
    backend.release(&lease).await.expect("release");
    let status = other.status(&name).await.expect("status");
    assert!(!status.held);

    // The same credentials as userinfo, percent-encoded like any password.
    let userinfo = EtcdBackend::connect(&format!(
        "etcd://{USER}:{}@{}/{PREFIX}?session_timeout=3s",
        PASSWORD.replace('-', "%2D"),
        server.endpoint
    ))
    .await
    .expect("userinfo credentials connect");
    let lease = userinfo
        .acquire(&name, &AcquireOptions::try_once(Duration::from_secs(10)))
        .await
        .expect("acquire with userinfo credentials")
        .expect("free");
    userinfo.release(&lease).await.expect("release");

    let wrong = "not-the-password-42";
    let err = EtcdBackend::connect(&server.url(USER, wrong))
        .await
        .expect_err("a wrong password must not connect");
    let text = err.to_string();
    assert!(
        matches!(err, LockError::InvalidConfig { .. }),
        "wrong password gives InvalidConfig, got {err:?}"
    );
    assert!(text.contains("authentication failed"), "{text}");
    assert!(text.contains(USER), "the error names the user: {text}");
    assert!(!text.contains(wrong), "the password leaked: {text}");
    assert!(
        !format!("{err:?}").contains(wrong),
        "the password leaked: {err:?}"
    );

    let err = EtcdBackend::connect(&format!("etcd://{}/{PREFIX}?lease_ttl=3", server.endpoint))
        .await
        .expect_err("no credentials on an auth-enabled cluster");
    assert!(
        matches!(&err, LockError::InvalidConfig { reason } if reason.contains("no credentials")),
        "missing credentials are a clear error: {err}"
    );

    // A user without permission on another prefix is refused at connect.
    let err = EtcdBackend::from_config(
        EtcdConfig::new([server.endpoint.clone()])
            .with_prefix("elsewhere")
            .with_user(USER, PASSWORD)
            .with_session_timeout(Duration::from_secs(3)),
    )
    .await
    .expect_err("no permission outside the granted prefix");
    assert!(
        matches!(&err, LockError::InvalidConfig { reason } if reason.contains("permission denied")),
        "missing permission is a clear error: {err}"
    );
    assert!(!err.to_string().contains(PASSWORD));
}
