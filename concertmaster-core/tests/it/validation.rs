//! Validation on publish: every problem at once, each tied to its node or edge.

use concertmaster_core::{
    limits::{MAX_DEFINITION_BYTES, MAX_EDGES, MAX_NODES},
    validate::{diagnose, validate, IssueKind},
    Error, TenantId, WorkflowDefinition, WorkflowId,
};
use serde_json::json;

use crate::support::{registry, workflow, Harness, Log};

fn kinds(def: &WorkflowDefinition) -> Vec<(IssueKind, String)> {
    let log = std::sync::Arc::new(Log::default());
    diagnose(def, &registry(&log))
        .into_iter()
        .map(|i| {
            (
                i.kind,
                i.node.map(|n| n.to_string()).or(i.edge).unwrap_or_default(),
            )
        })
        .collect()
}

#[test]
fn every_problem_is_reported_with_its_node_or_edge() {
    let def = WorkflowDefinition::from_value(json!({
        "id": "broken", "name": "Broken",
        "nodes": [
            {"id": "start", "type": "start"},
            {"id": "start", "type": "pass"},
            {"id": "typo", "type": "brnch"},
            {"id": "b", "type": "branch", "config": {"take": "maybe"}},
            {"id": "j", "type": "join"},
            {"id": "r", "type": "flaky", "config": {"failures": 1}, "retry": {"maxAttempts": 0}},
        ],
        "edges": [
            {"id": "e1", "source": "start", "target": "b"},
            {"id": "e2", "source": "b", "sourcePort": "yes", "target": "j", "targetPort": "left"},
            {"id": "e3", "source": "b", "sourcePort": "true", "target": "j", "targetPort": "middle"},
            {"id": "e4", "source": "j", "target": "ghost"},
            {"id": "e5", "source": "r", "target": "start"},
        ]
    }))
    .expect("parses");
    let found = kinds(&def);
    let expected = [
        (IssueKind::DuplicateNodeId, "start"),
        (IssueKind::UnknownNodeType, "typo"),
        (IssueKind::InvalidConfig, "b"),
        (IssueKind::InvalidPolicy, "r"),
        (IssueKind::UnknownPort, "e2"),
        (IssueKind::UnknownPort, "e3"),
        (IssueKind::DanglingEdge, "e4"),
        (IssueKind::TriggerWithInputs, "e5"),
    ];
    for (kind, at) in expected {
        assert!(
            found.contains(&(kind, at.to_string())),
            "expected {kind:?} at {at}; found {found:?}"
        );
    }
    assert_eq!(found.len(), expected.len(), "{found:?}");
}

#[test]
fn messages_say_what_to_fix() {
    let def = WorkflowDefinition::from_value(workflow(
        "w",
        &[("start", "start", json!({})), ("typo", "brnch", json!({}))],
        &[("start", "typo")],
    ))
    .expect("parses");
    let log = std::sync::Arc::new(Log::default());
    let err = validate(&def, &registry(&log)).expect_err("an unknown type is refused");
    let text = err.to_string();
    assert!(
        text.starts_with("workflow w is invalid (1 problem)"),
        "{text}"
    );
    assert!(
        text.contains("node typo: unknown node type \"brnch\"; did you mean branch?"),
        "{text}"
    );
}

#[test]
fn config_errors_carry_json_pointers() {
    let def = WorkflowDefinition::from_value(workflow(
        "w",
        &[
            ("start", "start", json!({"pauseMs": -1})),
            ("ask", "await", json!({"prefix": "p", "extra": 1})),
            ("b", "branch", json!({})),
        ],
        &[("start", "ask"), ("ask", "b")],
    ))
    .expect("parses");
    let log = std::sync::Arc::new(Log::default());
    let issues = diagnose(&def, &registry(&log));
    let pointers: Vec<(String, String)> = issues
        .iter()
        .filter(|i| i.kind == IssueKind::InvalidConfig)
        .map(|i| {
            (
                i.node.as_ref().map(|n| n.to_string()).unwrap_or_default(),
                i.pointer.clone().unwrap_or_default(),
            )
        })
        .collect();
    // Schema violation (/pauseMs), a factory refusal (serde names the unknown field), a missing required field.
    assert!(
        pointers.contains(&("start".into(), "/pauseMs".into())),
        "{issues:#?}"
    );
    assert!(pointers.iter().any(|(n, _)| n == "ask"), "{issues:#?}");
    assert!(pointers.contains(&("b".into(), "".into())), "{issues:#?}");
}

#[test]
fn cycles_name_every_node_on_them() {
    let def = WorkflowDefinition::from_value(workflow(
        "w",
        &[
            ("start", "start", json!({})),
            ("a", "pass", json!({})),
            ("b", "pass", json!({})),
            ("c", "pass", json!({})),
            ("self", "pass", json!({})),
        ],
        &[
            ("start", "a"),
            ("a", "b"),
            ("b", "c"),
            ("c", "a"),
            ("self", "self"),
        ],
    ))
    .expect("parses");
    let log = std::sync::Arc::new(Log::default());
    let issues: Vec<_> = diagnose(&def, &registry(&log))
        .into_iter()
        .filter(|i| i.kind == IssueKind::Cycle)
        .collect();
    assert_eq!(issues.len(), 2, "{issues:#?}");
    assert!(
        issues[0].message.contains("nodes a, b, c form a cycle"),
        "{}",
        issues[0].message
    );
    assert!(
        issues[1].message.contains("nodes self form a cycle"),
        "{}",
        issues[1].message
    );
}

#[test]
fn an_empty_workflow_is_refused() {
    let def = WorkflowDefinition::new("empty", "Empty");
    assert_eq!(kinds(&def), vec![(IssueKind::EmptyWorkflow, String::new())]);
}

#[tokio::test]
async fn publishing_an_invalid_workflow_stores_nothing() {
    let h = Harness::new().await;
    let def = WorkflowDefinition::from_value(workflow("w", &[("x", "nope", json!({}))], &[]))
        .expect("parses");
    let err = h.engine.publish(&h.tenant, def).await.expect_err("refused");
    assert!(
        matches!(err, Error::Validation(ref v) if v.issues.len() == 1),
        "{err}"
    );
    assert!(h
        .engine
        .versions(&h.tenant, &WorkflowId::new("w"))
        .await
        .expect("store answers")
        .is_empty());
}

#[tokio::test]
async fn publishing_numbers_versions_and_refuses_another_tenants_definition() {
    let h = Harness::new().await;
    let json = workflow("w", &[("start", "start", json!({}))], &[]);
    assert_eq!(h.publish(json.clone()).await.version(), 1);
    assert_eq!(h.publish(json.clone()).await.version(), 2);
    assert_eq!(
        h.engine
            .versions(&h.tenant, &WorkflowId::new("w"))
            .await
            .expect("versions"),
        vec![1, 2]
    );

    let mut def = WorkflowDefinition::from_value(json).expect("parses");
    def.tenant = Some(TenantId::new("other"));
    let err = h
        .engine
        .publish(&h.tenant, def)
        .await
        .expect_err("another tenant's definition is refused");
    assert!(matches!(err, Error::TenantMismatch { .. }), "{err}");
    let err = h
        .engine
        .workflow(&TenantId::new("other"), &WorkflowId::new("w"), None)
        .await
        .expect_err("tenant other has no workflow w");
    assert_eq!(
        err.to_string(),
        "workflow w not found for tenant other; publish it first"
    );
}

#[test]
fn a_workflow_too_large_is_refused_before_anything_is_built() {
    let log = std::sync::Arc::new(Log::default());
    let nodes: Vec<_> = (0..=MAX_NODES)
        .map(|i| (format!("n{i}"), "pass", json!({})))
        .collect();
    let refs: Vec<_> = nodes
        .iter()
        .map(|(id, t, c)| (id.as_str(), *t, c.clone()))
        .collect();
    let def = WorkflowDefinition::from_value(workflow("huge", &refs, &[])).expect("parses");
    let err = validate(&def, &registry(&log)).unwrap_err();
    assert_eq!(err.issues.len(), 1, "one issue, nothing else checked");
    assert_eq!(err.issues[0].kind, IssueKind::TooLarge);
    assert!(err.issues[0]
        .message
        .contains(&format!("{} nodes", MAX_NODES + 1)));
    assert_eq!(diagnose(&def, &registry(&log))[0].kind, IssueKind::TooLarge);

    let edges: Vec<(String, String)> = (0..=MAX_EDGES)
        .map(|i| (format!("a{i}"), "b".to_string()))
        .collect();
    let edge_refs: Vec<_> = edges
        .iter()
        .map(|(s, t)| (s.as_str(), t.as_str()))
        .collect();
    let def =
        WorkflowDefinition::from_value(workflow("wide", &[("b", "pass", json!({}))], &edge_refs))
            .expect("parses");
    assert_eq!(
        validate(&def, &registry(&log)).unwrap_err().issues[0].kind,
        IssueKind::TooLarge
    );
}

#[test]
fn definition_text_past_the_limit_is_refused_unread() {
    let padding = " ".repeat(MAX_DEFINITION_BYTES);
    let text = format!(r#"{{"id": "w", "name": "W", "nodes": [], "edges": []}}{padding}"#);
    let err = WorkflowDefinition::from_json(&text).unwrap_err();
    assert!(err.message.contains("more than the"), "{err}");
}
