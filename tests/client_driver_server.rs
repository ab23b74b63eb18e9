//! The encrypted client as a production application runs it, against the
//! test server: retryable writes and reads (a lost reply, failpoints),
//! killCursors, concerns and read preference, sessions and transactions,
//! change streams, index management, collection bulk writes, the client
//! `bulkWrite` refusal, and what the server receives equal to the analysed
//! command.
//!
//! The failpoint tests need `configureFailPoint` (SecantusDB started with
//! `[server] enable_test_commands = true`, as `.ci/run` does; a MongoDB
//! with `enableTestCommands`); they fail, saying so, without it.

mod common;
#[path = "common/wire_proxy.rs"]
mod wire_proxy;

use bson::spec::BinarySubtype;
use bson::{Bson, Document, doc};
use common::*;
use csfle::WriteModel;
use csfle::kms::ProviderName;
use csfle::{DataKeyOptions, EncryptedClient, EncryptedCollection};
use futures_util::{StreamExt, TryStreamExt};
use mongodb::event::EventHandler;
use mongodb::event::command::CommandEvent;
use mongodb::options::{
    ClientOptions, CollectionOptions, FullDocumentBeforeChangeType, FullDocumentType, ReadConcern,
    ReadPreference, SelectionCriteria, WriteConcern,
};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Patient {
    #[serde(rename = "_id")]
    id: i32,
    name: String,
    ssn: String,
}

// A plain serde type: the namespace's schema says what is encrypted.
impl csfle::CollectionDocument for Patient {}

fn patient(id: i32, ssn: &str) -> Patient {
    Patient {
        id,
        name: format!("p{id}"),
        ssn: ssn.into(),
    }
}

/// The commands a client sent, as the driver's command monitoring saw them.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<Document>>>);

impl Seen {
    fn handler(&self) -> EventHandler<CommandEvent> {
        let seen = self.0.clone();
        EventHandler::callback(move |e: CommandEvent| {
            if let CommandEvent::Started(s) = e {
                seen.lock().unwrap().push(s.command);
            }
        })
    }

    fn take(&self) -> Vec<Document> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }

    fn named(&self, name: &str) -> Vec<Document> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.keys().next().map(String::as_str) == Some(name))
            .cloned()
            .collect()
    }
}

struct App {
    plain: mongodb::Client,
    enc: EncryptedClient,
    seen: Seen,
    db: String,
}

impl App {
    /// An encrypted client (over `uri`, monitored) with a local key and a
    /// schema encrypting `ssn` deterministically in `<db>.patients`.
    async fn new(uri: &str) -> App {
        let seen = Seen::default();
        let mut options = ClientOptions::parse(uri).await.unwrap();
        options.command_event_handler = Some(seen.handler());
        let client = mongodb::Client::with_options(options).unwrap();
        let plain = mongodb::Client::with_uri_str(service_env("MONGODB_URI"))
            .await
            .unwrap();
        let db = unique_name("csfle_driver");
        let kms = local_kms_document();
        // The key vault on the plain client: its queries are not in `seen`.
        let keys = EncryptedClient::builder(plain.clone())
            .key_vault_namespace(format!("{db}.__keyVault"))
            .kms_providers(kms.clone())
            .schema_map_only(true)
            .build()
            .await
            .unwrap();
        let key_id = keys
            .auto_encrypter()
            .client_encryption()
            .create_data_key(
                &ProviderName::parse("local").unwrap(),
                DataKeyOptions::default(),
            )
            .await
            .unwrap();
        let key = Bson::Array(vec![Bson::Binary(key_id.to_binary())]);
        let map = doc! {format!("{db}.patients"): {
            "bsonType": "object",
            "properties": {
                "ssn": {"encrypt": {"keyId": key, "bsonType": "string", "algorithm": "AEAD_AES_256_CBC_HMAC_SHA_512-Deterministic"}},
            },
        }};
        let enc = EncryptedClient::builder(client.clone())
            .key_vault_namespace(format!("{db}.__keyVault"))
            .key_vault_client(plain.clone())
            .kms_providers(kms)
            .schema_map(map)
            .schema_map_only(true)
            .build()
            .await
            .unwrap();
        App {
            plain,
            enc,
            seen,
            db,
        }
    }

    fn patients(&self) -> EncryptedCollection<Patient> {
        self.enc.database(&self.db).collection("patients")
    }

    async fn stored(&self) -> Vec<Document> {
        stored_by_id(self.plain.database(&self.db).collection("patients")).await
    }

    async fn fail_point(&self, data: Document, times: i32) {
        let r = self
            .plain
            .database("admin")
            .run_command(doc! {
                "configureFailPoint": "failCommand",
                "mode": {"times": times},
                "data": data,
            })
            .await;
        if let Err(e) = r {
            panic!(
                "configureFailPoint refused ({e}): start the server with test commands \
                 ([server] enable_test_commands = true; MongoDB: enableTestCommands=1)"
            );
        }
    }

    async fn drop(self) {
        self.plain.database(&self.db).drop().await.unwrap();
    }
}

fn encrypted(v: Option<&Bson>) -> bool {
    matches!(v, Some(Bson::Binary(b)) if b.subtype == BinarySubtype::Encrypted)
}

#[tokio::test]
#[ignore = "needs MONGODB_URI"]
async fn a_write_whose_reply_is_lost_is_retried_and_stored_once() {
    let proxy = wire_proxy::WireProxy::start(&service_env("MONGODB_URI")).await;
    let app = App::new(&proxy.uri).await;
    let coll = app.patients();
    proxy.lose_next_reply_to("insert");
    coll.insert_one(&patient(1, "111")).await.unwrap();
    assert_eq!(proxy.replies_lost(), 1);
    let inserts = app.seen.named("insert");
    assert_eq!(inserts.len(), 2, "sent, reply lost, retried");
    assert_eq!(inserts[0].get("txnNumber"), inserts[1].get("txnNumber"));
    assert!(inserts[0].get("txnNumber").is_some(), "a retryable write");
    let stored = app.stored().await;
    assert_eq!(stored.len(), 1, "stored exactly once");
    assert!(encrypted(stored[0].get("ssn")));
    // The same for an update and a find-and-modify.
    proxy.lose_next_reply_to("update");
    coll.update_one(doc! {"ssn": "111"}, doc! {"$set": {"name": "x"}})
        .await
        .unwrap();
    proxy.lose_next_reply_to("findAndModify");
    let before = coll
        .find_one_and_update(doc! {"ssn": "111"}, doc! {"$set": {"name": "y"}})
        .await
        .unwrap();
    assert_eq!(before.map(|p| p.name), Some("x".into()));
    assert_eq!(proxy.replies_lost(), 3);
    app.drop().await;
}

#[tokio::test]
#[ignore = "needs MONGODB_URI"]
async fn fail_points_closed_connections_and_retryable_codes_are_retried() {
    let app = App::new(&service_env("MONGODB_URI")).await;
    let coll = app.patients();
    app.fail_point(
        doc! {"failCommands": ["insert"], "closeConnection": true},
        1,
    )
    .await;
    coll.insert_one(&patient(1, "111")).await.unwrap();
    // ShutdownInProgress (91) on the next write: a retryable code.
    app.fail_point(doc! {"failCommands": ["update"], "errorCode": 91}, 1)
        .await;
    coll.update_one(doc! {"ssn": "111"}, doc! {"$set": {"name": "z"}})
        .await
        .unwrap();
    // A retryable read.
    app.fail_point(doc! {"failCommands": ["find"], "closeConnection": true}, 1)
        .await;
    let found = coll.find_one(doc! {"ssn": "111"}).await.unwrap().unwrap();
    assert_eq!(found.name, "z");
    assert_eq!(app.stored().await.len(), 1);
    assert!(app.seen.named("insert").len() >= 2);
    assert!(app.seen.named("find").len() >= 2);
    // A non-retryable error keeps the driver's error whole.
    app.fail_point(
        doc! {"failCommands": ["insert"], "errorCode": 2, "errorLabels": ["SomeLabel"]},
        1,
    )
    .await;
    let e = coll.insert_one(&patient(2, "222")).await.unwrap_err();
    assert_eq!(e.code(), Some(2), "{e}");
    assert!(e.contains_label("SomeLabel"), "{e}");
    app.drop().await;
}

#[tokio::test]
#[ignore = "needs MONGODB_URI"]
async fn a_dropped_cursor_is_killed_and_batches_decrypt() {
    let app = App::new(&service_env("MONGODB_URI")).await;
    let coll = app.patients();
    let many: Vec<Patient> = (0..10).map(|i| patient(i, &format!("{i:03}"))).collect();
    coll.insert_many(&many).await.unwrap();
    let mut stream = coll
        .find(doc! {})
        .sort(doc! {"_id": 1})
        .batch_size(2)
        .await
        .unwrap();
    assert_eq!(stream.next().await.unwrap().unwrap(), many[0]);
    drop(stream);
    // killCursors is sent in the background: up to 10 s on a loaded
    // machine (the loop ends as soon as it is seen).
    for _ in 0..500 {
        if !app.seen.named("killCursors").is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(app.seen.named("killCursors").len(), 1);
    // Read to the end: every batch decrypted, getMores sent.
    let all: Vec<Patient> = coll
        .find(doc! {})
        .sort(doc! {"_id": 1})
        .batch_size(3)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(all, many);
    assert!(app.seen.named("getMore").len() >= 3);
    let agg: Vec<Document> = coll
        .aggregate([doc! {"$match": {"ssn": "005"}}])
        .batch_size(1)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(agg.len(), 1);
    assert_eq!(agg[0].get_str("ssn").unwrap(), "005");
    app.drop().await;
}

#[tokio::test]
#[ignore = "needs MONGODB_URI"]
async fn concerns_and_read_preference_reach_the_server() {
    let app = App::new(&service_env("MONGODB_URI")).await;
    let db = app.enc.database(&app.db);
    let coll: EncryptedCollection<Patient> = db.collection_with_options(
        "patients",
        CollectionOptions::builder()
            .write_concern(WriteConcern::majority())
            .read_concern(ReadConcern::majority())
            .build(),
    );
    coll.insert_one(&patient(1, "111")).await.unwrap();
    let insert = app.seen.named("insert").pop().unwrap();
    assert_eq!(
        insert.get_document("writeConcern").unwrap().get("w"),
        Some(&Bson::String("majority".into()))
    );
    coll.find_one(doc! {"ssn": "111"}).await.unwrap().unwrap();
    let find = app.seen.named("find").pop().unwrap();
    assert_eq!(
        find.get_document("readConcern")
            .unwrap()
            .get_str("level")
            .unwrap(),
        "majority"
    );
    // Per operation.
    coll.find_one(doc! {"ssn": "111"})
        .selection_criteria(SelectionCriteria::ReadPreference(
            ReadPreference::SecondaryPreferred {
                options: Default::default(),
            },
        ))
        .read_concern(ReadConcern::local())
        .await
        .unwrap();
    let find = app.seen.named("find").pop().unwrap();
    assert_eq!(
        find.get_document("$readPreference")
            .unwrap()
            .get_str("mode")
            .unwrap(),
        "secondaryPreferred"
    );
    assert_eq!(
        find.get_document("readConcern")
            .unwrap()
            .get_str("level")
            .unwrap(),
        "local"
    );
    coll.update_one(doc! {"ssn": "111"}, doc! {"$set": {"name": "w"}})
        .write_concern(WriteConcern::nodes(1))
        .await
        .unwrap();
    let update = app.seen.named("update").pop().unwrap();
    assert_eq!(
        update.get_document("writeConcern").unwrap().get("w"),
        Some(&Bson::Int32(1))
    );
    app.drop().await;
}

#[tokio::test]
#[ignore = "needs MONGODB_URI"]
async fn sessions_and_transactions_with_encrypted_fields() {
    let app = App::new(&service_env("MONGODB_URI")).await;
    let coll = app.patients();
    // The collection exists before the transaction.
    coll.insert_one(&patient(0, "000")).await.unwrap();
    let mut s = app.enc.start_session().await.unwrap();
    let lsid = s.id().clone();
    app.seen.take();

    s.start_transaction().await.unwrap();
    coll.insert_one(&patient(1, "111"))
        .session(&mut s)
        .await
        .unwrap();
    let inside = coll
        .find_one(doc! {"ssn": "111"})
        .session(&mut s)
        .await
        .unwrap();
    assert_eq!(inside, Some(patient(1, "111")));
    s.abort_transaction().await.unwrap();
    assert_eq!(app.stored().await.len(), 1, "aborted: not stored");

    s.start_transaction().await.unwrap();
    coll.insert_one(&patient(2, "222"))
        .session(&mut s)
        .await
        .unwrap();
    coll.update_one(doc! {"ssn": "000"}, doc! {"$set": {"ssn": "999"}})
        .session(&mut s)
        .await
        .unwrap();
    let in_txn: Vec<Patient> = coll
        .find(doc! {"ssn": {"$in": ["222", "999"]}})
        .session(&mut s)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(in_txn.len(), 2);
    s.commit_transaction().await.unwrap();
    let stored = app.stored().await;
    assert_eq!(stored.len(), 2);
    assert!(stored.iter().all(|d| encrypted(d.get("ssn"))));
    assert_eq!(
        coll.find_one(doc! {"ssn": "999"})
            .await
            .unwrap()
            .map(|p| p.id),
        Some(0)
    );

    // Every command of the session carried its lsid.
    let session_commands: Vec<Document> = app
        .seen
        .take()
        .into_iter()
        .filter(|c| c.contains_key("txnNumber"))
        .collect();
    assert!(session_commands.len() >= 6, "{session_commands:?}");
    for c in &session_commands {
        assert_eq!(c.get_document("lsid").unwrap(), &lsid, "{c}");
    }
    app.drop().await;
}

#[tokio::test]
#[ignore = "needs MONGODB_URI"]
async fn with_transaction_retries_transient_errors_and_unknown_commits() {
    let app = App::new(&service_env("MONGODB_URI")).await;
    let coll = app.patients();
    coll.insert_one(&patient(0, "000")).await.unwrap();
    let mut s = app.enc.start_session().await.unwrap();

    // A transient error inside the transaction: the whole body again.
    app.fail_point(
        doc! {"failCommands": ["insert"], "errorCode": 112, "errorLabels": ["TransientTransactionError"]},
        1,
    )
    .await;
    let mut attempts = 0;
    app.enc
        .with_transaction(&mut s, async |s| {
            attempts += 1;
            coll.insert_one(&patient(1, "111")).session(s).await?;
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(attempts, 2, "run again after the transient error");
    assert_eq!(app.stored().await.len(), 2);

    // The commit's result unknown (WriteConcernFailed on commit, twice:
    // the driver's own retry fails too): the commit again, not the body.
    app.fail_point(
        doc! {"failCommands": ["commitTransaction"], "errorCode": 64},
        2,
    )
    .await;
    let mut attempts = 0;
    app.enc
        .with_transaction(&mut s, async |s| {
            attempts += 1;
            coll.insert_one(&patient(2, "222")).session(s).await?;
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(attempts, 1);
    assert!(app.seen.named("commitTransaction").len() >= 3);
    assert_eq!(app.stored().await.len(), 3);

    // Any other error aborts and is returned.
    let e = app
        .enc
        .with_transaction(&mut s, async |s| {
            coll.insert_one(&patient(3, "333")).session(s).await?;
            coll.insert_one(&patient(3, "333")).session(s).await?;
            Ok(())
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(11000), "{e}");
    assert_eq!(app.stored().await.len(), 3, "aborted");

    // The driver's own convenient API works with csfle's operations too.
    app.fail_point(
        doc! {"failCommands": ["insert"], "errorCode": 112, "errorLabels": ["TransientTransactionError"]},
        1,
    )
    .await;
    s.start_transaction()
        .and_run(&coll, |s, coll| {
            Box::pin(async move {
                coll.insert_one(&patient(4, "444"))
                    .session(s)
                    .await
                    .map_err(|e| match e.driver_error() {
                        // The driver decides on retries from its own error.
                        Some(d) => d.clone(),
                        None => mongodb::error::Error::custom(e.to_string()),
                    })?;
                Ok(())
            })
        })
        .await
        .unwrap();
    assert_eq!(app.stored().await.len(), 4);
    app.drop().await;
}

#[tokio::test]
#[ignore = "needs MONGODB_URI"]
async fn a_change_stream_decrypts() {
    let app = App::new(&service_env("MONGODB_URI")).await;
    app.plain
        .database(&app.db)
        .run_command(doc! {"create": "patients", "changeStreamPreAndPostImages": {"enabled": true}})
        .await
        .unwrap();
    let coll = app.patients();
    coll.insert_one(&patient(0, "000")).await.unwrap();
    let mut events = coll
        .watch()
        .full_document(FullDocumentType::UpdateLookup)
        .full_document_before_change(FullDocumentBeforeChangeType::WhenAvailable)
        .pipeline([doc! {"$match": {"operationType": {"$in": ["insert", "update"]}}}])
        .await
        .unwrap();
    coll.insert_one(&patient(1, "111")).await.unwrap();
    coll.update_one(doc! {"_id": 1}, doc! {"$set": {"ssn": "222"}})
        .await
        .unwrap();
    let insert = events.next().await.unwrap().unwrap();
    assert_eq!(insert.full_document, Some(patient(1, "111")));
    let update = events.next().await.unwrap().unwrap();
    assert_eq!(update.full_document, Some(patient(1, "222")));
    let updated = update.update_description.unwrap().updated_fields;
    assert_eq!(
        updated.get_str("ssn").unwrap(),
        "222",
        "updatedFields decrypted"
    );
    // The server saw a ciphertext.
    assert!(encrypted(app.stored().await[1].get("ssn")));
    app.drop().await;
}

#[tokio::test]
#[ignore = "needs MONGODB_URI"]
async fn indexes_counts_and_drop() {
    let app = App::new(&service_env("MONGODB_URI")).await;
    let coll = app.patients();
    coll.insert_many(&[patient(1, "111"), patient(2, "222")])
        .await
        .unwrap();
    let names = coll
        .create_index(mongodb::IndexModel::builder().keys(doc! {"ssn": 1}).build())
        .await
        .unwrap();
    assert_eq!(names, ["ssn_1"]);
    let listed: Vec<mongodb::IndexModel> = coll
        .list_indexes()
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert!(listed.iter().any(|m| m.keys == doc! {"ssn": 1}));
    coll.drop_index("ssn_1").await.unwrap();
    let listed: Vec<mongodb::IndexModel> = coll
        .list_indexes()
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(coll.estimated_document_count().await.unwrap(), 2);
    assert_eq!(coll.count_documents(doc! {"ssn": "222"}).await.unwrap(), 1);
    assert_eq!(coll.inner().find(doc! {}).await.unwrap().count().await, 2);
    coll.drop().await.unwrap();
    assert_eq!(coll.estimated_document_count().await.unwrap(), 0);
    app.drop().await;
}

#[tokio::test]
#[ignore = "needs MONGODB_URI"]
async fn collection_bulk_writes_ordered_and_unordered() {
    let app = App::new(&service_env("MONGODB_URI")).await;
    let coll = app.patients();
    let models = || {
        vec![
            WriteModel::InsertOne {
                document: patient(1, "111"),
            },
            WriteModel::InsertOne {
                document: patient(2, "222"),
            },
            WriteModel::UpdateOne {
                filter: doc! {"ssn": "111"},
                update: doc! {"$set": {"ssn": "333"}},
                upsert: false,
            },
            // A duplicate _id.
            WriteModel::InsertOne {
                document: patient(2, "444"),
            },
            WriteModel::DeleteOne {
                filter: doc! {"ssn": "222"},
            },
            WriteModel::ReplaceOne {
                filter: doc! {"_id": 9},
                replacement: patient(9, "999"),
                upsert: true,
            },
        ]
    };
    let e = coll.bulk_write(models()).await.unwrap_err();
    let csfle::Error::Client(csfle::ClientError::BulkWrite { result, failures }) = e else {
        panic!("{e}")
    };
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].index, 3);
    assert_eq!(failures[0].error.code(), Some(11000));
    assert_eq!((result.inserted_count, result.modified_count), (2, 1));
    assert_eq!(result.deleted_count, 0, "ordered: stopped at index 3");
    assert_eq!(app.stored().await.len(), 2);

    coll.delete_many(doc! {}).await.unwrap();
    let e = coll.bulk_write(models()).ordered(false).await.unwrap_err();
    let csfle::Error::Client(csfle::ClientError::BulkWrite { result, failures }) = e else {
        panic!("{e}")
    };
    assert_eq!(failures.iter().map(|f| f.index).collect::<Vec<_>>(), [3]);
    assert_eq!(result.deleted_count, 1, "unordered: went on");
    assert_eq!(result.upserted_ids.get(&5), Some(&Bson::Int32(9)));
    let stored = app.stored().await;
    assert_eq!(
        stored
            .iter()
            .map(|d| d.get_i32("_id").unwrap())
            .collect::<Vec<_>>(),
        [1, 9]
    );
    assert!(stored.iter().all(|d| encrypted(d.get("ssn"))));
    app.drop().await;
}

#[tokio::test]
#[ignore = "needs MONGODB_URI"]
async fn client_bulk_write_is_refused() {
    let app = App::new(&service_env("MONGODB_URI")).await;
    let e = app
        .enc
        .database("admin")
        .run_command(doc! {
            "bulkWrite": 1,
            "ops": [{"insert": 0, "document": {"ssn": "111"}}],
            "nsInfo": [{"ns": format!("{}.patients", app.db)}],
        })
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "bulkWrite does not currently support automatic encryption"
    );
    assert!(app.seen.named("bulkWrite").is_empty(), "nothing sent");
    app.drop().await;
}

/// What the server receives is the analysed command: for every operation
/// with every option, the command the driver sent (its own fields aside)
/// equals automatic encryption's output for the equivalent command.
#[tokio::test]
#[ignore = "needs MONGODB_URI"]
async fn the_server_receives_the_analysed_command() {
    use mongodb::options::{Collation, Hint, ReturnDocument};
    let app = App::new(&service_env("MONGODB_URI")).await;
    let coll = app.patients();
    coll.insert_many(&[patient(1, "111"), patient(2, "222")])
        .await
        .unwrap();
    let auto = app.enc.auto_encrypter();
    let collation = Collation::builder().locale("en").build();
    let collation_doc = bson::to_document(&collation).unwrap();
    let cases: Vec<(&str, Document)> = vec![
        (
            "find",
            doc! {"find": "patients", "filter": {"ssn": "111"}, "sort": {"_id": 1},
            "projection": {"name": 1, "ssn": 1}, "limit": 5i64, "skip": 0i64, "hint": {"_id": 1},
            "collation": collation_doc.clone(), "comment": "c", "maxTimeMS": 1000i64,
            "let": {"x": 1}, "allowDiskUse": true, "batchSize": 3},
        ),
        (
            "insert",
            doc! {"insert": "patients", "documents": [{"_id": 3, "name": "p3", "ssn": "333"}],
            "ordered": false, "bypassDocumentValidation": true, "comment": "c"},
        ),
        (
            "update",
            doc! {"update": "patients", "updates": [{"q": {"ssn": "333"}, "u": {"$set": {"ssn": "444"}},
            "multi": true, "upsert": false, "hint": {"_id": 1}, "collation": collation_doc.clone()}],
            "ordered": true, "let": {"x": 1}, "comment": "c"},
        ),
        (
            "delete",
            doc! {"delete": "patients", "deletes": [{"q": {"ssn": "444"}, "limit": 1, "hint": {"_id": 1}}],
            "ordered": true, "comment": "c"},
        ),
        (
            "findAndModify",
            doc! {"findAndModify": "patients", "query": {"ssn": "222"}, "update": {"$set": {"ssn": "555"}},
            "sort": {"_id": 1}, "fields": {"ssn": 1, "name": 1}, "upsert": false, "new": true, "maxTimeMS": 1000i64,
            "comment": "c"},
        ),
        (
            "aggregate",
            doc! {"aggregate": "patients", "pipeline": [{"$match": {"ssn": "555"}}, {"$project": {"ssn": 1}}],
            "cursor": {"batchSize": 2}, "allowDiskUse": true, "comment": "c", "maxTimeMS": 1000i64},
        ),
        (
            "distinct",
            doc! {"distinct": "patients", "key": "name", "query": {"ssn": "555"}, "comment": "c"},
        ),
    ];
    for (name, equivalent) in cases {
        let expected = auto.encrypt_command(&app.db, &equivalent).await.unwrap();
        app.seen.take();
        match name {
            "find" => {
                let _: Vec<Patient> = coll
                    .find(doc! {"ssn": "111"})
                    .sort(doc! {"_id": 1})
                    .projection(doc! {"name": 1, "ssn": 1})
                    .limit(5)
                    .skip(0)
                    .hint(Hint::Keys(doc! {"_id": 1}))
                    .collation(collation.clone())
                    .comment("c")
                    .max_time(Duration::from_millis(1000))
                    .let_vars(doc! {"x": 1})
                    .allow_disk_use(true)
                    .batch_size(3)
                    .await
                    .unwrap()
                    .try_collect()
                    .await
                    .unwrap();
            }
            "insert" => {
                coll.insert_many(&[patient(3, "333")])
                    .ordered(false)
                    .bypass_document_validation(true)
                    .comment("c")
                    .await
                    .unwrap();
            }
            "update" => {
                coll.update_many(doc! {"ssn": "333"}, doc! {"$set": {"ssn": "444"}})
                    .hint(Hint::Keys(doc! {"_id": 1}))
                    .collation(collation.clone())
                    .let_vars(doc! {"x": 1})
                    .comment("c")
                    .await
                    .unwrap();
            }
            "delete" => {
                coll.delete_one(doc! {"ssn": "444"})
                    .hint(Hint::Keys(doc! {"_id": 1}))
                    .comment("c")
                    .await
                    .unwrap();
            }
            "findAndModify" => {
                coll.find_one_and_update(doc! {"ssn": "222"}, doc! {"$set": {"ssn": "555"}})
                    .sort(doc! {"_id": 1})
                    .projection(doc! {"ssn": 1, "name": 1})
                    .upsert(false)
                    .return_document(ReturnDocument::After)
                    .max_time(Duration::from_millis(1000))
                    .comment("c")
                    .await
                    .unwrap();
            }
            "aggregate" => {
                let _: Vec<Document> = coll
                    .aggregate([
                        doc! {"$match": {"ssn": "555"}},
                        doc! {"$project": {"ssn": 1}},
                    ])
                    .batch_size(2)
                    .allow_disk_use(true)
                    .comment("c")
                    .max_time(Duration::from_millis(1000))
                    .await
                    .unwrap()
                    .try_collect()
                    .await
                    .unwrap();
            }
            "distinct" => {
                coll.distinct("name", doc! {"ssn": "555"})
                    .comment("c")
                    .await
                    .unwrap();
            }
            _ => unreachable!(),
        }
        let sent = app.seen.named(name);
        assert_eq!(sent.len(), 1, "{name}: {sent:?}");
        let sent = without_driver_fields(sent.into_iter().next().unwrap());
        assert_eq!(command_fields(&sent), command_fields(&expected), "{name}");
    }
    app.drop().await;
}

/// What no server sees: a refused operation sends nothing.
#[tokio::test]
#[ignore = "needs MONGODB_URI"]
async fn refused_operations_send_nothing() {
    let app = App::new(&service_env("MONGODB_URI")).await;
    let coll = app.patients();
    app.seen.take();
    // A regex on a deterministic field, a sort on it, an expression over it.
    assert!(coll.find(doc! {"ssn": {"$regex": "^1"}}).await.is_err());
    assert!(coll.find(doc! {}).sort(doc! {"ssn": 1}).await.is_err());
    assert!(
        coll.aggregate([doc! {"$project": {"x": {"$concat": ["$ssn", "-"]}}}])
            .await
            .is_err()
    );
    assert!(
        coll.update_one(doc! {}, doc! {"$inc": {"ssn": 1}})
            .await
            .is_err()
    );
    assert!(app.seen.take().is_empty());
    app.drop().await;
}
