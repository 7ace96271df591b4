//! The validator key: created on a node's first start, kept in the data dir as hex in a file
//! only its owner can read (mode 0600), written atomically so a crash never leaves half a key.

use std::{
    fs,
    io::Write,
    os::unix::fs::PermissionsExt,
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

/// Writes `key` to a private temporary file, then publishes it under `path` only if nothing is
/// there, so two nodes starting at once on a new data dir cannot each keep a different key.
/// Returns false if another process's key was there first.
///
/// The temporary file has a random name and is created exclusively (`O_EXCL`, mode 0600, by
/// tempfile): a predictable name opened with `create` would follow a symlink planted there by
/// anyone who can write the data dir, and write the key wherever it points.
fn create(data_dir: &Path, path: &Path, key: &PrivateKeySigner) -> Result<bool, KeyError> {
    fs::create_dir_all(data_dir).map_err(io("create", data_dir))?;
    let mut file = tempfile::Builder::new()
        .prefix(&format!(".{VALIDATOR_KEY_FILE}."))
        .suffix(".tmp")
        .permissions(fs::Permissions::from_mode(0o600))
        .tempfile_in(data_dir)
        .map_err(io("create a file in", data_dir))?;
    file.write_all(hex::encode(key.to_bytes()).as_bytes())
        .map_err(io("write", file.path()))?;
    file.as_file().sync_all().map_err(io("sync", file.path()))?;
    // Dropped unpublished (on any error), the temporary file is removed.
    match file.persist_noclobber(path) {
        Ok(_) => {
            // The new directory entry must survive a crash as surely as the chain it seals.
            fs::File::open(data_dir)
                .and_then(|dir| dir.sync_all())
                .map_err(io("sync", data_dir))?;
            Ok(true)
        }
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(io("create", path)(e.error)),
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
    fn a_planted_symlink_never_receives_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        // Every name the old code could have used, and then some, points elsewhere.
        for name in [
            format!(".{VALIDATOR_KEY_FILE}.{}.tmp", std::process::id()),
            format!(".{VALIDATOR_KEY_FILE}.tmp"),
        ] {
            std::os::unix::fs::symlink(elsewhere.path().join(&name), dir.path().join(&name))
                .unwrap();
        }
        let (key, created) = load_or_create(dir.path()).unwrap();
        assert!(created);
        assert_eq!(fs::read_dir(elsewhere.path()).unwrap().count(), 0);
        let text = fs::read_to_string(dir.path().join(VALIDATOR_KEY_FILE)).unwrap();
        assert_eq!(
            text.parse::<PrivateKeySigner>().unwrap().address(),
            key.address()
        );
        // Only the key and the two planted links are left.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 3);
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
