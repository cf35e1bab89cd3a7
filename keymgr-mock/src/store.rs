//! The in-memory state and Barbican's rules, without any I/O.
//!
//! Every operation takes the caller's [`Context`] and the current time, and
//! either fails without changing anything or applies its change completely.

use std::collections::HashMap;

use keymgr_core::{
    Consumer, Context, Error, KeySpec, ListQuery, NewSecret, OffsetDateTime, Page, Payload, Result,
    Secret, SecretId, SecretKind, SecretMetadata,
};

/// The page size of [`keymgr_core::KeyManager::list`] when the query sets none.
pub const DEFAULT_PAGE_SIZE: usize = 100;
/// The largest page [`keymgr_core::KeyManager::list`] returns; larger limits are lowered to it.
pub const MAX_PAGE_SIZE: usize = 1000;
/// The largest payload accepted, in bytes.
pub const MAX_PAYLOAD_LEN: usize = 1 << 20;
/// The longest name, algorithm, mode, project id or consumer field, in bytes.
pub const MAX_FIELD_LEN: usize = 255;

/// One stored secret.
#[derive(Clone)]
pub(crate) struct Record {
    /// The owning project.
    pub project: String,
    /// Creation order within the store (list order).
    pub seq: u64,
    /// Everything but the payload. `consumers` is kept in insertion order.
    pub meta: SecretMetadata,
    /// The bytes (zeroized on drop).
    pub payload: Payload,
}

/// Every secret of every project.
#[derive(Clone, Default)]
pub(crate) struct Store {
    pub records: HashMap<SecretId, Record>,
    /// The `seq` the next stored secret gets.
    pub next_seq: u64,
}

pub(crate) fn project_of(ctx: &Context) -> Result<&str> {
    let p = ctx.project_id.as_str();
    if p.is_empty() {
        return Err(Error::invalid(
            "context project id",
            "empty: every call must act for a project",
        ));
    }
    if p.len() > MAX_FIELD_LEN {
        return Err(Error::invalid(
            "context project id",
            format!("longer than {MAX_FIELD_LEN} bytes"),
        ));
    }
    Ok(p)
}

pub(crate) fn check_field(what: &str, value: Option<&str>) -> Result<()> {
    match value {
        Some(v) if v.len() > MAX_FIELD_LEN => Err(Error::invalid(
            what,
            format!("{} bytes, longer than {MAX_FIELD_LEN}", v.len()),
        )),
        _ => Ok(()),
    }
}

pub(crate) fn check_consumer(c: &Consumer) -> Result<()> {
    for (what, v) in [
        ("consumer service", &c.service),
        ("consumer resource type", &c.resource_type),
        ("consumer resource id", &c.resource_id),
    ] {
        if v.is_empty() {
            return Err(Error::invalid(what, "empty"));
        }
        check_field(what, Some(v))?;
    }
    Ok(())
}

pub(crate) fn is_expired(meta: &SecretMetadata, now: OffsetDateTime) -> bool {
    meta.expiration.is_some_and(|e| e <= now)
}

/// Checks a new secret for the caller's project (what every store
/// refuses, and this backend's size limits); returns the project id.
pub(crate) fn validate_new(ctx: &Context, secret: &NewSecret) -> Result<String> {
    let project = project_of(ctx)?.to_string();
    secret.validate()?;
    if secret.payload.len() > MAX_PAYLOAD_LEN {
        return Err(Error::invalid(
            "secret payload",
            format!(
                "{} bytes, larger than the {MAX_PAYLOAD_LEN} this backend accepts",
                secret.payload.len()
            ),
        ));
    }
    check_field("secret name", secret.name.as_deref())?;
    check_field("secret algorithm", secret.algorithm.as_deref())?;
    check_field("secret mode", secret.mode.as_deref())?;
    Ok(project)
}

/// A new symmetric key as `spec` describes it, from the OS random source.
pub(crate) fn new_key(ctx: &Context, spec: &KeySpec) -> Result<NewSecret> {
    project_of(ctx)?;
    spec.validate()?;
    let mut bytes = zeroize::Zeroizing::new(vec![0u8; spec.byte_len()]);
    getrandom::fill(&mut bytes).map_err(|e| Error::Unavailable {
        what: "create_key".into(),
        reason: format!("the operating system's random source failed: {e}"),
    })?;
    Ok(NewSecret {
        kind: SecretKind::Symmetric,
        payload: Payload::from(bytes),
        name: spec.name.clone(),
        algorithm: Some(spec.algorithm.to_ascii_lowercase()),
        bit_length: Some(spec.bit_length),
        mode: spec.mode.clone(),
        expiration: spec.expiration,
    })
}

impl Store {
    /// The caller's live (not expired) secret `id`, or `NotFound` naming `op`.
    fn visible(
        &self,
        ctx: &Context,
        id: &SecretId,
        now: OffsetDateTime,
        op: &str,
    ) -> Result<&Record> {
        let project = project_of(ctx)?;
        match self.records.get(id) {
            Some(r) if r.project == project && !is_expired(&r.meta, now) => Ok(r),
            _ => Err(Error::not_found(format!("{op} secret {id}"))),
        }
    }

    fn visible_mut(
        &mut self,
        ctx: &Context,
        id: &SecretId,
        now: OffsetDateTime,
        op: &str,
    ) -> Result<&mut Record> {
        self.visible(ctx, id, now, op)?;
        self.records
            .get_mut(id)
            .ok_or_else(|| Error::not_found(format!("{op} secret {id}")))
    }

    /// Removes expired secrets; whether any was removed.
    pub(crate) fn purge_expired(&mut self, now: OffsetDateTime) -> bool {
        let before = self.records.len();
        self.records.retain(|_, r| !is_expired(&r.meta, now));
        before != self.records.len()
    }

    /// Stores a validated secret for the caller's project.
    pub(crate) fn store(
        &mut self,
        ctx: &Context,
        secret: NewSecret,
        now: OffsetDateTime,
    ) -> Result<SecretId> {
        let project = validate_new(ctx, &secret)?;
        let mut id = SecretId::new_random();
        while self.records.contains_key(&id) {
            id = SecretId::new_random();
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let NewSecret {
            kind,
            payload,
            name,
            algorithm,
            bit_length,
            mode,
            expiration,
        } = secret;
        self.records.insert(
            id.clone(),
            Record {
                project,
                seq,
                meta: SecretMetadata {
                    id: id.clone(),
                    kind,
                    name,
                    algorithm,
                    bit_length,
                    mode,
                    created: Some(now),
                    expiration,
                    consumers: Vec::new(),
                },
                payload,
            },
        );
        Ok(id)
    }

    /// Generates and stores a symmetric key from the OS random source.
    pub(crate) fn create_key(
        &mut self,
        ctx: &Context,
        spec: &KeySpec,
        now: OffsetDateTime,
    ) -> Result<SecretId> {
        let secret = new_key(ctx, spec)?;
        self.store(ctx, secret, now)
    }

    /// The secret with its payload.
    pub(crate) fn get(&self, ctx: &Context, id: &SecretId, now: OffsetDateTime) -> Result<Secret> {
        let r = self.visible(ctx, id, now, "get")?;
        Ok(Secret {
            metadata: r.meta.clone(),
            payload: r.payload.clone(),
        })
    }

    /// The secret's metadata.
    pub(crate) fn metadata(
        &self,
        ctx: &Context,
        id: &SecretId,
        now: OffsetDateTime,
    ) -> Result<SecretMetadata> {
        Ok(self.visible(ctx, id, now, "metadata of")?.meta.clone())
    }

    /// One page of the caller's live secrets matching `query`, in creation order.
    pub(crate) fn list(
        &self,
        ctx: &Context,
        query: &ListQuery,
        now: OffsetDateTime,
    ) -> Result<Page> {
        let project = project_of(ctx)?;
        let mut hits: Vec<&Record> = self
            .records
            .values()
            .filter(|r| r.project == project && !is_expired(&r.meta, now) && query.matches(&r.meta))
            .collect();
        hits.sort_by_key(|r| r.seq);
        let total = hits.len();
        let limit = query
            .limit
            .unwrap_or(DEFAULT_PAGE_SIZE)
            .clamp(1, MAX_PAGE_SIZE);
        let secrets: Vec<SecretMetadata> = hits
            .iter()
            .skip(query.offset)
            .take(limit)
            .map(|r| r.meta.clone())
            .collect();
        let end = query.offset.saturating_add(secrets.len());
        Ok(Page {
            next_offset: (end < total).then_some(end),
            total: Some(total),
            secrets,
        })
    }

    /// Deletes the secret; with consumers, only when `force`.
    pub(crate) fn delete(
        &mut self,
        ctx: &Context,
        id: &SecretId,
        force: bool,
        now: OffsetDateTime,
    ) -> Result<()> {
        let r = self.visible(ctx, id, now, "delete")?;
        if !force && !r.meta.consumers.is_empty() {
            return Err(Error::conflict(
                format!("delete secret {id}"),
                format!(
                    "it has {} consumer(s); remove them or delete with force",
                    r.meta.consumers.len()
                ),
            ));
        }
        self.records.remove(id);
        Ok(())
    }

    /// Stores a copy of the secret (same kind, payload, name, algorithm,
    /// bit length, mode; no consumers, no expiration).
    pub(crate) fn clone_secret(
        &mut self,
        ctx: &Context,
        id: &SecretId,
        now: OffsetDateTime,
    ) -> Result<SecretId> {
        let r = self.visible(ctx, id, now, "clone")?;
        let copy = NewSecret {
            kind: r.meta.kind,
            payload: r.payload.clone(),
            name: r.meta.name.clone(),
            algorithm: r.meta.algorithm.clone(),
            bit_length: r.meta.bit_length,
            mode: r.meta.mode.clone(),
            expiration: None,
        };
        self.store(ctx, copy, now)
    }

    /// Registers a consumer; adding one already registered changes nothing.
    /// Whether it was added.
    pub(crate) fn add_consumer(
        &mut self,
        ctx: &Context,
        id: &SecretId,
        consumer: &Consumer,
        now: OffsetDateTime,
    ) -> Result<bool> {
        let r = self.visible_mut(ctx, id, now, "add consumer to")?;
        check_consumer(consumer)?;
        if r.meta.consumers.contains(consumer) {
            return Ok(false);
        }
        r.meta.consumers.push(consumer.clone());
        Ok(true)
    }

    /// Removes a registered consumer; `NotFound` when it is not registered.
    pub(crate) fn remove_consumer(
        &mut self,
        ctx: &Context,
        id: &SecretId,
        consumer: &Consumer,
        now: OffsetDateTime,
    ) -> Result<()> {
        let r = self.visible_mut(ctx, id, now, "remove consumer from")?;
        match r.meta.consumers.iter().position(|c| c == consumer) {
            Some(i) => {
                r.meta.consumers.remove(i);
                Ok(())
            }
            None => Err(Error::not_found(format!(
                "remove consumer {}/{}/{} from secret {id}",
                consumer.service, consumer.resource_type, consumer.resource_id
            ))),
        }
    }

    /// The consumers, in the order they were added.
    pub(crate) fn list_consumers(
        &self,
        ctx: &Context,
        id: &SecretId,
        now: OffsetDateTime,
    ) -> Result<Vec<Consumer>> {
        Ok(self
            .visible(ctx, id, now, "list consumers of")?
            .meta
            .consumers
            .clone())
    }
}
