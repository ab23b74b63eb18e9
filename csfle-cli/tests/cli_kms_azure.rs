//! The `csfle` command line with Azure Key Vault, against the loopback
//! emulator (`tests/common/kms_emulators.rs`): `--kms-providers` in the
//! drivers' shape, `--kms-tls-options`, `keys create --master-key`, and
//! `keys rewrap` moving a local key to Azure.

// The integration tests' shared helpers live with the library's tests.
#[path = "../../tests/common/mod.rs"]
mod common;
#[path = "../../tests/common/kms_emulators.rs"]
mod kms_emulators;

use bson::{Document, doc};
use kms_emulators::{Azure, Server, Transport, pki, serve};
use std::sync::Arc;

struct Setup {
    azure: Arc<Azure>,
    server: Server,
}

async fn setup(transport: Transport) -> Setup {
    let azure = Azure::new();
    let server = serve(azure.clone(), transport).await;
    Setup { azure, server }
}

impl Setup {
    fn credentials(&self) -> Document {
        doc! {
            "tenantId": &self.azure.tenant_id,
            "clientId": &self.azure.client_id,
            "clientSecret": &self.azure.client_secret,
            "identityPlatformEndpoint": self.server.host(),
        }
    }

    fn master_key(&self) -> Document {
        doc! {"keyVaultEndpoint": self.server.host(), "keyName": "key-name-csfle"}
    }
}

/// The command line with Azure: `--kms-providers` in the drivers' shape,
/// `--kms-tls-options`, `keys create --master-key`, and `keys rewrap`
/// moving a local key to Azure, after which it still decrypts.
#[tokio::test]
async fn command_line() {
    let s = setup(Transport::Https).await;
    let dir = tempfile::tempdir().unwrap();
    let local_key = common::LOCAL_MASTERKEY_B64;
    let kms = dir.path().join("kms.json");
    let mut creds = s.credentials();
    creds.insert("clientSecret", &s.azure.client_secret);
    std::fs::write(
        &kms,
        csfle::ejson::to_canonical_line(&doc! {"local": {"key": local_key}, "azure": creds}),
    )
    .unwrap();
    let tls = dir.path().join("tls.json");
    std::fs::write(
        &tls,
        format!(r#"{{"azure": {{"tlsCAFile": "{}"}}}}"#, pki().ca_file()),
    )
    .unwrap();
    let vault = dir.path().join("keys.json");
    let run = move |args: Vec<String>, stdin: Option<String>| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_csfle"));
        c.args(&args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        tokio::task::spawn_blocking(move || {
            let mut child = c.spawn().unwrap();
            if let Some(input) = stdin {
                use std::io::Write;
                child
                    .stdin
                    .take()
                    .unwrap()
                    .write_all(input.as_bytes())
                    .unwrap();
            }
            child.wait_with_output().unwrap()
        })
    };
    let common_args = |cmd: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
        v.extend([
            "--kms-providers".into(),
            kms.display().to_string(),
            "--kms-tls-options".into(),
            tls.display().to_string(),
            "--key-vault".into(),
            vault.display().to_string(),
            "--kms-allow-host".into(),
            s.server.host(),
        ]);
        v
    };
    let master_key = csfle::ejson::to_canonical_line(&s.master_key());
    let mut create = common_args(&[
        "keys",
        "create",
        "--kms-provider",
        "azure",
        "--key-alt-name",
        "az",
    ]);
    create.extend(["--master-key".into(), master_key.clone()]);
    let out = run(create, None).await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let create_local = common_args(&[
        "keys",
        "create",
        "--kms-provider",
        "local",
        "--key-alt-name",
        "loc",
    ]);
    assert!(run(create_local, None).await.unwrap().status.success());
    // Encrypt with both keys.
    let mut lines = String::new();
    for name in ["az", "loc"] {
        let enc = common_args(&[
            "encrypt",
            "--key-alt-name",
            name,
            "--algorithm",
            "deterministic",
        ]);
        let out = run(enc, Some("{\"v\": \"secret\"}\n".into()))
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        lines.push_str(&String::from_utf8(out.stdout).unwrap());
    }
    // Move the local key under Azure.
    let mut rewrap = common_args(&[
        "keys",
        "rewrap",
        "--kms-provider",
        "azure",
        "--filter",
        r#"{"masterKey.provider": "local"}"#,
    ]);
    rewrap.extend(["--master-key".into(), master_key]);
    let out = run(rewrap, None).await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        r#"{"matched":1,"modified":1}"#
    );
    let stored = std::fs::read_to_string(&vault).unwrap();
    assert_eq!(stored.matches("\"azure\"").count(), 2, "{stored}");
    let first_line = lines.lines().next().unwrap().to_owned() + "\n";
    // Both still decrypt, through Azure.
    let before = s.server.count("/unwrapkey");
    let out = run(common_args(&["decrypt"]), Some(lines)).await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .matches(r#""v":"secret""#)
            .count(),
        2
    );
    assert_eq!(s.server.count("/unwrapkey"), before + 2);
    // Without the TLS options the emulator's certificate is not trusted:
    // exit 1, the line and the reason on stderr.
    let mut no_tls = common_args(&["decrypt"]);
    no_tls.drain(3..5);
    let out = run(no_tls, Some(first_line)).await.unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("line 1:") && err.to_lowercase().contains("certificate"),
        "{err}"
    );
}
