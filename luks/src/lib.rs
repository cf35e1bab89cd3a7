//! LUKS1 and LUKS2 volumes: on-disk formats, keyslots and userspace encrypted I/O.

pub mod cipher;
