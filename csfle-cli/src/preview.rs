//! `csfle preview`: the command automatic encryption would send.

use crate::common::{Failure, Maps, VaultArgs, client, for_each_line, read_json, usage};
use bson::spec::BinarySubtype;
use bson::{Bson, Document, doc};
use clap::Args;
use csfle::{AutoEncrypter, AutoEncryptionOptions};
use std::path::PathBuf;

#[derive(Args)]
pub(crate) struct PreviewArgs {
    /// Only check the schema map FILE, without a key vault or server: one
    /// line per namespace on stdout, `ok NS` or `refused NS: why`; exit 2
    /// when any entry is refused. Lint a map before upgrading csfle. Takes
    /// no other flag (unset CSFLE_URI, CSFLE_KEY_VAULT and
    /// CSFLE_KMS_ALLOWED_HOSTS for it).
    // `exclusive`: the vault and --db, required otherwise, are not needed.
    #[arg(long, value_name = "FILE", exclusive = true)]
    pub(crate) check_schema_map: Option<PathBuf>,
    // An `Option` only so that --check-schema-map can go without it: the
    // vault flags stay required by clap otherwise.
    #[command(flatten)]
    pub(crate) vault: Option<VaultArgs>,
    /// JSON file {"db.coll": <$jsonSchema>, …}. Without --uri it and
    /// --encrypted-fields-map are the only sources of schemas: a command
    /// on a namespace neither lists is refused unless --plain-namespace
    /// declares it.
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present_any = ["uri", "encrypted_fields_map"]
    )]
    pub(crate) schema_map: Option<PathBuf>,
    /// JSON file {"db.coll": <encryptedFields>, …} (Queryable Encryption,
    /// feature `qe`): a command on a namespace it lists is shown with its
    /// values as QE payloads and the encryptionInformation the server
    /// needs. A namespace may not be in both maps.
    #[arg(long, value_name = "FILE")]
    pub(crate) encrypted_fields_map: Option<PathBuf>,
    /// Also read the schemas of namespaces the map does not list from this
    /// server's collection validators, as automatic encryption does by
    /// default (or $CSFLE_URI). A local map is safer: whoever controls the
    /// server controls its validators.
    #[arg(long, value_name = "URI", env = "CSFLE_URI", hide_env_values = true)]
    pub(crate) uri: Option<String>,
    /// Database the commands run on.
    #[arg(long, value_name = "NAME", required = true)]
    pub(crate) db: Option<String>,
    /// A namespace that holds no encrypted fields (repeatable): commands
    /// on it are shown unchanged. Any other namespace without a schema (in
    /// the map, or on the server with --uri) is refused; a declared
    /// namespace that has a schema is refused too.
    #[arg(long = "plain-namespace", value_name = "DB.COLL")]
    pub(crate) plain_namespaces: Vec<String>,
    /// Accepted for compatibility: refusing namespaces without a schema is
    /// the default (declare plain ones with --plain-namespace).
    #[arg(long)]
    pub(crate) require_schema: bool,
    /// Show each encrypted value (a subtype-6 binary: FLE1 ciphertext, a
    /// QE payload) as {"$encrypted": {"kind": …, "bytes": N}} instead of
    /// its bytes: the command's shape, readable. Without it the command is
    /// printed exactly as it would be sent.
    #[arg(long)]
    pub(crate) summarize: bool,
}

/// What the first byte of an encrypted value (a subtype-6 binary) makes
/// it: an FLE1 ciphertext's algorithm, or the Queryable Encryption blob,
/// as libmongocrypt names it.
fn encrypted_kind(first: Option<u8>) -> String {
    let name = match first {
        Some(1) => "FLE1 deterministic",
        Some(2) => "FLE1 random",
        Some(11) => "FLE2InsertUpdatePayloadV2",
        Some(12) => "FLE2FindEqualityPayloadV2",
        Some(13) => "FLE2FindRangePayloadV2",
        Some(14) => "FLE2IndexedEqualityEncryptedValueV2",
        Some(15) => "FLE2IndexedRangeEncryptedValueV2",
        Some(16) => "FLE2UnindexedEncryptedValueV2",
        Some(other) => return format!("blob subtype {other}"),
        None => "empty",
    };
    name.to_owned()
}

/// `value` with every encrypted value replaced by its summary
/// (`--summarize`); past `csfle::MAX_NESTING` levels, refused (the walk is
/// recursive).
fn summarized(value: Bson, depth: usize) -> Result<Bson, String> {
    if depth > csfle::MAX_NESTING {
        return Err(format!(
            "document nesting exceeds {} levels",
            csfle::MAX_NESTING
        ));
    }
    Ok(match value {
        Bson::Binary(b) if b.subtype == BinarySubtype::Encrypted => {
            Bson::Document(doc! {"$encrypted": {
                "kind": encrypted_kind(b.bytes.first().copied()),
                "bytes": i64::try_from(b.bytes.len()).unwrap_or(i64::MAX),
            }})
        }
        Bson::Document(d) => Bson::Document(summarized_document(d, depth + 1)?),
        Bson::Array(items) => Bson::Array(
            items
                .into_iter()
                .map(|v| summarized(v, depth + 1))
                .collect::<Result<Vec<Bson>, String>>()?,
        ),
        other => other,
    })
}

/// [`summarized`] of each value of `d`, at `depth`.
fn summarized_document(d: Document, depth: usize) -> Result<Document, String> {
    d.into_iter()
        .map(|(k, v)| -> Result<(String, Bson), String> { Ok((k, summarized(v, depth)?)) })
        .collect()
}

/// `--check-schema-map`: every entry of the map parsed on its own, as
/// every reader of schema maps parses it; each refusal reported.
fn check_schema_map(path: &PathBuf) -> Result<(), Failure> {
    let map = read_json("--check-schema-map", path)?;
    let entries = csfle::schema::parse_schema_map_entries(&map);
    let mut refused = 0;
    for (namespace, result) in &entries {
        match result {
            Ok(_) => println!("ok {namespace}"),
            Err(e) => {
                refused += 1;
                println!("refused {namespace}: {e}");
            }
        }
    }
    if refused > 0 {
        return Err(usage(format!(
            "{refused} of {} schema map entries refused",
            entries.len()
        )));
    }
    Ok(())
}

pub(crate) async fn preview(args: PreviewArgs) -> Result<(), Failure> {
    if let Some(path) = &args.check_schema_map {
        return check_schema_map(path);
    }
    // Clap requires both without --check-schema-map (which excludes them).
    let (Some(vault), Some(db)) = (&args.vault, &args.db) else {
        return Err(usage(
            "--kms-providers, --key-vault and --db are required without --check-schema-map",
        ));
    };
    let maps = Maps::read(args.schema_map.as_ref(), args.encrypted_fields_map.as_ref())?;
    // Always on: `--require-schema` is kept only so that scripts using it
    // still parse.
    let _ = args.require_schema;
    let options = AutoEncryptionOptions::default()
        .with_require_schema(true)
        .with_plain_namespaces(args.plain_namespaces.clone())
        .with_schema_map_only(args.uri.is_none())
        .with_encrypted_fields_map(maps.encrypted_fields);
    let mut auto =
        AutoEncrypter::new(client(vault).await?, &maps.schemas, options).map_err(usage)?;
    if let Some(uri) = &args.uri {
        let server = crate::common::connect(uri)
            .await
            .map_err(|e| usage(format!("--uri: {e}")))?;
        auto =
            auto.with_remote_schemas(std::sync::Arc::new(csfle::MongoSchemaFetcher::new(server)));
    }
    let (auto, db, summarize) = (&auto, db.as_str(), args.summarize);
    for_each_line(|cmd| async move {
        let sent = auto.encrypt_command(db, &cmd).await.map_err(|e| match e {
            csfle::Error::Client(csfle::ClientError::MissingSchema { .. }) => {
                format!("{e}: declare it with --plain-namespace if it holds no encrypted fields")
            }
            e => e.to_string(),
        })?;
        if summarize {
            summarized_document(sent, 1)
        } else {
            Ok(sent)
        }
    })
    .await
}
