//! The `csfle` command line with KMIP.
//!
//! Against PyKMIP (`#[ignore = "needs CSFLE_KMIP_ENDPOINT"]`; `.ci/run`
//! starts it): `keys create --kms-provider kmip` in the default mode and with
//! `--master-key '{"delegated": true}'`, values encrypted and decrypted with
//! both, and `keys rewrap` moving a local key to KMIP (both modes) and back.
//!
//! Offline: a key document naming another KMIP endpoint than the configured
//! one is refused before any connection, unless `--kms-allow-host kmip:…`
//! allows it (a host allowed without `kmip:` is not a KMIP server).
//!
//! Delegated mode is refused unless `--kms-allow-kmip-delegated` is given:
//! the PyKMIP tests give it.

// The integration tests' shared helpers live with the library's tests.
#[path = "../../tests/common/mod.rs"]
mod common;

use bson::{Bson, Document, doc};
use common::{LOCAL_MASTERKEY_B64, service_env};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A directory with `kms.json`, optionally `tls.json`, and the key vault
/// file `vault.json`.
struct Setup {
    dir: tempfile::TempDir,
    tls: bool,
    /// Whether every command gets `--kms-allow-kmip-delegated`.
    allow_delegated: bool,
}

impl Setup {
    fn new(providers: Value, tls: Option<Value>) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("kms.json"), providers.to_string()).unwrap();
        if let Some(tls) = &tls {
            std::fs::write(dir.path().join("tls.json"), tls.to_string()).unwrap();
        }
        Setup {
            dir,
            tls: tls.is_some(),
            allow_delegated: false,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `csfle ARGS` with the providers, TLS options and key vault, `stdin`
    /// as its input, none of csfle's environment variables set.
    fn run(&self, args: &[&str], stdin: &str) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_csfle"));
        for var in [
            "CSFLE_URI",
            "CSFLE_KEY_VAULT",
            "CSFLE_AUDIT_LOG",
            "CSFLE_AUDIT_REQUIRED",
            "CSFLE_KMS_ALLOWED_HOSTS",
        ] {
            cmd.env_remove(var);
        }
        cmd.args(args)
            .arg("--kms-providers")
            .arg(self.path("kms.json"))
            .arg("--key-vault")
            .arg(self.path("vault.json"));
        if self.tls {
            cmd.arg("--kms-tls-options").arg(self.path("tls.json"));
        }
        if self.allow_delegated {
            cmd.arg("--kms-allow-kmip-delegated");
        }
        common::output_with_stdin(&mut cmd, stdin)
    }

    /// `csfle ARGS`, which must succeed; its standard output.
    fn ok(&self, args: &[&str], stdin: &str) -> String {
        let out = self.run(args, stdin);
        assert_eq!(
            out.status.code(),
            Some(0),
            "csfle {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `keys create ARGS`: the new key's id (base64).
    fn create(&self, args: &[&str]) -> String {
        let mut all = vec!["keys", "create"];
        all.extend_from_slice(args);
        let line = self.ok(&all, "");
        let v: Value = serde_json::from_str(line.trim()).unwrap();
        assert_eq!(v["$binary"]["subType"], "04", "{line}");
        v["$binary"]["base64"].as_str().unwrap().to_owned()
    }

    /// The key document with alternate name `name`.
    fn key(&self, name: &str) -> Document {
        csfle::keyvault::FileKeyVault::new(self.path("vault.json"))
            .load()
            .unwrap()
            .into_iter()
            .map(|k| k.to_document())
            .find(|d| {
                d.get_array("keyAltNames")
                    .is_ok_and(|names| names.contains(&Bson::from(name)))
            })
            .unwrap_or_else(|| panic!("no key named {name}"))
    }
}

/// The wrapped key material's length.
fn key_material_len(key: &Document) -> usize {
    match key.get("keyMaterial") {
        Some(Bson::Binary(b)) => b.bytes.len(),
        other => panic!("keyMaterial: {other:?}"),
    }
}

/// A KMIP masterKey's `keyId`, which a new key must have been given.
fn kmip_key_id(key: &Document) -> String {
    let master_key = key.get_document("masterKey").unwrap();
    assert_eq!(master_key.get_str("provider"), Ok("kmip"), "{master_key}");
    let id = master_key.get_str("keyId").unwrap();
    assert!(!id.is_empty(), "{master_key}");
    id.to_owned()
}

fn pykmip_setup() -> Setup {
    let mut setup = Setup::new(
        json!({
            "local": {"key": LOCAL_MASTERKEY_B64},
            "kmip": {"endpoint": service_env("CSFLE_KMIP_ENDPOINT")},
        }),
        Some(json!({"kmip": {
            "tlsCAFile": service_env("CSFLE_KMIP_CA_FILE"),
            "tlsCertificateKeyFile": service_env("CSFLE_KMIP_CLIENT_CERT"),
        }})),
    );
    setup.allow_delegated = true;
    setup
}

#[test]
#[ignore = "needs CSFLE_KMIP_ENDPOINT"]
fn keys_create_with_kmip_in_both_modes() {
    let s = pykmip_setup();
    s.create(&["--kms-provider", "kmip", "--key-alt-name", "default"]);
    s.create(&[
        "--kms-provider",
        "kmip",
        "--master-key",
        r#"{"delegated": true}"#,
        "--key-alt-name",
        "delegated",
    ]);

    // Default mode: a SecretData registered on the server, its id stored;
    // the key wrapped as a local master key wraps (IV, 96 bytes, tag).
    let default = s.key("default");
    let default_id = kmip_key_id(&default);
    assert!(
        default
            .get_document("masterKey")
            .unwrap()
            .get("delegated")
            .is_none(),
        "{default}"
    );
    assert_eq!(key_material_len(&default), 160);
    // Delegated: an AES key created on the server, which encrypted the data
    // key (its IV, then AES-256-CBC of 96 bytes).
    let delegated = s.key("delegated");
    let delegated_id = kmip_key_id(&delegated);
    assert_eq!(
        delegated
            .get_document("masterKey")
            .unwrap()
            .get_bool("delegated"),
        Ok(true)
    );
    assert_eq!(key_material_len(&delegated), 16 + 112);
    assert_ne!(default_id, delegated_id);

    // Values round-trip with both, in processes that unwrap afresh.
    for name in ["default", "delegated"] {
        let input = format!("{{\"v\":\"{name} mode\"}}\n");
        let encrypted = s.ok(
            &[
                "encrypt",
                "--key-alt-name",
                name,
                "--algorithm",
                "deterministic",
            ],
            &input,
        );
        assert!(encrypted.contains(r#""subType":"06""#), "{encrypted}");
        assert_eq!(s.ok(&["decrypt"], &encrypted), input);
    }

    // An existing keyId is used as given.
    let again = format!(r#"{{"keyId": "{default_id}"}}"#);
    s.create(&[
        "--kms-provider",
        "kmip",
        "--master-key",
        again.as_str(),
        "--key-alt-name",
        "same secret",
    ]);
    assert_eq!(kmip_key_id(&s.key("same secret")), default_id);
}

#[test]
#[ignore = "needs CSFLE_KMIP_ENDPOINT"]
fn keys_rewrap_local_to_kmip_and_back() {
    let s = pykmip_setup();
    let id = s.create(&["--kms-provider", "local", "--key-alt-name", "travels"]);
    let input = "{\"v\":\"travels\"}\n";
    let encrypted = s.ok(
        &[
            "encrypt",
            "--key-alt-name",
            "travels",
            "--algorithm",
            "random",
        ],
        input,
    );
    let filter = format!(r#"{{"_id":{{"$binary":{{"base64":"{id}","subType":"04"}}}}}}"#);
    for (provider, master_key) in [
        ("kmip", None),
        ("kmip", Some(r#"{"delegated": true}"#)),
        ("local", None),
    ] {
        let mut args = vec![
            "keys",
            "rewrap",
            "--filter",
            filter.as_str(),
            "--kms-provider",
            provider,
        ];
        if let Some(m) = master_key {
            args.extend(["--master-key", m]);
        }
        assert_eq!(
            s.ok(&args, ""),
            "{\"matched\":1,\"modified\":1}\n",
            "{provider} {master_key:?}"
        );
        let key = s.key("travels");
        let stored = key.get_document("masterKey").unwrap();
        assert_eq!(stored.get_str("provider"), Ok(provider), "{stored}");
        match master_key {
            Some(_) => {
                assert_eq!(stored.get_bool("delegated"), Ok(true), "{stored}");
                assert_eq!(key_material_len(&key), 128);
            }
            None => assert_eq!(key_material_len(&key), 160, "{stored}"),
        }
        if provider == "kmip" {
            kmip_key_id(&key);
        }
        // The data key is unchanged: the value encrypted under the local
        // master key still decrypts through the new wrapping.
        assert_eq!(s.ok(&["decrypt"], &encrypted), input, "{provider}");
    }
}

/// A 127.0.0.1 listener that counts the connections it accepts and
/// closes each at once (it speaks neither TLS nor KMIP).
fn counting_listener() -> (String, Arc<AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("127.0.0.1:{}", listener.local_addr().unwrap().port());
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            count.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    (endpoint, accepted)
}

#[test]
fn a_key_document_naming_another_kmip_endpoint_is_refused_before_connecting() {
    let (configured, configured_accepted) = counting_listener();
    let (elsewhere, elsewhere_accepted) = counting_listener();
    let s = Setup::new(json!({"kmip": {"endpoint": &configured}}), None);
    // A key document (as a hostile key vault would hold) whose masterKey
    // sends the TLS handshake elsewhere.
    let master_key = csfle::kms::MasterKey::from_document(
        &doc! {"provider": "kmip", "keyId": "1", "endpoint": &elsewhere},
    )
    .unwrap();
    let key =
        csfle::keyvault::KeyDocument::new(master_key, vec![0x5a; 160], vec!["k".into()]).unwrap();
    std::fs::write(
        s.path("vault.json"),
        format!("{}\n", csfle::ejson::to_canonical_line(&key.to_document())),
    )
    .unwrap();

    for args in [
        &["keys", "rewrap", "--kms-provider", "kmip"][..],
        &["encrypt", "--key-alt-name", "k", "--algorithm", "random"][..],
    ] {
        let out = s.run(args, "{\"v\":1}\n");
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("not allowed"), "{args:?}: {err}");
        assert!(err.contains(&elsewhere), "{args:?}: {err}");
        assert!(err.contains("--kms-allow-host"), "{args:?}: {err}");
    }
    assert_eq!(configured_accepted.load(Ordering::SeqCst), 0);
    assert_eq!(elsewhere_accepted.load(Ordering::SeqCst), 0);

    // Allowed without a kind, the host is allowed for aws, azure and gcp
    // only: still refused for KMIP.
    let out = s.run(
        &[
            "keys",
            "rewrap",
            "--kms-provider",
            "kmip",
            "--kms-allow-host",
            elsewhere.as_str(),
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not allowed"), "{err}");
    assert_eq!(elsewhere_accepted.load(Ordering::SeqCst), 0);

    // Allowed for KMIP, the other endpoint is called (and, speaking no
    // TLS, fails the handshake).
    let for_kmip = format!("kmip:{elsewhere}");
    let out = s.run(
        &[
            "keys",
            "rewrap",
            "--kms-provider",
            "kmip",
            "--kms-allow-host",
            for_kmip.as_str(),
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("not allowed"), "{err}");
    assert!(err.contains("KMIP Get failed"), "{err}");
    assert!(elsewhere_accepted.load(Ordering::SeqCst) >= 1);
    assert_eq!(configured_accepted.load(Ordering::SeqCst), 0);
}

#[test]
fn delegated_mode_needs_kms_allow_kmip_delegated() {
    let (endpoint, accepted) = counting_listener();
    let s = Setup::new(json!({"kmip": {"endpoint": &endpoint}}), None);
    let out = s.run(
        &[
            "keys",
            "create",
            "--kms-provider",
            "kmip",
            "--master-key",
            r#"{"delegated": true}"#,
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("delegated mode is refused"), "{err}");
    assert!(err.contains("--kms-allow-kmip-delegated"), "{err}");
    assert_eq!(accepted.load(Ordering::SeqCst), 0);
    assert!(!s.path("vault.json").exists());
}
