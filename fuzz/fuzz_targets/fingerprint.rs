//! Arbitrary bytes as Terraform output: see `catalog_chatops::fuzzing::fingerprint` for the
//! property.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| catalog_chatops::fuzzing::fingerprint(data));
