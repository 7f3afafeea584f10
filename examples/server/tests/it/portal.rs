//! The form portal over HTTP: the form rendered from its schema, errors
//! under each field with what was entered kept, one submission per link,
//! clear pages for used and unknown links.

use concertmaster_core::{form::ResponseFilter, TenantId};
use concertmaster_server_example::{Config, PortalLimits, RateLimit, Server};
use reqwest::StatusCode;

/// Answers to the supplier profile form that pass its schema.
const VALID_ANSWERS: [(&str, &str); 4] = [
    ("/company", "Nordwind Logistik GmbH"),
    ("/vatId", "DE123456789"),
    ("/employees", "120"),
    ("/contact/email", "ap@nordwind.example"),
];

async fn start() -> (String, Server, tempfile::TempDir) {
    start_with(|_| {}).await
}

/// The service set up by `configure`, served with its peers' addresses as
/// `Server::serve` serves it.
async fn start_with(configure: impl FnOnce(&mut Config)) -> (String, Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::sqlite(dir.path().join("portal.db"));
    configure(&mut config);
    let server = Server::build(&config).await.unwrap();
    server.seed_demo(&TenantId::new("acme")).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = server
        .router()
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, server, dir)
}

/// The address a submission records, sent with `forwarded` as its
/// `X-Forwarded-For` to a service behind `trusted` proxies.
async fn recorded_address(trusted: &[&str], forwarded: Option<&str>) -> Option<String> {
    let trusted = trusted.iter().map(|ip| ip.parse().unwrap()).collect();
    let (base, server, _dir) = start_with(|config| config.trusted_proxies = trusted).await;
    let tenant = TenantId::new("acme");
    let token = profile_link(&server, &tenant).await;
    let mut request = reqwest::Client::new().post(format!("{base}/f/{token}"));
    if let Some(forwarded) = forwarded {
        request = request.header("x-forwarded-for", forwarded);
    }
    let sent = request.form(&VALID_ANSWERS).send().await.unwrap();
    assert_eq!(sent.status(), StatusCode::OK);
    let responses = server
        .forms()
        .responses(&tenant, &ResponseFilter::all(), "test")
        .await
        .unwrap();
    responses[0].submitter.ip.clone()
}

#[tokio::test]
async fn x_forwarded_for_is_believed_only_from_trusted_proxies() {
    // Straight from a client: its own address, whatever it claims.
    assert_eq!(
        recorded_address(&[], Some("203.0.113.7")).await.as_deref(),
        Some("127.0.0.1")
    );
    // Through a trusted proxy: the address the proxy saw.
    assert_eq!(
        recorded_address(&["127.0.0.1"], Some("203.0.113.7"))
            .await
            .as_deref(),
        Some("203.0.113.7")
    );
    // A client that forges the header before the proxy appends: the
    // entry the proxy added, not the forged one on its left.
    assert_eq!(
        recorded_address(
            &["127.0.0.1", "10.0.0.2"],
            Some("198.51.100.9, 203.0.113.7, 10.0.0.2")
        )
        .await
        .as_deref(),
        Some("203.0.113.7")
    );
    // A trusted proxy that sent no header: the proxy itself.
    assert_eq!(
        recorded_address(&["127.0.0.1"], None).await.as_deref(),
        Some("127.0.0.1")
    );
    // Garbage in the chain: nothing left of it is believed.
    assert_eq!(
        recorded_address(&["127.0.0.1"], Some("203.0.113.7, not-an-ip"))
            .await
            .as_deref(),
        Some("127.0.0.1")
    );
}

/// The token of a new link to the supplier profile form.
async fn profile_link(server: &Server, tenant: &TenantId) -> String {
    let (_, url) = server
        .forms()
        .issue_link(
            tenant,
            &"supplier-profile".into(),
            Some("ap@nordwind.example".into()),
        )
        .await
        .unwrap();
    url.rsplit('/').next().unwrap().to_string()
}

#[tokio::test]
async fn a_respondent_fixes_field_errors_and_submits_once() {
    let (base, server, _dir) = start().await;
    let tenant = TenantId::new("acme");
    let token = profile_link(&server, &tenant).await;
    let client = reqwest::Client::new();

    let form = get(&client, &format!("{base}/f/{token}")).await;
    assert_eq!(form.status(), StatusCode::OK);
    let html = form.text().await.unwrap();
    assert!(html.contains("<h1>supplier profile</h1>"), "{html}");
    for field in ["/company", "/vatId", "/employees", "/contact/email"] {
        assert!(
            html.contains(&format!("name=\"{field}\"")),
            "{field} in {html}"
        );
    }
    assert!(
        html.contains("(personal data)"),
        "the e-mail is marked personal"
    );

    let invalid = client
        .post(format!("{base}/f/{token}"))
        .form(&[
            ("/company", ""),
            ("/vatId", "nope"),
            ("/employees", "twelve"),
            ("/contact/email", "ap@nordwind.example"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(invalid.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = invalid.text().await.unwrap();
    for field in ["/company", "/vatId", "/employees"] {
        assert!(
            html.contains(&format!("data-field=\"{field}\"")),
            "an error under {field}: {html}"
        );
    }
    assert!(!html.contains("data-field=\"/contact/email\""));
    assert!(
        html.contains("value=\"twelve\"") && html.contains("value=\"nope\""),
        "what was entered is kept"
    );

    let valid = client
        .post(format!("{base}/f/{token}"))
        .header("x-forwarded-for", "203.0.113.7")
        .form(&VALID_ANSWERS)
        .send()
        .await
        .unwrap();
    assert_eq!(valid.status(), StatusCode::OK);
    assert!(valid.text().await.unwrap().contains("Thank you"));

    let responses = server
        .forms()
        .responses(&tenant, &ResponseFilter::all(), "test")
        .await
        .unwrap();
    assert_eq!(responses.len(), 1);
    assert_eq!(responses[0].data["employees"], 120);
    assert_eq!(
        responses[0].submitter.ip.as_deref(),
        Some("127.0.0.1"),
        "no proxy is trusted: the peer's address, not the header's"
    );

    let again = get(&client, &format!("{base}/f/{token}")).await;
    assert_eq!(again.status(), StatusCode::GONE);
    assert!(again.text().await.unwrap().contains("Already answered"));
    let resubmit = client
        .post(format!("{base}/f/{token}"))
        .form(&[("/company", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(resubmit.status(), StatusCode::GONE);
    assert_eq!(
        server
            .forms()
            .responses(&tenant, &ResponseFilter::all(), "test")
            .await
            .unwrap()
            .len(),
        1
    );

    let unknown = client
        .get(format!("{base}/f/not-a-token"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    assert!(unknown
        .text()
        .await
        .unwrap()
        .contains("This link is not valid"));
}

#[tokio::test]
async fn a_respondent_saves_a_draft_and_goes_on_from_another_device() {
    let (base, server, _dir) = start().await;
    let tenant = TenantId::new("acme");
    let token = profile_link(&server, &tenant).await;
    let laptop = reqwest::Client::new();

    let saved = laptop
        .post(format!("{base}/f/{token}"))
        .form(&[
            ("/company", "Nordwind Logistik GmbH"),
            ("/vatId", ""),
            ("action", "draft"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(saved.status(), StatusCode::OK);
    assert!(saved.text().await.unwrap().contains("Saved."));
    let refused = laptop
        .post(format!("{base}/f/{token}"))
        .form(&[("/employees", "twelve"), ("action", "draft")])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused
        .text()
        .await
        .unwrap()
        .contains("data-field=\"/employees\""));

    // Another device: the same link opens with what was saved.
    let phone = reqwest::Client::new();
    let html = phone
        .get(format!("{base}/f/{token}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("value=\"Nordwind Logistik GmbH\""), "{html}");
    let done = phone
        .post(format!("{base}/f/{token}"))
        .form(&VALID_ANSWERS)
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), StatusCode::OK);
    let responses = server
        .forms()
        .responses(&tenant, &ResponseFilter::all(), "test")
        .await
        .unwrap();
    assert_eq!(responses.len(), 1);
}

#[tokio::test]
async fn metrics_are_off_until_a_token_is_configured() {
    let (base, _server, _dir) = start().await;
    let answer = reqwest::get(format!("{base}/metrics")).await.unwrap();
    assert_eq!(answer.status(), StatusCode::NOT_FOUND);
    let text = answer.text().await.unwrap();
    assert!(
        text.contains("metrics_token"),
        "says how to turn them on: {text}"
    );
}

async fn get(client: &reqwest::Client, url: &str) -> reqwest::Response {
    client.get(url).send().await.unwrap()
}

/// A limit that allows `burst` requests, then one a minute.
fn burst_of(burst: u32) -> Option<RateLimit> {
    Some(RateLimit {
        burst,
        every: std::time::Duration::from_secs(60),
    })
}

#[tokio::test]
async fn one_link_takes_only_so_many_requests() {
    let (base, server, _dir) = start_with(|config| {
        config.portal_limits = PortalLimits {
            per_client: None,
            per_link: burst_of(2),
        }
    })
    .await;
    let tenant = TenantId::new("acme");
    let token = profile_link(&server, &tenant).await;
    let other = profile_link(&server, &tenant).await;
    let client = reqwest::Client::new();
    for _ in 0..2 {
        let form = get(&client, &format!("{base}/f/{token}")).await;
        assert_eq!(form.status(), StatusCode::OK);
    }
    let refused = client
        .post(format!("{base}/f/{token}"))
        .form(&VALID_ANSWERS)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "Retry-After: {wait}");
    assert!(refused.text().await.unwrap().contains("Try again in"));
    // Nothing of the refused submission was taken.
    let responses = server
        .forms()
        .responses(&tenant, &ResponseFilter::all(), "test")
        .await
        .unwrap();
    assert!(responses.is_empty());
    // Another link is not held up.
    let form = get(&client, &format!("{base}/f/{other}")).await;
    assert_eq!(form.status(), StatusCode::OK);
}

#[tokio::test]
async fn one_client_guessing_links_is_held_up() {
    let (base, server, _dir) = start_with(|config| {
        config.portal_limits = PortalLimits {
            per_client: burst_of(3),
            per_link: None,
        }
    })
    .await;
    let token = profile_link(&server, &TenantId::new("acme")).await;
    let client = reqwest::Client::new();
    for guess in ["a", "b", "c"] {
        let page = get(&client, &format!("{base}/f/{guess}")).await;
        assert_eq!(page.status(), StatusCode::NOT_FOUND);
    }
    // The limit is the address's, across links: a real one waits too.
    let page = get(&client, &format!("{base}/f/{token}")).await;
    assert_eq!(page.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(page.headers().contains_key("retry-after"));
}
