//! Entry points for the fuzz targets in `fuzz/` and the corpus replay test.
//! Not part of the API. Each function must return normally for any input.

use crate::ciphertext::Fle1Blob;
use crate::explicit::ExplicitEncrypter;
use crate::key::KeyId;
use crate::key::KeyRef;
use crate::keyvault::{KeyDocument, KeyRing};
use crate::kms::{KmsProviders, LocalMasterKey, ProviderKind, ProviderName};

/// A fixed key ring: one local key, id 16 × 0x11, key material 96 × 0x22,
/// master key 96 × 0x33, so fuzzers can reach the MAC and padding checks.
pub fn fixed_encrypter() -> ExplicitEncrypter<KeyRing> {
    let local = ProviderName::of_kind(ProviderKind::Local);
    let kms = KmsProviders::new().with_local(
        local.clone(),
        LocalMasterKey::new(&[0x33; 96]).expect("96 bytes"),
    );
    let mut key = crate::create_data_key(&kms, &local, vec!["fuzz".into()], Some(&[0x22; 96]))
        .expect("local wrap cannot fail");
    key.id = KeyId::from_bytes([0x11; 16]);
    ExplicitEncrypter::new(KeyRing::new([key], kms).expect("one key"))
}

/// Parses `data` as a blob and decrypts it, then decrypts `data` as a BSON
/// document both ways; a successful decryption must re-encrypt (det) to the
/// same bytes.
pub fn blob_parse_and_decrypt(enc: &ExplicitEncrypter<KeyRing>, data: &[u8]) {
    if let Ok(blob) = Fle1Blob::parse(data) {
        let _ = blob.to_bytes();
        let binary = bson::Binary {
            subtype: bson::spec::BinarySubtype::Encrypted,
            bytes: data.to_vec(),
        };
        if let Ok(value) = enc.decrypt(&binary)
            && blob.subtype == crate::ciphertext::BlobSubtype::Deterministic
        {
            let again = enc
                .encrypt(
                    &value,
                    &KeyRef::Id(blob.key_id),
                    crate::Algorithm::Deterministic,
                )
                .expect("a decrypted deterministic value re-encrypts");
            assert_eq!(again.bytes, data, "deterministic re-encryption differs");
        }
    }
    if let Ok(doc) = bson::RawDocument::from_bytes(data) {
        let _ = enc.decrypt_raw_document(doc);
        if let Ok(d) = bson::Document::from_reader(data) {
            let _ = enc.decrypt_document(&d);
        }
    }
}

/// Parses key-vault text and every key document in it.
pub fn key_documents(text: &str) {
    if let Ok((docs, _)) = crate::keyvault::parse_key_documents(text) {
        for d in docs {
            if let Ok(k) = KeyDocument::from_document(&d) {
                let again = KeyDocument::from_document(&k.to_document()).expect("round trip");
                assert_eq!(again, k);
            }
        }
    }
}

/// Parses BSON bytes as a key document.
pub fn key_document_bson(data: &[u8]) {
    if let Ok(d) = bson::Document::from_reader(data) {
        let _ = KeyDocument::from_document(&d);
    }
}

/// Parses one CLI input line; a parsed line must print and re-parse to the
/// same document.
pub fn ejson_line(line: &str) {
    if let Ok(doc) = crate::ejson::parse_document(line) {
        let printed = crate::ejson::to_canonical_line(&doc);
        let again = crate::ejson::parse_document(&printed).expect("canonical output re-parses");
        assert_eq!(
            crate::ejson::to_canonical_line(&again),
            printed,
            "canonical form is stable"
        );
    }
}

/// The schema the rewrite fuzz target analyzes against: a deterministic
/// `ssn`, a random `notes`, and a nested random `med.record`.
pub fn rewrite_schema() -> crate::schema::EncryptionSchema {
    let key = bson::Bson::Array(vec![bson::Bson::Binary(
        KeyId::from_bytes([0x11; 16]).to_binary(),
    )]);
    crate::schema::EncryptionSchema::parse(
        &bson::doc! {
            "bsonType": "object",
            "properties": {
                "ssn": {"encrypt": {"keyId": key.clone(), "bsonType": "string", "algorithm": "AEAD_AES_256_CBC_HMAC_SHA_512-Deterministic"}},
                "notes": {"encrypt": {"keyId": key.clone(), "algorithm": "AEAD_AES_256_CBC_HMAC_SHA_512-Random"}},
                "med": {"bsonType": "object", "properties": {"record": {"encrypt": {"keyId": key, "algorithm": "AEAD_AES_256_CBC_HMAC_SHA_512-Random"}}}},
            },
        },
        crate::schema::SchemaSource::Local,
    )
    .expect("valid schema")
}

fn is_ciphertext(v: &bson::Bson) -> bool {
    matches!(v, bson::Bson::Binary(b) if b.subtype == bson::spec::BinarySubtype::Encrypted && matches!(b.bytes.first(), Some(1 | 2)))
}

/// Checks that no encrypted path of `doc` holds plaintext.
fn assert_no_plaintext(doc: &bson::Document) {
    for path in ["ssn", "notes"] {
        if let Some(v) = doc.get(path) {
            assert!(
                is_ciphertext(v),
                "plaintext left in encrypted field {path}: {v:?}"
            );
        }
    }
    if let Some(bson::Bson::Document(med)) = doc.get("med")
        && let Some(v) = med.get("record")
    {
        assert!(
            is_ciphertext(v),
            "plaintext left in encrypted field med.record"
        );
    }
}

/// Checks that a filter compares the deterministic field only to ciphertexts.
fn assert_filter_encrypted(filter: &bson::Document) {
    for (k, v) in filter {
        match (k.as_str(), v) {
            ("$and" | "$or" | "$nor", bson::Bson::Array(items)) => {
                for i in items {
                    if let bson::Bson::Document(d) = i {
                        assert_filter_encrypted(d);
                    }
                }
            }
            ("ssn", bson::Bson::Document(ops)) => {
                for (op, arg) in ops {
                    match (op.as_str(), arg) {
                        ("$exists", _) => {}
                        ("$in" | "$nin", bson::Bson::Array(a)) => {
                            assert!(a.iter().all(is_ciphertext), "plaintext in {op}")
                        }
                        ("$not", bson::Bson::Document(d)) => {
                            assert_filter_encrypted(&bson::doc! {"ssn": d.clone()})
                        }
                        (_, v) => assert!(is_ciphertext(v), "plaintext compared to ssn with {op}"),
                    }
                }
            }
            ("ssn", v) => assert!(is_ciphertext(v), "plaintext compared to ssn"),
            _ => {}
        }
    }
}

/// Analyzes `data` as a command. Input starting with `G` drives a
/// generator of commands that put secrets where the schema encrypts (see
/// [`rewrite_generated`]), input starting with `Q` one of commands on
/// Queryable Encryption collections (see `rewrite_queryable`, feature
/// `qe`); anything else is read as a BSON command and
/// analyzed against [`rewrite_schema`] for every namespace: it must never
/// panic, and what analysis accepts must leave no encrypted field in
/// plaintext.
pub fn rewrite_command(
    enc: &ExplicitEncrypter<KeyRing>,
    schema: &crate::schema::EncryptionSchema,
    data: &[u8],
) {
    if let Some(rest) = data.strip_prefix(b"G") {
        let _sent = rewrite_generated(enc, schema, rest);
        return;
    }
    #[cfg(feature = "qe")]
    if let Some(rest) = data.strip_prefix(b"Q") {
        let _sent = rewrite_queryable(enc, schema, rest);
        return;
    }
    let Ok(cmd) = bson::Document::from_reader(data) else {
        return;
    };
    let Ok(analysis) = crate::analysis::analyze(&cmd, "db", &|_| {
        crate::analysis::NamespaceSchema::Known(Some(schema))
    }) else {
        return;
    };
    let sent = match analysis {
        crate::analysis::Analysis::Unchanged => cmd,
        crate::analysis::Analysis::Marked(m) => {
            match crate::analysis::encrypt_markings(&m, enc.keys()) {
                Ok(c) => c,
                Err(_) => return,
            }
        }
    };
    assert_no_marking(&sent);
    let name = sent.keys().next().cloned().unwrap_or_default();
    match name.as_str() {
        "insert" => {
            if let Ok(docs) = sent.get_array("documents") {
                for d in docs.iter().filter_map(bson::Bson::as_document) {
                    assert_no_plaintext(d);
                }
            }
        }
        "find" => {
            if let Ok(f) = sent.get_document("filter") {
                assert_filter_encrypted(f);
            }
        }
        "count" => {
            if let Ok(f) = sent.get_document("query") {
                assert_filter_encrypted(f);
            }
        }
        _ => {}
    }
}

/// No marking may be sent: only ciphertexts.
fn assert_no_marking(sent: &bson::Document) {
    for v in sent.values() {
        let _ = crate::nesting::visit(v, &mut |v| {
            if let bson::Bson::Binary(b) = v {
                assert!(
                    !(b.subtype == bson::spec::BinarySubtype::Encrypted
                        && b.bytes.first() == Some(&0)),
                    "a marking would be sent"
                );
            }
            Ok::<(), crate::nesting::TooDeep>(())
        });
    }
}

/// The marker every generated secret starts with; it must never appear in
/// a command that would be sent.
const SECRET_MARK: &str = "s3cr3t:";

/// Neither a marking nor a generated secret may be in `sent`; `input`
/// (what it was made from) is shown when one is.
fn assert_sent_clean(sent: &bson::Document, input: std::fmt::Arguments<'_>) {
    assert_no_marking(sent);
    let mut bytes = Vec::new();
    sent.to_writer(&mut bytes).expect("a command serializes");
    assert!(
        !bytes
            .windows(SECRET_MARK.len())
            .any(|w| w == SECRET_MARK.as_bytes()),
        "a plaintext of an encrypted field would be sent:\n {input}\n sent: {sent}"
    );
}

/// Choices read from fuzz input (zeros once it runs out).
struct Choices<'a> {
    data: &'a [u8],
    pos: usize,
    secrets: u32,
}

impl Choices<'_> {
    fn byte(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }
    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[usize::from(self.byte()) % items.len()].clone()
    }
    fn below(&mut self, n: u8) -> u8 {
        self.byte() % n
    }
    fn secret(&mut self) -> bson::Bson {
        self.secrets += 1;
        bson::Bson::String(format!("{SECRET_MARK}{}", self.secrets))
    }
}

/// A namespace of the generated commands: `app.people` and
/// `other.people2` encrypt `ssn` (det), `notes` and `med.record` (random),
/// as [`rewrite_schema`]; `app.plain` and `app.events` encrypt nothing.
#[derive(Clone, Copy, PartialEq)]
enum GenNs {
    People,
    People2,
    Plain,
    Events,
}

impl GenNs {
    fn encrypted(self) -> bool {
        matches!(self, GenNs::People | GenNs::People2)
    }
    /// As a `from` / `coll` / `into` value, from database `app`.
    fn reference(self) -> bson::Bson {
        match self {
            GenNs::People => "people".into(),
            GenNs::People2 => bson::Bson::Document(bson::doc! {"db": "other", "coll": "people2"}),
            GenNs::Plain => "plain".into(),
            GenNs::Events => "events".into(),
        }
    }
}

const ALL_NS: [GenNs; 4] = [GenNs::People, GenNs::People2, GenNs::Plain, GenNs::Events];
const ENCRYPTED_FIELDS: [&str; 3] = ["ssn", "notes", "med.record"];

/// A predicate that puts a secret against `field` (encrypted where the
/// documents come from an encrypted namespace).
fn secret_predicate(c: &mut Choices<'_>, field: &str, depth: u8) -> bson::Document {
    use bson::doc;
    let s = c.secret();
    match c.below(if depth > 2 { 10 } else { 13 }) {
        0 => doc! {field: s},
        1 => doc! {field: {"$eq": s}},
        2 => doc! {field: {"$in": [s, "plain-value"]}},
        3 => doc! {field: {"$ne": s}},
        4 => doc! {field: {"$gt": s}},
        5 => doc! {field: {"$not": {"$eq": s}}},
        6 => doc! {"$expr": {"$eq": [format!("${field}"), s]}},
        7 => doc! {"$expr": {"$in": [format!("${field}"), [s]]}},
        8 => doc! {"$where": format!("this.{field} == '{}'", s.as_str().unwrap_or_default())},
        9 => doc! {field: {"$nin": [s]}},
        10 => doc! {"$or": [secret_predicate(c, field, depth + 1), {"name": "x"}]},
        11 => doc! {"$and": [{"name": "x"}, secret_predicate(c, field, depth + 1)]},
        _ => doc! {"$nor": [secret_predicate(c, field, depth + 1)]},
    }
}

/// An expression that computes with `field` and a secret.
fn secret_expression(c: &mut Choices<'_>, field: &str) -> bson::Bson {
    use bson::doc;
    let s = c.secret();
    let path = format!("${field}");
    bson::Bson::Document(match c.below(9) {
        0 => doc! {"$eq": [path, s]},
        1 => doc! {"$concat": [path, s]},
        2 => doc! {"$cond": [{"$eq": [path, s]}, 1, 0]},
        3 => doc! {"$eq": [format!("$$ROOT.{field}"), s]},
        4 => doc! {"$eq": [{"$getField": field}, s]},
        5 => doc! {"$let": {"vars": {"x": path}, "in": {"$eq": ["$$x", s]}}},
        6 => doc! {"$function": {"body": s, "args": [path], "lang": "js"}},
        7 => doc! {"$eq": ["$$ROOT", {field: s}]},
        _ => doc! {"$in": [s, {"$ifNull": [path, []]}]},
    })
}

fn encrypted_field(c: &mut Choices<'_>) -> &'static str {
    c.pick(&ENCRYPTED_FIELDS)
}

/// A stage over documents of `ns` (or, with `joined`, that also hold
/// another collection's documents under `p`); `depth` bounds nesting.
fn stage(c: &mut Choices<'_>, ns: GenNs, joined: bool, depth: u8) -> bson::Document {
    use bson::doc;
    let foreign = c.pick(&ALL_NS);
    let f = encrypted_field(c);
    let choice = c.below(if depth > 1 { 9 } else { 13 });
    match choice {
        // On the documents themselves: only meaningful where they are encrypted.
        0 | 1 if ns.encrypted() => doc! {"$match": secret_predicate(c, f, 0)},
        2 if ns.encrypted() => doc! {"$project": {"m": secret_expression(c, f)}},
        3 if ns.encrypted() => doc! {"$addFields": {f: c.secret()}},
        4 if ns.encrypted() => doc! {"$set": {"m": secret_expression(c, f)}},
        5 if joined => doc! {"$match": secret_predicate(c, &format!("p.{f}"), 0)},
        6 if joined => doc! {"$project": {"m": secret_expression(c, &format!("p.{f}"))}},
        7 => {
            doc! {"$lookup": {"from": foreign.reference(), "localField": "name", "foreignField": if foreign.encrypted() { f } else { "name" }, "as": "q"}}
        }
        8 => doc! {"$sort": {"name": 1}},
        9 | 10 if foreign.encrypted() => {
            let sub = pipeline(c, foreign, false, depth + 1);
            if choice == 9 {
                doc! {"$lookup": {"from": foreign.reference(), "pipeline": sub, "as": "x"}}
            } else {
                doc! {"$unionWith": {"coll": foreign.reference(), "pipeline": sub}}
            }
        }
        11 => doc! {"$facet": {"a": pipeline(c, ns, joined, depth + 1)}},
        12 if foreign.encrypted() => {
            doc! {"$graphLookup": {"from": foreign.reference(), "startWith": "$name", "connectFromField": "name", "connectToField": "name", "as": "g", "restrictSearchWithMatch": secret_predicate(c, f, 0)}}
        }
        _ => doc! {"$limit": 5},
    }
}

fn pipeline(c: &mut Choices<'_>, ns: GenNs, joined: bool, depth: u8) -> Vec<bson::Document> {
    let mut out = Vec::new();
    let mut joined = joined;
    for _ in 0..1 + c.below(3) {
        if c.below(4) == 0 {
            let foreign = c.pick(&[GenNs::People, GenNs::People2]);
            out.push(bson::doc! {"$lookup": {"from": foreign.reference(), "localField": "name", "foreignField": "name", "as": "p"}});
            joined = true;
        }
        out.push(stage(c, ns, joined, depth));
    }
    out
}

/// `value` at the dotted `path` (`med.record` → `{med: {record: value}}`).
fn at_path(path: &str, value: bson::Bson) -> bson::Document {
    let mut parts = path.rsplit('.');
    let mut d = bson::doc! {parts.next().unwrap_or(path): value};
    for p in parts {
        d = bson::doc! {p: d};
    }
    d
}

/// A `$jsonSchema` whose node for the dotted `path` is `node`.
fn schema_at(path: &str, node: bson::Document) -> bson::Document {
    let mut parts = path.rsplit('.');
    let mut d = bson::doc! {"properties": {parts.next().unwrap_or(path): node}};
    for p in parts {
        d = bson::doc! {"properties": {p: {"bsonType": "object", "properties": d.get("properties").cloned().unwrap_or(bson::Bson::Null)}}};
    }
    d
}

/// `$documents` sub-pipelines (`$lookup` without `from`, `$unionWith`
/// without `coll`), `$merge.whenMatched`, and sub-pipelines of a plain
/// collection that bring in an encrypted one: secrets compared with `f` of
/// the collection they read (inside or after the sub-pipeline), or
/// literals put on `f` and met by an encrypted collection later.
fn documents_sub_pipeline(c: &mut Choices<'_>, enc_ns: GenNs, f: &str) -> bson::Document {
    use bson::doc;
    let seed = doc! {"$documents": [{"a": 1}]};
    match c.below(9) {
        0 => {
            doc! {"aggregate": "plain", "pipeline": [{"$lookup": {"pipeline": [seed, {"$unionWith": enc_ns.reference()}, {"$match": secret_predicate(c, f, 0)}], "as": "x"}}], "cursor": {}}
        }
        1 => {
            doc! {"aggregate": "plain", "pipeline": [{"$unionWith": {"pipeline": [seed, {"$unionWith": enc_ns.reference()}]}}, {"$match": secret_predicate(c, f, 0)}], "cursor": {}}
        }
        2 => {
            let literal = at_path(f, c.secret());
            doc! {"aggregate": "plain", "pipeline": [{"$lookup": {"pipeline": [{"$documents": [literal]}, {"$unionWith": enc_ns.reference()}], "as": "x"}}], "cursor": {}}
        }
        3 => {
            let literal = at_path(f, c.secret());
            doc! {"aggregate": "people", "pipeline": [{"$unionWith": {"pipeline": [{"$documents": [literal]}]}}], "cursor": {}}
        }
        5 => {
            doc! {"aggregate": "plain", "pipeline": [{"$unionWith": {"coll": "plain", "pipeline": [{"$unionWith": enc_ns.reference()}]}}, {"$match": secret_predicate(c, f, 0)}], "cursor": {}}
        }
        6 => {
            let joined = format!("x.{f}");
            doc! {"aggregate": "plain", "pipeline": [{"$lookup": {"from": "plain", "pipeline": [{"$unionWith": enc_ns.reference()}], "as": "x"}}, {"$match": secret_predicate(c, &joined, 0)}], "cursor": {}}
        }
        7 => {
            let joined = format!("a.p.{f}");
            doc! {"aggregate": "plain", "pipeline": [{"$facet": {"a": [{"$lookup": {"from": enc_ns.reference(), "localField": "name", "foreignField": "name", "as": "p"}}]}}, {"$unwind": "$a"}, {"$match": secret_predicate(c, &joined, 0)}], "cursor": {}}
        }
        8 => {
            let literal = at_path(f, c.secret());
            doc! {"aggregate": "plain", "pipeline": [{"$unionWith": {"pipeline": [{"$documents": [literal]}]}}, {"$unionWith": enc_ns.reference()}], "cursor": {}}
        }
        _ => {
            doc! {"aggregate": "plain", "pipeline": [{"$merge": {"into": "plain2", "whenMatched": [{"$unionWith": enc_ns.reference()}, {"$match": secret_predicate(c, f, 0)}]}}], "cursor": {}}
        }
    }
}

/// Projection operator arguments (`$slice`, `$elemMatch`) and operators
/// under plain paths that hide an expression comparing `f`.
fn operator_arguments(c: &mut Choices<'_>, f: &str) -> bson::Document {
    use bson::doc;
    let expr = secret_expression(c, f);
    match c.below(5) {
        0 => {
            doc! {"find": "people", "filter": {}, "projection": {"m": {"$slice": [{"$filter": {"input": ["$name"], "cond": expr}}, 1]}}}
        }
        1 => {
            doc! {"find": "people", "filter": {}, "projection": {"tags": {"$elemMatch": {"$expr": expr}}}}
        }
        2 => doc! {"find": "people", "filter": {"tags": {"$elemMatch": {"$expr": expr}}}},
        3 => {
            doc! {"aggregate": "people", "pipeline": [{"$project": {"m": {"$slice": [[expr], 1]}}}], "cursor": {}}
        }
        _ => doc! {"count": "people", "query": {"name": {"$not": {"$elemMatch": {"$expr": expr}}}}},
    }
}

/// `arrayFilters` whose secrets were meant for `f`.
fn array_filters(c: &mut Choices<'_>, f: &str) -> bson::Document {
    use bson::doc;
    match c.below(3) {
        0 => {
            doc! {"update": "people", "updates": [{"q": {}, "u": {"$unset": {format!("{f}.$[t]"): ""}}, "arrayFilters": [{"t": c.secret()}]}]}
        }
        1 => {
            doc! {"update": "people", "updates": [{"q": {}, "u": {"$set": {"tags.$[t]": "x"}}, "arrayFilters": [{"t": {"$expr": secret_expression(c, f)}}]}]}
        }
        _ => {
            doc! {"findAndModify": "people", "query": {}, "update": {"$set": {"tags.$[t]": 1}}, "arrayFilters": [{"t": {"$elemMatch": {"$expr": secret_expression(c, f)}}}]}
        }
    }
}

/// A generated command. Secrets are placed only where an encrypted field
/// of the documents at hand, or of the collection written, meets them, so
/// any secret in what would be sent is a plaintext leak.
fn generated_command(c: &mut Choices<'_>) -> bson::Document {
    use bson::doc;
    let enc_ns = c.pick(&[GenNs::People, GenNs::People2]);
    let own = c.pick(&ALL_NS);
    let coll = match own {
        GenNs::People | GenNs::People2 => "people",
        GenNs::Plain => "plain",
        GenNs::Events => "events",
    };
    let f = encrypted_field(c);
    let mut cmd = match c.below(23) {
        0 => doc! {"find": "people", "filter": secret_predicate(c, f, 0)},
        1 => doc! {"find": "people", "filter": {}, "projection": {"m": secret_expression(c, f)}},
        2 => doc! {"find": "people", "filter": {}, "projection": {f: c.secret()}},
        3 => {
            doc! {"find": "people", "filter": {}, c.pick(&["min", "max"]): {f: c.secret()}, "hint": {f: 1}}
        }
        4 => {
            doc! {"insert": "people", "documents": [{f: c.secret(), "owner": "fuzz", "name": "n"}]}
        }
        5 => {
            let u = match c.below(5) {
                0 => bson::Bson::Document(doc! {"$set": {f: c.secret()}}),
                1 => bson::Bson::Document(doc! {"name": "n", "$set": {f: c.secret()}}),
                2 => bson::Bson::Document(doc! {f: c.secret(), "owner": "fuzz"}),
                3 => bson::Bson::Array(vec![bson::Bson::Document(doc! {"$set": {f: c.secret()}})]),
                _ => bson::Bson::Document(doc! {"$set": {format!("{f}.$"): c.secret()}}),
            };
            doc! {"update": "people", "updates": [{"q": secret_predicate(c, f, 0), "u": u}]}
        }
        6 => doc! {"delete": "people", "deletes": [{"q": secret_predicate(c, f, 0), "limit": 0}]},
        7 => {
            doc! {"findAndModify": "people", "query": {}, "fields": {"m": secret_expression(c, f)}, "remove": true}
        }
        8 | 9 => doc! {"aggregate": coll, "pipeline": pipeline(c, own, false, 0), "cursor": {}},
        10 => {
            // A write into an encrypted collection from a pipeline.
            let write = if c.below(2) == 0 {
                doc! {"$merge": {"into": enc_ns.reference()}}
            } else {
                doc! {"$out": enc_ns.reference()}
            };
            doc! {"aggregate": c.pick(&["plain", "events"]), "pipeline": [{"$set": {f: c.secret()}}, write], "cursor": {}}
        }
        11 => doc! {"count": "people", "query": secret_predicate(c, f, 0)},
        12 => doc! {"distinct": "people", "key": "name", "query": secret_predicate(c, f, 0)},
        13 => {
            doc! {"create": "v", "viewOn": c.pick(&["people", "plain"]), "pipeline": [{"$lookup": {"from": "people", "pipeline": [{"$match": secret_predicate(c, f, 0)}], "as": "x"}}]}
        }
        14 => {
            doc! {c.pick(&["create", "collMod"]): "people", "validator": secret_predicate(c, f, 0)}
        }
        15 => documents_sub_pipeline(c, enc_ns, f),
        16 => operator_arguments(c, f),
        17 => array_filters(c, f),
        18 => {
            // Top-level and `documentKey` paths after `$changeStream`, and
            // paths after `$count`: the secret was meant for `f`.
            let (first, path) = match c.below(3) {
                0 => (doc! {"$changeStream": {}}, f.to_owned()),
                1 => (doc! {"$changeStream": {}}, format!("documentKey.{f}")),
                _ => (doc! {"$count": "n"}, f.to_owned()),
            };
            doc! {"aggregate": "people", "pipeline": [first, {"$match": secret_predicate(c, &path, 0)}], "cursor": {}}
        }
        19 => {
            // A `$db` other than the database analysed: `other.people2`
            // encrypts `f`, `app.people2` has no schema.
            doc! {"find": "people2", "filter": secret_predicate(c, f, 0), "$db": "other"}
        }
        20 => {
            // A validator or partial filter `$jsonSchema` holding values of `f`.
            let keyword = c.pick(&["enum", "pattern"]);
            let value = if keyword == "enum" {
                bson::Bson::Array(vec![c.secret()])
            } else {
                c.secret()
            };
            let schema = schema_at(f, doc! {keyword: value});
            if c.below(2) == 0 {
                doc! {c.pick(&["create", "collMod"]): "people", "validator": {"$jsonSchema": schema}}
            } else {
                doc! {"createIndexes": "people", "indexes": [{"key": {"a": 1}, "name": "a", "partialFilterExpression": {"$jsonSchema": schema}}]}
            }
        }
        21 => {
            // A scalar where `med` holds encrypted fields, numeric segments
            // below it or into a join's array.
            match c.below(4) {
                0 => doc! {"insert": "people", "documents": [{"med": c.secret(), "owner": "fuzz"}]},
                1 => {
                    doc! {"update": "people", "updates": [{"q": {}, "u": {"$set": {"med.0.record": c.secret()}}}]}
                }
                2 => doc! {"find": "people", "filter": {"med.1.record": c.secret()}},
                _ => {
                    doc! {"aggregate": "plain", "pipeline": [{"$lookup": {"from": enc_ns.reference(), "localField": "name", "foreignField": "name", "as": "p"}}, {"$match": {format!("p.0.{f}"): c.secret()}}], "cursor": {}}
                }
            }
        }
        _ => {
            doc! {"createIndexes": "people", "indexes": [{"key": {"a": 1}, "name": "a", "partialFilterExpression": secret_predicate(c, f, 0)}]}
        }
    };
    if c.below(6) == 0
        && cmd.get_str(cmd.keys().next().cloned().unwrap_or_default()) == Ok("people")
    {
        // A field no allow-list knows, carrying a secret, on a command on
        // the encrypted collection.
        cmd.insert("futureOption", c.secret());
    }
    if c.below(5) == 0 {
        cmd = doc! {"explain": cmd};
    }
    cmd
}

/// The generator's mode of [`rewrite_command`]: builds a command from the
/// fuzz input that places secret values only where an encrypted field
/// meets them (compared, computed with, assigned, written through a
/// pipeline, inside sub-pipelines of another collection, views,
/// validators, unknown fields), analyzes it against several namespaces, and
/// checks **every value** of what would be sent: no secret may be there,
/// in any field, at any depth, as a string or inside any other value.
/// Returns whether the command would be sent (`false`: refused).
pub fn rewrite_generated(
    enc: &ExplicitEncrypter<KeyRing>,
    schema: &crate::schema::EncryptionSchema,
    data: &[u8],
) -> bool {
    let mut c = Choices {
        data,
        pos: 0,
        secrets: 0,
    };
    let cmd = generated_command(&mut c);
    let lookup = |ns: &crate::analysis::Namespace| {
        let encrypted = matches!(
            (ns.db.as_str(), ns.coll.as_str()),
            ("app", "people") | ("other", "people2")
        );
        crate::analysis::NamespaceSchema::Known(encrypted.then_some(schema))
    };
    let sent = match crate::analysis::analyze(&cmd, "app", &lookup) {
        Err(_) => return false,
        Ok(crate::analysis::Analysis::Unchanged) => cmd.clone(),
        Ok(crate::analysis::Analysis::Marked(m)) => {
            match crate::analysis::encrypt_markings(&m, enc.keys()) {
                Ok(sent) => sent,
                Err(_) => return false,
            }
        }
    };
    assert_sent_clean(&sent, format_args!("command: {cmd}"));
    true
}

/// The Queryable Encryption collection of [`rewrite_queryable`]
/// (`app.qpeople`, and `app.qother` with the same fields): `ssn`
/// (equality, key 16 × 0x21), `notes` (unindexed, 0x22), `med.record`
/// (equality, 0x23) and `age` (range on longs, 0x24).
#[cfg(feature = "qe")]
fn qe_rewrite_fields() -> &'static crate::qe::encrypted_fields::EncryptedFields {
    use crate::qe::encrypted_fields::{EncryptedFields, ParseMode};
    static FIELDS: std::sync::OnceLock<EncryptedFields> = std::sync::OnceLock::new();
    FIELDS.get_or_init(|| {
        let key = |b: u8| {
            bson::Bson::Binary(bson::Binary {
                subtype: bson::spec::BinarySubtype::Uuid,
                bytes: vec![b; 16],
            })
        };
        EncryptedFields::from_document(
            &bson::doc! {"fields": [
                {"path": "ssn", "keyId": key(0x21), "bsonType": "string", "queries": {"queryType": "equality", "contention": 2}},
                {"path": "notes", "keyId": key(0x22), "bsonType": "string"},
                {"path": "med.record", "keyId": key(0x23), "bsonType": "string", "queries": {"queryType": "equality"}},
                {"path": "age", "keyId": key(0x24), "bsonType": "long", "queries": {"queryType": "range", "min": 0i64, "max": i64::MAX, "sparsity": 1}},
            ]},
            ParseMode::Map,
        )
        .expect("valid encryptedFields")
    })
}

/// A Queryable Encryption collection with a text-search field: every
/// command on it is refused (`app.qtext`).
#[cfg(feature = "qe")]
fn qe_text_fields() -> &'static crate::qe::encrypted_fields::EncryptedFields {
    use crate::qe::encrypted_fields::{EncryptedFields, ParseMode};
    static FIELDS: std::sync::OnceLock<EncryptedFields> = std::sync::OnceLock::new();
    FIELDS.get_or_init(|| {
        EncryptedFields::from_document(
            &bson::doc! {"fields": [
                {"path": "ssn", "keyId": bson::Binary { subtype: bson::spec::BinarySubtype::Uuid, bytes: vec![0x25; 16] }, "bsonType": "string", "queries": {"queryType": "equality"}},
                {"path": "bio", "keyId": bson::Binary { subtype: bson::spec::BinarySubtype::Uuid, bytes: vec![0x26; 16] }, "bsonType": "string", "queries": {"queryType": "prefixPreview", "strMinQueryLength": 2, "strMaxQueryLength": 10, "caseSensitive": true, "diacriticSensitive": true}},
            ]},
            ParseMode::Map,
        )
        .expect("valid encryptedFields")
    })
}

/// The secrets put on the range field `age`: longs whose six high bytes
/// (little-endian, after the two low ones a counter takes) mark them.
#[cfg(feature = "qe")]
const QE_LONG_SECRET: i64 = 0x5EC2_E7A1_5EC2_0000;

#[cfg(feature = "qe")]
const QE_FIELDS: [&str; 4] = ["ssn", "notes", "med.record", "age"];

/// A secret for the QE field `field` (a path ending in it): a marked
/// string, or a marked long for the range field `age`.
#[cfg(feature = "qe")]
fn qe_secret(c: &mut Choices<'_>, field: &str) -> bson::Bson {
    if field == "age" || field.ends_with(".age") {
        c.secrets += 1;
        bson::Bson::Int64(QE_LONG_SECRET + i64::from(c.secrets & 0xFFFF))
    } else {
        c.secret()
    }
}

/// A predicate that puts a secret against the QE field `field`.
#[cfg(feature = "qe")]
fn qe_secret_predicate(c: &mut Choices<'_>, field: &str, depth: u8) -> bson::Document {
    use bson::doc;
    let s = qe_secret(c, field);
    let path = format!("${field}");
    match c.below(if depth > 2 { 16 } else { 19 }) {
        0 => doc! {field: s},
        1 => doc! {field: {"$eq": s}},
        2 => doc! {field: {"$in": [s.clone(), qe_secret(c, field)]}},
        3 => doc! {field: {"$ne": s}},
        4 => doc! {field: {"$gt": s}},
        5 => doc! {field: {"$gte": s, "$lt": qe_secret(c, field)}},
        6 => doc! {field: {"$not": {"$eq": s}}},
        7 => doc! {field: {"$nin": [s]}},
        8 => doc! {"$expr": {"$eq": [path, s]}},
        9 => doc! {"$expr": {"$gt": [path, s]}},
        10 => doc! {"$where": format!("this.{field} == '{s}'")},
        11 => doc! {field: {"$elemMatch": {"$eq": s}}},
        12 => doc! {field: {"$all": [s]}},
        13 => doc! {field: {"$lte": s, "$exists": true}},
        14 => doc! {field: {"$in": [s]}, "name": "x"},
        15 => doc! {field: {"$regex": format!("^{s}")}},
        16 => doc! {"$or": [qe_secret_predicate(c, field, depth + 1), {"name": "x"}]},
        17 => doc! {"$and": [{"name": "x"}, qe_secret_predicate(c, field, depth + 1)]},
        _ => doc! {"$nor": [qe_secret_predicate(c, field, depth + 1)]},
    }
}

/// A stage over the documents of `app.qpeople`.
#[cfg(feature = "qe")]
fn qe_stage(c: &mut Choices<'_>, depth: u8) -> bson::Document {
    use bson::doc;
    let f = c.pick(&QE_FIELDS);
    let foreign = c.pick(&["qother", "people", "plain", "qtext"]);
    match c.below(if depth > 1 { 12 } else { 14 }) {
        0 | 1 => doc! {"$match": qe_secret_predicate(c, f, 0)},
        2 => doc! {"$project": {"m": secret_expression(c, f)}},
        3 => doc! {"$addFields": {f: qe_secret(c, f)}},
        4 => doc! {"$set": {"m": secret_expression(c, f)}},
        5 => doc! {"$group": {"_id": "$name", "m": {"$max": secret_expression(c, f)}}},
        6 => {
            doc! {"$lookup": {"from": foreign, "pipeline": [{"$match": qe_secret_predicate(c, f, 0)}], "as": "x"}}
        }
        7 => {
            doc! {"$unionWith": {"coll": foreign, "pipeline": [{"$match": qe_secret_predicate(c, f, 0)}]}}
        }
        8 => doc! {"$replaceRoot": {"newRoot": {f: qe_secret(c, f)}}},
        9 => doc! {"$unwind": format!("${f}")},
        10 => doc! {"$sort": {"name": 1}},
        11 => doc! {"$count": "n"},
        12 => doc! {"$facet": {"a": [qe_stage(c, depth + 1)]}},
        _ => doc! {"$limit": 3},
    }
}

/// An update (`u` of a statement, `updateMods` of a `bulkWrite` op) that
/// puts a secret into the QE field `f`: the ways that encrypt it and the
/// ways that must be refused.
#[cfg(feature = "qe")]
fn qe_update(c: &mut Choices<'_>, f: &str) -> bson::Bson {
    use bson::doc;
    match c.below(10) {
        0 => bson::Bson::Document(doc! {"$set": {f: qe_secret(c, f)}}),
        1 => bson::Bson::Document(doc! {"name": "n", "$set": {f: qe_secret(c, f)}}),
        2 => bson::Bson::Document(at_path(f, qe_secret(c, f))),
        3 => bson::Bson::Array(vec![bson::Bson::Document(
            doc! {"$set": {f: qe_secret(c, f)}},
        )]),
        4 => bson::Bson::Document(doc! {"$push": {f: qe_secret(c, f)}}),
        5 => bson::Bson::Document(doc! {"$inc": {f: qe_secret(c, f)}}),
        6 => bson::Bson::Document(doc! {"$set": {format!("{f}.$"): qe_secret(c, f)}}),
        7 => bson::Bson::Document(doc! {"$setOnInsert": {f: qe_secret(c, f)}}),
        8 => bson::Bson::Document(doc! {"$set": {"med.0.record": qe_secret(c, f)}}),
        _ => bson::Bson::Document(doc! {"$set": {"__safeContent__.0": qe_secret(c, "ssn")}}),
    }
}

/// A client-level `bulkWrite`: one to three inserts, updates and deletes
/// carrying secrets for `app.qpeople`, its `nsInfo` that collection (or
/// two namespaces, an FLE1 one, the text-search one), now and then an op
/// naming entry 1, an unknown op or op field, or a `let` reading a field.
#[cfg(feature = "qe")]
fn qe_bulk_write(c: &mut Choices<'_>, f: &str) -> bson::Document {
    use bson::doc;
    let mut ops = Vec::new();
    for _ in 0..1 + c.below(3) {
        let entry = if c.below(8) == 0 { 1 } else { 0 };
        let mut op = match c.below(6) {
            0 | 1 => doc! {"insert": entry, "document": at_path(f, qe_secret(c, f))},
            2 | 3 => {
                let filter = qe_secret_predicate(c, f, 0);
                let update = qe_update(c, f);
                doc! {"update": entry, "multi": c.below(2) == 0, "filter": filter, "updateMods": update, "upsert": c.below(2) == 0}
            }
            4 => {
                doc! {"delete": entry, "multi": c.below(2) == 0, "filter": qe_secret_predicate(c, f, 0)}
            }
            _ => {
                doc! {"replaceOne": entry, "filter": {}, "replacement": at_path(f, qe_secret(c, f))}
            }
        };
        if c.below(10) == 0 {
            op.insert("futureOption", qe_secret(c, f));
        }
        ops.push(op);
    }
    let ns_info = match c.below(8) {
        0 => vec![doc! {"ns": "app.qpeople"}, doc! {"ns": "app.qother"}],
        1 => vec![doc! {"ns": "app.people"}],
        2 => vec![doc! {"ns": "app.qtext"}],
        _ => vec![doc! {"ns": "app.qpeople"}],
    };
    let mut cmd = doc! {"bulkWrite": 1, "ops": ops, "nsInfo": ns_info};
    if c.below(6) == 0 {
        cmd.insert(
            "let",
            doc! {"v": {"$eq": [format!("${f}"), qe_secret(c, f)]}},
        );
    }
    cmd
}

/// A generated command on (or naming) the Queryable Encryption
/// collections of [`rewrite_queryable`]: secrets only where an encrypted
/// field meets them.
#[cfg(feature = "qe")]
fn qe_generated_command(c: &mut Choices<'_>) -> bson::Document {
    use bson::doc;
    let f = c.pick(&QE_FIELDS);
    let mut cmd = match c.below(22) {
        0 | 1 => doc! {"find": "qpeople", "filter": qe_secret_predicate(c, f, 0)},
        2 => doc! {"find": "qpeople", "filter": {}, "projection": {"m": secret_expression(c, f)}},
        3 => {
            doc! {"find": "qpeople", "filter": {}, c.pick(&["min", "max"]): {f: qe_secret(c, f)}, "sort": {"name": 1}}
        }
        4 => {
            doc! {"insert": "qpeople", "documents": [at_path(f, qe_secret(c, f)), {"name": "n"}]}
        }
        5 => {
            doc! {"insert": "qpeople", "documents": [{"name": "n", "__safeContent__": [qe_secret(c, "ssn")]}]}
        }
        6 | 7 => {
            let u = qe_update(c, f);
            doc! {"update": "qpeople", "updates": [{"q": qe_secret_predicate(c, f, 0), "u": u, "upsert": true}]}
        }
        8 => {
            doc! {"delete": "qpeople", "deletes": [{"q": qe_secret_predicate(c, f, 0), "limit": 1}]}
        }
        9 => {
            doc! {"findAndModify": "qpeople", "query": qe_secret_predicate(c, f, 0), "update": {"$set": {f: qe_secret(c, f)}}, "fields": {"m": secret_expression(c, f)}}
        }
        10 | 11 => {
            let mut stages = Vec::new();
            for _ in 0..1 + c.below(3) {
                stages.push(qe_stage(c, 0));
            }
            doc! {"aggregate": "qpeople", "pipeline": stages, "cursor": {}}
        }
        12 => {
            // Another collection's pipeline naming the QE one.
            let own = c.pick(&["plain", "people"]);
            let stage = if c.below(2) == 0 {
                doc! {"$lookup": {"from": "qpeople", "pipeline": [{"$match": qe_secret_predicate(c, f, 0)}], "as": "x"}}
            } else {
                doc! {"$unionWith": "qpeople"}
            };
            doc! {"aggregate": own, "pipeline": [stage, {"$match": qe_secret_predicate(c, f, 0)}], "cursor": {}}
        }
        13 => doc! {"count": "qpeople", "query": qe_secret_predicate(c, f, 0)},
        14 => {
            doc! {"distinct": "qpeople", "key": c.pick(&["name", f]), "query": qe_secret_predicate(c, f, 0)}
        }
        15 => {
            doc! {c.pick(&["create", "collMod"]): "qpeople", "validator": qe_secret_predicate(c, f, 0)}
        }
        16 => {
            doc! {"createIndexes": "qpeople", "indexes": [{"key": {"a": 1}, "name": "a", "partialFilterExpression": qe_secret_predicate(c, f, 0)}]}
        }
        17 => {
            doc! {"create": c.pick(&["v", "qpeople"]), "viewOn": "qpeople", "pipeline": [{"$match": qe_secret_predicate(c, f, 0)}]}
        }
        18 => {
            // Every command on a collection with a text-search field.
            if c.below(2) == 0 {
                doc! {"find": "qtext", "filter": {"ssn": qe_secret(c, "ssn")}}
            } else {
                doc! {"insert": "qtext", "documents": [{"ssn": qe_secret(c, "ssn")}]}
            }
        }
        19 => {
            doc! {"update": "qpeople", "updates": [{"q": {}, "u": {"$set": {"tags.$[t]": 1}}, "arrayFilters": [{"t": {"$expr": secret_expression(c, f)}}]}]}
        }
        20 => {
            doc! {"aggregate": "qpeople", "pipeline": [{"$changeStream": {}}, {"$match": qe_secret_predicate(c, f, 0)}], "cursor": {}}
        }
        _ => qe_bulk_write(c, f),
    };
    if c.below(6) == 0
        && cmd.get_str(cmd.keys().next().cloned().unwrap_or_default()) == Ok("qpeople")
    {
        // A field no allow-list knows, carrying a secret.
        cmd.insert("futureOption", qe_secret(c, f));
    }
    if c.below(5) == 0 {
        cmd = doc! {"explain": cmd};
    }
    cmd
}

/// The Queryable Encryption mode of [`rewrite_command`]: builds a command
/// on (or naming) QE collections from the fuzz input, secrets placed only
/// where an encrypted field meets them, analyzes it (`app.qpeople` and
/// `app.qother` are QE collections, `app.qtext` one with a text-search
/// field, `app.people` and `other.people2` FLE1 ones of `schema`), and
/// checks what would be sent: every placeholder parses and names a key of
/// the collection's fields (placeholders carry their plaintext until they
/// are turned into payloads, after analysis), and once they are taken out
/// no secret is left anywhere, as a string or as the range field's long.
/// Returns whether the command would be sent (`false`: refused).
#[cfg(feature = "qe")]
pub fn rewrite_queryable(
    enc: &ExplicitEncrypter<KeyRing>,
    schema: &crate::schema::EncryptionSchema,
    data: &[u8],
) -> bool {
    let mut c = Choices {
        data,
        pos: 0,
        secrets: 0,
    };
    let cmd = qe_generated_command(&mut c);
    let fields = qe_rewrite_fields();
    let lookup = |ns: &crate::analysis::Namespace| match (ns.db.as_str(), ns.coll.as_str()) {
        ("app", "qpeople" | "qother") => crate::analysis::NamespaceSchema::Queryable(fields),
        ("app", "qtext") => crate::analysis::NamespaceSchema::Queryable(qe_text_fields()),
        ("app", "people") | ("other", "people2") => {
            crate::analysis::NamespaceSchema::Known(Some(schema))
        }
        _ => crate::analysis::NamespaceSchema::Known(None),
    };
    let sent = match crate::analysis::analyze(&cmd, "app", &lookup) {
        Err(_) => return false,
        Ok(crate::analysis::Analysis::Unchanged) => cmd.clone(),
        Ok(crate::analysis::Analysis::Marked(m)) => {
            match crate::analysis::encrypt_markings(&m, enc.keys()) {
                Ok(sent) => sent,
                Err(_) => return false,
            }
        }
    };
    let keys: Vec<[u8; 16]> = fields.fields().iter().filter_map(|f| f.key_id()).collect();
    let mut without = bson::Document::new();
    for (k, v) in &sent {
        let v = crate::nesting::map(v, &mut |v| match v {
            bson::Bson::Binary(b)
                if b.subtype == bson::spec::BinarySubtype::Encrypted
                    && b.bytes.first() == Some(&crate::qe::placeholder::ENCRYPTION_PLACEHOLDER) =>
            {
                let p = crate::qe::placeholder::Placeholder::parse(&b.bytes)
                    .expect("a placeholder analysis made parses");
                assert!(
                    keys.contains(&p.index_key_id) && p.index_key_id == p.user_key_id,
                    "a placeholder names a key the fields do not: {cmd}"
                );
                Ok(Some(bson::Bson::Binary(bson::Binary {
                    subtype: bson::spec::BinarySubtype::Encrypted,
                    bytes: vec![crate::qe::payload::FIND_EQUALITY_V2],
                })))
            }
            _ => Ok::<_, crate::nesting::TooDeep>(None),
        })
        .expect("analysed commands are not too deep");
        without.insert(k.clone(), v);
    }
    assert_sent_clean(&without, format_args!("command: {cmd}"));
    let mut bytes = Vec::new();
    without.to_writer(&mut bytes).expect("a command serializes");
    let mark = &QE_LONG_SECRET.to_le_bytes()[2..];
    assert!(
        !bytes.windows(mark.len()).any(|w| w == mark),
        "a plaintext of the range field would be sent:\n command: {cmd}\n sent: {without}"
    );
    true
}

/// The plan the migration fuzz target applies: `rewrite_schema`'s fields,
/// plus `plain` listed as plaintext.
#[cfg(feature = "driver")]
pub fn migration_plan(decrypt_unlisted: bool) -> crate::migrate::Plan {
    let key = bson::Bson::Array(vec![bson::Bson::Binary(
        KeyId::from_bytes([0x11; 16]).to_binary(),
    )]);
    crate::migrate::Plan::from_schema(
        &bson::doc! {
            "bsonType": "object",
            "properties": {
                "ssn": {"encrypt": {"keyId": key.clone(), "bsonType": "string", "algorithm": "AEAD_AES_256_CBC_HMAC_SHA_512-Deterministic"}},
                "notes": {"encrypt": {"keyId": key.clone(), "algorithm": "AEAD_AES_256_CBC_HMAC_SHA_512-Random"}},
                "med": {"bsonType": "object", "properties": {"record": {"encrypt": {"keyId": key, "algorithm": "AEAD_AES_256_CBC_HMAC_SHA_512-Random"}}}},
                "plain": {"bsonType": "string"},
            },
        },
        decrypt_unlisted,
    )
    .expect("valid plan")
}

/// Applies a migration plan to arbitrary BSON: never panics; a changed
/// document has every planned field encrypted, keeps its plaintext, and
/// is left unchanged by a second application (the idempotence resumed
/// migrations rely on).
#[cfg(feature = "driver")]
pub fn migrate_document(
    enc: &ExplicitEncrypter<KeyRing>,
    plan: &crate::migrate::Plan,
    data: &[u8],
) {
    let Ok(doc) = bson::Document::from_reader(data) else {
        return;
    };
    let Ok(crate::migrate::Change::Changed {
        document, fields, ..
    }) = plan.apply(&doc, enc.keys())
    else {
        return;
    };
    assert!(!fields.is_empty());
    assert_no_plaintext(&document);
    assert_eq!(
        plan.apply(&document, enc.keys()).ok(),
        Some(crate::migrate::Change::Unchanged),
        "a migrated document must already match the plan"
    );
    if let Ok(before) = enc.decrypt_document(&doc) {
        assert_eq!(
            enc.decrypt_document(&document).ok(),
            Some(before),
            "migration changed a plaintext value"
        );
    }
}

/// The eight- and four-lane SHA-512 compressions and the multi-message
/// HMAC against `sha2` and `hmac` on arbitrary bytes: `data` gives eight
/// states and blocks (cycled to 1,536 bytes; the first four of each for the
/// four lanes), then keys and messages of the lengths its bytes say.
/// Panics on any difference.
pub fn sha512_lanes(data: &[u8]) {
    use crate::crypto::hmac_lanes::{HmacJob, HmacPads, hmac_sha512_many};
    use csfle_sha512_lanes::{Block, LANES, WIDE_LANES, compress512_x4, compress512_x8};
    if data.is_empty() {
        return;
    }
    let byte = |i: usize| data[i % data.len()];
    let word = |i: usize| u64::from_le_bytes(core::array::from_fn(|j| byte(8 * i + j)));
    let states: [[u64; 8]; LANES] =
        core::array::from_fn(|l| core::array::from_fn(|w| word(8 * l + w)));
    let blocks: [Block; LANES] =
        core::array::from_fn(|l| core::array::from_fn(|b| byte(256 + 128 * l + b)));
    let mut got = states;
    compress512_x4(&mut got, core::array::from_fn(|l| &blocks[l]));
    for l in 0..LANES {
        let mut want = states[l];
        sha2::block_api::compress512(&mut want, std::slice::from_ref(&blocks[l]));
        assert_eq!(got[l], want, "lane {l} differs from compress512");
    }
    let states: [[u64; 8]; WIDE_LANES] =
        core::array::from_fn(|l| core::array::from_fn(|w| word(8 * l + w)));
    let blocks: [Block; WIDE_LANES] =
        core::array::from_fn(|l| core::array::from_fn(|b| byte(512 + 128 * l + b)));
    let mut got = states;
    compress512_x8(&mut got, core::array::from_fn(|l| &blocks[l]));
    for l in 0..WIDE_LANES {
        let mut want = states[l];
        sha2::block_api::compress512(&mut want, std::slice::from_ref(&blocks[l]));
        assert_eq!(got[l], want, "wide lane {l} differs from compress512");
    }
    // Messages: each job takes a key length, a message length (≤ 600)
    // and bytes from the input.
    let mut at = 0usize;
    let mut jobs: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    while at + 2 < data.len() && jobs.len() < 21 {
        let key_len = usize::from(data[at]) % 129;
        let msg_len = (usize::from(data[at + 1]) * 7 + usize::from(data[at + 2])) % 601;
        let key: Vec<u8> = (0..key_len).map(|i| byte(at + 3 + i)).collect();
        let msg: Vec<u8> = (0..msg_len).map(|i| byte(at + 3 + key_len + i)).collect();
        jobs.push((key, msg));
        at += 3 + key_len;
    }
    let pads: Vec<HmacPads> = jobs.iter().map(|(k, _)| HmacPads::new(k)).collect();
    let parts: Vec<[&[u8]; 1]> = jobs.iter().map(|(_, m)| [m.as_slice()]).collect();
    let batch: Vec<HmacJob<'_>> = pads
        .iter()
        .zip(&parts)
        .map(|(pads, message)| HmacJob { pads, message })
        .collect();
    for ((key, msg), got) in jobs.iter().zip(hmac_sha512_many(&batch)) {
        use hmac::{KeyInit, Mac};
        let mut h = hmac::Hmac::<sha2::Sha512>::new_from_slice(key).expect("any key length");
        h.update(msg);
        let want: [u8; 64] = h.finalize().into_bytes().into();
        assert_eq!(got, want, "multi-lane HMAC differs from hmac");
    }
}

/// What the schema generator of [`schema_parse`] promised about one
/// `encrypt` it placed.
#[derive(Debug)]
enum Placed {
    /// At a position the model reads: the dotted path of a field it must
    /// report encrypted when the schema is accepted.
    Honoured(String),
    /// Somewhere the model does not read (a logical or array keyword, a
    /// misspelt or unsupported keyword, a wrapped schema): the schema must
    /// be refused.
    Unread,
}

/// Property names the generator uses: ordinary ones, names that are
/// keywords, and the ones an encrypted field may not have. None starts
/// with `pp_` (the generated pattern) or is `zz` (the field that
/// `additionalProperties` stands for).
const SCHEMA_NAMES: [&str; 8] = [
    "a",
    "b",
    "owner",
    "encrypt",
    "properties",
    "_id",
    "c.d",
    "$x",
];

/// Keywords that are not `$jsonSchema`'s: misspellings, other JSON Schema
/// drafts' keywords and its documented omissions, and a wrapper.
const FOREIGN_KEYWORDS: [&str; 16] = [
    "encrpyt",
    "Properties",
    "bsontype",
    "if",
    "then",
    "else",
    "$ref",
    "definitions",
    "dependentSchemas",
    "unevaluatedProperties",
    "contains",
    "format",
    "default",
    "$jsonSchema",
    "propertyNames",
    "encryptmetadata",
];

fn schema_key(c: &mut Choices<'_>) -> bson::Bson {
    match c.below(8) {
        // A key the fixed key ring does not hold: parses, cannot encrypt.
        0 => bson::Bson::Array(vec![bson::Bson::Binary(
            KeyId::from_bytes([0x44; 16]).to_binary(),
        )]),
        1 => bson::Bson::String("/owner".into()),
        2 => bson::Bson::String("/a".into()),
        3 => bson::Bson::String("nopointer".into()),
        _ => bson::Bson::Array(vec![bson::Bson::Binary(
            KeyId::from_bytes([0x11; 16]).to_binary(),
        )]),
    }
}

/// An `encrypt` value: key, algorithm and type each present or not.
fn encrypt_value(c: &mut Choices<'_>) -> bson::Document {
    let mut e = bson::Document::new();
    if c.below(4) != 0 {
        e.insert("keyId", schema_key(c));
    }
    match c.below(5) {
        0 => {}
        1 | 2 => {
            e.insert("algorithm", "AEAD_AES_256_CBC_HMAC_SHA_512-Random");
        }
        3 => {
            e.insert("algorithm", "AEAD_AES_256_CBC_HMAC_SHA_512-Deterministic");
        }
        _ => {
            e.insert("algorithm", "AES-GCM");
        }
    }
    match c.below(6) {
        0 => {
            e.insert("bsonType", "double");
        }
        1 => {
            e.insert("bsonType", "int");
        }
        2 | 3 => {
            e.insert("bsonType", "string");
        }
        _ => {}
    }
    if c.below(16) == 0 {
        e.insert("encrpyt", true);
    }
    e
}

/// A generated schema node at `path` (`None`: a position the model does
/// not read), recording every `encrypt` it places in `placed`.
fn schema_node(
    c: &mut Choices<'_>,
    path: Option<&str>,
    depth: u8,
    placed: &mut Vec<Placed>,
) -> bson::Document {
    use bson::{Bson, doc};
    let child_path = |name: &str| {
        path.map(|p| {
            if p.is_empty() {
                name.to_owned()
            } else {
                format!("{p}.{name}")
            }
        })
    };
    if depth > 0 && c.below(4) == 0 {
        placed.push(match path {
            Some(p) => Placed::Honoured(p.to_owned()),
            None => Placed::Unread,
        });
        let mut node = doc! {"encrypt": encrypt_value(c)};
        if c.below(8) == 0 {
            node.insert("bsonType", "string");
        }
        return node;
    }
    let mut node = bson::Document::new();
    if depth >= 4 {
        return node;
    }
    for _ in 0..c.below(5) {
        // A keyword already there is skipped, with what its value placed:
        // a replaced value would leave promises about encrypts no longer in
        // the schema.
        let mark = placed.len();
        let (keyword, value): (&str, Bson) = match c.below(22) {
            0..=4 => {
                let mut props = bson::Document::new();
                for _ in 0..=c.below(3) {
                    let name = c.pick(&SCHEMA_NAMES);
                    if props.contains_key(name) {
                        continue;
                    }
                    let sub = schema_node(c, child_path(name).as_deref(), depth + 1, placed);
                    props.insert(name, sub);
                }
                ("properties", Bson::Document(props))
            }
            5 => {
                let sub = schema_node(c, child_path("pp_x").as_deref(), depth + 1, placed);
                ("patternProperties", Bson::Document(doc! {"^pp_": sub}))
            }
            6 => {
                if c.below(2) == 0 {
                    ("additionalProperties", Bson::Boolean(c.below(2) == 0))
                } else {
                    let sub = schema_node(c, child_path("zz").as_deref(), depth + 1, placed);
                    ("additionalProperties", Bson::Document(sub))
                }
            }
            7 => {
                let keyword = c.pick(&["anyOf", "allOf", "oneOf"]);
                let items: Vec<Bson> = (0..=c.below(2))
                    .map(|_| Bson::Document(schema_node(c, None, depth + 1, placed)))
                    .collect();
                (keyword, Bson::Array(items))
            }
            8 => {
                let keyword = c.pick(&["not", "items", "additionalItems"]);
                (
                    keyword,
                    Bson::Document(schema_node(c, None, depth + 1, placed)),
                )
            }
            9 => {
                let sub = schema_node(c, None, depth + 1, placed);
                ("items", Bson::Array(vec![Bson::Document(sub)]))
            }
            10 => {
                let sub = schema_node(c, None, depth + 1, placed);
                ("dependencies", Bson::Document(doc! {"a": sub, "b": ["a"]}))
            }
            11 => {
                // Literal data: an `encrypt` key here is a value, not a keyword.
                let literal = doc! {"encrypt": encrypt_value(c)};
                (
                    "enum",
                    Bson::Array(vec![Bson::Document(literal), Bson::Int32(1)]),
                )
            }
            12 => {
                let meta = doc! {"keyId": schema_key(c), "algorithm": "AEAD_AES_256_CBC_HMAC_SHA_512-Random"};
                if path.is_none() {
                    placed.push(Placed::Unread);
                }
                ("encryptMetadata", Bson::Document(meta))
            }
            13 | 14 => {
                let ty = c.pick(&["object", "object", "string", "array"]);
                let keyword = if c.below(4) == 0 { "type" } else { "bsonType" };
                (keyword, Bson::String(ty.to_owned()))
            }
            15 => ("bsonType", Bson::from(vec!["object", "null"])),
            16..=18 => {
                let keyword = c.pick(&FOREIGN_KEYWORDS);
                (
                    keyword,
                    Bson::Document(schema_node(c, None, depth + 1, placed)),
                )
            }
            19 => (
                c.pick(&["description", "title"]),
                Bson::String("text".into()),
            ),
            20 => {
                let keyword = c.pick(&["minimum", "maxLength", "minProperties"]);
                let value = c.pick(&[Bson::Int32(1), Bson::Int32(-1), Bson::String("1".into())]);
                (keyword, value)
            }
            _ => ("required", Bson::from(vec!["a"])),
        };
        if node.contains_key(keyword) {
            placed.truncate(mark);
        } else {
            node.insert(keyword, value);
        }
    }
    node
}

fn set_path(doc: &mut bson::Document, path: &str, value: bson::Bson) {
    match path.split_once('.') {
        None => {
            doc.insert(path, value);
        }
        Some((head, rest)) => {
            if !matches!(doc.get(head), Some(bson::Bson::Document(_))) {
                doc.insert(head, bson::Document::new());
            }
            if let Some(bson::Bson::Document(d)) = doc.get_mut(head) {
                set_path(d, rest, value);
            }
        }
    }
}

fn get_path<'d>(doc: &'d bson::Document, path: &str) -> Option<&'d bson::Bson> {
    match path.split_once('.') {
        None => doc.get(path),
        Some((head, rest)) => get_path(doc.get(head)?.as_document()?, rest),
    }
}

/// The schema parser's oracle. Input starting with `B` is read as a BSON
/// schema: parsing must not panic. Anything else drives a generator of
/// schemas (keywords, misspellings, unsupported keywords, nesting in
/// logical and array keywords, `$jsonSchema` wrapping, `encrypt` in `enum`
/// literals and under names) that knows where each `encrypt` it places
/// would be read. A schema is either refused, or every `encrypt` in it is
/// honoured: the field at its path is reported encrypted, and an insert
/// with values there, once analysed and encrypted, holds ciphertext there
/// and no plaintext. Returns whether the schema was accepted.
pub fn schema_parse(enc: &ExplicitEncrypter<KeyRing>, data: &[u8]) -> bool {
    use crate::schema::{EncryptionSchema, FieldInfo, SchemaSource};
    if let Some(rest) = data.strip_prefix(b"B") {
        return match bson::Document::from_reader(rest) {
            Ok(doc) => EncryptionSchema::parse(&doc, SchemaSource::Local).is_ok(),
            Err(_) => false,
        };
    }
    let mut c = Choices {
        data,
        pos: 0,
        secrets: 0,
    };
    let mut placed = Vec::new();
    let wrapped = c.below(8) == 0;
    let mut schema = schema_node(&mut c, Some(""), 0, &mut placed);
    if wrapped {
        // Nothing in a wrapped schema is read: it must be refused.
        schema = bson::doc! {"$jsonSchema": schema};
        placed.push(Placed::Unread);
    }
    let parsed = match EncryptionSchema::parse(&schema, SchemaSource::Local) {
        Ok(s) => s,
        Err(_) => return false,
    };
    assert!(
        !placed.iter().any(|p| matches!(p, Placed::Unread)),
        "a schema with an encrypt the model does not read was accepted: {schema}"
    );
    let paths: Vec<&str> = placed
        .iter()
        .filter_map(|p| match p {
            Placed::Honoured(path) => Some(path.as_str()),
            Placed::Unread => None,
        })
        .collect();
    for path in &paths {
        assert!(
            matches!(parsed.field(path), FieldInfo::Encrypted(_)),
            "encrypt at '{path}' not honoured ({:?}) in an accepted schema: {schema}",
            parsed.field(path)
        );
    }
    // An insert with a secret at every encrypted path (and a key name for
    // the pointers): what would be sent holds ciphertext there, no secret.
    let mut document = bson::doc! {"owner": "fuzz"};
    for path in &paths {
        let secret = c.secret();
        set_path(&mut document, path, secret);
    }
    let cmd = bson::doc! {"insert": "c", "documents": [document]};
    let sent = match crate::analysis::analyze(&cmd, "db", &|_| {
        crate::analysis::NamespaceSchema::Known(Some(&parsed))
    }) {
        Err(_) => return true,
        Ok(crate::analysis::Analysis::Unchanged) => cmd.clone(),
        Ok(crate::analysis::Analysis::Marked(m)) => {
            match crate::analysis::encrypt_markings(&m, enc.keys()) {
                Ok(sent) => sent,
                Err(_) => return true,
            }
        }
    };
    assert_sent_clean(&sent, format_args!("schema: {schema}"));
    if let Some(sent_doc) = sent
        .get_array("documents")
        .ok()
        .and_then(|d| d.first())
        .and_then(bson::Bson::as_document)
    {
        for path in &paths {
            let value = get_path(sent_doc, path);
            assert!(
                value.is_some_and(is_ciphertext),
                "no ciphertext at '{path}': {value:?}\n schema: {schema}"
            );
        }
    }
    true
}

/// The key every QE fuzz input is tried with: 96 × 0x22 (as
/// [`fixed_encrypter`]'s key material), so seeds made with it reach the
/// tag checks and the client layer.
#[cfg(feature = "qe")]
pub fn qe_fixed_key() -> crate::qe::aead::QeDataKey {
    crate::qe::aead::QeDataKey::new(&[0x22; 96]).expect("96 bytes")
}

/// QE values and ciphers on arbitrary bytes: `data` parsed as a stored
/// QE value and decrypted through every layer with `key`, and fed whole
/// to the three ciphers. Each must return (an error or a plaintext),
/// never panic, and allocate no more than `data` pays for. Then the
/// ciphers' round trip: `data` (up to 4 KiB) encrypted with an IV taken
/// from its first bytes decrypts to itself; panics if not.
#[cfg(feature = "qe")]
pub fn qe_value(key: &crate::qe::aead::QeDataKey, data: &[u8]) {
    use crate::qe::QeRandom;
    use crate::qe::aead::{
        fle2_aead_decrypt, fle2_decrypt, fle2_encrypt, fle2v2_aead_decrypt, fle2v2_aead_encrypt,
    };
    use crate::qe::values::QeValue;
    match QeValue::parse(data) {
        Ok(QeValue::Unindexed(value)) => {
            if let Ok(plaintext) = value.decrypt(key) {
                assert!(!plaintext.is_empty(), "an empty plaintext was returned");
            }
        }
        Ok(QeValue::Indexed(value)) => {
            if let Ok(layer) = value.decrypt_server_layer(key) {
                let _ = layer.decrypt(key);
            }
        }
        Err(_) => {}
    }
    let aad = &data[..data.len().min(18)];
    let _ = fle2v2_aead_decrypt(key, aad, data);
    let _ = fle2_aead_decrypt(key, aad, data);
    let _ = fle2_decrypt(&[0x33; 32], data);
    if data.is_empty() || data.len() > 4096 {
        return;
    }
    let iv: Vec<u8> = (0..16).map(|i| data[i % data.len()]).collect();
    let mut rng = QeRandom::fixed(iv.clone());
    let sealed = fle2v2_aead_encrypt(key, aad, data, &mut rng).expect("encrypts");
    assert_eq!(&sealed[..16], &iv[..], "the IV is the source's");
    let opened = fle2v2_aead_decrypt(key, aad, &sealed).expect("decrypts");
    assert_eq!(&opened[..], data, "FLE2v2AEAD round trip");
    let mut rng = QeRandom::fixed(iv);
    let sealed = fle2_encrypt(&[0x33; 32], data, &mut rng).expect("encrypts");
    let opened = fle2_decrypt(&[0x33; 32], &sealed).expect("decrypts");
    assert_eq!(&opened[..], data, "FLE2 round trip");
}

/// QE payloads and placeholders on arbitrary bytes, and the range math on
/// numbers taken from them. `data` is read as an insert payload (11) and
/// decrypted with `key`; as a placeholder (3) and turned into its payload
/// with `key` for every key id, from a fixed random source — an
/// unindexed or equality insert's payload must decrypt back to the
/// placeholder's value (panics if not); as a range expression
/// encrypted with fixed options. Then edges and minimal covers of every
/// type on numbers, sparsity, trim factor and precision taken from its
/// first 64 bytes. Each must return (an error or a result), never panic.
#[cfg(feature = "qe")]
pub fn qe_payload(key: &crate::qe::aead::QeDataKey, data: &[u8]) {
    use crate::qe::QeRandom;
    use crate::qe::explicit::{
        QeAlgorithm, QeEncryptOptions, QeKeys, QueryType, RangeOptions, encrypt_range_expression,
    };
    use crate::qe::payload::{InsertUpdatePayload, QeKey, value_bytes};
    use crate::qe::placeholder::{Fle2Algorithm, Placeholder, PlaceholderType};
    use crate::qe::values::QeValue;

    if let Ok(payload) = InsertUpdatePayload::parse(data)
        && let Ok(plaintext) = payload.decrypt(key)
    {
        assert!(!plaintext.is_empty(), "an empty plaintext was returned");
    }
    if let Ok(placeholder) = Placeholder::parse(data) {
        // IVs for the value and 129 edges, and a few contention draws.
        let mut rng = QeRandom::fixed(vec![0x5a; 16 * 131 + 8 * 8]);
        if let Ok(out) = placeholder.encrypt(|_| Some(key), &mut rng) {
            let value = match (placeholder.algorithm, placeholder.kind) {
                (Fle2Algorithm::Range, PlaceholderType::Insert) => {
                    crate::qe::placeholder::range_insert_spec(placeholder.value)
                        .map(|spec| spec.value)
                        .ok()
                }
                (Fle2Algorithm::Unindexed, _)
                | (Fle2Algorithm::Equality, PlaceholderType::Insert) => Some(placeholder.value),
                _ => None,
            };
            if let Some(value) = value {
                let (bson_type, expected) = value_bytes(value).expect("it was encrypted");
                let opened = match QeValue::parse(&out) {
                    Ok(QeValue::Unindexed(v)) => {
                        assert_eq!(v.bson_type(), bson_type, "unindexed type");
                        v.decrypt(key).expect("an unindexed payload decrypts")
                    }
                    _ => {
                        let iup =
                            InsertUpdatePayload::parse(&out).expect("an insert payload parses");
                        assert_eq!(iup.bson_type(), bson_type, "insert payload type");
                        iup.decrypt(key).expect("an insert payload decrypts")
                    }
                };
                assert_eq!(&opened[..], &expected[..], "the payload holds the value");
            }
        }
    }
    if let Ok(expression) = bson::RawDocument::from_bytes(data) {
        let range = RangeOptions {
            min: Some(bson::Bson::Int32(-1000)),
            max: Some(bson::Bson::Int32(1000)),
            sparsity: Some(2),
            trim_factor: Some(3),
            precision: None,
        };
        let options = QeEncryptOptions {
            algorithm: QeAlgorithm::Range,
            contention_factor: Some(4),
            query_type: Some(QueryType::Range),
            range_options: Some(&range),
        };
        let keys = QeKeys {
            user: QeKey {
                id: [0x11; 16],
                key,
            },
            index: None,
        };
        let _ = encrypt_range_expression(expression, keys, &options, 7);
    }
    qe_range_math(data);
}

/// Edges and minimal covers of every type on parameters read from the
/// first 64 bytes of `data` (zero-padded).
#[cfg(feature = "qe")]
fn qe_range_math(data: &[u8]) {
    use crate::qe::range::MAX_MINCOVER_EDGES;
    use crate::qe::range::edges::{
        EdgesArgs, edges_decimal128, edges_double, edges_int32, edges_int64,
    };
    use crate::qe::range::mincover::{
        MincoverArgs, mincover_decimal128, mincover_double, mincover_int32, mincover_int64,
    };

    /// Sparsity, trim factor, and whether the query bounds are included.
    #[derive(Clone, Copy)]
    struct Knobs {
        sparsity: u64,
        trim_factor: Option<i32>,
        include_lower: bool,
        include_upper: bool,
    }
    fn edges<T>(
        k: Knobs,
        value: T,
        bounds: Option<(T, T)>,
        precision: Option<i32>,
    ) -> EdgesArgs<T> {
        let (min, max) = match bounds {
            Some((lo, hi)) => (Some(lo), Some(hi)),
            None => (None, None),
        };
        EdgesArgs {
            value,
            min,
            max,
            precision,
            sparsity: k.sparsity,
            trim_factor: k.trim_factor,
        }
    }
    fn cover<T>(
        k: Knobs,
        (lower, upper): (T, T),
        bounds: Option<(T, T)>,
        precision: Option<i32>,
    ) -> MincoverArgs<T> {
        let (min, max) = match bounds {
            Some((lo, hi)) => (Some(lo), Some(hi)),
            None => (None, None),
        };
        MincoverArgs {
            lower_bound: lower,
            include_lower_bound: k.include_lower,
            upper_bound: upper,
            include_upper_bound: k.include_upper,
            min,
            max,
            precision,
            sparsity: k.sparsity,
            trim_factor: k.trim_factor,
        }
    }
    fn check(edges: &[String]) {
        assert!(edges.len() <= MAX_MINCOVER_EDGES, "too many edges");
        for e in edges {
            assert!(
                e == "root" || (e.len() <= 128 && e.bytes().all(|c| c == b'0' || c == b'1')),
                "not an edge: {e}"
            );
        }
    }

    let mut b = [0u8; 64];
    let n = data.len().min(64);
    b[..n].copy_from_slice(&data[..n]);
    let word = |i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[i..i + 8]);
        u64::from_le_bytes(w)
    };
    let block = |i: usize| {
        let mut w = [0u8; 16];
        w.copy_from_slice(&b[i..i + 16]);
        w
    };
    let flags = b[0];
    let k = Knobs {
        sparsity: u64::from(b[1] % 9),
        trim_factor: (flags & 1 == 1).then_some(i32::from(b[2] as i8)),
        include_lower: flags & 8 == 8,
        include_upper: flags & 16 == 16,
    };
    let precision = (flags & 2 == 2).then_some(i32::from(b[3] as i8));
    let bounded = flags & 4 == 4;
    let (v, lo, hi, q) = (word(8), word(16), word(24), word(32));

    let (v32, lo32, hi32, q32) = (v as i32, lo as i32, hi as i32, q as i32);
    let bounds32 = bounded.then_some((lo32, hi32));
    if let Ok(e) = edges_int32(edges(k, v32, bounds32, None)) {
        check(e.as_slice());
    }
    if let Ok(c) = mincover_int32(cover(k, (v32, q32), bounds32, None)) {
        check(c.as_slice());
    }
    let (v64, lo64, hi64, q64) = (v as i64, lo as i64, hi as i64, q as i64);
    let bounds64 = bounded.then_some((lo64, hi64));
    if let Ok(e) = edges_int64(edges(k, v64, bounds64, None)) {
        check(e.as_slice());
    }
    if let Ok(c) = mincover_int64(cover(k, (v64, q64), bounds64, None)) {
        check(c.as_slice());
    }
    // Arbitrary bit patterns, and small values over small bounds (which
    // reach precision mode).
    let (vf, qf) = (f64::from_bits(v), f64::from_bits(q));
    let bounds_f = bounded.then_some((f64::from(lo as i16), f64::from(hi as i16) + 0.5));
    let precision_f = bounds_f.and(precision);
    if let Ok(e) = edges_double(edges(k, vf, bounds_f, precision_f)) {
        check(e.as_slice());
    }
    let small = (f64::from(v as i16) / 4.0, f64::from(q as i16) / 4.0);
    if let Ok(e) = edges_double(edges(k, small.0, bounds_f, precision_f)) {
        check(e.as_slice());
    }
    if let Ok(c) = mincover_double(cover(k, (vf, qf), bounds_f, precision_f)) {
        check(c.as_slice());
    }
    if let Ok(c) = mincover_double(cover(k, small, bounds_f, precision_f)) {
        check(c.as_slice());
    }
    if let Ok(e) = edges_decimal128(edges(k, block(40), None, None)) {
        check(e.as_slice());
    }
    if let Ok(c) = mincover_decimal128(cover(k, (block(40), block(48)), None, None)) {
        check(c.as_slice());
    }
}

/// A KMIP reply (`fuzz/fuzz_targets/kmip_response.rs`), as a hostile or
/// broken KMIP server may send it: `data` decoded as TTLV, framed as the
/// transport reads it off the connection, and read by each of the four
/// reply parsers. Each must return an error or a result, never panic.
/// Oracles: a decoded message holds no more items than it has 8-byte
/// headers (the decoder never allocates for items the input did not pay
/// for), and re-encodes, with zero padding, to the same length and the
/// same items; the framer hands back exactly the bytes its header
/// announced, at most [`MAX_RESPONSE_LEN`](crate::kms::kmip::MAX_RESPONSE_LEN);
/// a Unique Identifier read is one a key document can store; a server's
/// Result Message in an error is shortened and free of control
/// characters.
#[cfg(feature = "kmip")]
pub fn kmip_response(data: &[u8]) {
    use crate::kms::kmip::response::{MAX_MESSAGE_CHARS, MAX_UNIQUE_IDENTIFIER_LEN};
    use crate::kms::kmip::ttlv::{self, HEADER_LEN};
    use crate::kms::kmip::{self, IV_LEN, MAX_RESPONSE_LEN, ResponseFramer};

    if let Ok(items) = ttlv::decode(data) {
        assert!(
            kmip_item_count(&items).saturating_mul(HEADER_LEN) <= data.len(),
            "more items than headers"
        );
        let mut writer = ttlv::Writer::with_capacity(data.len());
        let mut encodable = true;
        kmip_write_items(&mut writer, &items, &mut encodable);
        if encodable {
            let again = writer
                .finish()
                .expect("no item is longer than the input it came from");
            assert_eq!(again.len(), data.len(), "re-encoded length");
            let decoded = ttlv::decode(&again).expect("a re-encoded message decodes");
            assert_eq!(decoded, items, "re-encoded items");
        }
    }

    // Framed as the transport reads it: what the framer asks for, in turn.
    let mut framer = ResponseFramer::new();
    let mut rest = data;
    while !framer.is_complete() {
        let want = framer.wants_bytes().min(rest.len());
        if want == 0 {
            break;
        }
        let (chunk, tail) = rest.split_at(want);
        if framer.feed(chunk).is_err() {
            break;
        }
        rest = tail;
    }
    if framer.is_complete() {
        let reply = framer.take_message().expect("a complete reply");
        assert!(reply.len() <= MAX_RESPONSE_LEN, "reply over the cap");
        assert_eq!(
            reply.as_slice(),
            data.get(..reply.len())
                .expect("the reply came from the input"),
            "the framed reply is the start of the input"
        );
    }
    // All at once: the whole input is the reply, or it is refused.
    let mut framer = ResponseFramer::new();
    if framer.feed(data).is_ok() && framer.is_complete() {
        let reply = framer.take_message().expect("a complete reply");
        assert_eq!(reply.as_slice(), data, "one feed, one reply");
    }

    let check = |e: &kmip::Error| {
        let _ = e.to_string();
        if let kmip::Error::Failed { message, .. } = e {
            assert!(
                message.chars().count() <= MAX_MESSAGE_CHARS,
                "the server's message was not shortened"
            );
            assert!(
                !message.chars().any(char::is_control),
                "a control character was passed on"
            );
        }
    };
    match kmip::parse_unique_identifier(data) {
        Ok(id) => assert!(
            !id.is_empty() && id.len() <= MAX_UNIQUE_IDENTIFIER_LEN && !id.contains('\0'),
            "a Unique Identifier a key document cannot store"
        ),
        Err(e) => check(&e),
    }
    match kmip::parse_secret_data(data) {
        Ok(secret) => assert!(secret.len() <= data.len()),
        Err(e) => check(&e),
    }
    match kmip::parse_encrypt(data) {
        Ok(encrypted) => assert_eq!(
            encrypted.key_material().len(),
            IV_LEN + encrypted.data().len(),
            "keyMaterial is the IV and the ciphertext"
        ),
        Err(e) => check(&e),
    }
    match kmip::parse_decrypt(data) {
        Ok(plaintext) => assert!(plaintext.len() <= data.len()),
        Err(e) => check(&e),
    }
}

/// How many items `items` holds, nested ones included.
#[cfg(feature = "kmip")]
fn kmip_item_count(items: &[crate::kms::kmip::ttlv::Item<'_>]) -> usize {
    items
        .iter()
        .map(|item| 1 + item.children().map_or(0, kmip_item_count))
        .sum()
}

/// Writes `items` again; clears `encodable` for what the writer cannot
/// write (a Big Integer, a Text String that is not UTF-8).
#[cfg(feature = "kmip")]
fn kmip_write_items(
    w: &mut crate::kms::kmip::ttlv::Writer,
    items: &[crate::kms::kmip::ttlv::Item<'_>],
    encodable: &mut bool,
) {
    use crate::kms::kmip::ttlv::Value;
    for item in items {
        let tag = item.tag();
        match item.value() {
            Value::Structure(children) => {
                w.structure(tag, |w| kmip_write_items(w, children, encodable));
            }
            Value::Integer(v) => w.integer(tag, *v),
            Value::LongInteger(v) => w.long_integer(tag, *v),
            Value::Enumeration(v) => w.enumeration(tag, *v),
            Value::Boolean(v) => w.boolean(tag, *v),
            Value::TextString(bytes) => match std::str::from_utf8(bytes) {
                Ok(text) => w.text_string(tag, text),
                Err(_) => *encodable = false,
            },
            Value::ByteString(bytes) => w.byte_string(tag, bytes),
            Value::DateTime(v) => w.date_time(tag, *v),
            Value::Interval(v) => w.interval(tag, *v),
            // csfle never sends one, so the writer has no Big Integer.
            Value::BigInteger(_) => *encodable = false,
        }
    }
}

#[cfg(test)]
mod tests {
    /// The Queryable Encryption generator and oracle of
    /// `rewrite_queryable`: thousands of generated commands putting
    /// secrets where QE fields meet them, none of which may send one.
    #[cfg(feature = "qe")]
    #[test]
    fn generated_queryable_commands_never_send_a_secret() {
        let enc = super::fixed_encrypter();
        let schema = super::rewrite_schema();
        // A fixed xorshift stream: the same inputs on every run.
        let mut state = 0x2545_F491_4F6C_DD1D_u64;
        let mut input = vec![0u8; 96];
        let mut sent = 0;
        for _ in 0..4_000 {
            for b in input.iter_mut() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *b = state as u8;
            }
            sent += usize::from(super::rewrite_queryable(&enc, &schema, &input));
        }
        eprintln!(
            "{sent} of 4000 generated QE commands sent (with placeholders), the rest refused"
        );
        // Both kinds occur.
        assert!((200..3_800).contains(&sent), "{sent} sent");
    }
}
