//! Finalization against libmongocrypt's automatic-encryption vectors,
//! vendored under `tests/data/libmongocrypt/` (Apache-2.0, snapshot
//! `3a65b40d`), driven as its `test/test-mongocrypt-ctx-encrypt.c` drives
//! them: the command query analysis returned (`mongocryptd-reply.json`'s
//! `result`, or the original command where the reply says nothing is to be
//! encrypted), libmongocrypt's random bytes in its order, its test keys
//! (`test/data/keys/`), its `encryptedFields` (an `encrypted-field-map.json`
//! entry or a `collinfo.json`'s options), and the command it sent, compared
//! byte for byte. Unit tests: the fixed random source exists only inside
//! the crate. The two vectors libmongocrypt checks with a random generator
//! and a pattern (`bulkWrite/simple`, `qe_keyAltName`) need a key only the
//! local KMS unwraps: they are in `tests/qe_finalize.rs`. Then csfle's own
//! refusals and placements.

use super::*;
use crate::qe::encrypted_fields::ParseMode;
use crate::qe::payload::PayloadError;
use crate::qe::range::RangeError;
use bson::RawDocumentBuf;
use bson::rawdoc;
use std::path::PathBuf;

// The reader of the vendored libmongocrypt files, shared with the
// integration tests (one module for the crate: `crate::qe::test_vectors`).
use crate::qe::test_vectors as qe_vectors;
use qe_vectors::hex;

fn data(rel: &str) -> PathBuf {
    qe_vectors::data_dir().join(rel)
}

fn text(rel: &str) -> String {
    let path = data(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// An Extended JSON file as a document (field order kept).
fn ejson(rel: &str) -> Document {
    qe_vectors::ejson_document(&text(rel))
}

/// The bytes of `RNG_DATA` in one of libmongocrypt's `RNG_DATA.h` files: a
/// C string literal split over lines, only `\xNN` escapes inside quotes.
fn rng_data_h(rel: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for line in text(rel).lines() {
        let (Some(start), Some(end)) = (line.find('"'), line.rfind('"')) else {
            continue;
        };
        assert!(end > start, "{rel}: one quote on a line");
        let mut rest = &line[start + 1..end];
        while !rest.is_empty() {
            let escape = rest
                .strip_prefix("\\x")
                .unwrap_or_else(|| panic!("{rel}: not a \\x escape: {rest}"));
            out.push(u8::from_str_radix(&escape[..2], 16).expect("hex escape"));
            rest = &escape[2..];
        }
    }
    assert!(!out.is_empty(), "{rel}: no RNG_DATA");
    out
}

const ABC_ID: &str = "abcdefab123498761234123456789012";
const K123_ID: &str = "12345678123498761234123456789012";

fn id(s: &str) -> [u8; 16] {
    hex(s).try_into().expect("16 bytes")
}

/// libmongocrypt's test keys `ABCDEFAB…` (the user key of its vectors) and
/// `12345678…` (the index key), the two its tests feed.
struct Keys {
    abc: QeDataKey,
    k123: QeDataKey,
}

impl Keys {
    fn load() -> Keys {
        let key = |name: &str| {
            let material = hex(text(&format!("keys/{name}-key-material.txt")).trim());
            QeDataKey::new(&material).expect("96-byte key")
        };
        Keys {
            abc: key("ABCDEFAB123498761234123456789012"),
            k123: key("12345678123498761234123456789012"),
        }
    }

    fn by_id(&self, key_id: &[u8; 16]) -> Option<&QeDataKey> {
        if *key_id == id(ABC_ID) {
            Some(&self.abc)
        } else if *key_id == id(K123_ID) {
            Some(&self.k123)
        } else {
            None
        }
    }
}

/// test-mongocrypt-ctx-encrypt.c: "First 16 bytes are IV for 'p' field in
/// FLE2InsertUpdatePayload. Second 16 bytes are IV for 'v' field."
const INDEXED_RNG: &str = "c743d675769ea788d5e5c440db240df94cd964104381e661fa1fa05c498ead21";
/// test-mongocrypt-ctx-encrypt.c: "16 bytes of random data are used for
/// IV. This IV produces the expected test ciphertext."
const UNINDEXED_RNG: &str = "4d069564f5a05e9e3523b98f575acb15";

fn bytes(doc: &Document) -> Vec<u8> {
    let mut out = Vec::new();
    doc.to_writer(&mut out).expect("a BSON document");
    out
}

/// Byte-equal, or a panic showing both.
fn assert_same(got: &Document, want: &Document, what: &str) {
    if bytes(got) != bytes(want) {
        panic!(
            "{what}: not byte-equal\n got: {}\nwant: {}",
            Bson::Document(got.clone()).into_relaxed_extjson(),
            Bson::Document(want.clone()).into_relaxed_extjson()
        );
    }
}

/// The document at `path` (keys) of `root`.
fn document_at<'d>(root: &'d Document, path: &[&str]) -> &'d Document {
    let mut doc = root;
    for key in path {
        doc = doc
            .get_document(key)
            .unwrap_or_else(|_| panic!("no document '{key}' on {path:?}"));
    }
    doc
}

/// The `encryptedFields` at `path` of the file `rel`, read in `mode`.
fn fields_at(rel: &str, path: &[&str], mode: ParseMode) -> EncryptedFields {
    let root = ejson(rel);
    EncryptedFields::from_document(document_at(&root, path), mode)
        .unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The bytes of the binary at `path` (keys, or indexes into arrays).
fn binary_at(root: &Document, path: &[&str]) -> Vec<u8> {
    let mut value = root
        .get(path[0])
        .unwrap_or_else(|| panic!("no '{}'", path[0]));
    for step in &path[1..] {
        value = match value {
            Bson::Document(d) => d.get(*step),
            Bson::Array(a) => a.get(step.parse::<usize>().expect("an index")),
            _ => None,
        }
        .unwrap_or_else(|| panic!("no '{step}' on {path:?}"));
    }
    match value {
        Bson::Binary(b) => b.bytes.clone(),
        other => panic!("{path:?} is {other:?}"),
    }
}

fn encrypted(bytes: Vec<u8>) -> Bson {
    Bson::Binary(payload::to_binary(bytes))
}

/// The command libmongocrypt finalizes (`_mongo_feed_markings`): the
/// reply's `result`, unless the reply says the schema needs no encryption
/// or there is no placeholder, when it keeps the original command.
fn marked_command(reply: &Document, original: impl FnOnce() -> Document) -> Document {
    let says_no = |field: &str| matches!(reply.get(field), Some(Bson::Boolean(false)));
    if says_no("schemaRequiresEncryption") || says_no("hasEncryptedPlaceholders") {
        return original();
    }
    reply.get_document("result").expect("result").clone()
}

/// Checked and skipped expectations of one directory, printed when done.
struct Tally {
    dir: &'static str,
    checked: usize,
    skipped: usize,
}

impl Tally {
    fn new(dir: &'static str) -> Tally {
        Tally {
            dir,
            checked: 0,
            skipped: 0,
        }
    }

    fn skip(&mut self, what: &str, reason: &str) {
        eprintln!("{}: skipped {what}: {reason}", self.dir);
        self.skipped += 1;
    }

    fn done(self) -> (usize, usize) {
        eprintln!(
            "{}: checked {}, skipped {}",
            self.dir, self.checked, self.skipped
        );
        (self.checked, self.skipped)
    }
}

/// One `_test_encrypt_fle2_encryption_placeholder` vector: `dir`'s reply,
/// its `encrypted-field-map.json` for `db.test`, the random bytes `rng`
/// (`exact`: all of them drawn), against `encrypted-payload.json`.
fn placeholder_vector(dir: &str, rng: Vec<u8>, exact: bool) -> Result<(), FinalizeError> {
    let keys = Keys::load();
    let reply = ejson(&format!("{dir}/mongocryptd-reply.json"));
    let command = marked_command(&reply, || ejson(&format!("{dir}/cmd.json")));
    let ids = placeholder_key_ids(&command)?;
    assert_eq!(ids, vec![id(K123_ID), id(ABC_ID)], "{dir}: the keys fed");
    let mut rng = QeRandom::fixed(rng);
    let out = encrypt_placeholders(&command, &|id| keys.by_id(id), &mut rng)?;
    if exact {
        assert_eq!(rng.fixed_remaining(), Some(0), "{dir}: random bytes left");
    }
    let fields = fields_at(
        &format!("{dir}/encrypted-field-map.json"),
        &["db.test"],
        ParseMode::Map,
    );
    let out = add_encryption_information(out, "db", &[("test", Some(&fields))])?;
    assert_same(&out, &ejson(&format!("{dir}/encrypted-payload.json")), dir);
    Ok(())
}

#[test]
fn fle2_insert_and_find_vectors() {
    let mut t = Tally::new("fle2-insert-v2");
    placeholder_vector("fle2-insert-v2", hex(INDEXED_RNG), true).unwrap();
    t.checked += 1;
    assert_eq!(t.done(), (1, 0));

    // An unindexed value alone: insert sent without encryptionInformation.
    let mut t = Tally::new("fle2-insert-unindexed-v2");
    placeholder_vector("fle2-insert-unindexed-v2", hex(UNINDEXED_RNG), true).unwrap();
    t.checked += 1;
    assert_eq!(t.done(), (1, 0));

    // The payloads byte for byte; the encryptionInformation cannot be built
    // from this directory's inputs (asserted, so the reason stays true).
    let dir = "fle2-find-equality-v2";
    let mut t = Tally::new(dir);
    let keys = Keys::load();
    let reply = ejson(&format!("{dir}/mongocryptd-reply.json"));
    let command = marked_command(&reply, || unreachable!("the reply has placeholders"));
    let mut rng = QeRandom::fixed(Vec::new());
    let out = encrypt_placeholders(&command, &|id| keys.by_id(id), &mut rng).unwrap();
    let mut want = ejson(&format!("{dir}/encrypted-payload.json"));
    want.remove(ENCRYPTION_INFORMATION).expect("sent with one");
    assert_same(&out, &want, dir);
    t.checked += 1;
    let map = ejson(&format!("{dir}/encrypted-field-map.json"));
    assert!(
        EncryptedFields::from_document(document_at(&map, &["db.test"]), ParseMode::Map).is_err()
    );
    assert_eq!(
        add_encryption_information(out, "db", &[]),
        Err(FinalizeError::UnsupportedCommand("documents".into()))
    );
    t.skip(
        "encryptionInformation",
        "its encryptedFields has bsonType 'int32', no BSON type alias (refused by csfle's parser), and its marked command's first field is 'documents', not the command name",
    );
    assert_eq!(t.done(), (1, 1));
}

#[test]
fn fle2_range_vectors() {
    const TYPES: [&str; 6] = [
        "int32",
        "int64",
        "date",
        "double",
        "double-precision",
        "decimal128",
    ];
    let precision_refused = |e: FinalizeError| {
        e == FinalizeError::Qe(QeError::Range(RangeError::Decimal128PrecisionUnsupported))
    };

    let mut t = Tally::new("fle2-insert-range");
    for ty in TYPES {
        // _test_encrypt_fle2_insert_range_payload_*: the RNG_DATA.h of the
        // type's directory without "-v2".
        let rng = rng_data_h(&format!("fle2-insert-range/{ty}/RNG_DATA.h"));
        placeholder_vector(&format!("fle2-insert-range/{ty}-v2"), rng, false)
            .unwrap_or_else(|e| panic!("{ty}: {e}"));
        t.checked += 1;
    }
    let rng = rng_data_h("fle2-insert-range/decimal128-precision/RNG_DATA.h");
    let e =
        placeholder_vector("fle2-insert-range/decimal128-precision-v2", rng, false).unwrap_err();
    assert!(precision_refused(e.clone()), "{e}");
    t.skip(
        "decimal128-precision-v2",
        "Decimal128 with precision is refused (typed)",
    );
    assert_eq!(t.done(), (6, 1));

    let mut t = Tally::new("fle2-find-range");
    for ty in TYPES {
        placeholder_vector(&format!("fle2-find-range/{ty}-v2"), Vec::new(), true)
            .unwrap_or_else(|e| panic!("{ty}: {e}"));
        t.checked += 1;
    }
    let e = placeholder_vector("fle2-find-range/decimal128-precision-v2", Vec::new(), true)
        .unwrap_err();
    assert!(precision_refused(e.clone()), "{e}");
    t.skip(
        "decimal128-precision-v2",
        "Decimal128 with precision is refused (typed)",
    );
    assert_eq!(t.done(), (6, 1));
}

/// `_test_encrypt_fle2_delete_v2`: five cases over two directories.
#[test]
fn fle2_delete_vectors() {
    let mut t = Tally::new("fle2-delete");
    let keys = Keys::load();
    let collinfo = |dir: &str| {
        fields_at(
            &format!("fle2-delete/{dir}/collinfo.json"),
            &["options", "encryptedFields"],
            ParseMode::Remote,
        )
    };
    let map = |dir: &str| {
        fields_at(
            &format!("fle2-delete/{dir}/encrypted-field-config-map.json"),
            &["db.test"],
            ParseMode::Map,
        )
    };

    // "success", with the collection's and with the map's encryptedFields.
    let reply = ejson("fle2-delete/success/mongocryptd-reply.json");
    let command = marked_command(&reply, || unreachable!("the reply has placeholders"));
    assert_eq!(
        placeholder_key_ids(&command).unwrap(),
        vec![id(K123_ID), id(ABC_ID)]
    );
    let want = ejson("fle2-delete/success/encrypted-payload-v2.json");
    for fields in [collinfo("success"), map("success")] {
        let mut rng = QeRandom::fixed(Vec::new());
        let out = encrypt_placeholders(&command, &|id| keys.by_id(id), &mut rng).unwrap();
        let out = add_encryption_information(out, "db", &[("test", Some(&fields))]).unwrap();
        assert_same(&out, &want, "fle2-delete/success");
        t.checked += 1;
    }

    // "empty": the reply has no placeholder, the original command is sent
    // with encryptionInformation (delete always carries it, no delete
    // tokens in v2); with query analysis, and bypassing it with the
    // collection's and with the map's encryptedFields.
    let original = ejson("fle2-delete/empty/cmd.json");
    let reply = ejson("fle2-delete/empty/mongocryptd-reply.json");
    let command = marked_command(&reply, || original.clone());
    assert_same(&command, &original, "the original command");
    assert_eq!(
        placeholder_key_ids(&command).unwrap(),
        Vec::<[u8; 16]>::new()
    );
    let want = ejson("fle2-delete/empty/encrypted-payload-v2.json");
    let fields = collinfo("empty");
    let out = add_encryption_information(command, "db", &[("test", Some(&fields))]).unwrap();
    assert_same(&out, &want, "fle2-delete/empty");
    t.checked += 1;
    for fields in [collinfo("empty"), map("empty")] {
        let out = add_encryption_information_bypassing_analysis(
            original.clone(),
            "db",
            &[("test", Some(&fields))],
        )
        .unwrap();
        assert_same(&out, &want, "fle2-delete/empty, bypassQueryAnalysis");
        t.checked += 1;
    }
    assert_eq!(t.done(), (5, 0));
}

/// `_test_encrypt_fle2_explain_with_mongocryptd`, and the crypt_shared
/// variant, which libmongocrypt runs only with a real crypt_shared library
/// and no recorded reply: its input is built here from its expected output
/// (the payload swapped back for the same placeholder mongocryptd returned,
/// `encryptionInformation` removed), which checks the placement beside
/// `verbosity` but not crypt_shared's analysis.
#[test]
fn fle2_explain_vectors() {
    let mut t = Tally::new("fle2-explain");
    let keys = Keys::load();
    let reply = ejson("fle2-explain/with-mongocryptd/mongocryptd-reply.json");
    let command = marked_command(&reply, || unreachable!("the reply has placeholders"));
    let mut rng = QeRandom::fixed(Vec::new());
    let out = encrypt_placeholders(&command, &|id| keys.by_id(id), &mut rng).unwrap();
    let fields = fields_at(
        "fle2-explain/with-mongocryptd/collinfo.json",
        &["options", "encryptedFields"],
        ParseMode::Remote,
    );
    let out = add_encryption_information(out, "db", &[("test", Some(&fields))]).unwrap();
    assert_same(
        &out,
        &ejson("fle2-explain/with-mongocryptd/encrypted-payload.json"),
        "fle2-explain/with-mongocryptd",
    );
    t.checked += 1;

    let marked = binary_at(&command, &["explain", "filter", "value"]);
    let want = ejson("fle2-explain/with-csfle/encrypted-payload.json");
    let mut input = want.clone();
    let explained = input.get_document_mut("explain").unwrap();
    explained
        .remove(ENCRYPTION_INFORMATION)
        .expect("sent with one");
    explained
        .get_document_mut("filter")
        .unwrap()
        .get_document_mut("value")
        .unwrap()
        .insert("$eq", encrypted(marked));
    let mut rng = QeRandom::fixed(Vec::new());
    let out = encrypt_placeholders(&input, &|id| keys.by_id(id), &mut rng).unwrap();
    let fields = fields_at(
        "fle2-explain/with-csfle/collinfo.json",
        &["options", "encryptedFields"],
        ParseMode::Remote,
    );
    let out = add_encryption_information(out, "db", &[("test", Some(&fields))]).unwrap();
    assert_same(&out, &want, "fle2-explain/with-csfle (input built)");
    t.checked += 1;
    assert_eq!(t.done(), (2, 0));
}

/// `_test_bulkWrite`'s deterministic cases.
#[test]
fn bulk_write_vectors() {
    let mut t = Tally::new("bulkWrite");
    // To an unencrypted collection: no encryptedFields anywhere, the
    // original command unchanged (libmongocrypt's FLE1 finalization).
    let original = ejson("bulkWrite/unencrypted/cmd.json");
    let reply = ejson("bulkWrite/unencrypted/mongocryptd-reply.json");
    let command = marked_command(&reply, || original.clone());
    assert_same(&command, &original, "the original command");
    let out = add_encryption_information(command, "db", &[("test", None)]).unwrap();
    assert_same(
        &out,
        &ejson("bulkWrite/unencrypted/payload.json"),
        "bulkWrite/unencrypted",
    );
    t.checked += 1;

    // bypassQueryAnalysis: encryptionInformation in nsInfo's entry, nsInfo
    // moved last.
    let fields = fields_at(
        "bulkWrite/simple/encrypted-field-map.json",
        &["db.test"],
        ParseMode::Map,
    );
    let out = add_encryption_information_bypassing_analysis(
        ejson("bulkWrite/simple/cmd.json"),
        "db",
        &[("test", Some(&fields))],
    )
    .unwrap();
    assert_same(
        &out,
        &ejson("bulkWrite/bypassQueryAnalysis/payload.json"),
        "bulkWrite/bypassQueryAnalysis",
    );
    t.checked += 1;
    t.skip(
        "simple",
        "libmongocrypt encrypts with a random generator and matches a pattern: checked so, decrypting the payload, in tests/qe_finalize.rs",
    );
    assert_eq!(t.done(), (2, 1));
}

/// `_test_qe_keyAltName_create` and `_test_qe_keyAltName_bypassQueryAnalysis`.
#[test]
fn qe_key_alt_name_vectors() {
    let mut t = Tally::new("qe_keyAltName");
    // create: never encryptionInformation; the reply's command is sent.
    let reply = ejson("qe_keyAltName/create/reply-from-mongocryptd.json");
    let command = marked_command(&reply, || unreachable!("schemaRequiresEncryption"));
    let fields = fields_at(
        "qe_keyAltName/create/cmd-to-mongod.json",
        &["encryptedFields"],
        ParseMode::Remote,
    );
    let out = add_encryption_information(command, "db", &[("coll", Some(&fields))]).unwrap();
    assert_same(
        &out,
        &ejson("qe_keyAltName/create/cmd-to-mongod.json"),
        "qe_keyAltName/create",
    );
    t.checked += 1;

    // bypassQueryAnalysis with an explicitly encrypted unindexed value
    // (inline in the C test): an insert without a payload the server
    // processes, sent as given.
    let payload = base64_payload(
        "EGFhYWFhYWFhYWFhYWFhYWECkUA+gYv1gIVjuofdGj59/OkHB79F1ywPjR8aTMbCvVRfmJBNw2nh2/b0tTOhTZkNp/VUSyGycvUxcNFUyh1gmg==",
    );
    let command = doc! { "insert": "coll", "documents": [{ "secret": encrypted(payload) }] };
    let fields = EncryptedFields::from_document(
        &doc! { "fields": [{ "path": "secret", "bsonType": "string", "keyAltName": "keyDocumentName" }] },
        ParseMode::Map,
    )
    .unwrap();
    let out = add_encryption_information_bypassing_analysis(
        command.clone(),
        "db",
        &[("coll", Some(&fields))],
    )
    .unwrap();
    assert_same(&out, &command, "qe_keyAltName, bypassQueryAnalysis");
    t.checked += 1;
    t.skip(
        "reply-from-mongocryptd.json",
        "libmongocrypt encrypts with a random generator and matches a pattern: checked so, decrypting the payload, in tests/qe_finalize.rs",
    );
    assert_eq!(t.done(), (2, 1));
}

fn base64_payload(b64: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("base64")
}

/// A placeholder binary for `doc`.
fn placeholder(doc: RawDocumentBuf) -> Bson {
    let mut out = vec![ENCRYPTION_PLACEHOLDER];
    out.extend_from_slice(doc.as_bytes());
    encrypted(out)
}

fn uuid(b: u8) -> Binary {
    Binary {
        subtype: BinarySubtype::Uuid,
        bytes: vec![b; 16],
    }
}

/// The placeholders and payloads of three vectors: unindexed insert,
/// indexed insert, equality find.
struct Known {
    unindexed: (Vec<u8>, Vec<u8>),
    indexed: (Vec<u8>, Vec<u8>),
    find: (Vec<u8>, Vec<u8>),
}

fn known() -> Known {
    let pair = |dir: &str, path: &[&str]| {
        let reply = ejson(&format!("{dir}/mongocryptd-reply.json"));
        let result = reply.get_document("result").unwrap();
        let sent = ejson(&format!("{dir}/encrypted-payload.json"));
        (binary_at(result, path), binary_at(&sent, path))
    };
    Known {
        unindexed: pair("fle2-insert-unindexed-v2", &["documents", "0", "encrypted"]),
        indexed: pair("fle2-insert-v2", &["documents", "0", "ssn"]),
        find: pair("fle2-find-equality-v2", &["documents", "0", "value"]),
    }
}

/// Placeholders anywhere (arrays, nested documents, pipelines, a
/// JavaScript scope) are replaced, randomness drawn in document order.
#[test]
fn placeholders_everywhere_in_document_order() {
    let keys = Keys::load();
    let k = known();
    let command = doc! {
        "insert": "test",
        "documents": [
            { "a": encrypted(k.unindexed.0.clone()) },
            { "nested": [{ "b": encrypted(k.indexed.0.clone()) }] },
        ],
    };
    let mut rng = QeRandom::fixed([hex(UNINDEXED_RNG), hex(INDEXED_RNG)].concat());
    let out = encrypt_placeholders(&command, &|id| keys.by_id(id), &mut rng).unwrap();
    assert_eq!(rng.fixed_remaining(), Some(0));
    let want = doc! {
        "insert": "test",
        "documents": [
            { "a": encrypted(k.unindexed.1.clone()) },
            { "nested": [{ "b": encrypted(k.indexed.1.clone()) }] },
        ],
    };
    assert_same(&out, &want, "two inserts, document order");

    // The same bytes in the other order do not give these payloads.
    let mut rng = QeRandom::fixed([hex(INDEXED_RNG), hex(UNINDEXED_RNG)].concat());
    let other = encrypt_placeholders(&command, &|id| keys.by_id(id), &mut rng).unwrap();
    assert_ne!(bytes(&other), bytes(&want));

    let find = || encrypted(k.find.0.clone());
    let command = doc! {
        "aggregate": "test",
        "pipeline": [
            { "$match": { "value": { "$in": [find(), find()] } } },
            { "$lookup": { "from": "test", "as": "x", "pipeline": [{ "$match": { "value": find() } }] } },
            { "$match": { "$where": Bson::JavaScriptCodeWithScope(JavaScriptCodeWithScope {
                code: "f()".into(), scope: doc! { "v": find() } }) } },
        ],
        "cursor": {},
    };
    assert_eq!(
        placeholder_key_ids(&command).unwrap(),
        vec![id(K123_ID), id(ABC_ID)]
    );
    let mut rng = QeRandom::fixed(Vec::new());
    let out = encrypt_placeholders(&command, &|id| keys.by_id(id), &mut rng).unwrap();
    let sent = || encrypted(k.find.1.clone());
    let want = doc! {
        "aggregate": "test",
        "pipeline": [
            { "$match": { "value": { "$in": [sent(), sent()] } } },
            { "$lookup": { "from": "test", "as": "x", "pipeline": [{ "$match": { "value": sent() } }] } },
            { "$match": { "$where": Bson::JavaScriptCodeWithScope(JavaScriptCodeWithScope {
                code: "f()".into(), scope: doc! { "v": sent() } }) } },
        ],
        "cursor": {},
    };
    assert_same(&out, &want, "pipelines");
}

#[test]
fn other_encrypted_values_are_refused() {
    let keys = Keys::load();
    let k = known();
    let with = |v: Bson| doc! { "find": "test", "filter": { "a": [1, { "b": v }] } };
    let run = |command: &Document| {
        let ids = placeholder_key_ids(command);
        let mut rng = QeRandom::fixed(Vec::new());
        let out = encrypt_placeholders(command, &|id| keys.by_id(id), &mut rng);
        assert_eq!(ids.clone().err(), out.clone().err());
        out.unwrap_err()
    };
    let marking = encrypted([&[0u8][..], &bytes(&doc! { "a": 1, "v": "x" })[..]].concat());
    assert_eq!(run(&with(marking)), FinalizeError::Fle1Marking);
    assert_eq!(
        run(&with(encrypted(k.find.1.clone()))),
        FinalizeError::UnexpectedEncryptedValue(12)
    );
    assert_eq!(
        run(&with(encrypted(Vec::new()))),
        FinalizeError::EmptyEncryptedValue
    );
    // Checked before anything is encrypted: a placeholder before the
    // refused value draws nothing.
    let command = doc! {
        "insert": "test",
        "documents": [{ "a": encrypted(k.indexed.0.clone()), "b": encrypted(vec![2, 0]) }],
    };
    let mut rng = QeRandom::fixed(hex(INDEXED_RNG));
    assert_eq!(
        encrypt_placeholders(&command, &|id| keys.by_id(id), &mut rng),
        Err(FinalizeError::UnexpectedEncryptedValue(2))
    );
    assert_eq!(rng.fixed_remaining(), Some(32));
}

#[test]
fn placeholders_that_cannot_be_encrypted_are_refused() {
    let keys = Keys::load();
    let k = known();
    // A key not supplied; the plaintext is in no error.
    let canary = rawdoc! {
        "t": 1, "a": 2, "ki": uuid(7), "ku": uuid(8), "v": "plaintext-canary", "cm": 0i64,
    };
    let command = doc! { "insert": "test", "documents": [{ "a": placeholder(canary) }] };
    assert_eq!(
        placeholder_key_ids(&command).unwrap(),
        vec![[7; 16], [8; 16]]
    );
    let mut rng = QeRandom::fixed(hex(INDEXED_RNG));
    let e = encrypt_placeholders(&command, &|id| keys.by_id(id), &mut rng).unwrap_err();
    assert!(
        matches!(
            e,
            FinalizeError::Qe(QeError::Payload(PayloadError::KeyNotFound {
                role: "index",
                ..
            }))
        ),
        "{e:?}"
    );
    assert!(!format!("{e} {e:?}").contains("plaintext-canary"));

    // Text search: refused before keys are fetched.
    let text = rawdoc! { "t": 1, "a": 4, "ki": uuid(7), "ku": uuid(7), "v": "x", "cm": 0i64 };
    let command = doc! { "insert": "test", "documents": [{ "a": placeholder(text) }] };
    let refused = FinalizeError::Qe(QeError::Payload(PayloadError::TextSearchUnsupported));
    assert_eq!(placeholder_key_ids(&command), Err(refused.clone()));
    let mut rng = QeRandom::fixed(Vec::new());
    assert_eq!(
        encrypt_placeholders(&command, &|id| keys.by_id(id), &mut rng),
        Err(refused)
    );

    // Malformed: an unknown field.
    let bad = rawdoc! { "t": 1, "a": 2, "ki": uuid(7), "ku": uuid(7), "v": 1, "cm": 0i64, "zz": 1 };
    let command = doc! { "insert": "test", "documents": [{ "a": placeholder(bad) }] };
    assert!(matches!(
        placeholder_key_ids(&command),
        Err(FinalizeError::Qe(QeError::Payload(
            PayloadError::UnknownField { .. }
        )))
    ));

    // The random source runs out half-way: an error, nothing partial.
    let command = doc! {
        "insert": "test",
        "documents": [{ "a": encrypted(k.indexed.0.clone()) }, { "a": encrypted(k.indexed.0.clone()) }],
    };
    let mut rng = QeRandom::fixed(hex(INDEXED_RNG));
    assert_eq!(
        encrypt_placeholders(&command, &|id| keys.by_id(id), &mut rng),
        Err(FinalizeError::Qe(QeError::RandomExhausted))
    );
}

/// A command whose deepest value is at depth `levels` (the filter's value
/// is at depth 1).
fn deep(levels: usize, leaf: Bson) -> Document {
    let mut value = leaf;
    for _ in 1..levels {
        value = Bson::Document(doc! { "a": value });
    }
    doc! { "find": "test", "filter": value }
}

#[test]
fn nesting_is_bounded() {
    let keys = Keys::load();
    let k = known();
    let fields = EncryptedFields::from_document(&doc! { "fields": [] }, ParseMode::Remote).unwrap();
    let schemas = [("test", Some(&fields))];

    let at_limit = deep(MAX_NESTING, encrypted(k.find.0.clone()));
    assert_eq!(placeholder_key_ids(&at_limit).unwrap().len(), 2);
    let mut rng = QeRandom::fixed(Vec::new());
    let out = encrypt_placeholders(&at_limit, &|id| keys.by_id(id), &mut rng).unwrap();
    let out = add_encryption_information(out, "db", &schemas).unwrap();
    assert!(out.contains_key(ENCRYPTION_INFORMATION));

    let too_deep = deep(MAX_NESTING + 1, encrypted(k.find.0.clone()));
    let refused = FinalizeError::TooDeep { limit: MAX_NESTING };
    assert_eq!(placeholder_key_ids(&too_deep), Err(refused.clone()));
    let mut rng = QeRandom::fixed(Vec::new());
    assert_eq!(
        encrypt_placeholders(&too_deep, &|id| keys.by_id(id), &mut rng),
        Err(refused.clone())
    );
    let plain = deep(MAX_NESTING + 1, Bson::Int32(1));
    assert_eq!(
        add_encryption_information(plain.clone(), "db", &schemas),
        Err(refused.clone())
    );
    assert_eq!(
        add_encryption_information_bypassing_analysis(plain, "db", &schemas),
        Err(refused)
    );
}

/// A payload as far as this step looks at one: its first byte.
fn payload_of(first: u8) -> Bson {
    encrypted(vec![first, 0, 0])
}

#[test]
fn which_commands_carry_encryption_information() {
    let fields = EncryptedFields::from_document(&doc! { "fields": [] }, ParseMode::Remote).unwrap();
    let schemas = [("coll", Some(&fields))];
    let info = doc! {
        "type": 1,
        "schema": { "db.coll": {
            "fields": [], "escCollection": "enxcol_.coll.esc", "ecocCollection": "enxcol_.coll.ecoc",
        } },
    };
    let with_info = |mut command: Document| {
        command.insert(ENCRYPTION_INFORMATION, info.clone());
        command
    };

    // libmongocrypt's _test_encrypt_fle2_omits_encryptionInformation: a
    // find without payloads is sent as it is.
    let out = add_encryption_information(doc! { "find": "coll" }, "db", &schemas).unwrap();
    assert_same(&out, &doc! { "find": "coll" }, "find without payload");

    for name in ["find", "aggregate", "count", "distinct", "insert"] {
        // A stale encryptionInformation is removed.
        let command =
            doc! { name: "coll", "x": { "y": payload_of(16) }, ENCRYPTION_INFORMATION: {} };
        let out = add_encryption_information(command, "db", &schemas).unwrap();
        assert_same(
            &out,
            &doc! { name: "coll", "x": { "y": payload_of(16) } },
            name,
        );
        for first in NEED_ENCRYPTION_INFORMATION {
            let command = doc! { name: "coll", "x": [payload_of(first)] };
            let out = add_encryption_information(command.clone(), "db", &schemas).unwrap();
            assert_same(&out, &with_info(command), name);
        }
    }
    for name in ["update", "delete", "findAndModify"] {
        let command = doc! { name: "coll", ENCRYPTION_INFORMATION: {}, "x": 1 };
        let out = add_encryption_information(command, "db", &schemas).unwrap();
        assert_same(&out, &with_info(doc! { name: "coll", "x": 1 }), name);
    }
    for name in ["create", "collMod", "createIndexes"] {
        let command = doc! { name: "coll", "x": payload_of(11), ENCRYPTION_INFORMATION: {} };
        let out = add_encryption_information(command, "db", &schemas).unwrap();
        assert_same(&out, &doc! { name: "coll", "x": payload_of(11) }, name);
    }
    for name in [
        "compactStructuredEncryptionData",
        "cleanupStructuredEncryptionData",
        "getMore",
        "findandmodify",
        "dropDatabase",
    ] {
        assert_eq!(
            add_encryption_information(doc! { name: "coll" }, "db", &schemas),
            Err(FinalizeError::UnsupportedCommand(name.into()))
        );
    }
    assert_eq!(
        add_encryption_information(Document::new(), "db", &schemas),
        Err(FinalizeError::EmptyCommand)
    );

    // Several collections in the order given; one without encryptedFields
    // gets libmongocrypt's empty configuration.
    let command = doc! { "delete": "coll" };
    let out =
        add_encryption_information(command, "db", &[("coll", Some(&fields)), ("other", None)])
            .unwrap();
    let want = doc! { "delete": "coll", ENCRYPTION_INFORMATION: {
        "type": 1,
        "schema": {
            "db.coll": {
                "fields": [], "escCollection": "enxcol_.coll.esc", "ecocCollection": "enxcol_.coll.ecoc",
            },
            "db.other": {
                "escCollection": "enxcol_.other.esc", "ecocCollection": "enxcol_.other.ecoc", "fields": [],
            },
        },
    } };
    assert_same(&out, &want, "two collections");

    // No encryptedFields at all: unchanged, stale field and all.
    let command = doc! { "delete": "coll", ENCRYPTION_INFORMATION: {} };
    let out = add_encryption_information(command.clone(), "db", &[("coll", None)]).unwrap();
    assert_same(&out, &command, "no encryptedFields");
}

#[test]
fn placeholders_left_and_bad_schemas_are_refused() {
    let fields = EncryptedFields::from_document(&doc! { "fields": [] }, ParseMode::Remote).unwrap();
    let schemas = [("coll", Some(&fields))];
    for first in [ENCRYPTION_PLACEHOLDER, FLE1_MARKING] {
        let command = doc! { "delete": "coll", "deletes": [{ "q": { "a": payload_of(first) } }] };
        assert_eq!(
            add_encryption_information(command.clone(), "db", &schemas),
            Err(FinalizeError::PlaceholderLeft(first))
        );
        assert_eq!(
            add_encryption_information_bypassing_analysis(command.clone(), "db", &schemas),
            Err(FinalizeError::PlaceholderLeft(first))
        );
        // Even where no encryptionInformation would be added.
        assert_eq!(
            add_encryption_information(command, "db", &[("coll", None)]),
            Err(FinalizeError::PlaceholderLeft(first))
        );
    }
    let delete = || doc! { "delete": "coll" };
    assert_eq!(
        add_encryption_information(delete(), "db", &[("coll", Some(&fields)), ("coll", None)]),
        Err(FinalizeError::DuplicateCollection("coll".into()))
    );
    for db in ["", "a.b", "a\0b"] {
        assert_eq!(
            add_encryption_information(delete(), db, &schemas),
            Err(FinalizeError::InvalidDatabase(db.into()))
        );
    }
    assert_eq!(
        add_encryption_information(delete(), "db", &[("coll", Some(&fields)), ("", None)]),
        Err(FinalizeError::InvalidCollection(String::new()))
    );
    // A keyAltName not resolved to a key id.
    let unresolved = EncryptedFields::from_document(
        &doc! { "fields": [{ "path": "s", "bsonType": "string", "keyAltName": "name" }] },
        ParseMode::Map,
    )
    .unwrap();
    assert!(matches!(
        add_encryption_information(delete(), "db", &[("coll", Some(&unresolved))]),
        Err(FinalizeError::EncryptedFields(_))
    ));
}

#[test]
fn explain_and_bulk_write_placement() {
    let fields = EncryptedFields::from_document(&doc! { "fields": [] }, ParseMode::Remote).unwrap();
    let schemas = [("coll", Some(&fields))];
    let info = encryption_information("db", &schemas).unwrap();

    // explain: inside the explained command, a stale one replaced, the
    // rest after it.
    let command = doc! {
        "explain": { "find": "coll", ENCRYPTION_INFORMATION: {}, "filter": {} },
        "verbosity": "queryPlanner",
    };
    let out = add_encryption_information(command, "db", &schemas).unwrap();
    let want = doc! {
        "explain": { "find": "coll", "filter": {}, ENCRYPTION_INFORMATION: info.clone() },
        "verbosity": "queryPlanner",
    };
    assert_same(&out, &want, "explain");
    let misplaced = doc! { "explain": { "find": "coll" }, ENCRYPTION_INFORMATION: {} };
    assert!(matches!(
        add_encryption_information(misplaced, "db", &schemas),
        Err(FinalizeError::MisplacedEncryptionInformation { .. })
    ));
    assert!(matches!(
        add_encryption_information(doc! { "explain": "find" }, "db", &schemas),
        Err(FinalizeError::Malformed {
            field: "explain",
            ..
        })
    ));

    // bulkWrite: inside nsInfo's only entry, nsInfo last.
    let command = doc! {
        "bulkWrite": 1,
        "nsInfo": [{ "ns": "db.coll", ENCRYPTION_INFORMATION: {} }],
        "ops": [],
    };
    let out = add_encryption_information(command, "db", &schemas).unwrap();
    let want = doc! {
        "bulkWrite": 1,
        "ops": [],
        "nsInfo": [{ "ns": "db.coll", ENCRYPTION_INFORMATION: info }],
    };
    assert_same(&out, &want, "bulkWrite");
    let bulk = |ns_info: Bson| doc! { "bulkWrite": 1, "ops": [], "nsInfo": ns_info };
    let one = Bson::Document(doc! { "ns": "db.coll" });
    assert_eq!(
        add_encryption_information(bulk(Bson::Array(vec![])), "db", &schemas),
        Err(FinalizeError::BulkWriteNamespaces(0))
    );
    assert_eq!(
        add_encryption_information(
            bulk(Bson::Array(vec![one.clone(), one.clone()])),
            "db",
            &schemas
        ),
        Err(FinalizeError::BulkWriteNamespaces(2))
    );
    assert!(matches!(
        add_encryption_information(bulk(one.clone()), "db", &schemas),
        Err(FinalizeError::Malformed {
            field: "nsInfo",
            ..
        })
    ));
    assert_eq!(
        add_encryption_information(
            bulk(Bson::Array(vec![Bson::Document(doc! { "ns": "db.other" })])),
            "db",
            &schemas
        ),
        Err(FinalizeError::BulkWriteNamespace {
            ns: "db.other".into()
        })
    );
    assert!(matches!(
        add_encryption_information(
            bulk(Bson::Array(vec![one.clone()])),
            "db",
            &[("coll", Some(&fields)), ("other", None)]
        ),
        Err(FinalizeError::BulkWriteNamespace { .. })
    ));
    let mut misplaced = bulk(Bson::Array(vec![one]));
    misplaced.insert(ENCRYPTION_INFORMATION, Document::new());
    assert!(matches!(
        add_encryption_information(misplaced, "db", &schemas),
        Err(FinalizeError::MisplacedEncryptionInformation { .. })
    ));
}
