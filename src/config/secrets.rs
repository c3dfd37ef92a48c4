//! `secretKeyRef` resolution without a secret store component: environment
//! variables (like daprd's local env store) and Kubernetes-style mounted
//! secret files under `$SIDEBUS_SECRETS_DIR/<name>/<key>`.

use std::path::PathBuf;

/// Env var naming the folder of mounted secrets.
pub const SECRETS_DIR_ENV: &str = "SIDEBUS_SECRETS_DIR";

/// Why a secret could not be resolved. Never carries the secret itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// `secretKeyRef.name` empty.
    #[error("secretKeyRef.name is required")]
    NoName,
    /// Nothing found anywhere we looked.
    #[error("secret {name:?} key {key:?} not found (looked in {looked})")]
    NotFound {
        /// `secretKeyRef.name`.
        name: String,
        /// `secretKeyRef.key`.
        key: String,
        /// Where we looked, for the operator.
        looked: String,
    },
    /// The file exists but cannot be read as UTF-8 text.
    #[error("secret file {path:?} unreadable: {reason}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        reason: String,
    },
}

/// Resolves secrets; the mounted-secrets folder is read once at creation.
#[derive(Debug, Clone, Default)]
pub struct SecretResolver {
    dir: Option<PathBuf>,
}

impl SecretResolver {
    /// Uses `$SIDEBUS_SECRETS_DIR` when set and non-empty.
    pub fn from_env() -> Self {
        Self {
            dir: std::env::var_os(SECRETS_DIR_ENV)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
        }
    }

    /// Uses the given folder for mounted secrets (or none).
    pub fn with_dir(dir: Option<PathBuf>) -> Self {
        Self { dir }
    }

    /// The value of `secretKeyRef {name, key}`. When `key` equals `name`
    /// (or is empty) the env var `name` is the secret, as in daprd's local
    /// env store; otherwise the mounted file `<dir>/<name>/<key>` is tried
    /// first, then the env var `name`.
    pub fn resolve(&self, name: &str, key: &str) -> Result<String, SecretError> {
        if name.is_empty() {
            return Err(SecretError::NoName);
        }
        let mut looked = Vec::new();
        if !key.is_empty() && key != name {
            if let Some(dir) = &self.dir {
                let path = dir.join(name).join(key);
                match std::fs::read_to_string(&path) {
                    Ok(text) => return Ok(strip_one_newline(text)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        looked.push(format!("file {}", path.display()));
                    }
                    Err(e) => {
                        return Err(SecretError::Unreadable {
                            path,
                            reason: e.to_string(),
                        })
                    }
                }
            } else {
                looked.push(format!("no {SECRETS_DIR_ENV} set"));
            }
        }
        match std::env::var(name) {
            Ok(v) => Ok(v),
            Err(_) => {
                looked.push(format!("env {name}"));
                Err(SecretError::NotFound {
                    name: name.to_string(),
                    key: key.to_string(),
                    looked: looked.join(", "),
                })
            }
        }
    }
}

/// Secret files written with `echo` end in a newline nobody means as part of
/// the secret; drop exactly one.
fn strip_one_newline(mut text: String) -> String {
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_and_files() {
        std::env::set_var("SIDEBUS_UT_SECRET_A", "from-env");
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let sub = dir.path().join("SIDEBUS_UT_SECRET_A");
        std::fs::create_dir_all(&sub).unwrap_or_else(|e| panic!("mkdir: {e}"));
        std::fs::write(sub.join("password"), "from-file\n").unwrap_or_else(|e| panic!("{e}"));

        let r = SecretResolver::with_dir(Some(dir.path().to_path_buf()));
        assert_eq!(
            r.resolve("SIDEBUS_UT_SECRET_A", "SIDEBUS_UT_SECRET_A")
                .as_deref(),
            Ok("from-env")
        );
        assert_eq!(
            r.resolve("SIDEBUS_UT_SECRET_A", "password").as_deref(),
            Ok("from-file")
        );
        // key file absent → falls back to the env var
        assert_eq!(
            r.resolve("SIDEBUS_UT_SECRET_A", "other").as_deref(),
            Ok("from-env")
        );
        let missing = r.resolve("SIDEBUS_UT_NO_SUCH", "k");
        assert!(
            matches!(missing, Err(SecretError::NotFound { .. })),
            "{missing:?}"
        );
        assert_eq!(r.resolve("", "k"), Err(SecretError::NoName));
    }
}
