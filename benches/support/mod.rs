//! Fixtures shared by the benchmarks: one data key, its key document under a
//! local master key, and (with `--features libmongocrypt-bench`) the C
//! libmongocrypt driven through the `mongocrypt` crate on the same key.
#![allow(dead_code)]

use bson::Document;
use csfle::keyvault::{KeyDocument, KeyRing};
use csfle::kms::{KmsProviders, LocalMasterKey, ProviderKind, ProviderName};
use csfle::{ExplicitEncrypter, KeyId};

pub const MASTER_KEY: [u8; 96] = [0x4b; 96];
pub const DATA_KEY: [u8; 96] = [0x5d; 96];
pub const KEY_ID: [u8; 16] = [0x42; 16];

pub fn kms() -> KmsProviders {
    KmsProviders::new().with_local(
        ProviderName::of_kind(ProviderKind::Local),
        LocalMasterKey::new(&MASTER_KEY).unwrap(),
    )
}

pub fn key_document() -> KeyDocument {
    let local = ProviderName::of_kind(ProviderKind::Local);
    let mut k = csfle::create_data_key(&kms(), &local, vec![], Some(&DATA_KEY)).unwrap();
    k.id = KeyId::from_bytes(KEY_ID);
    k
}

pub fn encrypter() -> ExplicitEncrypter<KeyRing> {
    ExplicitEncrypter::new(KeyRing::new([key_document()], kms()).unwrap())
}

/// The specification's bulk-decrypt document: `key0001`…`key1500` holding the
/// deterministic encryption of `"value 0001"`…`"value 1500"`.
pub fn bulk_document() -> Document {
    let enc = encrypter();
    (1..=1500)
        .map(|i| {
            let ct = enc
                .encrypt(
                    &format!("value {i:04}").into(),
                    &csfle::KeyRef::Id(KeyId::from_bytes(KEY_ID)),
                    csfle::Algorithm::Deterministic,
                )
                .unwrap();
            (format!("key{i:04}"), bson::Bson::Binary(ct))
        })
        .collect()
}

/// The CPU's model name, from `/proc/cpuinfo` ("unknown" elsewhere).
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines().find_map(|line| {
                let (key, value) = line.split_once(':')?;
                (key.trim() == "model name").then(|| value.trim().to_string())
            })
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Prints what the figures depend on: the CPU, the SHA-512 kernel that
/// runs (and what `CSFLE_SHA512_KERNEL` asked for: a kernel the CPU lacks
/// falls back to the best it has) and the AES instructions the `aes`
/// crate picks its backend from (AES-NI; VAES, whose backends broadcast
/// the round keys into wide registers on every call).
pub fn print_machine() {
    println!("cpu: {}", cpu_model());
    println!(
        "sha-512 kernel: {} ({}={})",
        csfle_sha512_lanes::selected_kernel(),
        csfle_sha512_lanes::KERNEL_ENV,
        std::env::var(csfle_sha512_lanes::KERNEL_ENV).unwrap_or_else(|_| "unset".into()),
    );
    #[cfg(target_arch = "x86_64")]
    {
        let has = |yes: bool| if yes { "yes" } else { "no" };
        println!(
            "aes: aes-ni {}, vaes {}, avx512f {}",
            has(std::arch::is_x86_feature_detected!("aes")),
            has(std::arch::is_x86_feature_detected!("vaes")),
            has(std::arch::is_x86_feature_detected!("avx512f")),
        );
    }
    #[cfg(feature = "libmongocrypt-bench")]
    println!(
        "libmongocrypt: {} (the library loaded; LD_LIBRARY_PATH={})",
        lmc::Lmc::version(),
        std::env::var("LD_LIBRARY_PATH").unwrap_or_else(|_| "unset".into()),
    );
}

#[cfg(feature = "libmongocrypt-bench")]
pub mod lmc {
    use bson::{RawDocument, RawDocumentBuf, doc};
    use mongocrypt::ctx::{Algorithm, Ctx, State};

    /// libmongocrypt with the same local master key, serving the same key
    /// document from memory (cached by libmongocrypt after the first use).
    pub struct Lmc {
        crypt: mongocrypt::Crypt,
        key_doc: RawDocumentBuf,
    }

    impl Lmc {
        pub fn new() -> Self {
            let kms = doc! {"local": {"key": bson::Binary { subtype: bson::spec::BinarySubtype::Generic, bytes: super::MASTER_KEY.to_vec() }}};
            let crypt = mongocrypt::Crypt::builder()
                .kms_providers(&kms)
                .unwrap()
                .build()
                .unwrap();
            let key_doc =
                RawDocumentBuf::from_document(&super::key_document().to_document()).unwrap();
            Lmc { crypt, key_doc }
        }

        pub fn version() -> &'static str {
            mongocrypt::version()
        }

        fn run(&self, mut ctx: Ctx) -> RawDocumentBuf {
            let mut out = None;
            loop {
                match ctx.state().unwrap() {
                    State::NeedMongoKeys => {
                        ctx.mongo_feed(&self.key_doc).unwrap();
                        ctx.mongo_done().unwrap();
                    }
                    State::Ready => out = Some(ctx.finalize().unwrap().to_raw_document_buf()),
                    State::Done => break,
                    other => panic!("unexpected libmongocrypt state {other:?}"),
                }
            }
            out.expect("finalized")
        }

        pub fn encrypt(&self, det: bool, value: bson::RawBson) -> RawDocumentBuf {
            let alg = if det {
                Algorithm::Deterministic
            } else {
                Algorithm::Random
            };
            let ctx = self
                .crypt
                .ctx_builder()
                .key_id(&super::KEY_ID)
                .unwrap()
                .algorithm(alg)
                .unwrap()
                .build_explicit_encrypt(value)
                .unwrap();
            self.run(ctx)
        }

        pub fn decrypt_value(&self, blob: &[u8]) -> RawDocumentBuf {
            let ctx = self
                .crypt
                .ctx_builder()
                .build_explicit_decrypt(blob)
                .unwrap();
            self.run(ctx)
        }

        pub fn decrypt_document(&self, doc: &RawDocument) -> RawDocumentBuf {
            let ctx = self.crypt.ctx_builder().build_decrypt(doc).unwrap();
            self.run(ctx)
        }
    }
}
