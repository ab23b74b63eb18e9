//! A hostile key vault cannot send the application's credentials anywhere.
//!
//! Whoever controls the database controls the key documents. Each case
//! here writes a key document whose `masterKey` names a host the
//! application did not trust (a scheme, an unlisted host, an allowed host
//! on another port, userinfo, a path, look-alike names, other spellings of
//! an allowed IP, an `.invalid` name), asks csfle to decrypt with that key,
//! and checks two things: the error says "not allowed", and a listening
//! socket on the named port received **zero** connections. Redirects from
//! an endpoint the application did trust are refused, and their target
//! receives nothing either.
//!
//! AWS key documents may name only KMS's own hosts, not names under AWS
//! domains where anyone runs a service. With a master-key allow-list, a key
//! document wrapped under a genuine KMS key the application did not list (a
//! hostile vault's substitute) is refused before any KMS request.

mod common;
#[path = "common/kms_emulators.rs"]
mod kms_emulators;

use bson::spec::BinarySubtype;
use bson::{Binary, Bson, Document, doc};
use csfle::keyvault::{FileKeyVault, MemoryKeyVault};
use csfle::kms::{KmsProviders, ProviderName, ProviderOptions, RetryPolicy};
use csfle::{Algorithm, ClientEncryption, DataKeyOptions, KeyId, KeyRef};
use kms_emulators::{Azure, Failpoint, Transport, one_attempt_options, pki, serve};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// A socket that accepts connections and records every byte sent to it.
struct Recorder {
    port: u16,
    connections: Arc<AtomicUsize>,
    bytes: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Recorder {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let bytes = Arc::new(AtomicUsize::new(0));
        let (c, b) = (connections.clone(), bytes.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                c.fetch_add(1, Ordering::SeqCst);
                let b = b.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = stream.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        b.fetch_add(n, Ordering::SeqCst);
                    }
                });
            }
        });
        Recorder {
            port,
            connections,
            bytes,
            task,
        }
    }

    /// Waits a moment for anything in flight, then checks nothing arrived.
    async fn assert_untouched(&self, case: &str) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(
            (
                self.connections.load(Ordering::SeqCst),
                self.bytes.load(Ordering::SeqCst)
            ),
            (0, 0),
            "{case}: the listener was contacted"
        );
    }
}

const TOKEN: &str = "application-bearer-token-must-stay-home";
const AWS_SECRET: &str = "aws-secret-access-key-must-stay-home";

fn providers(options: &ProviderOptions) -> KmsProviders {
    #[allow(unused_mut)]
    let mut kms = doc! {
        "azure": {"accessToken": TOKEN},
        "gcp": {"accessToken": TOKEN},
    };
    #[cfg(feature = "aws")]
    kms.insert(
        "aws",
        doc! {"accessKeyId": "AKIAEXAMPLE", "secretAccessKey": AWS_SECRET},
    );
    KmsProviders::from_document_with(&kms, options).unwrap()
}

/// A key document whose master key names `endpoint` for `provider`, as a
/// hostile database would store it (written raw, not through csfle).
fn key_document(id: KeyId, provider: &str, endpoint: &str) -> Document {
    let master_key = match provider {
        "azure" => doc! {"provider": "azure", "keyVaultEndpoint": endpoint, "keyName": "k"},
        "gcp" => doc! {
            "provider": "gcp", "projectId": "p", "location": "global", "keyRing": "r",
            "keyName": "k", "endpoint": endpoint,
        },
        "aws" => doc! {
            "provider": "aws", "region": "us-east-1",
            "key": "arn:aws:kms:us-east-1:123456789012:key/x", "endpoint": endpoint,
        },
        other => panic!("{other}"),
    };
    doc! {
        "_id": Bson::Binary(id.to_binary()),
        "keyMaterial": Bson::Binary(Binary { subtype: BinarySubtype::Generic, bytes: vec![7; 160] }),
        "creationDate": bson::DateTime::now(),
        "updateDate": bson::DateTime::now(),
        "status": 0,
        "masterKey": master_key,
    }
}

/// A deterministic FLE1 blob naming key `id` (its ciphertext is never
/// reached: the key is needed first).
fn blob(id: KeyId) -> Binary {
    let mut bytes = vec![1u8];
    bytes.extend_from_slice(&id.bytes());
    bytes.push(2);
    bytes.extend_from_slice(&[0u8; 64]);
    Binary {
        subtype: BinarySubtype::Encrypted,
        bytes,
    }
}

fn kinds() -> Vec<&'static str> {
    let mut k = vec!["azure", "gcp"];
    if cfg!(feature = "aws") {
        k.push("aws");
    }
    k
}

#[tokio::test]
async fn hostile_key_documents_reach_no_one() {
    let target = Recorder::start().await;
    let other = Recorder::start().await;
    let p = target.port;
    // The application allows 127.0.0.1 and localhost, but on other ports,
    // so every spelling below is one step away from an allowed host.
    let options = ProviderOptions::default()
        .allow_host(&format!("127.0.0.1:{}", other.port))
        .unwrap()
        .allow_host(&format!("localhost:{}", other.port))
        .unwrap()
        .allow_host(&format!("kms.allowed.example:{p}"))
        .unwrap();
    let kms = providers(&options);
    let cases = [
        ("http scheme", format!("http://127.0.0.1:{p}")),
        ("https scheme", format!("https://127.0.0.1:{p}")),
        (
            "https scheme, allowed host",
            format!("https://127.0.0.1:{}", other.port),
        ),
        ("unlisted host", format!("127.0.0.1:{p}")),
        ("allowed host, another port", format!("localhost:{p}")),
        ("allowed name, default port", "localhost".to_owned()),
        ("userinfo", format!("user:pass@127.0.0.1:{p}")),
        (
            "userinfo before an allowed host",
            format!("x@127.0.0.1:{}", other.port),
        ),
        ("path injection", format!("127.0.0.1:{p}/keys/x")),
        ("query injection", format!("127.0.0.1:{p}?x=1")),
        ("fragment", format!("127.0.0.1:{p}#x")),
        ("backslash", format!("127.0.0.1:{p}\\x")),
        ("space", format!("127.0.0.1 :{p}")),
        ("look-alike azure", "x.vault.azure.net.evil".to_owned()),
        (
            "look-alike azure with port",
            format!("x.vault.azure.net.localhost:{p}"),
        ),
        ("look-alike gcp", "cloudkms.googleapis.com.evil".to_owned()),
        (
            "look-alike aws",
            "kms.us-east-1.amazonaws.com.evil".to_owned(),
        ),
        (
            "public host, other port",
            "x.vault.azure.net:8443".to_owned(),
        ),
        (
            "allowed name as prefix",
            format!("kms.allowed.example.evil:{p}"),
        ),
        (
            "allowed name as suffix",
            format!("evil.kms.allowed.example:{p}"),
        ),
        ("decimal IP", format!("2130706433:{p}")),
        ("short IP", format!("127.1:{p}")),
        ("hex IP", format!("0x7f000001:{p}")),
        ("octal IP", format!("0177.0.0.1:{p}")),
        ("IPv6 loopback", format!("[::1]:{p}")),
        ("IPv4-mapped IPv6", format!("[::ffff:127.0.0.1]:{p}")),
        ("unresolvable name", "doesnotexist.invalid".to_owned()),
        (
            "unresolvable name with port",
            format!("doesnotexist.invalid:{p}"),
        ),
        ("control character", format!("127.0.0.1\u{7}:{p}")),
        ("percent-encoded", format!("127.0.0.1%3A{p}")),
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for kind in kinds() {
        for (i, (case, endpoint)) in cases.iter().enumerate() {
            let id = KeyId::from_bytes([i as u8 + 1; 16]);
            let path = dir.path().join(format!("{kind}-{i}.json"));
            let line = csfle::ejson::to_canonical_line(&key_document(id, kind, endpoint));
            std::fs::write(&path, format!("{line}\n")).unwrap();
            let enc = ClientEncryption::new(FileKeyVault::new(&path), kms.clone());
            let e = enc.decrypt(&blob(id)).await.unwrap_err().to_string();
            assert!(e.contains("not allowed"), "{kind} {case}: {e}");
            assert!(!e.contains(TOKEN) && !e.contains(AWS_SECRET), "{e}");
            assert!(
                e.chars().all(|c| c.is_ascii_graphic() || c == ' '),
                "{kind} {case}: unsanitised error {e:?}"
            );
            checked += 1;
        }
    }
    target.assert_untouched("hostile key documents").await;
    other.assert_untouched("hostile key documents").await;
    assert_eq!(checked, cases.len() * kinds().len());
}

/// A key document naming an allowed host works only on the allowed port,
/// and the refusal names the option that allows it.
#[tokio::test]
async fn refusal_names_the_host_and_the_option() {
    let kms = providers(&ProviderOptions::default());
    let id = KeyId::from_bytes([9; 16]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vault.json");
    let line =
        csfle::ejson::to_canonical_line(&key_document(id, "azure", "Vault.Example.COM.:4443"));
    std::fs::write(&path, format!("{line}\n")).unwrap();
    let enc = ClientEncryption::new(FileKeyVault::new(&path), kms);
    let e = enc.decrypt(&blob(id)).await.unwrap_err().to_string();
    assert!(
        e.contains("'vault.example.com:4443'")
            && e.contains("--kms-allow-host")
            && e.contains("CSFLE_KMS_ALLOWED_HOSTS")
            && e.contains("allow_host"),
        "{e}"
    );
}

/// Redirects are never followed, from a key operation or a token request
/// to an endpoint the application trusted: the redirect's target receives
/// nothing. Key names are percent-encoded into one path segment, and a key
/// without a version adds no empty segment.
#[tokio::test]
async fn redirects_are_refused_and_paths_are_encoded() {
    let target = Recorder::start().await;
    let azure = Azure::new();
    let server = serve(azure.clone(), Transport::Https).await;
    let options = ProviderOptions::default()
        .with_tls(doc! {"azure": {"tlsCAFile": pki().ca_file()}})
        .with_retry(
            RetryPolicy::default()
                .with_max_attempts(2)
                .with_initial_backoff(Duration::from_millis(10))
                .with_request_timeout(Duration::from_secs(2)),
        );
    let credentials = doc! {
        "tenantId": &azure.tenant_id,
        "clientId": &azure.client_id,
        "clientSecret": &azure.client_secret,
        "identityPlatformEndpoint": server.host(),
    };
    let enc = ClientEncryption::new(
        MemoryKeyVault::new(),
        KmsProviders::from_document_with(&doc! {"azure": credentials}, &options).unwrap(),
    );
    let create = |key_name: &str| {
        let enc = &enc;
        let master_key =
            doc! {"keyVaultEndpoint": format!("https://{}/", server.host()), "keyName": key_name};
        async move {
            enc.create_data_key(
                &ProviderName::parse("azure").unwrap(),
                DataKeyOptions::default().with_master_key(master_key),
            )
            .await
        }
    };
    let location = format!("http://127.0.0.1:{}/steal", target.port);
    for path in ["/oauth2/", "/wrapkey"] {
        server.fail(path, Failpoint::Redirect(location.clone()), 1);
        let e = create("key-name-csfle").await.unwrap_err().to_string();
        assert!(
            e.contains("HTTP 307") && e.contains("redirect"),
            "{path}: {e}"
        );
        assert!(!e.contains(&azure.client_secret), "{e}");
    }
    target.assert_untouched("redirects").await;
    // The same key works without the failpoint; the stored endpoint is the
    // host[:port] libmongocrypt keeps, and no empty version segment is sent.
    let id = create("key-name-csfle").await.unwrap();
    let stored = enc.get_key(id).await.unwrap().unwrap();
    assert_eq!(
        stored.master_key.to_document().get_str("keyVaultEndpoint"),
        Ok(server.host().as_str())
    );
    // One wrapkey was redirected (the token request of the first attempt
    // was, so it never got that far), one succeeded.
    assert_eq!(server.count("/keys/key-name-csfle/wrapkey"), 2);
    assert_eq!(server.count("//"), 0);
    // A hostile key name stays one segment.
    let _ = create("a/../b?x#y").await;
    assert_eq!(server.count("/keys/a%2F..%2Fb%3Fx%23y/wrapkey"), 1);
}

/// Endpoints the application passes: `https://host[:port]/` is accepted and
/// stored as `host[:port]`; other schemes, userinfo, paths, queries and
/// fragments are refused before anything is sent.
#[tokio::test]
async fn application_endpoints() {
    let target = Recorder::start().await;
    let p = target.port;
    let enc = ClientEncryption::new(
        MemoryKeyVault::new(),
        providers(&ProviderOptions::default()),
    );
    for bad in [
        format!("http://127.0.0.1:{p}"),
        format!("ftp://127.0.0.1:{p}"),
        format!("https://u@127.0.0.1:{p}"),
        format!("https://127.0.0.1:{p}/path"),
        format!("https://127.0.0.1:{p}?q"),
        format!("127.0.0.1:{p}#f"),
    ] {
        for (kind, field) in [("azure", "keyVaultEndpoint"), ("gcp", "endpoint")] {
            let mut mk = match kind {
                "azure" => doc! {"keyName": "k"},
                _ => doc! {"projectId": "p", "location": "l", "keyRing": "r", "keyName": "k"},
            };
            mk.insert(field, bad.clone());
            let e = enc
                .create_data_key(
                    &ProviderName::parse(kind).unwrap(),
                    DataKeyOptions::default().with_master_key(mk),
                )
                .await
                .unwrap_err()
                .to_string();
            assert!(e.contains("not allowed"), "{kind} {bad}: {e}");
        }
    }
    #[cfg(feature = "aws")]
    for region in ["us-east-1.evil", "US-EAST-1", "", "a/b", &"x".repeat(33)] {
        let e = enc
            .create_data_key(
                &ProviderName::parse("aws").unwrap(),
                DataKeyOptions::default().with_master_key(doc! {"region": region, "key": "k"}),
            )
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("'region' must be"), "{region}: {e}");
    }
    target.assert_untouched("application endpoints").await;
}

/// Writes `docs` as a file key vault at `path`, as a hostile database
/// would hold them.
fn write_vault(path: &std::path::Path, docs: &[Document]) {
    let lines: String = docs
        .iter()
        .map(|d| format!("{}\n", csfle::ejson::to_canonical_line(d)))
        .collect();
    std::fs::write(path, lines).unwrap();
}

/// AWS key documents naming hosts under AWS domains where anyone can run a
/// service (API Gateway, S3 buckets, ELB, EC2, PrivateLink endpoint
/// services), or a region that makes the default host one, are refused
/// before any lookup or connection; KMS's own hosts are on the public list
/// (checked on the list itself, so nothing leaves the machine).
#[cfg(feature = "aws")]
#[tokio::test]
async fn aws_names_anyone_can_own_are_refused() {
    let kms = providers(&ProviderOptions::default());
    let hostile = [
        "abc123.execute-api.us-east-1.amazonaws.com",
        "abc123.execute-api.cn-north-1.amazonaws.com.cn",
        "kms.s3.amazonaws.com",
        "kms-fips.s3.amazonaws.com",
        "kms.s3-website-us-east-1.amazonaws.com",
        "bucket.s3.cn-north-1.amazonaws.com.cn",
        "my-lb-1234.us-east-1.elb.amazonaws.com",
        "my-lb-1234.cn-north-1.elb.amazonaws.com.cn",
        "ec2-1-2-3-4.compute-1.amazonaws.com",
        "vpce-0123-ab12cd34.vpce-svc-0123456789abcdef0.us-east-1.vpce.amazonaws.com",
        "vpce-0123.execute-api.us-east-1.vpce.amazonaws.com",
        "evil.kms.us-east-1.vpce.amazonaws.com",
        "x.kms.us-east-1.api.aws",
        "kms.us-east-1.amazonaws.com.cn",
        "kms.us-east-1.amazonaws.com:8443",
    ];
    let dir = tempfile::tempdir().unwrap();
    for (i, endpoint) in hostile.iter().enumerate() {
        let id = KeyId::from_bytes([i as u8 + 1; 16]);
        let path = dir.path().join(format!("aws-{i}.json"));
        write_vault(&path, &[key_document(id, "aws", endpoint)]);
        let enc = ClientEncryption::new(FileKeyVault::new(&path), kms.clone());
        let e = enc.decrypt(&blob(id)).await.unwrap_err().to_string();
        assert!(e.contains("not allowed"), "{endpoint}: {e}");
        assert!(!e.contains(AWS_SECRET), "{e}");
    }
    // No endpoint: the region makes the host, `kms.<region>.amazonaws.com`;
    // `s3` would make it the S3 bucket named `kms`.
    for region in ["s3", "compute-1", "s3-us-west-2"] {
        let id = KeyId::from_bytes([200; 16]);
        let mut doc = key_document(id, "aws", "unused");
        doc.insert(
            "masterKey",
            doc! {"provider": "aws", "region": region, "key": "arn:aws:kms:us-east-1:123456789012:key/x"},
        );
        let path = dir.path().join(format!("aws-region-{region}.json"));
        write_vault(&path, &[doc]);
        let enc = ClientEncryption::new(FileKeyVault::new(&path), kms.clone());
        let e = enc.decrypt(&blob(id)).await.unwrap_err().to_string();
        assert!(
            e.contains("not allowed") && e.contains(&format!("kms.{region}.amazonaws.com")),
            "{region}: {e}"
        );
    }
    // The same hosts are on the public list: an empty allow-list permits
    // them, as it permits only the providers' public hosts.
    use csfle::kms::{AllowedHosts, Endpoint, EndpointOrigin, ProviderKind};
    for legitimate in [
        "kms.us-east-1.amazonaws.com",
        "kms-fips.us-gov-west-1.amazonaws.com",
        "kms.eu-west-1.api.aws",
        "kms-fips.us-east-1.api.aws",
        "kms.cn-north-1.amazonaws.com.cn",
        "vpce-0fe5b17a0707d6abc-29p5708s.kms.us-east-1.vpce.amazonaws.com",
        "vpce-0fe5b17a0707d6abc-29p5708s-us-east-1a.kms.us-east-1.vpce.amazonaws.com",
    ] {
        let e = Endpoint::parse(legitimate, EndpointOrigin::KeyDocument).unwrap();
        assert!(
            AllowedHosts::default().permits(ProviderKind::Aws, &e),
            "{legitimate}"
        );
    }
}

/// A hostile vault that cannot redirect credentials can still name a
/// genuine KMS key it controls: here a second key in the same (allowed)
/// Azure vault, standing for a vault or AWS key whose policy admits the
/// application. With the master key the application uses listed, a key
/// document wrapped under any other is refused before a single request
/// (no token, no `unwrapkey`), while the listed key works.
#[tokio::test]
async fn master_key_allow_list_refuses_substituted_keys() {
    let azure = Azure::new();
    azure
        .keys
        .lock()
        .unwrap()
        .extend(["victim".to_owned(), "attacker".to_owned()]);
    let server = serve(azure.clone(), Transport::Https).await;
    let credentials = doc! {
        "tenantId": &azure.tenant_id,
        "clientId": &azure.client_id,
        "clientSecret": &azure.client_secret,
        "identityPlatformEndpoint": server.host(),
    };
    let options = one_attempt_options("azure", &server);
    let azure_name = ProviderName::parse("azure").unwrap();
    // Both keys made through the emulator (the attacker's wrapped by the
    // attacker), then stored side by side in the vault.
    let maker = ClientEncryption::new(
        MemoryKeyVault::new(),
        KmsProviders::from_document_with(&doc! {"azure": credentials.clone()}, &options).unwrap(),
    );
    let mut docs = Vec::new();
    let mut ids = Vec::new();
    for key_name in ["victim", "attacker"] {
        let id = maker
            .create_data_key(
                &azure_name,
                DataKeyOptions::default()
                    .with_master_key(doc! {"keyVaultEndpoint": server.host(), "keyName": key_name}),
            )
            .await
            .unwrap();
        docs.push(maker.get_key(id).await.unwrap().unwrap().to_document());
        ids.push(id);
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vault.json");
    write_vault(&path, &docs);
    let listed = options
        .clone()
        .allow_master_key(&doc! {
            "provider": "azure",
            "keyVaultEndpoint": format!("https://{}/", server.host()),
            "keyName": "victim",
        })
        .unwrap();
    let enc = ClientEncryption::new(
        FileKeyVault::new(&path),
        KmsProviders::from_document_with(&doc! {"azure": credentials}, &listed).unwrap(),
    );
    let before = (server.count("/unwrapkey"), server.count("/oauth2/"));
    let e = enc
        .encrypt(
            &Bson::String("457-55-5462".into()),
            &KeyRef::Id(ids[1]),
            Algorithm::Deterministic,
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("not on the master-key allow-list")
            && e.contains("\"keyName\":\"attacker\"")
            && e.contains("allow_master_key"),
        "{e}"
    );
    assert!(!e.contains(&azure.client_secret), "{e}");
    assert_eq!(
        (server.count("/unwrapkey"), server.count("/oauth2/")),
        before,
        "the refused key reached the KMS"
    );
    let ct = enc
        .encrypt(
            &Bson::String("457-55-5462".into()),
            &KeyRef::Id(ids[0]),
            Algorithm::Deterministic,
        )
        .await
        .unwrap();
    assert_eq!(
        enc.decrypt(&ct).await.unwrap(),
        Bson::String("457-55-5462".into())
    );
    assert!(server.count("/keys/victim/unwrapkey") >= 1);
    assert_eq!(server.count("/keys/attacker/unwrapkey"), 0);
}

/// With a master-key list, local master keys are refused too unless listed
/// by provider name, on the synchronous path as well.
#[test]
fn master_key_allow_list_covers_local_keys() {
    use csfle::kms::{LocalMasterKey, MasterKey};
    let local = ProviderName::parse("local").unwrap();
    let kms = KmsProviders::new().with_local(local.clone(), LocalMasterKey::new(&[3; 96]).unwrap());
    let (master_key, wrapped) = kms.wrap_key_local(&local, &[4; 96]).unwrap();
    assert_eq!(
        master_key,
        MasterKey::Local {
            provider: local.clone()
        }
    );
    let unlisted = kms
        .clone()
        .allow_master_key(&doc! {"provider": "local:other"})
        .unwrap();
    let e = unlisted
        .unwrap_key_local(&master_key, &wrapped)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not on the master-key allow-list"), "{e}");
    let listed = unlisted
        .allow_master_key(&doc! {"provider": "local"})
        .unwrap();
    assert_eq!(
        &listed.unwrap_key_local(&master_key, &wrapped).unwrap()[..],
        &[4; 96][..]
    );
}
