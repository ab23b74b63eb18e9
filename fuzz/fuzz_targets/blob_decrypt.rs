//! FLE1 blob parse + decrypt, and whole-document decryption, on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fuzz_target!(|data: &[u8]| {
    static ENC: OnceLock<csfle::ExplicitEncrypter<csfle::keyvault::KeyRing>> = OnceLock::new();
    let enc = ENC.get_or_init(csfle::__private::fixed_encrypter);
    csfle::__private::blob_parse_and_decrypt(enc, data);
});
