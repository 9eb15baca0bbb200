//! `sovereign keys create|list|revoke`: API keys. Whoever can write the data dir is trusted:
//! with no engine running the store is opened directly; while an engine holds the data dir,
//! the command goes through its API (`/api/keys`) over the engine's socket in the data dir
//! (`DATA/sovereign.sock`, no key needed). Only when that socket is missing (an engine that
//! could not bind it) does it go to `--url` with an admin key.

use std::path::PathBuf;

use anyhow::{anyhow, Context};
use chrono::Utc;
use clap::Subcommand;
use serde_json::{json, Value};
use sovereign_core::access::Role;
use sovereign_store::{SqliteOptions, Store, StoreError};

use crate::client::{block_on, Api, ClientArgs};

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Make a key and print it, once (the engine keeps only its hash).
    Create {
        name: String,
        /// viewer (reads), trader (orders, cancels, runs tasks), admin (everything).
        #[arg(long)]
        role: String,
        /// How long it is valid, e.g. 90d (default: until revoked).
        #[arg(long)]
        expires: Option<String>,
    },
    /// Name, role, created, last used, expiry — never the key.
    List,
    /// Revoke a key: refused from the next request on.
    Revoke { name: String },
}

pub fn run(cmd: KeysCommand, data_dir: PathBuf, client: &ClientArgs) -> anyhow::Result<()> {
    block_on(async move {
        match Store::open_sqlite(&data_dir, SqliteOptions::default()) {
            Ok(store) => {
                let out = offline(&store, cmd).await;
                store.close().await;
                out
            }
            // An engine holds the data dir: through its socket (no key), or, when it has
            // none, at --url with an admin key.
            Err(StoreError::Locked(_)) => {
                #[cfg(unix)]
                let api = {
                    let socket = data_dir.join(crate::SOCKET);
                    if socket.exists() {
                        Api::unix(&socket)?
                    } else {
                        Api::new(client)
                    }
                };
                #[cfg(not(unix))]
                let api = Api::new(client);
                online(cmd, &api).await
            }
            Err(e) => Err(anyhow!(
                "cannot open the store in {}: {e}",
                data_dir.display()
            )),
        }
    })
}

fn expiry(text: Option<&str>) -> anyhow::Result<Option<chrono::DateTime<Utc>>> {
    let Some(text) = text else { return Ok(None) };
    let d = sovereign_core::schedule::parse_duration("expires", text)
        .map_err(|e| anyhow!("{}", e.message))?;
    let d = chrono::Duration::from_std(d).context("--expires is too long")?;
    Ok(Some(Utc::now() + d))
}

async fn offline(store: &Store, cmd: KeysCommand) -> anyhow::Result<()> {
    match cmd {
        KeysCommand::Create {
            name,
            role,
            expires,
        } => {
            let role = Role::parse(&role).map_err(|e| anyhow!("{}", e.message))?;
            let expires_at = expiry(expires.as_deref())?;
            let (key, text) = sovereign_engine::access::new_key(&name, role, expires_at)
                .map_err(|e| anyhow!("{e}"))?;
            store.insert_key(key).await.map_err(|e| match e {
                StoreError::Conflict(_) => anyhow!("a key named {name:?} exists (revoke it first)"),
                e => anyhow!("{e}"),
            })?;
            store
                .append_audit(
                    Utc::now(),
                    "cli",
                    "key.created",
                    json!({"name": name, "role": role.as_str(), "expires_at": expires_at.map(|t| t.to_rfc3339())}),
                )
                .await?;
            outln!("{}", text.reveal());
            eprintln!(
                "key {name:?} ({}) created; it is shown only this once",
                role.as_str()
            );
            Ok(())
        }
        KeysCommand::List => {
            let rows: Vec<Value> = store
                .list_keys()
                .await?
                .iter()
                .map(|k| {
                    json!({"name": k.name, "role": k.role.as_str(), "created_at": k.created_at.to_rfc3339(),
                           "last_used_at": k.last_used_at.map(|t| t.to_rfc3339()),
                           "expires_at": k.expires_at.map(|t| t.to_rfc3339()),
                           "revoked_at": k.revoked_at.map(|t| t.to_rfc3339())})
                })
                .collect();
            out!("{}", table(&rows));
            Ok(())
        }
        KeysCommand::Revoke { name } => {
            store
                .revoke_key(name.clone(), Utc::now())
                .await
                .map_err(|e| match e {
                    StoreError::NotFound(_) => anyhow!("no key named {name:?}"),
                    e => anyhow!("{e}"),
                })?;
            store
                .append_audit(Utc::now(), "cli", "key.revoked", json!({"name": name}))
                .await?;
            outln!("revoked {name}");
            Ok(())
        }
    }
}

async fn online(cmd: KeysCommand, api: &Api) -> anyhow::Result<()> {
    use reqwest::Method;
    match cmd {
        KeysCommand::Create {
            name,
            role,
            expires,
        } => {
            let v = api
                .call(
                    Method::POST,
                    "/api/keys",
                    Some(json!({"name": name, "role": role, "expires": expires})),
                )
                .await?;
            outln!("{}", v["api_key"].as_str().unwrap_or_default());
            eprintln!("key {name:?} ({role}) created; it is shown only this once");
        }
        KeysCommand::List => {
            let v = api.call(Method::GET, "/api/keys", None).await?;
            let rows = v["keys"].as_array().cloned().unwrap_or_default();
            out!("{}", table(&rows));
        }
        KeysCommand::Revoke { name } => {
            api.call(
                Method::DELETE,
                &format!("/api/keys/{}", crate::client::encode(&name)),
                None,
            )
            .await?;
            outln!("revoked {name}");
        }
    }
    Ok(())
}

fn table(rows: &[Value]) -> String {
    let s = |v: &Value| v.as_str().unwrap_or("-").to_string();
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|k| {
            vec![
                s(&k["name"]),
                s(&k["role"]),
                s(&k["created_at"]),
                s(&k["last_used_at"]),
                s(&k["expires_at"]),
                s(&k["revoked_at"]),
            ]
        })
        .collect();
    crate::client::table(
        &["NAME", "ROLE", "CREATED", "LAST USED", "EXPIRES", "REVOKED"],
        &body,
    )
}
