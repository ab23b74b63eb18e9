//! One line of the CLI's Extended JSON input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(line) = std::str::from_utf8(data) {
        csfle::__private::ejson_line(line);
    }
});
