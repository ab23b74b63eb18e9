//! What the server's protocol names that several layers read or write: one
//! definition each, below every layer that uses them (the pure `qe` layer,
//! schemas, the client, the command line). Pure: no I/O, no imports.

/// The field of a command that carries Queryable Encryption's configuration
/// to the server (libmongocrypt's `encryptionInformation`: the collection's
/// `encryptedFields`, keys resolved). Automatic encryption adds it; a
/// command carrying it is sent as it is, since the driver's typed
/// operations cannot carry it.
pub const ENCRYPTION_INFORMATION: &str = "encryptionInformation";

/// Whether `ns` is a namespace `db.collection`: both parts non-empty (the
/// collection may contain dots), as query analysis reads namespaces
/// (`analysis::Namespace::parse`). What the keys of a schema map and of an
/// `encryptedFieldsMap` must be.
pub(crate) fn is_namespace(ns: &str) -> bool {
    matches!(ns.split_once('.'), Some((db, coll)) if !db.is_empty() && !coll.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_have_a_database_and_a_collection() {
        for ns in ["app.people", "a.b", "app.people.archive", "a..b"] {
            assert!(is_namespace(ns), "{ns}");
        }
        for ns in ["", "app", "app.", ".people", "."] {
            assert!(!is_namespace(ns), "{ns}");
        }
    }
}
