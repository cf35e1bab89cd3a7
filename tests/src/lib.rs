//! Cross-crate tests against real servers and real tools. Not implemented yet.
