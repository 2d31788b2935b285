//! A classless static route as DHCP pushes it (RFC 3442, options 121 and
//! 249) and as the config writes it: `10.0.0.0/16 via 192.168.30.1`.

use std::net::Ipv4Addr;
use std::str::FromStr;

use crate::Ipv4Cidr;

/// One RFC 3442 classless static route: `10.0.0.0/16 via 192.168.30.1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClasslessRoute {
    /// Always a network address (no host bits): RFC 3442 sends only the
    /// significant octets, so host bits would be silently lost.
    pub destination: Ipv4Cidr,
    pub gateway: Ipv4Addr,
}

/// Why a route string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("is not written as \"NETWORK/LEN via GATEWAY\", e.g. \"10.0.0.0/16 via 192.168.30.1\"")]
    Shape,
    #[error("has a bad destination: {0}")]
    Destination(#[from] crate::CidrError),
    #[error("has host bits set in {0}; write the network, {1}")]
    HostBits(Ipv4Cidr, Ipv4Cidr),
    #[error("has a gateway {0:?} that is not an IPv4 address")]
    Gateway(String),
}

impl FromStr for ClasslessRoute {
    type Err = RouteError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut words = s.split_whitespace();
        let (Some(dest), Some("via"), Some(gw), None) =
            (words.next(), words.next(), words.next(), words.next())
        else {
            return Err(RouteError::Shape);
        };
        let destination: Ipv4Cidr = dest.parse()?;
        if !destination.is_network() {
            return Err(RouteError::HostBits(destination, destination.trunc()));
        }
        let gateway = gw.parse().map_err(|_| RouteError::Gateway(gw.to_owned()))?;
        Ok(Self {
            destination,
            gateway,
        })
    }
}

impl std::fmt::Display for ClasslessRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} via {}", self.destination, self.gateway)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_routes() {
        let r: ClasslessRoute = "10.0.0.0/16 via 192.168.30.1".parse().expect("valid route");
        assert_eq!(r.destination.to_string(), "10.0.0.0/16");
        assert_eq!(r.gateway, Ipv4Addr::new(192, 168, 30, 1));
        assert_eq!(r.to_string(), "10.0.0.0/16 via 192.168.30.1");
        let r: ClasslessRoute = "  0.0.0.0/0   via 192.168.30.254 "
            .parse()
            .expect("default");
        assert_eq!(r.destination.prefix_len(), 0);
    }

    #[test]
    fn rejects_bad_routes() {
        assert_eq!(
            "10.0.0.0/16 192.168.30.1".parse::<ClasslessRoute>(),
            Err(RouteError::Shape)
        );
        assert_eq!(
            "10.0.0.0/16 via 192.168.30.1 extra".parse::<ClasslessRoute>(),
            Err(RouteError::Shape)
        );
        assert!(matches!(
            "10.0.0.1/16 via 192.168.30.1".parse::<ClasslessRoute>(),
            Err(RouteError::HostBits(..))
        ));
        assert!(matches!(
            "10.0.0.0 via 192.168.30.1".parse::<ClasslessRoute>(),
            Err(RouteError::Destination(_))
        ));
        assert_eq!(
            "10.0.0.0/16 via gw".parse::<ClasslessRoute>(),
            Err(RouteError::Gateway("gw".into()))
        );
    }
}
