// What every browser end-to-end script shares: its environment, the
// stdio conversation with the Go test that runs it ("CHECK <what>", then
// "ok" or "fail ..." on stdin), and the system Chromium.
import { chromium } from 'playwright-core';
import { createInterface } from 'node:readline';

// env returns the variable k, or d; a missing required one ends the script.
export function env(k, d) {
  const v = process.env[k] ?? d;
  if (v === undefined) { console.error(`${k} is not set`); process.exit(2); }
  return v;
}

const lines = createInterface({ input: process.stdin });
const waiting = [];
lines.on('line', (l) => { const w = waiting.shift(); if (w) w(l.trim()); });

// check asks the Go test to verify something and waits for its verdict.
export async function check(what) {
  console.log(`CHECK ${what}`);
  const answer = await new Promise((resolve) => waiting.push(resolve));
  if (answer !== 'ok') throw new Error(`check ${what}: ${answer}`);
}

// closeInput lets the script exit.
export function closeInput() { lines.close(); }

// launch starts the system Chromium headless; playwright-core never
// downloads a browser. A fresh temporary profile is used every time.
export function launch(extraArgs = []) {
  return chromium.launch({
    executablePath: env('CHROMIUM', '/usr/bin/chromium'),
    headless: true,
    args: ['--no-sandbox', '--headless', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync', ...extraArgs],
  });
}

// createOwner opens the one-time setup URL and creates the owner's
// account; it returns once the UI shows its first page.
export async function createOwner(page, setupURL, password) {
  await page.goto(setupURL);
  await page.getByRole('heading', { name: 'Welcome to camgate' }).waitFor();
  await page.getByLabel('User name').fill('owner');
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByLabel('Repeat the password').fill(password);
  await page.getByRole('button', { name: 'Create account' }).click();
  // The account's password is hashed with Argon2id, memory-hard by
  // design: on a loaded 2-core CI machine that alone can take seconds.
  await page.getByRole('heading', { name: 'Port Forwarding' }).waitFor({ timeout: 60000 });
}

// finish ends a script: on error it logs it, saves a failure screenshot
// and sets a failing exit code; then it lets stdin go and closes the
// browser.
export async function finish(browser, page, artifactsDir, err) {
  if (err) {
    console.error(err);
    await page.screenshot({ path: `${artifactsDir}/failure.png`, fullPage: true }).catch(() => {});
    process.exitCode = 1;
  }
  closeInput();
  await browser.close();
}
