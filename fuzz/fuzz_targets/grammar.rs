//! Arbitrary bytes as a chat message: see `catalog_chatops_fuzz::grammar` for the property.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| catalog_chatops_fuzz::grammar(data));
