//! KMIP replies, as a hostile or broken KMIP server may send them: the TTLV
//! decoder, the reply framer and the four reply parsers (Unique Identifier,
//! SecretData, Encrypt, Decrypt) on arbitrary bytes. Each returns a typed
//! error or a result, never panics; a decoded message re-encodes to the
//! same items and holds no more items than it has headers. Seeds
//! (`fuzz/corpus/kmip_response/`): the golden replies of libmongocrypt's
//! kms-message tests (Apache-2.0), as in `src/kms/kmip/tests/vectors.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    csfle::__private::kmip_response(data);
});
