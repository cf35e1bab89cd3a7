//! In-memory and sealed single-file KeyManager backend: the embedded default. Not implemented yet.
