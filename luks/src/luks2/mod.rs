//! LUKS2: binary headers, JSON metadata and their validation, the two header copies on
//! disk, keyslots and tokens.

pub mod binary;
pub mod disk;
pub mod json;
pub mod keyslot;
pub mod token;
