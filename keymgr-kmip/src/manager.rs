//! [`KmipKeyManager`]: the `KeyManager` operations as KMIP 1.x requests.

use std::collections::HashMap;
use std::sync::Arc;

use keymgr_core::{
    async_trait, Consumer, Context, Error, KeyManager, KeySpec, ListQuery, NewSecret,
    OffsetDateTime, Page, Payload, Result, Secret, SecretId, SecretKind, SecretMetadata,
};

use crate::config::KmipConfig;
use crate::keyinfo;
use crate::model::{self, object_type as ot, op, tag, Attributes, Version};
use crate::transport::Transport;
use crate::ttlv::Item;

/// Application Specific Information namespace of the owning project.
pub(crate) const NS_PROJECT: &str = "x-keymgr-project";
/// Namespace of the consumer list (a JSON array of `[service, type, id]`).
pub(crate) const NS_CONSUMERS: &str = "x-keymgr-consumers";
/// Namespace of what KMIP has no attribute for (JSON: kind, algorithm,
/// bit length, mode, expiration).
pub(crate) const NS_META: &str = "x-keymgr-meta";

/// The attributes read for metadata.
const ATTRIBUTE_NAMES: [&str; 7] = [
    "Object Type",
    "Name",
    "Cryptographic Algorithm",
    "Cryptographic Length",
    "State",
    "Initial Date",
    "Application Specific Information",
];

/// What keymgr keeps in the `x-keymgr-meta` entry.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Meta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kind: Option<SecretKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    algorithm: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bit_length: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expiration: Option<i64>,
}

/// A KMIP server as a key manager (see the crate documentation).
#[derive(Debug)]
pub struct KmipKeyManager {
    transport: Transport,
    /// One lock per secret whose consumer list is being rewritten, so this
    /// client's own concurrent updates of one list do not lose each other
    /// (KMIP 1.x Modify Attribute has no compare-and-set; other clients'
    /// updates are not covered).
    consumer_locks: std::sync::Mutex<HashMap<SecretId, Arc<tokio::sync::Mutex<()>>>>,
}

/// Holds a secret's consumer lock; forgets the lock when no one else waits.
struct ConsumerGuard<'a> {
    map: &'a std::sync::Mutex<HashMap<SecretId, Arc<tokio::sync::Mutex<()>>>>,
    id: SecretId,
    lock: Arc<tokio::sync::Mutex<()>>,
    _guard: tokio::sync::OwnedMutexGuard<()>,
}

impl Drop for ConsumerGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut map) = self.map.lock() {
            // Ours and the map's: no one else holds or waits for it.
            if Arc::strong_count(&self.lock) <= 3 {
                map.remove(&self.id);
            }
        }
    }
}

fn uid(id: &str) -> Item {
    Item::text(tag::UNIQUE_IDENTIFIER, id)
}

fn encode_consumers(list: &[Consumer]) -> String {
    let rows: Vec<[&str; 3]> = list
        .iter()
        .map(|c| [&*c.service, &*c.resource_type, &*c.resource_id])
        .collect();
    serde_json::to_string(&rows).unwrap_or_else(|_| "[]".into())
}

fn decode_consumers(what: &str, data: &str) -> Result<Vec<Consumer>> {
    let rows: Vec<[String; 3]> = serde_json::from_str(data).map_err(|e| Error::Backend {
        what: what.to_string(),
        status: 0,
        message: format!("the {NS_CONSUMERS} entry is not a consumer list: {e}"),
    })?;
    Ok(rows
        .into_iter()
        .map(|[s, t, r]| Consumer::new(s, t, r))
        .collect())
}

fn kind_of_object_type(t: u32) -> Option<SecretKind> {
    Some(match t {
        ot::SYMMETRIC_KEY => SecretKind::Symmetric,
        ot::SECRET_DATA => SecretKind::Passphrase,
        ot::OPAQUE_OBJECT => SecretKind::Opaque,
        ot::PRIVATE_KEY => SecretKind::Private,
        ot::PUBLIC_KEY => SecretKind::Public,
        ot::CERTIFICATE => SecretKind::Certificate,
        _ => return None,
    })
}

fn object_type_of_kind(k: SecretKind) -> u32 {
    match k {
        SecretKind::Symmetric => ot::SYMMETRIC_KEY,
        SecretKind::Passphrase => ot::SECRET_DATA,
        SecretKind::Opaque => ot::OPAQUE_OBJECT,
        SecretKind::Private => ot::PRIVATE_KEY,
        SecretKind::Public => ot::PUBLIC_KEY,
        SecretKind::Certificate => ot::CERTIFICATE,
    }
}

/// A secret's attributes, checked to belong to `ctx`'s project.
struct Owned {
    id: SecretId,
    attrs: Attributes,
    meta: Meta,
    consumers: Vec<Consumer>,
}

impl Owned {
    fn metadata(&self, what: &str) -> Result<SecretMetadata> {
        let kind = self
            .meta
            .kind
            .or_else(|| self.attrs.object_type.and_then(kind_of_object_type))
            .ok_or_else(|| Error::Backend {
                what: what.to_string(),
                status: 0,
                message: "the object is not a kind of secret keymgr handles".into(),
            })?;
        Ok(SecretMetadata {
            id: self.id.clone(),
            kind,
            name: self.attrs.names.first().cloned(),
            algorithm: self.meta.algorithm.clone().or_else(|| {
                self.attrs
                    .algorithm
                    .and_then(keyinfo::algorithm_name)
                    .map(str::to_string)
            }),
            bit_length: self
                .meta
                .bit_length
                .or_else(|| self.attrs.length.and_then(|l| u32::try_from(l).ok())),
            mode: self.meta.mode.clone(),
            created: self
                .attrs
                .initial_date
                .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok()),
            expiration: self
                .meta
                .expiration
                .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok()),
            consumers: self.consumers.clone(),
        })
    }
}

/// The Key Block of a key: format, material, algorithm and length.
fn key_block(format: u32, material: &[u8], alg_len: Option<(u32, i32)>) -> Item {
    let mut items = vec![
        Item::enumeration(tag::KEY_FORMAT_TYPE, format),
        Item::structure(
            tag::KEY_VALUE,
            vec![Item::bytes(tag::KEY_MATERIAL, material)],
        ),
    ];
    if let Some((a, l)) = alg_len {
        items.push(Item::enumeration(tag::CRYPTOGRAPHIC_ALGORITHM, a));
        items.push(Item::integer(tag::CRYPTOGRAPHIC_LENGTH, l));
    }
    Item::structure(tag::KEY_BLOCK, items)
}

/// The key material of a Key Block, with its format.
fn key_material(block: &Item) -> Option<(u32, &[u8])> {
    let format = block.child(tag::KEY_FORMAT_TYPE)?.as_enum()?;
    let value = block.child(tag::KEY_VALUE)?;
    let bytes = value
        .child(tag::KEY_MATERIAL)
        .and_then(Item::as_bytes)
        .or_else(|| value.as_bytes())?;
    Some((format, bytes))
}

impl KmipKeyManager {
    /// A key manager for the server in `config` (no connection is made
    /// until the first call; certificates and keys are read now).
    pub fn new(config: KmipConfig) -> Result<Self> {
        Ok(KmipKeyManager {
            transport: Transport::new(&config)?,
            consumer_locks: std::sync::Mutex::new(HashMap::new()),
        })
    }

    /// Waits for this client's other consumer updates of `id`.
    async fn lock_consumers(&self, id: &SecretId) -> ConsumerGuard<'_> {
        let lock = {
            let mut map = self
                .consumer_locks
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            map.entry(id.clone()).or_default().clone()
        };
        let guard = lock.clone().lock_owned().await;
        ConsumerGuard {
            map: &self.consumer_locks,
            id: id.clone(),
            lock,
            _guard: guard,
        }
    }

    /// The KMIP version in use (asking the server once if not pinned).
    pub async fn kmip_version(&self) -> Result<String> {
        Ok(self.transport.version().await?.to_string())
    }

    /// The attributes every keymgr object is created with: its name, the
    /// owning project, an empty consumer list and the meta entry.
    fn common_attributes(ctx: &Context, name: Option<&str>, meta: &Meta) -> Vec<Item> {
        let mut attrs = Vec::new();
        if let Some(n) = name {
            attrs.push(model::attribute("Name", None, model::name_value(n)));
        }
        let meta_json = serde_json::to_string(meta).unwrap_or_else(|_| "{}".into());
        let asi = [
            (NS_PROJECT, ctx.project_id.clone()),
            (NS_CONSUMERS, "[]".to_string()),
            (NS_META, meta_json),
        ];
        for (i, (ns, data)) in asi.iter().enumerate() {
            attrs.push(model::attribute(
                "Application Specific Information",
                Some(i as i32),
                model::asi_value(ns, data),
            ));
        }
        attrs
    }

    fn id_from(payload: &Item, what: &str) -> Result<SecretId> {
        let raw = payload
            .child(tag::UNIQUE_IDENTIFIER)
            .and_then(Item::as_text)
            .ok_or_else(|| Error::Unavailable {
                what: what.to_string(),
                reason: "the answer has no Unique Identifier".into(),
            })?;
        SecretId::parse(raw)
    }

    /// The Get Attributes payload for `id`.
    fn get_attributes_payload(id: &SecretId) -> Vec<Item> {
        let mut payload = vec![uid(id.as_str())];
        payload.extend(
            ATTRIBUTE_NAMES
                .iter()
                .map(|n| Item::text(tag::ATTRIBUTE_NAME, *n)),
        );
        payload
    }

    /// A Get Attributes answer for `id`, checked to be owned by `ctx`'s
    /// project (`NotFound` otherwise, as for an id that does not exist).
    fn check_owned(ctx: &Context, id: &SecretId, answer: &Item, what: &str) -> Result<Owned> {
        let attrs = Attributes::from_payload(answer);
        match attrs.asi(NS_PROJECT) {
            Some((_, p)) if p == ctx.project_id => {}
            _ => return Err(Error::not_found(what)),
        }
        let meta = attrs
            .asi(NS_META)
            .and_then(|(_, d)| serde_json::from_str(d).ok())
            .unwrap_or_default();
        let consumers = match attrs.asi(NS_CONSUMERS) {
            Some((_, d)) => decode_consumers(what, d)?,
            None => Vec::new(),
        };
        Ok(Owned {
            id: id.clone(),
            attrs,
            meta,
            consumers,
        })
    }

    /// Get Attributes of `id`, checked to be owned by `ctx`'s project.
    async fn owned(&self, ctx: &Context, id: &SecretId, what: &str) -> Result<Owned> {
        let answer = self
            .transport
            .call(op::GET_ATTRIBUTES, Self::get_attributes_payload(id), what)
            .await?;
        Self::check_owned(ctx, id, &answer, what)
    }

    /// Replaces the consumer list of an owned object.
    async fn write_consumers(&self, owned: &Owned, list: &[Consumer], what: &str) -> Result<()> {
        let value = model::asi_value(NS_CONSUMERS, &encode_consumers(list));
        let (operation, index) = match owned.attrs.asi(NS_CONSUMERS) {
            Some((i, _)) => (op::MODIFY_ATTRIBUTE, Some(i as i32)),
            // An object another client made: add the entry (KMIP Add
            // Attribute; servers without it answer Operation Not Supported).
            None => (op::ADD_ATTRIBUTE, None),
        };
        let payload = vec![
            uid(owned.id.as_str()),
            model::attribute("Application Specific Information", index, value),
        ];
        match self.transport.call(operation, payload, what).await {
            Ok(_) => Ok(()),
            // PyKMIP does not know Add Attribute and answers Invalid
            // Message; others say Operation Not Supported.
            Err(e)
                if operation == op::ADD_ATTRIBUTE
                    && matches!(
                        e.kind(),
                        keymgr_core::ErrorKind::InvalidInput | keymgr_core::ErrorKind::Backend
                    ) =>
            {
                Err(Error::Backend {
                    what: what.to_string(),
                    status: model::reason::OPERATION_NOT_SUPPORTED as u16,
                    message: format!(
                        "the object was made by another client without a {NS_CONSUMERS} \
                         entry, and the server refused Add Attribute ({e})"
                    ),
                })
            }
            Err(e) => Err(e),
        }
    }

    async fn register(
        &self,
        ctx: &Context,
        object_type: u32,
        object: Item,
        name: Option<&str>,
        meta: &Meta,
        what: &str,
    ) -> Result<SecretId> {
        let payload = vec![
            Item::enumeration(tag::OBJECT_TYPE, object_type),
            Item::structure(
                tag::TEMPLATE_ATTRIBUTE,
                Self::common_attributes(ctx, name, meta),
            ),
            object,
        ];
        let answer = self.transport.call(op::REGISTER, payload, what).await?;
        Self::id_from(&answer, what)
    }

    /// One Locate: up to `max` ids from `offset` (Offset Items on KMIP 1.3+;
    /// on 1.2, which has none, `offset + max` ids are asked and the first
    /// `offset` dropped).
    async fn locate(
        &self,
        ctx: &Context,
        query: &ListQuery,
        offset: usize,
        max: usize,
    ) -> Result<Vec<String>> {
        let what = "list secrets";
        let version = self.transport.version().await?;
        let has_offset = version >= Version::new(1, 3);
        let ask = if has_offset {
            max
        } else {
            offset.saturating_add(max)
        };
        let mut payload = vec![Item::integer(
            tag::MAXIMUM_ITEMS,
            i32::try_from(ask).unwrap_or(i32::MAX),
        )];
        if has_offset && offset > 0 {
            payload.push(Item::integer(
                tag::OFFSET_ITEMS,
                i32::try_from(offset).map_err(|_| Error::invalid("list offset", "too large"))?,
            ));
        }
        payload.push(model::attribute(
            "Application Specific Information",
            None,
            model::asi_value(NS_PROJECT, &ctx.project_id),
        ));
        if let Some(kind) = query.kind {
            payload.push(model::attribute(
                "Object Type",
                None,
                Item::enumeration(tag::ATTRIBUTE_VALUE, object_type_of_kind(kind)),
            ));
        }
        if let Some(name) = &query.name {
            payload.push(model::attribute("Name", None, model::name_value(name)));
        }
        let answer = self.transport.call(op::LOCATE, payload, what).await?;
        let ids: Vec<String> = answer
            .children_with(tag::UNIQUE_IDENTIFIER)
            .filter_map(Item::as_text)
            .map(str::to_string)
            .collect();
        Ok(if has_offset {
            ids
        } else {
            ids.into_iter().skip(offset).collect()
        })
    }
}

#[async_trait]
impl KeyManager for KmipKeyManager {
    fn backend_name(&self) -> &'static str {
        "kmip"
    }

    async fn create_key(&self, ctx: &Context, spec: &KeySpec) -> Result<SecretId> {
        spec.validate()?;
        let what = "create key";
        let meta = Meta {
            kind: None,
            algorithm: None,
            bit_length: None,
            mode: spec.mode.clone(),
            expiration: spec.expiration.map(OffsetDateTime::unix_timestamp),
        };
        let mut attrs = vec![
            model::attribute(
                "Cryptographic Algorithm",
                None,
                Item::enumeration(tag::ATTRIBUTE_VALUE, model::alg::AES),
            ),
            model::attribute(
                "Cryptographic Length",
                None,
                Item::integer(tag::ATTRIBUTE_VALUE, spec.bit_length as i32),
            ),
            model::attribute(
                "Cryptographic Usage Mask",
                None,
                Item::integer(tag::ATTRIBUTE_VALUE, model::USAGE_ENCRYPT_DECRYPT),
            ),
        ];
        attrs.extend(Self::common_attributes(ctx, spec.name.as_deref(), &meta));
        let payload = vec![
            Item::enumeration(tag::OBJECT_TYPE, ot::SYMMETRIC_KEY),
            Item::structure(tag::TEMPLATE_ATTRIBUTE, attrs),
        ];
        let answer = self.transport.call(op::CREATE, payload, what).await?;
        Self::id_from(&answer, what)
    }

    async fn store(&self, ctx: &Context, secret: NewSecret) -> Result<SecretId> {
        let secret = secret.into_normalized()?;
        let what = format!("store {} secret", secret.kind);
        let bytes = secret.payload.expose();
        let mut meta = Meta {
            kind: Some(secret.kind),
            algorithm: secret.algorithm.clone(),
            bit_length: secret.bit_length,
            mode: secret.mode.clone(),
            expiration: secret.expiration.map(OffsetDateTime::unix_timestamp),
        };
        let (object_type, object) = match secret.kind {
            SecretKind::Symmetric => {
                let name = secret.algorithm.as_deref().unwrap_or("aes");
                let a = keyinfo::symmetric_algorithm(name).ok_or_else(|| {
                    Error::invalid(
                        format!("symmetric key algorithm {name:?}"),
                        "KMIP symmetric keys here are aes, des or 3des",
                    )
                })?;
                let bits = i32::try_from(bytes.len() * 8)
                    .map_err(|_| Error::invalid("symmetric key", "too long"))?;
                (
                    ot::SYMMETRIC_KEY,
                    Item::structure(
                        tag::SYMMETRIC_KEY,
                        vec![key_block(model::key_format::RAW, bytes, Some((a, bits)))],
                    ),
                )
            }
            SecretKind::Passphrase => (
                ot::SECRET_DATA,
                Item::structure(
                    tag::SECRET_DATA,
                    vec![
                        Item::enumeration(tag::SECRET_DATA_TYPE, model::secret_data_type::PASSWORD),
                        key_block(model::key_format::OPAQUE, bytes, None),
                    ],
                ),
            ),
            SecretKind::Opaque => (
                ot::OPAQUE_OBJECT,
                Item::structure(
                    tag::OPAQUE_OBJECT,
                    vec![
                        Item::enumeration(tag::OPAQUE_DATA_TYPE, model::OPAQUE_DATA_TYPE_NONE),
                        Item::bytes(tag::OPAQUE_DATA_VALUE, bytes),
                    ],
                ),
            ),
            SecretKind::Private | SecretKind::Public => {
                let (a, l) = keyinfo::algorithm_and_length(secret.kind, bytes)?;
                if meta.algorithm.is_none() {
                    meta.algorithm = keyinfo::algorithm_name(a).map(str::to_string);
                }
                let (t, tg, fmt) = if secret.kind == SecretKind::Private {
                    (ot::PRIVATE_KEY, tag::PRIVATE_KEY, model::key_format::PKCS8)
                } else {
                    (ot::PUBLIC_KEY, tag::PUBLIC_KEY, model::key_format::X509)
                };
                (
                    t,
                    Item::structure(tg, vec![key_block(fmt, bytes, Some((a, l)))]),
                )
            }
            SecretKind::Certificate => (
                ot::CERTIFICATE,
                Item::structure(
                    tag::CERTIFICATE,
                    vec![
                        Item::enumeration(tag::CERTIFICATE_TYPE, model::CERTIFICATE_TYPE_X509),
                        Item::bytes(tag::CERTIFICATE_VALUE, bytes),
                    ],
                ),
            ),
        };
        self.register(
            ctx,
            object_type,
            object,
            secret.name.as_deref(),
            &meta,
            &what,
        )
        .await
    }

    async fn get(&self, ctx: &Context, id: &SecretId) -> Result<Secret> {
        let what = format!("get secret {id}");
        // Get Attributes and Get in one message (one round trip). The
        // server answers Get whoever owns the object (all tenants share the
        // client certificate); the key material is dropped (zeroized)
        // unless the attributes name the caller's project.
        let mut answers = self
            .transport
            .call_batch(
                vec![
                    (op::GET_ATTRIBUTES, Self::get_attributes_payload(id)),
                    (op::GET, vec![uid(id.as_str())]),
                ],
                &what,
            )
            .await?
            .into_iter();
        let (Some(attributes), Some(answer)) = (answers.next(), answers.next()) else {
            return Err(Error::Unavailable {
                what,
                reason: "the answer lacks a batch item".into(),
            });
        };
        let owned = Self::check_owned(ctx, id, &attributes?, &what)?;
        let mut metadata = owned.metadata(&what)?;
        let answer = answer?;
        let malformed = |why: &str| Error::Unavailable {
            what: what.clone(),
            reason: format!("the Get answer {why}"),
        };
        let object_type = answer
            .child(tag::OBJECT_TYPE)
            .and_then(Item::as_enum)
            .ok_or_else(|| malformed("has no Object Type"))?;
        let (kind, bytes): (SecretKind, &[u8]) = match object_type {
            ot::SYMMETRIC_KEY | ot::PRIVATE_KEY | ot::PUBLIC_KEY => {
                let (obj_tag, want, kind) = match object_type {
                    ot::SYMMETRIC_KEY => (
                        tag::SYMMETRIC_KEY,
                        model::key_format::RAW,
                        SecretKind::Symmetric,
                    ),
                    ot::PRIVATE_KEY => (
                        tag::PRIVATE_KEY,
                        model::key_format::PKCS8,
                        SecretKind::Private,
                    ),
                    _ => (tag::PUBLIC_KEY, model::key_format::X509, SecretKind::Public),
                };
                let (format, bytes) = answer
                    .child(obj_tag)
                    .and_then(|o| o.child(tag::KEY_BLOCK))
                    .and_then(key_material)
                    .ok_or_else(|| malformed("has no key material"))?;
                if format != want {
                    return Err(Error::Backend {
                        what,
                        status: 0,
                        message: format!(
                            "the {kind} key is in KMIP key format {format}, not {want}"
                        ),
                    });
                }
                (kind, bytes)
            }
            ot::SECRET_DATA => {
                let sd = answer
                    .child(tag::SECRET_DATA)
                    .ok_or_else(|| malformed("has no Secret Data"))?;
                let kind = match sd.child(tag::SECRET_DATA_TYPE).and_then(Item::as_enum) {
                    Some(model::secret_data_type::SEED) => SecretKind::Opaque,
                    _ => SecretKind::Passphrase,
                };
                let (_, bytes) = sd
                    .child(tag::KEY_BLOCK)
                    .and_then(key_material)
                    .ok_or_else(|| malformed("has no secret bytes"))?;
                (kind, bytes)
            }
            ot::OPAQUE_OBJECT => (
                SecretKind::Opaque,
                answer
                    .child(tag::OPAQUE_OBJECT)
                    .and_then(|o| o.child(tag::OPAQUE_DATA_VALUE))
                    .and_then(Item::as_bytes)
                    .ok_or_else(|| malformed("has no opaque value"))?,
            ),
            ot::CERTIFICATE => (
                SecretKind::Certificate,
                answer
                    .child(tag::CERTIFICATE)
                    .and_then(|o| o.child(tag::CERTIFICATE_VALUE))
                    .and_then(Item::as_bytes)
                    .ok_or_else(|| malformed("has no certificate value"))?,
            ),
            t => {
                return Err(Error::Backend {
                    what,
                    status: 0,
                    message: format!("KMIP object type {t} is not a secret keymgr handles"),
                })
            }
        };
        if owned.meta.kind.is_none() {
            metadata.kind = kind;
        }
        Ok(Secret {
            metadata,
            payload: Payload::copy_from(bytes),
        })
    }

    async fn metadata(&self, ctx: &Context, id: &SecretId) -> Result<SecretMetadata> {
        let what = format!("metadata of secret {id}");
        self.owned(ctx, id, &what).await?.metadata(&what)
    }

    async fn list(&self, ctx: &Context, query: &ListQuery) -> Result<Page> {
        let limit = query.limit.unwrap_or(100).clamp(1, 1000);
        // One more than the page, to know whether a next page exists.
        let ids = self
            .locate(ctx, query, query.offset, limit.saturating_add(1))
            .await?;
        let more = ids.len() > limit;
        let mut secrets = Vec::with_capacity(limit.min(ids.len()));
        for raw in ids.into_iter().take(limit) {
            let id = SecretId::parse(&raw)?;
            let what = format!("list: metadata of secret {id}");
            match self.owned(ctx, &id, &what).await {
                Ok(o) => {
                    let m = o.metadata(&what)?;
                    if query.matches(&m) {
                        secrets.push(m);
                    }
                }
                // Destroyed between Locate and Get Attributes.
                Err(e) if e.kind() == keymgr_core::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Page {
            secrets,
            total: None,
            next_offset: more.then(|| query.offset + limit),
        })
    }

    async fn delete(&self, ctx: &Context, id: &SecretId, force: bool) -> Result<()> {
        let what = format!("delete secret {id}");
        let owned = self.owned(ctx, id, &what).await?;
        if !owned.consumers.is_empty() && !force {
            return Err(Error::conflict(
                what,
                format!(
                    "the secret has {} consumer(s); remove them or force",
                    owned.consumers.len()
                ),
            ));
        }
        if owned.attrs.state == Some(model::STATE_ACTIVE) {
            let payload = vec![
                uid(id.as_str()),
                Item::structure(
                    tag::REVOCATION_REASON,
                    vec![Item::enumeration(
                        tag::REVOCATION_REASON_CODE,
                        model::REVOCATION_CESSATION,
                    )],
                ),
            ];
            self.transport.call(op::REVOKE, payload, &what).await?;
        }
        self.transport
            .call(op::DESTROY, vec![uid(id.as_str())], &what)
            .await?;
        Ok(())
    }

    async fn add_consumer(&self, ctx: &Context, id: &SecretId, consumer: &Consumer) -> Result<()> {
        let what = format!("add consumer to secret {id}");
        let _lock = self.lock_consumers(id).await;
        let owned = self.owned(ctx, id, &what).await?;
        if owned.consumers.contains(consumer) {
            return Ok(());
        }
        let mut list = owned.consumers.clone();
        list.push(consumer.clone());
        self.write_consumers(&owned, &list, &what).await
    }

    async fn remove_consumer(
        &self,
        ctx: &Context,
        id: &SecretId,
        consumer: &Consumer,
    ) -> Result<()> {
        let what = format!("remove consumer from secret {id}");
        let _lock = self.lock_consumers(id).await;
        let owned = self.owned(ctx, id, &what).await?;
        if !owned.consumers.contains(consumer) {
            return Err(Error::not_found(format!(
                "{what}: consumer {}/{}/{}",
                consumer.service, consumer.resource_type, consumer.resource_id
            )));
        }
        let list: Vec<Consumer> = owned
            .consumers
            .iter()
            .filter(|c| *c != consumer)
            .cloned()
            .collect();
        self.write_consumers(&owned, &list, &what).await
    }

    async fn list_consumers(&self, ctx: &Context, id: &SecretId) -> Result<Vec<Consumer>> {
        let what = format!("list consumers of secret {id}");
        Ok(self.owned(ctx, id, &what).await?.consumers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumers_round_trip_through_json() {
        let list = vec![
            Consumer::new("cinder", "volume", "v/1\"x"),
            Consumer::new("glance", "image", ""),
        ];
        let s = encode_consumers(&list);
        assert_eq!(decode_consumers("w", &s).unwrap(), list);
        assert!(decode_consumers("w", "{").is_err());
    }

    #[test]
    fn every_kind_has_an_object_type_and_back() {
        for k in SecretKind::ALL {
            assert_eq!(kind_of_object_type(object_type_of_kind(k)), Some(k));
        }
    }
}
