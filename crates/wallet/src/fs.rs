//! Writing secrets to disk so that a crash never leaves half a file and nobody but the owner can
//! read them: a private temporary file in the same directory (tempfile), fsync, rename, fsync
//! the directory.

use std::{fs, io::Write, os::unix::fs::DirBuilderExt, path::Path};

use crate::WalletError;

/// Creates `dir` (and parents) if missing, the directory itself readable by its owner only. An
/// existing directory is left as its owner set it.
pub fn private_dir(dir: &Path) -> Result<(), WalletError> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(WalletError::io("create", parent))?;
    }
    fs::DirBuilder::new()
        .mode(0o700)
        .create(dir)
        .or_else(|e| match e.kind() {
            // Created meanwhile by another process: fine.
            std::io::ErrorKind::AlreadyExists if dir.is_dir() => Ok(()),
            _ => Err(e),
        })
        .map_err(WalletError::io("create", dir))
}

/// Replaces `path` with `contents` atomically: a private (0600) temporary file beside it,
/// written and synced, renamed over it, and the directory synced.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), WalletError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut file = tempfile::Builder::new()
        .prefix(".aicoin-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(WalletError::io("create a file in", dir))?;
    file.write_all(contents)
        .map_err(WalletError::io("write", file.path()))?;
    file.as_file()
        .sync_all()
        .map_err(WalletError::io("sync", file.path()))?;
    // Dropped unpersisted (on any error above), the temporary file is removed.
    file.persist(path)
        .map_err(|e| WalletError::io("rename", path)(e.error))?;
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(WalletError::io("sync", dir))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn files_are_private_and_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let wallet = dir.path().join("w");
        private_dir(&wallet).unwrap();
        let path = wallet.join("secret.json");
        write_private(&path, b"one").unwrap();
        write_private(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&wallet), 0o700);
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(&wallet).unwrap().count(), 1);
    }

    #[test]
    fn an_existing_directory_keeps_its_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().join("shared");
        fs::create_dir(&shared).unwrap();
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o750)).unwrap();
        private_dir(&shared).unwrap();
        assert_eq!(
            fs::metadata(&shared).unwrap().permissions().mode() & 0o777,
            0o750
        );
        private_dir(&shared.join("a/b")).unwrap();
        assert_eq!(
            fs::metadata(shared.join("a/b"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o700
        );
    }
}
