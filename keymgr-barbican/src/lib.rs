//! OpenStack Barbican KeyManager backend with Keystone v3 authentication. Not implemented yet.
