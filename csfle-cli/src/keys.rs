//! `csfle keys`: create, list, name, delete and rewrap data keys.

use crate::common::{
    Failure, VaultArgs, client, creating_client, decode_b64, open_vault_location, parse_key_id,
    read_secret, runtime_error, usage, writing_client,
};
use bson::{Bson, Document};
use clap::{Args, Subcommand};
use csfle::keyvault::{DEFAULT_KEY_VAULT_NAMESPACE, KeyVault};
use csfle::kms::ProviderName;
use csfle::{DataKeyOptions, RewrapOptions, ejson};
use futures_util::TryStreamExt;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

#[derive(Subcommand)]
pub(crate) enum KeysCommand {
    /// Create a data key, store its key document and print its id.
    Create(CreateArgs),
    /// Print every key document, one per line (canonical Extended JSON).
    /// Needs only the key vault: no master key is read or used.
    List(ListArgs),
    /// Add an alternate name to a key.
    AddAltName(AltNameArgs),
    /// Remove an alternate name from a key.
    RemoveAltName(AltNameArgs),
    /// Delete a key document. Data encrypted with it can no longer be decrypted.
    Delete(KeyIdArgs),
    /// Re-wrap the keys matching a filter with another master key; prints {"matched":n,"modified":m}.
    Rewrap(RewrapArgs),
}

/// The flags of `keys list`: the key vault, and no KMS. Listing reads key
/// documents and unwraps none, so an operator can see which keys exist
/// (ids, alternate names, providers) without holding a master key.
// Not `VaultArgs` with an optional `--kms-providers`: `preview` flattens
// `Option<VaultArgs>` and relies on clap requiring the providers file
// whenever any vault flag is given.
#[derive(Args)]
pub(crate) struct ListArgs {
    /// Key vault: a file of key documents (Extended JSON array or one per line),
    /// or a mongodb:// (mongodb+srv://) URI (or $CSFLE_KEY_VAULT).
    #[arg(
        long,
        value_name = "PATH|URI",
        env = "CSFLE_KEY_VAULT",
        hide_env_values = true
    )]
    pub(crate) key_vault: String,
    /// Key vault collection when --key-vault is a URI.
    #[arg(long, value_name = "DB.COLL", default_value = DEFAULT_KEY_VAULT_NAMESPACE)]
    pub(crate) key_vault_namespace: String,
    /// Not needed, and not read: accepted so that the flags of the other
    /// `keys` commands also work here.
    #[arg(long, value_name = "FILE")]
    pub(crate) kms_providers: Option<PathBuf>,
}

#[derive(Args)]
pub(crate) struct KeyIdArgs {
    #[command(flatten)]
    pub(crate) vault: VaultArgs,
    /// Data key id: base64 of its 16 UUID bytes.
    #[arg(long, value_name = "BASE64")]
    pub(crate) key_id: String,
}

#[derive(Args)]
pub(crate) struct AltNameArgs {
    #[command(flatten)]
    pub(crate) key: KeyIdArgs,
    /// The alternate name.
    #[arg(value_name = "NAME")]
    pub(crate) name: String,
}

#[derive(Args)]
pub(crate) struct RewrapArgs {
    #[command(flatten)]
    pub(crate) vault: VaultArgs,
    /// Which keys (a MongoDB query as Extended JSON); all keys by default.
    #[arg(long, value_name = "EJSON")]
    pub(crate) filter: Option<String>,
    /// Provider to wrap with from now on (e.g. local:new, kmip).
    #[arg(long, value_name = "NAME")]
    pub(crate) kms_provider: String,
    /// The provider's masterKey document (JSON, the drivers' shape); none for local.
    /// For kmip: {"keyId": "…"} to wrap under an existing object, {} to register
    /// a new SecretData per key, {"delegated": true} to have the server encrypt.
    #[arg(long, value_name = "JSON")]
    pub(crate) master_key: Option<String>,
}

#[derive(Args)]
pub(crate) struct CreateArgs {
    #[command(flatten)]
    pub(crate) vault: VaultArgs,
    /// Provider that wraps the key (required when the providers file names more than one).
    #[arg(long, value_name = "NAME")]
    pub(crate) kms_provider: Option<String>,
    /// Alternate name for the key (repeatable; must be unique in the vault).
    #[arg(long = "key-alt-name", value_name = "N")]
    pub(crate) key_alt_names: Vec<String>,
    /// Read the key material (96 bytes, base64) from this file, or from
    /// standard input with `-`, instead of random bytes. The key itself is
    /// refused here: on a command line, other users of the machine see it
    /// (ps, shell history). The same as --key-material-file.
    #[arg(long, value_name = "PATH|-", conflicts_with = "key_material_file")]
    pub(crate) key_material: Option<PathBuf>,
    /// Read the key material (96 bytes, base64) from this file, or from
    /// standard input with `-`.
    #[arg(long, value_name = "PATH|-")]
    pub(crate) key_material_file: Option<PathBuf>,
    /// The provider's masterKey document (JSON, the drivers' shape); none for local.
    /// For kmip, optional: {"keyId": "…", "endpoint": "host[:port]", "delegated": true};
    /// without keyId a new SecretData (or, delegated, AES key) is made on the server
    /// and its id stored in the key document.
    #[arg(long, value_name = "JSON")]
    pub(crate) master_key: Option<String>,
}

impl KeysCommand {
    pub(crate) async fn run(self) -> Result<(), Failure> {
        match self {
            KeysCommand::Create(args) => keys_create(args).await,
            KeysCommand::List(args) => keys_list(args).await,
            KeysCommand::AddAltName(args) => keys_alt_name(args, true).await,
            KeysCommand::RemoveAltName(args) => keys_alt_name(args, false).await,
            KeysCommand::Delete(args) => keys_delete(args).await,
            KeysCommand::Rewrap(args) => keys_rewrap(args).await,
        }
    }
}

async fn keys_list(args: ListArgs) -> Result<(), Failure> {
    // `--kms-providers`, if given, is deliberately left unread: nothing
    // here unwraps a key.
    let _ = &args.kms_providers;
    let vault: std::sync::Arc<dyn KeyVault> =
        open_vault_location(&args.key_vault, &args.key_vault_namespace).await?;
    let mut keys = vault
        .find_matching(Document::new())
        .await
        .map_err(runtime_error)?;
    let mut out = BufWriter::new(std::io::stdout().lock());
    while let Some(k) = keys.try_next().await.map_err(runtime_error)? {
        writeln!(out, "{}", ejson::to_canonical_line(&k.to_document())).map_err(runtime_error)?;
    }
    out.flush().map_err(runtime_error)
}

async fn keys_alt_name(args: AltNameArgs, add: bool) -> Result<(), Failure> {
    let id = parse_key_id(&args.key.key_id)?;
    let ce = writing_client(&args.key.vault).await?;
    let before = if add {
        ce.add_key_alt_name(id, &args.name).await
    } else {
        ce.remove_key_alt_name(id, &args.name).await
    };
    match before.map_err(runtime_error)? {
        Some(_) => Ok(()),
        None => Err(runtime_error(format!("no data key with id {id}"))),
    }
}

async fn keys_delete(args: KeyIdArgs) -> Result<(), Failure> {
    let id = parse_key_id(&args.key_id)?;
    let ce = client(&args.vault).await?;
    match ce.delete_key(id).await.map_err(runtime_error)? {
        0 => Err(runtime_error(format!("no data key with id {id}"))),
        n => {
            println!("{{\"deleted\":{n}}}");
            Ok(())
        }
    }
}

async fn keys_rewrap(args: RewrapArgs) -> Result<(), Failure> {
    let filter = match &args.filter {
        Some(f) => ejson::parse_document(f).map_err(|e| usage(format!("--filter: {e}")))?,
        None => Document::new(),
    };
    let master_key = match &args.master_key {
        Some(m) => Some(ejson::parse_document(m).map_err(|e| usage(format!("--master-key: {e}")))?),
        None => None,
    };
    let provider = ProviderName::parse(&args.kms_provider).map_err(usage)?;
    let ce = client(&args.vault).await?;
    let options = match master_key {
        Some(m) => RewrapOptions::new(provider).with_master_key(m),
        None => RewrapOptions::new(provider),
    };
    let r = ce
        .rewrap_many_data_key(filter, Some(options))
        .await
        .map_err(runtime_error)?;
    println!("{{\"matched\":{},\"modified\":{}}}", r.matched, r.modified);
    Ok(())
}

async fn keys_create(args: CreateArgs) -> Result<(), Failure> {
    let ce = creating_client(&args.vault).await?;
    let providers = ce.kms_providers();
    let provider = match &args.kms_provider {
        Some(name) => ProviderName::parse(name).map_err(usage)?,
        None => {
            let mut names = providers.names();
            match (names.next(), names.next()) {
                (Some(only), None) => only.clone(),
                (None, _) => return Err(usage("--kms-providers names no provider")),
                (Some(_), Some(_)) => {
                    return Err(usage(
                        "--kms-provider is required when the providers file names more than one provider",
                    ));
                }
            }
        }
    };
    if !providers.contains(&provider) {
        return Err(usage(format!(
            "KMS provider '{provider}' is not configured in --kms-providers"
        )));
    }
    let master_key = match &args.master_key {
        Some(m) => Some(ejson::parse_document(m).map_err(|e| usage(format!("--master-key: {e}")))?),
        None => None,
    };
    let source = match (&args.key_material, &args.key_material_file) {
        (Some(p), _) => Some(("--key-material", p)),
        (None, Some(p)) => Some(("--key-material-file", p)),
        (None, None) => None,
    };
    let key_material = match source {
        Some((flag, path)) => {
            let text = read_secret(flag, path)?;
            let m = zeroize::Zeroizing::new(decode_b64(flag, &text)?);
            if m.len() != csfle::DATA_KEY_LEN {
                return Err(usage(format!("{flag} must be 96 bytes, got {}", m.len())));
            }
            Some(m)
        }
        None => None,
    };
    let mut options = DataKeyOptions::default().with_key_alt_names(args.key_alt_names.clone());
    if let Some(m) = master_key {
        options = options.with_master_key(m);
    }
    if let Some(m) = &key_material {
        options = options.with_key_material(m);
    }
    let id = ce
        .create_data_key(&provider, options)
        .await
        .map_err(runtime_error)?;
    println!("{}", ejson::to_canonical(&Bson::Binary(id.to_binary())));
    Ok(())
}
