//! `csfle`: create data keys, encrypt and decrypt values from the command line.
//!
//! Input and output are lines of Extended JSON. Exit status: 0 on success,
//! 1 when a line or an operation fails (`line N: <reason>` on stderr; lines
//! before it stay written), 2 on a usage or configuration error.

use base64::Engine;
use bson::{Bson, Document};
use clap::{Args, Parser, Subcommand, ValueEnum};
use csfle::keyvault::{
    DEFAULT_KEY_VAULT_NAMESPACE, FileKeyVault, KeyDocument, KeyMaterialUpdate, KeyVault,
    MongoKeyVault,
};
use csfle::kms::{KmsProviders, ProviderName};
use csfle::{
    Algorithm, AutoEncrypter, AutoEncryptionOptions, ClientEncryption, DataKeyOptions, KeyId,
    KeyRef, RewrapOptions, ejson,
};
use futures_util::TryStreamExt;
use futures_util::stream::BoxStream;
use std::io::{BufRead, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "csfle",
    version,
    about = "MongoDB client-side field level encryption (FLE1)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Manage data keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Encrypt `{"v": <value>}` lines from stdin into `{"v": <subtype-6 binary>}` lines.
    Encrypt(EncryptArgs),
    /// Decrypt every subtype-6 value in each Extended JSON document read from stdin.
    Decrypt(VaultArgs),
    /// Show the command automatic encryption would send: one command per line
    /// in, the rewritten command (compact canonical Extended JSON) out.
    Preview(PreviewArgs),
    /// Encrypt, re-encrypt or decrypt a whole collection to match a schema:
    /// resumable, parallel, verified. Prints one JSON summary line.
    Migrate(MigrateArgs),
}

#[derive(Args)]
struct MigrateArgs {
    /// The MongoDB server holding the collection (or $CSFLE_URI, so the
    /// URI and its password stay off the command line).
    #[arg(long, value_name = "URI", env = "CSFLE_URI", hide_env_values = true)]
    uri: String,
    /// The collection to migrate.
    #[arg(long, value_name = "DB.COLL")]
    source: String,
    /// Write migrated documents here instead of in place (upserted by _id).
    #[arg(long, value_name = "DB.COLL")]
    target: Option<String>,
    /// JSON file {"db.coll": <$jsonSchema>}: the plan, the entry for the
    /// target (or the source, in place).
    #[arg(long, value_name = "FILE")]
    schema_map: PathBuf,
    #[command(flatten)]
    vault: VaultArgs,
    /// Where checkpoints live (default: <source db>.csfle_migrations).
    #[arg(long, value_name = "DB.COLL")]
    checkpoint_namespace: Option<String>,
    /// Parallel workers over _id ranges.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=256))]
    workers: u32,
    /// Documents per read batch and bulk write.
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    batch_size: u32,
    /// Report what would change; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Afterwards, re-read every document and check it against the plan.
    #[arg(long)]
    verify: bool,
    /// Also decrypt encrypted fields the plan does not name.
    #[arg(long)]
    decrypt_unlisted: bool,
}

#[derive(Args)]
struct PreviewArgs {
    #[command(flatten)]
    vault: VaultArgs,
    /// JSON file {"db.coll": <$jsonSchema>, …}. Without --uri it is the
    /// only source of schemas: namespaces it does not list have no
    /// encrypted fields.
    #[arg(long, value_name = "FILE", required_unless_present = "uri")]
    schema_map: Option<PathBuf>,
    /// Also read the schemas of namespaces the map does not list from this
    /// server's collection validators, as automatic encryption does by
    /// default (or $CSFLE_URI). A local map is safer: whoever controls the
    /// server controls its validators.
    #[arg(long, value_name = "URI", env = "CSFLE_URI", hide_env_values = true)]
    uri: Option<String>,
    /// Database the commands run on.
    #[arg(long, value_name = "NAME")]
    db: String,
    /// Refuse commands on namespaces the schema map does not list.
    #[arg(long)]
    require_schema: bool,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a data key, store its key document and print its id.
    Create(CreateArgs),
    /// Print every key document, one per line (canonical Extended JSON).
    List(VaultArgs),
    /// Add an alternate name to a key.
    AddAltName(AltNameArgs),
    /// Remove an alternate name from a key.
    RemoveAltName(AltNameArgs),
    /// Delete a key document. Data encrypted with it can no longer be decrypted.
    Delete(KeyIdArgs),
    /// Re-wrap the keys matching a filter with another master key; prints {"matched":n,"modified":m}.
    Rewrap(RewrapArgs),
}

#[derive(Args)]
struct VaultArgs {
    /// JSON file in the drivers' `kmsProviders` shape, e.g. {"local": {"key": "<base64 of 96 bytes>"}}.
    #[arg(long, value_name = "FILE")]
    kms_providers: PathBuf,
    /// JSON file of per-provider TLS options, the drivers' `tlsOptions`:
    /// {"azure": {"tlsCAFile": "ca.pem", "tlsCertificateKeyFile": "client.pem"}}.
    #[arg(long, value_name = "FILE")]
    kms_tls_options: Option<PathBuf>,
    /// Key vault: a file of key documents (Extended JSON array or one per line),
    /// or a mongodb:// (mongodb+srv://) URI (or $CSFLE_KEY_VAULT).
    #[arg(
        long,
        value_name = "PATH|URI",
        env = "CSFLE_KEY_VAULT",
        hide_env_values = true
    )]
    key_vault: String,
    /// Key vault collection when --key-vault is a URI.
    #[arg(long, value_name = "DB.COLL", default_value = DEFAULT_KEY_VAULT_NAMESPACE)]
    key_vault_namespace: String,
    /// A KMS host (HOST[:PORT], no port: 443) that key documents may name
    /// besides the provider's public hosts; repeatable, or a comma-separated
    /// $CSFLE_KMS_ALLOWED_HOSTS. Key documents live in the database, so an
    /// endpoint they name is otherwise refused before any connection.
    #[arg(
        long = "kms-allow-host",
        value_name = "HOST[:PORT]",
        env = "CSFLE_KMS_ALLOWED_HOSTS",
        value_delimiter = ','
    )]
    kms_allow_hosts: Vec<String>,
}

#[derive(Args)]
struct KeyIdArgs {
    #[command(flatten)]
    vault: VaultArgs,
    /// Data key id: base64 of its 16 UUID bytes.
    #[arg(long, value_name = "BASE64")]
    key_id: String,
}

#[derive(Args)]
struct AltNameArgs {
    #[command(flatten)]
    key: KeyIdArgs,
    /// The alternate name.
    #[arg(value_name = "NAME")]
    name: String,
}

#[derive(Args)]
struct RewrapArgs {
    #[command(flatten)]
    vault: VaultArgs,
    /// Which keys (a MongoDB query as Extended JSON); all keys by default.
    #[arg(long, value_name = "EJSON")]
    filter: Option<String>,
    /// Provider to wrap with from now on (e.g. local:new).
    #[arg(long, value_name = "NAME")]
    kms_provider: String,
    /// The provider's masterKey document (JSON, the drivers' shape); none for local.
    #[arg(long, value_name = "JSON")]
    master_key: Option<String>,
}

#[derive(Args)]
struct CreateArgs {
    #[command(flatten)]
    vault: VaultArgs,
    /// Provider that wraps the key (required when the providers file names more than one).
    #[arg(long, value_name = "NAME")]
    kms_provider: Option<String>,
    /// Alternate name for the key (repeatable; must be unique in the vault).
    #[arg(long = "key-alt-name", value_name = "N")]
    key_alt_names: Vec<String>,
    /// Use these 96 bytes (base64) as the key material instead of random
    /// bytes. Visible to other users of the machine (ps, shell history):
    /// prefer --key-material-file.
    #[arg(long, value_name = "BASE64", conflicts_with = "key_material_file")]
    key_material: Option<String>,
    /// Read the key material (96 bytes, base64) from this file, or from
    /// standard input with `-`.
    #[arg(long, value_name = "PATH|-")]
    key_material_file: Option<PathBuf>,
    /// The provider's masterKey document (JSON, the drivers' shape); none for local.
    #[arg(long, value_name = "JSON")]
    master_key: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum AlgorithmArg {
    Deterministic,
    Random,
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("key").required(true).args(["key_id", "key_alt_name"])))]
struct EncryptArgs {
    #[command(flatten)]
    vault: VaultArgs,
    /// Data key id: base64 of its 16 UUID bytes.
    #[arg(long, value_name = "BASE64")]
    key_id: Option<String>,
    /// Data key alternate name.
    #[arg(long, value_name = "N")]
    key_alt_name: Option<String>,
    /// Encryption algorithm.
    #[arg(long, value_enum)]
    algorithm: AlgorithmArg,
}

/// A failure and the exit status it maps to.
enum Failure {
    /// Exit 2: bad flags or configuration.
    Usage(String),
    /// Exit 1: an operation failed.
    Runtime(String),
}

fn usage(e: impl std::fmt::Display) -> Failure {
    Failure::Usage(e.to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A migration runs workers in parallel; everything else is sequential.
    let runtime = match &cli.command {
        Command::Migrate(_) => tokio::runtime::Builder::new_multi_thread(),
        _ => tokio::runtime::Builder::new_current_thread(),
    }
    .enable_all()
    .build();
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Keys(KeysCommand::Create(args)) => keys_create(args).await,
            Command::Keys(KeysCommand::List(args)) => keys_list(args).await,
            Command::Keys(KeysCommand::AddAltName(args)) => keys_alt_name(args, true).await,
            Command::Keys(KeysCommand::RemoveAltName(args)) => keys_alt_name(args, false).await,
            Command::Keys(KeysCommand::Delete(args)) => keys_delete(args).await,
            Command::Keys(KeysCommand::Rewrap(args)) => keys_rewrap(args).await,
            Command::Encrypt(args) => encrypt(args).await,
            Command::Decrypt(args) => decrypt(args).await,
            Command::Preview(args) => preview(args).await,
            Command::Migrate(args) => migrate(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(m)) => {
            eprintln!("error: {m}");
            ExitCode::from(2)
        }
        Err(Failure::Runtime(m)) => {
            eprintln!("{m}");
            ExitCode::from(1)
        }
    }
}

/// A JSON file as a document. The text is zeroized after parsing (it may
/// hold secrets); errors name the file and the kind of problem, never its
/// content.
fn read_json(flag: &str, path: &PathBuf) -> Result<Document, Failure> {
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| usage(format!("{flag} {}: {}", path.display(), e.kind())))?,
    );
    ejson::parse_document(&text).map_err(|e| usage(format!("{flag} {}: {e}", path.display())))
}

/// The providers of `--kms-providers` (the drivers' `kmsProviders`: local,
/// and aws, azure, gcp in builds with those features), with the TLS options
/// of `--kms-tls-options` and the hosts of `--kms-allow-host`. The parsed
/// providers document is wiped once the providers are built.
fn load_providers(vault: &VaultArgs) -> Result<KmsProviders, Failure> {
    let mut doc = read_json("--kms-providers", &vault.kms_providers)?;
    let mut options = csfle::kms::ProviderOptions {
        tls: match &vault.kms_tls_options {
            Some(p) => read_json("--kms-tls-options", p)?,
            None => Document::new(),
        },
        ..Default::default()
    };
    for host in vault
        .kms_allow_hosts
        .iter()
        .filter(|h| !h.trim().is_empty())
    {
        options = options
            .allow_host(host.trim())
            .map_err(|e| usage(format!("--kms-allow-host: {e}")))?;
    }
    let providers = KmsProviders::from_document_with(&doc, &options).map_err(|e| {
        usage(format!(
            "--kms-providers {}: {e}",
            vault.kms_providers.display()
        ))
    });
    csfle::kms::wipe_document(&mut doc);
    providers
}

/// The key vault a `--key-vault` argument names: a file or a MongoDB collection.
enum AnyKeyVault {
    File(FileKeyVault),
    Mongo(MongoKeyVault),
}

macro_rules! delegate {
    ($self:ident, $v:ident => $e:expr) => {
        match $self {
            AnyKeyVault::File($v) => $e,
            AnyKeyVault::Mongo($v) => $e,
        }
    };
}

impl KeyVault for AnyKeyVault {
    async fn find_keys(
        &self,
        ids: &[KeyId],
        names: &[String],
    ) -> Result<Vec<KeyDocument>, csfle::keyvault::Error> {
        delegate!(self, v => v.find_keys(ids, names).await)
    }
    async fn find_matching(
        &self,
        filter: Document,
    ) -> Result<
        BoxStream<'static, Result<KeyDocument, csfle::keyvault::Error>>,
        csfle::keyvault::Error,
    > {
        delegate!(self, v => v.find_matching(filter).await)
    }
    async fn insert_key(&self, key: &KeyDocument) -> Result<(), csfle::keyvault::Error> {
        delegate!(self, v => v.insert_key(key).await)
    }
    async fn delete_key(&self, id: KeyId) -> Result<u64, csfle::keyvault::Error> {
        delegate!(self, v => v.delete_key(id).await)
    }
    async fn add_key_alt_name(
        &self,
        id: KeyId,
        name: &str,
    ) -> Result<Option<KeyDocument>, csfle::keyvault::Error> {
        delegate!(self, v => v.add_key_alt_name(id, name).await)
    }
    async fn remove_key_alt_name(
        &self,
        id: KeyId,
        name: &str,
    ) -> Result<Option<KeyDocument>, csfle::keyvault::Error> {
        delegate!(self, v => v.remove_key_alt_name(id, name).await)
    }
    async fn update_key_materials(
        &self,
        u: &[KeyMaterialUpdate],
    ) -> Result<u64, csfle::keyvault::Error> {
        delegate!(self, v => v.update_key_materials(u).await)
    }
    async fn ensure_indexes(&self) -> Result<(), csfle::keyvault::Error> {
        delegate!(self, v => v.ensure_indexes().await)
    }
}

async fn open_vault(vault: &VaultArgs) -> Result<AnyKeyVault, Failure> {
    let v = &vault.key_vault;
    if v.starts_with("mongodb://") || v.starts_with("mongodb+srv://") {
        let client = mongodb::Client::with_uri_str(v)
            .await
            .map_err(|e| usage(format!("--key-vault: {e}")))?;
        let store = MongoKeyVault::new(&client, &vault.key_vault_namespace)
            .map_err(|e| usage(format!("--key-vault-namespace: {e}")))?;
        Ok(AnyKeyVault::Mongo(store))
    } else {
        Ok(AnyKeyVault::File(FileKeyVault::new(v)))
    }
}

async fn client(vault: &VaultArgs) -> Result<ClientEncryption<AnyKeyVault>, Failure> {
    let kms = load_providers(vault)?;
    Ok(ClientEncryption::new(open_vault(vault).await?, kms))
}

/// A client for a command that writes alternate names: the unique partial
/// index on `keyAltNames` is what makes them unique in a MongoDB key vault,
/// so make sure it exists (creating an existing index is a no-op).
async fn writing_client(vault: &VaultArgs) -> Result<ClientEncryption<AnyKeyVault>, Failure> {
    let ce = client(vault).await?;
    ce.key_vault()
        .ensure_indexes()
        .await
        .map_err(runtime_error)?;
    Ok(ce)
}

fn runtime_error(e: impl std::fmt::Display) -> Failure {
    Failure::Runtime(format!("error: {e}"))
}

fn parse_key_id(s: &str) -> Result<KeyId, Failure> {
    let bytes: [u8; 16] = decode_b64("--key-id", s)?
        .try_into()
        .map_err(|_| usage("--key-id must be 16 bytes (a UUID)"))?;
    Ok(KeyId::from_bytes(bytes))
}

async fn keys_list(args: VaultArgs) -> Result<(), Failure> {
    let ce = client(&args).await?;
    let mut keys = ce.get_keys().await.map_err(runtime_error)?;
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
    let r = ce
        .rewrap_many_data_key(
            filter,
            Some(RewrapOptions {
                provider,
                master_key,
            }),
        )
        .await
        .map_err(runtime_error)?;
    println!("{{\"matched\":{},\"modified\":{}}}", r.matched, r.modified);
    Ok(())
}

/// A secret from a file, or from standard input for `-`, in a buffer that
/// is zeroized when dropped.
fn read_secret(flag: &str, path: &std::path::Path) -> Result<zeroize::Zeroizing<String>, Failure> {
    use std::io::Read;
    let mut text = zeroize::Zeroizing::new(String::new());
    let read = if path.as_os_str() == "-" {
        std::io::stdin().lock().read_to_string(&mut text)
    } else {
        std::fs::File::open(path).and_then(|mut f| f.read_to_string(&mut text))
    };
    read.map_err(|e| usage(format!("{flag} {}: {}", path.display(), e.kind())))?;
    Ok(text)
}

fn decode_b64(flag: &str, s: &str) -> Result<Vec<u8>, Failure> {
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map_err(|_| usage(format!("{flag}: not valid base64")))
}

async fn keys_create(args: CreateArgs) -> Result<(), Failure> {
    let ce = writing_client(&args.vault).await?;
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
    let from_file = match &args.key_material_file {
        Some(p) => Some(read_secret("--key-material-file", p)?),
        None => None,
    };
    let key_material = match from_file
        .as_deref()
        .map(String::as_str)
        .or(args.key_material.as_deref())
    {
        Some(s) => {
            let m = zeroize::Zeroizing::new(decode_b64("--key-material", s)?);
            if m.len() != csfle::crypto::DATA_KEY_LEN {
                return Err(usage(format!(
                    "--key-material must be 96 bytes, got {}",
                    m.len()
                )));
            }
            Some(m)
        }
        None => None,
    };
    let id = ce
        .create_data_key(
            &provider,
            DataKeyOptions {
                master_key,
                key_alt_names: args.key_alt_names.clone(),
                key_material,
            },
        )
        .await
        .map_err(runtime_error)?;
    println!("{}", ejson::to_canonical(&Bson::Binary(id.to_binary())));
    Ok(())
}

/// Runs `f` on every non-blank stdin line, writing its output line. Stops at
/// the first failure, after flushing what was written.
async fn for_each_line<F, Fut>(mut f: F) -> Result<(), Failure>
where
    F: FnMut(Document) -> Fut,
    Fut: std::future::Future<Output = Result<Document, String>>,
{
    let stdin = std::io::stdin().lock();
    let mut out = BufWriter::new(std::io::stdout().lock());
    let write_failed = |e: std::io::Error| Failure::Runtime(format!("error: writing output: {e}"));
    for (i, line) in stdin.lines().enumerate() {
        let n = i + 1;
        let line = match line {
            Ok(l) => l,
            Err(e) => {
                out.flush().map_err(write_failed)?;
                return Err(Failure::Runtime(format!("line {n}: {e}")));
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        let result = match ejson::parse_document(&line) {
            Ok(doc) => f(doc).await,
            Err(e) => Err(e.to_string()),
        };
        match result {
            Ok(doc) => writeln!(out, "{}", ejson::to_canonical_line(&doc)).map_err(write_failed)?,
            Err(reason) => {
                out.flush().map_err(write_failed)?;
                return Err(Failure::Runtime(format!("line {n}: {reason}")));
            }
        }
    }
    out.flush().map_err(write_failed)
}

async fn encrypt(args: EncryptArgs) -> Result<(), Failure> {
    let key = match (&args.key_id, &args.key_alt_name) {
        (Some(id), _) => KeyRef::Id(parse_key_id(id)?),
        (None, Some(name)) => KeyRef::AltName(name.clone()),
        (None, None) => return Err(usage("one of --key-id or --key-alt-name is required")),
    };
    let algorithm = match args.algorithm {
        AlgorithmArg::Deterministic => Algorithm::Deterministic,
        AlgorithmArg::Random => Algorithm::Random,
    };
    let ce = client(&args.vault).await?;
    let (ce, key) = (&ce, &key);
    for_each_line(|mut doc| async move {
        let value = doc.get("v").ok_or("missing field 'v'")?;
        let ct = ce
            .encrypt(value, key, algorithm)
            .await
            .map_err(|e| e.to_string())?;
        doc.insert("v", ct);
        Ok(doc)
    })
    .await
}

async fn decrypt(args: VaultArgs) -> Result<(), Failure> {
    let ce = client(&args).await?;
    let ce = &ce;
    for_each_line(|doc| async move { ce.decrypt_document(&doc).await.map_err(|e| e.to_string()) })
        .await
}

async fn preview(args: PreviewArgs) -> Result<(), Failure> {
    let map = match &args.schema_map {
        Some(path) => read_json("--schema-map", path)?,
        None => Document::new(),
    };
    let options = AutoEncryptionOptions {
        require_schema: args.require_schema,
        schema_map_only: args.uri.is_none(),
        ..Default::default()
    };
    let mut auto = AutoEncrypter::new(client(&args.vault).await?, &map, options).map_err(usage)?;
    if let Some(uri) = &args.uri {
        let server = mongodb::Client::with_uri_str(uri)
            .await
            .map_err(|e| usage(format!("--uri: {e}")))?;
        auto =
            auto.with_remote_schemas(std::sync::Arc::new(csfle::MongoSchemaFetcher::new(server)));
    }
    let (auto, db) = (&auto, args.db.as_str());
    for_each_line(|cmd| async move {
        auto.encrypt_command(db, &cmd)
            .await
            .map_err(|e| e.to_string())
    })
    .await
}

/// An `indicatif` bar on stderr (hidden when stderr is not a terminal).
struct ProgressBar(indicatif::ProgressBar);

impl csfle::migrate::Progress for ProgressBar {
    fn start(&self, phase: &str, total: u64) {
        self.0.reset();
        self.0.set_length(total);
        self.0.set_position(0);
        self.0.set_message(phase.to_owned());
    }
    fn advance(&self, n: u64) {
        self.0.inc(n);
    }
    fn finish(&self) {
        self.0.finish();
    }
}

async fn migrate(args: MigrateArgs) -> Result<(), Failure> {
    use csfle::migrate::{Migration, MigrationOptions, Namespace, Plan};
    let ns = |flag: &str, v: &str| Namespace::parse(v).map_err(|e| usage(format!("{flag}: {e}")));
    let source = ns("--source", &args.source)?;
    let target = args
        .target
        .as_deref()
        .map(|t| ns("--target", t))
        .transpose()?;
    let checkpoint_namespace = args
        .checkpoint_namespace
        .as_deref()
        .map(|c| ns("--checkpoint-namespace", c))
        .transpose()?;
    let text = std::fs::read_to_string(&args.schema_map)
        .map_err(|e| usage(format!("--schema-map {}: {e}", args.schema_map.display())))?;
    let map = ejson::parse_document(&text).map_err(|e| usage(format!("--schema-map: {e}")))?;
    let plan_ns = target.clone().unwrap_or_else(|| source.clone()).to_string();
    let schema = match map.get(&plan_ns).or_else(|| map.get(source.to_string())) {
        Some(Bson::Document(d)) => d.clone(),
        Some(_) => {
            return Err(usage(format!(
                "--schema-map: the entry for {plan_ns} must be a document"
            )));
        }
        None => return Err(usage(format!("--schema-map has no entry for {plan_ns}"))),
    };
    let plan = Plan::from_schema(&schema, args.decrypt_unlisted).map_err(usage)?;
    let encryption = client(&args.vault).await?;
    let db_client = mongodb::Client::with_uri_str(&args.uri)
        .await
        .map_err(|e| usage(format!("--uri: {e}")))?;
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg:>8} [{elapsed_precise}] {wide_bar} {pos}/{len} {per_sec} ETA {eta}",
        )
        .map_err(runtime_error)?,
    );
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    let options = MigrationOptions {
        target,
        checkpoint_namespace,
        workers: args.workers as usize,
        batch_size: args.batch_size as usize,
        dry_run: args.dry_run,
        verify: args.verify,
        progress: Some(std::sync::Arc::new(ProgressBar(bar))),
        ..Default::default()
    };
    let summary = Migration::new(db_client, source, plan, encryption, options)
        .run()
        .await
        .map_err(runtime_error)?;
    println!("{}", summary.to_json());
    let mismatched = summary.verify.as_ref().map_or(0, |v| v.mismatched.len());
    if summary.failed_count > 0 || mismatched > 0 {
        return Err(Failure::Runtime(format!(
            "error: {} documents not migrated, {} failed verification (ids in the summary)",
            summary.failed_count, mismatched
        )));
    }
    Ok(())
}
