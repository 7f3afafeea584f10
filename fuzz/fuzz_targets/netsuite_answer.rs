//! What NetSuite answers: every parser of the NetSuite connector.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let status = 200 + u16::from(data.first().copied().unwrap_or(0)) % 400;
    concertmaster_erp::fuzzing::netsuite_answer(status, data);
});
