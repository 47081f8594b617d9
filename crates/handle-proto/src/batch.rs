//! The batch text format of the reference server's `hdl-genericbatch` (CNRI `GenericBatch`).
//!
//! ```text
//! AUTHENTICATE SECKEY:300:21.T999/ADMIN
//! secret
//! CREATE 21.T999/obj-1
//! 100 HS_ADMIN 86400 1110 ADMIN 300:111111111111:21.T999/ADMIN
//! 1 URL 86400 1110 UTF8 https://example.org/
//! 200 HS_VLIST 86400 1110 LIST 300:21.T999/ADMIN;301:21.T999/ADMIN;
//!                                        <- a blank line ends a value list
//! ADD 21.T999/obj-1 / MODIFY 21.T999/obj-1   (followed by values and a blank line)
//! REMOVE 2,3:21.T999/obj-1
//! DELETE 21.T999/obj-1
//! HOME 127.0.0.1:2641:TCP
//! 0.NA/21.T999                            <- prefix handles, then a blank line
//! ```
//!
//! Value lines are `index type ttl perms(adminRead adminWrite publicRead publicWrite) kind data`
//! with kind `UTF8` (rest of the line), `ADMIN` (`index:12 permission bits:handle`, bits in
//! CNRI's `AdminRecord` order), `LIST` (`index:handle;` repeated) or `FILE` (a path; the caller
//! supplies the bytes through a callback, keeping this module free of I/O). For export of
//! binary data that is not valid single-line UTF-8 we add the kind `HEX` (our extension).

use crate::codec::Codec;
use crate::constants::types;
use crate::data::{AdminPermissions, AdminRecord, ValueList};
use crate::error::InvalidMessage;
use crate::value::{HandleValue, ValuePermissions, ValueReference};

/// One batch operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchCommand {
    /// `AUTHENTICATE SECKEY:index:handle` + password line.
    AuthenticateSecretKey {
        /// Identity.
        identity: ValueReference,
        /// Password.
        secret: String,
    },
    /// `AUTHENTICATE PUBKEY:index:handle` + key file line (`path[|passphrase]`).
    AuthenticatePublicKey {
        /// Identity.
        identity: ValueReference,
        /// Private key file line, as written.
        key_file: String,
    },
    /// `CREATE handle` + values.
    Create {
        /// Handle.
        handle: String,
        /// Values.
        values: Vec<HandleValue>,
    },
    /// `DELETE handle`.
    Delete {
        /// Handle.
        handle: String,
    },
    /// `ADD handle` + values.
    Add {
        /// Handle.
        handle: String,
        /// Values.
        values: Vec<HandleValue>,
    },
    /// `MODIFY handle` + values.
    Modify {
        /// Handle.
        handle: String,
        /// Values.
        values: Vec<HandleValue>,
    },
    /// `REMOVE i,j:handle`.
    Remove {
        /// Handle.
        handle: String,
        /// Indices.
        indexes: Vec<u32>,
    },
    /// `HOME ip:port:protocol` + prefix handles.
    Home {
        /// `ip:port:protocol` as written.
        server: String,
        /// `0.NA/...` handles.
        prefixes: Vec<String>,
    },
    /// `UNHOME ip:port:protocol` + prefix handles.
    Unhome {
        /// `ip:port:protocol` as written.
        server: String,
        /// `0.NA/...` handles.
        prefixes: Vec<String>,
    },
}

fn err(line: usize, reason: impl Into<String>) -> InvalidMessage {
    InvalidMessage::InvalidText {
        line,
        reason: reason.into(),
    }
}

/// Parses a batch file. `timestamp` is stamped on every value (the batch format has none);
/// `load_file` resolves `FILE` data.
pub fn parse_batch(
    text: &str,
    timestamp: u32,
    mut load_file: impl FnMut(&str) -> Option<Vec<u8>>,
) -> Result<Vec<BatchCommand>, InvalidMessage> {
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < lines.len() {
        let line_no = i + 1;
        let line = lines[i].trim();
        i += 1;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (command, rest) = match line.split_once(' ') {
            Some((c, r)) => (c.trim().to_ascii_uppercase(), r.trim()),
            None => (line.to_ascii_uppercase(), ""),
        };
        let mut take_values = |i: &mut usize| -> Result<Vec<HandleValue>, InvalidMessage> {
            let mut values = Vec::new();
            while *i < lines.len() && !lines[*i].trim().is_empty() {
                values.push(parse_value_line(
                    lines[*i],
                    *i + 1,
                    timestamp,
                    &mut load_file,
                )?);
                *i += 1;
            }
            if values.is_empty() {
                return Err(err(line_no, format!("{command} without values")));
            }
            Ok(values)
        };
        let need_handle = |rest: &str| {
            if rest.is_empty() {
                Err(err(line_no, "missing handle"))
            } else {
                Ok(rest.to_owned())
            }
        };
        let cmd = match command.as_str() {
            "AUTHENTICATE" => {
                let mut parts = rest.splitn(3, ':');
                let kind = parts.next().unwrap_or_default().trim().to_ascii_uppercase();
                let index = parts
                    .next()
                    .and_then(|s| s.trim().parse().ok())
                    .ok_or_else(|| err(line_no, "bad identity index"))?;
                let handle = parts
                    .next()
                    .map(str::trim)
                    .filter(|h| !h.is_empty())
                    .ok_or_else(|| err(line_no, "missing identity handle"))?;
                let identity = ValueReference::new(handle, index);
                let next = lines
                    .get(i)
                    .map(|l| l.trim())
                    .filter(|l| !l.is_empty())
                    .ok_or_else(|| err(line_no + 1, "missing secret or key file line"))?;
                i += 1;
                match kind.as_str() {
                    "SECKEY" => BatchCommand::AuthenticateSecretKey {
                        identity,
                        secret: next.to_owned(),
                    },
                    "PUBKEY" => BatchCommand::AuthenticatePublicKey {
                        identity,
                        key_file: next.to_owned(),
                    },
                    _ => {
                        return Err(err(
                            line_no,
                            format!("unknown authentication kind {kind:?}"),
                        ));
                    }
                }
            }
            "CREATE" => BatchCommand::Create {
                handle: need_handle(rest)?,
                values: take_values(&mut i)?,
            },
            "ADD" => BatchCommand::Add {
                handle: need_handle(rest)?,
                values: take_values(&mut i)?,
            },
            "MODIFY" => BatchCommand::Modify {
                handle: need_handle(rest)?,
                values: take_values(&mut i)?,
            },
            "DELETE" => BatchCommand::Delete {
                handle: need_handle(rest)?,
            },
            "REMOVE" => {
                let (idx, handle) = rest
                    .split_once(':')
                    .ok_or_else(|| err(line_no, "expected indexes:handle"))?;
                let indexes = idx
                    .split(',')
                    .map(|s| s.trim().parse::<u32>())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| err(line_no, "bad index list"))?;
                BatchCommand::Remove {
                    handle: need_handle(handle.trim())?,
                    indexes,
                }
            }
            "HOME" | "UNHOME" => {
                let server = need_handle(rest)?;
                let mut prefixes = Vec::new();
                while i < lines.len() && !lines[i].trim().is_empty() {
                    prefixes.push(lines[i].trim().to_owned());
                    i += 1;
                }
                if command == "HOME" {
                    BatchCommand::Home { server, prefixes }
                } else {
                    BatchCommand::Unhome { server, prefixes }
                }
            }
            _ => return Err(err(line_no, format!("unknown command {command:?}"))),
        };
        out.push(cmd);
    }
    Ok(out)
}

fn parse_value_line(
    raw: &str,
    line: usize,
    timestamp: u32,
    load_file: &mut impl FnMut(&str) -> Option<Vec<u8>>,
) -> Result<HandleValue, InvalidMessage> {
    let mut rest = raw.trim();
    let mut next = |what: &str| -> Result<&str, InvalidMessage> {
        let s = rest.trim_start();
        let end = s.find([' ', '\t']).unwrap_or(s.len());
        if end == 0 {
            return Err(err(line, format!("missing {what}")));
        }
        let (tok, tail) = s.split_at(end);
        rest = tail;
        Ok(tok)
    };
    let index: u32 = next("index")?
        .parse()
        .map_err(|_| err(line, "bad value index"))?;
    let value_type = next("type")?.to_owned();
    let ttl: i32 = next("ttl")?.parse().map_err(|_| err(line, "bad ttl"))?;
    let perms = next("permissions")?;
    if perms.len() < 4 {
        return Err(err(line, "permissions need 4 characters"));
    }
    let permissions = ValuePermissions::from_bit_string(&perms[..4])
        .ok_or_else(|| err(line, "bad permissions"))?;
    let kind = next("data kind")?.to_ascii_uppercase();
    let data_text = rest.trim();
    let data = match kind.as_str() {
        "UTF8" => data_text.as_bytes().to_vec(),
        "HEX" => (0..data_text.len())
            .step_by(2)
            .map(|i| {
                data_text
                    .get(i..i + 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
            })
            .collect::<Option<Vec<u8>>>()
            .filter(|_| data_text.len().is_multiple_of(2))
            .ok_or_else(|| err(line, "bad hex data"))?,
        "ADMIN" => {
            let mut parts = data_text.splitn(3, ':');
            let admin_index = parts
                .next()
                .and_then(|s| s.trim().parse().ok())
                .ok_or_else(|| err(line, "bad admin index"))?;
            let bits = parts
                .next()
                .map(str::trim)
                .ok_or_else(|| err(line, "missing admin permissions"))?;
            let permissions = AdminPermissions::from_batch_string(bits)
                .ok_or_else(|| err(line, "admin permissions need 12 bits"))?;
            let handle = parts
                .next()
                .map(str::trim)
                .filter(|h| !h.is_empty())
                .ok_or_else(|| err(line, "missing admin handle"))?;
            AdminRecord {
                permissions,
                admin: ValueReference::new(handle, admin_index),
            }
            .to_bytes()
        }
        "LIST" => {
            let mut refs = Vec::new();
            for item in data_text
                .split(';')
                .map(str::trim)
                .filter(|s| !s.is_empty())
            {
                refs.push(
                    ValueReference::parse(item)
                        .ok_or_else(|| err(line, format!("bad reference {item:?}")))?,
                );
            }
            if refs.is_empty() {
                return Err(err(line, "empty reference list"));
            }
            ValueList(refs).to_bytes()
        }
        "FILE" => load_file(data_text)
            .ok_or_else(|| err(line, format!("cannot read file {data_text:?}")))?,
        other => return Err(err(line, format!("unknown data kind {other:?}"))),
    };
    let mut value = HandleValue::new(index, value_type, data);
    value.ttl = ttl;
    value.permissions = permissions;
    value.timestamp = timestamp;
    Ok(value)
}

/// Formats one value as a batch line (without newline).
pub fn format_value_line(v: &HandleValue) -> String {
    let head = format!(
        "{} {} {} {}",
        v.index,
        v.value_type,
        v.ttl,
        v.permissions.to_bit_string()
    );
    let t = v.value_type.to_ascii_uppercase();
    if t == types::HS_ADMIN
        && let Ok(a) = AdminRecord::read_bytes(&v.data)
    {
        return format!(
            "{head} ADMIN {}:{}:{}",
            a.admin.index,
            a.permissions.to_batch_string(),
            a.admin.handle
        );
    }
    if t == types::HS_VLIST
        && let Ok(l) = ValueList::read_bytes(&v.data)
        && !l.0.is_empty()
    {
        {
            let refs: String =
                l.0.iter()
                    .map(|r| format!("{}:{};", r.index, r.handle))
                    .collect();
            return format!("{head} LIST {refs}");
        }
    }
    match std::str::from_utf8(&v.data) {
        Ok(s) if !s.chars().any(char::is_control) && s.trim() == s && !s.is_empty() => {
            format!("{head} UTF8 {s}")
        }
        _ => format!(
            "{head} HEX {}",
            v.data
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        ),
    }
}

/// Prints commands in batch format; `parse_batch(print_batch(c))` gives `c` back (timestamps aside).
pub fn print_batch(commands: &[BatchCommand]) -> String {
    let mut out = String::new();
    let values_block = |out: &mut String, values: &[HandleValue]| {
        for v in values {
            out.push_str(&format_value_line(v));
            out.push('\n');
        }
        out.push('\n');
    };
    for c in commands {
        match c {
            BatchCommand::AuthenticateSecretKey { identity, secret } => {
                out.push_str(&format!(
                    "AUTHENTICATE SECKEY:{}:{}\n{secret}\n",
                    identity.index, identity.handle
                ));
            }
            BatchCommand::AuthenticatePublicKey { identity, key_file } => {
                out.push_str(&format!(
                    "AUTHENTICATE PUBKEY:{}:{}\n{key_file}\n",
                    identity.index, identity.handle
                ));
            }
            BatchCommand::Create { handle, values } => {
                out.push_str(&format!("CREATE {handle}\n"));
                values_block(&mut out, values);
            }
            BatchCommand::Add { handle, values } => {
                out.push_str(&format!("ADD {handle}\n"));
                values_block(&mut out, values);
            }
            BatchCommand::Modify { handle, values } => {
                out.push_str(&format!("MODIFY {handle}\n"));
                values_block(&mut out, values);
            }
            BatchCommand::Delete { handle } => out.push_str(&format!("DELETE {handle}\n")),
            BatchCommand::Remove { handle, indexes } => {
                let idx: Vec<String> = indexes.iter().map(u32::to_string).collect();
                out.push_str(&format!("REMOVE {}:{handle}\n", idx.join(",")));
            }
            BatchCommand::Home { server, prefixes } | BatchCommand::Unhome { server, prefixes } => {
                let word = if matches!(c, BatchCommand::Home { .. }) {
                    "HOME"
                } else {
                    "UNHOME"
                };
                out.push_str(&format!("{word} {server}\n"));
                for p in prefixes {
                    out.push_str(p);
                    out.push('\n');
                }
                out.push('\n');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "AUTHENTICATE SECKEY:300:21.T999/ADMIN\nsecret\n\nCREATE 21.T999/obj-1\n100 HS_ADMIN 86400 1110 ADMIN 300:111111111111:21.T999/ADMIN\n1 URL 86400 1110 UTF8 https://example.org/a b\n200 HS_VLIST 3600 1010 LIST 300:21.T999/ADMIN;301:21.T999/OTHER;\n5 BLOB 0 1100 FILE key.bin\n\nREMOVE 1,5:21.T999/obj-1\nDELETE 21.T999/obj-1\nHOME 127.0.0.1:2641:TCP\n0.NA/21.T999\n\n";

    #[test]
    fn parses_cnri_sample_and_round_trips() {
        let cmds = parse_batch(SAMPLE, 42, |p| (p == "key.bin").then(|| vec![0, 1, 2])).unwrap();
        assert_eq!(cmds.len(), 5);
        let BatchCommand::Create { handle, values } = &cmds[1] else {
            panic!("expected create")
        };
        assert_eq!(handle, "21.T999/obj-1");
        assert_eq!(values.len(), 4);
        let admin = AdminRecord::read_bytes(&values[0].data).unwrap();
        assert_eq!(
            (admin.permissions, admin.admin.index),
            (AdminPermissions::ALL, 300)
        );
        assert_eq!(values[1].data, b"https://example.org/a b");
        assert_eq!(ValueList::read_bytes(&values[2].data).unwrap().0.len(), 2);
        assert_eq!((values[2].ttl, values[2].permissions.0), (3600, 0x0a));
        assert_eq!(values[3].data, vec![0, 1, 2]);
        assert_eq!(values[3].timestamp, 42);
        assert_eq!(
            cmds[2],
            BatchCommand::Remove {
                handle: "21.T999/obj-1".into(),
                indexes: vec![1, 5]
            }
        );
        let printed = print_batch(&cmds);
        assert!(printed.contains("5 BLOB 0 1100 HEX 000102"));
        assert_eq!(parse_batch(&printed, 42, |_| None).unwrap(), cmds);
    }

    #[test]
    fn errors_carry_line_numbers() {
        let e = parse_batch(
            "CREATE 21.T999/x\n1 URL notanumber 1110 UTF8 x\n\n",
            0,
            |_| None,
        )
        .unwrap_err();
        assert_eq!(
            e,
            InvalidMessage::InvalidText {
                line: 2,
                reason: "bad ttl".into()
            }
        );
        let e = parse_batch("CREATE 21.T999/x\n\n", 0, |_| None).unwrap_err();
        assert!(matches!(e, InvalidMessage::InvalidText { line: 1, .. }));
        assert!(parse_batch("FROB x\n", 0, |_| None).is_err());
        assert!(
            parse_batch(
                "CREATE 21.T999/x\n100 HS_ADMIN 1 1110 ADMIN 300:1111:x\n\n",
                0,
                |_| None
            )
            .is_err()
        );
    }
}
