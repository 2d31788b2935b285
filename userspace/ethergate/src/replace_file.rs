//! Replacing a file whole: readers (a serve that reloads, an editor) and a
//! crash see either the old contents or the new, never a mix or a
//! truncated file.

use std::{
    fs,
    io::{self, Write},
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::Path,
};

/// Who owns the new file and its permission bits (those of the file it
/// replaces, so an edit never widens or narrows access).
#[derive(Clone, Copy, Debug)]
pub struct FileMode {
    pub mode: u32,
    pub owner: Option<(u32, u32)>,
}

impl FileMode {
    /// The mode and owner `path` has now.
    pub fn of(path: &Path) -> io::Result<Self> {
        use std::os::unix::fs::MetadataExt;
        let meta = fs::metadata(path)?;
        Ok(Self {
            mode: meta.mode() & 0o7777,
            owner: Some((meta.uid(), meta.gid())),
        })
    }
}

/// temp file beside `path` (created exclusively) → write → fsync → owner
/// and mode → rename over `path` → fsync the directory.
pub fn replace(path: &Path, bytes: &[u8], mode: FileMode) -> io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file path"))?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let write = || -> io::Result<()> {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode.mode)
            .open(&tmp)?;
        if let Some((uid, gid)) = mode.owner {
            std::os::unix::fs::fchown(&file, Some(uid), Some(gid))?;
        }
        // After chown: the kernel clears set-id bits on a change of owner.
        file.set_permissions(fs::Permissions::from_mode(mode.mode))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        fs::File::open(dir)?.sync_all()
    };
    write().inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_contents_and_keeps_mode() {
        let dir = std::env::temp_dir().join(format!("eg-replace-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f.toml");
        fs::write(&path, "old").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let mode = FileMode::of(&path).unwrap();
        replace(&path, b"new", mode).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "new");
        assert_eq!(FileMode::of(&path).unwrap().mode, 0o640);
        // No temp file is left behind.
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        fs::remove_dir_all(&dir).unwrap();
    }
}
