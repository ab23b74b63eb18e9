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
            csfle::__private::fixed_encrypter(),
            csfle::__private::migration_plan(false),
            csfle::__private::migration_plan(true),
        )
    });
    csfle::__private::migrate_document(enc, plan, data);
    csfle::__private::migrate_document(enc, decrypting, data);
});
