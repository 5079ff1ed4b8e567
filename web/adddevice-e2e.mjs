// Browser end-to-end test of the Cameras page's "Add device" in real
// Chromium.
//
// Run by cmd/camgate/adddevice_e2e_test.go with a simulated DVR (its own
// process, SADP on loopback) and `camgate serve` whose discovery probes
// that SADP address. The script discovers the DVR, enters a wrong password
// once, then the right one with two cameras; "CHECK failures 1" asks the
// Go side to confirm from the simulator's log that the DVR counted
// exactly one failed login.
//
// Environment:
//   CAMGATE_SETUP_URL  the one-time setup URL from camgate's log (required)
//   DVR_PASSWORD       the simulator's password (required)
//   ARTIFACTS          screenshot directory (required)
//   CHROMIUM           browser binary (default /usr/bin/chromium)
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { env, check, launch, createOwner, finish } from './harness.mjs';

const setupURL = env('CAMGATE_SETUP_URL');
const dvrPassword = env('DVR_PASSWORD');
const artifacts = env('ARTIFACTS');
mkdirSync(artifacts, { recursive: true });
const step = (s) => console.error(`adddevice-e2e: ${s}`);

const browser = await launch();
const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 900 } });
const page = await context.newPage();
page.setDefaultTimeout(20000);
try {
  await createOwner(page, setupURL, 'kiwi-lantern-47-grove');
  await page.getByRole('link', { name: 'Cameras' }).click();
  await page.getByRole('button', { name: 'Add device' }).click();

  step('discover');
  const dialog = page.locator('#dialog');
  await dialog.getByRole('button', { name: 'Discover on the LAN' }).click();
  await dialog.locator('.discovered li[data-ip="127.0.0.1"] button').click();
  if (await dialog.getByLabel('Address').inputValue() !== '127.0.0.1') throw new Error('picking the discovered DVR did not fill its address');
  await page.screenshot({ path: path.join(artifacts, 'discovered.png'), fullPage: true });

  step('wrong password');
  await dialog.getByLabel('Password').fill('not-the-password');
  await dialog.getByRole('button', { name: 'Add device' }).click();
  await dialog.locator('.form-error', { hasText: 'refused' }).waitFor();
  console.log(`WRONG ${await dialog.locator('.form-error').textContent()}`);
  await page.screenshot({ path: path.join(artifacts, 'wrong-password.png'), fullPage: true });
  await check('failures 1');

  step('right password, two cameras');
  await dialog.getByLabel('Password').fill(dvrPassword);
  await dialog.getByLabel('Cameras').fill('2');
  await dialog.getByRole('button', { name: 'Add device' }).click();
  await dialog.waitFor({ state: 'hidden' });
  const card = page.locator('section.device[data-device]').first();
  await card.waitFor();
  console.log(`DEVICE ${await card.getAttribute('data-device')}`);
  console.log(`TILES ${await card.locator('.tile').count()}`);
  await page.screenshot({ path: path.join(artifacts, 'added.png'), fullPage: true });
  await check('failures 1');
  console.log('DONE');
  await finish(browser, page, artifacts);
} catch (e) {
  await finish(browser, page, artifacts, e);
}
