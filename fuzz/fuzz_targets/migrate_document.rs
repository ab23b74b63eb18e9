//! A migration plan applied to arbitrary BSON: never panics; what it
//! changes ends up encrypted, keeps its plaintext and is idempotent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fuzz_target!(|data: &[u8]| {
    static STATE: OnceLock<(
        csfle::ExplicitEncrypter<csfle::keyvault::KeyRing>,
        csfle::migrate::Plan,
        csfle::migrate::Plan,
    )> = OnceLock::new();
    let (enc, plan, decrypting) = STATE.get_or_init(|| {
        (
            csfle::fuzzing::fixed_encrypter(),
            csfle::fuzzing::migration_plan(false),
            csfle::fuzzing::migration_plan(true),
        )
    });
    csfle::fuzzing::migrate_document(enc, plan, data);
    csfle::fuzzing::migrate_document(enc, decrypting, data);
});
