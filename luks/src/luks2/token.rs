//! LUKS2 tokens: the `tokens` objects of the metadata (kept as JSON; only `type` and
//! `keyslots` are checked), and the methods of [`Volume`] that list, add and remove them.

use crate::error::{Error, Result};
use crate::header::Hdr;
use crate::luks2::disk::write_luks2;
use crate::luks2::json::{self, Token};
use crate::volume::Volume;
use serde_json::Value;

impl Volume {
    /// LUKS2 tokens by id.
    pub fn tokens(&self) -> Result<Vec<(u32, Value)>> {
        match &self.hdr {
            Hdr::V1(_) => Err(Error::Unsupported("tokens need LUKS2".into())),
            Hdr::V2(l) => Ok(l
                .md
                .tokens
                .iter()
                .map(|(i, t)| (*i, json_token(t)))
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

fn json_token(t: &Token) -> Value {
    let mut o = t.json.clone();
    o.insert("type".into(), t.token_type.clone().into());
    o.insert(
        "keyslots".into(),
        t.keyslots
            .iter()
            .map(|k| Value::from(k.to_string()))
            .collect(),
    );
    Value::Object(o)
}
