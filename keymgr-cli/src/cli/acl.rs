//! `keymgr secret acl ...`: Barbican secret ACLs (read access for given users,
//! project access on or off).

use clap::Subcommand;
use keymgr::{Config, SecretId};
use keymgr_barbican::{BarbicanConfig, BarbicanKeyManager, SecretAcl};

use super::io::print_json;

#[derive(Debug, Subcommand)]
pub(super) enum AclCommand {
    /// Show who may read a secret.
    Get {
        /// Secret id.
        id: SecretId,
    },
    /// Replace the read ACL: exactly these users, and project access on or off.
    Set {
        /// Secret id.
        id: SecretId,
        /// A user id allowed to read (repeat for several).
        #[arg(long = "read-user")]
        users: Vec<String>,
        /// Whether members of the secret's project may read it.
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        project_access: bool,
    },
    /// Add users to the read ACL, keeping the others.
    Add {
        /// Secret id.
        id: SecretId,
        /// A user id to add (repeat for several).
        #[arg(long = "read-user", required = true)]
        users: Vec<String>,
    },
    /// Remove the ACL: back to Barbican's default (project members only).
    Delete {
        /// Secret id.
        id: SecretId,
    },
}

fn print_acl(json: bool, acl: &SecretAcl) -> anyhow::Result<()> {
    if json {
        return print_json(&serde_json::json!({
            "read_users": acl.read_users,
            "project_access": acl.project_access,
        }));
    }
    println!("project access: {}", acl.project_access);
    for u in &acl.read_users {
        println!("read user:      {u}");
    }
    Ok(())
}

/// Runs one `acl` command (the backend must be Barbican).
pub(super) async fn run(config: &Config, json: bool, cmd: &AclCommand) -> anyhow::Result<()> {
    if config.backend != keymgr::BackendKind::Barbican {
        anyhow::bail!(
            "ACLs are a Barbican feature; the configured backend is {:?}",
            config.backend
        );
    }
    let km = BarbicanKeyManager::new(config.section_as::<BarbicanConfig>()?)?;
    let ctx = super::context_for(config);
    match cmd {
        AclCommand::Get { id } => print_acl(json, &km.get_acl(&ctx, id).await?),
        AclCommand::Set {
            id,
            users,
            project_access,
        } => {
            km.set_acl(&ctx, id, users, *project_access).await?;
            print_acl(json, &km.get_acl(&ctx, id).await?)
        }
        AclCommand::Add { id, users } => {
            let mut all = km.get_acl(&ctx, id).await?.read_users;
            for u in users {
                if !all.contains(u) {
                    all.push(u.clone());
                }
            }
            km.update_acl(&ctx, id, Some(&all), None).await?;
            print_acl(json, &km.get_acl(&ctx, id).await?)
        }
        AclCommand::Delete { id } => Ok(km.delete_acl(&ctx, id).await?),
    }
}
