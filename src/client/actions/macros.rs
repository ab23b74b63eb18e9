//! The macros the actions are written with: running a driver action in a
//! session, opening a cursor's batches, the chained options (and the
//! conversions they call, the same for every action), `.session()` and the
//! concerns, and `IntoFuture`. The names a macro uses resolve where it is
//! used (the actions' modules import them); `actions/mod.rs` declares this
//! module first, `#[macro_use]`, so the macros are in scope in the rest.

use bson::Bson;
use mongodb::options::{Collation, Hint};
use std::time::Duration;

/// Runs a driver action with the session, if there is one: the action
/// builder changes type with `.session()`, so the two arms are spelled out.
macro_rules! with_session {
    ($session:expr, $action:expr) => {
        match $session {
            None => $action.await?,
            Some(s) => $action.session(&mut **s).await?,
        }
    };
}

/// Opens a driver cursor as raw batches, in the session if there is one.
macro_rules! open_batches {
    ($session:expr, $action:expr) => {
        match $session {
            None => Batches::Implicit($action.batch().await?),
            Some(s) => {
                let cursor = $action.session(&mut *s).batch().await?;
                Batches::Session(cursor, s)
            }
        }
    };
}

/// One chained option, applied through the action's `$set` method: `set`
/// for a top-level command field, `set_stmt` for a field of the write
/// statement.
macro_rules! setter {
    ($set:ident, sort) => {
        /// The order of the documents (for find-and-modify: which one is first).
        pub fn sort(self, sort: Document) -> Self {
            self.$set("sort", sort)
        }
    };
    ($set:ident, projection) => {
        /// Which fields to return.
        pub fn projection(self, projection: Document) -> Self {
            self.$set("projection", projection)
        }
    };
    ($set:ident, limit) => {
        /// The most documents to return.
        pub fn limit(self, limit: i64) -> Self {
            self.$set("limit", limit)
        }
    };
    ($set:ident, skip) => {
        /// Documents to skip first.
        pub fn skip(self, skip: u64) -> Self {
            self.$set("skip", i64::try_from(skip).unwrap_or(i64::MAX))
        }
    };
    ($set:ident, hint) => {
        /// The index to use.
        pub fn hint(self, hint: Hint) -> Self {
            self.$set("hint", hint_value(hint))
        }
    };
    ($set:ident, collation) => {
        /// The collation for string comparisons.
        pub fn collation(self, collation: Collation) -> Self {
            self.$set("collation", collation_value(collation))
        }
    };
    ($set:ident, comment) => {
        /// A comment the server logs and profiles with the command.
        pub fn comment(self, comment: impl Into<Bson>) -> Self {
            self.$set("comment", comment.into())
        }
    };
    ($set:ident, max_time) => {
        /// How long the server may work on the command (`maxTimeMS`).
        pub fn max_time(self, max_time: Duration) -> Self {
            self.$set("maxTimeMS", millis(max_time))
        }
    };
    ($set:ident, let_vars) => {
        /// Variables for the command's expressions (`let`).
        pub fn let_vars(self, vars: Document) -> Self {
            self.$set("let", vars)
        }
    };
    ($set:ident, min) => {
        /// The inclusive lower bound of the index the query uses.
        pub fn min(self, min: Document) -> Self {
            self.$set("min", min)
        }
    };
    ($set:ident, max) => {
        /// The exclusive upper bound of the index the query uses.
        pub fn max(self, max: Document) -> Self {
            self.$set("max", max)
        }
    };
    ($set:ident, allow_disk_use) => {
        /// Whether the server may spill to disk.
        pub fn allow_disk_use(self, allow: bool) -> Self {
            self.$set("allowDiskUse", allow)
        }
    };
    ($set:ident, bypass_document_validation) => {
        /// Skip the collection's document validation.
        pub fn bypass_document_validation(self, bypass: bool) -> Self {
            self.$set("bypassDocumentValidation", bypass)
        }
    };
    ($set:ident, upsert) => {
        /// Insert a document when none matches.
        pub fn upsert(self, upsert: bool) -> Self {
            self.$set("upsert", upsert)
        }
    };
    ($set:ident, array_filters) => {
        /// Which array elements the update's `$[<id>]` operators change.
        pub fn array_filters(self, filters: impl IntoIterator<Item = Document>) -> Self {
            let filters: Vec<Document> = filters.into_iter().collect();
            self.$set("arrayFilters", filters)
        }
    };
    ($set:ident, ordered) => {
        /// Whether the server stops at the first failing document.
        pub fn ordered(self, ordered: bool) -> Self {
            self.$set("ordered", ordered)
        }
    };
    ($set:ident, return_document) => {
        /// Return the document as it was before the change or after it.
        pub fn return_document(self, which: ReturnDocument) -> Self {
            self.$set("new", matches!(which, ReturnDocument::After))
        }
    };
}

macro_rules! setters {
    ($action:ident via $set:ident: $($name:ident),* $(,)?) => {
        impl<T> $action<'_, T> {
            $(setter!($set, $name);)*
        }
    };
}

/// `set` for actions that build their command in `cmd`.
macro_rules! command_fields {
    ($($action:ident),*) => {
        $(impl<T> $action<'_, T> {
            fn set(mut self, key: &str, value: impl Into<Bson>) -> Self {
                self.cmd.insert(key, value.into());
                self
            }
        })*
    };
}

/// `set_stmt` for write actions: a field of the one write statement, which
/// may already hold an error (kept until the action is awaited).
macro_rules! statement_fields {
    ($($action:ident),*) => {
        $(impl<T> $action<'_, T> {
            fn set_stmt(mut self, key: &str, value: impl Into<Bson>) -> Self {
                if let Ok(s) = &mut self.stmt {
                    s.insert(key, value.into());
                }
                self
            }
        })*
    };
}

/// `.session()` on every action, and the concerns and read preference
/// where the operation reads or writes.
macro_rules! exec_setters {
    (session: $($action:ident),*) => {$(
        impl<'a, T> $action<'a, T> {
            /// Runs the operation in this session (and in its transaction,
            /// when one is started). Key-vault reads and schema lookups stay
            /// outside it, as in libmongocrypt.
            pub fn session(mut self, session: &'a mut ClientSession) -> Self {
                self.exec.session = Some(session);
                self
            }
        }
    )*};
    (reads: $($action:ident),*) => {$(
        impl<T> $action<'_, T> {
            /// The read concern of this operation (else the collection's).
            pub fn read_concern(mut self, concern: ReadConcern) -> Self {
                self.exec.read_concern = Some(concern);
                self
            }

            /// The read preference of this operation (else the collection's).
            pub fn selection_criteria(mut self, criteria: impl Into<SelectionCriteria>) -> Self {
                self.exec.selection_criteria = Some(criteria.into());
                self
            }
        }
    )*};
    (writes: $($action:ident),*) => {$(
        impl<T> $action<'_, T> {
            /// The write concern of this operation (else the collection's).
            pub fn write_concern(mut self, concern: WriteConcern) -> Self {
                self.exec.write_concern = Some(concern);
                self
            }
        }
    )*};
}

/// Awaiting an action runs it: one `IntoFuture` per action, all alike.
macro_rules! into_future {
    ($($action:ident => $output:ty),* $(,)?) => {$(
        impl<'a, T> IntoFuture for $action<'a, T>
        where
            T: Serialize + DeserializeOwned + Send + 'static,
        {
            type Output = $output;
            type IntoFuture = BoxFuture<'a, Self::Output>;

            fn into_future(self) -> Self::IntoFuture {
                // The whole operation (schema lookup, keys, KMS, the
                // command) within the client's timeout, if it has one.
                let timeout = self.coll.auto().options().timeout;
                Box::pin(async move {
                    match timeout {
                        None => self.run().await,
                        Some(after) => tokio::time::timeout(after, self.run())
                            .await
                            .unwrap_or(Err(crate::Error::Client(
                                crate::ClientError::Timeout { after },
                            ))),
                    }
                })
            }
        }
    )*};
}

/// The command field of a `hint` option.
pub(super) fn hint_value(hint: Hint) -> Bson {
    match hint {
        Hint::Keys(keys) => Bson::Document(keys),
        Hint::Name(name) => Bson::String(name),
        // `Hint` is non-exhaustive; a future variant has no known encoding.
        _ => Bson::Null,
    }
}

/// The command field of a `collation` option.
pub(super) fn collation_value(collation: Collation) -> Bson {
    bson::to_bson(&collation).unwrap_or(Bson::Null)
}

/// A duration as the command's milliseconds (`maxTimeMS`), saturated.
pub(super) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
