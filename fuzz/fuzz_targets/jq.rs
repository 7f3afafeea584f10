//! A jq expression and an input (split at the first NUL byte): compiled and
//! evaluated as the transform node does.
#![no_main]

use concertmaster_nodes::Expr;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(split) = data.iter().position(|&b| b == 0) else {
        return;
    };
    let (Ok(code), Ok(input)) = (
        std::str::from_utf8(&data[..split]),
        serde_json::from_slice::<serde_json::Value>(&data[split + 1..]),
    ) else {
        return;
    };
    if let Ok(expr) = Expr::compile(code) {
        let _ = expr.eval(&input);
    }
});
