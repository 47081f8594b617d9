//! The Handle.Net REST (v8/v9) JSON form of handle values, after CNRI's `GsonUtility`.
//!
//! Output always uses `data: {format, value}` (pyhandle requires it) with formats `string`,
//! `base64`, `admin`, `vlist` and `site`; `timestamp` is always present (ISO 8601, seconds);
//! `ttl` is a number for relative TTLs and an ISO time for absolute ones; `permissions` appears
//! only when not the default `1110`. Input additionally accepts bare-string data, `hex`,
//! string or numeric admin indices (pyhandle sends `"200"`), and CNRI's permission spellings.

use base64::Engine as _;
use serde_json::{Map, Value, json};

use crate::codec::Codec;
use crate::constants::types;
use crate::data::{
    AdminPermissions, AdminRecord, Interface, ServerInfo, SiteInfo, ValueList, interface_protocol,
    interface_type,
};
use crate::value::{HandleValue, TtlType, ValuePermissions, ValueReference};

/// A JSON value that does not describe a valid handle value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct JsonValueError {
    /// The offending field (`data.value.index`, `ttl`, ...).
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

fn bad(field: &'static str, reason: impl Into<String>) -> JsonValueError {
    JsonValueError {
        field,
        reason: reason.into(),
    }
}

/// Formats unix seconds as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format_timestamp(seconds: i64) -> String {
    let days = seconds.div_euclid(86_400);
    let secs = seconds.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fff]Z` (or with a `+00:00` offset) into unix seconds.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d, h, mi, se) = (
        num(0..4)?,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "" | "+00:00" | "+0000" => 0,
        _ => return None,
    };
    Some(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se - offset)
}

// Howard Hinnant's civil-date algorithms (public domain).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// CNRI's `Util.looksLikeBinary`, approximated: not UTF-8, or holding control characters
/// other than tab, CR and LF.
pub fn looks_like_binary(data: &[u8]) -> bool {
    match std::str::from_utf8(data) {
        Ok(s) => s
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r')),
        Err(_) => true,
    }
}

fn reference_json(r: &ValueReference) -> Value {
    json!({ "handle": r.handle, "index": r.index })
}

fn site_json(site: &SiteInfo) -> Value {
    let attributes: Vec<Value> = site
        .attributes
        .iter()
        .map(|(k, v)| json!({ "name": String::from_utf8_lossy(k), "value": String::from_utf8_lossy(v) }))
        .collect();
    let servers: Vec<Value> = site
        .servers
        .iter()
        .map(|s| {
            let interfaces: Vec<Value> = s
                .interfaces
                .iter()
                .map(|i| {
                    let protocol = match i.protocol {
                        interface_protocol::UDP => json!("UDP"),
                        interface_protocol::TCP => json!("TCP"),
                        interface_protocol::HTTP => json!("HTTP"),
                        other => json!(other),
                    };
                    json!({
                        "query": i.kind & interface_type::QUERY != 0,
                        "admin": i.kind & interface_type::ADMIN != 0,
                        "protocol": protocol,
                        "port": i.port,
                    })
                })
                .collect();
            json!({
                "serverId": s.server_id,
                "address": s.ip().to_string(),
                "publicKey": { "format": "base64", "value": base64::engine::general_purpose::STANDARD.encode(&s.public_key) },
                "interfaces": interfaces,
            })
        })
        .collect();
    let mut obj = json!({
        "version": site.version,
        "protocolVersion": format!("{}.{}", site.protocol_major, site.protocol_minor),
        "serialNumber": site.serial,
        "primarySite": site.primary_mask & SiteInfo::PRIMARY != 0,
        "multiPrimary": site.primary_mask & SiteInfo::MULTI_PRIMARY != 0,
        "hashOption": site.hash_option,
        "attributes": attributes,
        "servers": servers,
    });
    if !site.hash_filter.is_empty() {
        obj["hashFilter"] = json!(String::from_utf8_lossy(&site.hash_filter));
    }
    obj
}

/// The `data` member for a value.
pub fn data_to_json(value_type: &str, data: &[u8]) -> Value {
    let t = value_type.to_ascii_uppercase();
    let typed = match t.as_str() {
        types::HS_ADMIN => AdminRecord::read_bytes(data).ok().map(|a| {
            json!({ "format": "admin", "value": {
                "handle": a.admin.handle, "index": a.admin.index, "permissions": a.permissions.to_json_string() } })
        }),
        types::HS_VLIST => ValueList::read_bytes(data).ok().map(|l| {
            json!({ "format": "vlist", "value": l.0.iter().map(reference_json).collect::<Vec<_>>() })
        }),
        types::HS_SITE | types::HS_NA_DELEGATE => {
            SiteInfo::read_bytes(data).ok().map(|s| json!({ "format": "site", "value": site_json(&s) }))
        }
        _ => None,
    };
    typed.unwrap_or_else(|| {
        if looks_like_binary(data) {
            json!({ "format": "base64", "value": base64::engine::general_purpose::STANDARD.encode(data) })
        } else {
            json!({ "format": "string", "value": String::from_utf8_lossy(data) })
        }
    })
}

/// A value in REST JSON form.
pub fn value_to_json(v: &HandleValue) -> Value {
    let mut obj = Map::new();
    obj.insert("index".into(), json!(v.index));
    obj.insert("type".into(), json!(v.value_type));
    obj.insert("data".into(), data_to_json(&v.value_type, &v.data));
    if v.permissions != ValuePermissions::DEFAULT {
        obj.insert("permissions".into(), json!(v.permissions.to_bit_string()));
    }
    let ttl = match v.ttl_type {
        TtlType::Relative => json!(v.ttl),
        TtlType::Absolute => json!(format_timestamp(i64::from(v.ttl))),
    };
    obj.insert("ttl".into(), ttl);
    obj.insert(
        "timestamp".into(),
        json!(format_timestamp(i64::from(v.timestamp))),
    );
    if !v.references.is_empty() {
        obj.insert(
            "references".into(),
            Value::Array(v.references.iter().map(reference_json).collect()),
        );
    }
    Value::Object(obj)
}

/// Appends the JSON of `v` to `out`: the same document as [`value_to_json`], written directly
/// for the common string/base64 cases (no intermediate tree; the REST GET hot path).
pub fn write_value_json(v: &HandleValue, out: &mut String) {
    use std::fmt::Write as _;
    let t = v.value_type.to_ascii_uppercase();
    if matches!(
        t.as_str(),
        types::HS_ADMIN | types::HS_VLIST | types::HS_SITE | types::HS_NA_DELEGATE
    ) {
        out.push_str(&value_to_json(v).to_string());
        return;
    }
    let quote = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned());
    out.push_str("{\"data\":{\"format\":");
    if looks_like_binary(&v.data) {
        let _ = write!(
            out,
            "\"base64\",\"value\":\"{}\"}}",
            base64::engine::general_purpose::STANDARD.encode(&v.data)
        );
    } else {
        let _ = write!(
            out,
            "\"string\",\"value\":{}}}",
            quote(&String::from_utf8_lossy(&v.data))
        );
    }
    let _ = write!(out, ",\"index\":{}", v.index);
    if v.permissions != ValuePermissions::DEFAULT {
        let _ = write!(
            out,
            ",\"permissions\":\"{}\"",
            v.permissions.to_bit_string()
        );
    }
    if !v.references.is_empty() {
        let refs: Vec<Value> = v.references.iter().map(reference_json).collect();
        let _ = write!(out, ",\"references\":{}", Value::Array(refs));
    }
    let _ = write!(
        out,
        ",\"timestamp\":\"{}\"",
        format_timestamp(i64::from(v.timestamp))
    );
    match v.ttl_type {
        TtlType::Relative => {
            let _ = write!(out, ",\"ttl\":{}", v.ttl);
        }
        TtlType::Absolute => {
            let _ = write!(out, ",\"ttl\":\"{}\"", format_timestamp(i64::from(v.ttl)));
        }
    }
    let _ = write!(out, ",\"type\":{}}}", quote(&v.value_type));
}

fn as_u32(v: &Value, field: &'static str) -> Result<u32, JsonValueError> {
    match v {
        Value::Number(n) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| bad(field, "not a u32")),
        Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| bad(field, format!("{s:?} is not a u32"))),
        _ => Err(bad(field, "expected a number")),
    }
}

fn as_str<'a>(v: Option<&'a Value>, field: &'static str) -> Result<&'a str, JsonValueError> {
    v.and_then(Value::as_str)
        .ok_or_else(|| bad(field, "expected a string"))
}

fn reference_from_json(v: &Value) -> Result<ValueReference, JsonValueError> {
    let handle = as_str(v.get("handle"), "reference.handle")?;
    let index = as_u32(
        v.get("index")
            .ok_or_else(|| bad("reference.index", "missing"))?,
        "reference.index",
    )?;
    Ok(ValueReference::new(handle, index))
}

fn admin_permissions_from_json(v: Option<&Value>) -> Result<AdminPermissions, JsonValueError> {
    let field = "data.value.permissions";
    match v {
        None | Some(Value::Null) => Ok(AdminPermissions(0)),
        Some(Value::Bool(true)) => Ok(AdminPermissions::ALL),
        Some(Value::Bool(false)) => Ok(AdminPermissions(0)),
        Some(Value::String(s)) => {
            AdminPermissions::from_json_string(s).ok_or_else(|| bad(field, format!("{s:?}")))
        }
        Some(Value::Number(n)) => {
            let bits = n.as_u64().ok_or_else(|| bad(field, "negative"))?;
            AdminPermissions::from_json_string(&format!("{bits:b}"))
                .ok_or_else(|| bad(field, "too many bits"))
        }
        Some(Value::Array(items)) => {
            let mut p = 0;
            for (item, bit) in items.iter().zip(AdminPermissions::ORDER) {
                let truthy = match item {
                    Value::Null => false,
                    Value::Bool(b) => *b,
                    Value::String(s) => !s.is_empty(),
                    Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
                    _ => true,
                };
                if truthy {
                    p |= bit;
                }
            }
            Ok(AdminPermissions(p))
        }
        Some(Value::Object(_)) => Err(bad(field, "unexpected object")),
    }
}

fn site_from_json(v: &Value) -> Result<SiteInfo, JsonValueError> {
    let (protocol_major, protocol_minor) = match v.get("protocolVersion").and_then(Value::as_str) {
        Some(s) => {
            let (a, b) = s
                .split_once('.')
                .ok_or_else(|| bad("site.protocolVersion", "expected major.minor"))?;
            (
                a.parse()
                    .map_err(|_| bad("site.protocolVersion", "major"))?,
                b.parse()
                    .map_err(|_| bad("site.protocolVersion", "minor"))?,
            )
        }
        None => (2, 1),
    };
    let flag = |k: &str| v.get(k).and_then(Value::as_bool).unwrap_or(false);
    let mut attributes = Vec::new();
    match v.get("attributes") {
        Some(Value::Array(items)) => {
            for a in items {
                attributes.push((
                    as_str(a.get("name"), "site.attributes.name")?
                        .as_bytes()
                        .to_vec(),
                    as_str(a.get("value"), "site.attributes.value")?
                        .as_bytes()
                        .to_vec(),
                ));
            }
        }
        Some(Value::Object(map)) => {
            for (k, val) in map {
                attributes.push((
                    k.as_bytes().to_vec(),
                    as_str(Some(val), "site.attributes")?.as_bytes().to_vec(),
                ));
            }
        }
        _ => {}
    }
    let mut servers = Vec::new();
    for s in v
        .get("servers")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let ip: std::net::IpAddr = as_str(s.get("address"), "site.servers.address")?
            .parse()
            .map_err(|_| bad("site.servers.address", "not an IP address"))?;
        let public_key = match s.get("publicKey") {
            Some(pk) => data_from_json("", pk)?,
            None => Vec::new(),
        };
        let mut interfaces = Vec::new();
        for i in s
            .get("interfaces")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let query = i.get("query").and_then(Value::as_bool).unwrap_or(false);
            let admin = i.get("admin").and_then(Value::as_bool).unwrap_or(false);
            let kind =
                u8::from(query) * interface_type::QUERY + u8::from(admin) * interface_type::ADMIN;
            let protocol = match i.get("protocol") {
                Some(Value::String(p)) if p == "UDP" => interface_protocol::UDP,
                Some(Value::String(p)) if p == "TCP" => interface_protocol::TCP,
                Some(Value::String(p)) if p == "HTTP" => interface_protocol::HTTP,
                Some(other) => u8::try_from(as_u32(other, "site.interfaces.protocol")?)
                    .map_err(|_| bad("site.interfaces.protocol", "too large"))?,
                None => return Err(bad("site.interfaces.protocol", "missing")),
            };
            let port = as_u32(
                i.get("port")
                    .ok_or_else(|| bad("site.interfaces.port", "missing"))?,
                "site.interfaces.port",
            )?;
            interfaces.push(Interface {
                kind,
                protocol,
                port,
            });
        }
        servers.push(ServerInfo {
            server_id: as_u32(
                s.get("serverId")
                    .ok_or_else(|| bad("site.servers.serverId", "missing"))?,
                "site.servers.serverId",
            )?,
            address: ServerInfo::address_bytes(ip),
            public_key,
            interfaces,
        });
    }
    Ok(SiteInfo {
        version: v
            .get("version")
            .and_then(Value::as_u64)
            .map_or(1, |x| x as u16),
        protocol_major,
        protocol_minor,
        serial: v
            .get("serialNumber")
            .and_then(Value::as_u64)
            .map_or(1, |x| x as u16),
        primary_mask: if flag("primarySite") {
            SiteInfo::PRIMARY
        } else {
            0
        } | if flag("multiPrimary") {
            SiteInfo::MULTI_PRIMARY
        } else {
            0
        },
        hash_option: v
            .get("hashOption")
            .and_then(Value::as_u64)
            .map_or(0, |x| x as u8),
        hash_filter: v
            .get("hashFilter")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .as_bytes()
            .to_vec(),
        attributes,
        servers,
    })
}

/// Decodes a `data` member into wire bytes.
pub fn data_from_json(_value_type: &str, data: &Value) -> Result<Vec<u8>, JsonValueError> {
    match data {
        Value::String(s) => Ok(s.as_bytes().to_vec()),
        Value::Object(obj) => {
            let format = as_str(obj.get("format"), "data.format")?.to_ascii_lowercase();
            let value = obj
                .get("value")
                .ok_or_else(|| bad("data.value", "missing"))?;
            match format.as_str() {
                "string" => Ok(as_str(Some(value), "data.value")?.as_bytes().to_vec()),
                "base64" => base64::engine::general_purpose::STANDARD
                    .decode(as_str(Some(value), "data.value")?)
                    .map_err(|e| bad("data.value", format!("bad base64: {e}"))),
                "hex" => decode_hex(as_str(Some(value), "data.value")?)
                    .ok_or_else(|| bad("data.value", "bad hex")),
                "admin" => {
                    let handle = as_str(value.get("handle"), "data.value.handle")?;
                    let index = as_u32(
                        value
                            .get("index")
                            .ok_or_else(|| bad("data.value.index", "missing"))?,
                        "data.value.index",
                    )?;
                    let permissions = admin_permissions_from_json(value.get("permissions"))?;
                    Ok(AdminRecord {
                        permissions,
                        admin: ValueReference::new(handle, index),
                    }
                    .to_bytes())
                }
                "vlist" => {
                    let items = value
                        .as_array()
                        .ok_or_else(|| bad("data.value", "expected an array"))?;
                    let refs = items
                        .iter()
                        .map(reference_from_json)
                        .collect::<Result<Vec<_>, _>>()?;
                    Ok(ValueList(refs).to_bytes())
                }
                "site" => Ok(site_from_json(value)?.to_bytes()),
                other => Err(bad("data.format", format!("unknown format {other:?}"))),
            }
        }
        _ => Err(bad("data", "expected a string or {format, value}")),
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Decodes one REST JSON value. `now` (unix seconds) is used when `timestamp` is absent.
pub fn value_from_json(v: &Value, now: u32) -> Result<HandleValue, JsonValueError> {
    let obj = v
        .as_object()
        .ok_or_else(|| bad("value", "expected an object"))?;
    let index = as_u32(
        obj.get("index").ok_or_else(|| bad("index", "missing"))?,
        "index",
    )?;
    let value_type = as_str(obj.get("type"), "type")?.to_owned();
    let data = data_from_json(
        &value_type,
        obj.get("data").ok_or_else(|| bad("data", "missing"))?,
    )?;
    let mut value = HandleValue::new(index, value_type, data);
    value.timestamp = now;
    if let Some(p) = obj.get("permissions") {
        let s = as_str(Some(p), "permissions")?;
        value.permissions = ValuePermissions::from_bit_string(s)
            .ok_or_else(|| bad("permissions", format!("{s:?}")))?;
    }
    match obj.get("ttl") {
        None | Some(Value::Null) => {}
        Some(Value::Number(n)) => {
            value.ttl = n
                .as_i64()
                .and_then(|n| i32::try_from(n).ok())
                .ok_or_else(|| bad("ttl", "not an i32"))?;
        }
        Some(Value::String(s)) => match s.trim().parse::<i32>() {
            Ok(n) => value.ttl = n,
            Err(_) => {
                value.ttl_type = TtlType::Absolute;
                value.ttl = parse_timestamp(s)
                    .and_then(|t| i32::try_from(t).ok())
                    .ok_or_else(|| bad("ttl", format!("{s:?}")))?;
            }
        },
        Some(_) => return Err(bad("ttl", "expected a number or a time")),
    }
    if let Some(ts) = obj.get("timestamp").and_then(Value::as_str) {
        value.timestamp = parse_timestamp(ts)
            .and_then(|t| u32::try_from(t).ok())
            .ok_or_else(|| bad("timestamp", format!("{ts:?}")))?;
    }
    if let Some(refs) = obj.get("references").and_then(Value::as_array) {
        value.references = refs
            .iter()
            .map(reference_from_json)
            .collect::<Result<_, _>>()?;
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(format_timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_timestamp(951_782_400), "2000-02-29T00:00:00Z");
        for t in [0i64, 86_399, 951_782_400, 1_700_000_000, 4_102_444_800] {
            assert_eq!(parse_timestamp(&format_timestamp(t)), Some(t));
        }
        assert_eq!(
            parse_timestamp("2023-11-14T22:13:20.123Z"),
            Some(1_700_000_000)
        );
        assert_eq!(parse_timestamp("2023-13-14T22:13:20Z"), None);
    }

    #[test]
    fn pyhandle_register_body_decodes() {
        // The exact value list pyhandle 1.5.0 sends on register (handle.md §3.1).
        let body: Value = serde_json::from_str(r#"[{"index":100,"type":"HS_ADMIN","data":{"value":{"index":"200","handle":"0.NA/21.T999","permissions":"011111110011"},"format":"admin"}},{"index":1,"type":"URL","data":"https://example.org/x"},{"index":2,"type":"CHECKSUM","data":"abc"}]"#).unwrap();
        let values: Vec<HandleValue> = body
            .as_array()
            .unwrap()
            .iter()
            .map(|v| value_from_json(v, 5).unwrap())
            .collect();
        let admin = AdminRecord::read_bytes(&values[0].data).unwrap();
        assert_eq!(admin.admin, ValueReference::new("0.NA/21.T999", 200));
        assert_eq!(admin.permissions.to_json_string(), "011111110011");
        assert_eq!(values[1].data, b"https://example.org/x");
        assert_eq!(values[2].timestamp, 5);
        let out = value_to_json(&values[0]);
        assert_eq!(out["data"]["format"], "admin");
        assert_eq!(out["data"]["value"]["index"], 200);
        assert_eq!(out["timestamp"], "1970-01-01T00:00:05Z");
        assert!(out.get("permissions").is_none());
    }

    #[test]
    fn round_trips_all_formats() {
        let mut v = HandleValue::new(7, "BLOB", vec![0, 1, 2, 255]);
        v.permissions = ValuePermissions(0x0c);
        v.ttl_type = TtlType::Absolute;
        v.ttl = 1_700_000_000;
        v.timestamp = 1_600_000_000;
        v.references = vec![ValueReference::new("a/b", 1)];
        let j = value_to_json(&v);
        assert_eq!(j["data"]["format"], "base64");
        assert_eq!(j["permissions"], "1100");
        assert_eq!(value_from_json(&j, 0).unwrap(), v);
        let vl = HandleValue::new(
            200,
            "HS_VLIST",
            ValueList(vec![ValueReference::new("21.T999/ADMIN", 300)]).to_bytes(),
        );
        assert_eq!(value_from_json(&value_to_json(&vl), 0).unwrap(), vl);
        let hex: Value =
            serde_json::json!({"index":1,"type":"X","data":{"format":"hex","value":"00ff"}});
        assert_eq!(value_from_json(&hex, 0).unwrap().data, vec![0, 255]);
    }

    #[test]
    fn direct_writer_matches_the_tree() {
        let mut odd = HandleValue::new(
            9,
            "DESC \"quoted\"",
            "line\nwith \\ escapes \u{e9}".as_bytes().to_vec(),
        );
        odd.permissions = ValuePermissions(0x0b);
        odd.references = vec![ValueReference::new("x/y", 2)];
        odd.ttl_type = TtlType::Absolute;
        odd.ttl = 1_800_000_000;
        let admin = HandleValue::new(
            100,
            "HS_ADMIN",
            AdminRecord {
                permissions: AdminPermissions(0x0ff3),
                admin: ValueReference::new("0.NA/1", 200),
            }
            .to_bytes(),
        );
        for v in [
            HandleValue::new(1, "URL", b"https://a/b?c=d".to_vec()),
            HandleValue::new(2, "BIN", vec![0, 159, 255]),
            odd,
            admin,
        ] {
            let mut s = String::new();
            write_value_json(&v, &mut s);
            let parsed: Value = serde_json::from_str(&s).unwrap();
            assert_eq!(parsed, value_to_json(&v), "{s}");
        }
    }

    #[test]
    fn errors_name_the_field() {
        let v = serde_json::json!({"index":"x","type":"URL","data":"a"});
        assert_eq!(value_from_json(&v, 0).unwrap_err().field, "index");
        let v = serde_json::json!({"index":1,"type":"URL","data":{"format":"nope","value":"a"}});
        assert_eq!(value_from_json(&v, 0).unwrap_err().field, "data.format");
    }
}
