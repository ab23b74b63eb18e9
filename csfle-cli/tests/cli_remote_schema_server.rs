//! `csfle preview` reads a collection's schema from the server, as
//! automatic encryption does by default (`tests/client_remote_schema_server.rs`): the
//! test server refuses `encrypt` in validators, so the schema is put into
//! its `listCollections` replies by the loopback wire proxy
//! (`tests/common/wire_proxy.rs`).

// The integration tests' shared helpers live with the library's tests.
#[path = "../../tests/common/mod.rs"]
mod common;
#[path = "../../tests/common/wire_proxy.rs"]
mod wire_proxy;

use bson::{Bson, doc};
use common::*;
use csfle::ClientEncryption;
use csfle::keyvault::MongoKeyVault;
use wire_proxy::{Listed, WireProxy};

const SSN: &str = "457-55-5462";

/// With no schema map, `csfle preview --uri` encrypts the filter of a
/// `find` by the server's schema.
// Multi-threaded: the proxy keeps serving while the test waits for the
// `csfle` process that connects through it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MONGODB_URI"]
async fn preview_reads_the_server_schema() {
    let uri = service_env("MONGODB_URI");
    let direct = mongodb::Client::with_uri_str(&uri).await.unwrap();
    let db = unique_name("csfle_srvschema_cli");
    direct
        .database(&db)
        .create_collection("people")
        .await
        .unwrap();
    let vault = MongoKeyVault::new(&direct, &format!("{db}.__keyVault")).unwrap();
    let key = create_local_key(&ClientEncryption::new(vault, local_kms())).await;
    let proxy = WireProxy::start(&uri).await;
    let encrypt = doc! {"keyId": [Bson::Binary(key.to_binary())], "bsonType": "string", "algorithm": "AEAD_AES_256_CBC_HMAC_SHA_512-Deterministic"};
    proxy.list(
        "people",
        Listed::Validator(
            doc! {"$jsonSchema": {"bsonType": "object", "properties": {"ssn": {"encrypt": encrypt}}}},
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    let kms_file = write_local_kms_file(dir.path());
    let mut preview = std::process::Command::new(env!("CARGO_BIN_EXE_csfle"));
    preview
        .args([
            "preview",
            "--db",
            &db,
            "--key-vault-namespace",
            &format!("{db}.__keyVault"),
        ])
        .arg("--kms-providers")
        .arg(&kms_file)
        .env("CSFLE_URI", &proxy.uri)
        .env("CSFLE_KEY_VAULT", &uri);
    let out = output_with_stdin(
        &mut preview,
        &format!("{{\"find\": \"people\", \"filter\": {{\"ssn\": \"{SSN}\"}}}}\n"),
    );
    direct.database(&db).drop().await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8(out.stdout).unwrap();
    assert!(
        line.contains("\"subType\":\"06\"") && !line.contains(SSN),
        "{line}"
    );
    assert!(
        proxy.list_collections_seen() >= 1,
        "the schema was read from the server, through the proxy"
    );
}
