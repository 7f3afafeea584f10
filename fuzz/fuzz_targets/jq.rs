//! A jq expression and an input (split at the first NUL byte): compiled and
//! evaluated as the transform node does.
#![no_main]

use std::time::Duration;

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
        // Well under libFuzzer's hang timeout: an expression past its limit
        // is an answer (`TimedOut`), not a hang.
        let _ = expr.with_time_limit(Duration::from_secs(1)).eval(&input);
    }
});
