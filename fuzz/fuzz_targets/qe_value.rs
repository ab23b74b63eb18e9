//! Queryable Encryption: stored-value parsers, layered decryption and the
//! three QE ciphers on arbitrary bytes, with their round trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fuzz_target!(|data: &[u8]| {
    static KEY: OnceLock<csfle::qe::aead::QeDataKey> = OnceLock::new();
    let key = KEY.get_or_init(csfle::__private::qe_fixed_key);
    csfle::__private::qe_value(key, data);
});
