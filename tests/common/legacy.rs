//! Helpers shared by the two runners of the spec's legacy tests (offline
//! through query analysis, and end to end against the server).

use bson::{Bson, Document, doc};
use std::path::{Path, PathBuf};

/// Files that need a real cloud KMS or temporary credentials.
const SKIP_FILES: [&str; 4] = [
    "azureKMS.json",
    "gcpKMS.json",
    "kmipKMS.json",
    "awsTemporary.json",
];

/// Files that need a server's failpoints (run against the server only).
const FAILPOINT_FILES: [&str; 1] = ["timeoutMS.json"];

/// The legacy test files to run, by name, in order; the skipped ones are
/// added to `skipped` with the reason. `with_server`: the runner has a
/// server with failpoints.
pub fn legacy_files(
    spec: &Path,
    with_server: bool,
    skipped: &mut Vec<String>,
) -> Vec<(String, PathBuf)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(spec.join(super::CSE).join("tests/legacy"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .into_iter()
        .filter_map(|path| {
            let file = path.file_name()?.to_string_lossy().into_owned();
            if SKIP_FILES.contains(&file.as_str()) {
                skipped.push(format!(
                    "{file}: needs a cloud KMS or temporary credentials"
                ));
                return None;
            }
            // Queryable Encryption's tests (encryptedFields, QE payloads):
            // csfle speaks FLE1 only so far; the QE issues take them up.
            if file.starts_with("fle2v2-") {
                skipped.push(format!(
                    "{file}: Queryable Encryption (not implemented yet)"
                ));
                return None;
            }
            if !with_server && FAILPOINT_FILES.contains(&file.as_str()) {
                skipped.push(format!("{file}: needs a server's failpoints"));
                return None;
            }
            Some((file, path))
        })
        .collect()
}

/// The commands a driver sends for a test operation; `Err` is an error the
/// driver itself raises before sending anything.
pub fn commands_for(op: &Document, coll: &str) -> Option<Result<Vec<Document>, csfle::Error>> {
    let name = op.get_str("name").ok()?;
    let on_database = op.get_str("object") == Ok("database");
    let empty = Document::new();
    let args = op.get_document("arguments").unwrap_or(&empty);
    let filter = || Bson::Document(args.get_document("filter").cloned().unwrap_or_default());
    let update_stmt = |multi: bool, u: &Bson| {
        let mut s = doc! {"q": filter(), "u": u.clone()};
        if multi {
            s.insert("multi", true);
        }
        s.insert(
            "upsert",
            args.get("upsert").cloned().unwrap_or(Bson::Boolean(false)),
        );
        if let Some(af) = args.get("arrayFilters") {
            s.insert("arrayFilters", af.clone());
        }
        s
    };
    let cmd = match name {
        "insertOne" => {
            doc! {"insert": coll, "documents": [args.get("document")?.clone()], "ordered": true}
        }
        "insertMany" => {
            doc! {"insert": coll, "documents": args.get("documents")?.clone(), "ordered": true}
        }
        "find" => {
            let mut c = doc! {"find": coll, "filter": filter()};
            for k in ["sort", "limit", "skip", "projection", "batchSize"] {
                if let Some(v) = args.get(k) {
                    c.insert(k, v.clone());
                }
            }
            c
        }
        "count" => doc! {"count": coll, "query": filter()},
        "distinct" => {
            doc! {"distinct": coll, "key": args.get("fieldName")?.clone(), "query": filter()}
        }
        "deleteOne" => {
            doc! {"delete": coll, "deletes": [{"q": filter(), "limit": 1}], "ordered": true}
        }
        "deleteMany" => {
            doc! {"delete": coll, "deletes": [{"q": filter(), "limit": 0}], "ordered": true}
        }
        "updateOne" | "updateMany" => {
            let u = args.get("update")?;
            // Drivers refuse an update document without operators.
            if let Bson::Document(d) = u
                && !d.keys().next().is_some_and(|k| k.starts_with('$'))
            {
                return Some(Err(csfle::Error::Client(
                    csfle::ClientError::InvalidArgument {
                        argument: "update document",
                        reason: "it must contain only atomic modifiers",
                    },
                )));
            }
            doc! {"update": coll, "updates": [update_stmt(name == "updateMany", u)], "ordered": true}
        }
        "replaceOne" => {
            doc! {"update": coll, "updates": [update_stmt(false, args.get("replacement")?)], "ordered": true}
        }
        "findOneAndDelete" => doc! {"findAndModify": coll, "query": filter(), "remove": true},
        "findOneAndReplace" => {
            doc! {"findAndModify": coll, "query": filter(), "update": args.get("replacement")?.clone()}
        }
        "findOneAndUpdate" => {
            doc! {"findAndModify": coll, "query": filter(), "update": args.get("update")?.clone()}
        }
        "aggregate" if on_database => {
            doc! {"aggregate": 1, "pipeline": args.get("pipeline")?.clone(), "cursor": {}}
        }
        "aggregate" => {
            doc! {"aggregate": coll, "pipeline": args.get("pipeline")?.clone(), "cursor": {}}
        }
        "createCollection" => {
            let mut c = doc! {"create": args.get_str("collection").ok()?};
            if let Some(v) = args.get("validator") {
                c.insert("validator", v.clone());
            }
            c
        }
        "runCommand" => args.get_document("command").ok()?.clone(),
        "mapReduce" => doc! {
            "mapReduce": coll,
            "map": args.get("map")?.clone(),
            "reduce": args.get("reduce")?.clone(),
            "out": {"inline": 1},
        },
        "bulkWrite" => {
            // Consecutive requests of one kind become one command, as drivers batch them.
            let mut out: Vec<Document> = Vec::new();
            for r in args.get_array("requests").ok()? {
                let r = r.as_document()?;
                for c in commands_for(r, coll)?.ok()? {
                    let kind = c.keys().next()?.clone();
                    let list = match kind.as_str() {
                        "insert" => "documents",
                        "update" => "updates",
                        "delete" => "deletes",
                        _ => return None,
                    };
                    match out.last_mut() {
                        Some(last) if last.keys().next() == Some(&kind) => {
                            let mut items = last.get_array(list).ok()?.clone();
                            items.extend(c.get_array(list).ok()?.iter().cloned());
                            last.insert(list, items);
                        }
                        _ => out.push(c),
                    }
                }
            }
            return Some(Ok(out));
        }
        _ => return None,
    };
    Some(Ok(vec![cmd]))
}

/// Subset match: every field of `expected` is in `actual`; `{$$type: t}` matches a value of type t.
pub fn matches(expected: &Bson, actual: &Bson) -> bool {
    match (expected, actual) {
        (Bson::Document(e), _) if e.contains_key("$$type") => {
            let types: Vec<&str> = match e.get("$$type") {
                Some(Bson::String(s)) => vec![s.as_str()],
                Some(Bson::Array(a)) => a.iter().filter_map(Bson::as_str).collect(),
                _ => vec![],
            };
            types.contains(&super::bson_type_name(actual.element_type()))
        }
        (Bson::Document(e), Bson::Document(a)) => e
            .iter()
            .all(|(k, v)| a.get(k).is_some_and(|x| matches(v, x))),
        (Bson::Array(e), Bson::Array(a)) => {
            e.len() == a.len() && e.iter().zip(a).all(|(x, y)| matches(x, y))
        }
        (e, a) => e == a,
    }
}
