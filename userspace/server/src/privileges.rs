//! Threads that parse bytes from the internet hold no capabilities, and
//! the control threads only what reloads and status need.
//!
//! Linux capabilities belong to threads, not processes: serve keeps what
//! reloads and status need (CAP_NET_ADMIN to attach a new hub's tap,
//! CAP_BPF to read and write maps) on its control threads, while the
//! worker threads (TLS, the SoftEther protocol from any client, and the
//! hubs' switching, DHCP and tap I/O) and the session reaper drop all of
//! theirs for good as they start. A logic bug reachable from the network then cannot make
//! those threads change links, maps or programs. It is not a sandbox
//! against code execution: memory is shared with the control threads.

/// `_LINUX_CAPABILITY_VERSION_3`: two 32-bit words per set.
const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// `CAP_NET_ADMIN`: a new hub's tap, its addresses and tc attachments.
pub const CAP_NET_ADMIN: u32 = 12;
/// `CAP_BPF`: every bpf() call (maps for status and reload, links).
pub const CAP_BPF: u32 = 39;
/// What the control threads keep once serve runs.
pub const CONTROL_CAPABILITIES: [u32; 2] = [CAP_NET_ADMIN, CAP_BPF];

/// Lowers the calling thread's effective and permitted sets to `keep`
/// (those it holds), and clears the inheritable set. Threads it starts
/// afterwards inherit the smaller sets.
pub fn keep_only(keep: &[u32]) -> std::io::Result<()> {
    let mut header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut now = [CapData::default(); 2];
    // SAFETY: capget(2) writes two data words into our array.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_capget,
            &mut header as *mut CapHeader,
            now.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut wanted = [0u32; 2];
    for cap in keep {
        let (word, bit) = ((*cap / 32) as usize, cap % 32);
        if let Some(w) = wanted.get_mut(word) {
            *w |= 1 << bit;
        }
    }
    let data = [0, 1].map(|i| CapData {
        effective: now[i].effective & wanted[i],
        permitted: now[i].permitted & wanted[i],
        inheritable: 0,
    });
    // SAFETY: as in `drop_all_capabilities`.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &header as *const CapHeader, data.as_ptr()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// [`keep_only`] the control capabilities, logging (not failing) if the
/// kernel refuses.
pub fn keep_control_capabilities(role: &str) {
    if let Err(e) = keep_only(&CONTROL_CAPABILITIES) {
        tracing::warn!("{role}: cannot drop capabilities: {e}");
    }
}

/// Clears the calling thread's effective, permitted and inheritable
/// capability sets (and with them the ambient set). Irreversible for the
/// thread; threads it starts afterwards inherit nothing.
pub fn drop_all_capabilities() -> std::io::Result<()> {
    let header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [CapData::default(); 2];
    // SAFETY: capset(2) reads a v3 header and two data words we own; pid 0
    // means the calling thread.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &header as *const CapHeader, data.as_ptr()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The calling thread's effective capabilities as a bit mask.
pub fn effective_capabilities() -> std::io::Result<u64> {
    let mut header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget(2) writes two data words into our array.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_capget,
            &mut header as *mut CapHeader,
            data.as_mut_ptr(),
        )
    };
    if rc == 0 {
        Ok(u64::from(data[0].effective) | (u64::from(data[1].effective) << 32))
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Drops the thread's capabilities, logging (not failing) if the kernel
/// refuses: the thread then runs as before, which is no worse than today.
pub fn drop_for_this_thread(role: &str) {
    if let Err(e) = drop_all_capabilities() {
        tracing::warn!("{role}: cannot drop capabilities: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_only_keeps_what_was_held_and_asked_for() {
        let before = effective_capabilities().expect("capget");
        let after = std::thread::spawn(|| {
            keep_only(&CONTROL_CAPABILITIES).expect("capset");
            effective_capabilities().expect("capget")
        })
        .join()
        .expect("thread");
        let asked = (1u64 << CAP_NET_ADMIN) | (1u64 << CAP_BPF);
        assert_eq!(after, before & asked);
    }

    #[test]
    fn a_thread_drops_its_own_capabilities_only() {
        let before = effective_capabilities().expect("capget");
        let in_thread = std::thread::spawn(|| {
            drop_all_capabilities().expect("capset");
            effective_capabilities().expect("capget")
        })
        .join()
        .expect("thread");
        assert_eq!(in_thread, 0);
        assert_eq!(
            effective_capabilities().expect("capget"),
            before,
            "other threads keep theirs"
        );
    }
}
