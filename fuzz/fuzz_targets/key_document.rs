//! Key documents: key-vault file text and BSON key documents.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        csfle::__private::key_documents(text);
    }
    csfle::__private::key_document_bson(data);
});
