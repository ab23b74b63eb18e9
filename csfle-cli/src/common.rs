//! What every command shares: the key vault and KMS flags, reading files
//! and secrets, the exit statuses, the line loop.

use base64::Engine;
use bson::Document;
use clap::Args;
use csfle::keyvault::{
    DEFAULT_KEY_VAULT_NAMESPACE, FileKeyVault, KeyCacheOptions, KeyVault, MongoKeyVault,
};
use csfle::kms::{KmsProviders, ProviderName, ProviderOptions};
use csfle::{ClientEncryption, KeyId, ejson};
use std::io::{BufRead, BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Args)]
pub(crate) struct VaultArgs {
    /// JSON file in the drivers' `kmsProviders` shape, e.g. {"local": {"key": "<base64 of 96 bytes>"}}
    /// or {"kmip": {"endpoint": "kmip.example.com:5696"}}.
    #[arg(long, value_name = "FILE")]
    pub(crate) kms_providers: PathBuf,
    /// JSON file of per-provider TLS options, the drivers' `tlsOptions`:
    /// {"kmip": {"tlsCAFile": "ca.pem", "tlsCertificateKeyFile": "client.pem",
    /// "tlsCertificateKeyFilePassword": "…"}} (the password only for an
    /// encrypted PKCS#8 key).
    #[arg(long, value_name = "FILE")]
    pub(crate) kms_tls_options: Option<PathBuf>,
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
    /// A KMS host that key documents may name besides the provider's
    /// public hosts (and, for KMIP, the configured endpoint): KIND:HOST[:PORT]
    /// for providers of one kind (aws, azure, gcp or kmip; no port: 443, for
    /// kmip 5696), e.g. kmip:kmip.example.com; or HOST[:PORT] (no port: 443)
    /// for aws, azure and gcp, never kmip. Repeatable, or a comma-separated
    /// $CSFLE_KMS_ALLOWED_HOSTS. Key documents live in the database, so an
    /// endpoint they name is otherwise refused before any connection.
    #[arg(
        long = "kms-allow-host",
        value_name = "[KIND:]HOST[:PORT]",
        env = "CSFLE_KMS_ALLOWED_HOSTS",
        value_delimiter = ','
    )]
    pub(crate) kms_allow_hosts: Vec<String>,
    /// Allow KMIP delegated mode (masterKey {"delegated": true}): creating
    /// and unwrapping such keys. Not recommended, use KMIP's default mode:
    /// a delegated keyMaterial is AES-CBC without authentication, so
    /// whoever can write the key vault can choose the data key the KMIP
    /// server decrypts it into.
    #[arg(long = "kms-allow-kmip-delegated")]
    pub(crate) kms_allow_kmip_delegated: bool,
    /// A master key that key documents may name, as a masterKey document
    /// with its provider, e.g. {"provider":"aws","region":"us-east-1","key":"arn:aws:kms:…"}
    /// or {"provider":"local"}; repeatable. Once one is given, a key document
    /// naming any other master key is refused before any KMS call, so a
    /// hostile key vault cannot substitute a data key wrapped under a KMS key
    /// it controls.
    #[arg(long = "kms-allow-master-key", value_name = "JSON")]
    pub(crate) kms_allow_master_keys: Vec<String>,
}

/// A failure and the exit status it maps to.
pub(crate) enum Failure {
    /// Exit 2: bad flags or configuration.
    Usage(String),
    /// Exit 1: an operation failed.
    Runtime(String),
}

pub(crate) fn usage(e: impl std::fmt::Display) -> Failure {
    Failure::Usage(e.to_string())
}

/// A JSON file as a document. The text is zeroized after parsing (it may
/// hold secrets); errors name the file and the kind of problem, never its
/// content.
pub(crate) fn read_json(flag: &str, path: &PathBuf) -> Result<Document, Failure> {
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| usage(format!("{flag} {}: {}", path.display(), e.kind())))?,
    );
    ejson::parse_document(&text).map_err(|e| usage(format!("{flag} {}: {e}", path.display())))
}

/// A `--schema-map` file, read and checked by the library's one reader of
/// schema maps: a key that is not `db.coll`, an entry still wrapped in
/// `{"$jsonSchema": …}` or any schema it refuses fails before anything
/// connects, naming the entry.
pub(crate) fn read_schema_map(flag: &str, path: &PathBuf) -> Result<Document, Failure> {
    let map = read_json(flag, path)?;
    csfle::schema::parse_schema_map(&map)
        .map_err(|e| usage(format!("{flag} {}: {e}", path.display())))?;
    Ok(map)
}

/// An `--encrypted-fields-map` file (`{"db.coll": <encryptedFields>}`),
/// read by the library's one reader of `encryptedFieldsMap`s (strictly: a
/// key it does not know is refused, never ignored) and refused when a
/// field has a query type csfle does not implement, so that a bad entry
/// fails before anything connects, naming the namespace.
#[cfg(feature = "qe")]
pub(crate) fn read_encrypted_fields_map(flag: &str, path: &PathBuf) -> Result<Document, Failure> {
    use csfle::qe::encrypted_fields::{EncryptedFields, EncryptedFieldsMapError};
    let map = read_json(flag, path)?;
    let refused = |ns: &str, reason: &dyn std::fmt::Display| {
        usage(format!(
            "{flag} {}: encryptedFields for '{ns}': {reason}",
            path.display()
        ))
    };
    let entries = EncryptedFields::parse_map(&map).map_err(|e| match &e {
        EncryptedFieldsMapError::InvalidNamespace { namespace } => {
            refused(namespace, &"the key must be db.collection")
        }
        EncryptedFieldsMapError::NotADocument { namespace } => {
            refused(namespace, &"the entry must be an encryptedFields document")
        }
        EncryptedFieldsMapError::Entry { namespace, source } => refused(namespace, source),
        // A refusal of a later library: in its own words.
        _ => refused(e.namespace(), &e),
    })?;
    for (ns, fields) in &entries {
        fields.check_supported().map_err(|e| refused(ns, &e))?;
    }
    Ok(map)
}

/// Without feature `qe` nothing could encrypt for a Queryable Encryption
/// collection: the flag is refused.
#[cfg(not(feature = "qe"))]
pub(crate) fn read_encrypted_fields_map(flag: &str, path: &PathBuf) -> Result<Document, Failure> {
    let _ = path;
    Err(usage(format!(
        "{flag}: Queryable Encryption needs csfle-cli's feature `qe`, and this csfle was built without it"
    )))
}

/// The local schema sources of a command: `--schema-map` (FLE1
/// `$jsonSchema`s) and `--encrypted-fields-map` (Queryable Encryption's
/// `encryptedFields`), each read strictly, no namespace in both (a
/// collection uses one scheme; neither is preferred).
pub(crate) struct Maps {
    /// `--schema-map` (empty without it).
    pub(crate) schemas: Document,
    /// `--encrypted-fields-map` (empty without it).
    pub(crate) encrypted_fields: Document,
}

impl Maps {
    /// Reads the files given; a namespace listed in both is refused (exit
    /// 2), as the library refuses it when a client is built.
    pub(crate) fn read(
        schema_map: Option<&PathBuf>,
        encrypted_fields_map: Option<&PathBuf>,
    ) -> Result<Self, Failure> {
        let schemas = match schema_map {
            Some(p) => read_schema_map("--schema-map", p)?,
            None => Document::new(),
        };
        let encrypted_fields = match encrypted_fields_map {
            Some(p) => read_encrypted_fields_map("--encrypted-fields-map", p)?,
            None => Document::new(),
        };
        if let Some(ns) = encrypted_fields
            .keys()
            .find(|ns| schemas.contains_key(ns.as_str()))
        {
            return Err(usage(format!(
                "'{ns}' is in both --schema-map and --encrypted-fields-map: a collection uses one scheme, FLE1 or Queryable Encryption"
            )));
        }
        Ok(Maps {
            schemas,
            encrypted_fields,
        })
    }

    /// How the maps list `ns`: `Some(true)` as a Queryable Encryption
    /// collection, `Some(false)` as an FLE1 one, `None` not at all (the
    /// server's configuration then applies).
    pub(crate) fn lists_queryable(&self, ns: &str) -> Option<bool> {
        if self.encrypted_fields.contains_key(ns) {
            Some(true)
        } else if self.schemas.contains_key(ns) {
            Some(false)
        } else {
            None
        }
    }
}

/// The providers of `--kms-providers` (the drivers' `kmsProviders`: local,
/// and aws, azure, gcp, kmip in builds with those features), with the TLS
/// options of `--kms-tls-options`, the hosts of `--kms-allow-host`, the
/// master keys of `--kms-allow-master-key` and
/// `--kms-allow-kmip-delegated`. The two documents that may hold secrets
/// (the providers' keys and credentials, a client key's password) are read
/// last, so no error in the other flags leaves them unwiped, and wiped once
/// the providers are built.
pub(crate) fn load_providers(vault: &VaultArgs) -> Result<KmsProviders, Failure> {
    let mut options =
        ProviderOptions::default().allow_kmip_delegated(vault.kms_allow_kmip_delegated);
    for host in vault
        .kms_allow_hosts
        .iter()
        .filter(|h| !h.trim().is_empty())
    {
        options = allow_host(options, host.trim())?;
    }
    for json in &vault.kms_allow_master_keys {
        let master_key = ejson::parse_document(json)
            .map_err(|e| usage(format!("--kms-allow-master-key: {e}")))?;
        options = options
            .allow_master_key(&master_key)
            .map_err(|e| usage(format!("--kms-allow-master-key: {e}")))?;
    }
    if let Some(p) = &vault.kms_tls_options {
        options.tls = read_json("--kms-tls-options", p)?;
    }
    let mut doc = match read_json("--kms-providers", &vault.kms_providers) {
        Ok(doc) => doc,
        Err(e) => {
            csfle::kms::wipe_document(&mut options.tls);
            return Err(e);
        }
    };
    let providers = KmsProviders::from_document_with(&doc, &options).map_err(|e| {
        usage(format!(
            "--kms-providers {}: {e}",
            vault.kms_providers.display()
        ))
    });
    csfle::kms::wipe_document(&mut doc);
    csfle::kms::wipe_document(&mut options.tls);
    providers
}

/// One `--kms-allow-host` value: `KIND:HOST[:PORT]` allows the host for
/// providers of that kind only; a value that does not start with a
/// provider kind and a colon is `HOST[:PORT]`, allowed for aws, azure and
/// gcp (never kmip: a KMIP server receives the client certificate and
/// serves key-encryption keys, so it is named as such).
fn allow_host(options: ProviderOptions, value: &str) -> Result<ProviderOptions, Failure> {
    let failed = |e: csfle::kms::Error| usage(format!("--kms-allow-host: {e}"));
    if let Some((prefix, host)) = value.split_once(':')
        && let Ok(kind) = ProviderName::parse(prefix)
    {
        return options.allow_host_for(kind.kind(), host).map_err(failed);
    }
    options.allow_host(value).map_err(failed)
}

/// Every MongoDB client the command opened, for [`shut_down_clients`].
static CLIENTS: std::sync::Mutex<Vec<mongodb::Client>> = std::sync::Mutex::new(Vec::new());

/// A MongoDB client on `uri`, shut down by `main` when the command ends.
pub(crate) async fn connect(uri: &str) -> mongodb::error::Result<mongodb::Client> {
    connect_with_options(mongodb::options::ClientOptions::parse(uri).await?)
}

/// [`connect`] with options already parsed (and adjusted).
pub(crate) fn connect_with_options(
    options: mongodb::options::ClientOptions,
) -> mongodb::error::Result<mongodb::Client> {
    let client = mongodb::Client::with_options(options)?;
    CLIENTS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(client.clone());
    Ok(client)
}

/// Shuts down every client [`connect`] opened, before the runtime is
/// dropped: left to the runtime's drop, the driver's background tasks
/// (monitors, pools) are cancelled mid-flight and the driver panics
/// unwrapping a cancelled task (a panic message after a fatal server
/// error). Immediate: the command is over and no handle is waited for.
/// All at once and for 2 s at most: a shutdown ends the server sessions
/// first, which waits for server selection when the server is gone.
pub(crate) async fn shut_down_clients() {
    let clients = std::mem::take(&mut *CLIENTS.lock().unwrap_or_else(|p| p.into_inner()));
    if clients.is_empty() {
        return;
    }
    let all = futures_util::future::join_all(
        clients
            .into_iter()
            .map(|client| std::future::IntoFuture::into_future(client.shutdown().immediate(true))),
    );
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), all).await;
}

/// The key vault a `--key-vault` argument names: a MongoDB collection for
/// a `mongodb://` or `mongodb+srv://` URI, else a file, which must exist
/// and be readable (a missing file is not read as an empty vault: a typo
/// would show every key as unknown).
pub(crate) async fn open_vault(vault: &VaultArgs) -> Result<Arc<dyn KeyVault>, Failure> {
    open_vault_for(vault, false).await
}

/// [`open_vault`], where a missing key vault file is created by the first
/// key written (mode 0600): for `keys create`.
async fn open_vault_for(vault: &VaultArgs, may_create: bool) -> Result<Arc<dyn KeyVault>, Failure> {
    open_vault_at(&vault.key_vault, &vault.key_vault_namespace, may_create).await
}

/// The key vault of `--key-vault` `v` (and `--key-vault-namespace`
/// `namespace` for a URI), without the KMS flags: for `keys list`, which
/// reads key documents and unwraps none. A missing file is refused.
pub(crate) async fn open_vault_location(
    v: &str,
    namespace: &str,
) -> Result<Arc<dyn KeyVault>, Failure> {
    open_vault_at(v, namespace, false).await
}

async fn open_vault_at(
    v: &str,
    namespace: &str,
    may_create: bool,
) -> Result<Arc<dyn KeyVault>, Failure> {
    if v.starts_with("mongodb://") || v.starts_with("mongodb+srv://") {
        let client = connect(v)
            .await
            .map_err(|e| usage(format!("--key-vault: {e}")))?;
        let store = MongoKeyVault::new(&client, namespace)
            .map_err(|e| usage(format!("--key-vault-namespace: {e}")))?;
        Ok(Arc::new(store))
    } else {
        let exists = match std::fs::metadata(v) {
            Ok(_) => true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => return Err(usage(format!("--key-vault {v}: {}", e.kind()))),
        };
        if !exists && !may_create {
            return Err(usage(format!(
                "--key-vault {v}: no such file (`csfle keys create` makes one)"
            )));
        }
        let store = FileKeyVault::new(v);
        // An unreadable or malformed vault file is unusable input (exit
        // 2), found now rather than as the first operation's failure.
        if exists {
            store
                .load()
                .map_err(|e| usage(format!("--key-vault: {e}")))?;
        }
        Ok(Arc::new(store))
    }
}

pub(crate) async fn client(vault: &VaultArgs) -> Result<ClientEncryption, Failure> {
    client_for(vault, false).await
}

async fn client_for(vault: &VaultArgs, may_create: bool) -> Result<ClientEncryption, Failure> {
    let kms = load_providers(vault)?;
    Ok(ClientEncryption::from_shared_vault(
        open_vault_for(vault, may_create).await?,
        kms,
        KeyCacheOptions::default(),
    ))
}

/// The client of `keys create`: [`writing_client`], where a missing key
/// vault file is created (mode 0600) by the key it writes.
pub(crate) async fn creating_client(vault: &VaultArgs) -> Result<ClientEncryption, Failure> {
    let ce = client_for(vault, true).await?;
    ce.key_vault()
        .ensure_indexes()
        .await
        .map_err(runtime_error)?;
    Ok(ce)
}

/// A client for a command that writes alternate names: the unique partial
/// index on `keyAltNames` is what makes them unique in a MongoDB key vault,
/// so make sure it exists (creating an existing index is a no-op).
pub(crate) async fn writing_client(vault: &VaultArgs) -> Result<ClientEncryption, Failure> {
    let ce = client(vault).await?;
    ce.key_vault()
        .ensure_indexes()
        .await
        .map_err(runtime_error)?;
    Ok(ce)
}

pub(crate) fn runtime_error(e: impl std::fmt::Display) -> Failure {
    Failure::Runtime(format!("error: {e}"))
}

pub(crate) fn parse_key_id(s: &str) -> Result<KeyId, Failure> {
    let bytes: [u8; 16] = decode_b64("--key-id", s)?
        .try_into()
        .map_err(|_| usage("--key-id must be 16 bytes (a UUID)"))?;
    Ok(KeyId::from_bytes(bytes))
}

/// A secret from a file, or from standard input for `-`, in a buffer that
/// is zeroized when dropped. The path is not repeated in an error: a
/// secret passed by mistake where the path goes must not be echoed to the
/// terminal or a log.
pub(crate) fn read_secret(
    flag: &str,
    path: &std::path::Path,
) -> Result<zeroize::Zeroizing<String>, Failure> {
    use std::io::Read;
    let mut text = zeroize::Zeroizing::new(String::new());
    let read = if path.as_os_str() == "-" {
        std::io::stdin().lock().read_to_string(&mut text)
    } else {
        std::fs::File::open(path).and_then(|mut f| f.read_to_string(&mut text))
    };
    read.map_err(|e| {
        usage(format!(
            "{flag}: cannot read the file ({}); {flag} takes a PATH, or - for standard input, \
             never the secret itself",
            e.kind()
        ))
    })?;
    Ok(text)
}

pub(crate) fn decode_b64(flag: &str, s: &str) -> Result<Vec<u8>, Failure> {
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map_err(|_| usage(format!("{flag}: not valid base64")))
}

/// Runs `f` on every non-blank stdin line, writing its output line. Stops at
/// the first failure, after flushing what was written.
pub(crate) async fn for_each_line<F, Fut>(mut f: F) -> Result<(), Failure>
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

/// The collection a data command works on, and how to encrypt for it.
#[derive(Args)]
pub(crate) struct CollectionArgs {
    /// The MongoDB server (or $CSFLE_URI, so the URI and its password stay
    /// off the command line).
    #[arg(long, value_name = "URI", env = "CSFLE_URI", hide_env_values = true)]
    pub(crate) uri: String,
    /// The collection.
    #[arg(long, value_name = "DB.COLL")]
    pub(crate) ns: String,
    /// JSON file {"db.coll": <$jsonSchema>}; without it (or for a
    /// namespace it does not list) the collection's schema on the server
    /// (its `$jsonSchema` validator, or its Queryable Encryption
    /// `encryptedFields`) is used.
    #[arg(long, value_name = "FILE")]
    pub(crate) schema_map: Option<PathBuf>,
    /// JSON file {"db.coll": <encryptedFields>} (Queryable Encryption,
    /// feature `qe`): the namespaces it lists are QE collections, whatever
    /// the server says; each entry is read strictly. A namespace may not be
    /// in both maps.
    #[arg(long, value_name = "FILE")]
    pub(crate) encrypted_fields_map: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) vault: VaultArgs,
}

impl CollectionArgs {
    pub(crate) fn namespace(&self) -> Result<csfle::analysis::Namespace, Failure> {
        csfle::analysis::Namespace::parse(&self.ns).map_err(|e| usage(format!("--ns: {e}")))
    }

    /// `--schema-map` and `--encrypted-fields-map`, read and checked.
    pub(crate) fn maps(&self) -> Result<Maps, Failure> {
        Maps::read(self.schema_map.as_ref(), self.encrypted_fields_map.as_ref())
    }

    pub(crate) async fn mongo_client(&self) -> Result<mongodb::Client, Failure> {
        connect(&self.uri)
            .await
            .map_err(|e| usage(format!("--uri: {e}")))
    }

    /// An encrypted client on `--uri`: the maps, then the server's
    /// schemas (`$jsonSchema` validators and `encryptedFields`); the key
    /// vault and KMS of the vault flags; `audit` asked before every
    /// decryption. With `require_schema`, a command on a namespace with no
    /// schema (no source has one) is refused with
    /// [`csfle::ClientError::MissingSchema`] before anything is sent.
    pub(crate) async fn encrypted_client(
        &self,
        maps: Maps,
        audit: Option<Arc<dyn csfle::AuditSink>>,
        require_schema: bool,
    ) -> Result<csfle::EncryptedClient, Failure> {
        let mut builder = csfle::EncryptedClient::builder(self.mongo_client().await?)
            .kms(load_providers(&self.vault)?)
            .key_vault_shared(open_vault(&self.vault).await?)
            .schema_map(maps.schemas)
            .encrypted_fields_map(maps.encrypted_fields)
            .require_schema(require_schema);
        if let Some(sink) = audit {
            builder = builder.audit_sink(sink);
        }
        builder.build().await.map_err(usage)
    }
}

/// An output file that may hold plaintext and appears whole or not at all:
/// written through a temporary file beside it (created with `O_EXCL |
/// O_NOFOLLOW`, mode 0600), synced, then moved into place. Dropped before
/// [`commit`](Self::commit) (an error, a lost connection), the temporary
/// file is removed, so nothing is left at the path; a process killed
/// outright can leave the temporary file (`.<name>.csfle-tmp.<hex>`, mode
/// 0600), never a partial file at the path.
pub(crate) struct AtomicOutput {
    file: std::fs::File,
    temp: PathBuf,
    path: PathBuf,
    flag: &'static str,
    replace: bool,
    committed: bool,
}

impl AtomicOutput {
    /// Refuses an existing `path` (a file, a link, anything) unless
    /// `replace`: checked before connecting to anything.
    pub(crate) fn refuse_existing(
        flag: &str,
        path: &std::path::Path,
        replace: bool,
    ) -> Result<(), Failure> {
        match std::fs::symlink_metadata(path) {
            // Found before anything is read: a rename over a directory
            // would fail only once the whole output is written.
            Ok(m) if m.is_dir() => Err(usage(format!(
                "{flag} {}: is a directory; name a file",
                path.display()
            ))),
            Ok(_) if !replace => Err(usage(format!(
                "{flag} {}: the file exists; pass --force to replace it",
                path.display()
            ))),
            _ => Ok(()),
        }
    }

    /// The temporary file for `path`, in its directory.
    pub(crate) fn create(
        flag: &'static str,
        path: &std::path::Path,
        replace: bool,
    ) -> Result<Self, Failure> {
        use std::os::unix::fs::OpenOptionsExt;
        Self::refuse_existing(flag, path, replace)?;
        let name = path
            .file_name()
            .ok_or_else(|| usage(format!("{flag} {}: not a file name", path.display())))?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mut suffix = [0u8; 8];
        csfle::fill_random(&mut suffix).map_err(|e| usage(format!("{flag}: {e}")))?;
        let mut temp_name = std::ffi::OsString::from(".");
        temp_name.push(name);
        temp_name.push(format!(
            ".csfle-tmp.{}",
            suffix
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        ));
        let temp = dir.join(temp_name);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&temp)
            .map_err(|e| usage(format!("{flag} {}: {}", temp.display(), e.kind())))?;
        Ok(AtomicOutput {
            file,
            temp,
            path: path.to_owned(),
            flag,
            replace,
            committed: false,
        })
    }

    /// A handle to write the temporary file through.
    pub(crate) fn writer(&self) -> Result<std::fs::File, Failure> {
        self.file.try_clone().map_err(|e| {
            usage(format!(
                "{} {}: {}",
                self.flag,
                self.temp.display(),
                e.kind()
            ))
        })
    }

    /// Syncs the temporary file and moves it to the path: replacing what is
    /// there with `replace` (a link is replaced, never followed), else only
    /// if nothing is (a hard link, which fails on an existing name, then
    /// the temporary name removed).
    pub(crate) fn commit(mut self) -> Result<(), Failure> {
        let failed = |e: std::io::Error| {
            Failure::Runtime(format!(
                "error: {} {}: {}",
                self.flag,
                self.path.display(),
                e.kind()
            ))
        };
        self.file.sync_all().map_err(failed)?;
        if self.replace {
            std::fs::rename(&self.temp, &self.path).map_err(failed)?;
            self.committed = true;
        } else {
            match std::fs::hard_link(&self.temp, &self.path) {
                Ok(()) => {}
                // File systems without hard links (vfat, exFAT, some
                // network mounts): a rename after checking that nothing is
                // there (a narrow race the link closed; the file is ours).
                Err(e)
                    if matches!(e.raw_os_error(), Some(libc::EPERM | libc::EOPNOTSUPP))
                        && std::fs::symlink_metadata(&self.path).is_err() =>
                {
                    std::fs::rename(&self.temp, &self.path).map_err(failed)?;
                }
                Err(e) => return Err(failed(e)),
            }
            self.committed = true;
            // The output is in place; a temporary name left behind is
            // another link to the same private file.
            let _ = std::fs::remove_file(&self.temp);
        }
        // The new name is durable once the directory is synced.
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => std::path::Path::new("."),
        };
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

impl Drop for AtomicOutput {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

/// A progress bar on stderr, drawn only when stderr is a terminal. It is
/// cleared however it ends (also dropped on an error path), so the summary
/// or error line that follows starts on a line of its own.
pub(crate) fn progress_bar(total: Option<u64>) -> indicatif::ProgressBar {
    let bar = match total {
        Some(n) => indicatif::ProgressBar::new(n),
        None => indicatif::ProgressBar::no_length(),
    }
    .with_finish(indicatif::ProgressFinish::AndClear);
    let template = if total.is_some() {
        "[{elapsed_precise}] {wide_bar} {pos}/{len} {per_sec} ETA {eta}"
    } else {
        "[{elapsed_precise}] {pos} documents {per_sec}"
    };
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    bar
}

/// The run's summary line on stderr (stdout carries only documents).
pub(crate) fn print_summary(summary: serde_json::Value) {
    eprintln!("{summary}");
}

/// `--audit-log FILE` (or `$CSFLE_AUDIT_LOG`) of the commands that decrypt
/// for an operator.
#[derive(Args)]
pub(crate) struct AuditArgs {
    /// Append a start and an end record of this run to FILE (mode 0600);
    /// if the start record cannot be written, nothing is decrypted.
    #[arg(
        long,
        value_name = "FILE",
        env = "CSFLE_AUDIT_LOG",
        hide_env_values = true
    )]
    pub(crate) audit_log: Option<PathBuf>,
}
