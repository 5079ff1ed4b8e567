// Browser end-to-end test of the security events banner and the Findings
// page in real Chromium.
//
// Run by cmd/camgate/events_e2e_test.go after it attacked a simulated DVR
// through camgate (exploit probes, then wrong passwords until a ban). The
// script sets up the account and prints what the owner sees: the banner
// ("BANNER <text>") and the Findings page's finding ids ("FINDING <id>").
//
// Environment:
//   CAMGATE_SETUP_URL  the one-time setup URL from camgate's log (required)
//   ARTIFACTS          screenshot directory (required)
//   CHROMIUM           browser binary (default /usr/bin/chromium)
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { env, launch, createOwner, finish } from './harness.mjs';

const setupURL = env('CAMGATE_SETUP_URL');
const artifacts = env('ARTIFACTS');
const password = 'kiwi-lantern-47-grove';
mkdirSync(artifacts, { recursive: true });

const browser = await launch();
const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 900 } });
const page = await context.newPage();
page.setDefaultTimeout(20000);
try {
  await createOwner(page, setupURL, password);
  await page.getByRole('link', { name: 'Dashboard' }).click();
  await page.locator('#events-banner:not([hidden])').waitFor();
  await page.screenshot({ path: path.join(artifacts, 'banner.png'), fullPage: true });
  console.log(`BANNER ${(await page.locator('#events-banner .text').innerText()).replace(/\s+/g, ' ')}`);
  await page.getByRole('link', { name: 'Findings' }).click();
  await page.locator('.findings-page .finding').first().waitFor();
  for (const id of await page.locator('.findings-page .finding').evaluateAll((els) => els.map((e) => e.dataset.id))) console.log(`FINDING ${id}`);
  await page.screenshot({ path: path.join(artifacts, 'findings.png'), fullPage: true });
  // Dismissing hides the banner until something new happens.
  await page.getByRole('button', { name: 'Dismiss' }).click();
  await page.waitForTimeout(4000);
  console.log(`AFTER_DISMISS ${await page.locator('#events-banner').isHidden() ? 'hidden' : 'shown'}`);
  console.log('DONE');
  await finish(browser, page, artifacts);
} catch (e) {
  await finish(browser, page, artifacts, e);
}
