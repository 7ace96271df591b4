//! The validator key: created on a node's first start, kept in the data dir as hex in a file
//! only its owner can read (mode 0600), written atomically so a crash never leaves half a key.

use std::{
    fs,
    io::Write,
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
};

use alloy_primitives::hex;
use alloy_signer_local::PrivateKeySigner;

pub const VALIDATOR_KEY_FILE: &str = "validator.key";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} does not hold a valid secp256k1 private key (64 hex characters)")]
    Invalid { path: PathBuf },
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + use<> {
    let path = path.to_path_buf();
    move |source| KeyError::Io {
        action,
        path,
        source,
    }
}

/// Loads the validator key from `data_dir`, creating one if there is none. Returns whether it
/// was created.
pub fn load_or_create(data_dir: &Path) -> Result<(PrivateKeySigner, bool), KeyError> {
    let path = data_dir.join(VALIDATOR_KEY_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => {
            let key = text
                .trim()
                .parse::<PrivateKeySigner>()
                .map_err(|_| KeyError::Invalid { path: path.clone() })?;
            let mode = fs::metadata(&path)
                .map_err(io("inspect", &path))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                tracing::warn!(path = %path.display(), mode = format!("{:o}", mode & 0o777), "validator key is readable by others; chmod 600 it");
            }
            Ok((key, false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = PrivateKeySigner::random();
            match create(data_dir, &path, &key)? {
                true => Ok((key, true)),
                // Another process created it first: use theirs.
                false => load_or_create(data_dir),
            }
        }
        Err(e) => Err(io("read", &path)(e)),
    }
}

/// Writes `key` to a private temporary file, then publishes it with a hard link, which fails
/// if `path` exists, so two nodes starting at once on a new data dir cannot each keep a
/// different key. Returns false if another process's key was there first.
fn create(data_dir: &Path, path: &Path, key: &PrivateKeySigner) -> Result<bool, KeyError> {
    fs::create_dir_all(data_dir).map_err(io("create", data_dir))?;
    let tmp = data_dir.join(format!(".{VALIDATOR_KEY_FILE}.{}.tmp", std::process::id()));
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io("create", &tmp))?;
    file.write_all(hex::encode(key.to_bytes()).as_bytes())
        .map_err(io("write", &tmp))?;
    file.sync_all().map_err(io("sync", &tmp))?;
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            // The new directory entry must survive a crash as surely as the chain it seals.
            fs::File::open(data_dir)
                .and_then(|dir| dir.sync_all())
                .map_err(io("sync", data_dir))?;
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(io("create", path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_created_private_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (key, created) = load_or_create(dir.path()).unwrap();
        assert!(created);
        let mode = fs::metadata(dir.path().join(VALIDATOR_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let (again, created) = load_or_create(dir.path()).unwrap();
        assert!(!created);
        assert_eq!(key.address(), again.address());
    }

    #[test]
    fn garbage_key_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(VALIDATOR_KEY_FILE), "not a key").unwrap();
        assert!(matches!(
            load_or_create(dir.path()),
            Err(KeyError::Invalid { .. })
        ));
    }
}
