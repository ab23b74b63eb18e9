//! Schemas read from the server, by default, against the test server.
//!
//! The test server refuses `encrypt` in validators, so the schemas the
//! server "has" are put into its `listCollections` replies by a loopback
//! wire proxy (`tests/common/wire_proxy.rs`); everything else the driver
//! sends and receives passes through unchanged. The seam tests at the end
//! need no server.

mod common;
#[path = "common/wire_proxy.rs"]
mod wire_proxy;

use bson::spec::BinarySubtype;
use bson::{Bson, Document, doc};
use common::*;
use csfle::keyvault::{MemoryKeyVault, MongoKeyVault};
use csfle::kms::KmsProviders;
use csfle::{
    AutoEncrypter, AutoEncryptionOptions, ClientEncryption, EncryptedClient, KeyId, RemoteSchema,
    SchemaFetcher,
};
use futures_util::future::BoxFuture;
use std::sync::Arc;
use wire_proxy::{Listed, WireProxy};

const SSN: &str = "457-55-5462";

fn kms() -> KmsProviders {
    local_kms()
}

fn schema(key: KeyId, encrypted: bool) -> Document {
    let ssn = if encrypted {
        doc! {"encrypt": {"keyId": [Bson::Binary(key.to_binary())], "bsonType": "string", "algorithm": "AEAD_AES_256_CBC_HMAC_SHA_512-Deterministic"}}
    } else {
        doc! {"bsonType": "string"}
    };
    doc! {"bsonType": "object", "properties": {"ssn": ssn}}
}

struct Setup {
    direct: mongodb::Client,
    proxy: WireProxy,
    db: String,
    key: KeyId,
}

impl Setup {
    async fn new() -> Self {
        let uri = service_env("MONGODB_URI");
        let direct = mongodb::Client::with_uri_str(&uri).await.unwrap();
        let db = unique_name("csfle_srvschema");
        for c in ["people", "plain"] {
            direct.database(&db).create_collection(c).await.unwrap();
        }
        let ce = ClientEncryption::new(self_vault(&direct, &db), kms());
        let key = create_local_key(&ce).await;
        let proxy = WireProxy::start(&uri).await;
        Setup {
            direct,
            proxy,
            db,
            key,
        }
    }

    /// An encrypted client through the proxy, with `map` and `options`.
    async fn client(&self, map: Document, options: AutoEncryptionOptions) -> EncryptedClient {
        let through = mongodb::Client::with_uri_str(&self.proxy.uri)
            .await
            .unwrap();
        let ce = ClientEncryption::new(self_vault(&self.direct, &self.db), kms());
        EncryptedClient::new(through, AutoEncrypter::new(ce, &map, options).unwrap())
    }

    async fn stored_ssn(&self, id: i32) -> Bson {
        let d = self
            .direct
            .database(&self.db)
            .collection::<Document>("people")
            .find_one(doc! {"_id": id})
            .await
            .unwrap()
            .unwrap();
        d.get("ssn").cloned().unwrap()
    }

    async fn drop(self) {
        self.direct.database(&self.db).drop().await.unwrap();
    }
}

fn self_vault(client: &mongodb::Client, db: &str) -> MongoKeyVault {
    MongoKeyVault::new(client, &format!("{db}.__keyVault")).unwrap()
}

fn is_ciphertext(v: &Bson) -> bool {
    matches!(v, Bson::Binary(b) if b.subtype == BinarySubtype::Encrypted && b.bytes.first() == Some(&1))
}

/// With no schema map at all, the server's schema encrypts: inserts are
/// stored encrypted, finds match, the schema is read once per TTL, and
/// another collection's server schema is honoured by `$lookup` (the
/// command line's preview reads it too:
/// `csfle-cli/tests/cli_remote_schema_server.rs`).
#[tokio::test]
#[ignore = "needs MONGODB_URI"]
async fn server_schema_is_used_by_default() {
    let s = Setup::new().await;
    s.proxy.list(
        "people",
        Listed::Validator(doc! {"$jsonSchema": schema(s.key, true)}),
    );
    let enc = s
        .client(Document::new(), AutoEncryptionOptions::default())
        .await;
    let db = enc.database(&s.db);
    db.run_command(doc! {"insert": "people", "documents": [{"_id": 1, "ssn": SSN, "name": "a"}]})
        .await
        .unwrap();
    assert!(is_ciphertext(&s.stored_ssn(1).await), "stored encrypted");
    let reply = db
        .run_command(doc! {"find": "people", "filter": {"ssn": SSN}})
        .await
        .unwrap();
    let batch = reply
        .get_document("cursor")
        .unwrap()
        .get_array("firstBatch")
        .unwrap();
    assert_eq!(batch.len(), 1);
    assert_eq!(batch[0].as_document().unwrap().get_str("ssn"), Ok(SSN));
    // One listCollections for `people`, reused for the second command.
    assert_eq!(s.proxy.list_collections_seen(), 1);
    // A plain collection's aggregate that filters `people` through a
    // $lookup: the server's schema of `people` refuses it.
    let e = db
        .run_command(doc! {"aggregate": "plain", "pipeline": [{"$lookup": {"from": "people", "pipeline": [{"$match": {"ssn": SSN}}], "as": "p"}}], "cursor": {}})
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!("{}.people", s.db)) && e.contains("ssn"),
        "{e}"
    );
    s.drop().await;
}

/// The schema map wins: a server schema that lost its `encrypt` (whoever
/// controls the server can do that) does not make csfle send plaintext,
/// and the server is not even asked.
#[tokio::test]
#[ignore = "needs MONGODB_URI"]
async fn local_map_wins_over_a_weakened_server_schema() {
    let s = Setup::new().await;
    s.proxy.list(
        "people",
        Listed::Validator(doc! {"$jsonSchema": schema(s.key, false)}),
    );
    let map = doc! {format!("{}.people", s.db): schema(s.key, true)};
    let enc = s.client(map, AutoEncryptionOptions::default()).await;
    enc.database(&s.db)
        .run_command(doc! {"insert": "people", "documents": [{"_id": 2, "ssn": SSN}]})
        .await
        .unwrap();
    assert!(is_ciphertext(&s.stored_ssn(2).await), "stored encrypted");
    assert_eq!(s.proxy.list_collections_seen(), 0);
    s.drop().await;
}

/// Server schemas csfle cannot use fail the command, never "no schema".
#[tokio::test]
#[ignore = "needs MONGODB_URI"]
async fn unusable_server_schemas_fail_the_command() {
    let s = Setup::new().await;
    s.proxy.list(
        "people",
        Listed::Validator(doc! {"$jsonSchema": schema(s.key, true), "$expr": {"$gt": ["$a", 1]}}),
    );
    s.proxy.list("plain", Listed::View);
    let enc = s
        .client(Document::new(), AutoEncryptionOptions::default())
        .await;
    let db = enc.database(&s.db);
    let e = db
        .run_command(doc! {"insert": "people", "documents": [{"_id": 3, "ssn": SSN}]})
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("beside $jsonSchema"), "{e}");
    let e = db
        .run_command(doc! {"find": "plain", "filter": {}})
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("cannot auto encrypt a view"), "{e}");
    // Nothing was written.
    let n = s
        .direct
        .database(&s.db)
        .collection::<Document>("people")
        .count_documents(doc! {})
        .await
        .unwrap();
    assert_eq!(n, 0);
    // With the map declared complete, the server is not asked at all.
    let before = s.proxy.list_collections_seen();
    let enc = s
        .client(
            Document::new(),
            AutoEncryptionOptions::default().with_schema_map_only(true),
        )
        .await;
    enc.database(&s.db)
        .run_command(doc! {"find": "plain", "filter": {}})
        .await
        .unwrap();
    assert_eq!(s.proxy.list_collections_seen(), before);
    s.drop().await;
}

/// A fetcher that fails, for the seam tests.
#[derive(Debug)]
struct Failing;

impl SchemaFetcher for Failing {
    fn collection_schema<'a>(
        &'a self,
        db: &'a str,
        coll: &'a str,
    ) -> BoxFuture<'a, Result<RemoteSchema, csfle::Error>> {
        Box::pin(std::future::ready(Err(csfle::Error::Client(
            csfle::ClientError::SchemaFetch {
                namespace: format!("{db}.{coll}"),
                source: "connection reset".into(),
            },
        ))))
    }
}

/// A failed `listCollections` fails the command; it is never taken for
/// "no schema". Without a server to ask and a map that is not declared
/// complete, a namespace the map lacks refuses the command, naming it.
#[tokio::test]
async fn lookups_that_cannot_be_made_refuse_the_command() {
    let auto = AutoEncrypter::new(
        ClientEncryption::new(MemoryKeyVault::new(), kms()),
        &Document::new(),
        AutoEncryptionOptions::default(),
    )
    .unwrap();
    let e = auto
        .encrypt_command("app", &doc! {"find": "people", "filter": {"ssn": SSN}})
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("app.people") && e.contains("no server schema lookup"),
        "{e}"
    );
    let auto = auto.with_remote_schemas(Arc::new(Failing));
    let e = auto
        .encrypt_command("app", &doc! {"find": "people", "filter": {"ssn": SSN}})
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("listCollections for app.people failed"), "{e}");
    // A foreign namespace is looked up the same way.
    let key = KeyId::from_bytes([1; 16]);
    let map = doc! {"app.plain": {"properties": {"a": {"bsonType": "int"}}}, "app.people": schema(key, true)};
    let auto = AutoEncrypter::new(
        ClientEncryption::new(MemoryKeyVault::new(), kms()),
        &map,
        AutoEncryptionOptions::default(),
    )
    .unwrap()
    .with_remote_schemas(Arc::new(Failing));
    let e = auto
        .encrypt_command(
            "app",
            &doc! {"aggregate": "plain", "pipeline": [{"$lookup": {"from": "elsewhere", "localField": "a", "foreignField": "b", "as": "e"}}], "cursor": {}},
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("listCollections for app.elsewhere failed"),
        "{e}"
    );
}
