//! `ClientEncryption::encrypt` and (feature `qe`)
//! `ClientEncryption::encrypt_expression`, and the actions they return, as
//! the `mongodb` crate shapes them: the method returns an action, Queryable
//! Encryption's options are chained on it, and `.await` runs it.

use super::encryption::ClientEncryption;
use crate::ciphertext;
use crate::explicit::EncryptionAlgorithm;
use crate::key::KeyRef;
use crate::{ClientError, Error};
use bson::spec::BinarySubtype;
use bson::{Binary, Bson};
use futures_util::future::BoxFuture;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

#[cfg(feature = "qe")]
use crate::qe::explicit::{QeAlgorithm, QeEncryptOptions, QueryType, RangeOptions};
#[cfg(feature = "qe")]
use bson::Document;

/// Queryable Encryption's options of an action, held until it runs.
#[derive(Debug, Default)]
pub(super) struct QeOptions {
    #[cfg(feature = "qe")]
    contention_factor: Option<i64>,
    #[cfg(feature = "qe")]
    query_type: Option<QueryType>,
    #[cfg(feature = "qe")]
    range_options: Option<RangeOptions>,
}

impl QeOptions {
    /// The options of an encryption with `algorithm`.
    #[cfg(feature = "qe")]
    pub(super) fn for_algorithm(&self, algorithm: QeAlgorithm) -> QeEncryptOptions<'_> {
        QeEncryptOptions {
            algorithm,
            contention_factor: self.contention_factor,
            query_type: self.query_type,
            range_options: self.range_options.as_ref(),
        }
    }

    /// FLE1 takes none of Queryable Encryption's options: one set is
    /// refused with libmongocrypt's error for an option without an index
    /// type ("cannot set contention factor with no index type", …).
    #[cfg(feature = "qe")]
    pub(super) fn refuse_for_fle1(&self) -> Result<(), Error> {
        self.for_algorithm(QeAlgorithm::Unindexed)
            .validate()
            .map_err(crate::explicit::Error::from)?;
        Ok(())
    }

    /// Without feature `qe` there are no options to refuse.
    #[cfg(not(feature = "qe"))]
    pub(super) fn refuse_for_fle1(&self) -> Result<(), Error> {
        Ok(())
    }
}

// The methods that return the actions, and what the actions run: beside
// the actions, so that `encryption.rs` does not name this module.
impl ClientEncryption {
    /// Encrypts `value` with the key `key` names, as the `mongodb` crate's
    /// `ClientEncryption::encrypt`: the returned action runs when awaited
    /// (it is a future) and gives a subtype-6 binary.
    ///
    /// `algorithm` is an FLE1 [`Algorithm`](crate::Algorithm)
    /// (`Deterministic`, `Random`) or an [`EncryptionAlgorithm`]: with
    /// feature `qe`, Queryable Encryption's `Indexed`, `Unindexed` and
    /// `Range`, whose options are chained on the action
    /// ([`contention_factor`](crate::action::Encrypt), `query_type`,
    /// `range_options`) and checked, with libmongocrypt's words, before the
    /// key vault is asked. The value's type is checked first too.
    ///
    /// ```no_run
    /// # async fn run(ce: csfle::ClientEncryption, key: csfle::KeyRef) -> Result<(), csfle::Error> {
    /// use bson::Bson;
    /// use csfle::Algorithm;
    ///
    /// let ssn = ce.encrypt(&Bson::from("457-55-5462"), &key, Algorithm::Deterministic).await?;
    /// # let _ = ssn;
    /// # #[cfg(feature = "qe")]
    /// # {
    /// use bson::doc;
    /// use csfle::EncryptionAlgorithm::{Indexed, Range};
    /// use csfle::qe::explicit::{QueryType, RangeOptions};
    ///
    /// // Queryable Encryption: an indexed insert payload, and a query for it.
    /// let stored = ce.encrypt(&Bson::from("457-55-5462"), &key, Indexed).contention_factor(8).await?;
    /// let query = ce
    ///     .encrypt(&Bson::from("457-55-5462"), &key, Indexed)
    ///     .contention_factor(8)
    ///     .query_type(QueryType::Equality)
    ///     .await?;
    /// // A range index over ages 0 to 200, a value for it and a query over it.
    /// let range = RangeOptions::default().with_min(0).with_max(200).with_sparsity(1);
    /// let age = ce
    ///     .encrypt(&Bson::Int32(42), &key, Range)
    ///     .contention_factor(0)
    ///     .range_options(range.clone())
    ///     .await?;
    /// let filter = ce
    ///     .encrypt_expression(&doc! {"$and": [{"age": {"$gte": 23}}, {"age": {"$lte": 35}}]}, &key)
    ///     .contention_factor(0)
    ///     .range_options(range)
    ///     .await?;
    /// # let _ = (stored, query, age, filter);
    /// # }
    /// # Ok(()) }
    /// ```
    pub fn encrypt<'a>(
        &'a self,
        value: &'a Bson,
        key: &'a KeyRef,
        algorithm: impl Into<EncryptionAlgorithm>,
    ) -> Encrypt<'a> {
        Encrypt::new(self, value, key, algorithm.into())
    }

    /// Encrypts a range query (feature `qe`), as the `mongodb` crate's
    /// `ClientEncryption::encrypt_expression`: `expression` is the `$and`
    /// of one or two bounds on one field, a match expression
    /// (`{$and: [{age: {$gte: 23}}, {age: {$lte: 35}}]}`) or an aggregate
    /// one (`{$and: [{$gte: ["$age", 23]}, {$lte: ["$age", 35]}]}`). The
    /// returned action takes the contention factor and the range options
    /// (both required) and, awaited, gives the expression with its bounds
    /// replaced by find payloads (first byte 13), paired by this process's
    /// next payload id. The algorithm is Range, the query type range.
    #[cfg(feature = "qe")]
    pub fn encrypt_expression<'a>(
        &'a self,
        expression: &'a Document,
        key: &'a KeyRef,
    ) -> EncryptExpression<'a> {
        EncryptExpression::new(self, expression, key)
    }

    /// What an [`encrypt`](Self::encrypt) action runs.
    async fn run_encrypt(
        &self,
        value: &Bson,
        key: &KeyRef,
        algorithm: EncryptionAlgorithm,
        options: QeOptions,
    ) -> Result<Binary, Error> {
        let raw = crate::explicit::to_raw(value)?;
        let bytes = match algorithm {
            EncryptionAlgorithm::Deterministic | EncryptionAlgorithm::Random => {
                let fle1 = algorithm
                    .fle1()
                    .ok_or(Error::Client(ClientError::InvalidArgument {
                        argument: "algorithm",
                        reason: "not an FLE1 algorithm",
                    }))?;
                options.refuse_for_fle1()?;
                // Refuse a disallowed type before any key-vault round trip.
                ciphertext::check_encryptable(raw.as_raw_bson_ref(), fle1)?;
                let data_key = self.data_keys(std::slice::from_ref(key)).await?.remove(0);
                crate::explicit::encrypt_with_key(&data_key, raw.as_raw_bson_ref(), fle1)?
            }
            #[cfg(feature = "qe")]
            EncryptionAlgorithm::Indexed
            | EncryptionAlgorithm::Unindexed
            | EncryptionAlgorithm::Range => {
                let qe = algorithm
                    .qe()
                    .ok_or(Error::Client(ClientError::InvalidArgument {
                        argument: "algorithm",
                        reason: "not a Queryable Encryption algorithm",
                    }))?;
                let options = options.for_algorithm(qe);
                // Refuse wrong options before any key-vault round trip.
                crate::explicit::check_qe_value_options(&options)?;
                let data_key = self.data_keys(std::slice::from_ref(key)).await?.remove(0);
                crate::explicit::encrypt_qe_with_key(&data_key, raw.as_raw_bson_ref(), &options)?
            }
        };
        Ok(Binary {
            subtype: BinarySubtype::Encrypted,
            bytes,
        })
    }

    /// What an [`encrypt_expression`](Self::encrypt_expression) action
    /// runs.
    #[cfg(feature = "qe")]
    async fn run_encrypt_expression(
        &self,
        expression: &Document,
        key: &KeyRef,
        options: QeOptions,
    ) -> Result<Document, Error> {
        let mut options = options.for_algorithm(crate::qe::explicit::QeAlgorithm::Range);
        if options.query_type.is_none() {
            options.query_type = Some(crate::qe::explicit::QueryType::Range);
        }
        // Refuse wrong options before any key-vault round trip.
        options.validate()?;
        let raw = bson::RawDocumentBuf::from_document(expression)?;
        let data_key = self.data_keys(std::slice::from_ref(key)).await?.remove(0);
        let encrypted = crate::explicit::encrypt_qe_expression_with_key(&data_key, &raw, &options)?;
        Ok(encrypted.to_document()?)
    }
}

/// Encrypts one value: what [`ClientEncryption::encrypt`] returns.
/// `.await` runs it (it is a future) and gives the subtype-6 binary;
/// before that, Queryable Encryption's options (feature `qe`) can be
/// chained on it. They are checked before the key vault is asked, with
/// libmongocrypt's words; FLE1 algorithms take none of them.
#[must_use = "an action does nothing until it is awaited"]
pub struct Encrypt<'a> {
    client: &'a ClientEncryption,
    value: &'a Bson,
    key: &'a KeyRef,
    algorithm: EncryptionAlgorithm,
    options: QeOptions,
    running: Option<BoxFuture<'a, Result<Binary, Error>>>,
}

impl<'a> Encrypt<'a> {
    pub(super) fn new(
        client: &'a ClientEncryption,
        value: &'a Bson,
        key: &'a KeyRef,
        algorithm: EncryptionAlgorithm,
    ) -> Self {
        Encrypt {
            client,
            value,
            key,
            algorithm,
            options: QeOptions::default(),
            running: None,
        }
    }

    /// The maximum contention factor (Indexed and Range: required; not
    /// for Unindexed). An insert picks one of `factor + 1` token chains at
    /// random; a query must search them all.
    #[cfg(feature = "qe")]
    pub fn contention_factor(mut self, factor: i64) -> Self {
        self.options.contention_factor = Some(factor);
        self
    }

    /// Encrypts a query instead of a value to store: with
    /// [`QueryType::Equality`] and Indexed, an equality find payload (a
    /// range query encrypts an expression:
    /// [`ClientEncryption::encrypt_expression`]).
    #[cfg(feature = "qe")]
    pub fn query_type(mut self, query_type: QueryType) -> Self {
        self.options.query_type = Some(query_type);
        self
    }

    /// The range index's options (Range only; required there). They must
    /// be those of the collection's `encryptedFields`.
    #[cfg(feature = "qe")]
    pub fn range_options(mut self, options: RangeOptions) -> Self {
        self.options.range_options = Some(options);
        self
    }
}

impl std::fmt::Debug for Encrypt<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the value: it is a plaintext.
        f.debug_struct("Encrypt")
            .field("key", self.key)
            .field("algorithm", &self.algorithm)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl<'a> Future for Encrypt<'a> {
    type Output = Result<Binary, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<Binary, Error>> {
        // Started at the first poll, with the options chained until then.
        let Encrypt {
            client,
            value,
            key,
            algorithm,
            options,
            running,
        } = &mut *self;
        let running = running.get_or_insert_with(|| -> BoxFuture<'a, Result<Binary, Error>> {
            let (client, value, key, algorithm) = (*client, *value, *key, *algorithm);
            let options = std::mem::take(options);
            Box::pin(async move { client.run_encrypt(value, key, algorithm, options).await })
        });
        running.as_mut().poll(cx)
    }
}

/// Encrypts a range query's expression (feature `qe`): what
/// [`ClientEncryption::encrypt_expression`] returns. `.await` runs it
/// and gives the expression with its bounds replaced by find payloads;
/// the contention factor and the range options must be chained on it
/// first (the query type is range, the only one allowed).
#[cfg(feature = "qe")]
#[must_use = "an action does nothing until it is awaited"]
pub struct EncryptExpression<'a> {
    client: &'a ClientEncryption,
    expression: &'a Document,
    key: &'a KeyRef,
    options: QeOptions,
    running: Option<BoxFuture<'a, Result<Document, Error>>>,
}

#[cfg(feature = "qe")]
impl<'a> EncryptExpression<'a> {
    pub(super) fn new(
        client: &'a ClientEncryption,
        expression: &'a Document,
        key: &'a KeyRef,
    ) -> Self {
        EncryptExpression {
            client,
            expression,
            key,
            options: QeOptions::default(),
            running: None,
        }
    }

    /// The maximum contention factor (required).
    pub fn contention_factor(mut self, factor: i64) -> Self {
        self.options.contention_factor = Some(factor);
        self
    }

    /// The query type: range, the default and the only one an expression
    /// takes (another is refused with libmongocrypt's words).
    pub fn query_type(mut self, query_type: QueryType) -> Self {
        self.options.query_type = Some(query_type);
        self
    }

    /// The range index's options (required).
    pub fn range_options(mut self, options: RangeOptions) -> Self {
        self.options.range_options = Some(options);
        self
    }
}

#[cfg(feature = "qe")]
impl std::fmt::Debug for EncryptExpression<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the expression: its bounds are plaintexts.
        f.debug_struct("EncryptExpression")
            .field("key", self.key)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "qe")]
impl<'a> Future for EncryptExpression<'a> {
    type Output = Result<Document, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<Document, Error>> {
        let EncryptExpression {
            client,
            expression,
            key,
            options,
            running,
        } = &mut *self;
        let running = running.get_or_insert_with(|| -> BoxFuture<'a, Result<Document, Error>> {
            let (client, expression, key) = (*client, *expression, *key);
            let options = std::mem::take(options);
            Box::pin(async move {
                client
                    .run_encrypt_expression(expression, key, options)
                    .await
            })
        });
        running.as_mut().poll(cx)
    }
}
