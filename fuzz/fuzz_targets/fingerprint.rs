//! Arbitrary bytes as Terraform output: see `catalog_chatops_fuzz::fingerprint` for the
//! property.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| catalog_chatops_fuzz::fingerprint(data));
