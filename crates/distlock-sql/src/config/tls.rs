//! TLS to PostgreSQL and MySQL/MariaDB: the core's vocabulary (`tls`, `ca`,
//! `cert`, `key`, `danger_accept_invalid_certs`, see
//! [`TlsSettings`]) mapped onto sqlx's connect options:
//!
//! | ours | PostgreSQL | MySQL / MariaDB |
//! |---|---|---|
//! | TLS on | `sslmode=verify-full` (CA and host name verified) | `ssl-mode=VERIFY_IDENTITY` |
//! | `ca` | `sslrootcert` (else the Mozilla roots sqlx ships) | `ssl-ca` (same) |
//! | `cert`, `key` | `sslcert`, `sslkey` | `ssl-cert`, `ssl-key` |
//! | `danger_accept_invalid_certs` | `sslmode=require` (no verification) | `ssl-mode=REQUIRED` (same) |
//!
//! sqlx's own keys (`sslmode`, `sslrootcert`, …) still pass through to the
//! driver, but not together with ours. TLS needs this crate's `tls-rustls`
//! feature (the `distlock` facade's `postgres` and `mysql` features turn it
//! on).

use distlock_core::{BackendUrl, LockError, Result, TlsSettings};

use super::{Database, SqlConfig};
#[allow(unused_imports)] // used with the postgres or mysql feature
use crate::dialect::ConnectError;

/// sqlx's own TLS keys (both spellings, both databases).
const DRIVER_TLS_KEYS: &[&str] = &[
    "sslmode",
    "ssl-mode",
    "sslrootcert",
    "ssl-root-cert",
    "sslca",
    "ssl-ca",
    "sslcert",
    "ssl-cert",
    "sslkey",
    "ssl-key",
];

/// Reads our TLS keys from a server URL; refuses them together with the
/// driver's own TLS keys (`driver_params`, already taken from the URL).
pub(super) fn read(
    url: &mut BackendUrl,
    driver_params: &[(String, String)],
) -> Result<Option<TlsSettings>> {
    let Some(tls) = TlsSettings::from_url(url, false)? else {
        return Ok(None);
    };
    if let Some((key, _)) = driver_params
        .iter()
        .find(|(k, _)| DRIVER_TLS_KEYS.contains(&k.as_str()))
    {
        return Err(url.error(&format!(
            "TLS is set both by `tls`/`ca`/`cert`/`key` and by the driver's `{key}`; give one"
        )));
    }
    match problem(&tls) {
        Some(why) => Err(url.error(&why)),
        None => Ok(Some(tls)),
    }
}

/// What keeps these settings from working in this build, if anything.
pub(super) fn problem(tls: &TlsSettings) -> Option<String> {
    if !cfg!(feature = "tls-rustls") {
        return Some(
            "TLS to PostgreSQL and MySQL needs the `tls-rustls` feature of distlock-sql \
             (the `distlock` crate's `postgres` and `mysql` features turn it on)"
                .to_string(),
        );
    }
    tls.check().err().map(|e| e.to_string())
}

impl SqlConfig {
    /// Connects with TLS (URL: `tls`, `ca`, `cert`, `key`,
    /// `danger_accept_invalid_certs`); see the crate docs.
    ///
    /// # Errors
    ///
    /// `InvalidConfig` on SQLite (a file, no connection to encrypt), without
    /// the `tls-rustls` feature, or for contradictory settings.
    pub fn with_tls(mut self, tls: TlsSettings) -> Result<Self> {
        if self.database == Database::Sqlite {
            return Err(LockError::invalid_config(
                "SQLite is a local file: there is no connection to protect with TLS",
            ));
        }
        if let Some(why) = problem(&tls) {
            return Err(LockError::invalid_config(why));
        }
        self.tls = Some(tls);
        Ok(self)
    }

    /// The TLS settings, when TLS is on.
    pub fn tls(&self) -> Option<&TlsSettings> {
        self.tls.as_ref()
    }

    /// The TLS settings with their files read and checked: an error naming
    /// a file that cannot be used, before the driver meets it.
    #[allow(dead_code)] // used with the postgres or mysql feature
    fn checked_tls(&self) -> Result<Option<&TlsSettings>, ConnectError> {
        let Some(tls) = &self.tls else {
            return Ok(None);
        };
        tls.load()
            .map_err(|e| ConnectError::BadUrl(sqlx::Error::Configuration(e.to_string().into())))?;
        Ok(Some(tls))
    }

    /// The driver's connect options: the URL, then TLS.
    #[cfg(feature = "postgres")]
    pub(crate) fn pg_connect_options(
        &self,
    ) -> Result<sqlx::postgres::PgConnectOptions, ConnectError> {
        use sqlx::postgres::{PgConnectOptions, PgSslMode};
        use std::str::FromStr;
        let mut options =
            PgConnectOptions::from_str(self.driver_url()).map_err(ConnectError::BadUrl)?;
        if let Some(tls) = self.checked_tls()? {
            options = options.ssl_mode(match tls.accepts_invalid_certs() {
                true => PgSslMode::Require,
                false => PgSslMode::VerifyFull,
            });
            if let Some(ca) = tls.ca() {
                options = options.ssl_root_cert(ca);
            }
            if let Some((cert, key)) = tls.client_cert() {
                options = options.ssl_client_cert(cert).ssl_client_key(key);
            }
        }
        Ok(options)
    }

    /// The driver's connect options: the URL, then TLS.
    #[cfg(feature = "mysql")]
    pub(crate) fn mysql_connect_options(
        &self,
    ) -> Result<sqlx::mysql::MySqlConnectOptions, ConnectError> {
        use sqlx::mysql::{MySqlConnectOptions, MySqlSslMode};
        use std::str::FromStr;
        let mut options =
            MySqlConnectOptions::from_str(self.driver_url()).map_err(ConnectError::BadUrl)?;
        if let Some(tls) = self.checked_tls()? {
            options = options.ssl_mode(match tls.accepts_invalid_certs() {
                true => MySqlSslMode::Required,
                false => MySqlSslMode::VerifyIdentity,
            });
            if let Some(ca) = tls.ca() {
                options = options.ssl_ca(ca);
            }
            if let Some((cert, key)) = tls.client_cert() {
                options = options.ssl_client_cert(cert).ssl_client_key(key);
            }
        }
        Ok(options)
    }
}
