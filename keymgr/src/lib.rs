//! Facade over the keymgr backends. Not implemented yet.
