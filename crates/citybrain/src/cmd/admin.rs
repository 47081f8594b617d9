//! `admin`: manage the unified user system directly in the data directory.
//!
//! Runs as the trusted `system:cli` principal (whoever can read the data directory can
//! already read everything), through the same identity service as the HTTP API, so every
//! change is validated and audited the same way.

use crate::output::outln;
use crate::output::{print_json, table};
use crate::platform::Platform;
use anyhow::Context;
use clap::{Args, Subcommand};
use identity::secrets::Secret;
use identity::{NewUser, Principal};
use settings::Config;
use std::io::BufRead;
use std::path::PathBuf;
use store::{AuditFilter, ChainVerification, TenantId};

#[derive(Debug, Args)]
pub(crate) struct AdminArgs {
    /// Data directory (default ./citybrain-data).
    #[arg(long, value_name = "DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// Print results as JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: AdminCommand,
}

impl AdminArgs {
    pub(crate) fn data_dir(&self) -> Option<&PathBuf> {
        self.data_dir.as_ref()
    }
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Create the first tenant and a platform administrator on an empty store.
    Bootstrap {
        /// The administrator's username.
        #[arg(long, default_value = "admin")]
        username: String,
        /// The first tenant.
        #[arg(long, default_value = "default")]
        tenant: String,
        /// Read the password from the first line of stdin (otherwise one is generated and printed).
        #[arg(long)]
        password_stdin: bool,
    },
    /// Tenants.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Users and memberships.
    #[command(subcommand)]
    User(UserCommand),
    /// Custom roles.
    #[command(subcommand)]
    Role(RoleCommand),
    /// API keys for devices and services.
    #[command(subcommand)]
    Key(KeyCommand),
    /// The Handle System node: home a prefix with its admin handle, import/export batch
    /// files. Acts on the data directory's store: stop the node first.
    #[command(subcommand)]
    Handle(super::admin_handle::HandleCommand),
    /// The audit log.
    Audit {
        /// Only this tenant's entries.
        #[arg(long)]
        tenant: Option<String>,
        /// Only this action, e.g. auth.login.
        #[arg(long)]
        action: Option<String>,
        /// At most this many (newest first).
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Check the hash chain instead of listing.
        #[arg(long)]
        verify: bool,
    },
}

#[derive(Debug, Subcommand)]
enum TenantCommand {
    /// Create a tenant.
    Create {
        /// Tenant id: lowercase letters, digits, '-' and '_'.
        id: String,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
    },
    /// List tenants.
    List,
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create a user as a member of a tenant.
    Create {
        username: String,
        #[arg(long)]
        tenant: String,
        #[arg(long, default_value = "viewer")]
        role: String,
        /// Make the user a platform administrator.
        #[arg(long)]
        superuser: bool,
        /// Read the password from stdin (otherwise one is generated and printed).
        #[arg(long)]
        password_stdin: bool,
    },
    /// List the members of a tenant.
    List {
        #[arg(long)]
        tenant: String,
    },
    /// Give an existing user a role in a tenant.
    Grant {
        username: String,
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        role: String,
    },
    /// Remove a user from a tenant.
    Revoke {
        username: String,
        #[arg(long)]
        tenant: String,
    },
    /// Set a new password (read from stdin, or generated and printed).
    Passwd {
        username: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Disable a user.
    Disable { username: String },
    /// Re-enable a user.
    Enable { username: String },
}

#[derive(Debug, Subcommand)]
enum RoleCommand {
    /// Define or replace a custom role.
    Put {
        name: String,
        #[arg(long)]
        tenant: String,
        /// A permission `<module>:<read|write|admin>`; repeat for more.
        #[arg(long = "permission", required = true)]
        permissions: Vec<String>,
    },
    /// List custom roles.
    List {
        #[arg(long)]
        tenant: String,
    },
    /// Delete a custom role.
    Delete {
        name: String,
        #[arg(long)]
        tenant: String,
    },
}

#[derive(Debug, Subcommand)]
enum KeyCommand {
    /// Create an API key; the key is printed once.
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "device")]
        role: String,
        /// Lifetime in seconds (default: no expiry).
        #[arg(long)]
        expires_in: Option<i64>,
    },
    /// List a tenant's keys.
    List {
        #[arg(long)]
        tenant: String,
    },
    /// Revoke a key by id.
    Revoke {
        id: String,
        #[arg(long)]
        tenant: String,
    },
}

fn tenant(id: &str) -> anyhow::Result<TenantId> {
    TenantId::new(id).map_err(anyhow::Error::from)
}

fn password(from_stdin: bool) -> anyhow::Result<(Secret, bool)> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from stdin")?;
        Ok((Secret::new(line.trim_end_matches(['\n', '\r'])), false))
    } else {
        Ok((Secret::new(identity::secrets::random_token(18)), true))
    }
}

fn millis_to_string(millis: i64) -> String {
    format!("{millis}")
}

pub(crate) async fn run(config: Config, args: AdminArgs) -> anyhow::Result<()> {
    let platform = Platform::open(config).await?;
    let service = &platform.identity;
    let cli = Principal::system("cli");
    let json = args.json;
    match args.command {
        AdminCommand::Bootstrap {
            username,
            tenant: tenant_id,
            password_stdin,
        } => {
            let given = if password_stdin {
                Some(password(true)?.0)
            } else {
                None
            };
            let report = service
                .bootstrap(&username, given, tenant(&tenant_id)?)
                .await?;
            if json {
                print_json(&serde_json::json!({
                    "username": report.username, "tenant": report.tenant.to_string(),
                    "password": report.generated_password.as_ref().map(Secret::expose),
                }))?;
            } else {
                outln!(
                    "created platform administrator '{}' in tenant '{}'",
                    report.username,
                    report.tenant
                );
                if let Some(generated) = &report.generated_password {
                    outln!("password (shown once): {}", generated.expose());
                }
            }
        }
        AdminCommand::Tenant(TenantCommand::Create { id, name }) => {
            let record = service
                .create_tenant(&cli, tenant(&id)?, name.as_deref().unwrap_or(&id))
                .await?;
            outln!("created tenant '{}'", record.id);
        }
        AdminCommand::Tenant(TenantCommand::List) => {
            let tenants = service.visible_tenants(&cli).await?;
            if json {
                print_json(&tenants)?;
            } else {
                outln!(
                    "{}",
                    table(
                        &["id", "name", "created (ms)"],
                        tenants.iter().map(|t| vec![
                            t.id.to_string(),
                            t.display_name.clone(),
                            millis_to_string(t.created_at.0)
                        ])
                    )
                );
            }
        }
        AdminCommand::User(command) => user(service, &cli, command, json).await?,
        AdminCommand::Handle(command) => {
            let result = super::admin_handle::run(&platform, command).await;
            platform.store.close();
            return result;
        }
        AdminCommand::Role(RoleCommand::Put {
            name,
            tenant: t,
            permissions,
        }) => {
            let role = service
                .put_role(&cli, &tenant(&t)?, &name, &permissions)
                .await?;
            outln!(
                "role '{}' in '{t}': {}",
                role.name,
                role.permissions.join(", ")
            );
        }
        AdminCommand::Role(RoleCommand::List { tenant: t }) => {
            let roles = service.roles(&cli, &tenant(&t)?).await?;
            if json {
                print_json(&roles)?;
            } else {
                outln!(
                    "{}",
                    table(
                        &["role", "permissions"],
                        roles
                            .iter()
                            .map(|r| vec![r.name.clone(), r.permissions.join(", ")])
                    )
                );
            }
        }
        AdminCommand::Role(RoleCommand::Delete { name, tenant: t }) => {
            service.delete_role(&cli, &tenant(&t)?, &name).await?;
            outln!("deleted role '{name}' in '{t}'");
        }
        AdminCommand::Key(KeyCommand::Create {
            tenant: t,
            name,
            role,
            expires_in,
        }) => {
            let issued = service
                .create_api_key(&cli, &tenant(&t)?, &name, &role, expires_in)
                .await?;
            if json {
                print_json(
                    &serde_json::json!({ "id": issued.record.id, "key": issued.key.expose(), "tenant": t, "role": role }),
                )?;
            } else {
                outln!(
                    "API key '{}' (id {}) for tenant '{t}' with role '{role}'",
                    name,
                    issued.record.id
                );
                outln!("key (shown once): {}", issued.key.expose());
            }
        }
        AdminCommand::Key(KeyCommand::List { tenant: t }) => {
            let keys = service.api_keys(&cli, &tenant(&t)?).await?;
            if json {
                print_json(&keys.iter().map(|k| serde_json::json!({
                    "id": k.id, "name": k.name, "role": k.role, "created_at": k.created_at.0,
                    "expires_at": k.expires_at.map(|t| t.0), "revoked_at": k.revoked_at.map(|t| t.0),
                })).collect::<Vec<_>>())?;
            } else {
                let rows = keys.iter().map(|k| {
                    let state = if k.revoked_at.is_some() {
                        "revoked"
                    } else {
                        "active"
                    };
                    vec![
                        k.id.clone(),
                        k.name.clone(),
                        k.role.clone(),
                        state.to_owned(),
                        k.expires_at
                            .map(|t| t.0.to_string())
                            .unwrap_or_else(|| "never".into()),
                    ]
                });
                outln!(
                    "{}",
                    table(&["id", "name", "role", "state", "expires (ms)"], rows)
                );
            }
        }
        AdminCommand::Key(KeyCommand::Revoke { id, tenant: t }) => {
            service.revoke_api_key(&cli, &tenant(&t)?, &id).await?;
            outln!("revoked key {id} in '{t}'");
        }
        AdminCommand::Audit {
            tenant: t,
            action,
            limit,
            verify,
        } => {
            if verify {
                match service.verify_audit_chain(&cli).await? {
                    ChainVerification::Intact { entries } => {
                        outln!("audit log intact: {entries} entries")
                    }
                    ChainVerification::Broken { seq } => {
                        anyhow::bail!("audit log broken at entry {seq}")
                    }
                }
                return Ok(());
            }
            let filter = AuditFilter {
                before_seq: None,
                action,
                limit: Some(limit),
            };
            let entries = match t {
                Some(t) => service.tenant_audit(&cli, &tenant(&t)?, &filter).await?,
                None => service.platform_audit(&cli, &filter).await?,
            };
            if json {
                print_json(&entries)?;
            } else {
                let rows = entries.iter().map(|e| {
                    vec![
                        e.seq.to_string(),
                        millis_to_string(e.event.at.0),
                        e.event
                            .tenant
                            .as_ref()
                            .map(ToString::to_string)
                            .unwrap_or_default(),
                        e.event.actor.clone(),
                        e.event.action.clone(),
                        e.event.outcome.as_str().to_owned(),
                        e.event.target.clone().unwrap_or_default(),
                    ]
                });
                outln!(
                    "{}",
                    table(
                        &[
                            "seq", "at (ms)", "tenant", "actor", "action", "outcome", "target"
                        ],
                        rows
                    )
                );
            }
        }
    }
    platform.store.close();
    Ok(())
}

async fn user(
    service: &identity::IdentityService,
    cli: &Principal,
    command: UserCommand,
    json: bool,
) -> anyhow::Result<()> {
    match command {
        UserCommand::Create {
            username,
            tenant: t,
            role,
            superuser,
            password_stdin,
        } => {
            let (password, generated) = password(password_stdin)?;
            let user = service
                .create_member(
                    cli,
                    &tenant(&t)?,
                    NewUser {
                        username: username.clone(),
                        password: password.clone(),
                        superuser,
                    },
                    &role,
                )
                .await?;
            outln!(
                "created user '{}' ({}) with role '{role}' in '{t}'",
                user.username,
                user.id
            );
            if generated {
                outln!("password (shown once): {}", password.expose());
            }
        }
        UserCommand::List { tenant: t } => {
            let members = service.members(cli, &tenant(&t)?).await?;
            if json {
                print_json(
                    &members
                        .iter()
                        .map(|m| {
                            serde_json::json!({
                                "user_id": m.user.id, "username": m.user.username, "role": m.role,
                                "superuser": m.user.superuser, "disabled": m.user.disabled,
                            })
                        })
                        .collect::<Vec<_>>(),
                )?;
            } else {
                let rows = members.iter().map(|m| {
                    vec![
                        m.user.username.clone(),
                        m.user.id.clone(),
                        m.role.clone(),
                        m.user.superuser.to_string(),
                        m.user.disabled.to_string(),
                    ]
                });
                outln!(
                    "{}",
                    table(&["username", "id", "role", "superuser", "disabled"], rows)
                );
            }
        }
        UserCommand::Grant {
            username,
            tenant: t,
            role,
        } => {
            service
                .set_member_role(cli, &tenant(&t)?, &username, &role)
                .await?;
            outln!("'{username}' now has role '{role}' in '{t}'");
        }
        UserCommand::Revoke {
            username,
            tenant: t,
        } => {
            let user = service
                .store()
                .user_by_username(&username)
                .await?
                .with_context(|| format!("no user {username}"))?;
            service.remove_member(cli, &tenant(&t)?, &user.id).await?;
            outln!("removed '{username}' from '{t}'");
        }
        UserCommand::Passwd {
            username,
            password_stdin,
        } => {
            let (password, generated) = password(password_stdin)?;
            service
                .change_password(cli, &username, None, &password)
                .await?;
            outln!("password of '{username}' changed");
            if generated {
                outln!("new password (shown once): {}", password.expose());
            }
        }
        UserCommand::Disable { username } => {
            service.set_user_disabled(cli, &username, true).await?;
            outln!("disabled '{username}'");
        }
        UserCommand::Enable { username } => {
            service.set_user_disabled(cli, &username, false).await?;
            outln!("enabled '{username}'");
        }
    }
    Ok(())
}
