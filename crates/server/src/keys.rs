//! API keys (`df_…`, one website) and account tokens (`dft_…`, scopes and a role over chosen
//! websites), stored in `keys.json` only as HMAC-SHA256 digests under a per-directory secret and
//! compared in constant time.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// File name inside the data directory.
pub const KEYS_FILE: &str = "keys.json";

/// What an account token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Scope {
    /// Read analytics (`GET /analytics/*`).
    #[serde(rename = "analytics:read")]
    AnalyticsRead,
    /// Read settings (`GET /admin/websites/{id}/integrations`).
    #[serde(rename = "settings:read")]
    SettingsRead,
    /// Create and delete goals and payments.
    #[serde(rename = "events:write")]
    EventsWrite,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 3] = [
        Scope::AnalyticsRead,
        Scope::SettingsRead,
        Scope::EventsWrite,
    ];

    /// The scope's name (`analytics:read`).
    pub fn name(self) -> &'static str {
        match self {
            Scope::AnalyticsRead => "analytics:read",
            Scope::SettingsRead => "settings:read",
            Scope::EventsWrite => "events:write",
        }
    }

    /// The scope called `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Scope::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// A token's role on its websites.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, including owner-only actions.
    Owner,
    /// Reads and member-level writes.
    Member,
}

/// Who a presented key turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A `df_` key: all member-level rights on one website.
    Website {
        /// The website.
        website_id: String,
    },
    /// A `dft_` token.
    Account {
        /// Its scopes.
        scopes: Vec<Scope>,
        /// The websites it may act on.
        websites: Vec<String>,
        /// Its role on them.
        role: Role,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct WebsiteKey {
    digest: String,
    website_id: String,
    created_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct AccountToken {
    digest: String,
    scopes: Vec<Scope>,
    websites: Vec<String>,
    role: Role,
    created_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct KeyFile {
    /// Hex HMAC key; never leaves this file.
    secret: String,
    website_keys: Vec<WebsiteKey>,
    tokens: Vec<AccountToken>,
}

/// The keys of one data directory.
#[derive(Debug)]
pub struct KeyStore {
    path: PathBuf,
    file: RwLock<KeyFile>,
}

/// A key store failure.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or writing `keys.json` failed.
    #[error("keys file {path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The operating system gave no randomness.
    #[error("no randomness available: {0}")]
    Random(String),
    /// A request to create a token was not valid.
    #[error("{0}")]
    Invalid(String),
}

fn random_hex(bytes: usize) -> Result<String, KeyError> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| KeyError::Random(e.to_string()))?;
    Ok(hex::encode(buf))
}

impl KeyStore {
    /// A key for `purpose` derived from this directory's secret (HMAC-SHA256), so that other
    /// keyed hashes (cookieless visitor ids) need no secret of their own.
    pub fn derive_key(&self, purpose: &str) -> Vec<u8> {
        let secret = self
            .file
            .read()
            .map(|f| f.secret.clone())
            .unwrap_or_default();
        hex::decode(digest(&secret, purpose)).unwrap_or_default()
    }

    /// Opens `dir/keys.json`, creating it with a fresh secret when missing.
    pub fn open(dir: &Path) -> Result<Self, KeyError> {
        let path = dir.join(KEYS_FILE);
        let err = |reason: String| KeyError::File {
            path: path.clone(),
            reason,
        };
        let file = match fs::read_to_string(&path) {
            Ok(text) => {
                // A file written by an older version may be readable by everyone.
                use std::os::unix::fs::PermissionsExt;
                fs::set_permissions(&path, fs::Permissions::from_mode(0o600))
                    .map_err(|e| err(e.to_string()))?;
                serde_json::from_str(&text).map_err(|e| err(e.to_string()))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let f = KeyFile {
                    secret: random_hex(32)?,
                    website_keys: Vec::new(),
                    tokens: Vec::new(),
                };
                save(&path, &f)?;
                f
            }
            Err(e) => return Err(err(e.to_string())),
        };
        Ok(KeyStore {
            path,
            file: RwLock::new(file),
        })
    }

    /// A new `df_` key for `website_id`; only its digest is kept.
    pub fn create_website_key(&self, website_id: &str) -> Result<String, KeyError> {
        let key = format!("df_{}", random_hex(24)?);
        self.update(|f| {
            let digest = digest(&f.secret, &key);
            f.website_keys.push(WebsiteKey {
                digest,
                website_id: website_id.to_owned(),
                created_at: now(),
            });
        })?;
        Ok(key)
    }

    /// A new `dft_` token; only its digest is kept.
    pub fn create_token(
        &self,
        websites: &[String],
        scopes: &[Scope],
        role: Role,
    ) -> Result<String, KeyError> {
        if websites.is_empty() || scopes.is_empty() {
            return Err(KeyError::Invalid(
                "a token needs at least one website and one scope".into(),
            ));
        }
        let token = format!("dft_{}", random_hex(24)?);
        self.update(|f| {
            let digest = digest(&f.secret, &token);
            f.tokens.push(AccountToken {
                digest,
                scopes: scopes.to_vec(),
                websites: websites.to_vec(),
                role,
                created_at: now(),
            });
        })?;
        Ok(token)
    }

    /// Who `presented` is, if anyone. Every stored digest is compared, in constant time each.
    pub fn verify(&self, presented: &str) -> Option<Credential> {
        let f = self.file.read().ok()?;
        let d = digest(&f.secret, presented);
        let mut found = None;
        for k in &f.website_keys {
            if bool::from(k.digest.as_bytes().ct_eq(d.as_bytes())) {
                found = Some(Credential::Website {
                    website_id: k.website_id.clone(),
                });
            }
        }
        for t in &f.tokens {
            if bool::from(t.digest.as_bytes().ct_eq(d.as_bytes())) {
                found = Some(Credential::Account {
                    scopes: t.scopes.clone(),
                    websites: t.websites.clone(),
                    role: t.role,
                });
            }
        }
        found
    }

    fn update(&self, change: impl FnOnce(&mut KeyFile)) -> Result<(), KeyError> {
        let mut f = self
            .file
            .write()
            .map_err(|_| KeyError::Invalid("key store lock poisoned".into()))?;
        let mut next = f.clone();
        change(&mut next);
        save(&self.path, &next)?;
        *f = next;
        Ok(())
    }
}

fn digest(secret: &str, key: &str) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .expect("HMAC accepts any key length");
    mac.update(key.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339()
}

/// Writes `f` to `path` atomically (temporary file, fsync, rename).
fn save(path: &Path, f: &KeyFile) -> Result<(), KeyError> {
    let err = |e: std::io::Error| KeyError::File {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_vec_pretty(f).map_err(|e| KeyError::File {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    // Owner-only: the file holds the secret every key and visitor hash derives from.
    let mut file = {
        use std::os::unix::fs::OpenOptionsExt;
        fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(err)?
    };
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(err)?;
    }
    file.write_all(&text)
        .and_then(|()| file.sync_all())
        .map_err(err)?;
    fs::rename(&tmp, path).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_file_is_owner_only_even_if_it_was_not() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mode = || {
            fs::metadata(dir.path().join(KEYS_FILE))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        let store = KeyStore::open(dir.path()).unwrap();
        store.create_website_key("w1").unwrap();
        assert_eq!(mode(), 0o600);
        fs::set_permissions(
            dir.path().join(KEYS_FILE),
            fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        KeyStore::open(dir.path()).unwrap();
        assert_eq!(mode(), 0o600);
    }

    #[test]
    fn keys_verify_and_only_digests_are_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::open(dir.path()).unwrap();
        let key = store.create_website_key("w1").unwrap();
        let token = store
            .create_token(&["w1".into()], &[Scope::AnalyticsRead], Role::Member)
            .unwrap();
        assert!(key.starts_with("df_") && token.starts_with("dft_"));
        assert_eq!(
            store.verify(&key),
            Some(Credential::Website {
                website_id: "w1".into()
            })
        );
        assert!(matches!(
            store.verify(&token),
            Some(Credential::Account { .. })
        ));
        assert_eq!(store.verify("df_nope"), None);
        let text = fs::read_to_string(dir.path().join(KEYS_FILE)).unwrap();
        assert!(!text.contains(&key) && !text.contains(&token));
        // survives reopening
        let again = KeyStore::open(dir.path()).unwrap();
        assert_eq!(
            again.verify(&key),
            Some(Credential::Website {
                website_id: "w1".into()
            })
        );
    }
}
