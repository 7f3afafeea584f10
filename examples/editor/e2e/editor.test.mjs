// End to end: the example editor, built by Vite, in Debian's Chromium driven
// by playwright-core. Drags a schedule trigger, a send-form, a jq transform
// and an SAP export onto the canvas, connects them, fills their configs,
// draws a connection that closes a cycle (a diagnostic appears) and deletes
// it (the diagnostic goes), exports the workflow and compares it with
// e2e/expected-definition.json, imports it back. Then builds a four-field
// form in the form builder, compares the schema it produces with
// e2e/expected-form.json, and answers it in the live preview (a field shown
// by a condition, errors from the server's own check). Screenshots are
// left in target/e2e/.
//
// Run after `npm run build` (scripts/test-editor does both).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { freePort, waitForServer } from '../../../concertmaster-ui-wasm/editor/e2e/support.mjs';

const editorDir = fileURLToPath(new URL('..', import.meta.url));
const artefacts = fileURLToPath(new URL('../../../target/e2e/', import.meta.url));
const chromiumPath = process.env.CONCERTMASTER_CHROMIUM ?? '/usr/bin/chromium';


const port = await freePort();
const url = `http://127.0.0.1:${port}/`;
const server = spawn('node_modules/.bin/vite', ['preview', '--port', String(port), '--strictPort'], {
  cwd: editorDir,
  stdio: ['ignore', 'ignore', 'inherit'],
});
let browser;
let page;
const pageErrors = [];
try {
  await waitForServer(url, server);
  browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: ['--no-sandbox'] });
  page = await browser.newPage({ viewport: { width: 1500, height: 900 } });
  page.on('pageerror', (err) => pageErrors.push(String(err)));
  page.on('console', (msg) => {
    if (msg.type() === 'error') pageErrors.push(msg.text());
  });
  await page.goto(url);
  await page.getByTestId('palette-schedule').waitFor();

  // Drag four node types from the palette onto the canvas.
  const placements = [
    ['schedule', 30, 120],
    ['send_form', 260, 260],
    ['jq', 490, 120],
    ['sap_export', 720, 260],
  ];
  for (const [type, x, y] of placements) {
    await page.dragAndDrop(`[data-testid=palette-${type}]`, '[data-testid=canvas]', { targetPosition: { x, y } });
    await page.getByTestId(`node-${type}-1`).waitFor();
  }

  const diagnostics = page.getByTestId('diagnostics');
  const diagnosticsOf = (node) => diagnostics.locator(`li[data-node="${node}"]`);
  // Fresh nodes lack their required config and are not connected yet.
  assert.ok((await diagnosticsOf('jq-1').count()) > 0, 'the unconfigured jq node has a diagnostic');

  async function connect(source, sourcePort, target, targetPort = 'main') {
    const from = page.locator(`.react-flow__handle.source[data-nodeid="${source}"][data-handleid="${sourcePort}"]`);
    const to = page.locator(`.react-flow__handle.target[data-nodeid="${target}"][data-handleid="${targetPort}"]`);
    const a = await from.boundingBox();
    const b = await to.boundingBox();
    assert.ok(a && b, `handles ${source}.${sourcePort} and ${target}.${targetPort} are on screen`);
    await page.mouse.move(a.x + a.width / 2, a.y + a.height / 2);
    await page.mouse.down();
    await page.mouse.move(b.x + b.width / 2, b.y + b.height / 2, { steps: 12 });
    await page.mouse.up();
  }
  const edges = page.locator('.react-flow__edge');

  await connect('schedule-1', 'main', 'send_form-1');
  await connect('send_form-1', 'main', 'jq-1');
  await connect('jq-1', 'main', 'sap_export-1');
  assert.equal(await edges.count(), 3);
  // The same ports again: the model refuses it while dragging.
  await connect('schedule-1', 'main', 'send_form-1');
  assert.equal(await edges.count(), 3, 'a duplicate edge is not drawn');

  // Fill the configs through the panel rendered from each node's schema.
  async function configure(node, fields) {
    await page.getByTestId(`node-${node}`).click();
    await page.getByTestId('config-panel').getByText(`Config of ${node}`).waitFor();
    for (const [field, value] of Object.entries(fields)) {
      await page.locator(`#root_${field}`).fill(value);
    }
  }
  await configure('jq-1', { expression: '{BusinessPartner: .supplierNumber, OrganizationBPName1: .companyName}' });
  await page.waitForFunction(() => !document.querySelector('[data-testid=diagnostics] li[data-node="jq-1"]'));
  await configure('schedule-1', { cron: '0 8 * * MON', timezone: 'Europe/Berlin' });
  await configure('send_form-1', { formId: 'supplier-questionnaire' });
  // A create finds what an earlier attempt made by its key (or matchOn).
  await configure('sap_export-1', { connection: 'sap-prod', entity: 'A_BusinessPartner', keyField: 'BusinessPartner' });
  // The panel draws the fields in the order the config struct declares
  // them (the schema's x-order), not alphabetically.
  const drawn = await page
    .locator('[data-testid=config-panel] [id^="root_"]')
    .evaluateAll((els) => [...new Set(els.map((el) => el.id).filter((id) => /^root_[A-Za-z0-9]+$/.test(id)))]);
  assert.deepEqual(drawn.slice(0, 2), ['root_connection', 'root_entity'], `fields drawn as ${drawn}`);
  assert.ok(drawn.indexOf('root_keyField') < drawn.indexOf('root_mode'), `fields drawn as ${drawn}`);
  await page.waitForFunction(() => document.querySelectorAll('[data-testid=diagnostics] li').length === 0);

  // A connection that closes a cycle: drawn, and diagnosed.
  await connect('sap_export-1', 'ok', 'send_form-1');
  assert.equal(await edges.count(), 4);
  const cycle = diagnostics.locator('li[data-kind=cycle]');
  await cycle.waitFor();
  assert.match(await cycle.innerText(), /cycle/);
  await mkdir(artefacts, { recursive: true });
  await page.screenshot({ path: `${artefacts}editor-cycle.png` });
  // Fixed by deleting it: the diagnostic goes.
  const edgeIds = await edges.evaluateAll((els) => els.map((el) => el.getAttribute('data-id') ?? el.getAttribute('data-testid')));
  const last = edgeIds[edgeIds.length - 1].replace(/^rf__edge-/, '');
  await page.locator(`[data-testid="rf__edge-${last}"] .react-flow__edge-interaction`).click({ force: true });
  await page.keyboard.press('Delete');
  await cycle.waitFor({ state: 'detached' });
  assert.equal(await edges.count(), 3);
  assert.equal(await diagnostics.locator('li').count(), 0);

  // Export and compare with what the drawing means.
  await page.getByTestId('export').click();
  const exported = JSON.parse(await page.getByTestId('definition').inputValue());
  const expected = JSON.parse(await readFile(new URL('expected-definition.json', import.meta.url), 'utf8'));
  const meaning = (def) => ({
    id: def.id,
    name: def.name,
    nodes: def.nodes.map((n) => ({ id: n.id, type: n.type, config: n.config })),
    edges: (def.edges ?? []).map((e) => ({ id: e.id, source: e.source, sourcePort: e.sourcePort, target: e.target, targetPort: e.targetPort })),
  });
  assert.deepEqual(meaning(exported), expected);
  assert.ok(exported.nodes.every((n) => n.position), 'positions are kept for the editor');
  assert.ok(exported.nodes.every((n) => !n.ui?.measured && !n.ui?.selected), 'what the browser measured or selected is not the workflow');
  assert.ok(exported.ui?.viewport, 'the viewport is kept');

  // Import it back: the same graph.
  await page.getByTestId('import').click();
  await page.getByTestId('node-sap_export-1').waitFor();
  assert.equal(await edges.count(), 3);
  assert.equal(await page.locator('.react-flow__node').count(), 4);

  await mkdir(artefacts, { recursive: true });
  await page.screenshot({ path: `${artefacts}editor.png` });

  // The form builder: four fields, one shown only for Germany.
  await page.getByTestId('tab-form').click();
  const fields = [
    { name: 'companyName', label: 'Company name', kind: 'text', required: true, pattern: '^[A-Z].+' },
    { name: 'employees', label: 'Employees', kind: 'number', min: '1', max: '100000' },
    { name: 'country', label: 'Country', kind: 'choice', required: true, options: 'DE, CH, AT' },
    { name: 'vatId', label: 'VAT id', kind: 'text', required: true, pii: true, when: ['country', 'DE'] },
  ];
  for (const [i, f] of fields.entries()) {
    await page.getByTestId('add-field').click();
    const id = `field-${i}`;
    await page.getByTestId(`${id}-name`).fill(f.name);
    await page.getByTestId(`${id}-label`).fill(f.label);
    await page.getByTestId(`${id}-kind`).selectOption(f.kind);
    if (f.required) await page.getByTestId(`${id}-required`).check();
    if (f.pii) await page.getByTestId(`${id}-pii`).check();
    if (f.pattern) await page.getByTestId(`${id}-pattern`).fill(f.pattern);
    if (f.min) await page.getByTestId(`${id}-min`).fill(f.min);
    if (f.max) await page.getByTestId(`${id}-max`).fill(f.max);
    if (f.options) await page.getByTestId(`${id}-options`).fill(f.options);
    if (f.when) {
      await page.getByTestId(`${id}-when-field`).selectOption(f.when[0]);
      await page.getByTestId(`${id}-when-equals`).fill(f.when[1]);
    }
  }
  assert.equal(await page.getByTestId('form-diagnostics').locator('li').count(), 0);
  const form = JSON.parse(await page.getByTestId('form-schema').inputValue());
  const expectedForm = JSON.parse(await readFile(new URL('expected-form.json', import.meta.url), 'utf8'));
  assert.deepEqual(form, expectedForm);

  // The preview: the VAT id appears for Germany; the server's check runs on submit.
  const preview = page.getByTestId('form-preview');
  assert.equal(await preview.locator('#root_vatId').count(), 0);
  await preview.locator('#root_companyName').fill('acme');
  await preview.getByLabel('DE', { exact: true }).check();
  await preview.locator('#root_vatId').waitFor();
  await preview.getByRole('button', { name: 'Submit' }).click();
  await page.getByTestId('preview-result').getByText('2 field(s) to fix.').waitFor();
  await preview.locator('#root_companyName').fill('Acme GmbH');
  await preview.locator('#root_vatId').fill('DE123456789');
  await preview.getByRole('button', { name: 'Submit' }).click();
  await page.getByTestId('preview-result').getByText('The answers are valid.').waitFor();
  await page.screenshot({ path: `${artefacts}form-builder.png` });

  assert.deepEqual(pageErrors, [], 'no errors in the page');
  console.log(`editor e2e passed; screenshots in ${artefacts}`);
} catch (err) {
  await mkdir(artefacts, { recursive: true });
  await page?.screenshot({ path: `${artefacts}editor-failure.png` });
  console.error(`editor e2e failed; the page is in ${artefacts}editor-failure.png`);
  throw err;
} finally {
  await browser?.close();
  server.kill();
}
