// Browser end-to-end test of the Connect page in real Chromium.
//
// Run by cmd/camgate/connect_e2e_test.go, which starts `camgate serve`
// with a device and its RTSP and web rules. The script sets up the
// account, opens Connect, and hands each URL it shows to the Go side with
// a screenshot of its QR code as Chromium drew it ("CHECK qr <file>
// <url>"); the Go side decodes the PNG with zbarimg and checks the URL's
// external port.
//
// Environment:
//   CAMGATE_SETUP_URL  the one-time setup URL from camgate's log (required)
//   ARTIFACTS          screenshot directory (required)
//   CHROMIUM           browser binary (default /usr/bin/chromium)
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { env, check, launch, createOwner, finish } from './harness.mjs';

const setupURL = env('CAMGATE_SETUP_URL');
const artifacts = env('ARTIFACTS');
const password = 'kiwi-lantern-47-grove';
mkdirSync(artifacts, { recursive: true });
const step = (s) => console.error(`connect-e2e: ${s}`);

const browser = await launch();
const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 900 } });
const page = await context.newPage();
page.setDefaultTimeout(20000);
const errors = [];
page.on('pageerror', (e) => errors.push(String(e)));

try {
  step('setup');
  await createOwner(page, setupURL, password);

  step('connect page');
  await page.getByRole('link', { name: 'Connect', exact: true }).click();
  await page.getByRole('heading', { name: 'Connect', exact: true }).waitFor();
  await page.locator('#connect-public strong').waitFor();
  console.log(`PUBLIC ${await page.locator('#connect-public strong').textContent()}`);
  console.log(`ADVICE ${await page.locator('#connect-advice').textContent()}`);
  await page.waitForFunction(() => [...document.querySelectorAll('img.qr')].every((i) => i.complete && i.naturalWidth > 0));
  await page.screenshot({ path: path.join(artifacts, 'connect.png'), fullPage: true });
  const items = page.locator('.connect-rule .connect-urls li');
  const n = await items.count();
  if (n === 0) throw new Error('the Connect page shows no URL');
  for (let i = 0; i < n; i++) {
    const li = items.nth(i);
    const url = await li.locator('input.url').inputValue();
    const file = path.join(artifacts, `qr-${i}.png`);
    await li.locator('img.qr').screenshot({ path: file });
    await check(`qr ${file} ${url}`);
  }
  if (errors.length) throw new Error(`page errors: ${errors.join('; ')}`);
  console.log('DONE');
  await finish(browser, page, artifacts);
} catch (e) {
  await finish(browser, page, artifacts, e);
}
