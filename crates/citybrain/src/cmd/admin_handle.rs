//! `admin handle`: the Handle System node's prefixes and handles, directly in the data
//! directory's store (issue 6, Administration).
//!
//! The running node loads the store once at start, so these commands are for a stopped node:
//! changes made here while `citybrain serve` runs are not seen by it (and its own writes are
//! not seen here) until it is restarted.
//!
//! Secrets are read from files, never from the command line, and never printed or logged;
//! every write is recorded in the identity audit log as actor `system:cli`.

use crate::output::outln;
use crate::platform::Platform;
use anyhow::Context;
use base64::Engine as _;
use clap::{ArgGroup, Subcommand};
use handle_proto::HandleValue;
use handle_proto::batch::{BatchCommand, parse_batch, print_batch};
use handle_proto::constants::types;
use handle_proto::handle::prefix_handle;
use handle_server::durable::DurableStore;
use handle_server::server::{AdminKey, home_prefix_with_admin};
use handle_server::store::{CreateMode, HandleStore};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use store::AuditOutcome;

const AFTER_HELP: &str = "These commands work on the data directory's store directly. A running \
node loads the store only at start: stop `citybrain serve` first, run the command, then start it \
again.";

/// Bad input from the user (unknown prefix, unreadable or malformed file): exit code 2.
#[derive(Debug)]
pub(crate) struct UsageError(pub(crate) String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

fn usage(message: impl Into<String>) -> anyhow::Error {
    UsageError(message.into()).into()
}

#[derive(Debug, Subcommand)]
#[command(after_help = AFTER_HELP)]
pub(crate) enum HandleCommand {
    /// Home a prefix and create its admin handle PREFIX/ADMIN (HS_ADMIN and, at index 300,
    /// HS_SECKEY or an Ed25519 HS_PUBKEY) in one step. Works on a stopped node's data directory.
    #[command(after_help = AFTER_HELP)]
    #[command(group(ArgGroup::new("key").required(true).args(["secret_file", "pubkey"])))]
    HomePrefix {
        /// The prefix, e.g. 21.T999.
        prefix: String,
        /// File whose first line is the admin's secret key (stored as HS_SECKEY at index 300).
        #[arg(long, value_name = "FILE")]
        secret_file: Option<PathBuf>,
        /// File holding the admin's Ed25519 public key: PEM (SubjectPublicKeyInfo), 64 hex
        /// digits, or the 32 raw bytes (stored as HS_PUBKEY at index 300).
        #[arg(long, value_name = "FILE")]
        pubkey: Option<PathBuf>,
    },
    /// Load a batch file in the CNRI reference server's batch text format (CREATE, ADD,
    /// MODIFY, REMOVE, DELETE, HOME, UNHOME; AUTHENTICATE is accepted and ignored). Every
    /// handle's prefix must be homed (by HOME or CREATE 0.NA/PREFIX earlier in the file, or
    /// already). Works on a stopped node's data directory.
    #[command(after_help = AFTER_HELP)]
    Import {
        /// The batch file.
        file: PathBuf,
    },
    /// Write a homed prefix's handles (including 0.NA/PREFIX) as a batch file of CREATE
    /// commands. HS_SECKEY values are left out unless --include-secrets is given with --out.
    #[command(after_help = AFTER_HELP)]
    Export {
        /// The prefix, e.g. 21.T999.
        prefix: String,
        /// Write to this file (created owner-only) instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Include HS_SECKEY values (needs --out; they are never written to stdout).
        #[arg(long, requires = "out")]
        include_secrets: bool,
    },
}

fn check_prefix(prefix: &str) -> anyhow::Result<()> {
    if prefix.is_empty()
        || prefix.contains('/')
        || !prefix.is_ascii()
        || prefix
            .chars()
            .any(|c| c.is_ascii_whitespace() || c.is_ascii_control())
    {
        return Err(usage(format!(
            "{prefix:?} is not a handle prefix such as 21.T999"
        )));
    }
    Ok(())
}

fn read_file(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| usage(format!("cannot read {what} {}: {e}", path.display())))
}

fn read_secret(path: &Path) -> anyhow::Result<Vec<u8>> {
    let bytes = read_file(path, "the secret file")?;
    let text = String::from_utf8(bytes)
        .map_err(|_| usage(format!("the secret file {} is not UTF-8", path.display())))?;
    let secret = text.lines().next().unwrap_or_default().trim();
    if secret.is_empty() {
        return Err(usage(format!(
            "the secret file {} is empty",
            path.display()
        )));
    }
    Ok(secret.as_bytes().to_vec())
}

/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410).
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

fn read_public_key(path: &Path) -> anyhow::Result<[u8; 32]> {
    let bytes = read_file(path, "the public key file")?;
    let bad = |why: &str| {
        usage(format!(
            "{} is not an Ed25519 public key: {why}",
            path.display()
        ))
    };
    let raw: Vec<u8> = if bytes.len() == 32 {
        bytes
    } else {
        let text = std::str::from_utf8(&bytes).map_err(|_| bad("neither 32 raw bytes nor text"))?;
        let text = text.trim();
        if text.starts_with("-----BEGIN") {
            if !text.starts_with("-----BEGIN PUBLIC KEY-----") {
                return Err(bad("expected a PEM `PUBLIC KEY` block"));
            }
            let body: String = text
                .lines()
                .filter(|l| !l.starts_with("-----"))
                .map(str::trim)
                .collect();
            let der = base64::engine::general_purpose::STANDARD
                .decode(body)
                .map_err(|_| bad("invalid base64 in the PEM block"))?;
            match der.strip_prefix(&ED25519_SPKI_PREFIX[..]) {
                Some(key) => key.to_vec(),
                None => return Err(bad("the PEM block is not an Ed25519 key")),
            }
        } else {
            hex::decode(text).map_err(|_| bad("expected PEM, 64 hex digits or 32 raw bytes"))?
        }
    };
    let key: [u8; 32] = raw
        .try_into()
        .map_err(|_| bad("an Ed25519 key is 32 bytes"))?;
    ed25519_dalek::VerifyingKey::from_bytes(&key).map_err(|_| bad("not a valid curve point"))?;
    Ok(key)
}

/// The prefix a handle belongs to: `21.T999` for `21.T999/x` and for `0.NA/21.T999`.
fn prefix_of(handle: &str) -> Option<String> {
    let (prefix, suffix) = handle.split_once('/')?;
    if prefix.eq_ignore_ascii_case("0.NA") {
        Some(suffix.to_ascii_uppercase())
    } else {
        Some(prefix.to_ascii_uppercase())
    }
}

/// `21.T999` for the prefix handle `0.NA/21.T999`.
fn na_prefix(handle: &str) -> Option<&str> {
    handle
        .split_once('/')
        .filter(|(na, p)| na.eq_ignore_ascii_case("0.NA") && !p.is_empty())
        .map(|(_, p)| p)
}

fn command_handle(c: &BatchCommand) -> Option<&str> {
    match c {
        BatchCommand::Create { handle, .. }
        | BatchCommand::Delete { handle }
        | BatchCommand::Add { handle, .. }
        | BatchCommand::Modify { handle, .. }
        | BatchCommand::Remove { handle, .. } => Some(handle),
        _ => None,
    }
}

fn home_prefixes_of(prefixes: &[String]) -> anyhow::Result<Vec<String>> {
    prefixes
        .iter()
        .map(|p| match p.split_once('/') {
            Some((na, prefix)) if na.eq_ignore_ascii_case("0.NA") && !prefix.is_empty() => {
                check_prefix(prefix)?;
                Ok(prefix.to_owned())
            }
            _ => Err(usage(format!(
                "HOME/UNHOME lists prefix handles such as 0.NA/21.T999, not {p:?}"
            ))),
        })
        .collect()
}

async fn audit(platform: &Platform, action: &str, target: String, detail: serde_json::Value) {
    platform
        .identity
        .audit(
            None,
            "system:cli".to_owned(),
            action,
            AuditOutcome::Success,
            Some(target),
            detail,
        )
        .await;
}

pub(crate) async fn run(platform: &Platform, command: HandleCommand) -> anyhow::Result<()> {
    let durable: Arc<dyn store::HandleStore> = Arc::new(platform.store.clone());
    let store = DurableStore::open(durable)
        .await
        .map_err(|e| anyhow::anyhow!("loading the handle store: {e}"))?;
    match command {
        HandleCommand::HomePrefix {
            prefix,
            secret_file,
            pubkey,
        } => {
            check_prefix(&prefix)?;
            let (key, kind) = match (secret_file, pubkey) {
                (Some(file), None) => (AdminKey::Secret(read_secret(&file)?), "HS_SECKEY"),
                (None, Some(file)) => (AdminKey::Ed25519(read_public_key(&file)?), "HS_PUBKEY"),
                _ => return Err(usage("give exactly one of --secret-file and --pubkey")),
            };
            let admin =
                tokio::task::block_in_place(|| home_prefix_with_admin(&store, &prefix, key))
                    .map_err(|e| anyhow::anyhow!("homing prefix {prefix}: {e}"))?;
            audit(
                platform,
                "handle.prefix.home",
                prefix.clone(),
                serde_json::json!({ "admin": admin.to_string(), "key": kind }),
            )
            .await;
            outln!("homed prefix {prefix}; admin {admin} ({kind})");
        }
        HandleCommand::Import { file } => {
            let bytes = read_file(&file, "the batch file")?;
            let text = String::from_utf8(bytes)
                .map_err(|_| usage(format!("the batch file {} is not UTF-8", file.display())))?;
            let base = file.parent().map(Path::to_path_buf).unwrap_or_default();
            let mut unreadable = None;
            let parsed = parse_batch(&text, handle_server::node::now_seconds(), |name| {
                let path = base.join(name);
                match std::fs::read(&path) {
                    Ok(b) => Some(b),
                    Err(e) => {
                        unreadable.get_or_insert(format!("{}: {e}", path.display()));
                        None
                    }
                }
            });
            let commands = match parsed {
                Ok(c) => c,
                Err(e) => {
                    let extra = unreadable
                        .map(|u| format!(" (FILE value unreadable: {u})"))
                        .unwrap_or_default();
                    return Err(usage(format!("{}: {e}{extra}", file.display())));
                }
            };
            // Check every handle's prefix before writing anything.
            let mut homed: BTreeSet<String> = store
                .homed_prefixes()
                .map_err(|e| anyhow::anyhow!("reading the homed prefixes: {e}"))?
                .into_iter()
                .map(|p| p.to_ascii_uppercase())
                .collect();
            for (n, c) in commands.iter().enumerate() {
                match c {
                    BatchCommand::Home { prefixes, .. } => {
                        homed.extend(
                            home_prefixes_of(prefixes)?
                                .iter()
                                .map(|p| p.to_ascii_uppercase()),
                        );
                    }
                    BatchCommand::Unhome { prefixes, .. } => {
                        for p in home_prefixes_of(prefixes)? {
                            homed.remove(&p.to_ascii_uppercase());
                        }
                    }
                    BatchCommand::Create { handle, .. } if na_prefix(handle).is_some() => {
                        let p = na_prefix(handle).unwrap_or_default();
                        check_prefix(p)?;
                        homed.insert(p.to_ascii_uppercase());
                    }
                    _ => {
                        if let Some(h) = command_handle(c) {
                            let known = prefix_of(h).is_some_and(|p| homed.contains(&p));
                            if !known {
                                return Err(usage(format!(
                                    "{}: command {} ({h}): unknown prefix {}: it is not homed on this node (home it with `citybrain admin handle home-prefix`)",
                                    file.display(),
                                    n + 1,
                                    prefix_of(h).unwrap_or_else(|| h.to_owned())
                                )));
                            }
                        }
                    }
                }
            }
            let mut written = 0usize;
            for (n, c) in commands.iter().enumerate() {
                let result = tokio::task::block_in_place(|| apply(&store, c));
                let applied = result.with_context(|| {
                    format!(
                        "{}: command {} failed ({} earlier commands were applied)",
                        file.display(),
                        n + 1,
                        n
                    )
                })?;
                written += usize::from(applied);
            }
            audit(
                platform,
                "handle.import",
                file.display().to_string(),
                serde_json::json!({ "commands": commands.len(), "writes": written }),
            )
            .await;
            outln!(
                "imported {} ({} commands, {written} changes)",
                file.display(),
                commands.len()
            );
        }
        HandleCommand::Export {
            prefix,
            out,
            include_secrets,
        } => {
            check_prefix(&prefix)?;
            if !store.is_homed(&prefix) {
                return Err(usage(format!(
                    "unknown prefix {prefix}: it is not homed on this node"
                )));
            }
            let mut names = vec![prefix_handle(&prefix)];
            names.extend(
                store
                    .list(&prefix, 0, usize::MAX)
                    .map_err(|e| anyhow::anyhow!("listing {prefix}: {e}"))?
                    .handles,
            );
            let mut commands = Vec::with_capacity(names.len());
            let mut left_out = 0usize;
            for handle in names {
                let Some(mut values) = store
                    .get(&handle)
                    .map_err(|e| anyhow::anyhow!("reading {handle}: {e}"))?
                else {
                    continue;
                };
                if !include_secrets {
                    let before = values.len();
                    values.retain(|v: &HandleValue| {
                        !v.value_type.eq_ignore_ascii_case(types::HS_SECKEY)
                    });
                    left_out += before - values.len();
                }
                if !values.is_empty() {
                    commands.push(BatchCommand::Create { handle, values });
                }
            }
            let text = print_batch(&commands);
            match &out {
                Some(path) => {
                    write_private(path, text.as_bytes())
                        .with_context(|| format!("writing {}", path.display()))?;
                    audit(
                        platform,
                        "handle.export",
                        prefix.clone(),
                        serde_json::json!({ "file": path.display().to_string(), "handles": commands.len(), "secrets": include_secrets }),
                    )
                    .await;
                    outln!(
                        "exported {} handles of {prefix} to {}",
                        commands.len(),
                        path.display()
                    );
                }
                None => print!("{text}"),
            }
            if left_out > 0 {
                eprintln!(
                    "note: {left_out} HS_SECKEY value(s) left out (use --include-secrets with --out)"
                );
            }
        }
    }
    Ok(())
}

fn apply(store: &DurableStore, c: &BatchCommand) -> anyhow::Result<bool> {
    let e = |what: &str, h: &str| {
        let what = what.to_owned();
        let h = h.to_owned();
        move |err: handle_server::store::StoreError| anyhow::anyhow!("{what} {h}: {err}")
    };
    match c {
        BatchCommand::AuthenticateSecretKey { .. } | BatchCommand::AuthenticatePublicKey { .. } => {
            Ok(false)
        }
        BatchCommand::Create { handle, values } => {
            if let Some(prefix) = na_prefix(handle) {
                store.home_prefix(prefix).map_err(e("HOME", prefix))?;
            }
            store
                .create(handle, values, CreateMode::FailIfExists)
                .map_err(e("CREATE", handle))?;
            Ok(true)
        }
        BatchCommand::Delete { handle } => {
            store.delete(handle).map_err(e("DELETE", handle))?;
            Ok(true)
        }
        BatchCommand::Add { handle, values } => {
            store.add_values(handle, values).map_err(e("ADD", handle))?;
            Ok(true)
        }
        BatchCommand::Modify { handle, values } => {
            store
                .modify_values(handle, values)
                .map_err(e("MODIFY", handle))?;
            Ok(true)
        }
        BatchCommand::Remove { handle, indexes } => {
            store
                .remove_values(handle, indexes)
                .map_err(e("REMOVE", handle))?;
            Ok(true)
        }
        BatchCommand::Home { prefixes, .. } => {
            for p in home_prefixes_of(prefixes)? {
                store.home_prefix(&p).map_err(e("HOME", &p))?;
            }
            Ok(true)
        }
        BatchCommand::Unhome { prefixes, .. } => {
            for p in home_prefixes_of(prefixes)? {
                store.unhome_prefix(&p).map_err(e("UNHOME", &p))?;
            }
            Ok(true)
        }
    }
}

/// Writes `bytes` to a new or truncated owner-only file.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(bytes)
}
