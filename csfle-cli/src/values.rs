//! `csfle encrypt` and `csfle decrypt`: values and documents, a line each.

use crate::audit::audited;
use crate::common::{Failure, VaultArgs, client, for_each_line, parse_key_id, usage};
use clap::{Args, ValueEnum};
use csfle::{Algorithm, KeyRef};
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum AlgorithmArg {
    Deterministic,
    Random,
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("key").required(true).args(["key_id", "key_alt_name"])))]
pub(crate) struct EncryptArgs {
    #[command(flatten)]
    pub(crate) vault: VaultArgs,
    /// Data key id: base64 of its 16 UUID bytes.
    #[arg(long, value_name = "BASE64")]
    pub(crate) key_id: Option<String>,
    /// Data key alternate name.
    #[arg(long, value_name = "N")]
    pub(crate) key_alt_name: Option<String>,
    /// Encryption algorithm.
    #[arg(long, value_enum)]
    pub(crate) algorithm: AlgorithmArg,
}

pub(crate) async fn encrypt(args: EncryptArgs) -> Result<(), Failure> {
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

#[derive(Args)]
pub(crate) struct DecryptArgs {
    #[command(flatten)]
    pub(crate) vault: VaultArgs,
    #[command(flatten)]
    pub(crate) audit: crate::common::AuditArgs,
}

pub(crate) async fn decrypt(args: DecryptArgs) -> Result<(), Failure> {
    crate::audit::require_audit_log(args.audit.audit_log.as_deref())?;
    let documents = AtomicU64::new(0);
    audited(
        args.audit.audit_log.as_deref(),
        "decrypt",
        None,
        bson::Document::new(),
        &documents,
        |sink| async {
            let mut ce = client(&args.vault).await?;
            if let Some(sink) = sink {
                ce = ce.with_audit_sink(sink);
            }
            let (ce, documents) = (&ce, &documents);
            for_each_line(|doc| async move {
                let out = ce.decrypt_document(&doc).await.map_err(|e| e.to_string())?;
                documents.fetch_add(1, Ordering::Relaxed);
                Ok(out)
            })
            .await
        },
    )
    .await
}
