//! The KV record, in Castellan's layout plus fields Castellan ignores.
//!
//! Castellan's Vault key manager writes, under the id (a uuid4 as 32 hex
//! digits), the record `{type, value, algorithm, bit_length, name, created}`
//! where `value` is the hex of the secret bytes, `type` is one of
//! `symmetric`, `passphrase`, `opaque`, `private`, `public`, `certificate`,
//! `created` is POSIX seconds (or null) and `name` may be a number (its
//! `create_key` defaults the name to the current time). KV v2 wraps the
//! record in `{"data": ...}`.
//!
//! keymgr adds `keymgr_project`, `keymgr_consumers`, `keymgr_mode` and
//! `keymgr_expiration` in the same record. Castellan reads only its own
//! fields, so records stay readable both ways. Keeping the owner in the
//! record (rather than in KV v2 custom metadata) makes the owner part of
//! the one check-and-set write that creates the record: there is no moment
//! when a record exists without its owner.

use keymgr_core::{
    Consumer, Error, NewSecret, OffsetDateTime, Payload, Result, Secret, SecretId, SecretKind,
    SecretMetadata,
};
use serde_json::{json, Map, Value};
use zeroize::{Zeroize, Zeroizing};

/// A decoded record: metadata, owner, and the payload.
pub struct Record {
    /// Everything but the bytes.
    pub metadata: SecretMetadata,
    /// The owning project; `None` for records written by Castellan.
    pub project: Option<String>,
    /// The bytes.
    pub payload: Payload,
}

impl Record {
    /// A new record for `secret`, owned by `project`.
    pub fn new(id: SecretId, project: &str, secret: NewSecret) -> Self {
        Record {
            metadata: SecretMetadata {
                id,
                kind: secret.kind,
                name: secret.name,
                algorithm: secret.algorithm,
                bit_length: secret.bit_length,
                mode: secret.mode,
                created: Some(now_seconds()),
                expiration: secret.expiration,
                consumers: Vec::new(),
            },
            project: Some(project.to_string()),
            payload: secret.payload,
        }
    }

    /// The record as the JSON object stored in KV (not wrapped for v2).
    /// The returned value holds the payload's hex: it is zeroized when the
    /// returned guard drops.
    pub fn to_json(&self) -> Zeroizing<String> {
        let m = &self.metadata;
        let mut obj = Map::new();
        obj.insert("type".into(), json!(m.kind.as_str()));
        obj.insert(
            "value".into(),
            Value::String(hex::encode(self.payload.expose())),
        );
        obj.insert("algorithm".into(), json!(m.algorithm));
        obj.insert("bit_length".into(), json!(m.bit_length));
        obj.insert("name".into(), json!(m.name));
        obj.insert(
            "created".into(),
            json!(m.created.map(|t| t.unix_timestamp())),
        );
        if let Some(p) = &self.project {
            obj.insert("keymgr_project".into(), json!(p));
        }
        obj.insert("keymgr_consumers".into(), json!(m.consumers));
        if let Some(mode) = &m.mode {
            obj.insert("keymgr_mode".into(), json!(mode));
        }
        if let Some(exp) = m.expiration {
            obj.insert("keymgr_expiration".into(), json!(exp.unix_timestamp()));
        }
        let text = Zeroizing::new(serde_json::to_string(&obj).unwrap_or_else(|_| "{}".into()));
        if let Some(Value::String(mut hex_value)) = obj.remove("value") {
            hex_value.zeroize();
        }
        text
    }

    /// Parses a stored record (already unwrapped from v2's `data`).
    pub fn from_json(id: SecretId, mut value: Value) -> Result<Self> {
        let bad = |why: &str| Error::Backend {
            what: format!("read secret {id}"),
            status: 200,
            message: format!("the stored record is not in the expected layout: {why}"),
        };
        let obj = value
            .as_object_mut()
            .ok_or_else(|| bad("not a JSON object"))?;
        let kind: SecretKind = obj
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("no `type`"))?
            .parse()
            .map_err(|_| bad("unknown `type`"))?;
        let hex_value = match obj.remove("value") {
            Some(Value::String(s)) => Zeroizing::new(s),
            _ => return Err(bad("no hex `value`")),
        };
        let bytes = Zeroizing::new(
            hex::decode(hex_value.as_bytes()).map_err(|_| bad("`value` is not hex"))?,
        );
        let text = |k: &str| match obj.get(k) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        let bit_length = obj
            .get("bit_length")
            .and_then(Value::as_u64)
            .and_then(|b| u32::try_from(b).ok());
        let time_of = |k: &str| {
            obj.get(k)
                .and_then(Value::as_i64)
                .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
        };
        let consumers: Vec<Consumer> = match obj.get("keymgr_consumers") {
            Some(v @ Value::Array(_)) => serde_json::from_value(v.clone())
                .map_err(|_| bad("malformed `keymgr_consumers`"))?,
            _ => Vec::new(),
        };
        Ok(Record {
            metadata: SecretMetadata {
                id,
                kind,
                name: text("name"),
                algorithm: text("algorithm"),
                bit_length,
                mode: text("keymgr_mode"),
                created: time_of("created"),
                expiration: time_of("keymgr_expiration"),
                consumers,
            },
            project: text("keymgr_project"),
            payload: Payload::from(bytes),
        })
    }

    /// The record as a fetched secret.
    pub fn into_secret(self) -> Secret {
        Secret {
            metadata: self.metadata,
            payload: self.payload,
        }
    }
}

fn now_seconds() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    OffsetDateTime::from_unix_timestamp(now.unix_timestamp()).unwrap_or(now)
}

/// A Castellan-layout record body for `payload` (hex) as Castellan's
/// `_store_key_value` posts it, for tests and migration tools.
pub fn castellan_record(
    kind: SecretKind,
    payload: &[u8],
    algorithm: Option<&str>,
    bit_length: Option<u32>,
    name: Option<&str>,
    created: Option<i64>,
    kv_version: u8,
) -> Value {
    let rec = json!({
        "type": kind.as_str(),
        "value": hex::encode(payload),
        "algorithm": algorithm,
        "bit_length": bit_length,
        "name": name,
        "created": created,
    });
    if kv_version > 1 {
        json!({ "data": rec })
    } else {
        rec
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fuzz target's property (`fuzz/fuzz_targets/vault_record.rs`):
    /// an accepted record survives parse -> write -> parse unchanged.
    #[test]
    fn accepted_records_survive_parse_write_parse() {
        let inputs = [
            castellan_record(
                SecretKind::Symmetric,
                b"\x00\xff",
                Some("AES"),
                Some(16),
                None,
                None,
                1,
            ),
            json!({"type": "passphrase", "value": "70", "name": 12, "created": 1700000000,
                   "keymgr_project": "p", "keymgr_consumers": [{"service": "s", "resource_type": "t", "resource_id": "r"}],
                   "keymgr_mode": "xts", "keymgr_expiration": 1800000000, "extra": true}),
            json!({"type": "opaque", "value": "", "created": -5, "bit_length": null}),
            json!({"type": "symmetric", "value": "0A0b", "created": 1.5}),
        ];
        let mut accepted = 0;
        for v in inputs {
            let id = SecretId::parse("0123456789abcdef0123456789abcdef").unwrap();
            let Ok(first) = Record::from_json(id.clone(), v.clone()) else {
                continue;
            };
            accepted += 1;
            let written = first.to_json();
            let again: Value = serde_json::from_str(&written).unwrap();
            let second = Record::from_json(id, again).expect("a written record parses");
            assert!(*second.to_json() == *written, "{v}");
            assert_eq!(second.project, first.project);
            assert_eq!(second.payload.expose(), first.payload.expose());
        }
        assert!(accepted >= 2, "only {accepted} inputs were accepted");
    }

    #[test]
    fn reads_castellan_records_including_numeric_names() {
        let id = SecretId::new_random();
        let r = Record::from_json(
            id,
            json!({"type": "symmetric", "value": "00ff10", "algorithm": "AES",
                   "bit_length": 24, "name": 1700000000, "created": 1700000000}),
        )
        .unwrap();
        assert_eq!(r.payload.expose(), &[0x00, 0xff, 0x10]);
        assert_eq!(r.metadata.name.as_deref(), Some("1700000000"));
        assert_eq!(r.metadata.bit_length, Some(24));
        assert!(r.project.is_none());
        assert!(r.metadata.consumers.is_empty());
    }

    #[test]
    fn round_trips_and_rejects_garbage_without_panicking() {
        let id = SecretId::new_random();
        let mut ns = NewSecret::new(SecretKind::Passphrase, b"pw".to_vec()).named("n");
        ns.mode = Some("xts".into());
        let mut rec = Record::new(id.clone(), "proj", ns);
        rec.metadata.consumers.push(Consumer::new("a", "b", "c"));
        let v: Value = serde_json::from_str(&rec.to_json()).unwrap();
        assert_eq!(v["value"], "7077");
        assert_eq!(v["type"], "passphrase");
        let back = Record::from_json(id.clone(), v).unwrap();
        assert_eq!(back.metadata, rec.metadata);
        assert_eq!(back.project.as_deref(), Some("proj"));
        for bad in [
            json!(null),
            json!([]),
            json!({"type": "x", "value": "00"}),
            json!({"type": "opaque", "value": "zz"}),
            json!({"type": "opaque"}),
            json!({"type": "opaque", "value": "00", "keymgr_consumers": [1]}),
        ] {
            assert!(Record::from_json(id.clone(), bad).is_err());
        }
    }

    proptest::proptest! {
        #[test]
        fn any_json_from_the_server_is_parsed_or_refused_without_panicking(
            ty in proptest::option::of("[a-z_]{0,12}"),
            value in proptest::option::of("[0-9a-fA-Fz]{0,40}"),
            bits in proptest::option::of(proptest::num::i64::ANY),
            created in proptest::option::of(proptest::num::i64::ANY),
            name in proptest::option::of(".{0,20}"),
            raw in ".{0,64}",
        ) {
            let id = SecretId::new_random();
            let v = json!({"type": ty, "value": value, "bit_length": bits,
                           "created": created, "name": name, "keymgr_expiration": created});
            if let Ok(r) = Record::from_json(id.clone(), v) {
                proptest::prop_assert_eq!(&r.metadata.id, &id);
            }
            if let Ok(v) = serde_json::from_str::<Value>(&raw) {
                let _ = Record::from_json(id, v);
            }
        }
    }
}
