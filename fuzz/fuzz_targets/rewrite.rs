//! Query analysis on arbitrary BSON: never panics, and never lets an
//! encrypted field through in plaintext. Input starting with `G` drives
//! the generator of commands on FLE1 collections, `Q` the one of commands
//! on (or naming) Queryable Encryption collections, whose oracle also
//! checks every placeholder (`csfle::__private::rewrite_command`); the
//! `qe-*` seeds of `fuzz/corpus/rewrite/` start the latter.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fuzz_target!(|data: &[u8]| {
    static STATE: OnceLock<(
        csfle::ExplicitEncrypter<csfle::keyvault::KeyRing>,
        csfle::schema::EncryptionSchema,
    )> = OnceLock::new();
    let (enc, schema) = STATE.get_or_init(|| {
        (
            csfle::__private::fixed_encrypter(),
            csfle::__private::rewrite_schema(),
        )
    });
    csfle::__private::rewrite_command(enc, schema, data);
});
