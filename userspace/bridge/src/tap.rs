//! The local bridge's tap: a multi-queue `IFF_TAP` device with one
//! `/dev/net/tun` file descriptor per queue, so each core reads and writes
//! its own queue without sharing a descriptor or a lock.
//!
//! Invariants: every [`TapQueue`] of a [`Tap`] is attached to the same
//! device, non-blocking and close-on-exec, and speaks raw Ethernet frames
//! (`IFF_NO_PI`: no 4-byte packet-information prefix). Unless created
//! persistent, the device exists exactly as long as at least one queue
//! descriptor is open — the kernel deletes it when the last one closes, so
//! an exiting or crashing ethergate leaves nothing behind.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::fcntl::{OFlag, open};
use nix::sys::stat::Mode;

use crate::error::{LinkError, TapError};
use crate::link::{self, LinkConfig, LinkKind};

/// `MAX_TAP_QUEUES` in `drivers/net/tun.c`: the kernel refuses a 257th
/// queue with `E2BIG`.
pub const MAX_QUEUES: usize = 256;

/// `IFNAMSIZ` minus the terminating NUL.
const MAX_NAME_LEN: usize = libc::IFNAMSIZ - 1;

/// The flags every queue is attached with. They must be identical for all
/// queues: the kernel refuses (`EINVAL`) to attach a queue whose
/// `IFF_MULTI_QUEUE` differs from the device's.
const TAP_FLAGS: libc::c_int = libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_MULTI_QUEUE;

/// Offloads a tap with [`TapOptions::vnet_hdr`] takes: partial checksums
/// and TCP segmentation for IPv4 and IPv6 (what `ethergate_hub::offload`
/// can cut back into frames). UDP segmentation is left off.
const TAP_OFFLOADS: libc::c_uint = libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6;

// TUNSETIFF reads the ifreq *and writes it back* (the final name), hence the
// read-write form even though the ioctl number says _IOW.
nix::ioctl_readwrite_bad!(tun_set_iff, libc::TUNSETIFF, libc::ifreq);
// TUNSETPERSIST takes its argument by value, not through a pointer.
nix::ioctl_write_int_bad!(tun_set_persist, libc::TUNSETPERSIST);
nix::ioctl_write_int_bad!(tun_set_offload, libc::TUNSETOFFLOAD);

/// Options beyond name and queue count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TapOptions {
    /// Keep the device after the last queue closes (`TUNSETPERSIST`).
    /// Applied to an existing device too: ethergate owns the tap named in
    /// its config, so the config decides whether it outlives the process.
    pub persistent: bool,
    /// Every read and write carries a 10-byte `virtio_net_hdr` first, and
    /// the kernel may hand over (and accept) 64 KiB TCP super-frames and
    /// partial checksums; see `ethergate_hub::offload`. Device-wide.
    pub vnet_hdr: bool,
}

/// A multi-queue tap device and its queue descriptors.
#[derive(Debug)]
pub struct Tap {
    name: String,
    ifindex: u32,
    queues: Vec<TapQueue>,
}

impl Tap {
    /// Creates tap `name` with `queues` queues — or attaches to it if a
    /// multi-queue tap of that name exists — in the calling thread's network
    /// namespace. Not persistent: the device goes away with its last queue.
    pub fn create(name: &str, queues: usize) -> Result<Tap, TapError> {
        Self::create_with(name, queues, TapOptions::default())
    }

    /// [`Tap::create`] with options.
    pub fn create_with(name: &str, queues: usize, options: TapOptions) -> Result<Tap, TapError> {
        validate_name(name)?;
        if queues == 0 || queues > MAX_QUEUES {
            return Err(TapError::InvalidQueueCount {
                name: name.to_owned(),
                queues,
                max: MAX_QUEUES,
            });
        }
        let mut fds = Vec::with_capacity(queues);
        for index in 0..queues {
            fds.push(TapQueue {
                fd: attach_queue(name, index, options.vnet_hdr)?,
                index,
                vnet_hdr: options.vnet_hdr,
            });
        }
        if options.vnet_hdr {
            // SAFETY: an attached /dev/net/tun queue; TUNSETOFFLOAD takes
            // an integer argument and touches no user memory.
            unsafe { tun_set_offload(fds[0].fd.as_raw_fd(), TAP_OFFLOADS as _) }.map_err(
                |source| TapError::SetOffload {
                    name: name.to_owned(),
                    source,
                },
            )?;
        }
        let persist = u64::from(options.persistent);
        // SAFETY: the fd is an attached /dev/net/tun queue; TUNSETPERSIST
        // takes an integer argument and touches no user memory.
        unsafe { tun_set_persist(fds[0].fd.as_raw_fd(), persist as _) }.map_err(|source| {
            TapError::SetPersist {
                name: name.to_owned(),
                persistent: options.persistent,
                source,
            }
        })?;
        // Looked up now, in the namespace the device was created in, so
        // that later configuration by index works from any thread.
        let ifindex = nix::net::if_::if_nametoindex(name).map_err(|source| TapError::Ifindex {
            name: name.to_owned(),
            source,
        })?;
        Ok(Tap {
            name: name.to_owned(),
            ifindex,
            queues: fds,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The device's ifindex in the namespace it was created in.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    pub fn queues(&self) -> &[TapQueue] {
        &self.queues
    }

    /// The queues, to hand one to each core. The device lives as long as
    /// any of them stays open.
    pub fn into_queues(self) -> Vec<TapQueue> {
        self.queues
    }

    /// Applies `config` to the tap (see [`link::configure`]). Runs in the
    /// calling thread's network namespace, which must be the tap's.
    pub fn configure(&self, config: &LinkConfig) -> Result<(), LinkError> {
        link::configure_index(&self.name, self.ifindex, config)
    }
}

/// One queue of a [`Tap`]: a non-blocking descriptor that reads and writes
/// whole Ethernet frames (no FCS, no prefix).
#[derive(Debug)]
pub struct TapQueue {
    fd: OwnedFd,
    index: usize,
    vnet_hdr: bool,
}

impl TapQueue {
    /// Which queue of the tap this is (0-based, in creation order).
    pub fn index(&self) -> usize {
        self.index
    }

    /// Whether reads and writes carry a `virtio_net_hdr` first.
    pub fn vnet_hdr(&self) -> bool {
        self.vnet_hdr
    }

    /// Another descriptor for the same queue (dup(2)), so one thread can
    /// own it for reads while the original stays shared for writes. The
    /// queue lives until every descriptor for it is closed.
    pub fn try_clone(&self) -> io::Result<TapQueue> {
        Ok(TapQueue {
            fd: self.fd.try_clone()?,
            index: self.index,
            vnet_hdr: self.vnet_hdr,
        })
    }

    /// Reads one frame into `buf`, returning its length. A frame longer
    /// than `buf` is truncated by the kernel, so size `buf` for MTU + 14
    /// (with [`TapOptions::vnet_hdr`]: 10 + 65549, since the frame may be a
    /// TSO super-frame). `WouldBlock` when the queue is empty.
    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        nix::unistd::read(&self.fd, buf).map_err(io::Error::from)
    }

    /// Reads one frame if one is queued, without waiting even on a
    /// blocking descriptor (`preadv2` with `RWF_NOWAIT`, which tun
    /// honours); `WouldBlock` when the queue is empty. Lets an io_uring
    /// driver drain a burst after one completion.
    pub fn read_nowait(&self, buf: &mut [u8]) -> io::Result<usize> {
        let iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: one iovec describing `buf`, exclusively borrowed for the
        // call; offset -1 means the file position (tun has none).
        let n =
            unsafe { libc::preadv2(self.fd.as_raw_fd(), &raw const iov, 1, -1, libc::RWF_NOWAIT) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    /// Writes one whole frame (destination MAC first). The kernel takes it
    /// or drops it whole; the count returned is the frame's length.
    pub fn write(&self, frame: &[u8]) -> io::Result<usize> {
        nix::unistd::write(&self.fd, frame).map_err(io::Error::from)
    }

    /// Writes one frame behind a `virtio_net_hdr` (queues of a tap with
    /// [`TapOptions::vnet_hdr`]), without copying them together.
    pub fn write_with_header(&self, header: &[u8], frame: &[u8]) -> io::Result<usize> {
        let iov = [io::IoSlice::new(header), io::IoSlice::new(frame)];
        nix::sys::uio::writev(&self.fd, &iov).map_err(io::Error::from)
    }

    /// Writes one frame, behind `header` (a `virtio_net_hdr`) when given.
    pub fn write_frame(&self, header: Option<&[u8]>, frame: &[u8]) -> io::Result<usize> {
        match header {
            Some(header) => self.write_with_header(header, frame),
            None => self.write(frame),
        }
    }

    /// Clears O_NONBLOCK, for io_uring drivers: io_uring retries a read on
    /// a blocking fd by polling it, but hands EAGAIN back for a
    /// non-blocking one. (The sync `read`/`write` above then block.)
    pub fn set_blocking(&self) -> io::Result<()> {
        use nix::fcntl::{FcntlArg, OFlag, fcntl};
        let flags = fcntl(&self.fd, FcntlArg::F_GETFL).map_err(io::Error::from)?;
        let flags = OFlag::from_bits_truncate(flags) & !OFlag::O_NONBLOCK;
        fcntl(&self.fd, FcntlArg::F_SETFL(flags)).map_err(io::Error::from)?;
        Ok(())
    }
}

impl AsRawFd for TapQueue {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for TapQueue {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl From<TapQueue> for OwnedFd {
    fn from(queue: TapQueue) -> OwnedFd {
        queue.fd
    }
}

/// The kernel's `dev_valid_name`, plus no `%`: a `%d` template would make
/// the kernel pick a name, and the tap must have the configured one.
fn validate_name(name: &str) -> Result<(), TapError> {
    let reason = if name.is_empty() {
        Some("empty")
    } else if name.len() > MAX_NAME_LEN {
        Some("longer than 15 bytes (IFNAMSIZ)")
    } else if name == "." || name == ".." {
        Some("reserved")
    } else if name
        .bytes()
        .any(|b| b == b'/' || b == b':' || b == b'%' || b == 0 || b.is_ascii_whitespace())
    {
        Some("contains '/', ':', '%', NUL or whitespace")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(TapError::InvalidName {
            name: name.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

/// Opens `/dev/net/tun` and attaches the descriptor as queue `index` of tap
/// `name`, creating the device for the first queue if needed.
fn attach_queue(name: &str, index: usize, vnet_hdr: bool) -> Result<OwnedFd, TapError> {
    // O_NONBLOCK on the file is what tun's read/write honour; the server
    // drives the queues from io_uring and must never park a core in read().
    let fd = open(
        "/dev/net/tun",
        OFlag::O_RDWR | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|source| TapError::OpenDevice {
        name: name.to_owned(),
        queue: index,
        source,
    })?;

    // SAFETY: ifreq is plain data (a name array and a union of integers,
    // sockaddrs and a pointer); all-zero bytes are a valid value of it.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    // TUNSETIFF reads its flags as a short.
    let flags = TAP_FLAGS | if vnet_hdr { libc::IFF_VNET_HDR } else { 0 };
    ifr.ifr_ifru.ifru_flags = flags as libc::c_short;

    // SAFETY: `fd` is an open /dev/net/tun descriptor and `ifr` a valid,
    // exclusively borrowed ifreq for the duration of the call; TUNSETIFF
    // reads and writes exactly one ifreq.
    match unsafe { tun_set_iff(fd.as_raw_fd(), &raw mut ifr) } {
        Ok(_) => {}
        // EINVAL for an existing name means the device is not a tap with
        // our flags (a tun, a single-queue tap, a veth, …); EBUSY means a
        // single-queue tap already in use. Say what it is.
        Err(source @ (Errno::EINVAL | Errno::EBUSY)) => {
            return Err(match link::link_kind(name) {
                Ok(Some(
                    found @ (LinkKind::Other(_)
                    | LinkKind::Physical
                    | LinkKind::TunTap { tap: false, .. }
                    | LinkKind::TunTap {
                        multi_queue: false, ..
                    }),
                )) => TapError::NotATap {
                    name: name.to_owned(),
                    found: found.to_string(),
                },
                // No such link after all, a multi-queue tap that still
                // refused us, or netlink failed: report the kernel's errno.
                _ => TapError::Attach {
                    name: name.to_owned(),
                    queue: index,
                    source,
                },
            });
        }
        Err(source) => {
            return Err(TapError::Attach {
                name: name.to_owned(),
                queue: index,
                source,
            });
        }
    }

    // The kernel writes back the name it used; with a literal name it is
    // ours, and anything else would mean we configure the wrong device.
    let got: Vec<u8> = ifr
        .ifr_name
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| *c as u8)
        .collect();
    if got != name.as_bytes() {
        return Err(TapError::Renamed {
            name: name.to_owned(),
            got: String::from_utf8_lossy(&got).into_owned(),
        });
    }
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_kernel_rules() {
        for good in ["tap_00", "t", "a23456789012345"] {
            assert!(validate_name(good).is_ok(), "{good} refused");
        }
        for bad in [
            "",
            ".",
            "..",
            "a234567890123456",
            "tap/0",
            "tap:0",
            "tap%d",
            "tap 0",
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn queue_count_is_checked_before_touching_the_kernel() {
        for queues in [0, MAX_QUEUES + 1] {
            match Tap::create("tap_x", queues) {
                Err(TapError::InvalidQueueCount { queues: q, .. }) => assert_eq!(q, queues),
                other => panic!("{queues} queues: {other:?}"),
            }
        }
    }
}
