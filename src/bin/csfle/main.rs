//! `csfle`: create data keys, encrypt and decrypt values from the command line.
//!
//! Input and output are lines of Extended JSON. Exit status: 0 on success,
//! 1 when a line or an operation fails (`line N: <reason>` on stderr; lines
//! before it stay written), 2 on a usage or configuration error.

use base64::Engine;
use bson::{Bson, Document};
use clap::{Args, Parser, Subcommand, ValueEnum};
use csfle::keyvault::{FileKeyVault, KeyRing};
use csfle::kms::{KmsProviders, ProviderName};
use csfle::{Algorithm, ExplicitEncrypter, KeyId, KeyRef, ejson};
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
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a data key, store its key document and print its id.
    Create(CreateArgs),
}

#[derive(Args)]
struct VaultArgs {
    /// JSON file in the drivers' `kmsProviders` shape, e.g. {"local": {"key": "<base64 of 96 bytes>"}}.
    #[arg(long, value_name = "FILE")]
    kms_providers: PathBuf,
    /// Key vault: a file of key documents (Extended JSON array or one per line).
    #[arg(long, value_name = "PATH")]
    key_vault: PathBuf,
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
    /// Use these 96 bytes (base64) as the key material instead of random bytes.
    #[arg(long, value_name = "BASE64")]
    key_material: Option<String>,
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
    let result = match cli.command {
        Command::Keys(KeysCommand::Create(args)) => keys_create(args),
        Command::Encrypt(args) => encrypt(args),
        Command::Decrypt(args) => decrypt(args),
    };
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

fn load_providers(path: &PathBuf) -> Result<KmsProviders, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| usage(format!("--kms-providers {}: {e}", path.display())))?;
    let doc = ejson::parse_document(&text)
        .map_err(|e| usage(format!("--kms-providers {}: {e}", path.display())))?;
    KmsProviders::from_document(&doc)
        .map_err(|e| usage(format!("--kms-providers {}: {e}", path.display())))
}

fn load_ring(vault: &VaultArgs) -> Result<KeyRing, Failure> {
    let providers = load_providers(&vault.kms_providers)?;
    let docs = FileKeyVault::new(&vault.key_vault).load().map_err(usage)?;
    KeyRing::new(docs, providers).map_err(usage)
}

fn decode_b64(flag: &str, s: &str) -> Result<Vec<u8>, Failure> {
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map_err(|_| usage(format!("{flag}: not valid base64")))
}

fn keys_create(args: CreateArgs) -> Result<(), Failure> {
    let providers = load_providers(&args.vault.kms_providers)?;
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
    let material = match &args.key_material {
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
    let key = csfle::create_data_key(
        &providers,
        &provider,
        args.key_alt_names.clone(),
        material.as_ref().map(|m| m.as_slice()),
    )
    .map_err(|e| match e {
        csfle::Error::Kms(_) => usage(e),
        other => Failure::Runtime(format!("error: {other}")),
    })?;
    FileKeyVault::new(&args.vault.key_vault)
        .insert(&key)
        .map_err(|e| Failure::Runtime(format!("error: {e}")))?;
    println!("{}", ejson::to_canonical(&Bson::Binary(key.id.to_binary())));
    Ok(())
}

/// Runs `f` on every non-blank stdin line, writing its output line. Stops at
/// the first failure, after flushing what was written.
fn for_each_line(mut f: impl FnMut(Document) -> Result<Document, String>) -> Result<(), Failure> {
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
        let result = ejson::parse_document(&line)
            .map_err(|e| e.to_string())
            .and_then(&mut f);
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

fn encrypt(args: EncryptArgs) -> Result<(), Failure> {
    let key = match (&args.key_id, &args.key_alt_name) {
        (Some(id), _) => {
            let bytes: [u8; 16] = decode_b64("--key-id", id)?
                .try_into()
                .map_err(|_| usage("--key-id must be 16 bytes (a UUID)"))?;
            KeyRef::Id(KeyId::from_bytes(bytes))
        }
        (None, Some(name)) => KeyRef::AltName(name.clone()),
        (None, None) => return Err(usage("one of --key-id or --key-alt-name is required")),
    };
    let algorithm = match args.algorithm {
        AlgorithmArg::Deterministic => Algorithm::Deterministic,
        AlgorithmArg::Random => Algorithm::Random,
    };
    let enc = ExplicitEncrypter::new(load_ring(&args.vault)?);
    for_each_line(|mut doc| {
        let value = doc.get("v").ok_or("missing field 'v'")?;
        let ct = enc
            .encrypt(value, &key, algorithm)
            .map_err(|e| e.to_string())?;
        doc.insert("v", ct);
        Ok(doc)
    })
}

fn decrypt(args: VaultArgs) -> Result<(), Failure> {
    let enc = ExplicitEncrypter::new(load_ring(&args)?);
    for_each_line(|doc| enc.decrypt_document(&doc).map_err(|e| e.to_string()))
}
