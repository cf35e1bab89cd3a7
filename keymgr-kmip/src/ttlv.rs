//! KMIP's binary TTLV encoding (tag, type, length, value): a tree of
//! [`Item`]s, [`encode`] and [`decode`].
//!
//! Every item is a 3-byte tag, a 1-byte type, a 4-byte big-endian length
//! and the value, padded with zeros to a multiple of 8 bytes. Decoding
//! checks every length against the bytes that are left and the fixed size
//! of its type, bounds nesting depth and item count, requires zero
//! padding and valid UTF-8 text, and never panics: any byte string is
//! either a tree or a [`DecodeError`]. Byte strings (key material) are
//! held in [`Zeroizing`] buffers and never printed by `Debug`.

use std::fmt;

use zeroize::Zeroizing;

/// The largest response [`decode`] and the transport accept (4 MiB).
pub const MAX_MESSAGE: usize = 4 << 20;
/// The deepest nesting of structures accepted.
pub const MAX_DEPTH: usize = 32;
/// The most items accepted in one message.
pub const MAX_ITEMS: usize = 100_000;

/// One TTLV item: a tag and its value.
#[derive(Clone, PartialEq, Eq)]
pub struct Item {
    /// The 24-bit tag (0x42xxxx for KMIP's own tags).
    pub tag: u32,
    /// The typed value.
    pub value: Value,
}

/// A TTLV value, one variant per KMIP item type.
#[derive(Clone, PartialEq, Eq)]
pub enum Value {
    /// Type 0x01: an ordered list of items.
    Structure(Vec<Item>),
    /// Type 0x02: a 32-bit signed integer.
    Integer(i32),
    /// Type 0x03: a 64-bit signed integer.
    LongInteger(i64),
    /// Type 0x04: a big-endian two's complement integer (length a multiple of 8).
    BigInteger(Vec<u8>),
    /// Type 0x05: a 32-bit enumeration value.
    Enumeration(u32),
    /// Type 0x06: a boolean (encoded as 8 bytes, 0 or 1).
    Boolean(bool),
    /// Type 0x07: UTF-8 text.
    TextString(String),
    /// Type 0x08: bytes (zeroized on drop).
    ByteString(Zeroizing<Vec<u8>>),
    /// Type 0x09: seconds since the Unix epoch.
    DateTime(i64),
    /// Type 0x0A: a duration in seconds.
    Interval(u32),
    /// Type 0x0B (KMIP 2.0): microseconds since the Unix epoch.
    DateTimeExtended(i64),
}

impl fmt::Debug for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:06X}={:?}", self.tag, self.value)
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Structure(items) => f.debug_list().entries(items).finish(),
            Value::Integer(v) => write!(f, "Integer({v})"),
            Value::LongInteger(v) => write!(f, "LongInteger({v})"),
            Value::BigInteger(v) => write!(f, "BigInteger({} bytes)", v.len()),
            Value::Enumeration(v) => write!(f, "Enumeration({v:#x})"),
            Value::Boolean(v) => write!(f, "Boolean({v})"),
            Value::TextString(v) => write!(f, "TextString({v:?})"),
            Value::ByteString(v) => write!(f, "ByteString([REDACTED {} bytes])", v.len()),
            Value::DateTime(v) => write!(f, "DateTime({v})"),
            Value::Interval(v) => write!(f, "Interval({v})"),
            Value::DateTimeExtended(v) => write!(f, "DateTimeExtended({v})"),
        }
    }
}

/// Why bytes are not a TTLV item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The bytes end before the item does.
    Truncated {
        /// Byte offset where the item starts.
        at: usize,
    },
    /// An unknown item type byte.
    UnknownType {
        /// Byte offset of the item.
        at: usize,
        /// The type byte.
        ty: u8,
    },
    /// A length that does not fit the item's type.
    BadLength {
        /// Byte offset of the item.
        at: usize,
        /// The declared length.
        len: u32,
    },
    /// Padding bytes that are not zero, or a boolean that is not 0 or 1.
    BadValue {
        /// Byte offset of the item.
        at: usize,
    },
    /// Text that is not UTF-8.
    NotUtf8 {
        /// Byte offset of the item.
        at: usize,
    },
    /// Nesting deeper than [`MAX_DEPTH`] or more than [`MAX_ITEMS`] items.
    TooComplex,
    /// A message larger than [`MAX_MESSAGE`].
    TooLarge {
        /// The size given.
        len: usize,
    },
    /// Bytes left after the one top-level item.
    TrailingBytes {
        /// How many.
        count: usize,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated { at } => write!(f, "item at byte {at} is truncated"),
            DecodeError::UnknownType { at, ty } => {
                write!(f, "item at byte {at} has unknown type {ty:#04x}")
            }
            DecodeError::BadLength { at, len } => {
                write!(f, "item at byte {at} has length {len}, wrong for its type")
            }
            DecodeError::BadValue { at } => {
                write!(f, "item at byte {at} has a bad value or non-zero padding")
            }
            DecodeError::NotUtf8 { at } => write!(f, "text at byte {at} is not UTF-8"),
            DecodeError::TooComplex => write!(
                f,
                "message nests deeper than {MAX_DEPTH} or has more than {MAX_ITEMS} items"
            ),
            DecodeError::TooLarge { len } => {
                write!(f, "message of {len} bytes exceeds {MAX_MESSAGE}")
            }
            DecodeError::TrailingBytes { count } => {
                write!(f, "{count} bytes after the message")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

impl Item {
    /// A new item.
    pub fn new(tag: u32, value: Value) -> Self {
        Item { tag, value }
    }

    /// A structure item.
    pub fn structure(tag: u32, items: Vec<Item>) -> Self {
        Item::new(tag, Value::Structure(items))
    }

    /// A text item.
    pub fn text(tag: u32, s: impl Into<String>) -> Self {
        Item::new(tag, Value::TextString(s.into()))
    }

    /// An enumeration item.
    pub fn enumeration(tag: u32, v: u32) -> Self {
        Item::new(tag, Value::Enumeration(v))
    }

    /// An integer item.
    pub fn integer(tag: u32, v: i32) -> Self {
        Item::new(tag, Value::Integer(v))
    }

    /// A byte-string item (copies `bytes` into a zeroizing buffer).
    pub fn bytes(tag: u32, bytes: &[u8]) -> Self {
        Item::new(tag, Value::ByteString(Zeroizing::new(bytes.to_vec())))
    }

    /// The children of a structure (empty for other types).
    pub fn children(&self) -> &[Item] {
        match &self.value {
            Value::Structure(items) => items,
            _ => &[],
        }
    }

    /// The first child with `tag`.
    pub fn child(&self, tag: u32) -> Option<&Item> {
        self.children().iter().find(|i| i.tag == tag)
    }

    /// Every child with `tag`.
    pub fn children_with(&self, tag: u32) -> impl Iterator<Item = &Item> {
        self.children().iter().filter(move |i| i.tag == tag)
    }

    /// The text of a text item.
    pub fn as_text(&self) -> Option<&str> {
        match &self.value {
            Value::TextString(s) => Some(s),
            _ => None,
        }
    }

    /// The value of an enumeration item.
    pub fn as_enum(&self) -> Option<u32> {
        match self.value {
            Value::Enumeration(v) => Some(v),
            _ => None,
        }
    }

    /// The value of an integer item.
    pub fn as_int(&self) -> Option<i32> {
        match self.value {
            Value::Integer(v) => Some(v),
            _ => None,
        }
    }

    /// The bytes of a byte-string item.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match &self.value {
            Value::ByteString(b) => Some(b),
            _ => None,
        }
    }

    /// The seconds of a date-time item.
    pub fn as_datetime(&self) -> Option<i64> {
        match self.value {
            Value::DateTime(v) => Some(v),
            _ => None,
        }
    }
}

fn padded(len: usize) -> usize {
    len.div_ceil(8) * 8
}

/// Encodes an item tree (into a zeroizing buffer: it may hold key material).
pub fn encode(item: &Item) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(64));
    encode_into(item, &mut out);
    out
}

fn header(out: &mut Vec<u8>, tag: u32, ty: u8, len: usize) {
    out.extend_from_slice(&tag.to_be_bytes()[1..]);
    out.push(ty);
    out.extend_from_slice(&(len as u32).to_be_bytes());
}

fn encode_into(item: &Item, out: &mut Vec<u8>) {
    let tag = item.tag & 0x00ff_ffff;
    match &item.value {
        Value::Structure(items) => {
            let start = out.len();
            header(out, tag, 0x01, 0);
            for i in items {
                encode_into(i, out);
            }
            let len = (out.len() - start - 8) as u32;
            out[start + 4..start + 8].copy_from_slice(&len.to_be_bytes());
        }
        Value::Integer(v) => {
            header(out, tag, 0x02, 4);
            out.extend_from_slice(&v.to_be_bytes());
            out.extend_from_slice(&[0; 4]);
        }
        Value::LongInteger(v) => {
            header(out, tag, 0x03, 8);
            out.extend_from_slice(&v.to_be_bytes());
        }
        Value::BigInteger(v) => {
            header(out, tag, 0x04, v.len());
            out.extend_from_slice(v);
            out.resize(out.len() + padded(v.len()) - v.len(), 0);
        }
        Value::Enumeration(v) => {
            header(out, tag, 0x05, 4);
            out.extend_from_slice(&v.to_be_bytes());
            out.extend_from_slice(&[0; 4]);
        }
        Value::Boolean(v) => {
            header(out, tag, 0x06, 8);
            out.extend_from_slice(&u64::from(*v).to_be_bytes());
        }
        Value::TextString(s) => {
            header(out, tag, 0x07, s.len());
            out.extend_from_slice(s.as_bytes());
            out.resize(out.len() + padded(s.len()) - s.len(), 0);
        }
        Value::ByteString(b) => {
            header(out, tag, 0x08, b.len());
            out.extend_from_slice(b);
            out.resize(out.len() + padded(b.len()) - b.len(), 0);
        }
        Value::DateTime(v) => {
            header(out, tag, 0x09, 8);
            out.extend_from_slice(&v.to_be_bytes());
        }
        Value::Interval(v) => {
            header(out, tag, 0x0A, 4);
            out.extend_from_slice(&v.to_be_bytes());
            out.extend_from_slice(&[0; 4]);
        }
        Value::DateTimeExtended(v) => {
            header(out, tag, 0x0B, 8);
            out.extend_from_slice(&v.to_be_bytes());
        }
    }
}

/// The total length (header included) of the item whose 8-byte header
/// starts `bytes`, or `None` when fewer than 8 bytes are given. For
/// framing a stream: the transport reads 8 bytes, then the rest.
pub fn frame_len(bytes: &[u8]) -> Option<usize> {
    let h: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
    let len = u32::from_be_bytes([h[4], h[5], h[6], h[7]]) as usize;
    Some(8 + padded(len))
}

/// Decodes exactly one item from `bytes`.
pub fn decode(bytes: &[u8]) -> Result<Item, DecodeError> {
    if bytes.len() > MAX_MESSAGE {
        return Err(DecodeError::TooLarge { len: bytes.len() });
    }
    let mut d = Decoder { bytes, items: 0 };
    let (item, used) = d.item(0, 0)?;
    if used != bytes.len() {
        return Err(DecodeError::TrailingBytes {
            count: bytes.len() - used,
        });
    }
    Ok(item)
}

struct Decoder<'a> {
    bytes: &'a [u8],
    items: usize,
}

impl Decoder<'_> {
    /// Decodes the item at `at`; returns it and the offset after it.
    fn item(&mut self, at: usize, depth: usize) -> Result<(Item, usize), DecodeError> {
        self.items += 1;
        if depth > MAX_DEPTH || self.items > MAX_ITEMS {
            return Err(DecodeError::TooComplex);
        }
        let h = self
            .bytes
            .get(at..at.checked_add(8).ok_or(DecodeError::Truncated { at })?)
            .ok_or(DecodeError::Truncated { at })?;
        let tag = u32::from_be_bytes([0, h[0], h[1], h[2]]);
        let ty = h[3];
        let len32 = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
        let len = len32 as usize;
        let body_start = at + 8;
        let total = padded(len);
        let end = body_start
            .checked_add(total)
            .filter(|e| *e <= self.bytes.len())
            .ok_or(DecodeError::Truncated { at })?;
        let body = &self.bytes[body_start..body_start + len];
        let pad = &self.bytes[body_start + len..end];
        if pad.iter().any(|b| *b != 0) {
            return Err(DecodeError::BadValue { at });
        }
        let fixed = |want: usize| {
            if len == want {
                Ok(())
            } else {
                Err(DecodeError::BadLength { at, len: len32 })
            }
        };
        let be8 = |b: &[u8]| -> [u8; 8] {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[..8]);
            a
        };
        let be4 = |b: &[u8]| -> [u8; 4] {
            let mut a = [0u8; 4];
            a.copy_from_slice(&b[..4]);
            a
        };
        let value = match ty {
            0x01 => {
                let mut items = Vec::new();
                let mut pos = body_start;
                while pos < body_start + len {
                    let (child, next) = self.item(pos, depth + 1)?;
                    if next > body_start + len {
                        return Err(DecodeError::BadLength { at, len: len32 });
                    }
                    items.push(child);
                    pos = next;
                }
                Value::Structure(items)
            }
            0x02 => {
                fixed(4)?;
                Value::Integer(i32::from_be_bytes(be4(body)))
            }
            0x03 => {
                fixed(8)?;
                Value::LongInteger(i64::from_be_bytes(be8(body)))
            }
            0x04 => {
                if !len.is_multiple_of(8) {
                    return Err(DecodeError::BadLength { at, len: len32 });
                }
                Value::BigInteger(body.to_vec())
            }
            0x05 => {
                fixed(4)?;
                Value::Enumeration(u32::from_be_bytes(be4(body)))
            }
            0x06 => {
                fixed(8)?;
                match u64::from_be_bytes(be8(body)) {
                    0 => Value::Boolean(false),
                    1 => Value::Boolean(true),
                    _ => return Err(DecodeError::BadValue { at }),
                }
            }
            0x07 => Value::TextString(
                std::str::from_utf8(body)
                    .map_err(|_| DecodeError::NotUtf8 { at })?
                    .to_string(),
            ),
            0x08 => Value::ByteString(Zeroizing::new(body.to_vec())),
            0x09 => {
                fixed(8)?;
                Value::DateTime(i64::from_be_bytes(be8(body)))
            }
            0x0A => {
                fixed(4)?;
                Value::Interval(u32::from_be_bytes(be4(body)))
            }
            0x0B => {
                fixed(8)?;
                Value::DateTimeExtended(i64::from_be_bytes(be8(body)))
            }
            _ => return Err(DecodeError::UnknownType { at, ty }),
        };
        Ok((Item { tag, value }, end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<i32>().prop_map(Value::Integer),
            any::<i64>().prop_map(Value::LongInteger),
            proptest::collection::vec(any::<[u8; 8]>(), 0..3)
                .prop_map(|v| Value::BigInteger(v.concat())),
            any::<u32>().prop_map(Value::Enumeration),
            any::<bool>().prop_map(Value::Boolean),
            ".{0,20}".prop_map(Value::TextString),
            proptest::collection::vec(any::<u8>(), 0..40)
                .prop_map(|v| Value::ByteString(Zeroizing::new(v))),
            any::<i64>().prop_map(Value::DateTime),
            any::<u32>().prop_map(Value::Interval),
            any::<i64>().prop_map(Value::DateTimeExtended),
        ]
    }

    fn item() -> impl Strategy<Value = Item> {
        let tag = 0u32..0x0100_0000;
        (tag.clone(), leaf())
            .prop_map(|(tag, value)| Item { tag, value })
            .prop_recursive(4, 64, 8, move |inner| {
                (tag.clone(), proptest::collection::vec(inner, 0..8)).prop_map(|(tag, items)| {
                    Item {
                        tag,
                        value: Value::Structure(items),
                    }
                })
            })
    }

    proptest! {
        #[test]
        fn encode_then_decode_is_identity(it in item()) {
            let bytes = encode(&it);
            prop_assert_eq!(bytes.len() % 8, 0);
            prop_assert_eq!(frame_len(&bytes), Some(bytes.len()));
            prop_assert_eq!(decode(&bytes).unwrap(), it);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn every_truncation_is_an_error(it in item(), cut in 1usize..64) {
            let bytes = encode(&it);
            let keep = bytes.len().saturating_sub(cut);
            prop_assert!(decode(&bytes[..keep]).is_err());
        }
    }

    #[test]
    fn known_vector_from_the_kmip_spec() {
        // KMIP 1.2 spec 9.1.2 examples: an Integer 8 and a Text String "Hello World".
        let i = Item::integer(0x420020, 8);
        assert_eq!(
            &encode(&i)[..],
            &[0x42, 0x00, 0x20, 0x02, 0, 0, 0, 4, 0, 0, 0, 8, 0, 0, 0, 0]
        );
        let t = Item::text(0x420020, "Hello World");
        let mut want = vec![0x42, 0x00, 0x20, 0x07, 0, 0, 0, 0x0b];
        want.extend_from_slice(b"Hello World\0\0\0\0\0");
        assert_eq!(&encode(&t)[..], &want[..]);
    }

    #[test]
    fn hostile_lengths_are_errors() {
        // A structure claiming 4 GiB.
        let b = [0x42, 0, 1, 1, 0xff, 0xff, 0xff, 0xf8];
        assert!(matches!(decode(&b), Err(DecodeError::Truncated { .. })));
        // An integer with length 8.
        let b = [0x42, 0, 1, 2, 0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0];
        assert!(matches!(decode(&b), Err(DecodeError::BadLength { .. })));
        // Non-zero padding.
        let b = [0x42, 0, 1, 2, 0, 0, 0, 4, 0, 0, 0, 1, 0, 0, 0, 9];
        assert!(matches!(decode(&b), Err(DecodeError::BadValue { .. })));
        // A child running past its parent's end.
        let mut b = vec![0x42, 0, 1, 1, 0, 0, 0, 8];
        b.extend_from_slice(&[0x42, 0, 2, 2, 0, 0, 0, 4, 0, 0, 0, 1, 0, 0, 0, 0]);
        assert!(decode(&b).is_err());
        // Deep nesting.
        let mut deep = Item::integer(1, 1);
        for _ in 0..(MAX_DEPTH + 2) {
            deep = Item::structure(1, vec![deep]);
        }
        assert_eq!(decode(&encode(&deep)), Err(DecodeError::TooComplex));
    }

    #[test]
    fn debug_hides_byte_strings() {
        let it = Item::bytes(0x420043, b"top secret key!!");
        let s = format!("{it:?}");
        assert!(!s.contains("top secret"), "{s}");
        assert!(s.contains("REDACTED 16 bytes"), "{s}");
    }
}
