//! Castellan's fixed key: the `MigrationKeyManager` that lets volumes
//! encrypted in the ConfKeyManager era (one `fixed_key` for the whole
//! cloud, id `00000000-0000-0000-0000-000000000000`) open beside keys of a
//! real backend.
//!
//! As Castellan's `castellan.key_manager.migration`: `get` of the all-zero
//! id returns the fixed key as a symmetric AES key of 8 × its byte length
//! bits, for every project; `delete` of it does nothing; both are
//! `Forbidden` for a context with no project, user or token (Castellan's
//! `None` context). Every other id goes to the real backend.

use std::fmt;
use std::sync::Arc;

use keymgr_core::{
    Consumer, Context, Error, KeyManager, KeySpec, ListQuery, NewSecret, Page, Payload, Result,
    Secret, SecretId, SecretKind, SecretMetadata,
};

/// The id Castellan gives the fixed key, in the form Castellan compares.
pub const FIXED_KEY_ID: &str = "00000000-0000-0000-0000-000000000000";

/// The fixed key's bytes, zeroized on drop and never shown by `Debug`.
///
/// ```
/// use keymgr::FixedKey;
/// let k = FixedKey::from_hex("00112233445566778899AABBCCDDEEFF").unwrap();
/// assert_eq!(k.len(), 16);
/// assert!(!format!("{k:?}").contains("8899"));
/// assert!(FixedKey::from_hex("abc").is_err());
/// ```
#[derive(Clone)]
pub struct FixedKey(Payload);

impl FixedKey {
    /// Parses the hex digits of `fixed_key` (any case, surrounding blanks
    /// ignored). Errors name the option, never its value.
    pub fn from_hex(hex: &str) -> Result<Self> {
        let hex = hex.trim();
        let bad = |why: &str| Error::config(format!("fixed_key: {why}"));
        if hex.is_empty() {
            return Err(bad("empty"));
        }
        if !hex.len().is_multiple_of(2) || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad("not an even number of hex digits"));
        }
        let bytes = zeroize::Zeroizing::new(hex::decode(hex).map_err(|_| bad("not hex"))?);
        Ok(FixedKey(Payload::from(bytes)))
    }

    /// The key's length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the key has no bytes (never true for a parsed key).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The key's bytes.
    pub fn expose(&self) -> &[u8] {
        self.0.expose()
    }
}

impl fmt::Debug for FixedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FixedKey([REDACTED {} bytes])", self.len())
    }
}

/// Whether `id` is the fixed key's id, hyphenated or as 32 hex digits.
pub fn is_fixed_key_id(id: &SecretId) -> bool {
    let s = id.to_string();
    s.eq_ignore_ascii_case(FIXED_KEY_ID) || (s.len() == 32 && s.bytes().all(|b| b == b'0'))
}

/// A [`KeyManager`] that answers Castellan's fixed-key id itself and
/// passes everything else to the real backend (Castellan's
/// `MigrationKeyManager`). [`crate::build`] applies it when `fixed_key` is
/// configured.
///
/// Beyond Castellan (whose other calls reach the backend, which knows no
/// such id): `metadata` of the fixed id describes the fixed key,
/// `clone_secret` of it stores a copy in the real backend, and consumers
/// of it are neither recorded nor refused (`add_consumer` and
/// `remove_consumer` succeed, `list_consumers` is empty), since the key is
/// in no store and its delete is a no-op anyway.
pub struct MigrationKeyManager {
    inner: Arc<dyn KeyManager>,
    key: FixedKey,
}

impl MigrationKeyManager {
    /// Wraps `inner`, answering the fixed id with `key`.
    pub fn new(inner: Arc<dyn KeyManager>, key: FixedKey) -> Self {
        MigrationKeyManager { inner, key }
    }

    fn check_context(ctx: &Context, op: &str) -> Result<()> {
        if ctx.project_id.is_empty() && ctx.user_id.is_empty() && ctx.user_token.is_none() {
            return Err(Error::Forbidden {
                what: format!("{op} secret {FIXED_KEY_ID}"),
                reason: "no context: the fixed key is given only to a project or user".into(),
            });
        }
        Ok(())
    }

    fn fixed_id() -> Result<SecretId> {
        SecretId::parse(FIXED_KEY_ID)
    }

    fn metadata_of_fixed(&self) -> Result<SecretMetadata> {
        Ok(SecretMetadata {
            id: Self::fixed_id()?,
            kind: SecretKind::Symmetric,
            name: None,
            algorithm: Some("aes".into()),
            bit_length: Some(self.key.len() as u32 * 8),
            mode: None,
            created: None,
            expiration: None,
            consumers: Vec::new(),
        })
    }
}

impl fmt::Debug for MigrationKeyManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MigrationKeyManager")
            .field("inner", &self.inner)
            .field("fixed_key", &self.key)
            .finish()
    }
}

#[keymgr_core::async_trait]
impl KeyManager for MigrationKeyManager {
    fn backend_name(&self) -> &'static str {
        self.inner.backend_name()
    }

    async fn create_key(&self, ctx: &Context, spec: &KeySpec) -> Result<SecretId> {
        self.inner.create_key(ctx, spec).await
    }

    async fn store(&self, ctx: &Context, secret: NewSecret) -> Result<SecretId> {
        self.inner.store(ctx, secret).await
    }

    async fn get(&self, ctx: &Context, id: &SecretId) -> Result<Secret> {
        if !is_fixed_key_id(id) {
            return self.inner.get(ctx, id).await;
        }
        Self::check_context(ctx, "get")?;
        tracing::debug!("get of the fixed_key id answered from the configuration");
        Ok(Secret {
            metadata: self.metadata_of_fixed()?,
            payload: self.key.0.clone(),
        })
    }

    async fn metadata(&self, ctx: &Context, id: &SecretId) -> Result<SecretMetadata> {
        if !is_fixed_key_id(id) {
            return self.inner.metadata(ctx, id).await;
        }
        Self::check_context(ctx, "metadata of")?;
        self.metadata_of_fixed()
    }

    async fn list(&self, ctx: &Context, query: &ListQuery) -> Result<Page> {
        self.inner.list(ctx, query).await
    }

    async fn list_all(&self, ctx: &Context, query: &ListQuery) -> Result<Vec<SecretMetadata>> {
        self.inner.list_all(ctx, query).await
    }

    async fn delete(&self, ctx: &Context, id: &SecretId, force: bool) -> Result<()> {
        if !is_fixed_key_id(id) {
            return self.inner.delete(ctx, id, force).await;
        }
        Self::check_context(ctx, "delete")?;
        tracing::debug!("not deleting the key of the fixed_key id");
        Ok(())
    }

    async fn clone_secret(&self, ctx: &Context, id: &SecretId) -> Result<SecretId> {
        if !is_fixed_key_id(id) {
            return self.inner.clone_secret(ctx, id).await;
        }
        let secret = self.get(ctx, id).await?;
        self.inner.store(ctx, NewSecret::from_secret(&secret)).await
    }

    async fn add_consumer(&self, ctx: &Context, id: &SecretId, consumer: &Consumer) -> Result<()> {
        if !is_fixed_key_id(id) {
            return self.inner.add_consumer(ctx, id, consumer).await;
        }
        Self::check_context(ctx, "add consumer to")
    }

    async fn remove_consumer(
        &self,
        ctx: &Context,
        id: &SecretId,
        consumer: &Consumer,
    ) -> Result<()> {
        if !is_fixed_key_id(id) {
            return self.inner.remove_consumer(ctx, id, consumer).await;
        }
        Self::check_context(ctx, "remove consumer from")
    }

    async fn list_consumers(&self, ctx: &Context, id: &SecretId) -> Result<Vec<Consumer>> {
        if !is_fixed_key_id(id) {
            return self.inner.list_consumers(ctx, id).await;
        }
        Self::check_context(ctx, "list consumers of")?;
        Ok(Vec::new())
    }
}

#[cfg(all(test, feature = "mock"))]
mod tests {
    use super::*;
    use keymgr_core::ErrorKind;

    const HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    fn km() -> MigrationKeyManager {
        MigrationKeyManager::new(
            Arc::new(keymgr_mock::MockKeyManager::new()),
            FixedKey::from_hex(HEX).unwrap(),
        )
    }

    #[tokio::test]
    async fn the_all_zero_id_is_the_fixed_key_for_every_project() {
        let km = km();
        for form in [FIXED_KEY_ID, "00000000000000000000000000000000"] {
            let id = SecretId::parse(form).unwrap();
            for project in ["a", "b"] {
                let ctx = Context::new(project, "u");
                let s = km.get(&ctx, &id).await.unwrap();
                assert_eq!(s.payload.expose(), hex::decode(HEX).unwrap());
                assert_eq!(s.metadata.kind, SecretKind::Symmetric);
                assert_eq!(s.metadata.algorithm.as_deref(), Some("aes"));
                assert_eq!(s.metadata.bit_length, Some(256));
                assert_eq!(s.metadata.id.to_string(), FIXED_KEY_ID);
                assert_eq!(km.metadata(&ctx, &id).await.unwrap().bit_length, Some(256));
                // Delete is a silent no-op; the key stays.
                km.delete(&ctx, &id, false).await.unwrap();
                km.delete(&ctx, &id, true).await.unwrap();
                assert_eq!(km.get(&ctx, &id).await.unwrap().payload.len(), 32);
            }
        }
    }

    #[tokio::test]
    async fn no_context_is_forbidden_for_the_fixed_id_only() {
        let km = km();
        let none = Context::new("", "");
        let id = SecretId::parse(FIXED_KEY_ID).unwrap();
        assert_eq!(
            km.get(&none, &id).await.unwrap_err().kind(),
            ErrorKind::Forbidden
        );
        assert_eq!(
            km.delete(&none, &id, false).await.unwrap_err().kind(),
            ErrorKind::Forbidden
        );
        let e = km.get(&none, &id).await.unwrap_err().to_string();
        assert!(!e.contains("0102"), "{e}");
    }

    #[tokio::test]
    async fn other_ids_go_to_the_backend() {
        let km = km();
        let ctx = Context::new("a", "u");
        let id = km.create_key(&ctx, &KeySpec::aes(128)).await.unwrap();
        assert!(!is_fixed_key_id(&id));
        assert_eq!(km.get(&ctx, &id).await.unwrap().payload.len(), 16);
        assert_eq!(
            km.list_all(&ctx, &ListQuery::default())
                .await
                .unwrap()
                .len(),
            1
        );
        km.delete(&ctx, &id, false).await.unwrap();
        assert_eq!(
            km.get(&ctx, &id).await.unwrap_err().kind(),
            ErrorKind::NotFound
        );
        // A copy of the fixed key is a real secret of the backend.
        let fixed = SecretId::parse(FIXED_KEY_ID).unwrap();
        let copy = km.clone_secret(&ctx, &fixed).await.unwrap();
        assert!(!is_fixed_key_id(&copy));
        assert_eq!(
            km.get(&ctx, &copy).await.unwrap().payload.expose(),
            hex::decode(HEX).unwrap()
        );
        let c = Consumer::new("cinder", "volume", "v1");
        km.add_consumer(&ctx, &fixed, &c).await.unwrap();
        assert!(km.list_consumers(&ctx, &fixed).await.unwrap().is_empty());
        km.remove_consumer(&ctx, &fixed, &c).await.unwrap();
    }

    #[test]
    fn debug_and_errors_never_show_the_key() {
        let d = format!("{:?}", km());
        assert!(
            d.contains("REDACTED") && !d.contains("0a0b") && !d.contains("10, 11"),
            "{d}"
        );
        for bad in ["", "0", "zz", "0g1f", "00 11"] {
            let e = FixedKey::from_hex(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Config);
            if !bad.trim().is_empty() {
                assert!(!e.to_string().contains(bad), "{e}");
            }
        }
    }
}
