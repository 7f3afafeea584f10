// Writes the benchmark workloads as n8n workflows, one JSON file each, into
// the directory given: `node workflows.mjs DIR`, then `n8n import:workflow
// --separate --input=DIR`. Each is started by a webhook that answers with
// the last node's first item once the execution ends.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { randomUUID } from "node:crypto";

const dir = process.argv[2];
if (!dir) {
  console.error("usage: node workflows.mjs DIR");
  process.exit(2);
}
mkdirSync(dir, { recursive: true });

const webhook = (path) => ({
  name: "Webhook",
  type: "n8n-nodes-base.webhook",
  typeVersion: 2,
  webhookId: randomUUID(),
  parameters: {
    httpMethod: "POST",
    path,
    responseMode: "lastNode",
    responseData: "firstEntryJson",
    options: {},
  },
});

// An "Edit Fields (Set)" node: the trivial computation of every step.
const set = (name, field, expression, type) => ({
  name,
  type: "n8n-nodes-base.set",
  typeVersion: 3.4,
  parameters: {
    mode: "manual",
    assignments: {
      assignments: [{ id: randomUUID(), name: field, value: `={{ ${expression} }}`, type }],
    },
    options: {},
  },
});

function workflow(id, name, nodes) {
  const connections = {};
  nodes.forEach((node, i) => {
    node.id = randomUUID();
    node.position = [i * 200, 0];
    if (i + 1 < nodes.length) {
      connections[node.name] = { main: [[{ node: nodes[i + 1].name, type: "main", index: 0 }]] };
    }
  });
  return { id, name, nodes, connections, active: true, settings: { executionOrder: "v1" } };
}

function chain(id, path, steps) {
  const nodes = [webhook(path), set("Step 1", "x", "$json.body.x + 1", "number")];
  for (let i = 2; i <= steps; i++) nodes.push(set(`Step ${i}`, "x", "$json.x + 1", "number"));
  return workflow(id, `cm ${path}`, nodes);
}

// n8n fans out over items: one node makes 1,000 items, the next runs once
// per item, Summarize joins them.
const fanOut = workflow("cmFanout10000001", "cm fanout1000", [
  webhook("cm-fanout1000"),
  set("Make items", "items", "Array.from({ length: 1000 }, () => $json.body.x)", "array"),
  {
    name: "Split Out",
    type: "n8n-nodes-base.splitOut",
    typeVersion: 1,
    parameters: { fieldToSplitOut: "items", options: { destinationFieldName: "x" } },
  },
  set("Step", "x", "$json.x + 1", "number"),
  {
    name: "Summarize",
    type: "n8n-nodes-base.summarize",
    typeVersion: 1.1,
    parameters: { fieldsToSummarize: { values: [{ aggregation: "sum", field: "x" }] }, options: {} },
  },
]);

// The wait workload: the webhook is answered with the execution's resume
// URL, the Wait node waits until that URL is called (answering the caller
// once the execution ended), and a Set node adds one to the sum of the
// start's and the resume's `x`.
const wait = workflow("cmWait0000000001", "cm wait", [
  { ...webhook("cm-wait"), parameters: { httpMethod: "POST", path: "cm-wait", responseMode: "responseNode", options: {} } },
  {
    name: "Respond",
    type: "n8n-nodes-base.respondToWebhook",
    typeVersion: 1.1,
    parameters: {
      respondWith: "json",
      responseBody: "={{ { resumeUrl: $execution.resumeUrl } }}",
      options: {},
    },
  },
  {
    name: "Wait",
    type: "n8n-nodes-base.wait",
    typeVersion: 1.1,
    webhookId: randomUUID(),
    parameters: {
      resume: "webhook",
      httpMethod: "POST",
      responseMode: "lastNode",
      responseData: "firstEntryJson",
      options: {},
    },
  },
  set("Step", "x", "$('Webhook').first().json.body.x + $json.body.x + 1", "number"),
]);

for (const wf of [chain("cmThree000000001", "cm-three", 3), chain("cmChain400000001", "cm-chain40", 40), fanOut, wait]) {
  writeFileSync(join(dir, `${wf.id}.json`), JSON.stringify(wf, null, 2));
}
