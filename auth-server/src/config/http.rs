//! The HTTP side port: where it listens (or that it is off), the public base URL its discovery
//! document names, and whether gRPC calls are measured for `/metrics`.
//!
//! The side port is plaintext HTTP/1.1 by design, on any address: it serves only public data (the
//! JWKS, the discovery document), probes and metrics, never a token or a credential. Keep it off the
//! public internet (a NetworkPolicy in Kubernetes); TLS belongs to the gRPC port.

use std::net::SocketAddr;

use clap::Args;

use super::check::{ConfigError, bad};

/// Side-port flags.
#[derive(Debug, Clone, Args)]
pub struct HttpArgs {
    /// Address of the plaintext HTTP side port (JWKS, OpenID discovery, Prometheus metrics, probes);
    /// empty turns it off.
    #[arg(long, env = "AUTH_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub http_addr: String,

    /// Absolute base URL at which others reach the side port (`http(s)://host[:port][/prefix]`), used
    /// for `jwks_uri` in the discovery document. Default: `http://` + the side port's address.
    /// Required when AUTH_HTTP_ADDR is an unspecified address (0.0.0.0, [::]).
    #[arg(long, env = "AUTH_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Measure every gRPC call for `/metrics` (`grpc_server_*`). Turn it off when a mesh sidecar
    /// already records per-call metrics; the auth metrics are kept either way.
    #[arg(long, env = "AUTH_GRPC_METRICS", default_value_t = true, action = clap::ArgAction::Set)]
    pub grpc_metrics: bool,
}

/// A validated absolute base URL without a trailing slash, query or fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl(String);

impl PublicUrl {
    /// The base URL for a side port listening on `addr`: `http://addr`.
    pub fn of_addr(addr: SocketAddr) -> Self {
        Self(format!("http://{addr}"))
    }

    /// `path` (starting with `/`) under this base.
    pub fn join(&self, path: &str) -> String {
        format!("{}{path}", self.0)
    }

    /// The base itself.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Validated side-port settings.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Address to bind, or `None`: no side port.
    pub addr: Option<SocketAddr>,
    /// The configured public base URL (otherwise derived from the bound address).
    pub public_url: Option<PublicUrl>,
    /// Whether the gRPC metrics layer runs.
    pub grpc_metrics: bool,
}

impl HttpArgs {
    pub(super) fn validate(self) -> Result<HttpSettings, ConfigError> {
        let addr = match self.http_addr.trim() {
            "" => None,
            text => Some(text.parse::<SocketAddr>().map_err(|_| {
                bad(
                    "AUTH_HTTP_ADDR",
                    format!(
                        "must be an address with a port, like 127.0.0.1:8080 or [::]:8080, or empty to turn the side port off (got {text:?})"
                    ),
                )
            })?),
        };
        let public_url = self
            .public_url
            .as_deref()
            .map(parse_public_url)
            .transpose()?;
        if let Some(addr) = addr
            && addr.ip().is_unspecified()
            && public_url.is_none()
        {
            return Err(bad(
                "AUTH_PUBLIC_URL",
                format!(
                    "is required when AUTH_HTTP_ADDR ({addr}) listens on all interfaces: the discovery \
                     document's jwks_uri must name an address others can reach, e.g. \
                     http://auth.example.svc:{}",
                    addr.port()
                ),
            ));
        }
        Ok(HttpSettings {
            addr,
            public_url,
            grpc_metrics: self.grpc_metrics,
        })
    }
}

/// Checks `AUTH_PUBLIC_URL`: http or https, a host, no credentials, query or fragment.
fn parse_public_url(text: &str) -> Result<PublicUrl, ConfigError> {
    let refuse = |why: &str| {
        bad(
            "AUTH_PUBLIC_URL",
            format!(
                "{why}, like https://auth.example.com or http://auth.ns.svc:8080 (got {text:?})"
            ),
        )
    };
    let url =
        url::Url::parse(text).map_err(|e| refuse(&format!("must be an absolute URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(refuse("must be an http or https URL"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(refuse("must name a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refuse("must not contain credentials"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(refuse("must not have a query or fragment"));
    }
    Ok(PublicUrl(url.as_str().trim_end_matches('/').to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(addr: &str, url: Option<&str>) -> HttpArgs {
        HttpArgs {
            http_addr: addr.into(),
            public_url: url.map(str::to_owned),
            grpc_metrics: true,
        }
    }

    #[test]
    fn empty_turns_the_side_port_off() {
        assert_eq!(args("", None).validate().unwrap().addr, None);
        assert_eq!(args("  ", None).validate().unwrap().addr, None);
        let s = args("127.0.0.1:8080", None).validate().unwrap();
        assert_eq!(s.addr, Some("127.0.0.1:8080".parse().unwrap()));
    }

    #[test]
    fn refusals_name_the_variable_on_one_line() {
        for (addr, url, setting) in [
            ("localhost", None, "AUTH_HTTP_ADDR"),
            ("127.0.0.1", None, "AUTH_HTTP_ADDR"),
            ("0.0.0.0:8080", None, "AUTH_PUBLIC_URL"),
            ("[::]:8080", None, "AUTH_PUBLIC_URL"),
            (
                "127.0.0.1:8080",
                Some("auth.example.com"),
                "AUTH_PUBLIC_URL",
            ),
            (
                "127.0.0.1:8080",
                Some("ftp://auth.example.com"),
                "AUTH_PUBLIC_URL",
            ),
            (
                "127.0.0.1:8080",
                Some("https://u:p@auth.example.com"),
                "AUTH_PUBLIC_URL",
            ),
            (
                "127.0.0.1:8080",
                Some("https://auth.example.com/?x=1"),
                "AUTH_PUBLIC_URL",
            ),
            (
                "127.0.0.1:8080",
                Some("https://auth.example.com/#top"),
                "AUTH_PUBLIC_URL",
            ),
        ] {
            let e = args(addr, url).validate().unwrap_err();
            assert_eq!(e.setting, setting, "{addr} {url:?}");
            let line = e.to_string();
            assert!(line.starts_with(&format!("{setting}: ")), "{line}");
            assert!(!line.contains('\n'), "{line}");
        }
    }

    #[test]
    fn the_public_url_is_a_base_without_trailing_slash() {
        let s = args("0.0.0.0:8080", Some("https://auth.example.com/"))
            .validate()
            .unwrap();
        let url = s.public_url.unwrap();
        assert_eq!(
            url.join("/.well-known/jwks.json"),
            "https://auth.example.com/.well-known/jwks.json"
        );
        let s = args("127.0.0.1:8080", Some("http://auth.ns.svc:8080/auth/"))
            .validate()
            .unwrap();
        assert_eq!(
            s.public_url.unwrap().as_str(),
            "http://auth.ns.svc:8080/auth"
        );
        assert_eq!(
            PublicUrl::of_addr("127.0.0.1:9000".parse().unwrap()).as_str(),
            "http://127.0.0.1:9000"
        );
    }
}
