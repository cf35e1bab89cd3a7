//! LUKS2: binary headers, JSON metadata and their validation, the two header copies on
//! disk, keyslots and tokens.

pub(crate) mod binary;
pub(crate) mod disk;
pub(crate) mod json;
pub(crate) mod keyslot;
pub(crate) mod token;
