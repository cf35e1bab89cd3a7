//! KMIP 1.x messages: tag and enumeration numbers, request building and
//! response reading, on top of the [`crate::ttlv`] tree.

use crate::ttlv::{Item, Value};

/// KMIP tags used here (KMIP 1.4 specification, section 9.1.3.1).
pub(crate) mod tag {
    pub(crate) const APPLICATION_DATA: u32 = 0x420002;
    pub(crate) const APPLICATION_NAMESPACE: u32 = 0x420003;
    pub(crate) const ATTRIBUTE: u32 = 0x420008;
    pub(crate) const ATTRIBUTE_INDEX: u32 = 0x420009;
    pub(crate) const ATTRIBUTE_NAME: u32 = 0x42000A;
    pub(crate) const ATTRIBUTE_VALUE: u32 = 0x42000B;
    pub(crate) const BATCH_COUNT: u32 = 0x42000D;
    pub(crate) const BATCH_ITEM: u32 = 0x42000F;
    pub(crate) const CERTIFICATE: u32 = 0x420013;
    pub(crate) const CERTIFICATE_TYPE: u32 = 0x42001D;
    pub(crate) const CERTIFICATE_VALUE: u32 = 0x42001E;
    pub(crate) const CRYPTOGRAPHIC_ALGORITHM: u32 = 0x420028;
    pub(crate) const CRYPTOGRAPHIC_LENGTH: u32 = 0x42002A;
    pub(crate) const KEY_BLOCK: u32 = 0x420040;
    pub(crate) const KEY_FORMAT_TYPE: u32 = 0x420042;
    pub(crate) const KEY_MATERIAL: u32 = 0x420043;
    pub(crate) const KEY_VALUE: u32 = 0x420045;
    pub(crate) const MAXIMUM_ITEMS: u32 = 0x42004F;
    pub(crate) const NAME_TYPE: u32 = 0x420054;
    pub(crate) const NAME_VALUE: u32 = 0x420055;
    pub(crate) const OBJECT_TYPE: u32 = 0x420057;
    pub(crate) const OPAQUE_DATA_TYPE: u32 = 0x420059;
    pub(crate) const OPAQUE_DATA_VALUE: u32 = 0x42005A;
    pub(crate) const OPAQUE_OBJECT: u32 = 0x42005B;
    pub(crate) const OPERATION: u32 = 0x42005C;
    pub(crate) const PRIVATE_KEY: u32 = 0x420064;
    pub(crate) const PROTOCOL_VERSION: u32 = 0x420069;
    pub(crate) const PROTOCOL_VERSION_MAJOR: u32 = 0x42006A;
    pub(crate) const PROTOCOL_VERSION_MINOR: u32 = 0x42006B;
    pub(crate) const PUBLIC_KEY: u32 = 0x42006D;
    pub(crate) const REQUEST_HEADER: u32 = 0x420077;
    pub(crate) const REQUEST_MESSAGE: u32 = 0x420078;
    pub(crate) const REQUEST_PAYLOAD: u32 = 0x420079;
    pub(crate) const RESPONSE_HEADER: u32 = 0x42007A;
    pub(crate) const RESPONSE_MESSAGE: u32 = 0x42007B;
    pub(crate) const RESPONSE_PAYLOAD: u32 = 0x42007C;
    pub(crate) const RESULT_MESSAGE: u32 = 0x42007D;
    pub(crate) const RESULT_REASON: u32 = 0x42007E;
    pub(crate) const RESULT_STATUS: u32 = 0x42007F;
    pub(crate) const REVOCATION_REASON: u32 = 0x420081;
    pub(crate) const REVOCATION_REASON_CODE: u32 = 0x420082;
    pub(crate) const SECRET_DATA: u32 = 0x420085;
    pub(crate) const SECRET_DATA_TYPE: u32 = 0x420086;
    pub(crate) const SYMMETRIC_KEY: u32 = 0x42008F;
    pub(crate) const TEMPLATE_ATTRIBUTE: u32 = 0x420091;
    pub(crate) const UNIQUE_BATCH_ITEM_ID: u32 = 0x420093;
    pub(crate) const UNIQUE_IDENTIFIER: u32 = 0x420094;
    pub(crate) const OFFSET_ITEMS: u32 = 0x4200D4;
}

/// KMIP operations.
pub(crate) mod op {
    pub(crate) const CREATE: u32 = 0x01;
    pub(crate) const REGISTER: u32 = 0x03;
    pub(crate) const LOCATE: u32 = 0x08;
    pub(crate) const GET: u32 = 0x0A;
    pub(crate) const GET_ATTRIBUTES: u32 = 0x0B;
    pub(crate) const ADD_ATTRIBUTE: u32 = 0x0D;
    pub(crate) const MODIFY_ATTRIBUTE: u32 = 0x0E;
    pub(crate) const REVOKE: u32 = 0x13;
    pub(crate) const DESTROY: u32 = 0x14;
    pub(crate) const DISCOVER_VERSIONS: u32 = 0x1E;
}

/// Object Type enumeration.
pub(crate) mod object_type {
    pub(crate) const CERTIFICATE: u32 = 1;
    pub(crate) const SYMMETRIC_KEY: u32 = 2;
    pub(crate) const PUBLIC_KEY: u32 = 3;
    pub(crate) const PRIVATE_KEY: u32 = 4;
    pub(crate) const SECRET_DATA: u32 = 7;
    pub(crate) const OPAQUE_OBJECT: u32 = 8;
}

/// Cryptographic Algorithm enumeration (the values named here).
pub(crate) mod alg {
    pub(crate) const AES: u32 = 0x03;
    pub(crate) const RSA: u32 = 0x04;
    pub(crate) const DSA: u32 = 0x05;
    pub(crate) const ECDSA: u32 = 0x06;
    pub(crate) const EC: u32 = 0x1A;
}

/// Key Format Type enumeration.
pub(crate) mod key_format {
    pub(crate) const RAW: u32 = 1;
    pub(crate) const OPAQUE: u32 = 2;
    pub(crate) const PKCS8: u32 = 4;
    pub(crate) const X509: u32 = 5;
}

/// Secret Data Type enumeration.
pub(crate) mod secret_data_type {
    pub(crate) const PASSWORD: u32 = 1;
    pub(crate) const SEED: u32 = 2;
}

/// Opaque Data Type: KMIP defines only extensions; PyKMIP and others use
/// the first extension value for "none".
pub(crate) const OPAQUE_DATA_TYPE_NONE: u32 = 0x8000_0000;
/// Certificate Type X.509.
pub(crate) const CERTIFICATE_TYPE_X509: u32 = 1;
/// Name Type "Uninterpreted Text String".
pub(crate) const NAME_TYPE_TEXT: u32 = 1;
/// Revocation Reason Code "Cessation of Operation".
pub(crate) const REVOCATION_CESSATION: u32 = 6;
/// State "Active" (the only state that must be revoked before Destroy).
pub(crate) const STATE_ACTIVE: u32 = 2;
/// Cryptographic Usage Mask Encrypt | Decrypt.
pub(crate) const USAGE_ENCRYPT_DECRYPT: i32 = 0x04 | 0x08;

/// Result Reason enumeration values the error mapping distinguishes.
pub(crate) mod reason {
    pub(crate) const ITEM_NOT_FOUND: u32 = 0x01;
    pub(crate) const RESPONSE_TOO_LARGE: u32 = 0x02;
    pub(crate) const AUTHENTICATION_NOT_SUCCESSFUL: u32 = 0x03;
    pub(crate) const INVALID_MESSAGE: u32 = 0x04;
    pub(crate) const OPERATION_NOT_SUPPORTED: u32 = 0x05;
    pub(crate) const MISSING_DATA: u32 = 0x06;
    pub(crate) const INVALID_FIELD: u32 = 0x07;
    pub(crate) const FEATURE_NOT_SUPPORTED: u32 = 0x08;
    pub(crate) const CRYPTOGRAPHIC_FAILURE: u32 = 0x0A;
    pub(crate) const ILLEGAL_OPERATION: u32 = 0x0B;
    pub(crate) const PERMISSION_DENIED: u32 = 0x0C;
    pub(crate) const INDEX_OUT_OF_BOUNDS: u32 = 0x0E;
    pub(crate) const KEY_FORMAT_TYPE_NOT_SUPPORTED: u32 = 0x10;
    pub(crate) const OBJECT_ALREADY_EXISTS: u32 = 0x18;
    pub(crate) const ATTRIBUTE_NOT_FOUND: u32 = 0x21;
    pub(crate) const OBJECT_DESTROYED: u32 = 0x36;
    pub(crate) const OBJECT_NOT_FOUND: u32 = 0x37;
    pub(crate) const NOT_AUTHORISED: u32 = 0x39;
    pub(crate) const WRONG_KEY_LIFECYCLE_STATE: u32 = 0x43;
}

/// A KMIP protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Version {
    pub(crate) major: i32,
    pub(crate) minor: i32,
}

impl Version {
    pub(crate) const fn new(major: i32, minor: i32) -> Self {
        Version { major, minor }
    }

    pub(crate) fn item(self) -> Item {
        Item::structure(
            tag::PROTOCOL_VERSION,
            vec![
                Item::integer(tag::PROTOCOL_VERSION_MAJOR, self.major),
                Item::integer(tag::PROTOCOL_VERSION_MINOR, self.minor),
            ],
        )
    }

    pub(crate) fn from_item(item: &Item) -> Option<Self> {
        Some(Version {
            major: item.child(tag::PROTOCOL_VERSION_MAJOR)?.as_int()?,
            minor: item.child(tag::PROTOCOL_VERSION_MINOR)?.as_int()?,
        })
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// The versions this client speaks, best first: KMIP 1.4 down to 1.2,
/// whose attribute encodings (Template-Attribute, Attribute Name/Index/Value)
/// are the same.
pub(crate) const SUPPORTED: [Version; 3] =
    [Version::new(1, 4), Version::new(1, 3), Version::new(1, 2)];

/// A request message of one or more batch items `(operation, payload)`,
/// carried out in order by the server. Several items carry Unique Batch
/// Item IDs (one byte: their position), which the answer's items echo.
pub(crate) fn request(version: Version, batch: Vec<(u32, Vec<Item>)>) -> Item {
    let mut items = vec![Item::structure(
        tag::REQUEST_HEADER,
        vec![
            version.item(),
            Item::integer(tag::BATCH_COUNT, batch.len() as i32),
        ],
    )];
    let several = batch.len() > 1;
    for (i, (operation, payload)) in batch.into_iter().enumerate() {
        let mut bi = vec![Item::enumeration(tag::OPERATION, operation)];
        if several {
            bi.push(Item::bytes(tag::UNIQUE_BATCH_ITEM_ID, &[i as u8]));
        }
        bi.push(Item::structure(tag::REQUEST_PAYLOAD, payload));
        items.push(Item::structure(tag::BATCH_ITEM, bi));
    }
    Item::structure(tag::REQUEST_MESSAGE, items)
}

/// The result of one batch item of a response.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Success with the payload (an empty structure when there was none).
    Success(Item),
    /// Failure: the Result Reason (if any) and the Result Message.
    Failure {
        reason: Option<u32>,
        message: String,
    },
    /// Left out of the answer after an earlier item of the batch failed.
    NotDone,
}

/// Why a response does not have the expected shape.
#[derive(Debug)]
pub(crate) struct Malformed(pub(crate) &'static str);

/// Reads the batch items of a response message: one per operation of
/// the request, in its order.
pub(crate) fn outcomes(msg: &Item, operations: &[u32]) -> Result<Vec<Outcome>, Malformed> {
    if msg.tag != tag::RESPONSE_MESSAGE {
        return Err(Malformed("not a Response Message"));
    }
    msg.child(tag::RESPONSE_HEADER)
        .ok_or(Malformed("no Response Header"))?;
    let items: Vec<&Item> = msg.children_with(tag::BATCH_ITEM).collect();
    if operations.len() == 1 {
        if items.len() != 1 {
            return Err(Malformed("the answer does not have one Batch Item"));
        }
        return Ok(vec![outcome(items[0], operations[0])?]);
    }
    if items.len() > operations.len() {
        return Err(Malformed(
            "the answer has more Batch Items than the request",
        ));
    }
    let mut out = Vec::with_capacity(operations.len());
    for (i, op) in operations.iter().enumerate() {
        let found = items.iter().find(|bi| {
            bi.child(tag::UNIQUE_BATCH_ITEM_ID).and_then(Item::as_bytes) == Some(&[i as u8][..])
        });
        out.push(match found {
            Some(bi) => outcome(bi, *op)?,
            None => Outcome::NotDone,
        });
    }
    // A server stops at the first failed item (KMIP's default Batch Error
    // Continuation Option) and may leave the rest out; a missing item
    // with no failure before it is a broken answer.
    let first_missing = out.iter().position(|o| matches!(o, Outcome::NotDone));
    if let Some(m) = first_missing {
        if !out[..m]
            .iter()
            .any(|o| matches!(o, Outcome::Failure { .. }))
        {
            return Err(Malformed("a Batch Item is missing from the answer"));
        }
    }
    Ok(out)
}

/// Reads one response batch item.
fn outcome(bi: &Item, operation: u32) -> Result<Outcome, Malformed> {
    if let Some(o) = bi.child(tag::OPERATION) {
        if o.as_enum() != Some(operation) {
            return Err(Malformed("the answer is for another operation"));
        }
    }
    let status = bi
        .child(tag::RESULT_STATUS)
        .and_then(Item::as_enum)
        .ok_or(Malformed("no Result Status"))?;
    if status == 0 {
        let payload = bi
            .child(tag::RESPONSE_PAYLOAD)
            .cloned()
            .unwrap_or_else(|| Item::structure(tag::RESPONSE_PAYLOAD, Vec::new()));
        if !matches!(payload.value, Value::Structure(_)) {
            return Err(Malformed("Response Payload is not a structure"));
        }
        return Ok(Outcome::Success(payload));
    }
    Ok(Outcome::Failure {
        reason: bi.child(tag::RESULT_REASON).and_then(Item::as_enum),
        message: bi
            .child(tag::RESULT_MESSAGE)
            .and_then(Item::as_text)
            .unwrap_or("")
            .chars()
            .take(300)
            .collect(),
    })
}

/// A KMIP 1.x Attribute structure.
pub(crate) fn attribute(name: &str, index: Option<i32>, value: Item) -> Item {
    let mut items = vec![Item::text(tag::ATTRIBUTE_NAME, name)];
    if let Some(i) = index {
        items.push(Item::integer(tag::ATTRIBUTE_INDEX, i));
    }
    items.push(Item {
        tag: tag::ATTRIBUTE_VALUE,
        value: value.value,
    });
    Item::structure(tag::ATTRIBUTE, items)
}

/// The value of a Name attribute.
pub(crate) fn name_value(name: &str) -> Item {
    Item::structure(
        tag::ATTRIBUTE_VALUE,
        vec![
            Item::text(tag::NAME_VALUE, name),
            Item::enumeration(tag::NAME_TYPE, NAME_TYPE_TEXT),
        ],
    )
}

/// The value of an Application Specific Information attribute.
pub(crate) fn asi_value(namespace: &str, data: &str) -> Item {
    Item::structure(
        tag::ATTRIBUTE_VALUE,
        vec![
            Item::text(tag::APPLICATION_NAMESPACE, namespace),
            Item::text(tag::APPLICATION_DATA, data),
        ],
    )
}

/// Attributes read from a Get Attributes answer, in the order given.
#[derive(Debug, Default, Clone)]
pub(crate) struct Attributes {
    pub(crate) object_type: Option<u32>,
    pub(crate) names: Vec<String>,
    pub(crate) algorithm: Option<u32>,
    pub(crate) length: Option<i32>,
    pub(crate) state: Option<u32>,
    pub(crate) initial_date: Option<i64>,
    /// Application Specific Information (namespace, data), in index order.
    pub(crate) asi: Vec<(String, String)>,
}

impl Attributes {
    /// Reads the Attribute structures of a payload (unknown ones ignored).
    pub(crate) fn from_payload(payload: &Item) -> Self {
        let mut a = Attributes::default();
        for attr in payload.children_with(tag::ATTRIBUTE) {
            let (Some(name), Some(v)) = (
                attr.child(tag::ATTRIBUTE_NAME).and_then(Item::as_text),
                attr.child(tag::ATTRIBUTE_VALUE),
            ) else {
                continue;
            };
            match name {
                "Object Type" => a.object_type = v.as_enum(),
                "Name" => {
                    if let Some(n) = v.child(tag::NAME_VALUE).and_then(Item::as_text) {
                        a.names.push(n.to_string());
                    }
                }
                "Cryptographic Algorithm" => a.algorithm = v.as_enum(),
                "Cryptographic Length" => a.length = v.as_int(),
                "State" => a.state = v.as_enum(),
                "Initial Date" => a.initial_date = v.as_datetime(),
                "Application Specific Information" => {
                    if let (Some(ns), Some(d)) = (
                        v.child(tag::APPLICATION_NAMESPACE).and_then(Item::as_text),
                        v.child(tag::APPLICATION_DATA).and_then(Item::as_text),
                    ) {
                        a.asi.push((ns.to_string(), d.to_string()));
                    }
                }
                _ => {}
            }
        }
        a
    }

    /// The data of the first ASI entry in `namespace`, with its index among
    /// all ASI entries.
    pub(crate) fn asi(&self, namespace: &str) -> Option<(usize, &str)> {
        self.asi
            .iter()
            .enumerate()
            .find(|(_, (ns, _))| ns == namespace)
            .map(|(i, (_, d))| (i, d.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: u8, operation: u32, status: u32) -> Item {
        Item::structure(
            tag::BATCH_ITEM,
            vec![
                Item::enumeration(tag::OPERATION, operation),
                Item::bytes(tag::UNIQUE_BATCH_ITEM_ID, &[id]),
                Item::enumeration(tag::RESULT_STATUS, status),
                Item::enumeration(tag::RESULT_REASON, reason::ITEM_NOT_FOUND),
            ],
        )
    }

    fn response(items: Vec<Item>) -> Item {
        let mut all = vec![Item::structure(tag::RESPONSE_HEADER, vec![])];
        all.extend(items);
        Item::structure(tag::RESPONSE_MESSAGE, all)
    }

    #[test]
    fn batch_answers_are_matched_by_id_and_checked() {
        let ops = [op::GET_ATTRIBUTES, op::GET];
        // Out of order: matched by Unique Batch Item ID.
        let r = response(vec![item(1, op::GET, 0), item(0, op::GET_ATTRIBUTES, 1)]);
        let o = outcomes(&r, &ops).unwrap();
        assert!(matches!(
            o[0],
            Outcome::Failure {
                reason: Some(1),
                ..
            }
        ));
        assert!(matches!(o[1], Outcome::Success(_)));
        // Stopped after a failure: the rest is NotDone.
        let r = response(vec![item(0, op::GET_ATTRIBUTES, 1)]);
        assert!(matches!(outcomes(&r, &ops).unwrap()[1], Outcome::NotDone));
        // Missing without a failure, extra items, another operation: broken.
        let r = response(vec![item(0, op::GET_ATTRIBUTES, 0)]);
        assert!(outcomes(&r, &ops).is_err());
        let r = response(vec![item(0, op::GET_ATTRIBUTES, 0); 3]);
        assert!(outcomes(&r, &ops).is_err());
        let r = response(vec![item(0, op::GET, 0), item(1, op::GET, 0)]);
        assert!(outcomes(&r, &ops).is_err());
        assert!(outcomes(&Item::integer(1, 1), &ops).is_err());
    }
}
