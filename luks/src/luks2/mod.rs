//! LUKS2: binary headers, JSON metadata and their validation.

pub mod binary;
pub mod json;
