//! The state one analysis carries through every file of the analysis: the
//! schemas it may look up, its database, the markings it made, what no
//! allow-list knew, and where markings cannot be made.
//!
//! It sits below every other file of `analysis` (they all take a [`Ctx`]),
//! so none of them imports another one above it to reach it.

use super::{Error, Namespace, NamespaceSchema};
use crate::schema::EncryptionSchema;

/// The state of one analysis.
pub(crate) struct Ctx<'a, 's> {
    schemas: &'a dyn Fn(&Namespace) -> NamespaceSchema<'s>,
    /// The command's database.
    pub(crate) db: &'a str,
    /// How many markings were made (each must be in the command sent).
    pub(crate) made: usize,
    /// Fields and stages no allow-list knows: refused at the end if a
    /// namespace with encrypted fields was touched.
    pub(crate) unknown: Vec<String>,
    /// Set where markings cannot be made: the namespace and why.
    pub(crate) no_markings: Option<(Namespace, &'static str)>,
    /// The first namespace with encrypted fields the command touches.
    encrypted: Option<Namespace>,
}

impl<'a, 's> Ctx<'a, 's> {
    /// The state before anything of a command run on `db` is analysed.
    pub(crate) fn new(db: &'a str, schemas: &'a dyn Fn(&Namespace) -> NamespaceSchema<'s>) -> Self {
        Ctx {
            schemas,
            db,
            made: 0,
            unknown: Vec::new(),
            no_markings: None,
            encrypted: None,
        }
    }

    /// The first namespace with encrypted fields the command touched.
    pub(crate) fn encrypted(&self) -> Option<&Namespace> {
        self.encrypted.as_ref()
    }

    /// The schema of `ns`; refuses the command when it cannot be known.
    pub(crate) fn schema(&mut self, ns: &Namespace) -> Result<Option<&'s EncryptionSchema>, Error> {
        match (self.schemas)(ns) {
            NamespaceSchema::Known(s) => {
                if self.encrypted.is_none() && s.is_some_and(|s| s.has_encrypted_fields()) {
                    self.encrypted = Some(ns.clone());
                }
                Ok(s)
            }
            NamespaceSchema::Unknown => Err(Error::SchemaUnavailable(ns.clone())),
        }
    }
}

/// Runs `f` with markings refused: the documents are another collection's,
/// or the pipeline is stored on the server.
pub(crate) fn without_markings<'s, T>(
    cx: &mut Ctx<'_, 's>,
    ns: &Namespace,
    what: &'static str,
    f: impl FnOnce(&mut Ctx<'_, 's>) -> Result<T, Error>,
) -> Result<T, Error> {
    let before = cx.no_markings.replace((ns.clone(), what));
    let r = f(cx);
    cx.no_markings = before;
    r
}
