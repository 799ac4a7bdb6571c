//! Keeping secrets out of logs, errors and `Debug` output.

/// Returns `url` with any password replaced by `***`.
///
/// Handles `scheme://user:password@host…` as well as lists of authorities
/// (`redlock://u:p@h1,u:p@h2`), and `password=`/`pass=` query parameters.
/// Strings that are not URLs come back unchanged.
///
/// ```
/// use distlock_core::redact_url;
/// assert_eq!(
///     redact_url("postgres://app:s3cret@db:5432/locks"),
///     "postgres://app:***@db:5432/locks"
/// );
/// assert_eq!(redact_url("redis://:pw@h:1/0"), "redis://:***@h:1/0");
/// assert_eq!(redact_url("zk://h1,h2/x?password=pw&y=1"), "zk://h1,h2/x?password=***&y=1");
/// ```
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(i) => (&url[..i + 3], &url[i + 3..]),
        None => ("", url),
    };
    // The authority part ends at the first '/', '?' or '#'.
    let auth_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(auth_end);
    let authority = authority
        .split(',')
        .map(redact_userinfo)
        .collect::<Vec<_>>()
        .join(",");
    let tail = redact_query(tail);
    format!("{scheme}{authority}{tail}")
}

fn redact_userinfo(authority: &str) -> String {
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            let host = &authority[at..];
            match userinfo.find(':') {
                Some(colon) => format!("{}:***{}", &userinfo[..colon], host),
                None => authority.to_string(),
            }
        }
        None => authority.to_string(),
    }
}

fn redact_query(tail: &str) -> String {
    let Some(q) = tail.find('?') else {
        return tail.to_string();
    };
    let (path, query) = tail.split_at(q + 1);
    let (query, fragment) = match query.find('#') {
        Some(h) => query.split_at(h),
        None => (query, ""),
    };
    let redacted = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if is_secret_key(k) => format!("{k}=***"),
            _ => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&");
    format!("{path}{redacted}{fragment}")
}

fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k == "password" || k == "pass" || k == "pwd" || k.ends_with("_password") || k == "token"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_each_authority_of_a_list() {
        assert_eq!(
            redact_url("redlock://u:a@h1:1,u:b@h2:2,h3:3/x"),
            "redlock://u:***@h1:1,u:***@h2:2,h3:3/x"
        );
    }

    #[test]
    fn leaves_urls_without_secrets_alone() {
        for url in ["redis://h:1/0", "sqlite://./a.db", "memory://", "not a url"] {
            assert_eq!(redact_url(url), url);
        }
    }

    #[test]
    fn password_with_at_sign_is_hidden() {
        let r = redact_url("mysql://u:p@ss@h/db");
        assert!(!r.contains("p@ss"), "{r}");
    }
}
