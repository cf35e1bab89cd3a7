//! Listing secrets: filters and pages.

use crate::{SecretKind, SecretMetadata};

/// Filters and paging for [`crate::KeyManager::list`].
///
/// `limit: None` lets the backend choose its page size;
/// [`crate::KeyManager::list_all`] follows every page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    /// Only secrets of this kind.
    pub kind: Option<SecretKind>,
    /// Only secrets with exactly this name.
    pub name: Option<String>,
    /// At most this many results in the page.
    pub limit: Option<usize>,
    /// Skip this many matching secrets first.
    pub offset: usize,
}

impl ListQuery {
    /// Everything, backend page size.
    pub fn all() -> Self {
        ListQuery::default()
    }

    /// The same query filtered by kind.
    pub fn kind(mut self, kind: SecretKind) -> Self {
        self.kind = Some(kind);
        self
    }

    /// The same query filtered by name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The same query with a page size and offset.
    pub fn page(mut self, offset: usize, limit: usize) -> Self {
        self.offset = offset;
        self.limit = Some(limit);
        self
    }

    /// Whether `meta` passes the kind and name filters.
    pub fn matches(&self, meta: &SecretMetadata) -> bool {
        self.kind.is_none_or(|k| k == meta.kind)
            && self
                .name
                .as_ref()
                .is_none_or(|n| meta.name.as_deref() == Some(n.as_str()))
    }
}

/// One page of a listing.
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// The secrets in this page, in the backend's order.
    pub secrets: Vec<SecretMetadata>,
    /// Total number of matching secrets, when the backend reports it.
    pub total: Option<usize>,
    /// The offset of the next page, or `None` on the last page.
    pub next_offset: Option<usize>,
}
