// The service end to end in Debian's Chromium (playwright-core from the
// editor example's lockfile): a supplier opens the form link, submits an
// invalid value and sees the error under the field, fixes it and submits;
// a reviewer approves the answer in the inbox; the run view shows the run
// completed; the editor served at /editor/, connected with an API key, opens,
// validates and publishes the workflow and shows the run in <RunView>.
// Started by scripts/test-server-e2e with the server binary built.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const require = createRequire(new URL('../../editor/package.json', import.meta.url));
const { chromium } = require('playwright-core');
const root = fileURLToPath(new URL('../../../', import.meta.url));
const artefacts = `${root}target/e2e/`;
const binary = process.env.CONCERTMASTER_SERVER_BIN ?? `${root}target/debug/concertmaster-server`;

const server = spawn(binary, ['--e2e-scenario', '--editor', `${root}examples/editor/dist`], { stdio: ['ignore', 'pipe', 'inherit'] });
const scenario = await new Promise((resolve, reject) => {
  const lines = createInterface({ input: server.stdout });
  lines.once('line', (line) => resolve(JSON.parse(line)));
  server.once('exit', (code) => reject(new Error(`the server exited with ${code} before it was ready`)));
});

let browser;
let page;
const pageErrors = [];
try {
  browser = await chromium.launch({ executablePath: process.env.CONCERTMASTER_CHROMIUM ?? '/usr/bin/chromium', headless: true, args: ['--no-sandbox'] });
  page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
  page.on('pageerror', (err) => pageErrors.push(String(err)));

  // The supplier: an invalid VAT id first.
  await page.goto(scenario.formUrl);
  await page.getByRole('heading', { name: 'supplier profile' }).waitFor();
  await page.getByLabel('Company name').fill('Nordwind Logistik GmbH');
  await page.getByLabel('VAT id').fill('not-a-vat-id');
  await page.getByLabel('Employees').fill('120');
  await page.getByLabel('Contact e-mail').fill('ap@nordwind.example');
  await page.getByRole('button', { name: 'Submit' }).click();
  const vatError = page.locator('.error[data-field="/vatId"]');
  await vatError.waitFor();
  assert.match(await vatError.innerText(), /does not match/);
  assert.equal(await page.locator('.error').count(), 1, 'only the VAT id is wrong');
  assert.equal(await page.getByLabel('Company name').inputValue(), 'Nordwind Logistik GmbH', 'answers are kept');
  await page.screenshot({ path: `${artefacts}portal-error.png` });
  await page.getByLabel('VAT id').fill('DE123456789');
  await page.getByRole('button', { name: 'Submit' }).click();
  await page.getByRole('heading', { name: 'Thank you' }).waitFor();

  // The reviewer approves it in the inbox.
  await page.goto(`${scenario.base}/inbox`);
  await page.locator('#key').fill(scenario.reviewerKey);
  await page.getByRole('button', { name: 'Load' }).click();
  const row = page.locator('tbody tr');
  await row.first().waitFor();
  assert.equal(await row.count(), 1);
  assert.match(await row.innerText(), /Nordwind Logistik GmbH/);
  assert.match(await row.innerText(), /\*\*\*/, 'the e-mail is masked for a reviewer');
  await page.screenshot({ path: `${artefacts}inbox.png` });
  await row.getByRole('button', { name: 'Approve' }).click();
  await page.getByText('Approved response').waitFor();

  // The run completes.
  await page.goto(`${scenario.base}/runs/view?id=${scenario.runId}`);
  await page.locator('#status.succeeded').waitFor({ timeout: 15_000 });
  const collect = page.locator('#timeline tr', { hasText: 'collect' });
  assert.match(await collect.innerText(), /succeeded/);
  await page.screenshot({ path: `${artefacts}run.png` });

  // The editor is served by the same service, and works on its API: the
  // service's node types, its workflows opened, validated and published,
  // and the run above shown in <RunView>.
  const editor = await page.goto(`${scenario.base}/editor/`);
  assert.equal(editor.status(), 200);
  await page.getByTestId('palette-sap_export').waitFor();
  await page.getByTestId('api-key').fill(scenario.adminKey);
  await page.getByTestId('connect').click();
  await page.getByTestId('message').getByText(/Connected: \d+ node types/).waitFor();
  await page.getByTestId('open-workflow').selectOption('onboard-one');
  await page.getByTestId('node-review').waitFor();
  assert.equal(await page.locator('.react-flow__node').count(), 5);
  await page.getByTestId('validate').click();
  await page.getByTestId('message').getByText('The service would publish it').waitFor();
  await page.getByTestId('publish').click();
  await page.getByTestId('message').getByText('Published onboard-one version 2').waitFor();
  await page.getByTestId('tab-runs').click();
  await page.getByTestId(`run-${scenario.runId}`).click();
  const runView = page.getByTestId('run-view');
  await runView.waitFor();
  assert.equal(await runView.getAttribute('data-run-status'), 'succeeded');
  for (const node of ['start', 'send', 'wait', 'review', 'collect']) {
    assert.equal(await runView.getByTestId(`run-node-${node}`).getAttribute('data-status'), 'succeeded', node);
  }
  await runView.getByTestId('run-node-review').click();
  await runView.getByTestId('run-node-details').getByText('Output').waitFor();
  await page.screenshot({ path: `${artefacts}editor-run-view.png` });

  assert.deepEqual(pageErrors, [], 'no errors in the pages');
  console.log(`service e2e passed; screenshots in ${artefacts}`);
} catch (err) {
  await mkdir(artefacts, { recursive: true });
  await page?.screenshot({ path: `${artefacts}service-failure.png` });
  throw err;
} finally {
  await browser?.close();
  server.kill('SIGINT');
}
