//! Form link tokens: unguessable, shown once, stored only as a hash.

use std::fmt;

use sha2::{Digest, Sha256};

/// Bytes of randomness in a token: 256 bits from the operating system.
const TOKEN_BYTES: usize = 32;

/// The secret in a form link (`https://portal/f/<token>`).
///
/// It is made from 256 bits of the operating system's randomness, put into
/// the link once, and stored only as its SHA-256
/// ([`FormLink::token_hash`](crate::form::FormLink)), so a copy of the database
/// lets no one answer in a respondent's name. `Debug` and `Display` do not
/// print it; [`FormToken::expose`] does, for building the link.
///
/// ```
/// use concertmaster_core::form::FormToken;
///
/// let token = FormToken::generate()?;
/// assert_eq!(token.expose().len(), 64);
/// assert_eq!(format!("{token:?}"), "FormToken(..)");
/// let back = FormToken::from_link(token.expose()).expect("a token read back from a link");
/// assert_eq!(back.hash(), token.hash());
/// assert!(FormToken::from_link("not-a-token").is_none());
/// # Ok::<(), concertmaster_core::store::StoreError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct FormToken(String);

impl FormToken {
    /// A new random token.
    pub fn generate() -> Result<Self, crate::store::StoreError> {
        let mut bytes = [0u8; TOKEN_BYTES];
        getrandom::fill(&mut bytes).map_err(|err| crate::store::StoreError::Unavailable {
            message: format!("the operating system gave no randomness for a form token: {err}"),
        })?;
        Ok(Self(hex::encode(bytes)))
    }

    /// The token in a link a respondent followed; `None` when the text
    /// cannot be a token (so it is refused before any lookup).
    pub fn from_link(text: &str) -> Option<Self> {
        (text.len() == TOKEN_BYTES * 2 && text.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| Self(text.to_ascii_lowercase()))
    }

    /// The token itself, to put into the link sent to the respondent.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What the store keeps and looks the link up by: SHA-256, hex.
    pub fn hash(&self) -> String {
        hex::encode(Sha256::digest(self.0.as_bytes()))
    }
}

impl fmt::Debug for FormToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FormToken(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_distinct_and_hash_stably() {
        let a = FormToken::generate().unwrap();
        let b = FormToken::generate().unwrap();
        assert_ne!(a.expose(), b.expose());
        assert_eq!(a.hash(), a.clone().hash());
        assert_ne!(a.hash(), a.expose(), "the hash is not the token");
        assert_eq!(a.hash().len(), 64);
    }

    #[test]
    fn links_are_read_case_insensitively_and_checked() {
        let a = FormToken::generate().unwrap();
        let upper = a.expose().to_ascii_uppercase();
        assert_eq!(FormToken::from_link(&upper).unwrap().hash(), a.hash());
        assert!(FormToken::from_link(&a.expose()[1..]).is_none());
        assert!(FormToken::from_link(&format!("{}g", &a.expose()[1..])).is_none());
    }
}
