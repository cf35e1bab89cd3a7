//! LUKS2, one concept per file: the binary header (`binary`), the JSON metadata
//! (`json`) and its validation (`validate`), the two header copies on disk (`disk`),
//! keyslots (`keyslot`) and tokens (`token`).

pub(crate) mod binary;
pub(crate) mod disk;
pub(crate) mod json;
pub(crate) mod keyslot;
pub(crate) mod token;
mod validate;
