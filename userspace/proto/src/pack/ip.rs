//! IP addresses inside PACKs (spec §2.4; `PackAddIpEx2`/`PackGetIpEx`).
//! An address field `X` is four elements: `X@ipv6_bool`, `X@ipv6_array`
//! (16 bytes), `X@ipv6_scope_id` and `X` (INT). The IPv4 INT is SoftEther's
//! in-memory little-endian u32 written big-endian, so the four address bytes
//! appear **reversed** on the wire (192.168.0.1 → `01 00 a8 c0`).
//! Invariant: `ip(set_ip(x)) == x` for every IPv4 and IPv6 address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{Pack, PackError, ValueType, Values};

/// The wire INT for an IPv4 address (bytes reversed, see module doc).
pub fn ipv4_to_pack_int(a: Ipv4Addr) -> u32 {
    u32::from_le_bytes(a.octets())
}

/// Inverse of [`ipv4_to_pack_int`].
pub fn ipv4_from_pack_int(v: u32) -> Ipv4Addr {
    Ipv4Addr::from(v.to_le_bytes())
}

impl Pack {
    /// Write `name` as the four-element IP form.
    pub fn set_ip(&mut self, name: &str, ip: IpAddr) -> &mut Self {
        let (is_v6, v6, v4) = match ip {
            IpAddr::V4(a) => (false, [0u8; 16], ipv4_to_pack_int(a)),
            IpAddr::V6(a) => (true, a.octets(), 0),
        };
        self.set_bool(&format!("{name}@ipv6_bool"), is_v6);
        self.set_data(&format!("{name}@ipv6_array"), &v6);
        self.set_int(&format!("{name}@ipv6_scope_id"), 0);
        self.set_int(name, v4)
    }

    /// Read an address written by [`Pack::set_ip`] or by SoftEther. A missing
    /// `@ipv6_bool` means IPv4 (older writers used only the INT).
    pub fn ip(&self, name: &str) -> Result<IpAddr, PackError> {
        if self.bool_or_false(&format!("{name}@ipv6_bool")) {
            let field = format!("{name}@ipv6_array");
            let b: [u8; 16] = self.data_array(&field)?;
            return Ok(IpAddr::V6(Ipv6Addr::from(b)));
        }
        match self.get(name) {
            Some(Values::Int(v)) => match v.first() {
                Some(&x) => Ok(IpAddr::V4(ipv4_from_pack_int(x))),
                None => Err(PackError::Missing {
                    field: name.to_owned(),
                }),
            },
            Some(other) => Err(PackError::WrongType {
                field: name.to_owned(),
                expected: ValueType::Int,
                found: other.value_type(),
            }),
            None => Err(PackError::Missing {
                field: name.to_owned(),
            }),
        }
    }
}
