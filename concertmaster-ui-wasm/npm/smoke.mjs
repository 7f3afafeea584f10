// Loads the built package (scripts/build-ui-wasm) in Node and drives the
// WebAssembly model as the editor does: palette, diagnostics while drawing,
// connection checks, conversion to a definition and back.
// Run: node concertmaster-ui-wasm/npm/smoke.mjs
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';

const pkg = new URL('../pkg/', import.meta.url);
const { Model } = await import(new URL('index.js', pkg));
const descriptors = JSON.parse(await readFile(new URL('palette.json', pkg), 'utf8'));
const model = await Model.load(descriptors, await readFile(new URL('concertmaster_ui_wasm_bg.wasm', pkg)));

const palette = model.palette();
assert.deepEqual(palette.map((g) => g.category), ['trigger', 'collection', 'transform', 'logic', 'output']);
const sap = model.entry('sap_export');
assert.equal(sap.defaultConfig.mode, 'create');
assert.deepEqual(sap.outputs.map((p) => p.name), ['ok', 'error']);
assert.equal(model.entry('no_such_type'), null);
assert.deepEqual(model.outputPorts('switch', { cases: [{ port: 'germany' }, { port: 'swiss' }] }), ['germany', 'swiss', 'default']);
assert.equal(model.outputPorts('no_such_type', {}), null);
assert.equal(model.streamsInput('map_fields', { stream: true }), true);
assert.equal(model.streamsInput('map_fields', {}), false);
assert.equal(model.streamsInput('no_such_type', {}), null);

const node = (id, type, x, config) => ({ id, type, position: { x, y: 40 }, data: { config }, measured: { width: 180, height: 48 } });
const flow = {
  nodes: [
    node('schedule', 'schedule', 0, { cron: '0 8 * * MON', timezone: 'Europe/Berlin' }),
    node('send', 'send_form', 250, {}),
    node('shape', 'jq', 500, { expression: '{name: .company}' }),
    node('sap', 'sap_export', 750, { ...sap.defaultConfig, connection: 'sap-prod', entity: 'A_BusinessPartner', mode: 'upsert' }),
  ],
  edges: [
    { id: 'e1', source: 'schedule', target: 'send', sourceHandle: null, targetHandle: null },
    { id: 'e2', source: 'send', target: 'shape', sourceHandle: null, targetHandle: null },
    { id: 'e3', source: 'shape', target: 'sap', sourceHandle: null, targetHandle: null, label: 'approved' },
  ],
  viewport: { x: 0, y: 0, zoom: 1 },
};

let diagnostics = model.diagnose(flow);
const on = (id) => diagnostics.filter((d) => d.nodeId === id);
assert.ok(on('send').some((d) => d.kind === 'invalid_config'), JSON.stringify(diagnostics));
assert.ok(on('sap').some((d) => d.message.includes('keyField')), JSON.stringify(diagnostics));
assert.equal(on('schedule').length, 0);

flow.nodes[3].data.config.keyField = 'BusinessPartner';
flow.edges.push({ id: 'e4', source: 'sap', sourceHandle: 'late', target: 'shape', targetHandle: null });
diagnostics = model.diagnose(flow);
const e4 = diagnostics.filter((d) => d.edgeId === 'e4');
assert.ok(e4.some((d) => d.kind === 'unknown_port'), JSON.stringify(diagnostics));
assert.equal(on('sap').length, 0, JSON.stringify(diagnostics));
flow.edges.pop();

assert.equal(model.isValidConnection(flow, { source: 'sap', sourceHandle: 'ok', target: 'send', targetHandle: null }), false, 'closes a cycle');
assert.equal(model.isValidConnection(flow, { source: 'shape', sourceHandle: null, target: 'schedule', targetHandle: null }), false, 'into a trigger');
assert.equal(model.isValidConnection(flow, { source: 'send', sourceHandle: 'error', target: 'sap', targetHandle: null }), true);

const definition = model.toDefinition(flow, { id: 'supplier-export', name: 'Supplier export' });
assert.equal(definition.nodes[3].config.keyField, 'BusinessPartner');
assert.equal(definition.edges[2].ui.label, 'approved');
assert.deepEqual(model.fromDefinition(definition), flow);

assert.throws(() => model.toDefinition({ nodes: [{ type: 'jq' }], edges: [] }, { id: 'x', name: 'x' }), /node 0: it has no `id`/);
assert.throws(() => model.diagnose({ nodes: 'x' }), /not an array/);
const built = model.buildForm({
  id: 'supplier', title: 'Supplier', fields: [
    { name: 'companyName', kind: 'text', required: true },
    { name: 'country', kind: 'choice', options: ['DE', 'CH'] },
    { name: 'vatId', kind: 'text', pii: true, required: true, visibleWhen: { field: 'country', equals: 'DE' } },
  ],
});
assert.deepEqual(built.diagnostics, []);
assert.deepEqual(model.checkSubmission(built.form, { companyName: 'Acme', country: 'CH' }), []);
assert.equal(model.checkSubmission(built.form, { companyName: 'Acme', country: 'DE' }).length, 1);
assert.equal(model.buildForm({ id: 'x', title: 'x', fields: [{ name: 'a b', kind: 'text' }] }).diagnostics[0].pointer, '/fields/0/name');
// React Flow's group nodes (and a host's notes) stay in the drawing, with
// their children, and are no workflow node: no diagnostic, and back as drawn.
const grouped = {
  nodes: [
    { id: 'frame', type: 'group', position: { x: 0, y: 0 }, style: { width: 300, height: 160 }, data: {} },
    node('manual', 'manual', 20, {}),
    { ...node('shape', 'jq', 200, { expression: '.', mode: 'eachItem' }), parentId: 'frame', extent: 'parent' },
    { id: 'note', type: 'sticky', position: { x: 400, y: 0 }, data: { drawingOnly: true, text: 'ask legal' } },
  ],
  edges: [{ id: 'g1', source: 'manual', target: 'shape', sourceHandle: null, targetHandle: null }],
  viewport: { x: 0, y: 0, zoom: 1 },
};
assert.deepEqual(model.diagnose(grouped), []);
const groupedDefinition = model.toDefinition(grouped, { id: 'grouped', name: 'Grouped' });
assert.deepEqual(groupedDefinition.nodes.map((n) => n.id), ['manual', 'shape']);
assert.deepEqual(model.fromDefinition(groupedDefinition), grouped);

model.free();

// What a host's users download: at most 1.2 MB, 400 KB gzipped.
const wasm = await readFile(new URL('concertmaster_ui_wasm_bg.wasm', pkg));
const gzipped = gzipSync(wasm, { level: 9 }).length;
assert.ok(wasm.length <= 1_200_000, `the WebAssembly is ${wasm.length} bytes, over 1.2 MB`);
assert.ok(gzipped <= 400_000, `the WebAssembly is ${gzipped} bytes gzipped, over 400 KB`);
console.log(`ui-wasm smoke test passed: ${descriptors.length} node types, ${palette.length} palette groups, ${wasm.length} bytes of WebAssembly (${gzipped} gzipped)`);
