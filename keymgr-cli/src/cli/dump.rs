//! `luks dump` as `cryptsetup luksDump` prints it: LUKS1 in cryptsetup's
//! LUKS1 layout, LUKS2 from the JSON metadata with the keyslots' priority,
//! salt, AF stripes and hash, and the `Digests:` section. Text from the
//! header (label, subsystem, names) is shown with control characters escaped.

use std::fmt::Write;
use std::path::Path;

use base64::Engine as _;
use luks::Volume;
use serde_json::Value;

use super::shown;

/// Hex bytes, each followed by a space, `per_line` a line, continuation
/// lines starting with `indent`.
fn hex_lines(bytes: &[u8], per_line: usize, indent: &str) -> String {
    let mut out = String::new();
    for (i, chunk) in bytes.chunks(per_line).enumerate() {
        if i > 0 {
            out.push('\n');
            out.push_str(indent);
        }
        for b in chunk {
            let _ = write!(out, "{b:02x} ");
        }
    }
    out
}

/// The text of `cryptsetup luksDump DEVICE`.
pub(super) fn text(vol: &Volume, device: &Path) -> String {
    match vol.luks1_header() {
        Some(_) => luks1(vol, device),
        None => luks2(vol),
    }
}

fn luks1(vol: &Volume, device: &Path) -> String {
    let Some(h) = vol.luks1_header() else {
        return String::new();
    };
    let mut o = String::new();
    let _ = writeln!(
        o,
        "LUKS header information for {}\n",
        shown(&device.display().to_string())
    );
    let _ = writeln!(o, "Version:       \t1");
    let _ = writeln!(o, "Cipher name:   \t{}", shown(&h.cipher_name));
    let _ = writeln!(o, "Cipher mode:   \t{}", shown(&h.cipher_mode));
    let _ = writeln!(o, "Hash spec:     \t{}", h.hash);
    let _ = writeln!(o, "Payload offset:\t{}", h.payload_offset);
    let _ = writeln!(o, "MK bits:       \t{}", h.key_bytes * 8);
    let _ = writeln!(o, "MK digest:     \t{}", hex_lines(&h.mk_digest, 20, ""));
    let _ = writeln!(
        o,
        "MK salt:       \t{}",
        hex_lines(&h.mk_digest_salt, 16, "               \t")
    );
    let _ = writeln!(o, "MK iterations: \t{}", h.mk_digest_iter);
    let _ = writeln!(o, "UUID:          \t{}\n", shown(&h.uuid));
    for (i, k) in h.keyslots.iter().enumerate() {
        if !k.active {
            let _ = writeln!(o, "Key Slot {i}: DISABLED");
            continue;
        }
        let _ = writeln!(o, "Key Slot {i}: ENABLED");
        let _ = writeln!(o, "\tIterations:         \t{}", k.iterations);
        let _ = writeln!(
            o,
            "\tSalt:               \t{}",
            hex_lines(&k.salt, 16, "\t                      \t")
        );
        let _ = writeln!(o, "\tKey material offset:\t{}", k.key_material_offset);
        let _ = writeln!(o, "\tAF stripes:            \t{}", k.stripes);
    }
    o
}

fn num(v: &Value) -> String {
    match v {
        Value::String(s) => shown(s),
        Value::Number(n) => n.to_string(),
        _ => "?".into(),
    }
}

fn b64(v: &Value) -> Vec<u8> {
    v.as_str()
        .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
        .unwrap_or_default()
}

/// Entries of a JSON object in numeric key order.
fn sorted(v: &Value) -> Vec<(u64, &Value)> {
    let mut out: Vec<(u64, &Value)> = v
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| k.parse().ok().map(|n| (n, v)))
                .collect()
        })
        .unwrap_or_default();
    out.sort_by_key(|(n, _)| *n);
    out
}

fn kdf_lines(o: &mut String, kdf: &Value) {
    let ty = kdf["type"].as_str().unwrap_or("?");
    let _ = writeln!(o, "\tPBKDF:      {}", shown(ty));
    if ty == "pbkdf2" {
        let _ = writeln!(o, "\tHash:       {}", num(&kdf["hash"]));
        let _ = writeln!(o, "\tIterations: {}", num(&kdf["iterations"]));
    } else {
        let _ = writeln!(o, "\tTime cost:  {}", num(&kdf["time"]));
        let _ = writeln!(o, "\tMemory:     {}", num(&kdf["memory"]));
        let _ = writeln!(o, "\tThreads:    {}", num(&kdf["cpus"]));
    }
    let _ = writeln!(
        o,
        "\tSalt:       {}",
        hex_lines(&b64(&kdf["salt"]), 16, "\t            ")
    );
}

fn luks2(vol: &Volume) -> String {
    let d = vol.dump();
    let Some(json) = d.json.as_ref() else {
        return d.text();
    };
    let mut o = String::new();
    let _ = writeln!(o, "LUKS header information");
    let _ = writeln!(o, "Version:       \t2");
    let _ = writeln!(o, "Epoch:         \t{}", d.seqid);
    let _ = writeln!(o, "Metadata area: \t{} [bytes]", d.hdr_size);
    let _ = writeln!(o, "Keyslots area: \t{} [bytes]", d.keyslots_size);
    let _ = writeln!(o, "UUID:          \t{}", shown(&d.uuid));
    let label = if d.label.is_empty() {
        "(no label)".into()
    } else {
        shown(&d.label)
    };
    let subsystem = if d.subsystem.is_empty() {
        "(no subsystem)".into()
    } else {
        shown(&d.subsystem)
    };
    let _ = writeln!(o, "Label:         \t{label}");
    let _ = writeln!(o, "Subsystem:     \t{subsystem}");
    let flags = if d.flags.is_empty() {
        "(no flags)".into()
    } else {
        d.flags
            .iter()
            .map(|f| shown(f))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let _ = writeln!(o, "Flags:       \t{flags}");
    let _ = writeln!(o, "\nData segments:");
    for (n, s) in sorted(&json["segments"]) {
        let _ = writeln!(o, "  {n}: {}", num(&s["type"]));
        let _ = writeln!(o, "\toffset: {} [bytes]", num(&s["offset"]));
        match s["size"].as_str() {
            Some("dynamic") | None => {
                let _ = writeln!(o, "\tlength: (whole device)");
            }
            Some(len) => {
                let _ = writeln!(o, "\tlength: {} [bytes]", shown(len));
            }
        }
        let _ = writeln!(o, "\tcipher: {}", num(&s["encryption"]));
        let _ = writeln!(o, "\tsector: {} [bytes]", num(&s["sector_size"]));
    }
    let digests = sorted(&json["digests"]);
    let _ = writeln!(o, "\nKeyslots:");
    for (n, k) in sorted(&json["keyslots"]) {
        let _ = writeln!(o, "  {n}: {}", num(&k["type"]));
        let key_bits = k["key_size"].as_u64().unwrap_or(0) * 8;
        let _ = writeln!(o, "\tKey:        {key_bits} bits");
        let priority = match k["priority"].as_u64() {
            Some(0) => "ignored",
            Some(2) => "preferred",
            _ => "normal",
        };
        let _ = writeln!(o, "\tPriority:   {priority}");
        let area = &k["area"];
        let _ = writeln!(o, "\tCipher:     {}", num(&area["encryption"]));
        let area_bits = area["key_size"].as_u64().unwrap_or(0) * 8;
        let _ = writeln!(o, "\tCipher key: {area_bits} bits");
        kdf_lines(&mut o, &k["kdf"]);
        let _ = writeln!(o, "\tAF stripes: {}", num(&k["af"]["stripes"]));
        let _ = writeln!(o, "\tAF hash:    {}", num(&k["af"]["hash"]));
        let _ = writeln!(o, "\tArea offset:{} [bytes]", num(&area["offset"]));
        let _ = writeln!(o, "\tArea length:{} [bytes]", num(&area["size"]));
        let key = n.to_string();
        for (dn, dv) in &digests {
            let uses = dv["keyslots"]
                .as_array()
                .is_some_and(|a| a.iter().any(|s| s.as_str() == Some(key.as_str())));
            if uses {
                let _ = writeln!(o, "\tDigest ID:  {dn}");
            }
        }
    }
    let _ = writeln!(o, "Tokens:");
    for (n, t) in sorted(&json["tokens"]) {
        let _ = writeln!(o, "  {n}: {}", num(&t["type"]));
        if let Some(slots) = t["keyslots"].as_array() {
            for s in slots {
                let _ = writeln!(o, "\tKeyslot:    {}", num(s));
            }
        }
    }
    let _ = writeln!(o, "Digests:");
    for (n, dv) in &digests {
        let _ = writeln!(o, "  {n}: {}", num(&dv["type"]));
        let _ = writeln!(o, "\tHash:       {}", num(&dv["hash"]));
        let _ = writeln!(o, "\tIterations: {}", num(&dv["iterations"]));
        let _ = writeln!(
            o,
            "\tSalt:       {}",
            hex_lines(&b64(&dv["salt"]), 16, "\t            ")
        );
        let _ = writeln!(
            o,
            "\tDigest:     {}",
            hex_lines(&b64(&dv["digest"]), 16, "\t            ")
        );
    }
    o
}
