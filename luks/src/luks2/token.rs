//! LUKS2 tokens: the `tokens` objects of the metadata (kept as JSON; only `type` and
//! `keyslots` are checked), and the methods of [`Volume`] that list, add and remove them.

use crate::error::{Error, Result};
use crate::header::Hdr;
use crate::luks2::disk::write_luks2;
use crate::luks2::json::{self, get_str, id_list, obj, MAX_KEYSLOTS};
use crate::volume::Volume;
use serde_json::{Map, Value};

/// A token: kept as its JSON object; only `type` and `keyslots` are checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    /// The token type (e.g. `luks2-keyring`, `systemd-tpm2`).
    pub token_type: String,
    /// Keyslots the token is assigned to.
    pub keyslots: Vec<u32>,
    /// The whole token object.
    pub json: Map<String, Value>,
}

impl Token {
    /// Parses a token object (must have a string `type` and a `keyslots` array).
    pub fn parse(v: &Value, path: &str) -> Result<Token> {
        let m = obj(v, path)?;
        Ok(Token {
            token_type: get_str(m, "type", path)?.to_string(),
            keyslots: id_list(m, "keyslots", path, MAX_KEYSLOTS)?,
            json: m.clone(),
        })
    }

    /// The token object as written in the metadata (unknown fields kept).
    pub fn to_value(&self) -> Value {
        let mut o = self.json.clone();
        o.insert("type".into(), self.token_type.clone().into());
        o.insert(
            "keyslots".into(),
            self.keyslots
                .iter()
                .map(|k| Value::from(k.to_string()))
                .collect(),
        );
        Value::Object(o)
    }
}

impl Volume {
    /// LUKS2 tokens by id.
    pub fn tokens(&self) -> Result<Vec<(u32, Value)>> {
        match &self.hdr {
            Hdr::V1(_) => Err(Error::Unsupported("tokens need LUKS2".into())),
            Hdr::V2(l) => Ok(l
                .md
                .tokens
                .iter()
                .map(|(i, t)| (*i, t.to_value()))
                .collect()),
        }
    }

    /// Adds a LUKS2 token (a JSON object with `type` and `keyslots`), at `id` or the first free id.
    pub fn add_token(&mut self, id: Option<u32>, token: &Value) -> Result<u32> {
        let _guard = self.need_writable()?;
        self.reload()?;
        let Hdr::V2(l) = &mut self.hdr else {
            return Err(Error::Unsupported("tokens need LUKS2".into()));
        };
        let t = Token::parse(token, "token")?;
        let id = match id {
            Some(i) if i >= json::MAX_TOKENS => {
                return Err(Error::SlotOutOfRange {
                    slot: i,
                    max: json::MAX_TOKENS - 1,
                })
            }
            Some(i) if l.md.tokens.contains_key(&i) => return Err(Error::SlotActive(i)),
            Some(i) => i,
            None => (0..json::MAX_TOKENS)
                .find(|i| !l.md.tokens.contains_key(i))
                .ok_or(Error::NoFreeSlot)?,
        };
        let mut nl = (**l).clone();
        nl.md.tokens.insert(id, t);
        write_luks2(&self.file, &mut nl)?;
        **l = nl;
        Ok(id)
    }

    /// Removes LUKS2 token `id`.
    pub fn remove_token(&mut self, id: u32) -> Result<()> {
        let _guard = self.need_writable()?;
        self.reload()?;
        let Hdr::V2(l) = &mut self.hdr else {
            return Err(Error::Unsupported("tokens need LUKS2".into()));
        };
        let mut nl = (**l).clone();
        nl.md.tokens.remove(&id).ok_or(Error::SlotInactive(id))?;
        write_luks2(&self.file, &mut nl)?;
        **l = nl;
        Ok(())
    }
}
