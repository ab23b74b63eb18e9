//! The `csfle` command line with AWS KMS, against moto on loopback (TLS,
//! signature checking on; see `tests/common/moto.rs`): on-demand
//! credentials from the environment of a `csfle keys create` process.

// The integration tests' shared helpers live with the library's tests.
#[path = "../../tests/common/mod.rs"]
mod common;
#[path = "../../tests/common/moto.rs"]
mod moto;

use moto::moto;
use std::process::Command;

/// Prose test 15 (on-demand AWS credentials). `"aws": {}`: credentials from the standard chain, here the environment
/// of a `csfle keys create` process (IMDS disabled so nothing leaves
/// 127.0.0.1); without any, the error says so.
#[tokio::test]
#[ignore = "needs CSFLE_MOTO_URL"]
async fn on_demand_credentials_from_the_environment() {
    let m = moto();
    let arn = m.create_key().await;
    let dir = tempfile::tempdir().unwrap();
    let kms_file = dir.path().join("kms.json");
    std::fs::write(&kms_file, r#"{"aws": {}}"#).unwrap();
    let tls_file = dir.path().join("tls.json");
    std::fs::write(
        &tls_file,
        serde_json::json!({"aws": {"tlsCAFile": &m.ca_file}}).to_string(),
    )
    .unwrap();
    let vault = dir.path().join("keys.json");
    let master_key = csfle::ejson::to_canonical_line(&m.master_key(&arn));
    let create = |with_credentials: bool| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_csfle"));
        c.args([
            "keys",
            "create",
            "--kms-provider",
            "aws",
            "--master-key",
            &master_key,
        ])
        .arg("--kms-providers")
        .arg(&kms_file)
        .arg("--kms-tls-options")
        .arg(&tls_file)
        .arg("--key-vault")
        .arg(&vault)
        .env_clear()
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", dir.path().join("none"))
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.path().join("none"))
        .env("HOME", dir.path());
        if with_credentials {
            c.env("AWS_ACCESS_KEY_ID", &m.key_id)
                .env("AWS_SECRET_ACCESS_KEY", &m.secret);
        }
        c.output().unwrap()
    };
    let out = create(true);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8(out.stdout).unwrap();
    assert!(id.contains("\"subType\":\"04\""), "{id}");
    // The key document records the AWS master key and decrypts with it.
    let stored = std::fs::read_to_string(&vault).unwrap();
    assert!(stored.contains(&arn), "{stored}");
    let out = create(false);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.to_lowercase().contains("credentials"), "{err}");
}
