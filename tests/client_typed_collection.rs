//! Typed collections (`EncryptedDatabase::typed_collection::<T>`): the
//! type's schema is registered for its namespace, keys named by alternate
//! name are resolved through the key vault, and a schema map entry or a
//! server-side schema that disagrees with the type is refused, naming the
//! fields. Without a server (recorded `listCollections` replies, a driver
//! client that never connects) and, `--ignored`, against `MONGODB_URI` with
//! every supported type and libmongocrypt as the judge.

mod common;

use bson::spec::BinarySubtype;
use bson::{Bson, Document, doc};
use common::typed::*;
use common::*;
use csfle::keyvault::{KeyVault, MemoryKeyVault};
use csfle::kms::ProviderName;
use csfle::{
    AutoEncrypter, AutoEncryptionOptions, ClientEncryption, DataKeyOptions, Encrypted,
    EncryptedClient, KeyId, RemoteSchema, SchemaFetcher,
};
use futures_util::TryStreamExt;
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

const DET: &str = "AEAD_AES_256_CBC_HMAC_SHA_512-Deterministic";
const RND: &str = "AEAD_AES_256_CBC_HMAC_SHA_512-Random";

/// Recorded server schemas, by namespace; a view where the value is `None`.
#[derive(Debug, Default)]
struct ServerSchemas(Mutex<HashMap<String, Option<Document>>>);

impl SchemaFetcher for ServerSchemas {
    fn collection_schema<'a>(
        &'a self,
        db: &'a str,
        coll: &'a str,
    ) -> BoxFuture<'a, Result<RemoteSchema, csfle::Error>> {
        let found = self.0.lock().unwrap().get(&format!("{db}.{coll}")).cloned();
        let r = match found {
            None => RemoteSchema::None,
            Some(None) => RemoteSchema::View,
            Some(Some(schema)) => RemoteSchema::Schema(schema),
        };
        Box::pin(std::future::ready(Ok(r)))
    }
}

struct Offline {
    client: EncryptedClient,
    server: Arc<ServerSchemas>,
    patients: KeyId,
    records: KeyId,
}

/// An encrypted client whose driver never connects (nothing here sends a
/// command), over a memory key vault holding the keys `patients` and
/// `records`.
async fn offline(schema_map: impl FnOnce(KeyId, KeyId) -> Document) -> Offline {
    let vault = Arc::new(MemoryKeyVault::new());
    let enc = ClientEncryption::from_shared_vault(
        vault.clone() as Arc<dyn KeyVault>,
        local_kms(),
        Default::default(),
    );
    let mut ids = Vec::new();
    for name in ["patients", "records"] {
        let options = DataKeyOptions::default().with_key_alt_names([name.to_owned()]);
        ids.push(
            enc.create_data_key(&ProviderName::parse("local").unwrap(), options)
                .await
                .unwrap(),
        );
    }
    let server = Arc::new(ServerSchemas::default());
    let auto = AutoEncrypter::new(
        enc,
        &schema_map(ids[0], ids[1]),
        AutoEncryptionOptions::default(),
    )
    .unwrap()
    .with_remote_schemas(server.clone());
    let driver =
        mongodb::Client::with_uri_str("mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=100")
            .await
            .unwrap();
    Offline {
        client: EncryptedClient::new(driver, auto),
        server,
        patients: ids[0],
        records: ids[1],
    }
}

/// The filter a `find` on `clinic.<coll>` goes out with.
async fn sent_filter(o: &Offline, coll: &str, filter: Document) -> Result<Document, csfle::Error> {
    let sent = o
        .client
        .auto_encrypter()
        .encrypt_command("clinic", &doc! {"find": coll, "filter": filter})
        .await?;
    Ok(sent.get_document("filter").unwrap().clone())
}

fn collect_ciphertexts(v: &Bson, out: &mut Vec<Vec<u8>>) {
    match v {
        Bson::Binary(b) if b.subtype == BinarySubtype::Encrypted => out.push(b.bytes.clone()),
        Bson::Document(d) => d.values().for_each(|v| collect_ciphertexts(v, out)),
        Bson::Array(a) => a.iter().for_each(|v| collect_ciphertexts(v, out)),
        _ => {}
    }
}

fn key(id: KeyId) -> Bson {
    Bson::Array(vec![Bson::Binary(id.to_binary())])
}

/// The schema `Patient` generates, written out by hand as a server would
/// hold it.
fn patient_schema(patients: KeyId, records: KeyId) -> Document {
    doc! {
        "bsonType": "object",
        "properties": {
            "ssn": {"encrypt": {"keyId": key(patients), "bsonType": "string", "algorithm": DET}},
            "medicalRecord": {"encrypt": {"keyId": key(records), "bsonType": "object", "algorithm": RND}},
            "notes": {"encrypt": {"keyId": "/tenantKey", "bsonType": "string", "algorithm": RND}},
            "homeAddress": {"bsonType": "object", "properties": {
                "zip": {"encrypt": {"keyId": key(patients), "bsonType": "string", "algorithm": DET}},
            }},
            "ins": {"encrypt": {"keyId": key(patients), "bsonType": "long", "algorithm": DET}},
            "nickname": {"encrypt": {"keyId": key(patients), "bsonType": "string", "algorithm": RND}},
        },
    }
}

#[tokio::test]
async fn typed_schema_is_registered_and_used() {
    let o = offline(|_, _| Document::new()).await;
    let db = o.client.database("clinic");
    db.typed_collection::<Patient>("patients").await.unwrap();
    // The namespace now encrypts by the type: an equality filter on `ssn`
    // goes out as the deterministic ciphertext under the `patients` key.
    let filter = doc! {"ssn": "123-45-6789", "homeAddress.zip": "12345"};
    let sent = sent_filter(&o, "patients", filter).await.unwrap();
    // (The analyser rewrites the filter as `$and` of `$eq`s, as
    // mongocryptd does.)
    let mut found = Vec::new();
    collect_ciphertexts(&Bson::Document(sent.clone()), &mut found);
    assert_eq!(found.len(), 2, "{sent:?}");
    for bytes in found {
        let blob = csfle::Fle1Blob::parse(&bytes).unwrap();
        assert_eq!(blob.key_id, o.patients);
    }
    // A random field cannot be queried: the analyser refuses, as for a
    // hand-written schema.
    let err = sent_filter(&o, "patients", doc! {"notes": "x"})
        .await
        .unwrap_err();
    assert!(err.to_string().contains("randomized"), "{err}");
    // The same type again is fine; another type on the namespace is not.
    db.typed_collection::<Patient>("patients").await.unwrap();
    let err = db
        .typed_collection::<MedicalRecord>("patients")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            csfle::Error::Client(csfle::ClientError::NamespaceTypeConflict { .. })
        ) && err.to_string().contains("Patient")
            && err.to_string().contains("MedicalRecord"),
        "{err}"
    );
}

#[tokio::test]
async fn server_schema_that_agrees_is_accepted_one_that_disagrees_is_named() {
    let o = offline(|_, _| Document::new()).await;
    let db = o.client.database("clinic");
    let set = |coll: &str, schema: Option<Document>| {
        o.server
            .0
            .lock()
            .unwrap()
            .insert(format!("clinic.{coll}"), schema);
    };
    // The same schema, spelled with per-field keys: accepted.
    set("agrees", Some(patient_schema(o.patients, o.records)));
    db.typed_collection::<Patient>("agrees").await.unwrap();

    // `ssn` random on the server, `fullName` encrypted only there, `notes`
    // plaintext there, `ins` under another key.
    let mut schema = patient_schema(o.patients, o.records);
    let props = schema.get_document_mut("properties").unwrap();
    props.insert(
        "ssn",
        doc! {"encrypt": {"keyId": key(o.patients), "bsonType": "string", "algorithm": RND}},
    );
    props.insert(
        "fullName",
        doc! {"encrypt": {"keyId": key(o.patients), "bsonType": "string", "algorithm": RND}},
    );
    props.remove("notes");
    props.insert(
        "ins",
        doc! {"encrypt": {"keyId": key(o.records), "bsonType": "long", "algorithm": DET}},
    );
    set("disagrees", Some(schema));
    let err = db
        .typed_collection::<Patient>("disagrees")
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(
            err,
            csfle::Error::Client(csfle::ClientError::TypedSchemaMismatch { ref differences, .. })
                if differences.len() == 4
        ),
        "{text}"
    );
    for expected in [
        "'ssn' is encrypted differently (type vs server's schema): algorithm AEAD_AES_256_CBC_HMAC_SHA_512-Deterministic vs AEAD_AES_256_CBC_HMAC_SHA_512-Random",
        "'fullName' is encrypted in the server's schema, not in the type",
        "'notes' is encrypted in the type, not in the server's schema",
        "'ins' is encrypted differently",
    ] {
        assert!(text.contains(expected), "{expected}\n in {text}");
    }
    // Nothing was registered: the namespace still follows the server.
    let sent = sent_filter(&o, "disagrees", doc! {"notes": "x"}).await;
    assert_eq!(sent.unwrap(), doc! {"notes": "x"});

    set("view", None);
    let err = db.typed_collection::<Patient>("view").await.unwrap_err();
    assert!(
        matches!(err, csfle::Error::Client(csfle::ClientError::View { .. })),
        "{err}"
    );
}

#[tokio::test]
async fn schema_map_entry_must_agree() {
    let o = offline(|p, r| {
        let mut wrong = patient_schema(p, r);
        wrong
            .get_document_mut("properties")
            .unwrap()
            .remove("homeAddress");
        doc! {"clinic.agrees": patient_schema(p, r), "clinic.wrong": wrong}
    })
    .await;
    let db = o.client.database("clinic");
    db.typed_collection::<Patient>("agrees").await.unwrap();
    let err = db.typed_collection::<Patient>("wrong").await.unwrap_err();
    assert!(
        err.to_string()
            .contains("'homeAddress.zip' is encrypted in the type, not in the schema map"),
        "{err}"
    );
}

#[derive(Serialize, Deserialize, Encrypted)]
#[encrypted(key = "no-such-key")]
struct Orphan {
    #[encrypted(deterministic)]
    ssn: String,
}

#[tokio::test]
async fn unknown_key_names_and_unexpressible_types_are_refused() {
    let o = offline(|_, _| Document::new()).await;
    let db = o.client.database("clinic");
    let err = db.typed_collection::<Orphan>("orphans").await.unwrap_err();
    assert!(
        err.to_string()
            .contains("no data key has the alternate name 'no-such-key'"),
        "{err}"
    );
    // `Address` takes its key from a containing type.
    let err = db
        .typed_collection::<Address>("addresses")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no key is named"), "{err}");
    // Neither registered anything.
    for coll in ["orphans", "addresses"] {
        let sent = sent_filter(&o, coll, doc! {"ssn": "x"}).await;
        assert_eq!(sent.unwrap(), doc! {"ssn": "x"});
    }
}

/// A type deriving `Encrypted` with no encrypted field: a document type
/// with nothing to register.
#[derive(Serialize, Deserialize, Encrypted)]
struct Note {
    text: String,
}

/// Whether an operation failed because its collection was not the
/// type's typed collection.
fn untyped(r: Result<impl Sized, csfle::Error>) -> bool {
    match r {
        Err(csfle::Error::Client(csfle::ClientError::UntypedCollection {
            namespace,
            rust_type,
        })) => {
            assert_eq!(namespace, "clinic.patients");
            assert!(rust_type.ends_with("Patient"), "{rust_type}");
            true
        }
        _ => false,
    }
}

/// A type deriving `Encrypted` opened with `collection`,
/// `collection_with_options` or `clone_with_type` (not `typed_collection`)
/// is never written or queried without its schema: every operation that
/// sends it or a filter on it is refused, naming `typed_collection`, before
/// anything is sent, until the namespace is opened typed. Documents and
/// derived types without encrypted fields are not refused.
#[tokio::test]
async fn derived_types_need_their_typed_collection() {
    let o = offline(|_, _| Document::new()).await;
    let db = o.client.database("clinic");
    let untyped_coll = db.collection::<Patient>("patients");
    let err = untyped_coll.insert_one(&patient()).await.unwrap_err();
    assert!(
        err.to_string().contains("typed_collection::<"),
        "the refusal names typed_collection: {err}"
    );
    assert!(untyped(untyped_coll.insert_one(&patient()).await));
    assert!(untyped(untyped_coll.insert_many([&patient()]).await));
    assert!(untyped(
        untyped_coll.find_one(doc! {"ssn": "123-45-6789"}).await
    ));
    assert!(untyped(
        untyped_coll.find(doc! {"ssn": "123-45-6789"}).await
    ));
    assert!(untyped(
        untyped_coll
            .update_one(doc! {"ssn": "1"}, doc! {"$set": {"ssn": "2"}})
            .await
    ));
    assert!(untyped(untyped_coll.replace_one(doc! {}, &patient()).await));
    assert!(untyped(untyped_coll.delete_one(doc! {"ssn": "1"}).await));
    assert!(untyped(
        untyped_coll.count_documents(doc! {"ssn": "1"}).await
    ));
    assert!(untyped(untyped_coll.distinct("ssn", doc! {}).await));
    assert!(untyped(
        untyped_coll
            .aggregate([doc! {"$match": {"ssn": "1"}}])
            .await
    ));
    let with_options = db.collection_with_options::<Patient>(
        "patients",
        mongodb::options::CollectionOptions::default(),
    );
    assert!(untyped(with_options.find_one(doc! {}).await));
    let cloned = db
        .collection::<Document>("patients")
        .clone_with_type::<Patient>();
    assert!(untyped(cloned.insert_one(&patient()).await));

    // Another type's typed collection is not this type's.
    db.typed_collection::<MedicalRecord>("patients")
        .await
        .unwrap();
    assert!(untyped(untyped_coll.find_one(doc! {}).await));

    // Opened typed (in a fresh client: the namespace now holds
    // `MedicalRecord`), every handle of the namespace may run: what fails
    // now is the unreachable server, not the missing schema.
    let o = offline(|_, _| Document::new()).await;
    let db = o.client.database("clinic");
    let untyped_coll = db.collection::<Patient>("patients");
    assert!(untyped(untyped_coll.find_one(doc! {"ssn": "1"}).await));
    db.typed_collection::<Patient>("patients").await.unwrap();
    assert!(!untyped(untyped_coll.find_one(doc! {"ssn": "1"}).await));

    // Documents, and derived types without encrypted fields, need nothing.
    let docs = db.collection::<Document>("patients");
    assert!(!untyped(docs.find_one(doc! {}).await));
    let notes = db.collection::<Note>("notes");
    assert!(!untyped(notes.find_one(doc! {}).await));
}

/// A client over `MONGODB_URI` with a MongoDB key vault in a fresh
/// database, keys `patients` and `records`; no schema map.
async fn server_client() -> (EncryptedClient, mongodb::Database, String) {
    let uri = service_env("MONGODB_URI");
    let plain = mongodb::Client::with_uri_str(&uri).await.unwrap();
    let db = unique_name("csfle_typed");
    let client = EncryptedClient::builder(plain.clone())
        .key_vault_namespace(format!("{db}.__keyVault"))
        .kms_providers(local_kms_document())
        .build()
        .await
        .unwrap();
    let enc = client.auto_encrypter().client_encryption();
    // `tenant-a`: the per-document key `Patient::notes` points at.
    for name in ["patients", "records", "tenant-a"] {
        let options = DataKeyOptions::default().with_key_alt_names([name.to_owned()]);
        enc.create_data_key(&ProviderName::parse("local").unwrap(), options)
            .await
            .unwrap();
    }
    (client, plain.database(&db), db)
}

/// Every encrypted path of `schema` in `stored` is a subtype-6 binary; the
/// values, wrapped as `{v: …}` documents.
fn ciphertexts(schema: &Document, stored: &Document, out: &mut Vec<(String, Bson)>, path: &str) {
    for (name, sub) in schema.get_document("properties").unwrap() {
        let sub = sub.as_document().unwrap();
        let here = format!("{path}{name}");
        let Some(value) = stored.get(name) else {
            continue;
        };
        if sub.contains_key("encrypt") {
            match value {
                Bson::Binary(b) if b.subtype == BinarySubtype::Encrypted => {
                    out.push((here, value.clone()))
                }
                other => panic!("'{here}' is stored as {other:?}"),
            }
        } else {
            ciphertexts(sub, value.as_document().unwrap(), out, &format!("{here}."));
        }
    }
}

#[tokio::test]
#[ignore = "needs MONGODB_URI and CSFLE_ORACLE_PYTHON"]
async fn every_type_round_trips_through_the_server_and_libmongocrypt_reads_it() {
    let python = service_env("CSFLE_ORACLE_PYTHON");
    let (client, plain_db, db) = server_client().await;
    let typed = client
        .database(&db)
        .typed_collection::<EveryType>("every")
        .await
        .unwrap();
    let patients = client
        .database(&db)
        .typed_collection::<Patient>("patients")
        .await
        .unwrap();
    let mut values = Vec::new();
    for i in 0..20i64 {
        let mut v = every_type();
        v.string = format!("text {i}");
        v.int64 = i;
        v.optional = (i % 2 == 0).then_some(i);
        values.push(v);
    }
    typed.insert_many(&values).await.unwrap();
    let mut p = patient();
    p.nickname = None;
    patients.insert_one(&p).await.unwrap();
    patients.insert_one(&patient()).await.unwrap();

    // Read back through the typed collection, by deterministic fields.
    for (i, v) in values.iter().enumerate() {
        let found = typed
            .find_one(doc! {"string": &v.string, "int64": i as i64, "uuid": v.uuid, "date": v.date})
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("document {i} not found by its encrypted fields"));
        assert_eq!(&found, v);
    }
    let mut found: Vec<Patient> = patients
        .find(doc! {"ssn": "123-45-6789", "homeAddress.zip": "12345"})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    found.sort_by_key(|p| p.nickname.is_some());
    let mut unnamed = patient();
    unnamed.nickname = None;
    unnamed.session_only = String::new();
    let mut named = patient();
    named.session_only = String::new();
    assert_eq!(found, [unnamed, named]);

    // What the server holds: ciphertext at every encrypted path.
    let mut stored_values = Vec::new();
    let mut plaintexts = Vec::new();
    for (coll, schema) in [
        ("every", EveryType::schema_template()),
        ("patients", Patient::schema_template()),
    ] {
        let ids: HashMap<String, KeyId> = {
            let enc = client.auto_encrypter().client_encryption();
            let mut m = HashMap::new();
            for n in ["patients", "records"] {
                m.insert(
                    n.to_owned(),
                    enc.get_key_by_alt_name(n).await.unwrap().unwrap().id,
                );
            }
            m
        };
        let schema = schema.to_json_schema(&|n| ids.get(n).copied()).unwrap();
        let stored = stored_by_id(plain_db.collection(coll)).await;
        let decrypted: Vec<Document> = client
            .database(&db)
            .collection::<Document>(coll)
            .find(doc! {})
            .sort(doc! {"_id": 1})
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        for (s, d) in stored.iter().zip(&decrypted) {
            let mut found = Vec::new();
            ciphertexts(&schema, s, &mut found, "");
            for (path, c) in found {
                let mut plain = Bson::Document(d.clone());
                for part in path.split('.') {
                    plain = plain.as_document().unwrap().get(part).unwrap().clone();
                }
                stored_values.push(c);
                plaintexts.push(plain);
            }
        }
    }
    // 20 × 30 or 31 fields of EveryType, 2 × 5 or 6 of Patient.
    assert_eq!(stored_values.len(), 20 * 31 - 10 + 6 + 5);
    assert_eq!(plaintexts.len(), stored_values.len());

    // libmongocrypt decrypts every stored value to what csfle reads.
    let keys: Vec<Document> = client
        .auto_encrypter()
        .client_encryption()
        .get_keys()
        .await
        .unwrap()
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .iter()
        .map(|k| k.to_document())
        .collect();
    let values: Vec<(Bson, Bson)> = stored_values.into_iter().zip(plaintexts).collect();
    let version = assert_libmongocrypt_decrypts(&python, &keys, &values);
    eprintln!(
        "libmongocrypt {version} decrypted {} values written through typed collections",
        values.len()
    );
    plain_db.drop().await.unwrap();
}
