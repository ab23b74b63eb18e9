//! Automatic Queryable Encryption through the client: the
//! `encryptedFieldsMap` and the server's `encryptedFields` as schema
//! sources, commands analysed, their placeholders encrypted and their
//! `encryptionInformation` added as libmongocrypt adds them, replies
//! decrypted, `bypass_query_analysis`, the refusals (both maps, joins of
//! FLE1 and QE collections, compaction), `create_encrypted_collection`
//! and `drop`.
//!
//! Without a server: an `AutoEncrypter` over a memory key vault, and a
//! recorded schema source. With `MONGODB_URI` (`--ignored`): through the
//! loopback wire proxy (`tests/common/wire_proxy.rs`), which records every
//! command, says `maxWireVersion: 21` in `hello` replies, puts
//! `encryptedFields` into `listCollections` entries and answers the
//! commands the test server cannot run (Queryable Encryption's) itself.

#![cfg(all(feature = "qe", feature = "driver"))]

mod common;
#[path = "common/qe_fixtures.rs"]
mod qe_fixtures;
#[path = "common/wire_proxy.rs"]
mod wire_proxy;

use bson::spec::BinarySubtype;
use bson::{Bson, Document, doc};
use common::*;
use csfle::keyvault::{KeyCacheOptions, KeyVault, MemoryKeyVault, MongoKeyVault};
use csfle::kms::ProviderName;
use csfle::{
    AutoEncrypter, AutoEncryptionOptions, ClientEncryption, ClientError, DataKeyOptions,
    EncryptedClient, EncryptionAlgorithm, Error, KeyId, KeyRef, RemoteSchema, SchemaFetcher,
};
use futures_util::TryStreamExt;
use futures_util::future::BoxFuture;
use qe_fixtures::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use wire_proxy::{Listed, WireProxy};

/// Two documents equal byte for byte (field order and BSON types).
#[track_caller]
fn assert_same_bytes(found: &Document, expected: &Document) {
    assert_eq!(
        bson::to_vec(found).unwrap(),
        bson::to_vec(expected).unwrap(),
        "\nfound:    {found}\nexpected: {expected}"
    );
}

/// The first byte of a subtype-6 binary.
fn first_byte(v: Option<&Bson>) -> Option<u8> {
    match v {
        Some(Bson::Binary(b)) if b.subtype == BinarySubtype::Encrypted => b.bytes.first().copied(),
        _ => None,
    }
}

/// The first bytes of every subtype-6 binary in `v`, in document order.
fn encrypted_first_bytes(v: &Bson, out: &mut Vec<u8>) {
    match v {
        Bson::Binary(b) if b.subtype == BinarySubtype::Encrypted => {
            out.extend(b.bytes.first().copied());
        }
        Bson::Document(d) => d.values().for_each(|v| encrypted_first_bytes(v, out)),
        Bson::Array(a) => a.iter().for_each(|v| encrypted_first_bytes(v, out)),
        _ => {}
    }
}

fn first_bytes_of(d: &Document) -> Vec<u8> {
    let mut out = Vec::new();
    encrypted_first_bytes(&Bson::Document(d.clone()), &mut out);
    out
}

/// Whether `needle` appears in any of `commands`, serialized.
fn any_contains(commands: &[Document], needle: &str) -> bool {
    commands.iter().any(|c| {
        let bytes = bson::to_vec(c).unwrap();
        bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
    })
}

async fn make_keys(ce: &ClientEncryption) -> Keys {
    let local = ProviderName::parse("local").unwrap();
    let mut ids = Vec::new();
    for name in ["ssn-key", "age-key", "note-key", "staff-key"] {
        let id = ce
            .create_data_key(&local, DataKeyOptions::default().with_key_alt_names([name]))
            .await
            .unwrap();
        ids.push(id);
    }
    Keys {
        ssn: ids[0],
        age: ids[1],
        note: ids[2],
        staff: ids[3],
    }
}

/// A memory key vault holding the tests' keys.
async fn memory_vault() -> (Arc<dyn KeyVault>, Keys) {
    let vault: Arc<dyn KeyVault> = Arc::new(MemoryKeyVault::new());
    let keys = make_keys(&client_encryption(&vault)).await;
    (vault, keys)
}

fn client_encryption(vault: &Arc<dyn KeyVault>) -> ClientEncryption {
    ClientEncryption::from_shared_vault(vault.clone(), local_kms(), KeyCacheOptions::default())
}

/// An encrypter over `vault` whose maps are complete (no server).
fn local_encrypter(
    vault: &Arc<dyn KeyVault>,
    schema_map: &Document,
    options: AutoEncryptionOptions,
) -> Result<AutoEncrypter, Error> {
    AutoEncrypter::new(
        client_encryption(vault),
        schema_map,
        options.with_schema_map_only(true),
    )
}

fn qe_map(k: &Keys) -> Document {
    doc! {"clinic.patients": patients_fields(k)}
}

/// An insert into a QE collection: every encrypted field an insert
/// payload (unindexed: its stored value), the command closed by the
/// `encryptionInformation` libmongocrypt builds, no plaintext left; the
/// values read back decrypted.
#[tokio::test]
async fn an_insert_is_encrypted_and_finalized() {
    let (vault, k) = memory_vault().await;
    let auto = local_encrypter(
        &vault,
        &Document::new(),
        AutoEncryptionOptions::default().with_encrypted_fields_map(qe_map(&k)),
    )
    .unwrap();
    let original = doc! {"_id": 1, "ssn": SSN, "age": 42, "note": NOTE, "name": "Ann"};
    let sent = auto
        .encrypt_command(
            "clinic",
            &doc! {"insert": "patients", "documents": [original.clone()], "ordered": true},
        )
        .await
        .unwrap();
    let stored = sent.get_array("documents").unwrap()[0]
        .as_document()
        .unwrap()
        .clone();
    assert_eq!(first_byte(stored.get("ssn")), Some(INSERT_V2));
    assert_eq!(first_byte(stored.get("age")), Some(INSERT_V2));
    assert_eq!(first_byte(stored.get("note")), Some(UNINDEXED_V2));
    assert_eq!(stored.get_str("name"), Ok("Ann"));
    assert_eq!(stored.get_i32("_id"), Ok(1));
    assert_eq!(
        sent.keys().collect::<Vec<_>>(),
        ["insert", "documents", "ordered", "encryptionInformation"]
    );
    assert_same_bytes(
        sent.get_document("encryptionInformation").unwrap(),
        &encryption_information("clinic", "patients", &patients_fields(&k)),
    );
    assert!(!any_contains(std::slice::from_ref(&sent), SSN));
    assert!(!any_contains(std::slice::from_ref(&sent), NOTE));
    // A reply holding what was sent decrypts to the document.
    assert_eq!(auto.decrypt_reply(&stored).await.unwrap(), original);
}

/// Queries send find payloads (equality 12, range 13) with the
/// `encryptionInformation`; a query with no payload carries none (as
/// libmongocrypt omits it), a delete always does; an unindexed field is
/// not queryable.
#[tokio::test]
async fn queries_send_find_payloads() {
    let (vault, k) = memory_vault().await;
    let auto = local_encrypter(
        &vault,
        &Document::new(),
        AutoEncryptionOptions::default().with_encrypted_fields_map(qe_map(&k)),
    )
    .unwrap();
    let info = encryption_information("clinic", "patients", &patients_fields(&k));
    let sent = auto
        .encrypt_command("clinic", &doc! {"find": "patients", "filter": {"ssn": SSN}})
        .await
        .unwrap();
    assert_eq!(
        first_bytes_of(sent.get_document("filter").unwrap()),
        [FIND_EQUALITY_V2]
    );
    assert_same_bytes(sent.get_document("encryptionInformation").unwrap(), &info);
    assert!(!any_contains(std::slice::from_ref(&sent), SSN));

    let sent = auto
        .encrypt_command(
            "clinic",
            &doc! {"find": "patients", "filter": {"age": {"$gte": 30, "$lte": 50}}},
        )
        .await
        .unwrap();
    let bytes = first_bytes_of(sent.get_document("filter").unwrap());
    assert!(!bytes.is_empty());
    assert!(bytes.iter().all(|b| *b == FIND_RANGE_V2), "{bytes:?}");
    assert_same_bytes(sent.get_document("encryptionInformation").unwrap(), &info);

    let by_id = doc! {"find": "patients", "filter": {"_id": 1}};
    assert_eq!(auto.encrypt_command("clinic", &by_id).await.unwrap(), by_id);

    let delete = doc! {"delete": "patients", "deletes": [{"q": {"_id": 1}, "limit": 1}]};
    let sent = auto.encrypt_command("clinic", &delete).await.unwrap();
    assert_same_bytes(sent.get_document("encryptionInformation").unwrap(), &info);

    let e = auto
        .encrypt_command(
            "clinic",
            &doc! {"find": "patients", "filter": {"note": NOTE}},
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("note"), "{e}");
    assert!(!e.contains(NOTE), "{e}");
}

/// A map entry naming its key by `keyAltName` is sent with the key id the
/// key vault has for it (at the end of its field, as libmongocrypt writes
/// it); a name no key has refuses the command, naming the field.
#[tokio::test]
async fn key_alt_names_in_the_map_are_resolved() {
    let (vault, k) = memory_vault().await;
    let entry = |name: &str| {
        doc! {"fields": [{"path": "ssn", "keyAltName": name, "bsonType": "string",
        "queries": {"queryType": "equality", "contention": 0_i64}}]}
    };
    let auto = local_encrypter(
        &vault,
        &Document::new(),
        AutoEncryptionOptions::default().with_encrypted_fields_map(doc! {
            "clinic.patients": entry("ssn-key"),
            "clinic.nokey": entry("no-such-key"),
        }),
    )
    .unwrap();
    let sent = auto
        .encrypt_command(
            "clinic",
            &doc! {"insert": "patients", "documents": [{"_id": 1, "ssn": SSN}]},
        )
        .await
        .unwrap();
    let resolved = doc! {"fields": [{"path": "ssn", "bsonType": "string",
    "queries": {"queryType": "equality", "contention": 0_i64}, "keyId": uuid(k.ssn)}]};
    assert_same_bytes(
        sent.get_document("encryptionInformation").unwrap(),
        &encryption_information("clinic", "patients", &resolved),
    );
    let e = auto
        .encrypt_command(
            "clinic",
            &doc! {"insert": "nokey", "documents": [{"_id": 1, "ssn": SSN}]},
        )
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::Client(ClientError::InvalidEncryptedFields { .. })),
        "{e:?}"
    );
    assert!(e.to_string().contains("ssn"), "{e}");
}

/// The maps are read when the encrypter (or client) is made: a namespace
/// in both, an entry the parser refuses, a key that is not `db.coll`, an
/// entry that is no document, and a plain namespace with an entry are
/// refused.
#[tokio::test]
async fn conflicting_and_invalid_maps_are_refused_when_built() {
    let (vault, k) = memory_vault().await;
    let schema_map = doc! {"clinic.patients": staff_schema(&k)};
    let refused = |schema_map: &Document, map: Document, plain: &[&str]| {
        local_encrypter(
            &vault,
            schema_map,
            AutoEncryptionOptions::default()
                .with_encrypted_fields_map(map)
                .with_plain_namespaces(plain.iter().copied()),
        )
        .unwrap_err()
    };
    let e = refused(&schema_map, qe_map(&k), &[]);
    assert!(
        matches!(&e, Error::Client(ClientError::ConflictingSchemes { namespace, .. }) if namespace == "clinic.patients"),
        "{e:?}"
    );
    let mut bad = patients_fields(&k);
    bad.insert("bogus", 1);
    let e = refused(&Document::new(), doc! {"clinic.patients": bad}, &[]);
    assert!(
        matches!(
            e,
            Error::Client(ClientError::InvalidEncryptedFields { remote: false, .. })
        ),
        "{e:?}"
    );
    let e = refused(&Document::new(), doc! {"nodot": patients_fields(&k)}, &[]);
    assert!(
        matches!(
            e,
            Error::Client(ClientError::InvalidEncryptedFieldsMap { .. })
        ),
        "{e:?}"
    );
    let e = refused(&Document::new(), doc! {"clinic.patients": 1}, &[]);
    assert!(
        matches!(
            e,
            Error::Client(ClientError::InvalidEncryptedFieldsMap { .. })
        ),
        "{e:?}"
    );
    let e = refused(&Document::new(), qe_map(&k), &["clinic.patients"]);
    assert!(
        matches!(e, Error::Client(ClientError::PlainNamespace { .. })),
        "{e:?}"
    );
    // The builder refuses the same, before any I/O.
    let client =
        mongodb::Client::with_uri_str("mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=100")
            .await
            .unwrap();
    let e = EncryptedClient::builder(client)
        .kms(local_kms())
        .key_vault(MemoryKeyVault::new())
        .schema_map(schema_map.clone())
        .encrypted_fields_map(qe_map(&k))
        .build()
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::Client(ClientError::ConflictingSchemes { .. })),
        "{e:?}"
    );
}

/// `bypass_query_analysis`: the application's own payloads go out as they
/// are, with the `encryptionInformation` the server needs (the
/// specification's `fle2v2-BypassQueryAnalysis`); a command with no
/// payload gets none. A value `encryptedFields` encrypts that the
/// application did not encrypt refuses the command, naming the field and
/// not the value.
#[tokio::test]
async fn bypass_query_analysis_adds_only_the_encryption_information() {
    let (vault, k) = memory_vault().await;
    let auto = local_encrypter(
        &vault,
        &Document::new(),
        AutoEncryptionOptions::default()
            .with_encrypted_fields_map(qe_map(&k))
            .with_bypass_query_analysis(true),
    )
    .unwrap();
    let payload = client_encryption(&vault)
        .encrypt(
            &Bson::from(SSN),
            &KeyRef::Id(k.ssn),
            EncryptionAlgorithm::Indexed,
        )
        .contention_factor(0)
        .await
        .unwrap();
    assert_eq!(payload.bytes[0], INSERT_V2);
    let insert = doc! {"insert": "patients", "documents": [{"_id": 1, "ssn": payload.clone()}], "ordered": true};
    let sent = auto.encrypt_command("clinic", &insert).await.unwrap();
    let mut expected = insert.clone();
    expected.insert(
        "encryptionInformation",
        encryption_information("clinic", "patients", &patients_fields(&k)),
    );
    assert_same_bytes(&sent, &expected);
    let find = doc! {"find": "patients", "filter": {"_id": 1}};
    assert_eq!(auto.encrypt_command("clinic", &find).await.unwrap(), find);
    // A find payload: sent as it is, with the encryptionInformation.
    let find_payload = client_encryption(&vault)
        .encrypt(
            &Bson::from(SSN),
            &KeyRef::Id(k.ssn),
            EncryptionAlgorithm::Indexed,
        )
        .contention_factor(0)
        .query_type(csfle::qe::explicit::QueryType::Equality)
        .await
        .unwrap();
    assert_eq!(find_payload.bytes[0], FIND_EQUALITY_V2);
    let find = doc! {"find": "patients", "filter": {"ssn": find_payload}};
    let sent = auto.encrypt_command("clinic", &find).await.unwrap();
    assert_eq!(sent.get("filter"), find.get("filter"));
    assert!(sent.contains_key("encryptionInformation"));
    // Plaintext where the collection encrypts: refused, nothing sent.
    for (command, field) in [
        (
            doc! {"insert": "patients", "documents": [{"_id": 2, "ssn": SSN}], "ordered": true},
            "ssn",
        ),
        (doc! {"find": "patients", "filter": {"ssn": SSN}}, "ssn"),
        (
            doc! {"update": "patients", "updates": [{"q": {"_id": 1}, "u": {"$set": {"note": NOTE}}}]},
            "note",
        ),
        // An insert payload where a find payload is needed.
        (
            doc! {"find": "patients", "filter": {"ssn": payload.clone()}},
            "ssn",
        ),
    ] {
        let err = auto.encrypt_command("clinic", &command).await.unwrap_err();
        assert!(
            matches!(
                &err,
                Error::Analysis(csfle::analysis::Error::PlaintextUnderBypass { path, .. })
                    if path == field
            ),
            "{command:?}: {err:?}"
        );
        let message = err.to_string();
        assert!(
            !message.contains(SSN) && !message.contains(NOTE),
            "{message}"
        );
    }
}

/// FLE1 and QE namespaces in one client, each encrypted its own way; a
/// pipeline joining them is refused either way; the documents-only insert
/// refuses a QE collection (its encryptionInformation would be lost).
#[tokio::test]
async fn fle1_and_qe_namespaces_mix_but_do_not_join() {
    let (vault, k) = memory_vault().await;
    let auto = local_encrypter(
        &vault,
        &doc! {"clinic.staff": staff_schema(&k)},
        AutoEncryptionOptions::default().with_encrypted_fields_map(qe_map(&k)),
    )
    .unwrap();
    let sent = auto
        .encrypt_command(
            "clinic",
            &doc! {"insert": "staff", "documents": [{"_id": 1, "ssn": SSN}]},
        )
        .await
        .unwrap();
    assert!(!sent.contains_key("encryptionInformation"));
    let staff = sent.get_array("documents").unwrap()[0]
        .as_document()
        .unwrap();
    assert_eq!(first_byte(staff.get("ssn")), Some(1), "FLE1 deterministic");
    let sent = auto
        .encrypt_command(
            "clinic",
            &doc! {"insert": "patients", "documents": [{"_id": 1, "ssn": SSN}]},
        )
        .await
        .unwrap();
    assert!(sent.contains_key("encryptionInformation"));
    for (coll, from) in [("staff", "patients"), ("patients", "staff")] {
        let join = doc! {"aggregate": coll, "pipeline": [
            {"$lookup": {"from": from, "localField": "ssn", "foreignField": "ssn", "as": "x"}},
        ], "cursor": {}};
        let e = auto.encrypt_command("clinic", &join).await.unwrap_err();
        assert!(matches!(e, Error::Analysis(_)), "{coll}: {e:?}");
    }
    let e = auto
        .encrypt_insert_documents("clinic", "patients", vec![doc! {"_id": 2, "ssn": SSN}])
        .await
        .unwrap_err();
    assert!(e.to_string().contains("encryptionInformation"), "{e}");
    let staff = auto
        .encrypt_insert_documents("clinic", "staff", vec![doc! {"_id": 2, "ssn": SSN}])
        .await
        .unwrap();
    assert_eq!(staff.len(), 1);
}

/// Compaction and cleanup need tokens csfle does not build: refused,
/// saying how to run them.
#[tokio::test]
async fn compaction_is_refused_with_directions() {
    let (vault, k) = memory_vault().await;
    let auto = local_encrypter(
        &vault,
        &Document::new(),
        AutoEncryptionOptions::default().with_encrypted_fields_map(qe_map(&k)),
    )
    .unwrap();
    for command in [
        "compactStructuredEncryptionData",
        "cleanupStructuredEncryptionData",
    ] {
        let e = auto
            .encrypt_command("clinic", &doc! {command: "patients"})
            .await
            .unwrap_err();
        assert!(
            matches!(
                e,
                Error::Client(ClientError::StructuredEncryptionMaintenance { .. })
            ),
            "{e:?}"
        );
        let message = e.to_string();
        assert!(
            message.contains(command) && message.contains("mongosh"),
            "{message}"
        );
    }
}

/// Server entries, by collection, and how often each was asked for.
#[derive(Debug, Default)]
struct ServerEntries {
    entries: std::collections::HashMap<String, RemoteSchema>,
    asked: AtomicUsize,
}

impl SchemaFetcher for ServerEntries {
    fn collection_schema<'a>(
        &'a self,
        _db: &'a str,
        coll: &'a str,
    ) -> BoxFuture<'a, Result<RemoteSchema, Error>> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        let entry = self
            .entries
            .get(coll)
            .cloned()
            .unwrap_or(RemoteSchema::None);
        Box::pin(async move { Ok(entry) })
    }
}

/// The server's `encryptedFields` is read (once per TTL) for a namespace
/// the maps do not list, and counts as a schema for `require_schema`; a
/// map entry wins over a weakened server entry, which is not even asked
/// for; a server entry with an FLE1 `encrypt` beside it is refused.
#[tokio::test]
async fn server_encrypted_fields_are_read_and_the_map_wins() {
    let (vault, k) = memory_vault().await;
    let weakened = doc! {"fields": []};
    let remote_fields = doc! {"fields": [
        {"path": "ssn", "keyId": uuid(k.ssn), "bsonType": "string",
         "queries": {"queryType": "equality", "contention": 0_i64}},
    ]};
    let mut entries = std::collections::HashMap::new();
    entries.insert(
        "patients".to_owned(),
        RemoteSchema::EncryptedFields(weakened.clone()),
    );
    entries.insert(
        "remote".to_owned(),
        RemoteSchema::EncryptedFields(remote_fields.clone()),
    );
    entries.insert(
        "both".to_owned(),
        RemoteSchema::from_collection_info(&doc! {"name": "both", "options": {
            "encryptedFields": remote_fields.clone(),
            "validator": {"$jsonSchema": staff_schema(&k)},
        }}),
    );
    let server = Arc::new(ServerEntries {
        entries,
        asked: AtomicUsize::new(0),
    });
    let auto = AutoEncrypter::new(
        client_encryption(&vault),
        &Document::new(),
        AutoEncryptionOptions::default()
            .with_encrypted_fields_map(qe_map(&k))
            .with_require_schema(true),
    )
    .unwrap()
    .with_remote_schemas(server.clone());
    let insert = |coll: &str| doc! {"insert": coll, "documents": [{"_id": 1, "ssn": SSN}]};
    let sent = auto
        .encrypt_command("clinic", &insert("patients"))
        .await
        .unwrap();
    assert_same_bytes(
        sent.get_document("encryptionInformation").unwrap(),
        &encryption_information("clinic", "patients", &patients_fields(&k)),
    );
    assert_eq!(server.asked.load(Ordering::SeqCst), 0, "the map wins");
    for _ in 0..2 {
        let sent = auto
            .encrypt_command("clinic", &insert("remote"))
            .await
            .unwrap();
        let stored = sent.get_array("documents").unwrap()[0]
            .as_document()
            .unwrap();
        assert_eq!(first_byte(stored.get("ssn")), Some(INSERT_V2));
        assert_same_bytes(
            sent.get_document("encryptionInformation").unwrap(),
            &encryption_information("clinic", "remote", &remote_fields),
        );
    }
    assert_eq!(server.asked.load(Ordering::SeqCst), 1, "cached");
    let e = auto
        .encrypt_command("clinic", &insert("both"))
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::Client(ClientError::UnreadableRemoteSchema { .. })),
        "{e:?}"
    );
    // No schema anywhere: refused under require_schema.
    let e = auto
        .encrypt_command("clinic", &insert("nothing"))
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::Client(ClientError::MissingSchema { .. })),
        "{e:?}"
    );
}

// --- Against MONGODB_URI, through the wire proxy -------------------------

struct Setup {
    direct: mongodb::Client,
    proxy: WireProxy,
    db: String,
    keys: Keys,
}

impl Setup {
    async fn new() -> Self {
        let uri = service_env("MONGODB_URI");
        let direct = mongodb::Client::with_uri_str(&uri).await.unwrap();
        let db = unique_name("csfle_qe");
        let keys = make_keys(&ClientEncryption::new(vault_on(&direct, &db), local_kms())).await;
        let proxy = WireProxy::start(&uri).await;
        proxy.max_wire_version(21);
        Setup {
            direct,
            proxy,
            db,
            keys,
        }
    }

    /// A driver client through the proxy.
    async fn through(&self) -> mongodb::Client {
        mongodb::Client::with_uri_str(&self.proxy.uri)
            .await
            .unwrap()
    }

    /// An encrypted client through the proxy with `map` as its
    /// `encryptedFieldsMap` (the server asked for everything else).
    async fn client(&self, map: Document) -> EncryptedClient {
        EncryptedClient::builder(self.through().await)
            .key_vault(vault_on(&self.direct, &self.db))
            .kms(local_kms())
            .encrypted_fields_map(map)
            .build()
            .await
            .unwrap()
    }

    fn client_encryption(&self) -> ClientEncryption {
        ClientEncryption::new(vault_on(&self.direct, &self.db), local_kms())
    }

    async fn drop(self) {
        self.direct.database(&self.db).drop().await.unwrap();
    }
}

fn vault_on(client: &mongodb::Client, db: &str) -> MongoKeyVault {
    MongoKeyVault::new(client, &format!("{db}.__keyVault")).unwrap()
}

fn ok() -> Document {
    doc! {"ok": 1.0}
}

/// The collection's operations send what the encrypter makes: payloads of
/// the right kind, libmongocrypt's `encryptionInformation`, no plaintext
/// of an encrypted field in any command; replies holding QE values come
/// back decrypted.
#[tokio::test]
#[ignore = "needs MONGODB_URI"]
async fn collection_operations_send_queryable_encryption_commands() {
    let s = Setup::new().await;
    let fields = patients_fields(&s.keys);
    let client = s
        .client(doc! {format!("{}.patients", s.db): fields.clone()})
        .await;
    let info = encryption_information(&s.db, "patients", &fields);
    s.proxy
        .answer("insert", Some("patients"), doc! {"n": 1, "ok": 1.0});
    let patients = client.database(&s.db).collection::<Document>("patients");
    let original = doc! {"_id": 1, "ssn": SSN, "age": 42, "note": NOTE};
    patients.insert_one(&original).await.unwrap();
    let inserts = s.proxy.recorded_on("insert", "patients");
    assert_eq!(inserts.len(), 1, "{inserts:?}");
    let stored = inserts[0].get_array("documents").unwrap()[0]
        .as_document()
        .unwrap()
        .clone();
    assert_eq!(first_byte(stored.get("ssn")), Some(INSERT_V2));
    assert_eq!(first_byte(stored.get("age")), Some(INSERT_V2));
    assert_eq!(first_byte(stored.get("note")), Some(UNINDEXED_V2));
    assert_same_bytes(
        inserts[0].get_document("encryptionInformation").unwrap(),
        &info,
    );

    // The "server" returns what was inserted: it comes back decrypted.
    s.proxy.answer(
        "find",
        Some("patients"),
        doc! {"cursor": {"id": 0_i64, "ns": format!("{}.patients", s.db),
        "firstBatch": [stored.clone()]}, "ok": 1.0},
    );
    let found: Vec<Document> = patients
        .find(doc! {"ssn": SSN})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(found, std::slice::from_ref(&original));
    let range: Vec<Document> = patients
        .find(doc! {"age": {"$gte": 30, "$lte": 50}})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(range, std::slice::from_ref(&original));
    let finds = s.proxy.recorded_on("find", "patients");
    assert_eq!(finds.len(), 2, "{finds:?}");
    assert_eq!(
        first_bytes_of(finds[0].get_document("filter").unwrap()),
        [FIND_EQUALITY_V2]
    );
    let bytes = first_bytes_of(finds[1].get_document("filter").unwrap());
    assert!(
        !bytes.is_empty() && bytes.iter().all(|b| *b == FIND_RANGE_V2),
        "{bytes:?}"
    );
    for find in &finds {
        assert_same_bytes(find.get_document("encryptionInformation").unwrap(), &info);
    }

    // Updates and deletes always carry it.
    s.proxy.answer(
        "update",
        Some("patients"),
        doc! {"n": 1, "nModified": 1, "ok": 1.0},
    );
    s.proxy
        .answer("delete", Some("patients"), doc! {"n": 1, "ok": 1.0});
    let updated = patients
        .update_one(doc! {"ssn": SSN}, doc! {"$set": {"note": "updated note"}})
        .await
        .unwrap();
    assert_eq!((updated.matched_count, updated.modified_count), (1, 1));
    let deleted = patients.delete_one(doc! {"ssn": SSN}).await.unwrap();
    assert_eq!(deleted.deleted_count, 1);
    for name in ["update", "delete"] {
        let sent = s.proxy.recorded_on(name, "patients");
        assert_eq!(sent.len(), 1, "{name}");
        assert_same_bytes(
            sent[0].get_document("encryptionInformation").unwrap(),
            &info,
        );
    }
    let all = s.proxy.recorded();
    for plaintext in [SSN, NOTE, "updated note"] {
        assert!(!any_contains(&all, plaintext), "{plaintext} was sent");
    }
    s.drop().await;
}

/// The server's `encryptedFields` (in `listCollections`) configures a
/// collection the map does not list, read once per TTL; a map entry wins
/// over the server's, which is then not asked for.
#[tokio::test]
#[ignore = "needs MONGODB_URI"]
async fn the_map_wins_over_the_server() {
    let s = Setup::new().await;
    for c in ["patients", "remote"] {
        s.direct.database(&s.db).create_collection(c).await.unwrap();
    }
    let fields = patients_fields(&s.keys);
    let remote_fields = doc! {"fields": [
        {"path": "ssn", "keyId": uuid(s.keys.ssn), "bsonType": "string",
         "queries": {"queryType": "equality", "contention": 0_i64}},
    ]};
    s.proxy
        .list("patients", Listed::EncryptedFields(doc! {"fields": []}));
    s.proxy
        .list("remote", Listed::EncryptedFields(remote_fields.clone()));
    for c in ["patients", "remote"] {
        s.proxy.answer("insert", Some(c), doc! {"n": 1, "ok": 1.0});
    }
    let client = s
        .client(doc! {format!("{}.patients", s.db): fields.clone()})
        .await;
    let db = client.database(&s.db);
    db.collection::<Document>("patients")
        .insert_one(&doc! {"_id": 1, "ssn": SSN})
        .await
        .unwrap();
    assert_eq!(s.proxy.list_collections_seen(), 0, "the map wins");
    for id in [1, 2] {
        db.collection::<Document>("remote")
            .insert_one(&doc! {"_id": id, "ssn": SSN})
            .await
            .unwrap();
    }
    assert_eq!(s.proxy.list_collections_seen(), 1, "read once, cached");
    let sent = s.proxy.recorded_on("insert", "patients");
    assert_same_bytes(
        sent[0].get_document("encryptionInformation").unwrap(),
        &encryption_information(&s.db, "patients", &fields),
    );
    for sent in s.proxy.recorded_on("insert", "remote") {
        assert_same_bytes(
            sent.get_document("encryptionInformation").unwrap(),
            &encryption_information(&s.db, "remote", &remote_fields),
        );
    }
    assert!(!any_contains(&s.proxy.recorded(), SSN));
    s.drop().await;
}

/// `create_encrypted_collection` creates the missing key, then sends the
/// specification's commands in its order; on a server older than 7.0 it
/// fails with the specification's words and creates nothing.
#[tokio::test]
#[ignore = "needs MONGODB_URI"]
async fn create_encrypted_collection_sends_the_specified_commands() {
    let s = Setup::new().await;
    s.proxy.answer("create", None, ok());
    s.proxy.answer(
        "createIndexes",
        None,
        doc! {"createdCollectionAutomatically": false, "numIndexesBefore": 1,
        "numIndexesAfter": 2, "ok": 1.0},
    );
    let through = s.through().await;
    let db = through.database(&s.db);
    let ce = s.client_encryption();
    let local = ProviderName::parse("local").unwrap();
    let requested = doc! {"fields": [
        {"path": "ssn", "keyId": Bson::Null, "bsonType": "string",
         "queries": {"queryType": "equality"}},
        {"path": "note", "keyId": uuid(s.keys.note), "bsonType": "string"},
    ]};
    s.proxy.clear_recorded();
    let created = ce
        .create_encrypted_collection(&db, "records", requested.clone(), &local, None)
        .await
        .unwrap();
    let fields = created.get_array("fields").unwrap();
    let new_key = match fields[0].as_document().unwrap().get("keyId") {
        Some(Bson::Binary(b)) => KeyId::from_binary(b).unwrap(),
        other => panic!("{other:?}"),
    };
    assert!(ce.get_key(new_key).await.unwrap().is_some());
    assert_eq!(
        fields[1].as_document().unwrap().get("keyId"),
        Some(&uuid(s.keys.note))
    );
    let sent: Vec<Document> = s
        .proxy
        .recorded()
        .into_iter()
        .filter(|c| c.contains_key("create") || c.contains_key("createIndexes"))
        .map(without_driver_fields)
        .collect();
    let clustered = doc! {"key": {"_id": 1}, "unique": true};
    let expected = [
        doc! {"create": "enxcol_.records.esc", "clusteredIndex": clustered.clone()},
        doc! {"create": "enxcol_.records.ecoc", "clusteredIndex": clustered},
        doc! {"create": "records", "encryptedFields": created.clone()},
        doc! {"createIndexes": "records", "indexes": [
            {"name": "__safeContent___1", "key": {"__safeContent__": 1}},
        ]},
    ];
    assert_eq!(sent.len(), expected.len(), "{sent:?}");
    for (found, expected) in sent.iter().zip(&expected) {
        assert_same_bytes(found, expected);
    }

    // An old server: nothing created, not even the key.
    s.proxy.max_wire_version(17);
    s.proxy.clear_recorded();
    let keys_before = ce
        .get_keys()
        .await
        .unwrap()
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .len();
    let e = ce
        .create_encrypted_collection(&db, "old", requested, &local, None)
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains(
            "Driver support of Queryable Encryption is incompatible with server. Upgrade server to use Queryable Encryption."
        ),
        "{e}"
    );
    assert!(
        matches!(&e, Error::Client(ClientError::CreateEncryptedCollection { source, .. })
            if matches!(**source, Error::Client(ClientError::IncompatibleServer { max_wire_version: 17 }))),
        "{e:?}"
    );
    assert!(
        !s.proxy.recorded().iter().any(|c| c.contains_key("create")),
        "nothing created"
    );
    let keys_after = ce
        .get_keys()
        .await
        .unwrap()
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .len();
    assert_eq!(keys_before, keys_after);
    s.drop().await;
}

/// `drop` of a QE collection drops its ESC and ECOC first, in the
/// specification's order; a plain collection's drop is one command.
#[tokio::test]
#[ignore = "needs MONGODB_URI"]
async fn drop_drops_the_state_collections() {
    let s = Setup::new().await;
    s.proxy
        .answer("drop", None, doc! {"nIndexesWas": 1, "ns": "x", "ok": 1.0});
    let client = s
        .client(doc! {format!("{}.patients", s.db): patients_fields(&s.keys)})
        .await;
    let db = client.database(&s.db);
    s.proxy.clear_recorded();
    db.collection::<Document>("patients").drop().await.unwrap();
    db.collection::<Document>("plain").drop().await.unwrap();
    let drops: Vec<String> = s
        .proxy
        .recorded()
        .iter()
        .filter_map(|c| c.get_str("drop").ok().map(str::to_owned))
        .collect();
    assert_eq!(
        drops,
        [
            "enxcol_.patients.esc",
            "enxcol_.patients.ecoc",
            "patients",
            "plain"
        ]
    );
    s.drop().await;
}

/// A typed collection of a type with Queryable Encryption fields: opened
/// when the map's entry agrees with the type (key named by alternate
/// name), its inserts encrypted as QE's; a type that disagrees is refused,
/// naming the field.
#[tokio::test]
#[ignore = "needs MONGODB_URI"]
async fn typed_queryable_collections_are_encrypted() {
    use csfle::Encrypted;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Serialize, Deserialize, Encrypted)]
    struct Patient {
        #[serde(rename = "_id")]
        id: i32,
        #[encrypted(queryable = "equality", key_alt_name = "ssn-key", contention = 0)]
        ssn: String,
    }

    #[derive(Debug, Serialize, Deserialize, Encrypted)]
    struct Contended {
        #[serde(rename = "_id")]
        id: i32,
        #[encrypted(queryable = "equality", key_alt_name = "ssn-key", contention = 4)]
        ssn: String,
    }

    let s = Setup::new().await;
    let fields = doc! {"fields": [
        {"path": "ssn", "keyId": uuid(s.keys.ssn), "bsonType": "string",
         "queries": {"queryType": "equality", "contention": 0_i64}},
    ]};
    let client = s
        .client(doc! {
            format!("{}.patients", s.db): fields.clone(),
            format!("{}.contended", s.db): fields.clone(),
        })
        .await;
    s.proxy
        .answer("insert", Some("patients"), doc! {"n": 1, "ok": 1.0});
    let db = client.database(&s.db);
    let patients = db.typed_collection::<Patient>("patients").await.unwrap();
    patients
        .insert_one(&Patient {
            id: 1,
            ssn: SSN.to_owned(),
        })
        .await
        .unwrap();
    let sent = s.proxy.recorded_on("insert", "patients");
    assert_eq!(sent.len(), 1);
    let stored = sent[0].get_array("documents").unwrap()[0]
        .as_document()
        .unwrap();
    assert_eq!(first_byte(stored.get("ssn")), Some(INSERT_V2));
    assert_same_bytes(
        sent[0].get_document("encryptionInformation").unwrap(),
        &encryption_information(&s.db, "patients", &fields),
    );
    let e = db
        .typed_collection::<Contended>("contended")
        .await
        .unwrap_err();
    assert!(
        matches!(
            &e,
            Error::Client(ClientError::TypedSchemaMismatch {
                other: "encryptedFieldsMap",
                ..
            })
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("'ssn'"), "{e}");
    assert!(!any_contains(&s.proxy.recorded(), SSN));
    s.drop().await;
}
