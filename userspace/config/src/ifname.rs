//! `InterfaceName`: a Linux network interface name (`tap_00`, `eth0`).
//!
//! Invariant: the name passes the kernel's own `dev_valid_name()` check
//! (net/core/dev.c): 1 to 15 bytes (`IFNAMSIZ` is 16 with the NUL), not
//! `.` or `..`, and no `/`, `:` or whitespace. Catching this at config time
//! turns a confusing `EINVAL` from `TUNSETIFF` into a line number.

use std::fmt;

/// `IFNAMSIZ - 1`: the longest name the kernel accepts.
pub const MAX_INTERFACE_NAME_LEN: usize = 15;

/// Why a string is not a valid interface name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InterfaceNameError {
    #[error("is empty")]
    Empty,
    #[error("is {0} bytes long; Linux allows at most 15")]
    TooLong(usize),
    #[error("is reserved (\".\" and \"..\" are not interface names)")]
    Dots,
    #[error("contains {0:?}; Linux interface names cannot contain '/', ':' or whitespace")]
    Character(char),
}

/// A validated Linux interface name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InterfaceName(String);

impl InterfaceName {
    pub fn new(name: &str) -> Result<Self, InterfaceNameError> {
        if name.is_empty() {
            return Err(InterfaceNameError::Empty);
        }
        if name.len() > MAX_INTERFACE_NAME_LEN {
            return Err(InterfaceNameError::TooLong(name.len()));
        }
        if name == "." || name == ".." {
            return Err(InterfaceNameError::Dots);
        }
        // The kernel tests isspace() on bytes; char::is_whitespace covers it.
        if let Some(c) = name
            .chars()
            .find(|&c| c == '/' || c == ':' || c.is_whitespace())
        {
            return Err(InterfaceNameError::Character(c));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InterfaceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for InterfaceName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_kernel_valid_names() {
        for ok in [
            "tap_00",
            "eth0",
            "enp0s31f6",
            "vpn-mikalab.1",
            "a23456789012345",
        ] {
            assert_eq!(InterfaceName::new(ok).expect("valid").as_str(), ok);
        }
    }

    #[test]
    fn rejects_what_the_kernel_rejects() {
        assert_eq!(InterfaceName::new(""), Err(InterfaceNameError::Empty));
        assert_eq!(
            InterfaceName::new("a234567890123456"),
            Err(InterfaceNameError::TooLong(16))
        );
        assert_eq!(InterfaceName::new(".."), Err(InterfaceNameError::Dots));
        assert_eq!(
            InterfaceName::new("eth0:1"),
            Err(InterfaceNameError::Character(':'))
        );
        assert_eq!(
            InterfaceName::new("tap 0"),
            Err(InterfaceNameError::Character(' '))
        );
        assert_eq!(
            InterfaceName::new("a/b"),
            Err(InterfaceNameError::Character('/'))
        );
    }
}
