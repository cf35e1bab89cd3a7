//! HashiCorp Vault / OpenBao KeyManager backend (KV v2 and v1). Not implemented yet.
