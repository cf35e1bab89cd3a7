//! LUKS1 and LUKS2 volumes: on-disk formats, keyslots and userspace encrypted I/O.

pub mod af;
pub mod cipher;
pub mod error;
pub mod hash;
pub mod kdf;
pub mod luks1;
pub mod luks2;

pub use error::{Error, Problem, Result};
pub use hash::HashAlg;
pub use kdf::{Argon2Variant, Kdf, PbkdfType};
