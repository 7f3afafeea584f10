//! The example server over real HTTP on 127.0.0.1: keys and roles, tenant
//! isolation on every endpoint, audit entries naming the key, personal data
//! masked for roles that may not read it, metrics.

use concertmaster_core::TenantId;
use concertmaster_nodes::forms::Submission;
use concertmaster_server_example::{Config, Revocation, Role, Server};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

struct Running {
    base: String,
    acme: Keys,
    globex: Keys,
    server: std::sync::Arc<ServerHandle>,
    _dir: tempfile::TempDir,
}

struct ServerHandle {
    forms: concertmaster_nodes::forms::Forms,
    engine: concertmaster_core::Engine,
}

struct Keys {
    admin: String,
    editor: String,
    reviewer: String,
    viewer: String,
}

async fn keys(server: &Server, tenant: &str) -> Keys {
    let mut issued = Vec::new();
    for role in [Role::Admin, Role::Editor, Role::Reviewer, Role::Viewer] {
        issued.push(
            server
                .keys()
                .issue(tenant, &format!("{tenant}-{}", role.as_str()), role)
                .await
                .unwrap()
                .key,
        );
    }
    let mut issued = issued.into_iter();
    Keys {
        admin: issued.next().unwrap(),
        editor: issued.next().unwrap(),
        reviewer: issued.next().unwrap(),
        viewer: issued.next().unwrap(),
    }
}

/// The bearer token of the test service's `/metrics`.
const METRICS_TOKEN: &str = "metrics-7f3a";

async fn start() -> Running {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::sqlite(dir.path().join("server.db"));
    config.metrics_token = Some(METRICS_TOKEN.into());
    let server = Server::build(&config).await.unwrap();
    server.seed_demo(&TenantId::new("acme")).await.unwrap();
    let acme = keys(&server, "acme").await;
    let globex = keys(&server, "globex").await;
    let handle = std::sync::Arc::new(ServerHandle {
        forms: server.forms().clone(),
        engine: server.engine().clone(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = server.router();
    tokio::spawn(async move { axum::serve(listener, router).await });
    Running {
        base,
        acme,
        globex,
        server: handle,
        _dir: dir,
    }
}

impl Running {
    async fn call(
        &self,
        key: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = reqwest::Client::new().request(method, format!("{}{path}", self.base));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn get(&self, key: &str, path: &str) -> (StatusCode, Value) {
        self.call(Some(key), Method::GET, path, None).await
    }

    /// Publishes the greeting workflow as acme's editor and starts a run.
    async fn start_hello(&self) -> String {
        self.post(&self.acme.editor, "/api/workflows", greeting_workflow())
            .await;
        let (_, started) = self
            .post(
                &self.acme.editor,
                "/api/workflows/hello/runs",
                json!({ "name": "Ada" }),
            )
            .await;
        started["runId"].as_str().unwrap().to_string()
    }

    /// The run's detail once it has succeeded.
    async fn succeeded(&self, run: &str) -> Value {
        loop {
            let (_, detail) = self
                .get(&self.acme.viewer, &format!("/api/runs/{run}"))
                .await;
            if detail["run"]["status"] == "succeeded" {
                return detail;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    async fn delete(&self, key: &str, path: &str) -> StatusCode {
        self.call(Some(key), Method::DELETE, path, None).await.0
    }

    async fn post(&self, key: &str, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Some(key), Method::POST, path, Some(body)).await
    }
}

/// The token at the end of a form link.
fn token(url: &str) -> &str {
    url.rsplit('/').next().unwrap_or_default()
}

fn greeting_workflow() -> Value {
    json!({ "id": "hello", "name": "Hello", "nodes": [
        { "id": "start", "type": "manual" },
        { "id": "shape", "type": "jq", "config": { "expression": "{greeting: (\"Hello, \" + .name)}" } }
    ], "edges": [{ "source": "start", "target": "shape" }] })
}

#[tokio::test]
async fn calls_without_a_valid_key_are_refused() {
    let server = start().await;
    let (status, body) = server.call(None, Method::GET, "/api/workflows", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "unauthenticated");
    let (status, _) = server.get("cm_000000000000_nope", "/api/workflows").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let forged = format!("{}x", &server.acme.admin);
    assert_eq!(
        server.get(&forged, "/api/workflows").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        server.call(None, Method::GET, "/healthz", None).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn roles_decide_what_a_key_may_do() {
    let server = start().await;
    let (status, body) = server
        .post(&server.acme.viewer, "/api/workflows", greeting_workflow())
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("viewer role may not publish"),
        "{body}"
    );
    let (status, published) = server
        .post(&server.acme.editor, "/api/workflows", greeting_workflow())
        .await;
    assert_eq!(status, StatusCode::CREATED, "{published}");
    assert_eq!(published["version"], 1);
    assert_eq!(
        server
            .post(
                &server.acme.reviewer,
                "/api/workflows/hello/runs",
                json!({ "name": "Ada" })
            )
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        server.get(&server.acme.editor, "/api/audit").await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        server.get(&server.acme.editor, "/api/connections").await.0,
        StatusCode::FORBIDDEN
    );
    let (status, list) = server.get(&server.acme.viewer, "/api/workflows").await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = list["workflows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"hello") && ids.contains(&"supplier-questionnaire"),
        "{list}"
    );
}

#[tokio::test]
async fn a_run_is_started_inspected_and_audited_with_the_key_that_acted() {
    let server = start().await;
    server
        .post(&server.acme.editor, "/api/workflows", greeting_workflow())
        .await;
    let (status, started) = server
        .post(
            &server.acme.editor,
            "/api/workflows/hello/runs",
            json!({ "name": "Ada" }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let run = started["runId"].as_str().unwrap().to_string();
    let detail = loop {
        let (_, detail) = server
            .get(&server.acme.viewer, &format!("/api/runs/{run}"))
            .await;
        if detail["run"]["status"] == "succeeded" {
            break detail;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let timeline = detail["timeline"].as_array().unwrap();
    assert_eq!(timeline.len(), 2);
    assert_eq!(detail["itemsHidden"], true, "a viewer sees no items");
    assert!(detail["run"].get("trigger").is_none());
    let (_, detail) = server
        .get(&server.acme.admin, &format!("/api/runs/{run}"))
        .await;
    let shape = detail["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["nodeId"] == "shape")
        .unwrap();
    assert_eq!(
        shape["output"]["main"][0]["greeting"], "Hello, Ada",
        "{shape}"
    );
    let (_, runs) = server
        .get(
            &server.acme.viewer,
            "/api/runs?status=succeeded&workflow=hello",
        )
        .await;
    assert_eq!(runs["runs"].as_array().unwrap().len(), 1);
    let (status, _) = server
        .get(&server.acme.viewer, "/api/runs?status=sleeping")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (_, audit) = server
        .get(&server.acme.admin, "/api/audit?entityType=run")
        .await;
    let entry = &audit["entries"][0];
    assert_eq!(
        (entry["action"].as_str(), entry["actor"].as_str()),
        (Some("execute"), Some("acme-editor")),
        "{audit}"
    );
    let (_, audit) = server
        .get(
            &server.acme.admin,
            "/api/audit?entityType=workflow&entityId=hello@1",
        )
        .await;
    assert_eq!(audit["entries"][0]["actor"], "acme-editor");
    let form = json!({ "id": "nda", "title": "NDA", "schema": { "type": "object" } });
    assert_eq!(
        server.post(&server.acme.editor, "/api/forms", form).await.0,
        StatusCode::CREATED
    );
    let (_, audit) = server
        .get(
            &server.acme.admin,
            "/api/audit?entityType=form&entityId=nda@1",
        )
        .await;
    assert_eq!(audit["entries"][0]["actor"], "acme-editor", "{audit}");

    let (status, invalid) = server
        .post(
            &server.acme.viewer,
            "/api/workflows/validate",
            json!({ "id": "x", "name": "X", "nodes": [{ "id": "a", "type": "jq" }] }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(invalid["valid"], false);
    assert_eq!(invalid["issues"][0]["kind"], "invalid_config");
}

#[tokio::test]
async fn one_tenant_never_reads_or_changes_anothers_records() {
    let server = start().await;
    let run = server.start_hello().await;
    let (status, _) = server
        .post(&server.acme.admin, "/api/connections", json!({ "id": "sap-prod", "kind": "sap", "config": {
            "serviceUrl": "https://s4.acme.example/sap/opu/odata/sap/API_BUSINESS_PARTNER", "version": "v2",
            "auth": { "type": "basic", "username": "CM", "password": "acme-secret-0001" } } }))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (link, url) = server
        .server
        .forms
        .issue_link(
            &TenantId::new("acme"),
            &"supplier-profile".into(),
            Some("a@x".into()),
        )
        .await
        .unwrap();
    let response = server
        .server
        .forms
        .submit(&server.server.engine, token(&url), Submission::new(json!({ "company": "Acme", "vatId": "DE123456789", "employees": 5, "contact": { "email": "ap@acme.example" } })))
        .await
        .unwrap();
    assert_eq!(link.form_id.as_str(), "supplier-profile");

    let them = &server.globex;
    for (method, path, body) in [
        (Method::GET, "/api/workflows/hello".to_string(), None),
        (
            Method::GET,
            "/api/workflows/hello/versions".to_string(),
            None,
        ),
        (
            Method::POST,
            "/api/workflows/hello/runs".to_string(),
            Some(json!({})),
        ),
        (Method::GET, format!("/api/runs/{run}"), None),
        (
            Method::POST,
            format!("/api/runs/{run}/cancel"),
            Some(json!({ "reason": "hostile" })),
        ),
        (Method::GET, "/api/forms/supplier-profile".to_string(), None),
        (
            Method::POST,
            format!("/api/responses/{}/review", response.id),
            Some(json!({ "decision": "approved" })),
        ),
        (
            Method::POST,
            "/api/connections/sap-prod/test".to_string(),
            None,
        ),
    ] {
        let (status, body) = server
            .call(Some(&them.admin), method.clone(), &path, body)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {body}");
    }
    for path in [
        "/api/workflows",
        "/api/runs",
        "/api/connections",
        "/api/forms/supplier-profile/responses",
        "/api/audit",
    ] {
        let (status, body) = server.get(&them.admin, path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        let list = body
            .as_object()
            .unwrap()
            .values()
            .find(|v| v.is_array())
            .unwrap();
        assert!(list.as_array().unwrap().is_empty(), "{path}: {body}");
    }
    // Acme's records are untouched.
    let (_, detail) = server
        .get(&server.acme.viewer, &format!("/api/runs/{run}"))
        .await;
    assert_ne!(detail["run"]["status"], "cancelled");
    let (_, responses) = server
        .get(&server.acme.admin, "/api/forms/supplier-profile/responses")
        .await;
    assert_eq!(responses["responses"][0]["reviewStatus"], "pending");
}

#[tokio::test]
async fn personal_data_is_masked_unless_the_role_may_read_it_and_reading_is_audited() {
    let server = start().await;
    let (_, url) = server
        .server
        .forms
        .issue_link(
            &TenantId::new("acme"),
            &"supplier-profile".into(),
            Some("a@x".into()),
        )
        .await
        .unwrap();
    let response = server
        .server
        .forms
        .submit(&server.server.engine, token(&url), Submission::new(json!({ "company": "Acme", "vatId": "DE123456789", "employees": 5, "contact": { "email": "ap@acme.example" } })).with_consent(concertmaster_core::form::Consent {
                given: true,
                text: "privacy-notice-v3".into(),
                at: chrono::Utc::now(),
            }))
        .await
        .unwrap();
    let (_, seen) = server
        .get(
            &server.acme.reviewer,
            "/api/forms/supplier-profile/responses",
        )
        .await;
    assert_eq!(seen["personalDataMasked"], true);
    // A later version that no longer flags the e-mail does not unmask
    // answers given to the version that did.
    let v2 = json!({ "id": "supplier-profile", "title": "supplier profile", "schema": {
        "type": "object", "properties": { "contact": { "type": "object", "properties": { "email": { "type": "string" } } } } } });
    assert_eq!(
        server.post(&server.acme.editor, "/api/forms", v2).await.0,
        StatusCode::CREATED
    );
    let (_, seen) = server
        .get(
            &server.acme.reviewer,
            "/api/forms/supplier-profile/responses",
        )
        .await;
    assert_eq!(seen["responses"][0]["data"]["contact"]["email"], "***");
    assert_eq!(seen["responses"][0]["data"]["company"], "Acme");
    let (_, seen) = server
        .get(&server.acme.admin, "/api/forms/supplier-profile/responses")
        .await;
    assert_eq!(
        seen["responses"][0]["data"]["contact"]["email"],
        "ap@acme.example"
    );

    let (status, reviewed) = server
        .post(
            &server.acme.reviewer,
            &format!("/api/responses/{}/review", response.id),
            json!({ "decision": "approved", "comment": "checked" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{reviewed}");
    assert_eq!(reviewed["reviewStatus"], "approved");
    let (status, _) = server
        .post(
            &server.acme.reviewer,
            &format!("/api/responses/{}/review", response.id),
            json!({ "decision": "rejected" }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    let (_, audit) = server.get(&server.acme.admin, "/api/audit").await;
    let actions: Vec<(&str, &str)> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["actor"].as_str().unwrap_or("-"),
            )
        })
        .collect();
    assert!(
        actions.contains(&("access", "acme-reviewer")),
        "{actions:?}"
    );
    assert!(
        actions.contains(&("review", "acme-reviewer")),
        "{actions:?}"
    );
    let created = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["entityType"] == "form response" && e["action"] == "create")
        .expect("the submission is on record");
    assert_eq!(created["details"]["consent"]["given"], true);
    assert_eq!(created["details"]["consent"]["text"], "privacy-notice-v3");
}

#[tokio::test]
async fn connections_keep_their_secrets_out_of_answers_and_the_audit_log() {
    let server = start().await;
    let (status, created) = server
        .post(&server.acme.admin, "/api/connections", json!({ "id": "sap-prod", "name": "S/4 prod", "kind": "sap", "config": {
            "serviceUrl": "https://s4.acme.example/sap/opu/odata/sap/API_BUSINESS_PARTNER", "version": "v2",
            "auth": { "type": "basic", "username": "CM", "password": "acme-secret-0001" } } }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (status, refused) = server
        .post(
            &server.acme.admin,
            "/api/connections",
            json!({ "id": "bad", "kind": "sap", "config": { "version": "v9" } }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    let (_, list) = server.get(&server.acme.admin, "/api/connections").await;
    let (_, audit) = server.get(&server.acme.admin, "/api/audit").await;
    let everything = format!("{created} {refused} {list} {audit}");
    assert!(!everything.contains("acme-secret-0001"), "{everything}");
    assert_eq!(list["connections"][0]["name"], "S/4 prod");
    assert!(audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["entityType"] == "connection" && e["actor"] == "acme-admin"));
}

#[tokio::test]
async fn metrics_are_served_in_prometheus_text_to_the_bearer_of_their_token_only() {
    let server = start().await;
    let run = server.start_hello().await;
    server.succeeded(&run).await;
    let client = reqwest::Client::new();
    let url = format!("{}/metrics", server.base);
    let anonymous = client.get(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), reqwest::StatusCode::UNAUTHORIZED);
    for wrong in ["metrics-7f3b", "", &server.acme.admin] {
        let refused = client.get(&url).bearer_auth(wrong).send().await.unwrap();
        assert_eq!(
            refused.status(),
            reqwest::StatusCode::UNAUTHORIZED,
            "{wrong:?} is not the metrics token"
        );
    }
    let text = client
        .get(&url)
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("workflow_executions_total"), "{text}");
    assert!(text.contains("node_execution_duration_seconds"), "{text}");
}

#[tokio::test]
async fn the_same_service_runs_on_postgres() {
    let url = std::env::var("CONCERTMASTER_POSTGRES_URL")
        .expect("the Postgres test needs CONCERTMASTER_POSTGRES_URL: run it through scripts/test");
    let server = Server::build(&Config::postgres(url)).await.unwrap();
    // A tenant of its own: the database is shared with other tests.
    let tenant = format!("t{}", uuid::Uuid::new_v4().simple());
    let editor = server
        .keys()
        .issue(&tenant, "pg-editor", Role::Editor)
        .await
        .unwrap()
        .key;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = server.router();
    tokio::spawn(async move { axum::serve(listener, router).await });
    let client = reqwest::Client::new();
    let published = client
        .post(format!("{base}/api/workflows"))
        .bearer_auth(&editor)
        .json(&greeting_workflow())
        .send()
        .await
        .unwrap();
    assert_eq!(published.status(), StatusCode::CREATED);
    let list: Value = client
        .get(format!("{base}/api/workflows"))
        .bearer_auth(&editor)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["workflows"][0]["id"], "hello");
    assert_eq!(list["workflows"].as_array().unwrap().len(), 1);

    // Revocation keeps the tenant's last admin key, also when two admins
    // revoke each other at the same moment.
    let keys = server.keys();
    let admin = keys.issue(&tenant, "pg-admin", Role::Admin).await.unwrap();
    assert_eq!(
        keys.revoke(&tenant, &admin.record.id).await.unwrap(),
        Revocation::LastAdmin
    );
    for round in 0..5 {
        keys.issue(&tenant, &format!("pg-admin-{round}"), Role::Admin)
            .await
            .unwrap();
        let admins = keys.list(&tenant).await.unwrap();
        let admins: Vec<_> = admins.iter().filter(|k| k.role == Role::Admin).collect();
        assert_eq!(admins.len(), 2);
        let (a, b) = tokio::join!(
            keys.revoke(&tenant, &admins[0].id),
            keys.revoke(&tenant, &admins[1].id)
        );
        let outcomes = [a.unwrap(), b.unwrap()];
        assert_eq!(
            outcomes
                .iter()
                .filter(|o| matches!(o, Revocation::Revoked(_)))
                .count(),
            1,
            "round {round}: {outcomes:?}"
        );
        assert!(outcomes.contains(&Revocation::LastAdmin));
    }
    let editor_id = editor.split('_').nth(1).unwrap();
    assert!(matches!(
        keys.revoke(&tenant, editor_id).await.unwrap(),
        Revocation::Revoked(record) if record.name == "pg-editor"
    ));
    assert_eq!(
        keys.revoke(&tenant, editor_id).await.unwrap(),
        Revocation::Unknown
    );
    assert!(keys.verify(&editor).await.unwrap().is_none());
}

#[tokio::test]
async fn admins_issue_list_and_revoke_keys_each_audited() {
    let server = start().await;
    let admin = server.acme.admin.clone();
    let (status, issued) = server
        .post(
            &admin,
            "/api/keys",
            json!({ "name": "ci-bot", "role": "editor" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{issued}");
    let key = issued["key"].as_str().unwrap().to_string();
    let id = issued["id"].as_str().unwrap().to_string();
    assert!(key.starts_with(&format!("cm_{id}_")), "{issued}");
    assert_eq!(issued["role"], "editor");
    // The new key works, with its role.
    assert_eq!(server.get(&key, "/api/workflows").await.0, StatusCode::OK);
    assert_eq!(server.get(&key, "/api/keys").await.0, StatusCode::FORBIDDEN);

    // Listed without the key or its hash.
    let (status, list) = server.get(&admin, "/api/keys").await;
    assert_eq!(status, StatusCode::OK);
    let listed = list["keys"].as_array().unwrap();
    assert_eq!(listed.len(), 5, "acme's four and the new one: {list}");
    assert!(listed
        .iter()
        .any(|k| k["id"] == id && k["name"] == "ci-bot"));
    assert!(!list.to_string().contains(&key[3 + id.len() + 1..]));
    assert!(listed.iter().all(|k| k.get("key").is_none()));

    // Only admins; no other tenant's key; no nameless or unknown roles.
    for (who, method, path, body) in [
        (
            &server.acme.editor,
            Method::POST,
            "/api/keys".to_string(),
            Some(json!({ "name": "x", "role": "admin" })),
        ),
        (
            &server.acme.editor,
            Method::DELETE,
            format!("/api/keys/{id}"),
            None,
        ),
        (
            &server.acme.viewer,
            Method::GET,
            "/api/keys".to_string(),
            None,
        ),
    ] {
        let (status, _) = server.call(Some(who), method, &path, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
    }
    let status = server
        .delete(&server.globex.admin, &format!("/api/keys/{id}"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(server.get(&key, "/api/workflows").await.0, StatusCode::OK);
    let (status, refused) = server
        .post(
            &admin,
            "/api/keys",
            json!({ "name": " ", "role": "editor" }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    let (status, _) = server
        .post(&admin, "/api/keys", json!({ "name": "x", "role": "owner" }))
        .await;
    assert!(status.is_client_error(), "{status}");

    // Revoked: it authenticates nothing from now on.
    let status = server.delete(&admin, &format!("/api/keys/{id}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        server.get(&key, "/api/workflows").await.0,
        StatusCode::UNAUTHORIZED
    );
    let status = server.delete(&admin, &format!("/api/keys/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The tenant's last admin key stays.
    let (_, list) = server.get(&admin, "/api/keys").await;
    let own = list["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["role"] == "admin")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, refused) = server
        .call(
            Some(&admin),
            Method::DELETE,
            &format!("/api/keys/{own}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert!(refused
        .to_string()
        .contains("issue another admin key first"));

    // Both acts are in the audit log, naming the key that acted.
    let (_, audit) = server.get(&admin, "/api/audit?entityType=api_key").await;
    let entries = audit["entries"].as_array().unwrap();
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["delete", "create"], "{audit}");
    for entry in entries {
        assert_eq!(entry["entityId"], id.as_str());
        assert_eq!(entry["actor"], "acme-admin");
        assert_eq!(entry["details"]["name"], "ci-bot");
        assert!(!entry.to_string().contains(&key));
    }
}

#[tokio::test]
async fn the_openapi_document_covers_every_api_route() {
    let server = start().await;
    let doc: Value = reqwest::get(format!("{}/openapi.json", server.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert_eq!(
        doc["components"]["securitySchemes"]["api_key"]["scheme"],
        "bearer"
    );
    let paths = doc["paths"].as_object().unwrap();
    for (path, methods) in [
        ("/api/node-types", &["get"][..]),
        ("/api/workflows", &["get", "post"]),
        ("/api/workflows/validate", &["post"]),
        ("/api/workflows/{id}", &["get"]),
        ("/api/workflows/{id}/versions", &["get"]),
        ("/api/workflows/{id}/runs", &["post"]),
        ("/api/runs", &["get"]),
        ("/api/runs/{id}", &["get"]),
        ("/api/runs/{id}/cancel", &["post"]),
        ("/api/runs/{id}/rerun", &["post"]),
        ("/api/runs/{id}/migrate", &["post"]),
        ("/api/reruns", &["post"]),
        ("/api/forms", &["post"]),
        ("/api/forms/{id}", &["get"]),
        ("/api/forms/{id}/responses", &["get"]),
        ("/api/responses/{id}/review", &["post"]),
        ("/api/connections", &["get", "post"]),
        ("/api/connections/{id}/test", &["post"]),
        ("/api/keys", &["get", "post"]),
        ("/api/keys/{id}", &["delete"]),
        ("/api/audit", &["get"]),
    ] {
        for method in methods {
            let operation = &paths[path][*method];
            assert!(operation.is_object(), "{method} {path} is documented");
            assert!(
                operation["responses"]
                    .as_object()
                    .is_some_and(|r| !r.is_empty()),
                "{method} {path}"
            );
        }
    }
    assert_eq!(paths.len(), 21, "every documented path is a route");
}

/// `hello`, whose greeting fails for a trigger without a name until the
/// version that greets "you" instead.
fn fragile_hello(fixed: bool) -> Value {
    let name = if fixed {
        "(.name // \"you\")"
    } else {
        "(.name // error(\"no name given\"))"
    };
    json!({ "id": "hello", "name": "Hello", "nodes": [
        { "id": "start", "type": "manual" },
        { "id": "shape", "type": "jq", "config": { "expression": format!("{{greeting: (\"Hello, \" + {name})}}") } }
    ], "edges": [{ "source": "start", "target": "shape" }] })
}

impl Running {
    /// The run's status once it has ended.
    async fn ended(&self, run: &str) -> Value {
        loop {
            let (_, detail) = self
                .get(&self.acme.viewer, &format!("/api/runs/{run}"))
                .await;
            let status = &detail["run"]["status"];
            if ["succeeded", "failed", "cancelled"]
                .iter()
                .any(|s| status == s)
            {
                return detail;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    async fn start_on(&self, version: u32, trigger: Value) -> String {
        let (status, started) = self
            .post(
                &self.acme.editor,
                &format!("/api/workflows/hello/runs?version={version}"),
                trigger,
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{started}");
        started["runId"].as_str().unwrap().to_string()
    }
}

#[tokio::test]
async fn failed_runs_are_re_run_one_or_by_filter_after_a_fix() {
    let server = start().await;
    server
        .post(&server.acme.editor, "/api/workflows", fragile_hello(false))
        .await;
    let first = server.start_on(1, json!({})).await;
    assert_eq!(server.ended(&first).await["run"]["status"], "failed");
    server
        .post(&server.acme.editor, "/api/workflows", fragile_hello(true))
        .await;

    let (status, body) = server
        .post(
            &server.acme.viewer,
            &format!("/api/runs/{first}/rerun"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = server
        .post(
            &server.acme.editor,
            &format!("/api/runs/{first}/rerun"),
            json!({ "version": "latest" }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let again = body["runId"].as_str().unwrap().to_string();
    let detail = server.ended(&again).await;
    assert_eq!(detail["run"]["status"], "succeeded", "{detail}");
    assert_eq!(detail["run"]["origin"]["run"], first.as_str());
    let (status, body) = server
        .post(
            &server.acme.editor,
            &format!("/api/runs/{again}/rerun"),
            json!({ "from": "failed" }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("no node of it failed"));

    // Two more fail on version 1; the batch re-runs every failed run of it.
    for _ in 0..2 {
        let run = server.start_on(1, json!({})).await;
        server.ended(&run).await;
    }
    let batch = json!({
        "workflow": "hello", "workflowVersion": 1, "status": ["failed"],
        "errorContains": "NO NAME", "version": "latest", "key": "fix-greeting"
    });
    let (status, report) = server
        .post(&server.acme.editor, "/api/reruns", batch.clone())
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["rerun"].as_array().unwrap().len(), 3, "{report}");
    for pair in report["rerun"].as_array().unwrap() {
        let detail = server.ended(pair["rerun"].as_str().unwrap()).await;
        assert_eq!(detail["run"]["status"], "succeeded");
    }
    let (_, report) = server.post(&server.acme.editor, "/api/reruns", batch).await;
    assert_eq!(report["rerun"].as_array().unwrap().len(), 0, "{report}");
    assert_eq!(
        report["doneBefore"].as_array().unwrap().len(),
        3,
        "{report}"
    );
    let (status, body) = server
        .post(
            &server.acme.editor,
            "/api/reruns",
            json!({ "from": "middle" }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn a_waiting_run_moves_to_a_new_version_through_the_api() {
    let server = start().await;
    let waits = |shape: &str| {
        json!({ "id": "hello", "name": "Hello", "nodes": [
            { "id": "start", "type": "manual" },
            { "id": "pause", "type": "delay", "config": { "duration": "1h" } },
            { "id": shape, "type": "jq", "config": { "expression": "{greeting: \"Hello\"}" } }
        ], "edges": [
            { "source": "start", "target": "pause" },
            { "source": "pause", "target": shape }
        ] })
    };
    server
        .post(&server.acme.editor, "/api/workflows", waits("shape"))
        .await;
    let run = server.start_on(1, json!({})).await;
    loop {
        let (_, detail) = server
            .get(&server.acme.viewer, &format!("/api/runs/{run}"))
            .await;
        if detail["run"]["status"] == "waiting" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    server
        .post(&server.acme.editor, "/api/workflows", waits("greet"))
        .await;

    let (status, body) = server
        .post(
            &server.acme.editor,
            &format!("/api/runs/{run}/migrate"),
            json!({ "toVersion": 2, "renames": { "pause": "gone" } }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("node gone (renamed from pause) is not in version 2"),
        "{body}"
    );
    let (status, body) = server
        .post(
            &server.acme.editor,
            &format!("/api/runs/{run}/migrate"),
            json!({ "toVersion": 2 }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["run"]["workflowVersion"], 2);
    assert_eq!(body["run"]["status"], "waiting");
}

#[tokio::test]
async fn the_editor_loads_the_node_types_of_the_services_registry() {
    let server = start().await;
    let (status, types) = server.get(&server.acme.viewer, "/api/node-types").await;
    assert_eq!(status, StatusCode::OK);
    let types = types.as_array().expect("an array of descriptors");
    let ids: Vec<&str> = types.iter().filter_map(|t| t["typeId"].as_str()).collect();
    // The built-in nodes, the forms nodes and the ERP export nodes.
    for wanted in [
        "manual",
        "jq",
        "send_form",
        "review",
        "sap_export",
        "netsuite_sync",
    ] {
        assert!(ids.contains(&wanted), "{wanted} in {ids:?}");
    }
    let jq = types.iter().find(|t| t["typeId"] == "jq").unwrap();
    assert_eq!(jq["category"], "transform");
    assert!(jq["configSchema"]["properties"]["expression"].is_object());
    let (status, _) = server
        .call(None, Method::GET, "/api/node-types", None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
