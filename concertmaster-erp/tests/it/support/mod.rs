//! What the connector tests share: the SAP test server's address and the
//! NetSuite stand-in.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use concertmaster_erp::{
    NetSuiteConfig, NetSuiteConnector, ODataVersion, SapAuth, SapConfig, Secret,
};
use serde_json::{Map, Value};

pub const ACCOUNT: &str = "1234567_SB1";
pub const CONSUMER_SECRET: &str = "cs-7f3e9a1c0b2d4e5f";
pub const TOKEN_SECRET: &str = "ts-0a9b8c7d6e5f4a3b";

/// The SAP test server's origin (scripts/sap-for-tests).
pub fn sap_origin() -> String {
    std::env::var("CONCERTMASTER_SAP_URL").unwrap_or_else(|_| {
        panic!(
            "the SAP tests need the CAP test server: run them through scripts/test, or \
             `eval \"$(scripts/sap-for-tests)\"` first (it sets CONCERTMASTER_SAP_URL)"
        )
    })
}

/// The API_BUSINESS_PARTNER service root for `version`.
pub fn sap_service(version: ODataVersion) -> String {
    let v = match version {
        ODataVersion::V2 => "v2",
        ODataVersion::V4 => "v4",
    };
    format!("{}/odata/{v}/API_BUSINESS_PARTNER", sap_origin())
}

/// A config for the SAP test server as `user`.
pub fn sap_config(
    version: ODataVersion,
    user: &str,
    password: &str,
    batch_size: usize,
) -> SapConfig {
    SapConfig {
        service_url: sap_service(version),
        version,
        auth: SapAuth::Basic {
            username: user.into(),
            password: Secret::new(password.into()),
        },
        batch_size,
        sap_client: None,
        timeout_seconds: 30,
    }
}

/// Counters the SAP test server keeps per user or client.
pub async fn sap_stats(principal: &str) -> Value {
    reqwest::get(format!("{}/test/stats?principal={principal}", sap_origin()))
        .await
        .expect("stats")
        .json()
        .await
        .expect("stats JSON")
}

/// A business partner id of 10 characters no other test uses.
pub fn fresh_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..10].to_uppercase()
}

pub fn python() -> String {
    let python = std::env::var("CONCERTMASTER_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&python)
        .args(["-c", "import oauthlib"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "the NetSuite tests need Python's oauthlib: run them through scripts/test, which installs \
         it in a virtualenv under target/, or set CONCERTMASTER_PYTHON to a python that has it \
         ({python} has not)"
    );
    python
}

pub fn server_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/netsuite-server")
}

/// The stand-in, on a free port, stopped on drop.
pub struct NetSuite {
    child: Child,
    pub origin: String,
}

impl NetSuite {
    pub fn start() -> Self {
        let mut child = Command::new(python())
            .arg(server_dir().join("server.py"))
            .args([
                ACCOUNT,
                "ck-concertmaster",
                CONSUMER_SECRET,
                "tk-concertmaster",
                TOKEN_SECRET,
            ])
            .stdout(Stdio::piped())
            .spawn()
            .expect("the NetSuite stand-in starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("its stdout"))
            .read_line(&mut line)
            .expect("it says where it listens");
        let port = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        Self {
            child,
            origin: format!("http://127.0.0.1:{port}"),
        }
    }

    pub fn config(&self) -> NetSuiteConfig {
        NetSuiteConfig {
            account_id: ACCOUNT.into(),
            consumer_key: "ck-concertmaster".into(),
            consumer_secret: Secret::new(CONSUMER_SECRET.into()),
            token_id: "tk-concertmaster".into(),
            token_secret: Secret::new(TOKEN_SECRET.into()),
            base_url: Some(format!("{}/services/rest", self.origin)),
            max_retries: 5,
            timeout_seconds: 30,
        }
    }

    pub fn connector(&self) -> NetSuiteConnector {
        NetSuiteConnector::new("netsuite-test", self.config()).expect("a valid config")
    }

    pub async fn hook(&self, method: reqwest::Method, path: &str) -> Value {
        let response = reqwest::Client::new()
            .request(method, format!("{}/__test/{path}", self.origin))
            .send()
            .await
            .expect("the test hook answers");
        response.json().await.unwrap_or(Value::Null)
    }

    pub async fn stats(&self) -> Value {
        self.hook(reqwest::Method::GET, "stats").await
    }

    pub async fn vendors(&self) -> Vec<Value> {
        match self.hook(reqwest::Method::GET, "records/vendor").await {
            Value::Array(records) => records,
            other => panic!("not a list: {other}"),
        }
    }

    pub async fn throttle(&self, count: u32, retry_after: &str) {
        self.hook(
            reqwest::Method::POST,
            &format!("throttle?count={count}&retryAfter={retry_after}"),
        )
        .await;
    }
}

impl Drop for NetSuite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn fields(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}
