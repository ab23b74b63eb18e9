//! The schema parser on generated and arbitrary schemas: a schema is either
//! refused, or every `encrypt` in it is honoured.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fuzz_target!(|data: &[u8]| {
    static ENC: OnceLock<csfle::ExplicitEncrypter<csfle::keyvault::KeyRing>> = OnceLock::new();
    let enc = ENC.get_or_init(csfle::__private::fixed_encrypter);
    let _accepted = csfle::__private::schema_parse(enc, data);
});
