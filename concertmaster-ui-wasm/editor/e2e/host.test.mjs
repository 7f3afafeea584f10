// The editor package as a host app gets it: packs @concertmaster/ui-wasm and
// @concertmaster/editor (npm pack), creates a fresh Vite + React + TypeScript
// app in a temporary directory that installs the two tarballs from their
// files (no alias into this repository), type-checks and builds it, and
// drives it in Debian's Chromium with playwright-core, against the example
// service (target/debug/concertmaster-server --e2e-scenario, its API behind
// the app's own origin): the node types loaded from the service's
// /api/node-types, a node added by dragging from the palette, others found
// by search and added with the keyboard only, a host node type drawn by the
// host's renderer, handles connected by mouse, configs filled, a node
// deleted by keyboard, the definition onChange gave published and run by
// the service, and the run shown in <RunView> (statuses, what the waiting
// node waits for, a node's output, the timeline); axe-core on the editor
// and the run view (no serious or critical violation). Then <FormBuilder>:
// a form built, reordered by keyboard and by drag (@dnd-kit), previewed with
// a condition showing a field, axe-core on it. Then a 1,000-node, 1,200-edge
// workflow: the model's diagnostics after an edit and isValidConnection
// timed with performance.now() in the page, the editor drawing only what is
// on screen and panning (timings in target/e2e/editor-timings.md).
// Screenshots go to target/e2e/.
//
// Run after scripts/build-ui-wasm and `npm run build` here (scripts/test-editor
// does both).
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { freePort, waitForServer } from './support.mjs';
import { AxeBuilder } from '@axe-core/playwright';

const editorDir = fileURLToPath(new URL('..', import.meta.url));
const modelDir = fileURLToPath(new URL('../../pkg', import.meta.url));
const artefacts = fileURLToPath(new URL('../../../target/e2e/', import.meta.url));
const chromiumPath = process.env.CONCERTMASTER_CHROMIUM ?? '/usr/bin/chromium';
const serviceBinary =
  process.env.CONCERTMASTER_SERVER_BIN ?? fileURLToPath(new URL('../../../target/debug/concertmaster-server', import.meta.url));
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';


const host = await mkdtemp(join(tmpdir(), 'cm-host-'));
function run(cmd, args, cwd = host) {
  try {
    return execFileSync(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] }).toString();
  } catch (err) {
    throw new Error(`${cmd} ${args.join(' ')} in ${cwd} failed:\n${err.stdout ?? ''}${err.stderr ?? ''}`);
  }
}

// The tarballs npm would publish.
run(npm, ['pack', '--silent', '--pack-destination', host], modelDir);
run(npm, ['pack', '--silent', '--pack-destination', host], editorDir);
const tarballs = (await readdir(host)).filter((f) => f.endsWith('.tgz'));
const tarball = (prefix) => `file:./${tarballs.find((f) => f.startsWith(prefix))}`;

// A host app as `npm create vite` would start it, pinned.
await writeFile(
  join(host, 'package.json'),
  JSON.stringify(
    {
      name: 'acme-host',
      private: true,
      type: 'module',
      dependencies: {
        '@concertmaster/editor': tarball('concertmaster-editor-'),
        '@concertmaster/ui-wasm': tarball('concertmaster-ui-wasm-'),
        react: '19.2.0',
        'react-dom': '19.2.0',
      },
      devDependencies: {
        '@types/react': '19.2.2',
        '@types/react-dom': '19.2.2',
        '@vitejs/plugin-react': '4.6.0',
        typescript: '5.9.3',
        vite: '6.4.1',
      },
    },
    null,
    2,
  ),
);
await writeFile(
  join(host, 'tsconfig.json'),
  JSON.stringify({
    compilerOptions: {
      target: 'ES2022',
      module: 'ESNext',
      moduleResolution: 'bundler',
      lib: ['ES2022', 'DOM', 'DOM.Iterable'],
      jsx: 'react-jsx',
      strict: true,
      resolveJsonModule: true,
      isolatedModules: true,
      skipLibCheck: false,
      types: ['vite/client'],
    },
    include: ['src'],
  }),
);
await writeFile(
  join(host, 'vite.config.js'),
  // The host's API behind its own origin, as a host app reaches its backend.
  "import { defineConfig } from 'vite';\nimport react from '@vitejs/plugin-react';\nexport default defineConfig({ plugins: [react()], preview: { proxy: { '/api': process.env.CM_API } }, build: { target: 'es2022', rollupOptions: { input: { main: 'index.html', large: 'large.html', form: 'form.html' } } } });\n",
);
await writeFile(
  join(host, 'index.html'),
  '<!doctype html><html lang="en"><head><meta charset="UTF-8" /><title>Acme supplier workflows</title><link rel="icon" href="data:," /></head><body><div id="root"></div><script type="module" src="/src/main.tsx"></script></body></html>\n',
);
await writeFile(
  join(host, 'large.html'),
  '<!doctype html><html lang="en"><head><meta charset="UTF-8" /><title>A large workflow</title><link rel="icon" href="data:," /></head><body><div id="root"></div><script type="module" src="/src/large.tsx"></script></body></html>\n',
);
await writeFile(
  join(host, 'form.html'),
  '<!doctype html><html lang="en"><head><meta charset="UTF-8" /><title>Supplier questionnaire</title><link rel="icon" href="data:," /></head><body><div id="root"></div><script type="module" src="/src/form.tsx"></script></body></html>\n',
);
await mkdir(join(host, 'src'));
await writeFile(
  join(host, 'src', 'form.tsx'),
  `import { useState } from 'react';
import { createRoot } from 'react-dom/client';
import { FormBuilder } from '@concertmaster/editor';
import { Model, type FormDraft, type NodeDescriptor } from '@concertmaster/ui-wasm';
import builtIn from '@concertmaster/ui-wasm/palette.json';
import '@concertmaster/editor/style.css';

const model = await Model.load(builtIn as NodeDescriptor[]);

function Questionnaire() {
  const [draft, setDraft] = useState<FormDraft>({ id: 'supplier-questionnaire', title: 'Supplier questionnaire', fields: [] });
  const [problems, setProblems] = useState(0);
  return (
    <main>
      <h1>Supplier questionnaire</h1>
      <div style={{ height: 700 }}>
        <FormBuilder
          model={model}
          value={draft}
          theme="light"
          onChange={(next, built) => {
            setDraft(next);
            setProblems(built.diagnostics.length);
          }}
        />
      </div>
      <output data-testid="host-form">{JSON.stringify(draft)}</output>
      <output data-testid="host-form-problems">{problems}</output>
    </main>
  );
}

createRoot(document.getElementById('root')!).render(<Questionnaire />);
`,
);
// A 1,000-node, 1,200-edge workflow: what the model answers after an edit
// and while a connection is dragged, timed in the page, and the editor
// drawing it.
await writeFile(
  join(host, 'src', 'large.tsx'),
  `import { createRoot } from 'react-dom/client';
import { WorkflowEditor } from '@concertmaster/editor';
import { Model, type FlowObject, type NodeDescriptor, type WorkflowDefinition } from '@concertmaster/ui-wasm';
import builtIn from '@concertmaster/ui-wasm/palette.json';
import '@concertmaster/editor/style.css';

const model = await Model.load(builtIn as NodeDescriptor[]);
const nodes: WorkflowDefinition['nodes'] = [{ id: 'start', type: 'manual', config: {}, position: { x: 0, y: 0 } }];
for (let i = 1; i < 1000; i++) {
  nodes.push({ id: 'n' + i, type: 'jq', config: { expression: '.', mode: 'eachItem' }, position: { x: (i % 40) * 240, y: Math.floor(i / 40) * 110 } });
}
const edges: NonNullable<WorkflowDefinition['edges']> = [];
for (let i = 1; i < 1000; i++) edges.push({ id: 'e' + i, source: i <= 40 ? 'start' : 'n' + (i - 40), target: 'n' + i });
for (let i = 1; edges.length < 1200; i++) edges.push({ id: 'x' + i, source: 'n' + i, sourcePort: 'error', target: 'n' + (i + 80) });
const definition: WorkflowDefinition = { id: 'large', name: 'Large', nodes, edges };

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const max = (xs: number[]) => Math.max(...xs);
const flow = model.fromDefinition(definition);
const afterEdit: number[] = [];
let edited: FlowObject = flow;
for (let i = 0; i < 15; i++) {
  edited = { ...flow, nodes: flow.nodes.map((n, k) => (k === 500 ? { ...n, data: { ...n.data, config: { expression: '.v' + i, mode: 'eachItem' } } } : n)) };
  const t = performance.now();
  model.diagnose(edited);
  afterEdit.push(performance.now() - t);
}
const dragging: number[] = [];
for (let i = 0; i < 50; i++) {
  const t = performance.now();
  model.isValidConnection(edited, { source: 'n' + (10 + i), sourceHandle: 'main', target: 'n' + (900 - i), targetHandle: null });
  dragging.push(performance.now() - t);
}
const started = performance.now();
createRoot(document.getElementById('root')!).render(
  <div style={{ height: 800 }}>
    <WorkflowEditor model={model} defaultValue={definition} theme="light" />
  </div>,
);
const drawn = () =>
  new Promise<number>((resolve) => {
    const look = () => (document.querySelector('.react-flow__node') ? resolve(performance.now() - started) : requestAnimationFrame(look));
    look();
  });
const mounted = await drawn();
document.body.dataset.timings = JSON.stringify({
  diagnoseAfterEditMedian: median(afterEdit),
  diagnoseAfterEditMax: max(afterEdit),
  isValidConnectionMedian: median(dragging),
  isValidConnectionMax: max(dragging),
  editorFirstDrawn: mounted,
  nodesDrawn: document.querySelectorAll('.react-flow__node').length,
});
`,
);
await writeFile(
  join(host, 'src', 'main.tsx'),
  `import { StrictMode, useEffect, useState } from 'react';
import { createRoot } from 'react-dom/client';
import { RunView, WorkflowEditor, useModel, type NodeRendererProps, type RunDetail } from '@concertmaster/editor';
import type { Diagnostic, NodeDescriptor, WorkflowDefinition } from '@concertmaster/ui-wasm';
import '@concertmaster/editor/style.css';

// The host's API key (the test passes it in the address; a host has its own sign-in).
const key = new URLSearchParams(location.search).get('key') ?? '';
const api = (path: string, init: RequestInit = {}) =>
  fetch(path, { ...init, headers: { authorization: 'Bearer ' + key, 'content-type': 'application/json', ...init.headers } }).then(async (r) => {
    const body = await r.json();
    if (!r.ok) throw new Error(path + ': ' + JSON.stringify(body));
    return body;
  });

// The host's own node type, drawn by the host: the browser knows it, the
// service does not (it is taken out before publishing).
const score: NodeDescriptor = {
  typeId: 'acme.score',
  category: 'logic',
  label: 'Supplier score',
  icon: 'gauge',
  description: 'Scores a supplier from its answers.',
  configSchema: {
    type: 'object',
    properties: { threshold: { type: 'integer', minimum: 0, maximum: 100, default: 60 } },
    required: ['threshold'],
    additionalProperties: false,
  },
  inputs: [{ name: 'main' }],
  outputs: [{ name: 'main' }],
};

function ScoreCard({ config, label }: NodeRendererProps) {
  return <div className="acme-score">{label}: at least {String(config.threshold)}</div>;
}

function Designer({ types }: { types: NodeDescriptor[] }) {
  // A new list each render, as hosts write it: the model still loads once.
  const { model, error } = useModel([...types, score]);
  const [definition, setDefinition] = useState<WorkflowDefinition | null>(null);
  const [diagnostics, setDiagnostics] = useState<Diagnostic[]>([]);
  const [published, setPublished] = useState<WorkflowDefinition | null>(null);
  const [run, setRun] = useState<RunDetail | null>(null);
  const [problem, setProblem] = useState('');
  if (error) return <p role="alert">{error}</p>;
  if (!model) return <p>Loading the editor</p>;

  const publishAndRun = async () => {
    if (!definition) return;
    try {
      const version = await api('/api/workflows', { method: 'POST', body: JSON.stringify(definition) });
      setPublished({ ...definition, version: version.version });
      const started = await api('/api/workflows/' + definition.id + '/runs', { method: 'POST', body: '{}' });
      for (;;) {
        const detail = await api('/api/runs/' + started.runId);
        setRun({ run: detail.run, nodes: detail.nodes });
        if (!['pending', 'running'].includes(detail.run.status)) break;
        await new Promise((r) => setTimeout(r, 200));
      }
    } catch (err) {
      setProblem(String(err));
    }
  };

  return (
    <main>
      <h1>Supplier workflows</h1>
      <div style={{ height: 640 }}>
        <WorkflowEditor
          model={model}
          defaultValue={{ id: 'onboarding', name: 'Supplier onboarding', nodes: [], edges: [] }}
          nodeRenderers={{ 'acme.score': ScoreCard }}
          theme="light"
          onChange={(next, found) => {
            setDefinition(next);
            setDiagnostics(found);
          }}
        />
      </div>
      <output data-testid="host-definition">{definition ? JSON.stringify(definition) : ''}</output>
      <output data-testid="host-errors">{diagnostics.filter((d) => d.severity === 'error').length}</output>
      <button type="button" onClick={publishAndRun} data-testid="publish">Publish and run</button>
      {problem && <p role="alert" data-testid="host-problem">{problem}</p>}
      {published && run && (
        <div style={{ height: 560 }}>
          <RunView model={model} definition={published} run={run} theme="light" />
        </div>
      )}
    </main>
  );
}

function App() {
  const [types, setTypes] = useState<NodeDescriptor[] | null>(null);
  const [problem, setProblem] = useState('');
  useEffect(() => {
    // The service's registry; the host's own type joins it in Designer.
    api('/api/node-types').then(setTypes, (err) => setProblem(String(err)));
  }, []);
  if (problem) return <p role="alert">{problem}</p>;
  return types ? <Designer types={types} /> : <p>Loading the node types</p>;
}

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <App />
  </StrictMode>,
);
`,
);

run(npm, ['install', '--no-audit', '--no-fund', '--loglevel=error']);
run('node_modules/.bin/tsc', ['--noEmit', '-p', 'tsconfig.json']);
run('node_modules/.bin/vite', ['build', '--logLevel', 'warn']);

// The example service: its registry's node types, publishing and runs.
const service = spawn(serviceBinary, ['--e2e-scenario'], { stdio: ['ignore', 'pipe', 'inherit'] });
const scenario = await new Promise((resolve, reject) => {
  const lines = createInterface({ input: service.stdout });
  lines.once('line', (line) => resolve(JSON.parse(line)));
  service.once('exit', (code) => reject(new Error(`the example service exited with ${code} before it was ready`)));
});

const port = await freePort();
const url = `http://127.0.0.1:${port}/`;
const server = spawn('node_modules/.bin/vite', ['preview', '--port', String(port), '--strictPort'], {
  cwd: host,
  env: { ...process.env, CM_API: scenario.base },
  stdio: ['ignore', 'ignore', 'inherit'],
});
let browser;
let page;
const pageErrors = [];
try {
  await mkdir(artefacts, { recursive: true });
  await waitForServer(url, server);
  browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: ['--no-sandbox'] });
  // axe-core needs a page of a context of its own.
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  page = await context.newPage();
  page.on('pageerror', (err) => pageErrors.push(String(err)));
  page.on('console', (msg) => {
    if (msg.type() === 'error') pageErrors.push(msg.text());
  });
  await page.goto(`${url}?key=${scenario.adminKey}`);
  await page.getByTestId('palette-manual').waitFor();
  const definition = async () => JSON.parse((await page.getByTestId('host-definition').textContent()) || '{"nodes":[]}');
  const search = page.getByTestId('palette-search');

  // By mouse: a manual trigger dragged onto the canvas.
  await page.dragAndDrop('[data-testid=palette-manual]', '[data-testid=canvas]', { targetPosition: { x: 80, y: 60 } });
  await page.getByTestId('node-manual-1').waitFor();

  // By keyboard only: search the palette, Tab to the entry, Enter adds it.
  async function addByKeyboard(query, testId) {
    await search.focus();
    await page.keyboard.press('Control+A');
    await page.keyboard.type(query);
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('data-testid')), testId);
    await page.keyboard.press('Enter');
  }
  await addByKeyboard('score', 'palette-acme.score');
  await page.getByTestId('node-acme.score-1').waitFor();
  assert.match(await page.getByTestId('node-acme.score-1').innerText(), /Supplier score: at least 60/, "the host's renderer draws its node");
  await page.locator('#root_threshold').fill('75');
  await page.waitForFunction(() => (document.querySelector('[data-testid=host-definition]')?.textContent ?? '').includes('"threshold":75'));
  assert.match(await page.getByTestId('node-acme.score-1').innerText(), /at least 75/);
  await addByKeyboard('jq', 'palette-jq');
  await page.getByTestId('node-jq-1').waitFor();
  await page.locator('#root_expression').fill('{greeting: "hello"}');
  await addByKeyboard('delay', 'palette-delay');
  await page.getByTestId('node-delay-1').waitFor();
  await page.locator('#root_duration').fill('3d');
  await search.fill('');

  // Connected by mouse, through the handles the model gives each node.
  async function connect(source, target) {
    const from = page.locator(`.react-flow__handle.source[data-nodeid="${source}"][data-handleid="main"]`);
    const to = page.locator(`.react-flow__handle.target[data-nodeid="${target}"][data-handleid="main"]`);
    const a = await from.boundingBox();
    const b = await to.boundingBox();
    assert.ok(a && b, `the handles of ${source} and ${target} are on screen`);
    await page.mouse.move(a.x + a.width / 2, a.y + a.height / 2);
    await page.mouse.down();
    await page.mouse.move(b.x + b.width / 2, b.y + b.height / 2, { steps: 12 });
    await page.mouse.up();
  }
  await connect('manual-1', 'jq-1');
  // Without a mouse: the connection panel of the selected node, checked by the model.
  await page.getByTestId('node-jq-1').click();
  const panel = page.getByTestId('connect-panel');
  await panel.getByTestId('connect-target').selectOption('manual-1');
  await panel.getByTestId('connect-button').press('Enter');
  await panel.getByRole('alert').waitFor();
  assert.match(await panel.getByRole('alert').innerText(), /trigger/, 'an edge into a trigger is refused, with the reason');
  await panel.getByTestId('connect-target').selectOption('delay-1');
  await panel.getByTestId('connect-button').press('Enter');
  await page.waitForFunction(() => (document.querySelector('[data-testid=host-definition]')?.textContent ?? '').includes('"target":"delay-1"'));
  assert.equal(await panel.getByRole('list', { name: 'Outgoing connections' }).locator('li').count(), 1);

  // Copy and paste (Ctrl+C, Ctrl+V on the canvas), then undo and redo.
  const nodeIds = async () => (await definition()).nodes.map((n) => n.id);
  await page.getByTestId('node-jq-1').click();
  await page.keyboard.press('Control+C');
  await page.keyboard.press('Control+V');
  await page.getByTestId('node-jq-2').waitFor();
  await page.waitForFunction(() => (document.querySelector('[data-testid=host-definition]')?.textContent ?? '').includes('"jq-2"'));
  assert.equal((await definition()).nodes.find((n) => n.id === 'jq-2').config.expression, '{greeting: "hello"}', 'the copy has the config');
  await page.keyboard.press('Control+Z');
  await page.getByTestId('node-jq-2').waitFor({ state: 'detached' });
  await page.getByTestId('redo').click();
  await page.getByTestId('node-jq-2').waitFor();
  await page.getByTestId('undo').click();
  await page.getByTestId('node-jq-2').waitFor({ state: 'detached' });
  await page.waitForFunction(() => !(document.querySelector('[data-testid=host-definition]')?.textContent ?? '').includes('"jq-2"'));
  assert.deepEqual(await nodeIds(), ['manual-1', 'acme.score-1', 'jq-1', 'delay-1']);

  // Auto-layout: the model's layered layout, trigger first.
  await page.getByTestId('arrange').click();
  await page.waitForFunction(() => {
    const def = JSON.parse(document.querySelector('[data-testid=host-definition]')?.textContent || '{"nodes":[]}');
    const x = Object.fromEntries(def.nodes.map((n) => [n.id, n.position.x]));
    return x['manual-1'] < x['jq-1'] && x['jq-1'] < x['delay-1'];
  });
  await page.screenshot({ path: `${artefacts}host-editor.png` });

  // Accessibility of the editor as the host renders it.
  const axeFindings = async (selector) => {
    const axe = await new AxeBuilder({ page }).include(selector).analyze();
    return axe.violations
      .filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => `${n.target.join(' ')} ${n.failureSummary ?? ''}`).join(', ')})`);
  };
  assert.deepEqual(await axeFindings('.cm-editor-root'), [], 'no serious or critical accessibility violation in the editor');

  // The host's own type is not the service's: deleted with the keyboard (selected, then Delete).
  await page.getByTestId('node-acme.score-1').click();
  await page.keyboard.press('Delete');
  await page.getByTestId('node-acme.score-1').waitFor({ state: 'detached' });
  await page.waitForFunction(() => !(document.querySelector('[data-testid=host-definition]')?.textContent ?? '').includes('acme.score'));
  const published = await definition();
  assert.equal(published.id, 'onboarding');
  assert.deepEqual(published.nodes.map((n) => n.id), ['manual-1', 'jq-1', 'delay-1']);
  assert.deepEqual(published.edges.map((e) => [e.source, e.target]), [['manual-1', 'jq-1'], ['jq-1', 'delay-1']]);
  assert.equal(published.nodes[2].config.duration, '3d');
  assert.equal(await page.getByTestId('host-errors').textContent(), '0');

  // What onChange gave, published by the service's engine and run: the run in <RunView>.
  await page.getByTestId('publish').click();
  const runView = page.getByTestId('run-view');
  await runView.waitFor();
  await page.waitForFunction(() => document.querySelector('[data-testid=run-view]')?.getAttribute('data-run-status') === 'waiting', null, { timeout: 30_000 });
  assert.equal(await page.getByTestId('host-problem').count(), 0);
  const statusOf = (node) => runView.getByTestId(`run-node-${node}`).getAttribute('data-status');
  assert.equal(await statusOf('manual-1'), 'succeeded');
  assert.equal(await statusOf('jq-1'), 'succeeded');
  assert.equal(await statusOf('delay-1'), 'waiting');
  assert.match(await runView.getByTestId('run-node-delay-1').innerText(), /Waiting\s+for the time until /, 'a waiting node says what it waits for');
  await runView.getByTestId('run-node-jq-1').click();
  assert.match(await runView.getByTestId('run-node-details').innerText(), /"greeting": "hello"/, 'the selected node shows its output');
  assert.equal(await runView.getByTestId('run-timeline').locator('li').count(), 3);
  await page.screenshot({ path: `${artefacts}host-run-view.png`, fullPage: true });
  assert.deepEqual(await axeFindings('.cm-run-root'), [], 'no serious or critical accessibility violation in the run view');

  // <FormBuilder>: a form built, reordered by keyboard and by drag, previewed
  // with a condition showing a field.
  await page.goto(`${url}form.html`);
  await page.getByTestId('add-field').waitFor();
  const form = async () => JSON.parse(await page.getByTestId('host-form').textContent());
  const names = async () => (await form()).fields.map((f) => f.name);
  for (const [i, field] of [
    { name: 'company', label: 'Company', required: true },
    { name: 'country', label: 'Country', kind: 'choice', options: 'DE, CH' },
    { name: 'vatId', label: 'VAT id', when: ['country', 'DE'] },
  ].entries()) {
    await page.getByTestId('add-field').click();
    const at = `field-${i}`;
    await page.getByTestId(`${at}-name`).fill(field.name);
    await page.getByTestId(`${at}-label`).fill(field.label);
    if (field.kind) await page.getByTestId(`${at}-kind`).selectOption(field.kind);
    if (field.options) await page.getByTestId(`${at}-options`).fill(field.options);
    if (field.required) await page.getByTestId(`${at}-required`).check();
    if (field.when) {
      await page.getByTestId(`${at}-when-field`).selectOption(field.when[0]);
      await page.getByTestId(`${at}-when-equals`).fill(field.when[1]);
    }
  }
  assert.deepEqual(await names(), ['company', 'country', 'vatId']);
  assert.equal(await page.getByTestId('host-form-problems').textContent(), '0');
  // By keyboard: the drag handle, Space, ArrowDown, Space.
  await page.getByTestId('field-0-handle').focus();
  // Each key waits a frame or two: the sensor measures between them.
  for (const key of ['Space', 'ArrowDown', 'Space']) {
    await page.keyboard.press(key);
    await page.waitForTimeout(150);
  }
  await page.waitForFunction(() => JSON.parse(document.querySelector('[data-testid=host-form]').textContent).fields[0].name === 'country');
  assert.deepEqual(await names(), ['country', 'company', 'vatId']);
  // By mouse: company's handle dragged above country.
  const handle = await page.getByTestId('field-1-handle').boundingBox();
  const first = await page.getByTestId('field-0').boundingBox();
  await page.mouse.move(handle.x + handle.width / 2, handle.y + handle.height / 2);
  await page.mouse.down();
  await page.mouse.move(handle.x + handle.width / 2, first.y + 4, { steps: 15 });
  await page.mouse.up();
  await page.waitForFunction(() => JSON.parse(document.querySelector('[data-testid=host-form]').textContent).fields[0].name === 'company');
  assert.deepEqual(await names(), ['company', 'country', 'vatId']);
  // The preview: the VAT id only once the country is DE.
  const preview = page.getByTestId('form-preview');
  await preview.locator('#root_company').fill('Acme GmbH');
  assert.equal(await preview.locator('#root_vatId').count(), 0, 'a field shown by a condition starts hidden');
  await preview.getByRole('radio', { name: 'DE' }).check();
  await preview.locator('#root_vatId').waitFor();
  await page.screenshot({ path: `${artefacts}host-form-builder.png`, fullPage: true });
  assert.deepEqual(await axeFindings('.cm-form-root'), [], 'no serious or critical accessibility violation in the form builder');

  // The 1,000-node workflow: timings in Chromium.
  await page.goto(`${url}large.html`);
  await page.waitForFunction(() => document.body.dataset.timings, null, { timeout: 60_000 });
  const timings = JSON.parse(await page.evaluate(() => document.body.dataset.timings));
  // Dragging the canvas still moves it.
  const pane = page.locator('.react-flow__pane');
  const before = await page.locator('.react-flow__viewport').getAttribute('style');
  const box = await pane.boundingBox();
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width / 2 - 300, box.y + box.height / 2 - 200, { steps: 10 });
  await page.mouse.up();
  assert.notEqual(await page.locator('.react-flow__viewport').getAttribute('style'), before, 'the canvas pans');
  await page.waitForTimeout(500);
  const onScreen = await page.locator('.react-flow__node').count();
  assert.ok(onScreen > 0 && onScreen < 1000, `only the nodes on screen are drawn (${onScreen})`);
  const ms = (x) => `${x.toFixed(1)} ms`;
  const report = [
    '| 1,000 nodes, 1,200 edges, in Chromium | median | slowest |',
    '|---|---|---|',
    `| diagnostics after an edit | ${ms(timings.diagnoseAfterEditMedian)} | ${ms(timings.diagnoseAfterEditMax)} |`,
    `| isValidConnection while dragging | ${ms(timings.isValidConnectionMedian)} | ${ms(timings.isValidConnectionMax)} |`,
    `| editor first drawn | ${ms(timings.editorFirstDrawn)} | |`,
    `| nodes drawn once panned (the rest off screen) | ${onScreen} | |`,
  ].join('\n');
  await writeFile(`${artefacts}editor-timings.md`, `${report}\n`);
  console.log(report);

  assert.deepEqual(pageErrors, [], 'the page logged no error');
  console.log(`editor package e2e passed in a fresh host app; screenshots in ${artefacts}`);
} catch (err) {
  if (page) await page.screenshot({ path: `${artefacts}host-editor-failure.png` }).catch(() => {});
  console.error(pageErrors.join('\n'));
  throw err;
} finally {
  await browser?.close();
  server.kill();
  service.kill();
  await rm(host, { recursive: true, force: true });
}
