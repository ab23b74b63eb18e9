//! `csfle preview`: the command automatic encryption would send.

use crate::common::{Failure, VaultArgs, client, for_each_line, read_json, usage};
use bson::Document;
use clap::Args;
use csfle::{AutoEncrypter, AutoEncryptionOptions};
use std::path::PathBuf;

#[derive(Args)]
pub(crate) struct PreviewArgs {
    #[command(flatten)]
    pub(crate) vault: VaultArgs,
    /// JSON file {"db.coll": <$jsonSchema>, …}. Without --uri it is the
    /// only source of schemas: namespaces it does not list have no
    /// encrypted fields.
    #[arg(long, value_name = "FILE", required_unless_present = "uri")]
    pub(crate) schema_map: Option<PathBuf>,
    /// Also read the schemas of namespaces the map does not list from this
    /// server's collection validators, as automatic encryption does by
    /// default (or $CSFLE_URI). A local map is safer: whoever controls the
    /// server controls its validators.
    #[arg(long, value_name = "URI", env = "CSFLE_URI", hide_env_values = true)]
    pub(crate) uri: Option<String>,
    /// Database the commands run on.
    #[arg(long, value_name = "NAME")]
    pub(crate) db: String,
    /// Refuse commands on namespaces the schema map does not list.
    #[arg(long)]
    pub(crate) require_schema: bool,
}

pub(crate) async fn preview(args: PreviewArgs) -> Result<(), Failure> {
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
        let server = crate::common::connect(uri)
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
