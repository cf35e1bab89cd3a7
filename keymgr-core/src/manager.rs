//! The `KeyManager` trait.

use std::fmt::Debug;

use crate::{
    Consumer, Context, KeySpec, ListQuery, NewSecret, Result, Secret, SecretId, SecretMetadata,
};

/// The page size [`KeyManager::list_all`] asks for when the query sets none.
pub(crate) const LIST_ALL_PAGE_SIZE: usize = 100;

/// A key manager: where storage services keep their keys.
///
/// Async, object safe, `Send + Sync`: hold it as `Arc<dyn KeyManager>`.
/// Every call acts for the tenant in `ctx`; a secret of one project is
/// `NotFound` (or `Forbidden`) for another.
#[crate::async_trait]
pub trait KeyManager: Send + Sync + Debug {
    /// A short name of the backend (`mock`, `barbican`, `vault`).
    fn backend_name(&self) -> &'static str;

    /// Parses an id the way this backend writes ids: its own form out of
    /// any form it accepts (for a Vault backend, the 32 hex digits of a
    /// hyphenated UUID). The default is [`SecretId::parse`], for backends
    /// whose ids are free text.
    fn parse_id(&self, input: &str) -> Result<SecretId> {
        SecretId::parse(input)
    }

    /// Generates and stores a new symmetric key; `spec` is validated with
    /// [`KeySpec::validate`].
    async fn create_key(&self, ctx: &Context, spec: &KeySpec) -> Result<SecretId>;

    /// Stores the caller's own secret (bring your own key).
    async fn store(&self, ctx: &Context, secret: NewSecret) -> Result<SecretId>;

    /// Fetches a secret with its payload.
    async fn get(&self, ctx: &Context, id: &SecretId) -> Result<Secret>;

    /// Fetches a secret's metadata, without the payload.
    async fn metadata(&self, ctx: &Context, id: &SecretId) -> Result<SecretMetadata>;

    /// One page of the project's secrets matching `query`.
    async fn list(&self, ctx: &Context, query: &ListQuery) -> Result<crate::Page>;

    /// Every secret matching the query's filters, following all pages from
    /// `query.offset` (the query's `limit` sets the page size).
    async fn list_all(&self, ctx: &Context, query: &ListQuery) -> Result<Vec<SecretMetadata>> {
        let mut q = query.clone();
        q.limit = Some(q.limit.unwrap_or(LIST_ALL_PAGE_SIZE).max(1));
        let mut out = Vec::new();
        loop {
            let page = self.list(ctx, &q).await?;
            let got = page.secrets.len();
            out.extend(page.secrets);
            match page.next_offset {
                Some(next) if got > 0 && next > q.offset => q.offset = next,
                _ => return Ok(out),
            }
        }
    }

    /// Deletes a secret. With consumers, refused as `Conflict` unless `force`.
    async fn delete(&self, ctx: &Context, id: &SecretId, force: bool) -> Result<()>;

    /// Stores a copy of a secret under a new id (Cinder's
    /// `clone_encryption_key`): same kind, payload, name, algorithm, bit
    /// length and mode; no consumers. Deleting either leaves the other.
    async fn clone_secret(&self, ctx: &Context, id: &SecretId) -> Result<SecretId> {
        let secret = self.get(ctx, id).await?;
        self.store(ctx, NewSecret::from_secret(&secret)).await
    }

    /// Registers `consumer` as a user of the secret (adding an existing one is not an error).
    async fn add_consumer(&self, ctx: &Context, id: &SecretId, consumer: &Consumer) -> Result<()>;

    /// Removes `consumer`; removing one that is not registered is `NotFound`.
    async fn remove_consumer(
        &self,
        ctx: &Context,
        id: &SecretId,
        consumer: &Consumer,
    ) -> Result<()>;

    /// The secret's consumers.
    async fn list_consumers(&self, ctx: &Context, id: &SecretId) -> Result<Vec<Consumer>>;
}
