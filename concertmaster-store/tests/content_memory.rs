//! Submitted files through five nodes on SQLite, by reference: the
//! process's peak resident memory stays under 200 MB however large the
//! files, because no node and no part of the engine holds more than a
//! chunk of one at a time. A process of its own (this file is its own test
//! binary), so that the peak is this test's.
//!
//! `CONCERTMASTER_CONTENT_MB` sets the total (256 by default; 2048 for the
//! figure in RELIABILITY.md):
//! `CONCERTMASTER_CONTENT_MB=2048 cargo test -p concertmaster-store --all-features --release --test content_memory -- --nocapture`

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use async_trait::async_trait;
use concertmaster_core::{
    content::ContentRef, node::NodeCategory, Engine, Item, Node, NodeContext, NodeDescriptor,
    NodeError, NodeOutcome, NodeRegistry, Ports, RunStatus, TenantId, WorkflowDefinition,
};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, ReadBuf};

/// Peak resident memory the process may reach, in bytes.
const PEAK_BOUND: u64 = 200 * 1024 * 1024;
const FILE_MB: u64 = 128;

/// `/proc/self/status` field `name` (`VmHWM`, `VmRSS`), in bytes.
fn status(name: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("Linux /proc");
    status
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
        .expect("the field is there")
        * 1024
}

/// `left` bytes of a fixed pseudo-random sequence, made as they are read:
/// an upload the host streams into the content store.
struct Upload {
    left: u64,
    state: u64,
}

impl AsyncRead for Upload {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let n = (buf.remaining() as u64).min(self.left) as usize;
        let mut bytes = vec![0u8; n];
        for b in &mut bytes {
            self.state = self
                .state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            *b = (self.state >> 56) as u8;
        }
        buf.put_slice(&bytes);
        self.left -= n as u64;
        Poll::Ready(Ok(()))
    }
}

fn file_ref(item: &Item, field: &str) -> Result<ContentRef, NodeError> {
    item.get(field)
        .and_then(ContentRef::from_value)
        .ok_or_else(|| NodeError::fatal(format!("/{field} is not a file reference")))
}

fn failed(err: impl std::fmt::Display) -> NodeError {
    NodeError::retryable(err.to_string())
}

/// Reads `field` of every item to its end (size and SHA-256 checked on
/// the way) and marks the item.
struct Verify {
    field: String,
}

#[async_trait]
impl Node for Verify {
    async fn execute(&self, ctx: &NodeContext, mut input: Ports) -> Result<NodeOutcome, NodeError> {
        let mut items = input.take("main");
        for item in &mut items {
            let file = file_ref(item, &self.field)?;
            let mut reader = ctx.contents().read(&file);
            while reader.next_chunk().await.map_err(failed)?.is_some() {}
            item.insert(format!("{}Verified", self.field), json!(true));
        }
        Ok(NodeOutcome::main(items))
    }
}

/// Writes a scrambled copy of each file, chunk by chunk.
struct Scramble;

#[async_trait]
impl Node for Scramble {
    async fn execute(&self, ctx: &NodeContext, mut input: Ports) -> Result<NodeOutcome, NodeError> {
        let mut items = input.take("main");
        for item in &mut items {
            let file = file_ref(item, "file")?;
            let mut reader = ctx.contents().read(&file);
            let mut writer = ctx.contents().writer(file.media_type.clone());
            while let Some(mut chunk) = reader.next_chunk().await.map_err(failed)? {
                chunk.iter_mut().for_each(|b| *b ^= 0x5a);
                writer.write(&chunk).await.map_err(failed)?;
            }
            let scrambled = writer.finish().await.map_err(failed)?;
            item.insert("scrambled".into(), scrambled.to_value());
        }
        Ok(NodeOutcome::main(items))
    }
}

/// Deletes the originals once the copies exist.
struct DropOriginal;

#[async_trait]
impl Node for DropOriginal {
    async fn execute(&self, ctx: &NodeContext, mut input: Ports) -> Result<NodeOutcome, NodeError> {
        let mut items = input.take("main");
        for item in &mut items {
            if let Some(file) = item
                .remove("file")
                .as_ref()
                .and_then(ContentRef::from_value)
            {
                ctx.contents().delete(&file).await.map_err(failed)?;
            }
        }
        Ok(NodeOutcome::main(items))
    }
}

/// Adds up what came through.
struct Tally;

#[async_trait]
impl Node for Tally {
    async fn execute(&self, _: &NodeContext, mut input: Ports) -> Result<NodeOutcome, NodeError> {
        let items = input.take("main");
        let mut bytes = 0u64;
        for item in &items {
            bytes += file_ref(item, "scrambled")?.size;
        }
        let mut total = Item::new();
        total.insert("files".into(), json!(items.len()));
        total.insert("bytes".into(), json!(bytes));
        Ok(NodeOutcome::main(vec![total]))
    }
}

fn registry() -> NodeRegistry {
    let mut registry = NodeRegistry::new();
    registry
        .register(
            NodeDescriptor::new("verify", NodeCategory::Transform),
            |config: &Value| {
                Ok(Verify {
                    field: config["field"].as_str().unwrap_or("file").to_string(),
                })
            },
        )
        .unwrap();
    registry
        .register_node(
            NodeDescriptor::new("scramble", NodeCategory::Transform),
            Scramble,
        )
        .unwrap();
    registry
        .register_node(
            NodeDescriptor::new("drop_original", NodeCategory::Transform),
            DropOriginal,
        )
        .unwrap();
    registry
        .register_node(NodeDescriptor::new("tally", NodeCategory::Output), Tally)
        .unwrap();
    registry
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_move_through_five_nodes_in_bounded_memory() {
    let total_mb: u64 = std::env::var("CONCERTMASTER_CONTENT_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let files = total_mb.div_ceil(FILE_MB);
    let dir = tempfile::tempdir().unwrap();
    let store = concertmaster_store::SqliteStore::open(dir.path().join("files.db"))
        .await
        .unwrap();
    let engine = Engine::builder()
        .store(store.clone())
        .registry(registry())
        .build()
        .await
        .unwrap();
    let tenant = TenantId::new("acme");
    let baseline = status("VmRSS");
    let began = Instant::now();

    // The host streams each upload into the content store as it arrives.
    let contents = concertmaster_core::content::Contents::new(Arc::new(store), tenant.clone());
    let mut trigger = Vec::new();
    for i in 0..files {
        let upload = Upload {
            left: FILE_MB << 20,
            state: i,
        };
        let file = contents
            .put(upload, Some("application/octet-stream".into()))
            .await
            .unwrap();
        trigger.push(json!({ "name": format!("scan-{i}.tif"), "file": file.to_value() }));
    }
    let uploaded = began.elapsed();

    let def = WorkflowDefinition::from_value(json!({
        "id": "scans", "name": "Scans",
        "nodes": [
            { "id": "verify", "type": "verify" },
            { "id": "scramble", "type": "scramble" },
            { "id": "verify-copy", "type": "verify", "config": { "field": "scrambled" } },
            { "id": "drop", "type": "drop_original" },
            { "id": "tally", "type": "tally" }
        ],
        "edges": [
            { "id": "e1", "source": "verify", "target": "scramble" },
            { "id": "e2", "source": "scramble", "target": "verify-copy" },
            { "id": "e3", "source": "verify-copy", "target": "drop" },
            { "id": "e4", "source": "drop", "target": "tally" }
        ]
    }))
    .unwrap();
    let workflow = engine.publish(&tenant, def).await.unwrap();
    let run = engine
        .start(&workflow, Value::Array(trigger))
        .await
        .unwrap();
    let done = engine.finished(&tenant, run).await.unwrap();
    assert_eq!(done.status, RunStatus::Succeeded, "{:?}", done.error);
    let took = began.elapsed();

    let detail = engine.run(&tenant, run).await.unwrap();
    let tally = &detail.output("tally").unwrap().main_items()[0];
    assert_eq!(tally["files"], json!(files));
    assert_eq!(tally["bytes"], json!(files * (FILE_MB << 20)));
    let peak = status("VmHWM");
    println!(
        "{} MB in {files} files through 5 nodes on SQLite: uploaded in {uploaded:.1?}, \
         all done in {took:.1?}; resident before {} MB, peak {} MB",
        files * FILE_MB,
        baseline >> 20,
        peak >> 20
    );
    assert!(
        peak < PEAK_BOUND,
        "peak resident memory {} MB, more than {} MB",
        peak >> 20,
        PEAK_BOUND >> 20
    );
}
