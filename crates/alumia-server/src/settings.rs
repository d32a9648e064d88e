//! What the HTTP layer needs to know of the configuration. The binary builds
//! it from flags, environment and the config file.

use std::net::IpAddr;

use alumia_core::files::MimePolicy;
use alumia_core::identity::AuthSettings;
use alumia_core::keys::KeyEnv;
use ipnet::IpNet;

#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// External base URL without a trailing slash, e.g. `https://alumia.example.com`.
    pub public_url: String,
    pub key_env: KeyEnv,
    pub auth: AuthSettings,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Set when `/api/v1/setup` must be given this token (non-loopback listen).
    pub setup_token: Option<String>,
    /// JSON body cap, bytes.
    pub json_body_limit: usize,
    pub version: &'static str,
    /// `host:port` forms of the listen address that `/mcp` accepts as
    /// `Host` besides the public URL's (spec 04 §1, DNS rebinding).
    pub listen_authorities: Vec<String>,
    /// Origins besides the public one that may call `/mcp` (`[mcp] allowed_origins`).
    pub mcp_allowed_origins: Vec<String>,
    /// The file MIME allow-list (defaults plus `[files] extra_mime_types`).
    pub file_mimes: MimePolicy,
}

impl ServerSettings {
    pub fn new(public_url: &str, key_env: KeyEnv) -> Self {
        ServerSettings {
            public_url: public_url.trim_end_matches('/').to_string(),
            key_env,
            auth: AuthSettings::default(),
            trusted_proxies: Vec::new(),
            setup_token: None,
            json_body_limit: 128 * 1024,
            version: env!("CARGO_PKG_VERSION"),
            listen_authorities: Vec::new(),
            mcp_allowed_origins: Vec::new(),
            file_mimes: MimePolicy::default(),
        }
    }

    /// Accepts `addr` (and `localhost:port` for a loopback or unspecified
    /// address) as a `Host` of `/mcp`.
    pub fn with_listen_addr(mut self, addr: std::net::SocketAddr) -> Self {
        let port = addr.port();
        self.listen_authorities.push(addr.to_string());
        if addr.ip().is_loopback() || addr.ip().is_unspecified() {
            for host in ["localhost", "127.0.0.1", "[::1]"] {
                self.listen_authorities.push(format!("{host}:{port}"));
            }
        }
        self
    }

    /// `scheme://host[:port]` of the public URL, compared with `Origin`.
    pub fn public_origin(&self) -> &str {
        let after_scheme = self.public_url.find("://").map_or(0, |i| i + 3);
        match self.public_url[after_scheme..].find('/') {
            Some(i) => &self.public_url[..after_scheme + i],
            None => &self.public_url,
        }
    }

    pub fn is_https(&self) -> bool {
        self.public_url.starts_with("https://")
    }

    pub fn is_trusted_proxy(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_origin_drops_the_path() {
        let s = ServerSettings::new("https://a.example.com:8443/base/", KeyEnv::Live);
        assert_eq!(s.public_origin(), "https://a.example.com:8443");
        assert!(s.is_https());
        let s = ServerSettings::new("http://127.0.0.1:7420", KeyEnv::Test);
        assert_eq!(s.public_origin(), "http://127.0.0.1:7420");
    }
}
