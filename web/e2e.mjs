// Browser end-to-end test of camgate's admin UI in real Chromium.
//
// Run by cmd/camgate/admin_e2e_test.go, which starts `camgate serve`, a
// test "device" behind it, and this script. They talk over stdio: the
// script prints "CHECK <what> <rule>" when the Go side should verify
// something with a real client (curl), and waits for "ok" (or "fail ...")
// on stdin. Screenshots of every page go to $ARTIFACTS.
//
// Environment:
//   CAMGATE_SETUP_URL  the one-time setup URL from camgate's log (required)
//   RULE_PORT          external port for the rule to add (required)
//   TARGET_IP, TARGET_PORT  the test device (required)
//   ARTIFACTS          screenshot directory (default ../artifacts/admin-e2e)
//   CHROMIUM           browser binary (default /usr/bin/chromium)
//
// The browser is the system's; playwright-core never downloads one.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { env, check, closeInput, launch } from './harness.mjs';

const setupURL = env('CAMGATE_SETUP_URL');
const rulePort = env('RULE_PORT');
const targetIP = env('TARGET_IP');
const targetPort = env('TARGET_PORT');
const artifacts = env('ARTIFACTS', path.join(import.meta.dirname, '..', 'artifacts', 'admin-e2e'));
const password = 'kiwi-lantern-47-grove';
mkdirSync(artifacts, { recursive: true });

const step = (s) => console.error(`e2e: ${s}`);

const browser = await launch();
// launch() uses a fresh temporary profile (user-data-dir) every time.
const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 860 } });
const page = await context.newPage();
page.setDefaultTimeout(15000);
const consoleErrors = [];
// Refused API calls (401, 422...) are logged by Chromium as "Failed to load
// resource"; those are expected. Anything else is a bug in the UI.
page.on('console', (m) => { if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) consoleErrors.push(m.text()); });
page.on('pageerror', (e) => consoleErrors.push(String(e)));
// The UI's rule edits, kept as FuzzDecodeRule seeds (internal/admin/testdata/rules).
page.on('request', (req) => {
  if (req.method() === 'PUT' && /\/api\/v1\/rules\/[^/]+$/.test(new URL(req.url()).pathname)) {
    writeFileSync(path.join(artifacts, 'ui-edit-guard.json'), (req.postData() || '') + '\n');
  }
});
const nav = (name) => page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name, exact: true }).click();
const shot = (name) => page.screenshot({ path: path.join(artifacts, name), fullPage: true });

try {
  // 1. First-run setup with the token from the log.
  step('setup');
  await page.goto(setupURL);
  await page.getByRole('heading', { name: 'Welcome to camgate' }).waitFor();
  if (new URL(page.url()).hash.includes('token')) throw new Error('the setup token stayed in the address bar');
  await page.getByLabel('User name').fill('owner');
  await page.getByLabel('Password', { exact: true }).fill('password123');
  await page.getByText(/most common passwords|could be cracked/).waitFor();
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByLabel('Repeat the password').fill(password);
  await page.getByText('Strong enough').waitFor();
  await shot('01-setup.png');
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.getByRole('heading', { name: 'Port Forwarding' }).waitFor();

  // 2. Log out and log in again; a wrong password is refused first.
  step('login');
  await page.getByRole('button', { name: 'Log out' }).click();
  await page.getByRole('heading', { name: 'Log in to camgate' }).waitFor();
  await page.getByLabel('User name').fill('owner');
  await page.getByLabel('Password').fill('not-the-password');
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByText('wrong user name or password').waitFor();
  await page.getByLabel('Password').fill(password);
  await shot('02-login.png');
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('heading', { name: 'Cameras' }).waitFor();

  // 3. Add a TCP rule; a bad one first shows the API's messages inline.
  step('add rule');
  await nav('Port Forwarding');
  await page.getByRole('button', { name: 'Add rule' }).click();
  const dlg = page.locator('dialog');
  await dlg.getByLabel('Name').fill('DVR Web');
  await dlg.getByLabel('External Port').fill('70000');
  await dlg.getByLabel('Internal IP').fill('192.168.1.300');
  await dlg.getByRole('button', { name: 'Add rule' }).click();
  await dlg.getByText('must be lower-case letters').waitFor();
  await dlg.getByText('outside 1-65535').waitFor();
  await dlg.getByText('is not a valid IP address').waitFor();
  if (await dlg.getByLabel('External Port').getAttribute('aria-invalid') !== 'true') throw new Error('external port not marked invalid');
  await shot('03-rule-errors.png');
  await dlg.getByLabel('Name').fill('dvr-web');
  await dlg.getByLabel('Description').fill('DVR web page');
  await dlg.getByLabel('External Port').fill(rulePort);
  await dlg.getByLabel('Internal IP').fill(targetIP);
  await dlg.getByLabel('Internal Port').fill(targetPort);
  await dlg.getByRole('button', { name: 'Add rule' }).click();
  const row = page.locator('tr[data-rule="dvr-web"]');
  await row.waitFor();
  const sw = page.getByRole('switch', { name: 'Enable rule dvr-web' });
  if (!(await sw.isChecked())) throw new Error('new rule is not enabled');
  await shot('04-rules.png');

  // Test the rule from its row, with the keyboard: the dialog shows the
  // layers. camgate listens (gateway ✓) and the device answers (inside ✓);
  // with no public address known, the outside layer is "?".
  step('test rule');
  await page.getByRole('button', { name: 'Test dvr-web', exact: true }).focus();
  await page.keyboard.press('Enter');
  await dlg.getByRole('heading', { name: 'Test dvr-web' }).waitFor();
  const layerOf = (l) => dlg.locator(`li[data-layer="${l}"][data-protocol="tcp"]`);
  await layerOf('gateway').waitFor();
  const verdict = async (l) => [await layerOf(l).getAttribute('data-status'), (await layerOf(l).locator('.sym').textContent()).trim()].join(' ');
  for (const [l, want] of [['gateway', 'ok ✓'], ['inside', 'ok ✓'], ['outside', 'unknown ?']]) {
    const got = await verdict(l);
    if (got !== want) throw new Error(`test dialog, ${l} layer: got ${got}, want ${want}: ${await layerOf(l).textContent()}`);
  }
  await layerOf('gateway').getByText(/listens on 127\.0\.0\.1:\d+\/tcp/).waitFor();
  await dlg.getByText('Nothing is broken, but some layers could not be tested').waitFor();
  await shot('04b-rule-test.png');
  // A public address typed in the dialog is used for the outside layer: a
  // CGNAT one is ✗ at once, with the VPN advice (nothing is sent to it).
  await dlg.getByLabel('Public IP address').fill('100.64.0.9');
  await dlg.getByRole('button', { name: 'Test again' }).click();
  await layerOf('outside').getByText('carrier-grade NAT').waitFor();
  if ((await verdict('outside')) !== 'fail ✗') throw new Error(`outside layer with a CGNAT address: got ${await verdict('outside')}, want fail ✗`);
  await layerOf('outside').getByText(/Fix: .*VPN/).waitFor();
  if ((await verdict('gateway')) !== 'ok ✓') throw new Error('gateway layer changed with the public address');
  await page.keyboard.press('Escape');
  await dlg.waitFor({ state: 'hidden' });

  // 4. Traffic flows through it (the Go test runs curl), and it holds a
  // connection open for the Connections page.
  step('traffic');
  await check('flows dvr-web');

  // 6. The dashboard shows the bytes (checked while the rule runs:
  // disabling a rule closes it and its counters with it).
  step('dashboard');
  await nav('Dashboard');
  const card = page.locator('article[data-rule="dvr-web"]');
  await card.waitFor();
  await page.waitForFunction(() => {
    const dd = document.querySelector('article[data-rule="dvr-web"] dd[data-k="bytes_out"]');
    return dd && dd.textContent !== '0 B';
  });
  await page.waitForTimeout(8000); // samples for the sparkline (and the docs screenshot)
  const out = await card.locator('dd[data-k="bytes_out"]').textContent();
  step(`dashboard shows ${out} sent to the client`);
  await shot('05-dashboard.png');

  // Live connections, and cutting one.
  step('connections');
  await nav('Connections');
  const conn = page.getByRole('button', { name: /^Disconnect .* from dvr-web$/ });
  await conn.first().waitFor();
  await shot('06-connections.png');
  await conn.first().click();
  await check('cut dvr-web');

  // The guard, from the rule's form: the rule shows its default
  // protection (per-source limits), then the brute-force guard and the
  // exploit filter are turned on with the keyboard. The test device's port
  // is not a known web port, so the API first says which protocol the
  // guard must read, under that field; once it is HTTP the rule is saved
  // and its indicator shows the guard. The Go test then sends the
  // CVE-2021-36260 request through it (403, never reaching the device), and
  // the dashboard counts it.
  step('guard');
  await nav('Port Forwarding');
  const chipsOf = (r) => page.locator(`tr[data-rule="${r}"] td.protection [data-protection]`)
    .evaluateAll((els) => els.map((e) => e.dataset.protection).join(' '));
  await row.waitFor();
  if ((await chipsOf('dvr-web')) !== 'limits') throw new Error(`protection before: got ${await chipsOf('dvr-web')}, want limits`);
  await page.getByRole('button', { name: 'Edit rule dvr-web' }).click();
  await dlg.getByRole('heading', { name: 'Edit rule dvr-web' }).waitFor();
  const protect = dlg.locator('details.protect');
  await protect.locator('summary').focus();
  await page.keyboard.press('Enter');
  const authBox = dlg.getByLabel('Brute-force guard (auth)');
  await authBox.focus();
  await page.keyboard.press('Space');
  if (!(await authBox.isChecked())) throw new Error('Space did not turn on the brute-force guard');
  await dlg.getByLabel('Hikvision exploit filter').selectOption('on');
  await dlg.getByRole('button', { name: 'Save' }).click();
  const serviceSel = dlg.getByLabel('Protocol the guard reads');
  await dlg.getByText('needs to know the protocol').waitFor();
  await dlg.getByText('the exploit filter reads HTTP').waitFor();
  if (await serviceSel.getAttribute('aria-invalid') !== 'true') throw new Error('the guard protocol field is not marked invalid');
  if (!(await serviceSel.evaluate((el) => el === document.activeElement))) throw new Error('focus is not on the first field with a problem');
  await shot('05b-guard-errors.png');
  await serviceSel.selectOption('http');
  await dlg.getByLabel('Allow', { exact: true }).fill('127.0.0.0/8');
  await dlg.getByRole('button', { name: 'Save' }).click();
  await dlg.waitFor({ state: 'hidden' });
  await page.locator('tr[data-rule="dvr-web"] [data-protection="auth"]').waitFor();
  if ((await chipsOf('dvr-web')) !== 'allowlist limits auth hikvision') throw new Error(`protection after: got ${await chipsOf('dvr-web')}, want allowlist limits auth hikvision`);
  await shot('05c-rules-guard.png');
  await check('guard dvr-web');
  await nav('Dashboard');
  await page.waitForFunction(() => {
    const dd = document.querySelector('article[data-rule="dvr-web"] dd[data-k="guard-blocked"]');
    return dd && dd.textContent === '1';
  });
  await card.locator('[data-protection="hikvision"]').waitFor();
  await shot('05d-dashboard-guard.png');

  // 5. Disable the rule in the UI: traffic is refused.
  step('disable');
  await nav('Port Forwarding');
  await sw.waitFor();
  await sw.uncheck();
  await page.locator('tr.off[data-rule="dvr-web"]').waitFor();
  if (await sw.isChecked()) throw new Error('switch still on');
  await check('refused dvr-web');

  // camgate.yaml edited by hand while the UI is open: the banner says so,
  // a change from the UI is refused rather than overwrite the edit, and
  // the banner's button reloads the file.
  step('hand edit');
  await check('hand-edit camgate.yaml');
  const banner = page.locator('#config-banner');
  await banner.waitFor({ state: 'visible' });
  if (!/changed on disk/.test(await banner.textContent())) throw new Error(`banner: ${await banner.textContent()}`);
  await sw.check();
  await page.locator('#toast').getByText('camgate.yaml changed on disk: reload it first').waitFor();
  await page.locator('tr.off[data-rule="dvr-web"]').waitFor();
  await shot('05e-config-banner.png');
  await banner.getByRole('button', { name: 'Reload camgate.yaml' }).click();
  await banner.waitFor({ state: 'hidden' });
  await check('hand-edit kept');

  // API token, shown once; the Go test uses it with `camgate rule list`.
  step('tokens');
  await nav('API tokens');
  await page.locator('main').getByLabel('Name').fill('cli');
  await page.getByRole('button', { name: 'Create token' }).click();
  const secret = (await page.locator('#token-secret').textContent()).trim();
  console.log(`TOKEN ${secret}`);
  await check('cli dvr-web');
  // The same token runs a rule check through the API, as a script would.
  await check('api-check dvr-web');
  await page.getByRole('button', { name: 'Done' }).click();
  await page.getByRole('button', { name: 'Revoke token cli' }).waitFor();
  await shot('07-tokens.png');

  step('audit');
  await nav('Activity');
  await page.getByText('rule.disable').waitFor();
  await page.getByText('connection.kill').waitFor();
  await shot('08-audit.png');

  step('preset');
  await nav('Port Forwarding');
  await page.getByRole('button', { name: 'Hikvision DVR/NVR preset' }).click();
  await dlg.getByLabel('DVR/NVR address').fill('192.168.1.64');
  const server = dlg.getByRole('switch', { name: /Server\/SDK port/ });
  if (await server.isChecked()) throw new Error('the server port row is on by default');
  // Issue 14: plain HTTP and the DVR's own HTTPS passed through stay off.
  for (const name of [/plain HTTP/, /passed through/]) {
    if (await dlg.getByRole('switch', { name }).isChecked()) throw new Error(`the ${name} row is on by default`);
  }
  await dlg.getByText('frequent target of attacks').waitFor();
  await shot('09-preset.png');
  await dlg.getByRole('button', { name: 'Cancel' }).click();

  step('bans and account');
  await nav('Bans');
  await page.getByRole('heading', { name: 'Bans' }).waitFor();
  await shot('10-bans.png');

  if (await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Router', exact: true }).isVisible()) {
    await nav('Router');
    await page.getByRole('heading', { name: 'Router' }).waitFor();
    await page.waitForTimeout(300);
    await shot('10-router.png');
  }
  await nav('Account');
  await page.getByRole('heading', { name: 'Change password' }).waitFor();
  await shot('11-account.png');

  // Readable on a phone: the table turns into cards.
  step('phone');
  await page.setViewportSize({ width: 390, height: 844 });
  await nav('Port Forwarding');
  await row.waitFor();
  await shot('12-rules-phone.png');
  // The test dialog on a phone: the rule is disabled now, so the gateway
  // layer is ✗ with the fix, and nothing runs off the screen.
  await page.getByRole('button', { name: 'Test dvr-web', exact: true }).click();
  await layerOf('gateway').waitFor();
  if ((await verdict('gateway')) !== 'fail ✗') throw new Error(`phone test dialog, gateway layer: got ${await verdict('gateway')}, want fail ✗`);
  await layerOf('gateway').getByText('the rule is disabled').waitFor();
  await layerOf('gateway').getByText(/Fix: .*enable/).waitFor();
  const fits = await page.evaluate(() => {
    const d = document.querySelector('dialog');
    return d.getBoundingClientRect().right <= window.innerWidth && d.scrollWidth <= d.clientWidth;
  });
  if (!fits) throw new Error('the test dialog is wider than the phone screen');
  await shot('12b-rule-test-phone.png');
  await dlg.getByRole('button', { name: 'Close' }).click();
  await dlg.waitFor({ state: 'hidden' });
  // The edit form on a phone: the Protection section is open (the rule
  // has a guard) and nothing runs off the screen.
  await page.getByRole('button', { name: 'Edit rule dvr-web' }).click();
  await dlg.locator('details.protect[open]').waitFor();
  if (!(await dlg.getByLabel('Brute-force guard (auth)').isChecked())) throw new Error('the form lost the brute-force guard');
  const formFits = await page.evaluate(() => {
    const d = document.querySelector('dialog');
    return d.getBoundingClientRect().right <= window.innerWidth && d.scrollWidth <= d.clientWidth;
  });
  if (!formFits) throw new Error('the rule form is wider than the phone screen');
  await dlg.getByRole('group', { name: 'Guard' }).scrollIntoViewIfNeeded();
  await shot('12c-rule-guard-phone.png');
  await page.keyboard.press('Escape');
  await dlg.waitFor({ state: 'hidden' });
  await nav('Dashboard');
  await card.waitFor();
  await shot('13-dashboard-phone.png');

  // Keyboard: the first Tab reaches the skip link.
  await page.keyboard.press('Tab');
  const focused = await page.evaluate(() => document.activeElement && document.activeElement.textContent);
  if (!/Skip to content/.test(focused || '')) throw new Error(`first Tab focused ${JSON.stringify(focused)}`);

  if (consoleErrors.length) throw new Error('browser console errors:\n' + consoleErrors.join('\n'));
  console.log('DONE');
} catch (e) {
  await shot('failure.png').catch(() => {});
  console.error('e2e: FAILED: ' + (e.stack || e));
  process.exitCode = 1;
} finally {
  closeInput();
  await browser.close();
}
