//! Queryable Encryption: insert payloads read and decrypted, placeholders
//! turned into payloads (inserts decrypt back to their value), range
//! expressions encrypted, and range edges and minimal covers on arbitrary
//! numbers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fuzz_target!(|data: &[u8]| {
    static KEY: OnceLock<csfle::qe::aead::QeDataKey> = OnceLock::new();
    let key = KEY.get_or_init(csfle::__private::qe_fixed_key);
    csfle::__private::qe_payload(key, data);
});
