//! The multi-lane (eight and four) SHA-512 compressions and multi-message HMAC against
//! `sha2::block_api::compress512` and `hmac`, on arbitrary states, blocks,
//! keys and messages.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    csfle::__private::sha512_lanes(data);
});
