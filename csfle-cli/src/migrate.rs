//! `csfle migrate`: encrypt, re-encrypt or decrypt a whole collection.

use crate::audit::audited;
use crate::common::{Failure, VaultArgs, client, read_schema_map, runtime_error, usage};
use bson::{Bson, Document, doc};
use clap::Args;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

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
    /// Start and end records of this run (when the plan can decrypt:
    /// --decrypt-unlisted, or a schema naming fields without `encrypt`,
    /// those end up plaintext); required then with CSFLE_AUDIT_REQUIRED=1.
    #[command(flatten)]
    pub(crate) audit: crate::common::AuditArgs,
}

/// The command line that resumes the job: this one, with the secrets of
/// every MongoDB connection string in it masked (`--uri`, `--key-vault`,
/// `--flag=URI`, any argument holding one). The URIs are better passed as
/// $CSFLE_URI and $CSFLE_KEY_VAULT, which stay off the line.
fn rerun_command() -> String {
    std::env::args()
        .map(|arg| shell_quote(&mask_uris(&arg)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// URI options whose values are secrets (compared ignoring case, as the
/// drivers read option names): AWS session tokens and other mechanism
/// properties, private-key passwords, proxy credentials.
const SECRET_URI_OPTIONS: &[&str] = &[
    "authMechanismProperties",
    "tlsCertificateKeyFilePassword",
    "sslPEMKeyPassword",
    "sslClientCertificateKeyPassword",
    "proxyUsername",
    "proxyPassword",
];

/// `arg` with the MongoDB URI in it (from `mongodb://` or `mongodb+srv://`
/// to its end) masked.
fn mask_uris(arg: &str) -> String {
    let lower = arg.to_ascii_lowercase();
    let at = [lower.find("mongodb://"), lower.find("mongodb+srv://")]
        .into_iter()
        .flatten()
        .min();
    match at {
        Some(at) => format!("{}{}", &arg[..at], mask_uri(&arg[at..])),
        None => arg.to_owned(),
    }
}

/// A connection string with the password of its user information and the
/// values of secret-bearing options replaced by `****`. The options'
/// secrets go first, wherever they stand (so an `@` inside one, as in
/// `AWS_SESSION_TOKEN:ab@cd`, is gone before the user information is
/// looked for); the user information then ends at the last `@`, so a
/// password with a stray `@`, `/` or `?` in it is still masked whole.
fn mask_uri(uri: &str) -> String {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return uri.to_owned();
    };
    let rest = mask_secret_values(rest);
    let rest = rest.as_str();
    let user_end = rest.rfind('@');
    let (user, after) = match user_end {
        Some(at) => {
            let (userinfo, after) = rest.split_at(at);
            let user = match userinfo.split_once(':') {
                Some((name, _)) => format!("{name}:****"),
                None => userinfo.to_owned(),
            };
            (user, after)
        }
        None => (String::new(), rest),
    };
    format!("{scheme}://{user}{after}")
}

/// `s` with the value of every [`SECRET_URI_OPTIONS`] option (a name
/// after `?`, `&` or `;`, then `=`) masked up to the next `&` or `;`.
fn mask_secret_values(s: &str) -> String {
    let lower = s.to_ascii_lowercase();
    let mut out = String::with_capacity(s.len());
    let mut copied = 0;
    let mut i = 0;
    while i < s.len() {
        let at_boundary = i > 0 && matches!(s.as_bytes()[i - 1], b'?' | b'&' | b';');
        let secret = at_boundary
            .then(|| {
                SECRET_URI_OPTIONS
                    .iter()
                    .find(|name| lower[i..].starts_with(&format!("{}=", name.to_ascii_lowercase())))
            })
            .flatten();
        match secret {
            Some(name) => {
                let value_start = i + name.len() + 1;
                let value_end = s[value_start..]
                    .find(['&', ';'])
                    .map_or(s.len(), |e| value_start + e);
                out.push_str(&s[copied..value_start]);
                out.push_str("****");
                copied = value_end;
                i = value_end;
            }
            None => i += s[i..].chars().next().map_or(1, char::len_utf8),
        }
    }
    out.push_str(&s[copied..]);
    out
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
    use csfle::analysis::Namespace;
    use csfle::migrate::Plan;
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
    let map = read_schema_map("--schema-map", &args.schema_map)?;
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
    let decrypts = plan_decrypts(&schema, args.decrypt_unlisted);
    if decrypts {
        // Before the key vault or the server is opened.
        crate::audit::require_audit_log(args.audit.audit_log.as_deref())?;
    }
    let mut details = doc! {
        "plan_decrypts": decrypts,
        "decrypt_unlisted": args.decrypt_unlisted,
        "dry_run": args.dry_run,
    };
    if let Some(t) = &target {
        details.insert("target", t.to_string());
    }
    let audit_log = args.audit.audit_log.clone();
    let source_name = source.to_string();
    let documents = AtomicU64::new(0);
    let read = &documents;
    let summary = audited(
        audit_log.as_deref(),
        "migrate",
        Some(&source_name),
        details,
        &documents,
        move |sink| async move {
            let mut encryption = client(&args.vault).await?;
            if let Some(sink) = sink {
                encryption = encryption.with_audit_sink(sink);
            }
            let summary = run_migration(
                args,
                source,
                target,
                checkpoint_namespace,
                plan,
                encryption,
                read,
            )
            .await?;
            read.store(summary.read, Ordering::Relaxed);
            Ok::<_, Failure>(summary)
        },
    )
    .await?;
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

/// Whether a plan can write plaintext where there was a ciphertext: it
/// decrypts unlisted fields, or its schema names a field without `encrypt`
/// (such a field ends up plaintext), or names fields by pattern or
/// wholesale (`patternProperties`, `additionalProperties`, `items`, the
/// combinators), or names a sub-document (a ciphertext of the whole
/// sub-document is decrypted to apply its properties). Only a schema whose
/// every top-level field is encrypted is known not to; anything else
/// counts as decrypting.
fn plan_decrypts(schema: &Document, decrypt_unlisted: bool) -> bool {
    decrypt_unlisted || !encrypt_only(schema, true, 0)
}

fn encrypt_only(node: &Document, root: bool, depth: usize) -> bool {
    const WIDE: [&str; 9] = [
        "patternProperties",
        "additionalProperties",
        "items",
        "additionalItems",
        "anyOf",
        "allOf",
        "oneOf",
        "not",
        "dependencies",
    ];
    if depth > csfle::MAX_NESTING {
        return false;
    }
    if node.contains_key("encrypt") {
        return true;
    }
    if WIDE.iter().any(|k| node.contains_key(k)) {
        return false;
    }
    match node.get("properties") {
        // Below the root, a document the plan describes (with or without
        // properties) can hold one ciphertext of itself, which the plan
        // decrypts to apply its properties: its other fields end up
        // plaintext.
        Some(Bson::Document(props)) => {
            root && props.values().all(|p| match p {
                Bson::Document(d) => encrypt_only(d, false, depth + 1),
                _ => false,
            })
        }
        Some(_) => false,
        // The root naming nothing changes nothing; a property naming
        // nothing below it is a plaintext field.
        None => root,
    }
}

/// The migration itself, once the audit log (if any) has its start record.
async fn run_migration(
    args: MigrateArgs,
    source: csfle::analysis::Namespace,
    target: Option<csfle::analysis::Namespace>,
    checkpoint_namespace: Option<csfle::analysis::Namespace>,
    plan: csfle::migrate::Plan,
    encryption: csfle::ClientEncryption,
    // The audit end record's document count: set here too when the run
    // stops, since a stopped run's summary never reaches the caller.
    read: &AtomicU64,
) -> Result<csfle::migrate::MigrationSummary, Failure> {
    use csfle::migrate::{Migration, MigrationOptions};
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
    let db_client = crate::common::connect_with_options(db_options)
        .map_err(|e| usage(format!("--uri: {e}")))?;
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg:>8} [{elapsed_precise}] {wide_bar} {pos}/{len} {per_sec} ETA {eta}",
        )
        .map_err(runtime_error)?,
    );
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    let mut options = MigrationOptions::default()
        .with_workers(args.workers as usize)
        .with_batch_size(args.batch_size as usize)
        .with_dry_run(args.dry_run)
        .with_verify(args.verify)
        .with_max_retry_time(std::time::Duration::from_secs(args.max_retry_seconds))
        .with_lease(std::time::Duration::from_secs(args.lease_seconds))
        .with_progress(std::sync::Arc::new(ProgressBar(bar)));
    if let Some(target) = target {
        options = options.with_target(target);
    }
    if let Some(namespace) = checkpoint_namespace {
        options = options.with_checkpoint_namespace(namespace);
    }
    Migration::new(db_client, source, plan, encryption, options)
        .run()
        .await
        .map_err(|e| match e {
            // Global causes found before anything was written: fix and rerun.
            e @ csfle::migrate::Error::Preflight { .. } => usage(e),
            // A worker failed mid-run: what was done, then how to resume.
            csfle::migrate::Error::Stopped { error, summary } => {
                read.store(summary.read, Ordering::Relaxed);
                println!("{}", summary.to_json());
                Failure::Runtime(format!("error: {error}\nresume with: {}", rerun_command()))
            }
            e @ csfle::migrate::Error::GaveUp { .. } => {
                Failure::Runtime(format!("error: {e}\nresume with: {}", rerun_command()))
            }
            e => runtime_error(e),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rerun_command_masks_passwords_and_quotes() {
        assert_eq!(
            mask_uri("mongodb://app:s3cret@db1:27017,db2/?tls=true"),
            "mongodb://app:****@db1:27017,db2/?tls=true"
        );
        assert_eq!(mask_uri("mongodb://db1/"), "mongodb://db1/");
        assert_eq!(mask_uri("mongodb://user@db1/"), "mongodb://user@db1/");
        // A raw '/' or '@' in the password: still masked whole.
        assert_eq!(
            mask_uri("mongodb://app:pa/ss@word@db1/app"),
            "mongodb://app:****@db1/app"
        );
        assert_eq!(
            mask_uri(
                "mongodb+srv://u:p@c.example.net/?authMechanism=MONGODB-AWS&authMechanismProperties=AWS_SESSION_TOKEN:tok;TLSCertificateKeyFilePassword=pw&appName=x"
            ),
            "mongodb+srv://u:****@c.example.net/?authMechanism=MONGODB-AWS&authMechanismProperties=****;TLSCertificateKeyFilePassword=****&appName=x"
        );
        assert_eq!(
            mask_uris("--key-vault=MongoDB://kv:secret@h/?proxyPassword=x"),
            "--key-vault=MongoDB://kv:****@h/?proxyPassword=****"
        );
        // An '@' inside a secret option is not the end of a user name.
        assert_eq!(
            mask_uri("mongodb://h/?authMechanismProperties=AWS_SESSION_TOKEN:ab@cd&appName=x"),
            "mongodb://h/?authMechanismProperties=****&appName=x"
        );
        assert_eq!(
            mask_uri("mongodb://u:p@h/?proxyPassword=a@b;w=1"),
            "mongodb://u:****@h/?proxyPassword=****;w=1"
        );
        assert_eq!(mask_uris("hr.people"), "hr.people");
        assert_eq!(shell_quote("hr.people"), "hr.people");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote("a b"), "'a b'");
    }

    #[test]
    fn only_plans_that_can_write_plaintext_decrypt() {
        let enc = doc! {"encrypt": {"bsonType": "string"}};
        let encrypt_only = doc! {"bsonType": "object", "properties": {
            "ssn": enc.clone(), "medical": enc.clone(),
        }};
        assert!(!plan_decrypts(&encrypt_only, false));
        assert!(plan_decrypts(&encrypt_only, true));
        assert!(!plan_decrypts(&doc! {}, false));
        for decrypting in [
            doc! {"properties": {"ssn": enc.clone(), "name": {"bsonType": "string"}}},
            doc! {"properties": {"ssn": enc.clone(), "address": {"properties": {}}}},
            // A whole-object ciphertext of `addr` is decrypted to encrypt
            // `zip`: street and city end up plaintext.
            doc! {"properties": {"addr": {"bsonType": "object", "properties": {"zip": enc.clone()}}}},
            doc! {"properties": {"ssn": enc.clone()}, "additionalProperties": false},
            doc! {"patternProperties": {"^x": enc.clone()}},
            doc! {"properties": {"a": {"anyOf": [enc.clone()]}}},
            doc! {"properties": {"a": "not a schema"}},
        ] {
            assert!(plan_decrypts(&decrypting, false), "{decrypting}");
        }
    }

    proptest! {
        /// Whatever the password and the secret options hold, the resume
        /// line shows none of it.
        #[test]
        fn resume_line_never_shows_uri_secrets(
            password in "[A-Za-z0-9%!*'()+,._~:@/?&=-]{1,24}",
            token in "[A-Za-z0-9%+/=._~-]{1,24}",
            key_password in "[A-Za-z0-9%+/._~-]{1,24}",
            srv in any::<bool>(),
            option_case in any::<bool>(),
        ) {
            let scheme = if srv { "mongodb+srv" } else { "mongodb" };
            let option = if option_case {
                "AUTHMECHANISMPROPERTIES"
            } else {
                "authMechanismProperties"
            };
            let marker = |s: &str| format!("SECRET{s}");
            let (password, token, key_password) =
                (marker(&password), marker(&token), marker(&key_password));
            let uri = format!(
                "{scheme}://app:{password}@db1:27017,db2/hr?{option}=AWS_SESSION_TOKEN:{token}&tlsCertificateKeyFilePassword={key_password}"
            );
            for arg in [uri.clone(), format!("--uri={uri}"), format!("--key-vault={uri}")] {
                let shown = shell_quote(&mask_uris(&arg));
                prop_assert!(!shown.contains("SECRET"), "{shown}");
                prop_assert!(shown.contains("db1:27017,db2/hr"), "{shown}");
            }
        }
    }
}
