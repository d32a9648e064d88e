//! The client IP: the socket peer, or — when the peer is a trusted proxy —
//! the right-most `X-Forwarded-For` hop that is not a trusted proxy.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;

use crate::settings::ServerSettings;
use crate::state::AppState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl ClientIp {
    /// The rate-limit key: the address, with IPv6 cut to its /64.
    pub fn bucket_key(&self) -> String {
        match self.0 {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => v4.to_string(),
                None => {
                    let s = v6.segments();
                    let net = Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
                    format!("{net}/64")
                }
            },
        }
    }
}

pub fn resolve(peer: IpAddr, headers: &HeaderMap, settings: &ServerSettings) -> IpAddr {
    if !settings.is_trusted_proxy(peer) {
        return peer;
    }
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|hop| hop.trim().parse().ok())
        .collect();
    hops.into_iter()
        .rev()
        .find(|ip| !settings.is_trusted_proxy(*ip))
        .unwrap_or(peer)
}

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(ip) = parts.extensions.get::<ClientIp>() {
            return Ok(*ip);
        }
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::from([127, 0, 0, 1]), |c| c.0.ip());
        let ip = ClientIp(resolve(peer, &parts.headers, &state.settings));
        parts.extensions.insert(ip);
        Ok(ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alumia_core::keys::KeyEnv;

    fn settings(trusted: &[&str]) -> ServerSettings {
        let mut s = ServerSettings::new("http://127.0.0.1:7420", KeyEnv::Test);
        s.trusted_proxies = trusted.iter().map(|c| c.parse().unwrap()).collect();
        s
    }

    fn xff(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", value.parse().unwrap());
        h
    }

    #[test]
    fn forwarded_for_is_ignored_from_untrusted_peers() {
        let s = settings(&[]);
        let peer: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(resolve(peer, &xff("1.2.3.4"), &s), peer);
    }

    #[test]
    fn the_right_most_untrusted_hop_wins_behind_trusted_proxies() {
        let s = settings(&["10.0.0.0/8"]);
        let peer: IpAddr = "10.0.0.2".parse().unwrap();
        // A client spoofing "6.6.6.6" cannot move its bucket: the proxy appended the real one.
        let got = resolve(peer, &xff("6.6.6.6, 198.51.100.7, 10.0.0.5"), &s);
        assert_eq!(got, "198.51.100.7".parse::<IpAddr>().unwrap());
        assert_eq!(resolve(peer, &HeaderMap::new(), &s), peer);
    }

    #[test]
    fn ipv6_clients_share_a_bucket_per_64() {
        let a = ClientIp("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = ClientIp("2001:db8:1:2:bbbb::9".parse().unwrap());
        let c = ClientIp("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a.bucket_key(), b.bucket_key());
        assert_ne!(a.bucket_key(), c.bucket_key());
        assert_eq!(
            ClientIp("::ffff:192.0.2.1".parse().unwrap()).bucket_key(),
            "192.0.2.1"
        );
    }
}
