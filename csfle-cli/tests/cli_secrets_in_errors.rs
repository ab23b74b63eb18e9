//! No error message of the `csfle` command line carries a secret: what
//! `csfle migrate` prints when a run gives up (the error and its "resume
//! with:" line) holds no 8-byte piece of any password or secret URI option
//! it was given, raw, hex, base64 or base64url (the library's errors:
//! `tests/crate_secrets_in_errors.rs`).

// The integration tests' shared helpers live with the library's tests.
#[path = "../../tests/common/mod.rs"]
mod common;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use proptest::prelude::*;

/// Every encoding of `secret` a message could carry.
fn encodings(secret: &[u8]) -> Vec<Vec<u8>> {
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    vec![
        secret.to_vec(),
        hex.as_bytes().to_vec(),
        hex.to_uppercase().into_bytes(),
        STANDARD.encode(secret).into_bytes(),
        URL_SAFE_NO_PAD.encode(secret).into_bytes(),
    ]
}

/// Fails if `message` holds 8 consecutive bytes of any encoding of any secret.
fn assert_clean(case: &str, message: &str, secrets: &[&[u8]]) {
    for secret in secrets {
        for enc in encodings(secret) {
            for window in enc.windows(8) {
                assert!(
                    !message.as_bytes().windows(8).any(|w| w == window),
                    "{case}: the error carries part of a secret: {message}"
                );
            }
        }
    }
}

fn text(bytes: &[u8]) -> String {
    // A secret string as a user might write one: printable, long enough.
    URL_SAFE_NO_PAD.encode(bytes)
}

/// What `csfle migrate` prints when a run gives up (no server answers on
/// `127.0.0.1`, `--max-retry-seconds 0`): the error and the "resume with:"
/// line, every URI on it (`--uri`, and the key vault's as `--key-vault=URI`)
/// holding a password and an AWS session token.
fn migrate_give_up_stderr(password: &str, token: &str, vault_password: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let kms = common::write_local_kms_file(dir.path());
    let plan = dir.path().join("plan.json");
    // A plan that only encrypts: no audit log is asked for.
    std::fs::write(
        &plan,
        r#"{"hr.people": {"bsonType": "object", "properties": {"ssn": {"encrypt": {"keyId": [{"$binary": {"base64": "EREREREREREREREREREREQ==", "subType": "04"}}], "bsonType": "string", "algorithm": "AEAD_AES_256_CBC_HMAC_SHA_512-Deterministic"}}}}}"#,
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let uri = format!(
        "mongodb://app:{password}@127.0.0.1:{port}/?serverSelectionTimeoutMS=200&authMechanismProperties=AWS_SESSION_TOKEN:{token}"
    );
    let vault =
        format!("mongodb://kv:{vault_password}@127.0.0.1:{port}/?serverSelectionTimeoutMS=200");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_csfle"))
        .args([
            "migrate",
            "--uri",
            uri.as_str(),
            "--source",
            "hr.people",
            "--schema-map",
        ])
        .arg(&plan)
        .args(["--max-retry-seconds", "0", "--kms-providers"])
        .arg(&kms)
        .arg(format!("--key-vault={vault}"))
        .env_remove("CSFLE_URI")
        .env_remove("CSFLE_KEY_VAULT")
        .env_remove("CSFLE_AUDIT_LOG")
        .env_remove("CSFLE_AUDIT_REQUIRED")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    stderr
}

proptest! {
    // Each case runs the command line (and waits out a server selection).
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    /// The resume line masks every URI's password and secret options.
    #[test]
    fn migrate_resume_line(
        password in proptest::collection::vec(any::<u8>(), 12..24),
        token in proptest::collection::vec(any::<u8>(), 12..32),
        vault_password in proptest::collection::vec(any::<u8>(), 12..24),
    ) {
        let (password, token, vault_password) = (text(&password), text(&token), text(&vault_password));
        let stderr = migrate_give_up_stderr(&password, &token, &vault_password);
        prop_assert!(stderr.contains("\nresume with: "), "{stderr}");
        assert_clean(
            "migrate resume line",
            &stderr,
            &[password.as_bytes(), token.as_bytes(), vault_password.as_bytes()],
        );
    }
}
