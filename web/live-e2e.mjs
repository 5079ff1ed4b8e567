// Browser end-to-end test of live view and share links in real Chromium.
//
// Run by cmd/camgate/live_e2e_test.go, which starts a simulated DVR (its
// own process), `camgate serve` with that DVR in its devices section, and
// this script. As in e2e.mjs, "CHECK <what>" asks the Go side to verify
// something (the simulator's request log) and waits for "ok" on stdin;
// "METRIC <name> <value>" lines are measurements for docs/BENCHMARKS.md.
//
// The simulator stamps every frame with its camera number, a frame counter
// and the wall time (internal/sim/stamp.go); readStamp below reads them
// from a canvas grab.
//
// Environment:
//   CAMGATE_SETUP_URL  the one-time setup URL from camgate's log (required)
//   ARTIFACTS          screenshot directory (default ../artifacts/live-e2e)
//   CHROMIUM           browser binary (default /usr/bin/chromium)
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { env, check, closeInput, launch } from './harness.mjs';

const setupURL = env('CAMGATE_SETUP_URL');
const artifacts = env('ARTIFACTS', path.join(import.meta.dirname, '..', 'artifacts', 'live-e2e'));
const password = 'kiwi-lantern-47-grove';
mkdirSync(artifacts, { recursive: true });

const step = (s) => console.error(`live-e2e: ${s}`);
const metric = (k, v) => console.log(`METRIC ${k} ${v}`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const browser = await launch(['--autoplay-policy=no-user-gesture-required']);
const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 900 } });
const page = await context.newPage();
page.setDefaultTimeout(20000);
const consoleErrors = [];
page.on('console', (m) => { if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) consoleErrors.push(m.text()); });
page.on('pageerror', (e) => consoleErrors.push(String(e)));
const shot = (p, name) => p.screenshot({ path: path.join(artifacts, name), fullPage: true });

// grab draws the video's current frame on a canvas at its own size and
// reads the simulator's stamp (white block = 1) and how varied the
// picture is (a blank frame has one colour).
async function grab(p, selector) {
  return p.$eval(selector, (v) => {
    const w = v.videoWidth, hh = v.videoHeight;
    if (!w || !hh) return { ok: false, why: 'no picture size yet' };
    const c = document.createElement('canvas');
    c.width = w; c.height = hh;
    const g = c.getContext('2d', { willReadFrequently: true });
    g.drawImage(v, 0, 0, w, hh);
    const px = g.getImageData(0, 0, w, hh).data;
    const luma = (x, y) => { const i = (y * w + x) * 4; return 0.299 * px[i] + 0.587 * px[i + 1] + 0.114 * px[i + 2]; };
    const colours = new Set();
    for (let y = 8; y < hh; y += 16) for (let x = 8; x < w; x += 16) colours.add(Math.round(luma(x, y) / 8));
    const wmb = Math.floor(w / 16);
    const read = (off, n) => {
      let x = 0;
      for (let i = off; i < off + n; i++) {
        const b = wmb + i; // stamp starts at block row 1
        x = x * 2 + (luma((b % wmb) * 16 + 8, Math.floor(b / wmb) * 16 + 8) >= 128 ? 1 : 0);
      }
      return x;
    };
    return { ok: read(0, 4) === 0xA, colours: colours.size, channel: read(4, 8), counter: read(12, 24),
      stampMs: read(36, 48), now: Date.now(), currentTime: v.currentTime, width: w, height: hh };
  });
}

// plays checks that a video advances, is not blank, and shows a frame
// counter that increases; it returns the second grab.
async function plays(p, selector, label) {
  const t0 = Date.now();
  await p.waitForFunction((s) => { const v = document.querySelector(s); return v && v.readyState >= 2 && v.currentTime > 0; }, selector, { timeout: 20000 });
  const a = await grab(p, selector);
  await sleep(1200);
  const b = await grab(p, selector);
  step(`${label}: ${JSON.stringify(b)}`);
  if (!a.ok || !b.ok) throw new Error(`${label}: no simulator stamp in the picture (${JSON.stringify(a)})`);
  if (b.currentTime <= a.currentTime) throw new Error(`${label}: currentTime did not advance (${a.currentTime} then ${b.currentTime})`);
  if (b.colours < 4) throw new Error(`${label}: the frame is blank (${b.colours} colours)`);
  if (b.counter <= a.counter) throw new Error(`${label}: the frame counter did not increase (${a.counter} then ${b.counter})`);
  if (Date.now() - t0 > 25000) throw new Error(`${label}: too slow`);
  return b;
}

try {
  step('setup');
  await page.goto(setupURL);
  await page.getByRole('heading', { name: 'Welcome to camgate' }).waitFor();
  await page.getByLabel('User name').fill('owner');
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByLabel('Repeat the password').fill(password);
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.getByRole('heading', { name: 'Port Forwarding' }).waitFor();

  // 1. After login, the Cameras page comes first, and its tile plays.
  step('login lands on Cameras');
  await page.getByRole('button', { name: 'Log out' }).click();
  await page.getByLabel('User name').fill('owner');
  await page.getByLabel('Password').fill(password);
  const tLogin = Date.now();
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('heading', { name: 'Cameras' }).waitFor();
  await page.getByText('DS-7208HQHI-K1').waitFor();
  const tile = '[data-device=dvr][data-camera="1"] video';
  const ttff = await page.waitForFunction((s) => {
    const v = document.querySelector(s);
    return v && v.currentTime > 0 && performance.now() - Number(v.dataset.liveStart);
  }, tile, { timeout: 20000, polling: 'raf' });
  metric('login_to_first_frame_ms', Date.now() - tLogin);
  metric('time_to_first_frame_ms', Math.round(await ttff.jsonValue()));
  const g = await plays(page, tile, 'cameras tile');
  if (g.channel !== 1 || g.width !== 352) throw new Error(`tile shows camera ${g.channel} at ${g.width} wide, want camera 1's sub-stream (352)`);
  await shot(page, '01-cameras.png');

  // Glass to glass: the stamp is the simulator's wall clock when it made
  // the frame; the grab is when the browser shows it (same machine).
  const lat = [];
  for (let i = 0; i < 10; i++) { const x = await grab(page, tile); if (x.ok) lat.push(x.now - x.stampMs); await sleep(200); }
  lat.sort((a, b) => a - b);
  metric('glass_to_glass_ms_median', lat[Math.floor(lat.length / 2)]);

  // Main stream, then back.
  step('main stream');
  await page.getByRole('button', { name: 'Switch dvr camera 1 stream' }).click();
  await page.waitForFunction((s) => { const v = document.querySelector(s); return v && v.videoWidth === 640 && v.currentTime > 0; }, tile, { timeout: 20000 });
  await plays(page, tile, 'main stream');
  await page.getByRole('button', { name: 'Switch dvr camera 1 stream' }).click();
  await page.waitForFunction((s) => { const v = document.querySelector(s); return v && v.videoWidth === 352 && v.currentTime > 0; }, tile, { timeout: 20000 });

  // 2. Four viewers of one channel make one pull from the DVR.
  step('four viewers');
  // Leave the page, so that no pull runs, then come back with four.
  const navTo = (p, name) => p.getByRole('navigation', { name: 'Main' }).getByRole('link', { name, exact: true }).click();
  await navTo(page, 'Dashboard');
  await page.getByRole('heading', { name: 'Dashboard' }).waitFor();
  await check('mark 102');
  await navTo(page, 'Cameras');
  await plays(page, tile, 'viewer 1');
  const more = [];
  for (let i = 0; i < 3; i++) {
    const p = await context.newPage();
    await p.goto(page.url());
    more.push(p);
  }
  for (const [i, p] of more.entries()) await plays(p, tile, `viewer ${i + 2}`);
  await check('one-pull 102');
  for (const p of more) await p.close();

  // 3. A share link, made in the UI, plays in a browser with no cookies.
  step('share');
  await page.getByRole('button', { name: 'Share dvr camera 1' }).click();
  await page.getByLabel('Note').fill('neighbour');
  await page.getByRole('button', { name: 'Create link' }).click();
  const shareURL = await page.locator('#share-url').inputValue();
  await shot(page, '02-share-created.png');
  await page.getByRole('button', { name: 'Done' }).click();
  if (!/\/s\/[A-Za-z0-9_-]{43}$/.test(shareURL)) throw new Error(`share URL ${shareURL}: want /s/<43-character secret>`);

  const guest = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 390, height: 844 } });
  if ((await guest.cookies()).length) throw new Error('the guest context has cookies');
  const gp = await guest.newPage();
  gp.setDefaultTimeout(20000);
  const tShare = Date.now();
  await gp.goto(shareURL);
  metric('share_page_load_ms', Date.now() - tShare);
  const sttff = await gp.waitForFunction(() => {
    const v = document.querySelector('#video');
    return v && v.currentTime > 0 && performance.now() - Number(v.dataset.liveStart);
  }, null, { timeout: 20000, polling: 'raf' });
  metric('share_page_load_to_first_frame_ms', Date.now() - tShare);
  metric('share_time_to_first_frame_ms', Math.round(await sttff.jsonValue()));
  const sg = await plays(gp, '#video', 'share page');
  if (sg.channel !== 1) throw new Error(`share shows camera ${sg.channel}, want 1`);
  await gp.getByText('neighbour').waitFor();
  await shot(gp, '03-share-phone.png');
  if ((await guest.cookies()).length) throw new Error('the share page set cookies');

  // Nothing else: another channel, the API, the Cameras page's data.
  const base = new URL(shareURL).pathname;
  const probes = await gp.evaluate(async (b) => {
    const out = {};
    for (const p of ['/api/v1/cameras', '/api/v1/live/dvr/101', '/api/v1/shares', '/api/v1/rules', '/api/v1/status',
      b + '/stream/101', b + '/stream?channel=101', b + '/info/101', b.replace(/.$/, (c) => (c === 'A' ? 'B' : 'A')) + '/stream']) {
      const r = await fetch(p, { cache: 'no-store' });
      out[p] = r.status;
      if (r.body) r.body.cancel();
    }
    return out;
  }, base);
  step(`share probes: ${JSON.stringify(probes)}`);
  for (const [p, s] of Object.entries(probes)) {
    // /stream?channel= ignores the query: it is still the link's channel.
    if (p.endsWith('?channel=101')) continue;
    if (![401, 403, 404].includes(s)) throw new Error(`GET ${p} from the share page: got ${s}, want 401, 403 or 404`);
  }
  // The query cannot switch channels either: the stream is still camera 1
  // sub-stream, which the picture stamp proves above.

  // 4. Revoke: the guest's video stops within 1 s; a reload says why.
  step('revoke');
  await page.getByRole('button', { name: 'Revoke share neighbour' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Revoke' }).click();
  const tRevoke = Date.now();
  await page.getByText('Revoked.').waitFor();
  await gp.getByText('this link was revoked').waitFor({ timeout: 3000 });
  const stopIn = Date.now() - tRevoke;
  const t1 = await gp.$eval('#video', (v) => v.currentTime);
  await sleep(700);
  const t2 = await gp.$eval('#video', (v) => v.currentTime);
  metric('revoke_to_stop_ms', stopIn);
  if (stopIn > 1000) throw new Error(`the share page stopped ${stopIn} ms after revoke, want within 1000`);
  if (t2 !== t1) throw new Error(`the video still advances after revoke (${t1} then ${t2})`);
  await gp.reload();
  await gp.getByText('this link was revoked').waitFor();
  await shot(gp, '04-share-revoked.png');
  // The Cameras page, opened with only the link's browser, is the login
  // form: its data needs a session (the API answered 401 above).
  await gp.goto(new URL('/#/cameras', shareURL).href);
  await gp.getByRole('heading', { name: 'Log in to camgate' }).waitFor();
  if (await gp.getByText('DS-7208HQHI-K1').count()) throw new Error('the Cameras page shows devices to the guest');

  // 5. Activity: the page is renamed, and the share's view is there.
  step('activity');
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Activity', exact: true }).click();
  await page.getByRole('heading', { name: 'Activity' }).waitFor();
  await page.getByText('share.view').first().waitFor();
  await page.getByText('share.revoke').first().waitFor();
  await shot(page, '05-activity.png');

  // 6. camgate share add|list|rm through the API, with a token.
  step('cli');
  const token = await page.evaluate(async () => {
    const r = await fetch('/api/v1/tokens', { method: 'POST', body: JSON.stringify({ name: 'cli' }),
      headers: { 'Content-Type': 'application/json', 'X-Camgate-Session': localStorage.getItem('camgate-session') } });
    return (await r.json()).secret;
  });
  console.log('TOKEN ' + token);
  await check('cli');
  if (consoleErrors.length) throw new Error('console errors: ' + consoleErrors.join(' | '));
  console.log('DONE');
} catch (e) {
  await shot(page, 'failure.png').catch(() => {});
  console.error('live-e2e: FAILED: ' + (e.stack || e));
  process.exitCode = 1;
} finally {
  closeInput();
  await browser.close();
}
