//! The KeyManager contract.
