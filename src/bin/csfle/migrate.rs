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
    /// How long transient failures (network errors, server restarts,
    /// failovers) are retried, from the first of a streak, before the run
    /// stops; rerunning the same command then resumes it.
    #[arg(long, value_name = "SECONDS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub(crate) max_retry_seconds: u64,
    /// How long a range stays this process's without a sign of life.
    /// Processes started with the same arguments (on any machine) share
    /// the job; one that dies loses its ranges to the others this long
    /// after. Clocks must agree to well within it.
    #[arg(long, value_name = "SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub(crate) lease_seconds: u64,
}

/// The command line that resumes the job: this one, with a password in a
/// connection string masked (the URI is better passed as $CSFLE_URI).
fn rerun_command() -> String {
    let mut out = Vec::new();
    let mut uri_next = false;
    for arg in std::env::args() {
        let arg = if uri_next {
            mask_password(&arg)
        } else if let Some(uri) = arg.strip_prefix("--uri=") {
            format!("--uri={}", mask_password(uri))
        } else {
            arg
        };
        uri_next = arg == "--uri";
        out.push(shell_quote(&arg));
    }
    out.join(" ")
}

fn mask_password(uri: &str) -> String {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return uri.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => match rest[..at].split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:****{}", &rest[at..]),
            None => uri.to_owned(),
        },
        None => uri.to_owned(),
    }
}

fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@%+".contains(&b));
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
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
        // Cleared, so the summary line (stdout, often the same terminal)
        // starts on a line of its own.
        self.0.finish_and_clear();
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
    let mut db_options = mongodb::options::ClientOptions::parse(&args.uri)
        .await
        .map_err(|e| usage(format!("--uri: {e}")))?;
    // After a "not primary" or "shutting down" reply the driver waits for
    // its monitor to see the server again; a streaming monitor is then
    // parked in a hello that returns only after the heartbeat (10 s), so
    // one such transient error cost ~9 s. A polling monitor checks at once.
    if db_options.server_monitoring_mode.is_none() {
        db_options.server_monitoring_mode = Some(mongodb::options::ServerMonitoringMode::Poll);
    }
    let db_client =
        mongodb::Client::with_options(db_options).map_err(|e| usage(format!("--uri: {e}")))?;
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
        max_retry_time: std::time::Duration::from_secs(args.max_retry_seconds),
        lease: std::time::Duration::from_secs(args.lease_seconds),
        progress: Some(std::sync::Arc::new(ProgressBar(bar))),
        ..Default::default()
    };
    let summary = Migration::new(db_client, source, plan, encryption, options)
        .run()
        .await
        .map_err(|e| match e {
            // Global causes found before anything was written: fix and rerun.
            e @ csfle::migrate::Error::Preflight { .. } => usage(e),
            // A worker failed mid-run: what was done, then how to resume.
            csfle::migrate::Error::Stopped { error, summary } => {
                println!("{}", summary.to_json());
                Failure::Runtime(format!("error: {error}\nresume with: {}", rerun_command()))
            }
            e @ csfle::migrate::Error::GaveUp { .. } => {
                Failure::Runtime(format!("error: {e}\nresume with: {}", rerun_command()))
            }
            e => runtime_error(e),
        })?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rerun_command_masks_passwords_and_quotes() {
        assert_eq!(
            mask_password("mongodb://app:s3cret@db1:27017,db2/?tls=true"),
            "mongodb://app:****@db1:27017,db2/?tls=true"
        );
        assert_eq!(mask_password("mongodb://db1/"), "mongodb://db1/");
        assert_eq!(mask_password("mongodb://user@db1/"), "mongodb://user@db1/");
        assert_eq!(shell_quote("hr.people"), "hr.people");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote("a b"), "'a b'");
    }
}
