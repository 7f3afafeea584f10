//! React Flow's `ReactFlowJsonObject` (`{nodes, edges, viewport}`, as
//! `@xyflow/react` v12 `toObject()` writes it) to a `WorkflowDefinition`
//! and back, without losing anything.
//!
//! What the engine reads is taken into the definition's own fields: a
//! node's `id`, `type`, `position`, and from its `data` the `config`,
//! `label`, `retry` and `timeoutMs`; an edge's `id`, `source`, `target` and
//! handles (its ports). Everything else (measured size, selection, styles,
//! other `data` keys, the viewport) is kept as it is in the `ui` maps the
//! engine does not read. Where a typed field would not write a value back
//! exactly as it came (a retry policy with defaults left out), the original
//! stays in `ui` too and is what comes back, as long as it still means the
//! same; a key that was absent is listed under `ui["$absent"]`. Nodes that
//! are drawing only ([`drawing_only`]: React Flow's `group`, a host's notes)
//! are kept under the definition's `ui["$drawing"]`, with their place.

use concertmaster_core::{
    node::MAIN_PORT,
    workflow::{Edge, NodeSpec, Position, RetryPolicy},
    NodeId, WorkflowDefinition,
};
use serde_json::{json, Map, Value};

/// Where absent keys are listed in a `ui` map.
const ABSENT: &str = "$absent";

/// Where a flow's drawing-only nodes are kept in the definition's `ui`,
/// each with its place among the nodes: `[{"at": 0, "node": {...}}]`.
const DRAWING: &str = "$drawing";

/// Whether a React Flow node is drawing only, not a workflow node: React
/// Flow's own `group` (a frame its children are placed in, by `parentId`)
/// or a node whose `data.drawingOnly` is `true` (a note a host adds).
/// Such nodes are kept as drawn, and the engine never sees them.
pub fn drawing_only(node: &Value) -> bool {
    node.get("type").and_then(Value::as_str) == Some("group")
        || node.pointer("/data/drawingOnly") == Some(&Value::Bool(true))
}

/// Why a React Flow object could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    /// The whole value has the wrong shape.
    #[error("not a React Flow object: {0}")]
    NotAFlow(String),
    /// One node has the wrong shape.
    #[error("node {index}: {message}")]
    Node {
        /// Its position in `nodes`.
        index: usize,
        /// What is wrong.
        message: String,
    },
    /// One edge has the wrong shape.
    #[error("edge {index}: {message}")]
    Edge {
        /// Its position in `edges`.
        index: usize,
        /// What is wrong.
        message: String,
    },
}

/// The definition drawn in `flow`: `base`'s id, name and the rest, with
/// the nodes and edges of `flow`.
pub fn to_definition(
    flow: &Value,
    base: &WorkflowDefinition,
) -> Result<WorkflowDefinition, ConvertError> {
    into_definition(flow.clone(), base)
}

/// [`to_definition`] of a flow the caller gives away: no copy of it is
/// made (a thousand-node drawing is a few hundred kilobytes).
pub fn into_definition(
    flow: Value,
    base: &WorkflowDefinition,
) -> Result<WorkflowDefinition, ConvertError> {
    let Value::Object(mut rest) = flow else {
        return Err(ConvertError::NotAFlow(
            "expected an object with nodes and edges".into(),
        ));
    };
    let had = |key: &str| rest.contains_key(key);
    let absent: Vec<&str> = ["nodes", "edges"].into_iter().filter(|k| !had(k)).collect();
    let nodes = match rest.remove("nodes") {
        Some(Value::Array(nodes)) => nodes,
        None => Vec::new(),
        Some(_) => return Err(ConvertError::NotAFlow("`nodes` is not an array".into())),
    };
    let edges = match rest.remove("edges") {
        Some(Value::Array(edges)) => edges,
        None => Vec::new(),
        Some(_) => return Err(ConvertError::NotAFlow("`edges` is not an array".into())),
    };
    let mut def = base.clone();
    let mut drawing = Vec::new();
    def.nodes = Vec::with_capacity(nodes.len());
    for (index, node) in nodes.into_iter().enumerate() {
        if drawing_only(&node) {
            drawing.push(json!({ "at": index, "node": node }));
            continue;
        }
        def.nodes
            .push(node_spec(node).map_err(|message| ConvertError::Node { index, message })?);
    }
    if !drawing.is_empty() {
        rest.insert(DRAWING.into(), Value::Array(drawing));
    }
    def.edges = edges
        .into_iter()
        .enumerate()
        .map(|(index, edge)| {
            edge_spec(edge).map_err(|message| ConvertError::Edge { index, message })
        })
        .collect::<Result<_, _>>()?;
    if !absent.is_empty() {
        rest.insert(ABSENT.into(), json!(absent));
    }
    def.ui = rest;
    Ok(def)
}

/// The React Flow object of `def`: what [`to_definition`] took, given
/// back. A node without a position (a definition written by hand) is
/// placed by a layered layout.
pub fn from_definition(def: &WorkflowDefinition) -> Value {
    let mut flow = def.ui.clone();
    let absent = take_absent(&mut flow);
    let drawing = match flow.remove(DRAWING) {
        Some(Value::Array(drawing)) => drawing,
        _ => Vec::new(),
    };
    let layout = layered_layout(def);
    if !absent.iter().any(|k| k == "nodes") || !drawing.is_empty() {
        let mut nodes: Vec<Value> = def
            .nodes
            .iter()
            .map(|node| rf_node(node, &layout))
            .collect();
        // Back where they were drawn: a group before the nodes in it, as
        // React Flow requires.
        for kept in drawing {
            let at = kept["at"].as_u64().map_or(nodes.len(), |at| at as usize);
            if let Some(node) = kept.get("node") {
                nodes.insert(at.min(nodes.len()), node.clone());
            }
        }
        flow.insert("nodes".into(), Value::Array(nodes));
    }
    if !absent.iter().any(|k| k == "edges") {
        flow.insert(
            "edges".into(),
            Value::Array(def.edges.iter().map(rf_edge).collect()),
        );
    }
    Value::Object(flow)
}

fn take_absent(ui: &mut Map<String, Value>) -> Vec<String> {
    match ui.remove(ABSENT) {
        Some(Value::Array(keys)) => keys
            .into_iter()
            .filter_map(|k| k.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

fn node_spec(node: Value) -> Result<NodeSpec, String> {
    let Value::Object(mut rest) = node else {
        return Err("not an object".into());
    };
    let mut absent: Vec<&str> = Vec::new();
    let id = match rest.remove("id") {
        Some(Value::String(id)) => id,
        Some(_) => return Err("`id` is not a string".into()),
        None => return Err("it has no `id`".into()),
    };
    let node_type = match rest.remove("type") {
        Some(Value::String(t)) => t,
        Some(other) => {
            // Not a type name: kept as drawn, and the node has no type.
            rest.insert("type".into(), other);
            String::new()
        }
        None => {
            absent.push("type");
            String::new()
        }
    };
    let mut spec = NodeSpec::new(NodeId::from(id.as_str()), node_type);
    match rest.remove("position") {
        Some(original) => match position(&original) {
            Some(pos) => {
                if position_json(&pos) != original {
                    rest.insert("position".into(), original);
                }
                spec.position = Some(pos);
            }
            None => {
                rest.insert("position".into(), original);
            }
        },
        None => absent.push("position"),
    }
    match rest.remove("data") {
        Some(Value::Object(mut data)) => {
            match data.remove("config") {
                Some(config) => spec.config = config,
                None => absent.push("data.config"),
            }
            match data.remove("label") {
                Some(Value::String(label)) => spec.label = Some(label),
                Some(other) => {
                    data.insert("label".into(), other);
                }
                None => {}
            }
            if let Some(original) = data.remove("retry") {
                if let Ok(policy) = serde_json::from_value::<RetryPolicy>(original.clone()) {
                    if serde_json::to_value(&policy).ok().as_ref() != Some(&original) {
                        data.insert("retry".into(), original);
                    }
                    spec.retry = Some(policy);
                } else {
                    data.insert("retry".into(), original);
                }
            }
            match data.remove("timeoutMs") {
                Some(Value::Number(n)) if n.as_u64().is_some() => spec.timeout_ms = n.as_u64(),
                Some(other) => {
                    data.insert("timeoutMs".into(), other);
                }
                None => {}
            }
            if !data.is_empty() {
                rest.insert("data".into(), Value::Object(data));
            }
        }
        Some(other) => {
            rest.insert("data".into(), other);
            absent.push("data.config");
        }
        None => absent.push("data"),
    }
    if !absent.is_empty() {
        rest.insert(ABSENT.into(), json!(absent));
    }
    spec.ui = rest;
    Ok(spec)
}

fn rf_node(spec: &NodeSpec, layout: &std::collections::HashMap<&str, Position>) -> Value {
    let mut node = spec.ui.clone();
    let absent = take_absent(&mut node);
    let is_absent = |key: &str| absent.iter().any(|k| k == key);
    node.insert("id".into(), json!(spec.id.as_str()));
    if !is_absent("type") && !node.contains_key("type") {
        node.insert("type".into(), json!(spec.node_type));
    }
    if !is_absent("position") {
        let kept = node.get("position").and_then(position);
        match (spec.position, kept) {
            (Some(pos), Some(kept)) if kept == pos => {}
            (Some(pos), _) => {
                node.insert("position".into(), position_json(&pos));
            }
            (None, _) if node.contains_key("position") => {}
            (None, _) => {
                let pos = layout
                    .get(spec.id.as_str())
                    .copied()
                    .unwrap_or(Position { x: 0.0, y: 0.0 });
                node.insert("position".into(), position_json(&pos));
            }
        }
    }
    if !is_absent("data") {
        let mut data = match node.remove("data") {
            Some(Value::Object(data)) => data,
            Some(other) => {
                // Drawn as a non-object: given back as it was.
                node.insert("data".into(), other);
                return Value::Object(node);
            }
            None => Map::new(),
        };
        if !is_absent("data.config") {
            data.insert("config".into(), spec.config.clone());
        }
        if let Some(label) = &spec.label {
            data.insert("label".into(), json!(label));
        }
        if let Some(policy) = &spec.retry {
            let kept = data
                .get("retry")
                .and_then(|r| serde_json::from_value::<RetryPolicy>(r.clone()).ok());
            if kept.as_ref() != Some(policy) {
                data.insert(
                    "retry".into(),
                    serde_json::to_value(policy).unwrap_or(Value::Null),
                );
            }
        }
        if let Some(timeout) = spec.timeout_ms {
            data.insert("timeoutMs".into(), json!(timeout));
        }
        node.insert("data".into(), Value::Object(data));
    }
    Value::Object(node)
}

fn edge_spec(edge: Value) -> Result<Edge, String> {
    let Value::Object(mut rest) = edge else {
        return Err("not an object".into());
    };
    let mut absent: Vec<&str> = Vec::new();
    let take_string = |rest: &mut Map<String, Value>, key: &str| -> Result<String, String> {
        match rest.remove(key) {
            Some(Value::String(s)) => Ok(s),
            Some(_) => Err(format!("`{key}` is not a string")),
            None => Err(format!("it has no `{key}`")),
        }
    };
    let source = take_string(&mut rest, "source")?;
    let target = take_string(&mut rest, "target")?;
    let id = match rest.remove("id") {
        Some(Value::String(id)) => Some(id),
        Some(other) => {
            rest.insert("id".into(), other);
            None
        }
        None => {
            absent.push("id");
            None
        }
    };
    let mut edge = Edge::new(source.as_str(), target.as_str());
    edge.id = id;
    for (key, port) in [
        ("sourceHandle", &mut edge.source_port),
        ("targetHandle", &mut edge.target_port),
    ] {
        match rest.remove(key) {
            Some(Value::String(handle)) => *port = handle,
            // `null` or another value: the main port, the value kept.
            Some(other) => {
                rest.insert(key.into(), other);
            }
            None => absent.push(key),
        }
    }
    if !absent.is_empty() {
        rest.insert(ABSENT.into(), json!(absent));
    }
    edge.ui = rest;
    Ok(edge)
}

fn rf_edge(edge: &Edge) -> Value {
    let mut rf = edge.ui.clone();
    let absent = take_absent(&mut rf);
    let id = edge.key();
    let id_absent = edge.id.is_none() && absent.iter().any(|k| k == "id");
    if edge.id.is_some() || !(rf.contains_key("id") || id_absent) {
        rf.insert("id".into(), json!(id));
    }
    rf.insert("source".into(), json!(edge.source.as_str()));
    rf.insert("target".into(), json!(edge.target.as_str()));
    for (key, port) in [
        ("sourceHandle", &edge.source_port),
        ("targetHandle", &edge.target_port),
    ] {
        let kept_as_main =
            port == MAIN_PORT && (rf.contains_key(key) || absent.iter().any(|k| k == key));
        if !kept_as_main {
            rf.insert(key.into(), json!(port));
        }
    }
    Value::Object(rf)
}

/// `{x, y}` with two numbers and nothing else.
fn position(value: &Value) -> Option<Position> {
    let map = value.as_object()?;
    if map.len() != 2 {
        return None;
    }
    Some(Position {
        x: map.get("x")?.as_f64()?,
        y: map.get("y")?.as_f64()?,
    })
}

/// A position as JavaScript writes it: whole numbers without a fraction.
fn position_json(pos: &Position) -> Value {
    json!({ "x": js_number(pos.x), "y": js_number(pos.y) })
}

fn js_number(n: f64) -> Value {
    // 2^53: the whole numbers a JavaScript number holds exactly.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    if n.fract() == 0.0 && n.abs() <= EXACT {
        // Exact: the value is whole and within i64.
        #[allow(clippy::cast_possible_truncation)]
        let whole = n as i64;
        json!(whole)
    } else {
        json!(n)
    }
}

/// Positions for nodes a definition gives none: columns by depth from
/// the roots, rows in definition order.
fn layered_layout(def: &WorkflowDefinition) -> std::collections::HashMap<&str, Position> {
    use std::collections::HashMap;
    let mut depth: HashMap<&str, usize> = def.nodes.iter().map(|n| (n.id.as_str(), 0)).collect();
    // Longest path by relaxation; bounded by the node count, so a cycle
    // (which validation reports) cannot loop for ever.
    for _ in 0..def.nodes.len() {
        let mut changed = false;
        for edge in &def.edges {
            let (Some(&s), Some(&t)) = (
                depth.get(edge.source.as_str()),
                depth.get(edge.target.as_str()),
            ) else {
                continue;
            };
            if t < s + 1 {
                depth.insert(edge.target.as_str(), s + 1);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let mut rows: HashMap<usize, usize> = HashMap::new();
    let mut out = HashMap::new();
    for node in &def.nodes {
        let column = depth.get(node.id.as_str()).copied().unwrap_or(0);
        let row = rows.entry(column).or_insert(0);
        #[allow(clippy::cast_precision_loss)]
        out.insert(
            node.id.as_str(),
            Position {
                x: 260.0 * column as f64,
                y: 120.0 * *row as f64,
            },
        );
        *row += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn base() -> WorkflowDefinition {
        WorkflowDefinition::from_json(r#"{"id": "w", "name": "W", "nodes": []}"#).unwrap()
    }

    /// What `toObject()` of @xyflow/react 12 writes for a small graph.
    fn drawn() -> Value {
        json!({
            "nodes": [
                { "id": "schedule-1", "type": "schedule", "position": { "x": 40, "y": 80.5 },
                  "data": { "label": "Every Monday", "config": { "cron": "0 8 * * 1", "timezone": "Europe/Berlin" }, "color": "#0a0" },
                  "measured": { "width": 180, "height": 52 }, "selected": false, "dragging": false },
                { "id": "send-1", "type": "send_form", "position": { "x": 320, "y": 80 },
                  "data": { "config": {}, "retry": { "maxAttempts": 3 }, "timeoutMs": 5000 },
                  "measured": { "width": 180, "height": 52 }, "handles": [{ "id": "main", "type": "source", "position": "right", "x": 180, "y": 26 }] }
            ],
            "edges": [
                { "id": "e1", "source": "schedule-1", "target": "send-1", "sourceHandle": null, "targetHandle": null,
                  "label": "weekly", "data": { "note": "x" }, "animated": true },
                { "id": "e2", "source": "send-1", "sourceHandle": "error", "target": "schedule-1" }
            ],
            "viewport": { "x": 12.5, "y": -3, "zoom": 0.75 }
        })
    }

    #[test]
    fn what_the_engine_reads_goes_into_the_definition() {
        let def = to_definition(&drawn(), &base()).unwrap();
        let schedule = def.find_node("schedule-1").unwrap();
        assert_eq!(schedule.node_type, "schedule");
        assert_eq!(schedule.config["cron"], "0 8 * * 1");
        assert_eq!(schedule.label.as_deref(), Some("Every Monday"));
        assert_eq!(schedule.position, Some(Position { x: 40.0, y: 80.5 }));
        let send = def.find_node("send-1").unwrap();
        assert_eq!(send.retry.as_ref().unwrap().max_attempts, 3);
        assert_eq!(send.timeout_ms, Some(5000));
        assert_eq!(def.edges[0].source_port, "main");
        assert_eq!(def.edges[1].source_port, "error");
        assert_eq!(def.edges[1].id.as_deref(), Some("e2"));
        assert_eq!(def.ui["viewport"]["zoom"], 0.75);
        assert_eq!(schedule.ui["measured"]["width"], 180);
        assert_eq!(schedule.ui["data"]["color"], "#0a0");
        // And the engine's own JSON reads it back.
        let json = def.to_json();
        assert_eq!(WorkflowDefinition::from_json(&json).unwrap(), def);
    }

    #[test]
    fn a_drawn_graph_comes_back_exactly() {
        let def = to_definition(&drawn(), &base()).unwrap();
        assert_eq!(from_definition(&def), drawn());
    }

    #[test]
    fn groups_and_notes_stay_in_the_drawing_and_out_of_the_workflow() {
        let drawn = json!({
            "nodes": [
                { "id": "frame", "type": "group", "position": { "x": 0, "y": 0 },
                  "style": { "width": 400, "height": 200 }, "data": { "label": "Onboarding" } },
                { "id": "send-1", "type": "send_form", "position": { "x": 20, "y": 40 },
                  "parentId": "frame", "extent": "parent", "data": { "config": {} } },
                { "id": "note", "type": "sticky", "position": { "x": 500, "y": 0 },
                  "data": { "drawingOnly": true, "text": "ask legal first" } }
            ],
            "edges": [],
            "viewport": { "x": 0, "y": 0, "zoom": 1 }
        });
        let def = to_definition(&drawn, &base()).unwrap();
        assert_eq!(
            def.nodes.iter().map(|n| n.id.as_str()).collect::<Vec<_>>(),
            ["send-1"]
        );
        assert_eq!(def.nodes[0].ui["parentId"], "frame");
        assert_eq!(from_definition(&def), drawn);
        let json = def.to_json();
        let read = WorkflowDefinition::from_json(&json).unwrap();
        assert_eq!(
            from_definition(&read),
            drawn,
            "and through the engine's JSON"
        );
    }

    #[test]
    fn an_edited_definition_wins_over_what_was_kept() {
        let mut def = to_definition(&drawn(), &base()).unwrap();
        let send = def
            .nodes
            .iter_mut()
            .find(|n| n.id.as_str() == "send-1")
            .unwrap();
        send.retry = Some(RetryPolicy::attempts(5));
        send.position = Some(Position { x: 1.0, y: 2.0 });
        let flow = from_definition(&def);
        assert_eq!(flow["nodes"][1]["data"]["retry"]["maxAttempts"], 5);
        assert_eq!(flow["nodes"][1]["position"], json!({ "x": 1, "y": 2 }));
    }

    #[test]
    fn a_hand_written_definition_is_laid_out_in_columns() {
        let def = WorkflowDefinition::from_json(
            r#"{"id": "w", "name": "W", "nodes": [{"id": "a", "type": "manual"}, {"id": "b", "type": "x"}, {"id": "c", "type": "x"}],
                "edges": [{"source": "a", "target": "b"}, {"source": "a", "target": "c"}]}"#,
        )
        .unwrap();
        let flow = from_definition(&def);
        assert_eq!(flow["nodes"][0]["position"], json!({ "x": 0, "y": 0 }));
        assert_eq!(flow["nodes"][1]["position"], json!({ "x": 260, "y": 0 }));
        assert_eq!(flow["nodes"][2]["position"], json!({ "x": 260, "y": 120 }));
        assert_eq!(flow["edges"][0]["id"], "a:main->b:main");
        assert_eq!(flow["nodes"][1]["data"], json!({ "config": {} }));
    }

    #[test]
    fn malformed_flows_are_refused_with_the_place() {
        let err = to_definition(&json!({ "nodes": [{ "type": "x" }] }), &base()).unwrap_err();
        assert_eq!(err.to_string(), "node 0: it has no `id`");
        let err = to_definition(
            &json!({ "edges": [{ "source": "a", "target": 3 }] }),
            &base(),
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "edge 0: `target` is not a string");
        assert!(to_definition(&json!([1]), &base()).is_err());
    }

    fn scalar() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            (-1_000_000i64..1_000_000).prop_map(Value::from),
            // Non-whole floats only: JavaScript writes whole ones as integers.
            (-1.0e6f64..1.0e6)
                .prop_filter("fractional", |f| f.fract() != 0.0)
                .prop_map(Value::from),
            "[a-z#]{0,6}".prop_map(Value::from),
        ]
    }

    fn json_value() -> impl Strategy<Value = Value> {
        scalar().prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
                prop::collection::btree_map("[a-z]{1,5}", inner, 0..3)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn maybe<T: std::fmt::Debug + Clone>(
        s: impl Strategy<Value = T>,
    ) -> impl Strategy<Value = Option<T>> {
        prop::option::of(s)
    }

    fn number() -> impl Strategy<Value = Value> {
        prop_oneof![
            (-5000i64..5000).prop_map(Value::from),
            (-5000.0f64..5000.0)
                .prop_filter("fractional", |f| f.fract() != 0.0)
                .prop_map(Value::from),
        ]
    }

    fn rf_node_strategy() -> impl Strategy<Value = Value> {
        (
            "[a-z]{1,4}-[0-9]{1,3}",
            maybe(prop_oneof![ "[a-z_]{1,10}".prop_map(Value::from), scalar()]),
            maybe(prop_oneof![
                (number(), number()).prop_map(|(x, y)| json!({ "x": x, "y": y })),
                json_value(),
            ]),
            maybe(prop_oneof![
                (
                    maybe(json_value()),
                    maybe(prop_oneof!["[A-Za-z ]{0,8}".prop_map(Value::from), scalar()]),
                    maybe(prop_oneof![
                        (1u32..6).prop_map(|n| json!({ "maxAttempts": n })),
                        (1u32..6, 1u64..5000).prop_map(|(n, ms)| json!({ "maxAttempts": n, "initialBackoffMs": ms, "maxBackoffMs": 60000, "multiplier": 2.5, "jitter": 0.25 })),
                        json_value(),
                    ]),
                    maybe(prop_oneof![(0u64..100_000).prop_map(Value::from), scalar()]),
                    prop::collection::btree_map("[a-z]{1,6}", json_value(), 0..3),
                )
                    .prop_map(|(config, label, retry, timeout, extra)| {
                        let mut data: Map<String, Value> = extra.into_iter().collect();
                        for (key, value) in [("config", config), ("label", label), ("retry", retry), ("timeoutMs", timeout)] {
                            if let Some(value) = value {
                                data.insert(key.into(), value);
                            }
                        }
                        Value::Object(data)
                    }),
                scalar(),
            ]),
            prop::collection::btree_map("(measured|selected|dragging|width|zIndex|handles|style)", json_value(), 0..3),
        )
            .prop_map(|(id, node_type, position, data, extra)| {
                let mut node: Map<String, Value> = extra.into_iter().collect();
                node.insert("id".into(), json!(id));
                for (key, value) in [("type", node_type), ("position", position), ("data", data)] {
                    if let Some(value) = value {
                        node.insert(key.into(), value);
                    }
                }
                Value::Object(node)
            })
    }

    fn rf_edge_strategy() -> impl Strategy<Value = Value> {
        let handle = || {
            maybe(prop_oneof![
                Just(Value::Null),
                Just(json!("main")),
                "[a-z]{1,5}".prop_map(Value::from),
            ])
        };
        (
            maybe(prop_oneof!["e[0-9]{1,3}".prop_map(Value::from), scalar()]),
            "[a-z]{1,4}",
            "[a-z]{1,4}",
            handle(),
            handle(),
            prop::collection::btree_map(
                "(label|data|animated|type|style|markerEnd)",
                json_value(),
                0..3,
            ),
        )
            .prop_map(|(id, source, target, sh, th, extra)| {
                let mut edge: Map<String, Value> = extra.into_iter().collect();
                edge.insert("source".into(), json!(source));
                edge.insert("target".into(), json!(target));
                for (key, value) in [("id", id), ("sourceHandle", sh), ("targetHandle", th)] {
                    if let Some(value) = value {
                        edge.insert(key.into(), value);
                    }
                }
                Value::Object(edge)
            })
    }

    fn flow_strategy() -> impl Strategy<Value = Value> {
        (
            maybe(prop::collection::vec(rf_node_strategy(), 0..5)),
            maybe(prop::collection::vec(rf_edge_strategy(), 0..5)),
            maybe(
                (number(), number(), 0.1f64..4.0)
                    .prop_map(|(x, y, z)| json!({ "x": x, "y": y, "zoom": z })),
            ),
        )
            .prop_map(|(nodes, edges, viewport)| {
                let mut flow = Map::new();
                for (key, value) in [
                    ("nodes", nodes.map(Value::from)),
                    ("edges", edges.map(Value::from)),
                    ("viewport", viewport),
                ] {
                    if let Some(value) = value {
                        flow.insert(key.into(), value);
                    }
                }
                Value::Object(flow)
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn react_flow_to_definition_and_back_is_identity(flow in flow_strategy()) {
            let def = to_definition(&flow, &base()).unwrap();
            // Through the engine's own JSON as well: what is saved is what comes back.
            let saved = WorkflowDefinition::from_json(&def.to_json()).unwrap();
            prop_assert_eq!(from_definition(&saved), flow);
        }
    }
}
