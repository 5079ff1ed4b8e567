// Browser end-to-end test of the admin UI's VPN page in real Chromium.
//
// Run by cmd/camgate/vpn_e2e_test.go (TestVPNPageInChromium), which starts
// camgate with the VPN on and a device, creates the owner account, and runs
// this script inside the gw namespace. The script logs in, adds a person
// with one camera, checks the QR code is shown once and that its one-time
// link works once (the Go side decodes the PNG with zbarimg), and revokes
// the person.
//
// Environment: CAMGATE_URL, CAMGATE_USER, CAMGATE_PASSWORD, ARTIFACTS,
// CHROMIUM.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { env, check, closeInput, launch } from './harness.mjs';

const base = env('CAMGATE_URL');
const artifacts = env('ARTIFACTS');
mkdirSync(artifacts, { recursive: true });
const step = (s) => console.error(`vpn-e2e: ${s}`);

const browser = await launch();
const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 860 } });
const page = await context.newPage();
page.setDefaultTimeout(15000);
const errors = [];
page.on('console', (m) => { if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) errors.push(m.text()); });
page.on('pageerror', (e) => errors.push(String(e)));
const shot = (name) => page.screenshot({ path: path.join(artifacts, name), fullPage: true });

try {
  step('login');
  await page.goto(base + '/login');
  await page.getByLabel('User name').fill(env('CAMGATE_USER'));
  await page.getByLabel('Password', { exact: true }).fill(env('CAMGATE_PASSWORD'));
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('navigation', { name: 'Main' }).waitFor();

  step('add a person');
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'VPN', exact: true }).click();
  await page.getByRole('heading', { name: 'Add a person' }).waitFor();
  await page.getByLabel('Name').fill('carol-phone');
  await page.getByLabel('dvr1').check();
  await page.getByLabel('Expires').selectOption('7d');
  await page.getByRole('button', { name: 'Add and show QR code' }).click();
  await page.locator('#vpn-qr').waitFor();
  await shot('vpn-qr.png');

  step('one-time QR link');
  const href = await page.locator('#vpn-qr-link').getAttribute('href');
  const first = await page.request.get(base + href);
  if (first.status() !== 200 || first.headers()['content-type'] !== 'image/png') throw new Error(`QR link: got ${first.status()} ${first.headers()['content-type']}`);
  const png = path.join(artifacts, 'carol-phone.png');
  writeFileSync(png, await first.body());
  await check(`qr ${png}`);
  const second = await page.request.get(base + href);
  if (second.status() !== 404) throw new Error(`QR link used twice: got ${second.status()}`);

  step('listed, then revoked');
  await page.getByRole('button', { name: 'Done' }).click();
  const row = page.locator('tr[data-peer="carol-phone"]');
  await row.waitFor();
  if (!(await row.textContent()).includes('dvr1')) throw new Error('the peer row does not name dvr1');
  await shot('vpn-peers.png');
  await row.getByRole('button', { name: 'Revoke' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Revoke' }).click();
  await row.waitFor({ state: 'detached' });
  await check('revoked carol-phone');
  if (errors.length) throw new Error('console errors: ' + errors.join('; '));
  console.log('DONE');
} catch (e) {
  await shot('vpn-failure.png').catch(() => {});
  console.error(`vpn-e2e: ${e.stack || e}`);
  process.exitCode = 1;
} finally {
  closeInput();
  await browser.close();
}
