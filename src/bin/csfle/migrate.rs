//! `csfle migrate`: encrypt, re-encrypt or decrypt a whole collection.

use crate::common::{Failure, VaultArgs, client, runtime_error, usage};
use bson::Bson;
use clap::Args;
use csfle::ejson;
use std::path::PathBuf;

#[derive(Args)]
pub(crate) struct MigrateArgs {
    /// The MongoDB server holding the collection (or $CSFLE_URI, so the
    /// URI and its password stay off the command line).
    #[arg(long, value_name = "URI", env = "CSFLE_URI", hide_env_values = true)]
    pub(crate) uri: String,
    /// The collection to migrate.
    #[arg(long, value_name = "DB.COLL")]
    pub(crate) source: String,
    /// Write migrated documents here instead of in place (upserted by _id).
    #[arg(long, value_name = "DB.COLL")]
    pub(crate) target: Option<String>,
    /// JSON file {"db.coll": <$jsonSchema>}: the plan, the entry for the
    /// target (or the source, in place).
    #[arg(long, value_name = "FILE")]
    pub(crate) schema_map: PathBuf,
    #[command(flatten)]
    pub(crate) vault: VaultArgs,
    /// Where checkpoints live (default: <source db>.csfle_migrations).
    #[arg(long, value_name = "DB.COLL")]
    pub(crate) checkpoint_namespace: Option<String>,
    /// Parallel workers over _id ranges.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub(crate) workers: u32,
    /// Documents per read batch and bulk write.
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub(crate) batch_size: u32,
    /// Report what would change; write nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Afterwards, re-read every document and check it against the plan.
    #[arg(long)]
    pub(crate) verify: bool,
    /// Also decrypt encrypted fields the plan does not name.
    #[arg(long)]
    pub(crate) decrypt_unlisted: bool,
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

pub(crate) async fn migrate(args: MigrateArgs) -> Result<(), Failure> {
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
