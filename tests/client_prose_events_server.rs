//! Spec prose test 14, decryption events, cases 1 to 4. Cases 1 and 2 need
//! the server's `configureFailPoint` (SecantusDB with test commands, as
//! `.ci/run` starts it; MongoDB with `enableTestCommands`).

mod common;

use bson::{Bson, Document, doc};
use common::*;
use csfle::keyvault::MongoKeyVault;
use csfle::kms::{KmsProviders, LocalMasterKey, ProviderName};
use csfle::{
    Algorithm, AutoEncrypter, AutoEncryptionOptions, ClientEncryption, EncryptedClient, KeyRef,
};
use futures_util::TryStreamExt;
use mongodb::event::EventHandler;
use mongodb::event::command::CommandEvent;
use std::sync::{Arc, Mutex};

#[tokio::test]
#[ignore = "needs MONGODB_URI"]
async fn prose_14_decryption_events() {
    let uri = service_env("MONGODB_URI");
    let setup = mongodb::Client::with_uri_str(&uri).await.unwrap();
    let dbname = unique_name("csfle_prose14");
    setup
        .database(&dbname)
        .run_command(doc! {"create": "decryption_events"})
        .await
        .unwrap();

    let kms = || {
        KmsProviders::new().with_local(
            ProviderName::parse("local").unwrap(),
            LocalMasterKey::new(&b64(LOCAL_MASTERKEY_B64)).unwrap(),
        )
    };
    let ns = format!("{dbname}.datakeys");
    let ce = ClientEncryption::new(MongoKeyVault::new(&setup, &ns).unwrap(), kms());
    let key = create_local_key(&ce).await;
    let ciphertext = ce
        .encrypt(&"hello".into(), &KeyRef::Id(key), Algorithm::Deterministic)
        .await
        .unwrap();
    let mut malformed = ciphertext.clone();
    *malformed.bytes.last_mut().unwrap() ^= 0xff;

    // encryptedClient, recording the last aggregate CommandSucceeded reply
    // and the aggregate CommandFailed events.
    let succeeded: Arc<Mutex<Option<Document>>> = Arc::default();
    let failed: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = Arc::clone(&succeeded);
    let failures = Arc::clone(&failed);
    let mut options = mongodb::options::ClientOptions::parse(&uri).await.unwrap();
    options.retry_reads = Some(false);
    options.command_event_handler = Some(EventHandler::callback(move |e: CommandEvent| match e {
        CommandEvent::Succeeded(s) if s.command_name == "aggregate" => {
            *sink.lock().unwrap() = Some(s.reply.clone());
        }
        CommandEvent::Failed(f) if f.command_name == "aggregate" => {
            failures.lock().unwrap().push(f.failure.to_string());
        }
        _ => {}
    }));
    let client = mongodb::Client::with_options(options).unwrap();
    let auto = AutoEncrypter::new(
        ClientEncryption::new(MongoKeyVault::new(&client, &ns).unwrap(), kms()),
        &doc! {},
        AutoEncryptionOptions::default(),
    )
    .unwrap();
    let coll = EncryptedClient::new(client, auto)
        .database(&dbname)
        .collection::<Document>("decryption_events");
    let reply_has_binary = || async {
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        let reply = succeeded
            .lock()
            .unwrap()
            .take()
            .expect("a CommandSucceededEvent for aggregate");
        let batch = reply
            .get_document("cursor")
            .unwrap()
            .get_array("firstBatch")
            .unwrap()
            .clone();
        matches!(
            batch[0].as_document().unwrap().get("encrypted"),
            Some(Bson::Binary(_))
        )
    };

    let fail_aggregate = |data: Document| {
        let setup = setup.clone();
        async move {
            setup
                .database("admin")
                .run_command(doc! {
                    "configureFailPoint": "failCommand",
                    "mode": {"times": 1},
                    "data": data,
                })
                .await
                .expect("configureFailPoint (the server needs test commands enabled)");
        }
    };

    // Case 1: command error.
    fail_aggregate(doc! {"errorCode": 123, "failCommands": ["aggregate"]}).await;
    let err = coll.aggregate(vec![]).await.expect_err("a command error");
    assert_eq!(err.code(), Some(123), "{err}");
    assert_eq!(failed.lock().unwrap().len(), 1, "a CommandFailedEvent");

    // Case 2: network error.
    fail_aggregate(doc! {"errorCode": 123, "closeConnection": true, "failCommands": ["aggregate"]})
        .await;
    let err = coll.aggregate(vec![]).await.expect_err("a network error");
    let network = err
        .driver_error()
        .is_some_and(|e| matches!(*e.kind, mongodb::error::ErrorKind::Io(_)));
    assert!(network, "{err:?}");
    assert_eq!(failed.lock().unwrap().len(), 2, "a CommandFailedEvent");

    // Case 3: decrypt error. The command succeeded; decryption of the reply fails.
    coll.insert_one(&doc! {"encrypted": malformed})
        .await
        .unwrap();
    let err = coll
        .aggregate(vec![])
        .await
        .expect_err("a decryption error");
    assert!(err.to_string().contains("HMAC validation failure"), "{err}");
    assert!(reply_has_binary().await);

    // Case 4: decrypt success.
    coll.delete_many(doc! {}).await.unwrap();
    coll.insert_one(&doc! {"encrypted": ciphertext})
        .await
        .unwrap();
    let docs: Vec<Document> = coll
        .aggregate(vec![])
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(docs[0].get_str("encrypted").unwrap(), "hello");
    assert!(reply_has_binary().await);
    setup.database(&dbname).drop().await.unwrap();
}
