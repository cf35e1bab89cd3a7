//! Encryption providers as Cinder and os-brick name them.
//!
//! A Cinder volume type's encryption spec names a *provider*, and os-brick
//! picks the encryptor from it. The names mean what os-brick makes of them,
//! which is not always what `cryptsetup --type` means:
//!
//! | provider (as Cinder stores it) | os-brick encryptor | on disk |
//! |---|---|---|
//! | `luks`, `LuksEncryptor`, `nova.volume.encryptors.luks.LuksEncryptor`, `os_brick.encryptors.luks.LuksEncryptor` | `LuksEncryptor` (`luksFormat --type luks1`) | **LUKS1** |
//! | `luks2`, `os_brick.encryptors.luks.Luks2Encryptor` | `Luks2Encryptor` | LUKS2 |
//! | `plain`, `CryptsetupEncryptor`, `nova.volume.encryptors.cryptsetup.CryptsetupEncryptor`, `os_brick.encryptors.cryptsetup.CryptsetupEncryptor` | `CryptsetupEncryptor` (`cryptsetup create`, the key's passphrase on stdin) | plain dm-crypt, no header |
//!
//! (`cryptsetup --type luks` means LUKS2 on cryptsetup 2.1 and later; a
//! provider `luks` still means LUKS1.) `luks1` is accepted as a clearer
//! spelling of `luks`. The no-op encryptors (`nop`, `NoOpEncryptor`, ...)
//! mean "not encrypted": [`Provider::parse`] says so with an error, and a
//! caller that allows unencrypted volumes checks [`Provider::is_noop`] first.
//!
//! ```
//! use luks::{LuksType, Provider};
//! assert_eq!("luks".parse::<Provider>().unwrap().luks_type(), Some(LuksType::Luks1));
//! assert_eq!("nova.volume.encryptors.luks.LuksEncryptor".parse::<Provider>().unwrap(), Provider::Luks1);
//! assert_eq!("luks2".parse::<Provider>().unwrap().luks_type(), Some(LuksType::Luks2));
//! assert_eq!("CryptsetupEncryptor".parse::<Provider>().unwrap(), Provider::Plain);
//! assert_eq!(Provider::Luks1.as_str(), "luks");
//! ```

use crate::error::{Error, Result};
use crate::options::LuksType;

/// An encryption provider (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    /// os-brick's `LuksEncryptor`: LUKS1.
    Luks1,
    /// os-brick's `Luks2Encryptor`: LUKS2.
    Luks2,
    /// os-brick's `CryptsetupEncryptor`: plain dm-crypt keyed by
    /// `cryptsetup create` from the key's passphrase.
    Plain,
}

const NOOP: [&str; 5] = [
    "nop",
    "NoOpEncryptor",
    "nova.volume.encryptors.nop.NoopEncryptor",
    "os_brick.encryptors.nop.NoopEncryptor",
    "os_brick.encryptors.nop.NoOpEncryptor",
];

impl Provider {
    /// Parses a provider name as Cinder stores it (os-brick's format names
    /// and its legacy class paths).
    pub fn parse(name: &str) -> Result<Self> {
        match name.trim() {
            "luks"
            | "luks1"
            | "LuksEncryptor"
            | "nova.volume.encryptors.luks.LuksEncryptor"
            | "os_brick.encryptors.luks.LuksEncryptor" => Ok(Provider::Luks1),
            "luks2" | "Luks2Encryptor" | "os_brick.encryptors.luks.Luks2Encryptor" => {
                Ok(Provider::Luks2)
            }
            "plain"
            | "CryptsetupEncryptor"
            | "nova.volume.encryptors.cryptsetup.CryptsetupEncryptor"
            | "os_brick.encryptors.cryptsetup.CryptsetupEncryptor" => Ok(Provider::Plain),
            n if Self::is_noop(n) => Err(Error::InvalidOption {
                option: "provider",
                reason: format!("{n:?} is the no-op encryptor: the volume is not encrypted"),
            }),
            n => Err(Error::InvalidOption {
                option: "provider",
                reason: format!(
                    "unknown encryption provider {n:?}: expected luks (LUKS1), luks2 or plain, \
                     or an os-brick encryptor class"
                ),
            }),
        }
    }

    /// Whether `name` is one of the no-op encryptors ("not encrypted").
    pub fn is_noop(name: &str) -> bool {
        NOOP.contains(&name.trim())
    }

    /// os-brick's format name: `luks`, `luks2` or `plain`.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Luks1 => "luks",
            Provider::Luks2 => "luks2",
            Provider::Plain => "plain",
        }
    }

    /// The LUKS version, or `None` for plain dm-crypt.
    pub fn luks_type(self) -> Option<LuksType> {
        match self {
            Provider::Luks1 => Some(LuksType::Luks1),
            Provider::Luks2 => Some(LuksType::Luks2),
            Provider::Plain => None,
        }
    }
}

impl std::str::FromStr for Provider {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Provider::parse(s)
    }
}

impl std::fmt::Display for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_maps_and_round_trips() {
        for p in [Provider::Luks1, Provider::Luks2, Provider::Plain] {
            assert_eq!(p.as_str().parse::<Provider>().unwrap(), p);
        }
        assert!(Provider::parse("NoOpEncryptor")
            .unwrap_err()
            .to_string()
            .contains("not encrypted"));
        let e = Provider::parse("LUKS").unwrap_err().to_string();
        assert!(e.contains("unknown encryption provider \"LUKS\""), "{e}");
    }
}
