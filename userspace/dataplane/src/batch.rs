//! Reading a whole hash map a few thousand entries per syscall
//! (`BPF_MAP_LOOKUP_BATCH`, Linux 5.6+), which aya 0.14 does not wrap.
//!
//! Why: the sweeper walked 1M-flow maps with aya's iterator, two syscalls
//! per entry (`get_next_key`, then a lookup). In the bench's 1M-flow run
//! that was 31 % of all CPU samples on the machine while traffic was
//! being measured. A batch walk does the same in ~250 syscalls.

use std::{
    io,
    mem::size_of,
    os::fd::{AsFd, AsRawFd},
};

use aya::{
    Pod,
    maps::{IterableMap, MapData},
};

const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
/// Entries per syscall; grown when one hash bucket holds more (`ENOSPC`).
const START_CHUNK: usize = 4096;

/// The `batch` member of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

/// Calls `each` with every (key, value) of `map`, a batch at a time.
/// Entries the data plane adds or removes meanwhile may be seen or not,
/// as with any walk of a live map.
pub(crate) fn for_each<K: Pod, V: Pod, M: IterableMap<K, V>>(
    map: &M,
    mut each: impl FnMut(&K, &V),
) -> io::Result<()> {
    let map_data: &MapData = map.map();
    let fd = map_data.fd().as_fd().as_raw_fd();
    let mut chunk = START_CHUNK;
    let mut keys: Vec<K> = Vec::new();
    let mut values: Vec<V> = Vec::new();
    // The kernel's hash-map cursor is a bucket index (u32); a u64 leaves room.
    let mut cursor = 0u64;
    let mut first = true;
    loop {
        // SAFETY: K and V are Pod (plain data, any bit pattern valid), so
        // zeroed values are valid; the kernel overwrites the first `count`.
        keys.resize_with(chunk, || unsafe { std::mem::zeroed() });
        values.resize_with(chunk, || unsafe { std::mem::zeroed() });
        let mut next = 0u64;
        let mut attr = BatchAttr {
            in_batch: if first { 0 } else { (&raw const cursor) as u64 },
            out_batch: (&raw mut next) as u64,
            keys: keys.as_mut_ptr() as u64,
            values: values.as_mut_ptr() as u64,
            count: chunk as u32,
            map_fd: fd as u32,
            ..BatchAttr::default()
        };
        // SAFETY: attr points at live buffers of `chunk` keys and values
        // of exactly the map's key and value sizes (aya checked them when
        // the typed map was created) and at two u64 cursors; the kernel
        // writes at most `count` entries and one cursor.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_LOOKUP_BATCH,
                &raw mut attr,
                size_of::<BatchAttr>(),
            )
        };
        let err = (rc < 0).then(io::Error::last_os_error);
        match err.as_ref().and_then(io::Error::raw_os_error) {
            // A bucket larger than the buffer: retry this batch bigger.
            Some(libc::ENOSPC) if chunk < 1 << 20 => {
                chunk *= 2;
                continue;
            }
            None | Some(libc::ENOENT) => {}
            Some(_) => return Err(err.unwrap_or_else(io::Error::last_os_error)),
        }
        let filled = (attr.count as usize).min(chunk);
        for (k, v) in keys[..filled].iter().zip(&values[..filled]) {
            each(k, v);
        }
        if err.is_some() {
            // ENOENT: that was the last batch.
            return Ok(());
        }
        cursor = next;
        first = false;
    }
}
