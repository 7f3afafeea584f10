//! What a SAP server answers (content type up to the first NUL byte, then
//! the body): every parser of the SAP connector.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (content_type, body) = match data.iter().position(|&b| b == 0) {
        Some(split) => (std::str::from_utf8(&data[..split]).unwrap_or(""), &data[split + 1..]),
        None => ("multipart/mixed; boundary=batch", data),
    };
    let status = 200 + u16::from(body.first().copied().unwrap_or(0)) % 400;
    concertmaster_erp::fuzzing::sap_answer(content_type, status, body);
});
