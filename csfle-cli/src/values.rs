//! `csfle encrypt` and `csfle decrypt`: values and documents, a line each.

use crate::audit::audited;
use crate::common::{Failure, VaultArgs, client, for_each_line, parse_key_id, usage};
use clap::{Args, ValueEnum};
use csfle::{Algorithm, KeyRef};
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum AlgorithmArg {
    /// FLE1, AEAD_AES_256_CBC_HMAC_SHA_512-Deterministic.
    Deterministic,
    /// FLE1, AEAD_AES_256_CBC_HMAC_SHA_512-Random.
    Random,
    /// Queryable Encryption, equality-indexed (needs --contention-factor).
    Indexed,
    /// Queryable Encryption, not queryable.
    Unindexed,
    /// Queryable Encryption, range-indexed (needs --contention-factor and
    /// the range flags of the index).
    Range,
    /// Queryable Encryption's text search: refused, not supported.
    #[value(hide = true)]
    String,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum QueryTypeArg {
    /// An equality query (--algorithm indexed): each `v` becomes a find
    /// payload.
    Equality,
    /// A range query (--algorithm range): each `v` is the `$and`
    /// expression, replaced by the encrypted expression.
    Range,
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
    /// Encryption algorithm: FLE1's (deterministic, random) or Queryable
    /// Encryption's (indexed, unindexed, range).
    #[arg(long, value_enum)]
    pub(crate) algorithm: AlgorithmArg,
    /// Queryable Encryption: the maximum contention factor (required for
    /// indexed and range). An insert picks one of N + 1 token chains; a
    /// query searches them all.
    #[arg(
        long,
        value_name = "N",
        allow_hyphen_values = true,
        required_if_eq_any([("algorithm", "indexed"), ("algorithm", "range")])
    )]
    pub(crate) contention_factor: Option<i64>,
    /// Queryable Encryption: encrypt queries instead of values to store.
    #[arg(long, value_enum)]
    pub(crate) query_type: Option<QueryTypeArg>,
    /// --algorithm range: the index's minimum, one Extended JSON value of
    /// the values' type (`0` is an int32, `{"$numberLong":"0"}` an int64,
    /// `{"$date":"2020-01-01T00:00:00Z"}` a date).
    #[arg(long, value_name = "EJSON", allow_hyphen_values = true)]
    pub(crate) range_min: Option<String>,
    /// --algorithm range: the index's maximum, as --range-min.
    #[arg(long, value_name = "EJSON", allow_hyphen_values = true)]
    pub(crate) range_max: Option<String>,
    /// --algorithm range: the index's sparsity (default 2).
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub(crate) sparsity: Option<i64>,
    /// --algorithm range: the index's trim factor (default 6, clamped).
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub(crate) trim_factor: Option<i32>,
    /// --algorithm range: the index's precision (doubles and decimals).
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub(crate) precision: Option<i32>,
}

impl EncryptArgs {
    /// Whether any of Queryable Encryption's flags is given.
    fn has_qe_flags(&self) -> bool {
        self.contention_factor.is_some() || self.query_type.is_some() || self.has_range_flags()
    }

    /// Whether any range flag is given.
    fn has_range_flags(&self) -> bool {
        self.range_min.is_some()
            || self.range_max.is_some()
            || self.sparsity.is_some()
            || self.trim_factor.is_some()
            || self.precision.is_some()
    }
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
        AlgorithmArg::String => return Err(usage(csfle::ExplicitError::TextSearchUnsupported)),
        AlgorithmArg::Indexed | AlgorithmArg::Unindexed | AlgorithmArg::Range => {
            return qe::encrypt(&args, key).await;
        }
    };
    if args.has_qe_flags() {
        return Err(usage(
            "--contention-factor, --query-type, --range-min, --range-max, --sparsity, \
             --trim-factor and --precision are for --algorithm indexed, unindexed or range",
        ));
    }
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

/// Queryable Encryption's `csfle encrypt`.
#[cfg(feature = "qe")]
mod qe {
    use super::{AlgorithmArg, EncryptArgs, QueryTypeArg};
    use crate::common::{Failure, client, for_each_line, usage};
    use bson::Bson;
    use csfle::KeyRef;
    use csfle::qe::explicit::{QeAlgorithm, QeEncryptOptions, QueryType, RangeOptions};

    /// One Extended JSON value (`0`, `{"$numberLong":"0"}`, `{"$date":…}`),
    /// as a line's values are read: a relaxed integer is an int32 when it
    /// fits. Errors describe the problem without quoting the value.
    fn parse_value(flag: &str, text: &str) -> Result<Bson, Failure> {
        let json: serde_json::Value = serde_json::from_str(text).map_err(|e| {
            usage(format!(
                "{flag}: invalid JSON: {}",
                csfle::ejson::describe_json_error(&e)
            ))
        })?;
        Bson::try_from(json).map_err(|e| {
            usage(format!(
                "{flag}: invalid Extended JSON: {}",
                csfle::ejson::describe_extjson_error(&e)
            ))
        })
    }

    /// The range options the flags give (`None` when no range flag is).
    fn range_options(args: &EncryptArgs) -> Result<Option<RangeOptions>, Failure> {
        if !args.has_range_flags() {
            return Ok(None);
        }
        let mut options = RangeOptions::default();
        if let Some(min) = &args.range_min {
            options = options.with_min(parse_value("--range-min", min)?);
        }
        if let Some(max) = &args.range_max {
            options = options.with_max(parse_value("--range-max", max)?);
        }
        if let Some(sparsity) = args.sparsity {
            options = options.with_sparsity(sparsity);
        }
        if let Some(trim_factor) = args.trim_factor {
            options = options.with_trim_factor(trim_factor);
        }
        if let Some(precision) = args.precision {
            options = options.with_precision(precision);
        }
        Ok(Some(options))
    }

    pub(super) async fn encrypt(args: &EncryptArgs, key: KeyRef) -> Result<(), Failure> {
        let algorithm = match args.algorithm {
            AlgorithmArg::Indexed => QeAlgorithm::Indexed,
            AlgorithmArg::Unindexed => QeAlgorithm::Unindexed,
            AlgorithmArg::Range => QeAlgorithm::Range,
            AlgorithmArg::Deterministic | AlgorithmArg::Random | AlgorithmArg::String => {
                return Err(usage(
                    "--algorithm must be indexed, unindexed or range here",
                ));
            }
        };
        let query_type = args.query_type.map(|q| match q {
            QueryTypeArg::Equality => QueryType::Equality,
            QueryTypeArg::Range => QueryType::Range,
        });
        let range = range_options(args)?;
        // The options as libmongocrypt checks them, in its words, before
        // the key vault is opened or a line read.
        let mut options = QeEncryptOptions::new(algorithm);
        options.contention_factor = args.contention_factor;
        options.query_type = query_type;
        options.range_options = range.as_ref();
        options.validate().map_err(usage)?;
        let expression = query_type == Some(QueryType::Range);
        let contention_factor = args.contention_factor;
        let ce = client(&args.vault).await?;
        let (ce, key, range) = (&ce, &key, &range);
        for_each_line(|mut doc| async move {
            if expression {
                let expr = match doc.get("v") {
                    Some(Bson::Document(d)) => d,
                    Some(_) => {
                        return Err(
                            "field 'v' must be the $and expression of a range query".to_owned()
                        );
                    }
                    None => return Err("missing field 'v'".to_owned()),
                };
                let mut action = ce.encrypt_expression(expr, key);
                if let Some(factor) = contention_factor {
                    action = action.contention_factor(factor);
                }
                if let Some(range) = range {
                    action = action.range_options(range.clone());
                }
                let encrypted = action.await.map_err(|e| e.to_string())?;
                doc.insert("v", encrypted);
            } else {
                let value = doc.get("v").ok_or("missing field 'v'")?;
                let mut action = ce.encrypt(value, key, algorithm);
                if let Some(factor) = contention_factor {
                    action = action.contention_factor(factor);
                }
                if let Some(query_type) = query_type {
                    action = action.query_type(query_type);
                }
                if let Some(range) = range {
                    action = action.range_options(range.clone());
                }
                let ct = action.await.map_err(|e| e.to_string())?;
                doc.insert("v", ct);
            }
            Ok(doc)
        })
        .await
    }
}

/// Without feature `qe`, Queryable Encryption's algorithms are refused.
#[cfg(not(feature = "qe"))]
mod qe {
    use super::EncryptArgs;
    use crate::common::{Failure, usage};
    use csfle::KeyRef;

    pub(super) async fn encrypt(args: &EncryptArgs, _key: KeyRef) -> Result<(), Failure> {
        let _ = args;
        Err(usage(
            "--algorithm indexed, unindexed and range are Queryable Encryption's, and this csfle was built without its feature `qe`",
        ))
    }
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
