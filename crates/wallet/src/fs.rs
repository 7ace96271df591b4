//! Writing secrets to disk so that a crash never leaves half a file and nobody but the owner can
//! read them: a private temporary file in the same directory, fsync, rename, fsync the directory.

use std::{
    fs,
    io::Write,
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::Path,
};

use crate::WalletError;

/// Creates `dir` (and parents) readable by its owner only.
pub fn private_dir(dir: &Path) -> Result<(), WalletError> {
    fs::create_dir_all(dir).map_err(WalletError::io("create", dir))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .map_err(WalletError::io("restrict", dir))
}

/// Replaces `path` with `contents` atomically, mode 0600.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), WalletError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(WalletError::io("create", &tmp))?;
        file.write_all(contents)
            .map_err(WalletError::io("write", &tmp))?;
        file.sync_all().map_err(WalletError::io("sync", &tmp))?;
        fs::rename(&tmp, path).map_err(WalletError::io("rename", path))?;
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(WalletError::io("sync", dir))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
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
}
