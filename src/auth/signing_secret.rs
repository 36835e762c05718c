use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rand::RngCore;

use super::Secret;

/// File under the data dir that holds the generated signing secret.
pub const SECRET_FILE: &str = "signing-secret";

/// Reads the signing secret from `data_dir`, generating one (32 random bytes, hex, file mode
/// 0600) on first use. Returns a one-line message when the file cannot be read or written.
pub fn load_or_create_secret(data_dir: &Path) -> Result<Secret, String> {
    let path: PathBuf = data_dir.join(SECRET_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let text = text.trim().to_owned();
            if text.len() < 32 {
                return Err(format!("{}: secret is too short; delete the file to generate a new one", path.display()));
            }
            if let Ok(meta) = std::fs::metadata(&path)
                && meta.permissions().mode() & 0o077 != 0
            {
                tracing::warn!(path = %path.display(), "signing secret is readable by other users; chmod 600 it");
            }
            Ok(Secret::new(text))
        }
        Err(e) if e.kind() == ErrorKind::NotFound => create(data_dir, &path),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

fn create(data_dir: &Path, path: &Path) -> Result<Secret, String> {
    crate::util::create_private_dir_all(data_dir).map_err(|e| format!("{}: {e}", data_dir.display()))?;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret = hex::encode(bytes);
    match crate::util::create_private_file(path, secret.as_bytes()) {
        Ok(()) => {}
        // Another process created it first: use theirs.
        Err(e) if e.kind() == ErrorKind::AlreadyExists => return load_or_create_secret(data_dir),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    }
    Ok(Secret::new(secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create_secret(dir.path()).unwrap();
        let b = load_or_create_secret(dir.path()).unwrap();
        assert_eq!(a.expose(), b.expose());
        assert_eq!(a.expose().len(), 64);
        let mode = std::fs::metadata(dir.path().join(SECRET_FILE)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
