//! Connection configs encrypted at rest: AES-256-GCM under named keys, so
//! keys can be rotated and old configs re-encrypted.

use std::collections::BTreeMap;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Bytes of an AES-GCM nonce; a fresh random one per sealing.
const NONCE_BYTES: usize = 12;

/// What an integrity hash made with an HKDF-derived key starts with.
const HKDF_HASH_PREFIX: &str = "hkdf-sha256:";
/// HKDF's `info` for the integrity hash's key.
const HASH_KEY_INFO: &[u8] = b"concertmaster/config-hash";
/// The label the earlier derivation hashed before the key.
const LEGACY_HASH_LABEL: &[u8] = b"concertmaster/config-hash\0";

/// How an integrity hash's HMAC key comes from the sealing key.
#[derive(Debug, Clone, Copy)]
enum Derivation {
    /// HKDF-SHA256, no salt, info [`HASH_KEY_INFO`].
    Hkdf,
    /// SHA-256 of [`LEGACY_HASH_LABEL`] and the key: hashes written before
    /// HKDF, still checked.
    Legacy,
}

/// Why a config could not be sealed or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// The config names a key this key ring does not hold.
    #[error("connection config is sealed with key {key_id:?}, which this key ring does not hold; add that key to open it")]
    UnknownKey {
        /// The key it names.
        key_id: String,
    },
    /// The bytes were changed, or sealed for another record, or with
    /// another key of the same id.
    #[error("connection config sealed with key {key_id:?} does not open: it was altered, belongs to another record, or the key is wrong")]
    Tampered {
        /// The key it names.
        key_id: String,
    },
    /// The operating system gave no randomness for a nonce.
    #[error("no randomness for a nonce: {0}")]
    Randomness(String),
    /// A key was not 32 bytes.
    #[error("key {key_id:?} has {len} bytes; AES-256 keys have 32")]
    KeyLength {
        /// The key.
        key_id: String,
        /// Its length.
        len: usize,
    },
}

/// A config as stored: the id of the key that sealed it, and nonce plus
/// ciphertext (which includes the authentication tag).
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    /// Which key sealed it.
    pub key_id: String,
    /// Nonce, then ciphertext and tag.
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealed")
            .field("key_id", &self.key_id)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

/// The keys connection configs are sealed with: one active key seals, any
/// held key opens. Rotation: add the new key, make it active, and
/// [`reseal`](KeyRing::reseal) every stored config; then drop the old key.
///
/// The associated data binds a sealed config to its record (tenant and
/// connection id): a config copied onto another connection does not open.
///
/// ```
/// use concertmaster_erp::KeyRing;
///
/// let old = KeyRing::new("k1", [7u8; 32])?;
/// let sealed = old.seal(br#"{"password":"hunter2"}"#, b"acme/sap-prod")?;
/// assert!(!sealed.bytes.windows(7).any(|w| w == b"hunter2"));
///
/// let rotated = old.clone().with_key("k2", [9u8; 32])?.activate("k2")?;
/// let resealed = rotated.reseal(&sealed, b"acme/sap-prod")?;
/// assert_eq!(resealed.key_id, "k2");
/// assert_eq!(&*rotated.open(&resealed, b"acme/sap-prod")?, br#"{"password":"hunter2"}"#);
/// # Ok::<(), concertmaster_erp::CryptoError>(())
/// ```
#[derive(Clone)]
pub struct KeyRing {
    active: String,
    keys: BTreeMap<String, Zeroizing<Vec<u8>>>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("active", &self.active)
            .field("keys", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl KeyRing {
    /// A key ring holding one key, `id`, which seals.
    pub fn new(id: impl Into<String>, key: impl AsRef<[u8]>) -> Result<Self, CryptoError> {
        let id = id.into();
        let ring = Self {
            active: id.clone(),
            keys: BTreeMap::new(),
        };
        ring.with_key(id, key)
    }

    /// Also holds key `id` (to open configs sealed with it).
    pub fn with_key(
        mut self,
        id: impl Into<String>,
        key: impl AsRef<[u8]>,
    ) -> Result<Self, CryptoError> {
        let id = id.into();
        let key = key.as_ref();
        if key.len() != 32 {
            return Err(CryptoError::KeyLength {
                key_id: id,
                len: key.len(),
            });
        }
        self.keys.insert(id, Zeroizing::new(key.to_vec()));
        Ok(self)
    }

    /// Seals with key `id` from now on.
    pub fn activate(mut self, id: &str) -> Result<Self, CryptoError> {
        if !self.keys.contains_key(id) {
            return Err(CryptoError::UnknownKey { key_id: id.into() });
        }
        self.active = id.to_string();
        Ok(self)
    }

    /// The key that seals.
    pub fn active_key(&self) -> &str {
        &self.active
    }

    fn cipher(&self, id: &str) -> Result<Aes256Gcm, CryptoError> {
        let key = self
            .keys
            .get(id)
            .ok_or_else(|| CryptoError::UnknownKey { key_id: id.into() })?;
        Aes256Gcm::new_from_slice(key).map_err(|_| CryptoError::KeyLength {
            key_id: id.into(),
            len: key.len(),
        })
    }

    /// The ids of the keys it holds.
    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// Encrypts `plaintext` with the active key, bound to `record`.
    pub fn seal(&self, plaintext: &[u8], record: &[u8]) -> Result<Sealed, CryptoError> {
        let mut nonce = [0u8; NONCE_BYTES];
        getrandom::fill(&mut nonce).map_err(|err| CryptoError::Randomness(err.to_string()))?;
        let ciphertext = self
            .cipher(&self.active)?
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: record,
                },
            )
            .map_err(|_| CryptoError::Tampered {
                key_id: self.active.clone(),
            })?;
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&ciphertext);
        Ok(Sealed {
            key_id: self.active.clone(),
            bytes,
        })
    }

    /// Decrypts `sealed`, which must have been sealed for `record`.
    pub fn open(&self, sealed: &Sealed, record: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let tampered = || CryptoError::Tampered {
            key_id: sealed.key_id.clone(),
        };
        if sealed.bytes.len() < NONCE_BYTES {
            return Err(tampered());
        }
        let (nonce, ciphertext) = sealed.bytes.split_at(NONCE_BYTES);
        let nonce: [u8; NONCE_BYTES] = nonce.try_into().map_err(|_| tampered())?;
        self.cipher(&sealed.key_id)?
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: record,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| tampered())
    }

    /// The integrity hash of `config` under key `key_id`: HMAC-SHA256 of its
    /// canonical JSON (keys sorted), hex, prefixed `hkdf-sha256:`. It tells
    /// whether a config changed without opening the stored one. Keyed, so
    /// that a copy of the store does not allow guessing a password by
    /// hashing candidates; the HMAC key is derived from the sealing key
    /// with HKDF (RFC 5869), so the hash reveals nothing about it.
    pub fn config_hash(
        &self,
        key_id: &str,
        config: &serde_json::Value,
    ) -> Result<String, CryptoError> {
        let hex = self.hash_with(key_id, config, Derivation::Hkdf)?;
        Ok(format!("{HKDF_HASH_PREFIX}{hex}"))
    }

    /// Whether `stored` is the integrity hash of `config` under `key_id`:
    /// one [`config_hash`](Self::config_hash) makes, or one of the earlier
    /// form (bare hex, its HMAC key the SHA-256 of a label and the sealing
    /// key), which connections sealed before HKDF still carry until a
    /// rotation or an update writes them anew.
    pub fn config_hash_matches(
        &self,
        key_id: &str,
        config: &serde_json::Value,
        stored: &str,
    ) -> Result<bool, CryptoError> {
        let (derivation, hex) = match stored.strip_prefix(HKDF_HASH_PREFIX) {
            Some(hex) => (Derivation::Hkdf, hex),
            None => (Derivation::Legacy, stored),
        };
        let expected = self.hash_with(key_id, config, derivation)?;
        // Compared in full, so the time taken says nothing of the hash.
        Ok(expected.len() == hex.len()
            && expected
                .bytes()
                .zip(hex.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0)
    }

    fn hash_with(
        &self,
        key_id: &str,
        config: &serde_json::Value,
        derivation: Derivation,
    ) -> Result<String, CryptoError> {
        let key = self
            .keys
            .get(key_id)
            .ok_or_else(|| CryptoError::UnknownKey {
                key_id: key_id.into(),
            })?;
        let mut hash_key = Zeroizing::new([0u8; 32]);
        match derivation {
            Derivation::Hkdf => hkdf::Hkdf::<Sha256>::new(None, key)
                .expand(HASH_KEY_INFO, hash_key.as_mut_slice())
                .map_err(|_| CryptoError::KeyLength {
                    key_id: key_id.into(),
                    len: hash_key.len(),
                })?,
            Derivation::Legacy => {
                let mut derive = Sha256::new();
                derive.update(LEGACY_HASH_LABEL);
                derive.update(key.as_slice());
                hash_key.copy_from_slice(&derive.finalize());
            }
        }
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(hash_key.as_slice()).map_err(|_| {
            CryptoError::KeyLength {
                key_id: key_id.into(),
                len: hash_key.len(),
            }
        })?;
        // serde_json's maps are ordered by key, so equal configs print equally.
        mac.update(config.to_string().as_bytes());
        Ok(hex::encode(mac.finalize().into_bytes()))
    }

    /// Opens `sealed` and seals it again with the active key: one step of
    /// a key rotation.
    pub fn reseal(&self, sealed: &Sealed, record: &[u8]) -> Result<Sealed, CryptoError> {
        let plaintext = self.open(sealed, record)?;
        self.seal(&plaintext, record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> KeyRing {
        KeyRing::new("k1", [1u8; 32]).unwrap()
    }

    #[test]
    fn a_sealed_config_opens_only_for_its_record_and_unaltered() {
        let ring = ring();
        let sealed = ring.seal(b"secret config", b"acme/sap").unwrap();
        assert_eq!(&*ring.open(&sealed, b"acme/sap").unwrap(), b"secret config");
        assert!(matches!(
            ring.open(&sealed, b"acme/netsuite"),
            Err(CryptoError::Tampered { .. })
        ));
        let mut altered = sealed.clone();
        let last = altered.bytes.len() - 1;
        altered.bytes[last] ^= 1;
        assert!(matches!(
            ring.open(&altered, b"acme/sap"),
            Err(CryptoError::Tampered { .. })
        ));
        let truncated = Sealed {
            key_id: "k1".into(),
            bytes: vec![1, 2, 3],
        };
        assert!(matches!(
            ring.open(&truncated, b"acme/sap"),
            Err(CryptoError::Tampered { .. })
        ));
    }

    #[test]
    fn each_sealing_uses_a_fresh_nonce() {
        let ring = ring();
        let a = ring.seal(b"same", b"r").unwrap();
        let b = ring.seal(b"same", b"r").unwrap();
        assert_ne!(a.bytes, b.bytes);
    }

    #[test]
    fn rotation_reseals_under_the_new_key_and_the_old_key_can_go() {
        let old = ring();
        let sealed = old.seal(b"cfg", b"r").unwrap();
        let both = old
            .with_key("k2", [2u8; 32])
            .unwrap()
            .activate("k2")
            .unwrap();
        let resealed = both.reseal(&sealed, b"r").unwrap();
        assert_eq!(resealed.key_id, "k2");
        let only_new = KeyRing::new("k2", [2u8; 32]).unwrap();
        assert_eq!(&*only_new.open(&resealed, b"r").unwrap(), b"cfg");
        assert!(matches!(
            only_new.open(&sealed, b"r"),
            Err(CryptoError::UnknownKey { .. })
        ));
    }

    #[test]
    fn wrong_keys_are_refused_and_debug_shows_no_key() {
        assert!(matches!(
            KeyRing::new("k", [0u8; 16]),
            Err(CryptoError::KeyLength { len: 16, .. })
        ));
        assert!(ring().activate("nope").is_err());
        let debug = format!("{:?}", ring());
        assert!(debug.contains("k1") && !debug.contains("[1, 1"), "{debug}");
    }

    #[test]
    fn hashes_of_the_earlier_derivation_still_match_and_new_ones_use_hkdf() {
        let ring = ring();
        let config = serde_json::json!({"url": "u", "password": "p"});
        let new = ring.config_hash("k1", &config).unwrap();
        assert!(new.starts_with(HKDF_HASH_PREFIX), "{new}");
        assert!(ring.config_hash_matches("k1", &config, &new).unwrap());
        let legacy = ring.hash_with("k1", &config, Derivation::Legacy).unwrap();
        assert_eq!(legacy.len(), 64);
        assert_ne!(&new[HKDF_HASH_PREFIX.len()..], legacy, "another key");
        assert!(ring.config_hash_matches("k1", &config, &legacy).unwrap());
        let changed = serde_json::json!({"url": "v", "password": "p"});
        assert!(!ring.config_hash_matches("k1", &changed, &new).unwrap());
        assert!(!ring.config_hash_matches("k1", &changed, &legacy).unwrap());
        assert!(!ring
            .config_hash_matches("k1", &config, &format!("{HKDF_HASH_PREFIX}{legacy}"))
            .unwrap());
    }

    #[test]
    fn equal_configs_hash_equally_whatever_their_key_order() {
        let a: serde_json::Value = serde_json::from_str(r#"{"url":"u","user":"x"}"#).unwrap();
        let b: serde_json::Value = serde_json::from_str(r#"{"user":"x","url":"u"}"#).unwrap();
        let ring = ring();
        let hash = |v: &serde_json::Value| ring.config_hash("k1", v).unwrap();
        assert_eq!(hash(&a), hash(&b));
        assert_ne!(hash(&a), hash(&serde_json::json!({"url": "v"})));
        // Not the plain SHA-256 a copy of the store could be checked against.
        let plain = hex::encode(Sha256::digest(a.to_string().as_bytes()));
        assert_ne!(hash(&a), plain);
        let other = KeyRing::new("k1", [9u8; 32]).unwrap();
        assert_ne!(hash(&a), other.config_hash("k1", &a).unwrap());
        assert!(ring.config_hash("k9", &a).is_err());
    }
}
