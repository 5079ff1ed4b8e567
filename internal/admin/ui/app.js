// camgate admin UI. Plain JavaScript, no framework, no build step and
// nothing fetched from anywhere but this gateway, so it works offline.
//
// A session is two halves: an HttpOnly cookie the browser sends by itself,
// and a secret this script keeps in localStorage and sends as the
// X-Camgate-Session header. See internal/admin/session.go for why.
'use strict';

(() => {
  const state = {
    session: localStorage.getItem('camgate-session') || '',
    user: '',
    expires: '',
    timer: 0,
    history: new Map(), // rule name -> [{t, bin, bout}]
    routerShown: false,
    leave: [], // functions to run when the page is left
  };
  const main = document.getElementById('main');
  const dialog = document.getElementById('dialog');

  // h builds an element: h('td', {class: 'num'}, 'text', childNode). Text
  // is always set as text, never parsed as HTML.
  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'class') el.className = v;
      else if (k === 'text') el.textContent = v;
      else if (k in el && typeof v !== 'string') el[k] = v;
      else el.setAttribute(k, v === true ? '' : v);
    }
    for (const kid of kids.flat()) {
      if (kid === undefined || kid === null || kid === false) continue;
      el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
    }
    return el;
  }

  function render(...nodes) {
    stopTimer();
    state.onStatus = null;
    // A page's onLeave hooks (live players) end with the page.
    (state.leave || []).forEach((fn) => fn());
    state.leave = [];
    main.replaceChildren(...nodes);
  }

  let toastTimer = 0;
  function toast(msg, bad) {
    const t = document.getElementById('toast');
    t.textContent = msg;
    t.className = 'toast show' + (bad ? ' bad' : '');
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { t.className = 'toast'; }, bad ? 6000 : 3000);
  }

  // api calls the REST API. It resolves to {ok, status, data, etag}; a 401
  // on a page that needs a login sends the user to the login form.
  async function api(method, path, body, opts = {}) {
    const headers = { Accept: 'application/json' };
    if (state.session) headers['X-Camgate-Session'] = state.session;
    if (body !== undefined && body !== null) headers['Content-Type'] = 'application/json';
    if (opts.etag) headers['If-Match'] = opts.etag;
    let resp;
    try {
      resp = await fetch(path, {
        method, headers, credentials: 'same-origin', cache: 'no-store',
        body: body === undefined || body === null ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      return { ok: false, status: 0, data: { error: 'cannot reach camgate: ' + e.message } };
    }
    let data = null;
    const text = await resp.text();
    if (text) { try { data = JSON.parse(text); } catch (e) { data = { error: text }; } }
    if (resp.status === 401 && !opts.noLogin) {
      state.session = '';
      localStorage.removeItem('camgate-session');
      showLogin((data && data.error) || 'Please log in.');
    }
    return { ok: resp.ok, status: resp.status, data: data || {}, etag: resp.headers.get('ETag') };
  }

  // Formatting.
  function fmtBytes(n) {
    n = Number(n) || 0;
    const u = ['B', 'kB', 'MB', 'GB', 'TB'];
    let i = 0;
    while (n >= 1000 && i < u.length - 1) { n /= 1000; i++; }
    return (i === 0 ? n.toFixed(0) : n.toFixed(n < 10 ? 2 : 1)) + ' ' + u[i];
  }
  const fmtRate = (bps) => fmtBytes(bps) + '/s';
  function fmtDur(s) {
    s = Math.max(0, Math.floor(Number(s) || 0));
    const d = Math.floor(s / 86400), hh = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
    if (d) return `${d}d ${hh}h`;
    if (hh) return `${hh}h ${m}m`;
    if (m) return `${m}m ${s % 60}s`;
    return `${s}s`;
  }
  function fmtTime(iso) {
    if (!iso || iso.startsWith('0001-')) return '—';
    const d = new Date(iso);
    return d.toLocaleString();
  }
  const portText = (p) => (p === null || p === undefined || p === '' ? '' : String(p));

  // Forms: per-field problems from the API appear under their field.
  function clearProblems(form) {
    form.querySelectorAll('.field-error').forEach((e) => e.remove());
    form.querySelectorAll('[aria-invalid]').forEach((e) => {
      e.removeAttribute('aria-invalid');
      if (e.dataset.hint) e.setAttribute('aria-describedby', e.dataset.hint); else e.removeAttribute('aria-describedby');
    });
    const fe = form.querySelector('.form-error');
    if (fe) fe.textContent = '';
  }
  function showProblems(form, data, fieldOf) {
    clearProblems(form);
    const problems = (data && data.problems) || [];
    const general = [];
    let first = null;
    for (const p of problems) {
      const name = fieldOf ? fieldOf(p) : p.field;
      const input = name && form.querySelector(`[name="${CSS.escape(name)}"]`);
      if (!input) { general.push(p.field ? `${p.field}: ${p.message}` : p.message); continue; }
      const id = 'err-' + Math.random().toString(36).slice(2);
      for (let d = input.closest('details'); d; d = d.parentElement.closest('details')) d.open = true;
      for (let x = input.closest('[hidden]'); x; x = x.parentElement.closest('[hidden]')) x.hidden = false;
      input.setAttribute('aria-invalid', 'true');
      input.setAttribute('aria-describedby', (input.dataset.hint ? input.dataset.hint + ' ' : '') + id);
      const box = input.closest('td, .fieldbox') || input;
      box.append(h('div', { class: 'field-error', id, text: p.message }));
      first = first || input;
    }
    if (!problems.length && data && data.error) general.push(data.error);
    const fe = form.querySelector('.form-error');
    if (fe) fe.textContent = general.join(' ');
    const target = first || fe;
    if (target) target.focus();
  }

  // field is a labelled input; the hint is its accessible description.
  function field(label, input, hint) {
    const id = input.id || ('f-' + input.name + '-' + Math.random().toString(36).slice(2, 7));
    input.id = id;
    let hintEl = null;
    if (hint) {
      hintEl = h('div', { class: 'hint', id: id + '-hint', text: hint });
      input.setAttribute('aria-describedby', hintEl.id);
      input.dataset.hint = hintEl.id;
    }
    return h('div', { class: 'fieldbox' }, h('label', { for: id, text: label }), hintEl, input);
  }

  // strengthMeter asks the server's zxcvbn check while the owner types;
  // before the account exists, the check needs the setup token.
  function strengthMeter(input, userInput, tokenOf) {
    const meter = h('meter', { min: 0, max: 4, low: 2, high: 3, optimum: 4, value: 0, 'aria-hidden': 'true' });
    const text = h('div', { class: 'strength muted', 'aria-live': 'polite' });
    let t = 0;
    input.addEventListener('input', () => {
      clearTimeout(t);
      t = setTimeout(async () => {
        if (!input.value) { meter.value = 0; text.textContent = ''; return; }
        const r = await api('POST', '/api/v1/password/check', { password: input.value.slice(0, 128), user: userInput ? userInput.value : '', token: tokenOf ? tokenOf() : '' }, { noLogin: true });
        if (!r.ok) return;
        meter.value = r.data.score;
        text.textContent = r.data.ok
          ? `Strong enough (would take ${r.data.crack_time} to crack).`
          : (r.data.problems || []).join(' ') + ' ' + (r.data.advice || '');
      }, 250);
    });
    return [meter, text];
  }

  // Dialogs.
  function openDialog(...content) {
    dialog.replaceChildren(...content);
    if (!dialog.open) dialog.showModal();
    const f = dialog.querySelector('input:not([type=hidden]), select, textarea, button.primary');
    if (f) f.focus();
  }
  function closeDialog() { if (dialog.open) dialog.close(); }
  // A closed dialog's form must not linger (hidden fields, stale ETags).
  dialog.addEventListener('close', () => dialog.replaceChildren());
  function confirmDialog(title, message, okLabel) {
    return new Promise((resolve) => {
      const ok = h('button', { type: 'button', class: 'danger solid', text: okLabel, onclick: () => { closeDialog(); resolve(true); } });
      const cancel = h('button', { type: 'button', text: 'Cancel', onclick: () => { closeDialog(); resolve(false); } });
      dialog.addEventListener('close', () => resolve(false), { once: true });
      openDialog(h('h2', { text: title }), h('p', { text: message }), h('div', { class: 'formbuttons' }, cancel, ok));
      ok.focus();
    });
  }

  // First run: the token comes in the URL fragment, which is never sent
  // to the server; it is removed from the address bar at once.
  function showSetup() {
    document.getElementById('top').hidden = true;
    let token = '';
    const m = /token=([A-Za-z0-9_-]+)/.exec(location.hash);
    if (m) token = m[1];
    history.replaceState(null, '', '/setup');
    const tokenIn = h('input', { type: 'password', name: 'token', autocomplete: 'off', required: true, value: token });
    const user = h('input', { type: 'text', name: 'user', autocomplete: 'username', value: 'admin', required: true });
    const pw = h('input', { type: 'password', name: 'password', autocomplete: 'new-password', required: true });
    const pw2 = h('input', { type: 'password', name: 'password2', autocomplete: 'new-password', required: true });
    const form = h('form', { class: 'panel narrow', novalidate: true },
      h('h1', { text: 'Welcome to camgate' }),
      h('p', { class: 'muted', text: 'Create the admin account. There is no default password: choose one only you know. ' +
        'Anyone with this account can open ports on your network.' }),
      token ? null : field('Setup token', tokenIn, 'from the setup URL in camgate\'s log'),
      token ? h('input', { type: 'hidden', name: 'token', value: token }) : null,
      field('User name', user),
      field('Password', pw, 'at least 10 characters; a passphrase of four unrelated words works well'),
      ...strengthMeter(pw, user, () => (form.elements.token ? form.elements.token.value : token)),
      field('Repeat the password', pw2),
      h('div', { class: 'form-error', role: 'alert', tabindex: '-1' }),
      h('div', { class: 'formbuttons' }, h('button', { type: 'submit', class: 'primary', text: 'Create account' })));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      if (pw.value !== pw2.value) {
        return showProblems(form, { problems: [{ field: 'password2', message: 'The passwords differ.' }] });
      }
      const r = await api('POST', '/api/v1/setup', { token: form.elements.token.value, user: user.value, password: pw.value }, { noLogin: true });
      if (!r.ok) {
        if (r.status === 401 && !form.querySelector('[name=token][type=password]')) {
          showSetupTokenField(form, tokenIn);
        }
        return showProblems(form, r.data);
      }
      loggedIn(r.data);
      toast('Account created. You are logged in.');
      location.hash = '#/rules';
      startApp();
    });
    render(form);
    (token ? user : tokenIn).focus();
  }
  function showSetupTokenField(form, tokenIn) {
    const hidden = form.querySelector('input[type=hidden][name=token]');
    if (hidden) hidden.remove();
    tokenIn.value = '';
    form.querySelector('p').after(field('Setup token', tokenIn, 'from the setup URL in camgate\'s log'));
  }

  function loggedIn(data) {
    state.session = data.session;
    state.user = data.user;
    state.expires = data.expires;
    localStorage.setItem('camgate-session', data.session);
  }

  function showLogin(msg) {
    document.getElementById('top').hidden = true;
    const user = h('input', { type: 'text', name: 'user', autocomplete: 'username', required: true });
    const pw = h('input', { type: 'password', name: 'password', autocomplete: 'current-password', required: true });
    const form = h('form', { class: 'panel narrow', novalidate: true },
      h('h1', { text: 'Log in to camgate' }),
      msg ? h('p', { class: 'muted', text: msg }) : null,
      field('User name', user), field('Password', pw),
      h('div', { class: 'form-error', role: 'alert', tabindex: '-1' }),
      h('div', { class: 'formbuttons' }, h('button', { type: 'submit', class: 'primary', text: 'Log in' })),
      h('p', { class: 'muted small', text: 'Forgot the password? On the gateway, run: camgate admin reset-password' }));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const r = await api('POST', '/api/v1/login', { user: user.value, password: pw.value }, { noLogin: true });
      if (!r.ok) { pw.value = ''; return showProblems(form, r.data); }
      loggedIn(r.data);
      if (!location.hash || location.hash === '#/' || location.pathname !== '/') history.replaceState(null, '', '/#/cameras');
      startApp();
    });
    render(form);
    user.focus();
  }

  async function startApp() {
    const r = await api('GET', '/api/v1/session');
    if (!r.ok) return;
    state.user = r.data.user;
    document.getElementById('who').textContent = r.data.user;
    document.getElementById('top').hidden = false;
    if (location.pathname !== '/') history.replaceState(null, '', '/' + (location.hash || '#/cameras'));
    const st = await api('GET', '/api/v1/status');
    if (st.ok) {
      document.getElementById('nav-router').hidden = !st.data.router;
      state.guard = st.data.guard;
    }
    route();
    statusLoop();
  }

  const pages = {
    dashboard: pageDashboard, rules: pageRules, connections: pageConnections, bans: pageBans,
    router: pageRouter, audit: pageAudit, tokens: pageTokens, account: pageAccount,
  };
  // Pages in their own files (cameras.js) register in window.camgatePages
  // and get the helpers below.
  const ui = { h, api, render, pagehead, toast, fmtTime, field, openDialog, closeDialog, confirmDialog, poll,
    fmtBytes, showProblems, clearProblems,
    onLeave: (fn) => state.leave.push(fn) };
  Object.entries(window.camgatePages || {}).forEach(([k, fn]) => { pages[k] = () => fn(ui); });
  function route() {
    if (document.getElementById('top').hidden) return;
    const name = (location.hash.replace(/^#\/?/, '') || 'cameras').split('?')[0];
    const page = pages[name] ? name : 'cameras';
    document.querySelectorAll('#nav a').forEach((a) => {
      if (a.dataset.page === page) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
    });
    document.title = (document.querySelector(`#nav a[data-page=${page}]`) || {}).textContent + ' · camgate';
    closeDialog();
    pages[page]();
    main.focus({ preventScroll: true });
  }
  window.addEventListener('hashchange', route);

  // poll runs fn now and every ms while its page is shown and the tab is
  // visible.
  function poll(fn, ms) {
    stopTimer();
    const gen = (state.gen = (state.gen || 0) + 1);
    const tick = async () => {
      if (gen !== state.gen) return;
      if (!document.hidden) await fn();
      if (gen === state.gen) state.timer = setTimeout(tick, ms);
    };
    tick();
  }
  function stopTimer() { clearTimeout(state.timer); state.gen = (state.gen || 0) + 1; }

  function pagehead(title, ...buttons) {
    return h('div', { class: 'pagehead' }, h('h1', { text: title }), h('div', { class: 'actions' }, ...buttons));
  }

  // ---- Protection (the guard, docs/SECURITY.md) ------------------------------
  // protectionItems lists what protects a rule, from the API's "effective"
  // settings (every default applied by camgate, so nothing is guessed
  // here): [key, short label, what it means].
  function protectionItems(eff) {
    eff = eff || {};
    const g = eff.guard, t = eff.tls, out = [];
    const lim = (v, unit) => (v > 0 ? `${v}${unit}` : 'no cap');
    if (eff.allow) out.push(['allowlist', 'Allowlist', 'only the sources in the Allow list may connect']);
    if (eff.deny) out.push(['denylist', 'Denylist', 'the sources in the Deny list are refused']);
    if (g && g.limits) out.push(['limits', 'Per-IP limits', `per source: ${lim(g.per_ip_connections, ' connections')}, ${lim(g.per_ip_rate, ' new per second')}`]);
    if (g && g.auth) out.push(['auth', 'Auth guard', `bans a source for ${goDur(g.ban)} after ${g.max_failures} failed logins within ${goDur(g.failure_window)}`]);
    if (g && g.hikvision) out.push(['hikvision', 'Exploit filter', 'known attacks on Hikvision devices get 403 and never reach the device']);
    if (t && t.mode === 'terminate') out.push(['tls', 'HTTPS', `camgate terminates TLS (${t.certificate} certificate) and speaks HTTP to the device`]);
    return out;
  }
  // goDur shortens Go's duration text: "30m0s" is "30m", "1h0m0s" "1h".
  const goDur = (d) => String(d || '').replace(/([hm])0s$/, '$1').replace(/h0m$/, 'h');
  // protectionChips is the compact indicator: one chip per protection,
  // the meaning in the title and for screen readers.
  function protectionChips(name, eff) {
    const items = protectionItems(eff);
    if (!items.length) {
      return h('span', { class: 'chip none', 'data-protection': 'none', title: 'anyone may connect and nothing is filtered', text: 'None' });
    }
    // Spans with list roles, so that the indicator may sit inside a
    // <summary> or a heading.
    return h('span', { class: 'chips', role: 'list', 'aria-label': `Protection of ${name}` },
      ...items.map(([k, label, what]) => h('span', { class: 'chip ' + k, role: 'listitem', 'data-protection': k, title: what },
        label, h('span', { class: 'sr', text: ': ' + what }))));
  }

  // ---- Dashboard ----------------------------------------------------------
  // The status is sampled in the background on every page (every 3 s,
  // every second on the dashboard), so the graphs already show the last
  // half minute when the dashboard opens.
  function statusLoop() {
    clearTimeout(state.statusTimer);
    const gen = (state.statusGen = (state.statusGen || 0) + 1);
    const tick = async () => {
      if (!state.session || gen !== state.statusGen) return;
      if (!document.hidden) {
        const r = await api('GET', '/api/v1/status', null, { noLogin: true });
        if (r.status === 401) return;
        if (r.ok) {
          sample(r.data);
          document.dispatchEvent(new CustomEvent('camgate:status', { detail: r.data })); // configfile.js
          if (state.onStatus) state.onStatus(r.data);
        } else if (state.onStatus) {
          state.onStatus(null, r.data.error || 'cannot load the status');
        }
      }
      if (gen === state.statusGen) state.statusTimer = setTimeout(tick, state.onStatus ? 1000 : 3000);
    };
    tick();
  }

  // sample keeps the last 30 s of counter readings per rule.
  function sample(st) {
    const t = Date.parse(st.time) / 1000;
    const seen = new Set();
    for (const r of st.rules) {
      seen.add(r.name);
      let hist = state.history.get(r.name);
      if (!hist) { hist = []; state.history.set(r.name, hist); }
      const last = hist[hist.length - 1];
      // A counter going down means the rule was restarted or disabled.
      if (last && (r.stats.bytes_in < last.bin || r.stats.bytes_out < last.bout)) hist.length = 0;
      if (!last || t > last.t) hist.push({ t, bin: r.stats.bytes_in, bout: r.stats.bytes_out });
      while (hist.length > 31) hist.shift();
    }
    for (const k of state.history.keys()) if (!seen.has(k)) state.history.delete(k);
  }

  function pageDashboard() {
    const stats = h('div', { class: 'stats', 'aria-live': 'off' });
    const cards = h('div', { class: 'cards2' });
    const err = h('div', { class: 'form-error', role: 'alert' });
    render(pagehead('Dashboard'), err, stats, h('h2', { text: 'Rules' }), cards);
    state.onStatus = (st, msg) => {
      if (!st) { err.textContent = msg; return; }
      err.textContent = st.last_error ? 'Last change failed: ' + st.last_error : '';
      drawDashboard(st, stats, cards);
    };
    statusLoop();
  }

  function drawDashboard(st, stats, cards) {
    let totalIn = 0, totalOut = 0, rateIn = 0, rateOut = 0, listening = 0, enabled = 0, refusedByGuard = 0;
    for (const r of st.rules) {
      const rates = ratesOf(state.history.get(r.name) || []);
      const cur = rates[rates.length - 1] || { i: 0, o: 0 };
      r._rate = cur;
      r._rates = rates;
      totalIn += r.stats.bytes_in; totalOut += r.stats.bytes_out;
      rateIn += cur.i; rateOut += cur.o;
      if (r.enabled) enabled++;
      if (r.state === 'listening') listening++;
      if (r.guard) refusedByGuard += guardRefusals(r.guard);
    }
    const ok = !st.last_error && listening === enabled;
    stats.replaceChildren(
      stat('Gateway', h('span', { class: 'badge ' + (ok ? 'ok' : 'warn'), text: ok ? 'Running' : 'Attention' })),
      stat('Uptime', fmtDur(st.uptime_seconds)),
      stat('Connections', `${st.connections} / ${st.max_connections}`),
      stat('Rules listening', `${listening} / ${enabled}`),
      stat('Throughput now', fmtRate(rateIn + rateOut)),
      stat('Forwarded', fmtBytes(totalIn + totalOut)),
      st.guard ? stat('Stopped by the guard', String(refusedByGuard)) : null,
      st.ddns ? ddnsStat(st.ddns) : null,
      ...(st.devices || []).map(deviceLoginStat));
    if (!st.rules.length) {
      cards.replaceChildren(h('p', { class: 'empty' }, 'No rules yet. ', h('a', { href: '#/rules', text: 'Add one on the Port Forwarding page.' })));
      return;
    }
    cards.replaceChildren(...st.rules.map((r) => ruleCard(r)));
    for (const r of st.rules) {
      const c = cards.querySelector(`[data-rule="${CSS.escape(r.name)}"] canvas`);
      if (c) sparkline(c, r._rates);
    }
  }
  // deviceLoginStat shows how close a device is to its own login lock
  // (issue 14): failed logins it counted from camgate since its last
  // success, against the guard's budget.
  function deviceLoginStat(d) {
    const held = d.budget > 0 && d.failures >= d.budget;
    const text = d.budget > 0 ? `${d.failures} / ${d.budget} failed logins` : `${d.failures} failed logins`;
    return stat(`Logins to ${d.device}`, h('span', { class: 'badge ' + (held || d.held_back ? 'warn' : 'ok'),
      title: 'Failed logins the device has counted from camgate since the last successful one; it locks everyone out at 7. ' +
        'Past the budget camgate holds login attempts back, except from sources that logged in before.',
      text: held ? text + ' — attempts held back' : text }));
  }
  // guardRefusals counts what the guard kept from the device.
  const guardRefusals = (g) => g.denied + g.limited + g.banned + g.blocked + g.malformed;
  // ddnsStat shows the dynamic DNS name: where it points, or what is wrong
  // and how to fix it (docs/DDNS.md).
  function ddnsStat(d) {
    const cls = { 'up to date': 'ok', waiting: 'off', retrying: 'warn', stopped: 'bad' }[d.state] || 'warn';
    const v = h('span', { 'data-ddns': d.state }, h('span', { class: 'badge ' + cls, text: d.state }));
    if (d.error) v.title = d.error + (d.fix ? '. Fix: ' + d.fix : '');
    return h('div', { class: 'stat' }, h('div', { class: 'k', text: 'Public name (DDNS)' }), h('div', { class: 'v' }, v),
      h('div', { class: 'muted small wrap', text: d.hostname + (d.address ? ' → ' + d.address : '') }),
      d.fix && d.state !== 'up to date' ? h('div', { class: 'note small wrap', text: d.fix }) : null);
  }
  function stat(k, v) { return h('div', { class: 'stat' }, h('div', { class: 'k', text: k }), h('div', { class: 'v' }, v)); }

  function ratesOf(hist) {
    const out = [];
    for (let i = 1; i < hist.length; i++) {
      const dt = hist[i].t - hist[i - 1].t;
      if (dt <= 0) continue;
      out.push({ i: Math.max(0, (hist[i].bin - hist[i - 1].bin) / dt), o: Math.max(0, (hist[i].bout - hist[i - 1].bout) / dt) });
    }
    return out;
  }

  function ruleCard(r) {
    const badge = r.state === 'listening' ? h('span', { class: 'badge ok', text: 'listening' })
      : r.state === 'disabled' ? h('span', { class: 'badge off', text: 'disabled' })
      : h('span', { class: 'badge bad', text: 'down' });
    const s = r.stats;
    const dd = (k, label, v) => h('div', null, h('dt', { text: label }), h('dd', { 'data-k': k, text: v }));
    return h('article', { class: 'rulecard', 'data-rule': r.name, 'aria-label': 'Rule ' + r.name },
      h('header', null, h('h3', { text: r.name }), badge),
      h('div', { class: 'sub', text: `${r.protocol.toUpperCase()} ${portText(r.external_port)} → ${r.internal_ip}:${portText(r.internal_port)}` }),
      pathLine(r),
      h('canvas', { width: 300, height: 64, role: 'img', 'aria-label': `Throughput of ${r.name}: ${fmtRate(r._rate.i)} in, ${fmtRate(r._rate.o)} out` }),
      h('div', { class: 'legend' }, h('span', { class: 'in', text: '━ in ' }), fmtRate(r._rate.i), '  ', h('span', { class: 'out', text: '━ out ' }), fmtRate(r._rate.o), h('span', { class: 'window', text: 'last 30 s' })),
      h('dl', null,
        dd('active', 'Active', r.protocol === 'udp' ? s.udp_sessions : s.active),
        dd('total', 'Total', s.total + s.udp_sessions_total),
        dd('refused', 'Refused', s.refused),
        dd('bytes_in', 'In (to device)', fmtBytes(s.bytes_in)),
        dd('bytes_out', 'Out (to client)', fmtBytes(s.bytes_out)),
        dd('dial_errors', 'Device errors', s.dial_errors)),
      r.guard ? guardEvents(r) : null,
      r.rtsp ? rtpEvents(r) : null);
  }

  // rtpEvents is an RTSP rule card's RTP-over-UDP section (docs/RTSP.md).
  function rtpEvents(r) {
    const p = r.rtsp;
    const dd = (k, label, v, help) => h('div', null, h('dt', { text: label, title: help }), h('dd', { 'data-k': 'rtp-' + k, text: v }));
    return h('section', { class: 'guardbox', 'aria-label': `RTP over UDP of ${r.name}` },
      h('h4', { text: 'RTP over UDP' }),
      h('dl', null,
        dd('sessions', 'RTP sessions', String(p.rtp_sessions), 'UDP tracks relayed now (one per SETUP)'),
        dd('total', 'Set up', String(p.rtp_sessions_total), 'UDP tracks set up since camgate started'),
        dd('udp_out', 'UDP out', fmtBytes(p.udp_bytes_out), 'RTP/RTCP relayed to viewers'),
        dd('udp_in', 'UDP in', fmtBytes(p.udp_bytes_in), 'RTCP and NAT punching from viewers'),
        dd('refused', 'Refused', String(p.rtp_refused), 'SETUPs answered 461: multicast, or the port range was full')));
  }

  // pathLine says which data plane forwards the rule, and why
  // (docs/KERNEL.md).
  function pathLine(r) {
    const p = r.path || {};
    if (!p.dataplane) return null;
    const text = p.dataplane === 'kernel'
      ? 'Kernel path' + (p.device_sees_viewer ? ' · the device sees the viewer\'s address' : ' · masqueraded')
      : 'Userspace: ' + p.why;
    return h('div', { class: 'path', 'data-k': 'path', title: [p.why, p.placement].filter(Boolean).join('. '), text });
  }

  // guardEvents is a rule card's guard section: what protects the rule
  // and what the guard did, since camgate started.
  function guardEvents(r) {
    const g = r.guard;
    const ev = (k, label, help) => h('div', { class: g[k] ? 'hot' : null },
      h('dt', { text: label, title: help }), h('dd', { 'data-k': 'guard-' + k, text: String(g[k]) }));
    const extra = [['bans', 'Bans issued', 'sources banned after failed logins'],
      ['lockdown', 'Held back', 'logins held back: the device\'s failure budget was spent'],
      ['tls_errors', 'TLS errors', 'failed TLS handshakes'],
      ['auth_successes', 'Logins', 'successful logins on the device']].filter(([k]) => g[k] > 0);
    return h('section', { class: 'guardbox', 'aria-label': `Guard of ${r.name}` },
      h('h4', null, 'Guard ', protectionChips(r.name, r.effective)),
      h('dl', null,
        ev('blocked', 'Blocked', 'attack requests refused by the exploit filter (403)'),
        ev('denied', 'Denied', 'refused by the Allow and Deny lists'),
        ev('banned', 'Banned', 'refused because the source is banned'),
        ev('limited', 'Limited', 'refused by a per-source limit'),
        ev('malformed', 'Malformed', 'malformed or oversized requests refused'),
        ev('auth_failures', 'Failed logins', 'logins the device refused (401)'),
        ...extra.map(([k, label, help]) => ev(k, label, help))));
  }

  function sparkline(canvas, rates) {
    const dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth || 300, ht = canvas.clientHeight || 64;
    canvas.width = Math.round(w * dpr); canvas.height = Math.round(ht * dpr);
    const g = canvas.getContext('2d');
    g.scale(dpr, dpr);
    const css = getComputedStyle(document.documentElement);
    const max = Math.max(1000, ...rates.map((x) => Math.max(x.i, x.o)));
    const n = 30;
    const x = (i) => w - (rates.length - 1 - i) * (w / n);
    const y = (v) => ht - 3 - (v / max) * (ht - 8);
    for (const [key, color] of [['o', css.getPropertyValue('--out')], ['i', css.getPropertyValue('--in')]]) {
      if (rates.length < 2) break;
      g.beginPath();
      rates.forEach((p, i) => (i ? g.lineTo(x(i), y(p[key])) : g.moveTo(x(i), y(p[key]))));
      g.strokeStyle = color.trim() || '#888';
      g.lineWidth = 2;
      g.lineJoin = 'round';
      g.stroke();
      // A light fill under the line makes small rates visible.
      g.lineTo(x(rates.length - 1), ht);
      g.lineTo(x(0), ht);
      g.closePath();
      g.globalAlpha = 0.15;
      g.fillStyle = g.strokeStyle;
      g.fill();
      g.globalAlpha = 1;
    }
    g.fillStyle = css.getPropertyValue('--muted').trim();
    g.font = '10px system-ui, sans-serif';
    g.fillText('peak ' + fmtRate(max), 4, 11);
  }

  // ---- Rules (the router's Port Forwarding page) --------------------------
  async function pageRules() {
    const body = h('tbody');
    const table = h('table', { class: 'cards' },
      h('caption', { class: 'muted small', hidden: true, text: 'Port forwarding rules' }),
      h('thead', null, h('tr', null,
        ...['Name', 'Description', 'External Port', 'Internal IP', 'Internal Port', 'Protocol', 'Protection'].map((c) => h('th', { scope: 'col', text: c })),
        h('th', { scope: 'col', text: 'Enabled' }), h('th', { scope: 'col' }, h('span', { class: 'sr', text: 'Actions' })))),
      body);
    render(
      pagehead('Port Forwarding',
        h('button', { type: 'button', class: 'primary', id: 'add-rule', text: 'Add rule', onclick: () => ruleForm(null) }),
        h('button', { type: 'button', id: 'preset-hik', text: 'Hikvision DVR/NVR preset', onclick: presetForm })),
      h('p', { class: 'muted', text: 'Each row forwards connections arriving on this gateway\'s External Port to the device at Internal IP and Internal Port, ' +
        'like the "Port Forwarding / Virtual Server" menu of a home router. Changes apply at once; connections on other rules are not touched.' }),
      h('div', { class: 'tablewrap' }, table));
    await loadRules(body);
  }

  async function loadRules(body) {
    const r = await api('GET', '/api/v1/rules');
    if (!r.ok) { body.replaceChildren(h('tr', null, h('td', { colspan: 9, class: 'empty', text: r.data.error }))); return; }
    state.rules = r.data.rules;
    state.rulesETag = r.data.etag;
    if (!r.data.rules.length) {
      body.replaceChildren(h('tr', null, h('td', { colspan: 9, class: 'empty', text: 'No rules yet. Add one, or use the Hikvision preset.' })));
      return;
    }
    body.replaceChildren(...r.data.rules.map((rule) => {
      const sw = h('input', {
        type: 'checkbox', class: 'switch', role: 'switch', checked: rule.enabled,
        'aria-label': `Enable rule ${rule.name}`, 'data-rule': rule.name,
      });
      sw.addEventListener('change', async () => {
        sw.disabled = true;
        const res = await api('POST', `/api/v1/rules/${encodeURIComponent(rule.name)}/${sw.checked ? 'enable' : 'disable'}`, null, { etag: rule.etag });
        if (!res.ok) {
          toast(res.status === 412 ? 'Someone else changed this rule; the table was reloaded.' : (res.data.error || 'failed'), true);
        } else {
          toast(`Rule ${rule.name} ${sw.checked ? 'enabled' : 'disabled'}.`);
        }
        loadRules(body);
      });
      const td = (label, v, cls) => h('td', { 'data-label': label, class: cls, text: v });
      return h('tr', { class: rule.enabled ? '' : 'off', 'data-rule': rule.name },
        td('Name', rule.name, 'mono'),
        td('Description', rule.description || ''),
        td('External Port', portText(rule.external_port), 'num'),
        td('Internal IP', rule.internal_ip, 'mono'),
        td('Internal Port', portText(rule.internal_port || rule.external_port), 'num'),
        td('Protocol', (rule.protocol || 'tcp').toUpperCase()),
        h('td', { 'data-label': 'Protection', class: 'protection' }, protectionChips(rule.name, rule.effective)),
        h('td', { 'data-label': 'Enabled' }, sw),
        h('td', { 'data-label': 'Actions' }, h('div', { class: 'actions' },
          h('button', { type: 'button', text: 'Test', 'aria-label': `Test ${rule.name}`, title: 'Test this rule: gateway, device, internet', onclick: () => testRule(rule) }),
          h('button', { type: 'button', text: 'Edit', 'aria-label': `Edit rule ${rule.name}`, onclick: () => ruleForm(rule) }),
          h('button', { type: 'button', class: 'danger', text: 'Delete', 'aria-label': `Delete rule ${rule.name}`, onclick: () => deleteRule(rule, body) }))));
    }));
  }

  // ---- Test a rule (camgate check) -----------------------------------------
  // POST /api/v1/rules/{name}/check probes the rule in three layers, as
  // `camgate check` does; each layer is ✓, ✗ or ? with a reason and a fix.
  const layerInfo = {
    gateway: ['Gateway', 'camgate listens on the external port'],
    inside: ['Inside', 'the device answers camgate on the LAN'],
    outside: ['Outside', 'the port is reachable through the public address'],
  };
  const verdicts = { ok: ['✓', 'works'], fail: ['✗', 'broken'], unknown: ['?', 'cannot tell'] };
  const addrSource = { flag: 'as entered', router: 'from the router', config: 'from public_ip in camgate.yaml' };

  function testRule(rule) {
    const result = h('div', { class: 'checkresult', 'aria-live': 'polite' });
    const pub = h('input', { type: 'text', name: 'public_ip', inputmode: 'decimal', autocomplete: 'off', placeholder: '203.0.113.7' });
    const pubBox = h('details', { class: 'checkpub' }, h('summary', { text: 'Test with a public address' }),
      field('Public IP address', pub, 'the address the internet reaches this site at; empty uses the router\'s, or public_ip in camgate.yaml'));
    const again = h('button', { type: 'submit', text: 'Test again' });
    const close = h('button', { type: 'button', class: 'primary', text: 'Close', onclick: closeDialog });
    const form = h('form', { novalidate: true, class: 'checkform' },
      h('h2', { text: `Test ${rule.name}` }),
      h('p', { class: 'muted small', text: `${(rule.protocol || 'tcp').toUpperCase()} ${portText(rule.external_port)} on this gateway → ${rule.internal_ip}:${portText(rule.internal_port || rule.external_port)}` }),
      result, pubBox,
      h('div', { class: 'form-error', role: 'alert', tabindex: '-1' }),
      h('div', { class: 'formbuttons' }, again, close));
    const run = async () => {
      clearProblems(form);
      again.disabled = true;
      form.setAttribute('aria-busy', 'true');
      result.replaceChildren(h('p', { class: 'muted checking', text: 'Testing… this takes a second, or up to 15 s when something does not answer.' }));
      const ip = pub.value.trim();
      const r = await api('POST', `/api/v1/rules/${encodeURIComponent(rule.name)}/check`, ip ? { public_ip: ip } : null);
      if (!form.isConnected) return; // the dialog was closed meanwhile
      again.disabled = false;
      form.removeAttribute('aria-busy');
      if (!r.ok) {
        if (r.status === 401) { closeDialog(); return; }
        result.replaceChildren();
        if ((r.data.problems || []).some((p) => p.field === 'public_ip')) pubBox.open = true;
        return showProblems(form, r.data);
      }
      result.replaceChildren(...checkReport(r.data));
      if (r.data.public && r.data.public.class === 'unknown') pubBox.open = true;
    };
    form.addEventListener('submit', (ev) => { ev.preventDefault(); run(); });
    openDialog(form);
    close.focus();
    run();
  }

  // checkReport shows one rule's report: a verdict, the public address,
  // then the layers per protocol.
  function checkReport(rep) {
    const rr = (rep.rules || [])[0];
    if (!rr) return [h('p', { class: 'muted', text: 'Nothing was checked.' })];
    const verdict = rep.failed > 0 ? ['bad', 'Something is broken: see the ✗ lines and their fixes.']
      : rep.unknown > 0 ? ['warn', 'Nothing is broken, but some layers could not be tested (?).']
        : ['ok', 'Every layer works.'];
    const pa = rep.public || {};
    const out = [
      h('p', { class: 'checksummary ' + verdict[0] },
        h('span', { class: 'badge ' + verdict[0], text: `${rep.ok} ✓  ${rep.failed} ✗  ${rep.unknown} ?` }), ' ', verdict[1]),
      h('p', { class: 'small muted' }, pa.ip ? `Public address: ${pa.ip} (${addrSource[pa.source] || pa.source}), ${pa.class}.`
        : 'Public address: unknown. Enter it under "Test with a public address" below to test the outside layer.',
      pa.note && pa.class !== 'public' && pa.class !== 'unknown' ? ' ' + pa.note : ''),
    ];
    const protos = [...new Set(rr.results.map((x) => x.protocol))];
    for (const proto of protos) {
      if (protos.length > 1) out.push(h('h3', { class: 'checkproto', text: proto.toUpperCase() }));
      out.push(h('ol', { class: 'layers', 'aria-label': `${proto.toUpperCase()} layers` },
        ...rr.results.filter((x) => x.protocol === proto).map(layerItem)));
    }
    return out;
  }

  function layerItem(res) {
    const [name, what] = layerInfo[res.layer] || [res.layer, ''];
    const [sym, word] = verdicts[res.status] || verdicts.unknown;
    const facts = [];
    if (res.probe) facts.push(['probe', res.probe]);
    if (res.target) facts.push(['target', res.target]);
    for (const [k, v] of Object.entries(res.details || {})) facts.push([k.replace(/_/g, ' '), v]);
    return h('li', { class: 'layer', 'data-layer': res.layer, 'data-protocol': res.protocol, 'data-status': res.status },
      h('span', { class: 'sym', role: 'img', 'aria-label': word, title: word, text: sym }),
      h('div', { class: 'layerbody' },
        h('div', null, h('strong', { text: name }), ' ', h('span', { class: 'what', text: '— ' + what })),
        h('p', { class: 'reason', text: res.reason }),
        res.fix && res.status !== 'ok' ? h('p', { class: 'fix' }, h('strong', { text: 'Fix: ' }), res.fix) : null,
        facts.length ? h('details', { class: 'facts' }, h('summary', { text: 'Details' }),
          h('dl', null, ...facts.flatMap(([k, v]) => [h('dt', { text: k }), h('dd', { text: String(v) })]))) : null));
  }

  async function deleteRule(rule, body) {
    const ok = await confirmDialog(`Delete rule ${rule.name}?`,
      `Port ${portText(rule.external_port)} stops forwarding to ${rule.internal_ip} and its live connections are cut. This cannot be undone.`, 'Delete rule');
    if (!ok) return;
    const r = await api('DELETE', `/api/v1/rules/${encodeURIComponent(rule.name)}`, null, { etag: rule.etag });
    if (!r.ok) toast(r.status === 412 ? 'Someone else changed this rule; nothing was deleted.' : r.data.error, true);
    else toast(`Rule ${rule.name} deleted.`);
    loadRules(body);
  }

  const parsePort = (v) => { v = v.trim(); return v === '' ? null : (/^\d+$/.test(v) ? Number(v) : v); };
  const parseList = (v) => v.split(/[\s,]+/).map((x) => x.trim()).filter(Boolean);

  function ruleForm(rule) {
    const editing = !!rule;
    const r = rule || { protocol: 'tcp', enabled: true };
    const inp = (name, value, extra) => h('input', Object.assign({ type: 'text', name, value: value === undefined || value === null ? '' : String(value), autocomplete: 'off' }, extra || {}));
    const proto = h('select', { name: 'protocol' },
      ...[['tcp', 'TCP'], ['udp', 'UDP'], ['both', 'TCP and UDP']].map(([v, l]) => h('option', { value: v, text: l, selected: (r.protocol || 'tcp') === v })));
    const enabled = h('input', { type: 'checkbox', name: 'enabled', id: 'f-enabled', checked: r.enabled !== false });
    const prot = guardFields(r);
    const form = h('form', { novalidate: true },
      h('h2', { text: editing ? `Edit rule ${r.name}` : 'Add a port forwarding rule' }),
      h('div', { class: 'grid2' },
        field('Name', inp('name', r.name, { required: true, pattern: '[a-z0-9-]+', placeholder: 'dvr-web' }), 'lower-case letters, digits, -'),
        field('Description', inp('description', r.description, { placeholder: 'DVR web page' })),
        field('External Port', inp('external_port', portText(r.external_port), { required: true, inputmode: 'numeric', placeholder: '8082 or 10000-10009' })),
        field('Internal IP', inp('internal_ip', r.internal_ip, { required: true, placeholder: '192.168.1.64', inputmode: 'decimal' }), 'the device on your LAN'),
        field('Internal Port', inp('internal_port', portText(r.internal_port), { inputmode: 'numeric', placeholder: 'same as external' })),
        field('Protocol', proto)),
      h('div', { class: 'check fieldbox' }, enabled, h('label', { for: 'f-enabled', text: 'Enabled' })),
      prot.section,
      h('div', { class: 'form-error', role: 'alert', tabindex: '-1' }),
      h('div', { class: 'formbuttons' },
        h('button', { type: 'button', text: 'Cancel', onclick: closeDialog }),
        h('button', { type: 'submit', class: 'primary', text: editing ? 'Save' : 'Add rule' })));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const f = form.elements;
      const body = Object.assign({}, editing ? rule : {}, {
        name: f.name.value.trim(), description: f.description.value.trim(), protocol: f.protocol.value,
        external_port: parsePort(f.external_port.value), internal_ip: f.internal_ip.value.trim(),
        internal_port: parsePort(f.internal_port.value), enabled: f.enabled.checked,
        max_connections: f.max_connections.value.trim() === '' ? 0 : Number(f.max_connections.value),
      }, prot.values(editing ? rule : {}));
      delete body.etag;
      delete body.effective;
      const res = editing
        ? await api('PUT', `/api/v1/rules/${encodeURIComponent(rule.name)}`, body, { etag: rule.etag })
        : await api('POST', '/api/v1/rules', body, { etag: state.rulesETag });
      if (!res.ok) {
        if (res.status === 412) res.data = { error: 'Someone else changed the rules since you opened this form. Close it, then try again.' };
        return showProblems(form, res.data, guardFieldOf);
      }
      closeDialog();
      toast(editing ? `Rule ${body.name} saved and applied.` : `Rule ${body.name} added and listening.`);
      pageRules();
    });
    openDialog(form);
  }

  // guardFields builds the rule form's "Protection" section: who may
  // connect (allow, deny, caps) and the guard (brute-force guard, exploit
  // filter, the protocol it reads, HTTPS termination). Settings the form
  // does not show (ban time, ACME...) are kept as they are. values(rule)
  // returns the body's allow, deny, guard and tls.
  function guardFields(r) {
    const g = r.guard || {}, t = r.tls || {}, eff = r.effective || {}, eg = eff.guard || {};
    const inp = (name, value, extra) => h('input', Object.assign({ type: 'text', name, value: value === undefined || value === null ? '' : String(value), autocomplete: 'off' }, extra || {}));
    const opts = (cur, list) => list.map(([v, l]) => h('option', { value: v, text: l, selected: cur === v }));
    const check = (input, label, hint) => {
      const hintEl = h('div', { class: 'hint', id: input.id + '-hint', text: hint });
      input.setAttribute('aria-describedby', hintEl.id);
      input.dataset.hint = hintEl.id;
      return h('div', { class: 'fieldbox checkbox' }, h('div', { class: 'check' }, input, h('label', { for: input.id, text: label })), hintEl);
    };
    const tlsOn = String(t.mode || '').toLowerCase() === 'terminate';
    const auth = h('input', { type: 'checkbox', name: 'guard.auth', id: 'f-guard-auth', checked: !!g.auth });
    const tls = h('input', { type: 'checkbox', name: 'tls.mode', id: 'f-tls-mode', checked: tlsOn });
    const filter = h('select', { name: 'guard.hikvision' }, ...opts(g.hikvision === true ? 'on' : g.hikvision === false ? 'off' : '', [
      ['', 'Automatic' + (eff.guard ? (eg.hikvision ? ': on' : ': off') : '')],
      ['on', 'On'], ['off', 'Off']]));
    const service = h('select', { name: 'guard.service' }, ...opts(String(g.service || '').toLowerCase(), [
      ['', 'Automatic' + (eg.service ? ': ' + eg.service.toUpperCase() : '')],
      ['http', 'HTTP (web page, ISAPI)'], ['rtsp', 'RTSP (live video)']]));
    const certFile = inp('tls.cert_file', t.cert_file, { placeholder: '/etc/camgate/cam.crt' });
    const keyFile = inp('tls.key_file', t.key_file, { placeholder: '/etc/camgate/cam.key' });
    const certs = h('div', { class: 'grid2 certs', hidden: !tlsOn },
      field('Certificate file', certFile, 'PEM, on the gateway; leave both empty for a self-signed certificate camgate makes and keeps'),
      field('Key file', keyFile));
    tls.addEventListener('change', () => { certs.hidden = !tls.checked; });
    const num = (name, v, placeholder, hint) => field(hint[0], inp(name, v || '', { inputmode: 'decimal', placeholder }), hint[1]);
    const configured = (r.allow && r.allow.length) || (r.deny && r.deny.length) || r.max_connections ||
      Object.keys(g).length || Object.keys(t).length;
    const section = h('details', { class: 'protect', open: configured ? true : undefined },
      h('summary', null, 'Protection ', r.effective ? protectionChips(r.name, r.effective) : h('span', { class: 'muted small', text: '(optional; safe defaults)' })),
      state.guard === false ? h('p', { class: 'note', text: 'This gateway runs without its guard: only Allow, Deny and the connection cap apply.' }) : null,
      h('fieldset', null, h('legend', { text: 'Who may connect' }),
        field('Allow', h('textarea', { name: 'allow', placeholder: '203.0.113.0/24', text: (r.allow || []).join('\n') }), 'one address or CIDR per line; empty means everyone'),
        field('Deny', h('textarea', { name: 'deny', text: (r.deny || []).join('\n') }), 'wins over Allow'),
        h('div', { class: 'grid3' },
          field('Max connections', inp('max_connections', r.max_connections || '', { inputmode: 'numeric', placeholder: 'no per-rule cap' }), 'all sources together'),
          num('guard.per_ip_connections', g.per_ip_connections, '64 (default)', ['Connections per source', '-1: no cap']),
          num('guard.per_ip_rate', g.per_ip_rate, '10 (default)', ['New connections per second per source', '-1: no limit']))),
      h('fieldset', null, h('legend', { text: 'Guard' }),
        check(auth, 'Brute-force guard (auth)', `Bans a source after ${eg.max_failures ? eg.max_failures + ' failed logins' : 'repeated failed logins'}, before the device locks out every remote user (it counts them all as camgate). For web and RTSP rules.`),
        h('div', { class: 'grid2' },
          field('Hikvision exploit filter', filter, 'refuses known attacks (CVE-2021-36260, CVE-2017-7921, path traversal) with 403; automatic: on for web (HTTP) rules'),
          field('Protocol the guard reads', service, 'automatic: HTTP for ports 80, 8080, 8082 and HTTPS termination, RTSP for 554, 8554')),
        check(tls, 'HTTPS: terminate TLS here', 'Clients use https:// on this port and camgate speaks plain HTTP to the device: point the rule at the device\'s HTTP port.'),
        certs));
    const values = (orig) => {
      const f = { value: (el) => el.value.trim() };
      const number = (el) => { const v = f.value(el); if (v === '') return undefined; const n = Number(v); return Number.isFinite(n) ? n : v; };
      const guard = Object.assign({}, orig.guard || {});
      const put = (k, v) => { if (v === undefined || v === '' || v === false) delete guard[k]; else guard[k] = v; };
      put('auth', auth.checked);
      if (filter.value === '') delete guard.hikvision; else guard.hikvision = filter.value === 'on';
      put('service', service.value);
      put('per_ip_connections', number(section.querySelector('[name="guard.per_ip_connections"]')));
      put('per_ip_rate', number(section.querySelector('[name="guard.per_ip_rate"]')));
      let tlsv = {};
      if (tls.checked) {
        tlsv = Object.assign({}, orig.tls || {}, { mode: 'terminate' });
        for (const [k, el] of [['cert_file', certFile], ['key_file', keyFile]]) {
          if (f.value(el)) tlsv[k] = f.value(el); else delete tlsv[k];
        }
      }
      return {
        allow: parseList(section.querySelector('[name=allow]').value), deny: parseList(section.querySelector('[name=deny]').value),
        guard, tls: tlsv,
      };
    };
    return { section, values };
  }
  // guardFieldOf puts a problem under the control it concerns: a problem
  // with the whole guard (it reads TCP) goes under the brute-force guard,
  // one with the burst under the rate.
  function guardFieldOf(p) {
    return { guard: 'guard.auth', tls: 'tls.mode', 'guard.per_ip_burst': 'guard.per_ip_rate' }[p.field] || p.field;
  }

  // The Hikvision rows, protected by default (issue 14): the web page as
  // HTTPS that camgate serves in front of the device's HTTP port, with the
  // brute-force guard and the exploit filter; RTSP with the brute-force
  // guard. The device's own HTTPS passed through (which camgate cannot
  // read or guard), plain HTTP and the server/SDK port 8000 stay off.
  function presetForm() {
    const guarded = (service) => ({ guard: { auth: true, service } });
    const rows = [
      { key: 'https', port: 443, internal: 80, desc: 'Web page (HTTPS served by camgate, guarded)', on: true, extra: { ...guarded('http'), tls: { mode: 'terminate' } } },
      { key: 'rtsp', port: 554, desc: 'Live video (RTSP, guarded)', on: true, extra: guarded('rtsp') },
      { key: 'https-raw', port: 1443, internal: 443, desc: 'The DVR\'s own HTTPS, passed through (camgate cannot read or guard it)', on: false },
      { key: 'http', port: 80, desc: 'Web page over plain HTTP (password in clear)', on: false },
      { key: 'server', port: 8000, desc: 'Server/SDK port (iVMS-4200, Hik-Connect app)', on: false },
    ];
    const ip = h('input', { type: 'text', name: 'internal_ip', placeholder: '192.168.1.64', inputmode: 'decimal', required: true, autocomplete: 'off' });
    const prefix = h('input', { type: 'text', name: 'prefix', value: 'dvr', required: true, autocomplete: 'off' });
    const tbody = h('tbody', null, ...rows.map((row) => h('tr', { 'data-key': row.key },
      h('td', { 'data-label': 'Enabled' }, h('input', { type: 'checkbox', class: 'switch', role: 'switch', name: `on-${row.key}`, checked: row.on, 'aria-label': `Enable ${row.desc}` })),
      h('td', { 'data-label': 'Service', text: row.desc }),
      h('td', { 'data-label': 'External Port' }, h('input', { type: 'text', name: `ext-${row.key}`, value: String(row.port), inputmode: 'numeric', 'aria-label': `External port for ${row.desc}` })),
      h('td', { 'data-label': 'Internal Port', class: 'num', text: String(row.internal || row.port) }),
      h('td', { 'data-label': 'Protocol', text: 'TCP' }))));
    const form = h('form', { novalidate: true, class: 'preset' },
      h('h2', { text: 'Hikvision DVR/NVR preset' }),
      h('p', { class: 'muted small', text: 'Fills the usual Hikvision rows. Check the ports in the DVR\'s menu (Configuration → Network → Basic Settings → Port) and change the internal ones there if needed.' }),
      h('div', { class: 'grid2' }, field('DVR/NVR address', ip, 'its LAN IP address'), field('Rule name prefix', prefix, 'e.g. dvr, nvr-garage')),
      h('div', { class: 'tablewrap' }, h('table', { class: 'cards' },
        h('thead', null, h('tr', null, ...['Enabled', 'Service', 'External Port', 'Internal Port', 'Protocol'].map((c) => h('th', { scope: 'col', text: c })))),
        tbody)),
      h('p', { class: 'note', id: 'server-note', text: 'The server/SDK port 8000 is off by default: only iVMS-4200 and the Hik-Connect mobile app need it, and it is a frequent target of attacks on Hikvision devices. ' +
        'Turn it on only if you use those apps, and then limit who may connect (edit the rule\'s Allow list).' }),
      h('p', { class: 'muted small', text: 'camgate serves HTTPS itself and reads every request, so it can stop exploit attempts and wrong passwords before the DVR counts them towards its lockout. ' +
        'The DVR\'s own HTTPS passed through is invisible to camgate, and plain HTTP sends the password in clear: leave both off unless you must.' }),
      h('div', { class: 'form-error', role: 'alert', tabindex: '-1' }),
      h('div', { class: 'formbuttons' },
        h('button', { type: 'button', text: 'Cancel', onclick: closeDialog }),
        h('button', { type: 'submit', class: 'primary', text: 'Add these rules' })));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const f = form.elements;
      const pre = f.prefix.value.trim();
      const rules = rows.map((row) => ({
        name: `${pre}-${row.key}`, description: `Hikvision ${row.desc}`, protocol: 'tcp',
        external_port: parsePort(f[`ext-${row.key}`].value), internal_ip: f.internal_ip.value.trim(),
        internal_port: row.internal || row.port, enabled: f[`on-${row.key}`].checked, ...(row.extra || {}),
      }));
      const res = await api('POST', '/api/v1/rules:batch', { rules }, { etag: state.rulesETag });
      if (!res.ok) {
        if (res.status === 412) res.data = { error: 'Someone else changed the rules meanwhile. Close this form and try again.' };
        return showProblems(form, res.data, (p) => {
          const row = rows.find((x) => p.rule === `${pre}-${x.key}`);
          if (p.field === 'internal_ip') return 'internal_ip';
          if (p.field === 'name') return 'prefix';
          return row && p.field === 'external_port' ? `ext-${row.key}` : null;
        });
      }
      closeDialog();
      toast(`Added ${rules.length} rules for the DVR at ${rules[0].internal_ip}.`);
      pageRules();
    });
    openDialog(form);
  }

  // ---- Connections ---------------------------------------------------------
  function pageConnections() {
    const body = h('tbody');
    const count = h('p', { class: 'muted', 'aria-live': 'polite' });
    render(pagehead('Connections'), count,
      h('div', { class: 'tablewrap' }, h('table', { class: 'cards' },
        h('thead', null, h('tr', null, ...['Client', 'Rule', 'Protocol', 'In', 'Out', 'Duration', ''].map((c, i) => h('th', { scope: 'col', class: i >= 3 && i <= 5 ? 'num' : null, text: c })))),
        body)));
    poll(async () => {
      const r = await api('GET', '/api/v1/connections');
      if (!r.ok) return;
      const list = r.data.connections;
      count.textContent = `${r.data.total} live connection${r.data.total === 1 ? '' : 's'} and UDP sessions` + (r.data.truncated ? ` (showing ${list.length})` : '') + '. Refreshes every 2 seconds.';
      if (!list.length) { body.replaceChildren(h('tr', null, h('td', { colspan: 7, class: 'empty', text: 'Nobody is connected right now.' }))); return; }
      body.replaceChildren(...list.map((c) => h('tr', { 'data-id': String(c.id) },
        h('td', { 'data-label': 'Client', class: 'mono', text: c.client }),
        h('td', { 'data-label': 'Rule', text: c.rule }),
        h('td', { 'data-label': 'Protocol', text: c.protocol.toUpperCase() }),
        h('td', { 'data-label': 'In', class: 'num', text: fmtBytes(c.bytes_in) }),
        h('td', { 'data-label': 'Out', class: 'num', text: fmtBytes(c.bytes_out) }),
        h('td', { 'data-label': 'Duration', class: 'num', text: fmtDur(c.duration_seconds) }),
        h('td', { 'data-label': '' }, h('button', {
          type: 'button', class: 'danger', text: 'Disconnect', 'aria-label': `Disconnect ${c.client} from ${c.rule}`,
          onclick: async (ev) => {
            ev.target.disabled = true;
            const res = await api('DELETE', `/api/v1/connections/${c.id}`);
            toast(res.ok || res.status === 404 ? `Disconnected ${c.client}.` : res.data.error, !res.ok && res.status !== 404);
          },
        })))));
    }, 2000);
  }

  // ---- Bans ----------------------------------------------------------------
  async function pageBans() {
    const box = h('div');
    render(pagehead('Bans', h('button', { type: 'button', text: 'Lift all bans', id: 'unban-all', onclick: () => unban(null, box) })),
      h('p', { class: 'muted', text: 'Sources the brute-force guard has banned from a rule after repeated failed logins on the device.' }), box);
    loadBans(box);
  }
  async function loadBans(box) {
    const r = await api('GET', '/api/v1/bans');
    if (!r.ok) return;
    document.getElementById('unban-all').hidden = !r.data.supported || !r.data.bans.length;
    if (!r.data.supported) { box.replaceChildren(h('p', { class: 'panel', text: 'This gateway keeps no ban list (the guard is not active).' })); return; }
    if (!r.data.bans.length) { box.replaceChildren(h('p', { class: 'panel', text: 'Nobody is banned.' })); return; }
    const cols = Object.keys(r.data.bans[0]);
    box.replaceChildren(h('div', { class: 'tablewrap' }, h('table', { class: 'cards' },
      h('thead', null, h('tr', null, ...cols.map((c) => h('th', { scope: 'col', text: c.replace(/_/g, ' ') })), h('th'))),
      h('tbody', null, ...r.data.bans.map((b) => h('tr', null,
        ...cols.map((c) => h('td', { 'data-label': c, text: /until|since|time|expires/.test(c) ? fmtTime(b[c]) : valueText(b[c]) })),
        h('td', null, h('button', { type: 'button', text: 'Lift', onclick: () => unban(b, box) }))))))));
  }
  async function unban(b, box) {
    const q = new URLSearchParams();
    const src = b && (b.src || b.source || b.addr || b.address || b.ip);
    if (src) q.set('src', src);
    if (b && b.rule) q.set('rule', b.rule);
    if (!b && !(await confirmDialog('Lift every ban?', 'All banned sources may connect again at once.', 'Lift all'))) return;
    const r = await api('DELETE', '/api/v1/bans' + (q.toString() ? '?' + q : ''));
    toast(r.ok ? `${r.data.removed} ban(s) lifted.` : r.data.error, !r.ok);
    loadBans(box);
  }
  function valueText(v) {
    if (v === null || v === undefined) return '';
    if (typeof v === 'object') return JSON.stringify(v);
    return String(v);
  }

  // ---- Router --------------------------------------------------------------
  async function pageRouter() {
    const box = h('div');
    render(pagehead('Router', h('button', { type: 'button', text: 'Refresh', onclick: () => loadRouter(box) })),
      h('p', { class: 'muted', text: 'What camgate asked the upstream router (UPnP IGD, NAT-PMP or PCP) to forward, and what it answered.' }), box);
    loadRouter(box);
  }
  async function loadRouter(box) {
    const r = await api('GET', '/api/v1/router');
    if (!r.ok) return;
    if (!r.data.enabled) { box.replaceChildren(h('p', { class: 'panel', text: 'Router automation is off (set router.mode in camgate.yaml).' })); return; }
    box.replaceChildren(renderValue(r.data.status));
  }
  // renderValue shows any JSON: objects as definition lists, lists of
  // objects as tables.
  function renderValue(v) {
    if (Array.isArray(v)) {
      if (!v.length) return h('p', { class: 'muted', text: 'none' });
      if (typeof v[0] === 'object' && v[0] !== null) {
        const cols = [...new Set(v.flatMap((x) => Object.keys(x || {})))];
        return h('div', { class: 'tablewrap' }, h('table', { class: 'cards' },
          h('thead', null, h('tr', null, ...cols.map((c) => h('th', { scope: 'col', text: c.replace(/_/g, ' ') })))),
          h('tbody', null, ...v.map((x) => h('tr', null, ...cols.map((c) => h('td', { 'data-label': c, text: valueText(x[c]) })))))));
      }
      return h('span', { text: v.map(valueText).join(', ') });
    }
    if (v && typeof v === 'object') {
      const dl = h('dl', { class: 'panel' });
      for (const [k, x] of Object.entries(v)) {
        dl.append(h('dt', { class: 'muted small', text: k.replace(/_/g, ' ') }), h('dd', null, renderValue(x)));
      }
      return dl;
    }
    if (typeof v === 'string' && /^\d{4}-\d\d-\d\dT/.test(v)) return h('span', { text: fmtTime(v) });
    return h('span', { text: valueText(v) });
  }

  // ---- Activity (the audit log; not `camgate audit`) -----------------------
  async function pageAudit() {
    const body = h('tbody');
    render(pagehead('Activity', h('button', { type: 'button', text: 'Refresh', onclick: () => loadAudit(body) })),
      h('p', { class: 'muted', text: 'Every admin action, login attempt and share-link view, newest first. Kept in the state directory as audit.log (JSON lines).' }),
      h('div', { class: 'tablewrap' }, h('table', { class: 'cards' },
        h('thead', null, h('tr', null, ...['When', 'Who', 'Action', 'Target', 'From', 'Result', 'Detail'].map((c) => h('th', { scope: 'col', text: c })))),
        body)));
    loadAudit(body);
  }
  async function loadAudit(body) {
    const r = await api('GET', '/api/v1/audit?limit=300');
    if (!r.ok) return;
    if (!r.data.entries.length) { body.replaceChildren(h('tr', null, h('td', { colspan: 7, class: 'empty', text: 'Nothing yet.' }))); return; }
    body.replaceChildren(...r.data.entries.map((e) => h('tr', null,
      h('td', { 'data-label': 'When', text: fmtTime(e.time) }),
      h('td', { 'data-label': 'Who', text: e.who }),
      h('td', { 'data-label': 'Action', class: 'mono', text: e.action }),
      h('td', { 'data-label': 'Target', text: e.target || '' }),
      h('td', { 'data-label': 'From', class: 'mono', text: e.from }),
      h('td', { 'data-label': 'Result' }, h('span', { class: 'badge ' + (e.ok ? 'ok' : 'bad'), text: e.ok ? 'ok' : 'refused' })),
      h('td', { 'data-label': 'Detail', class: 'small', text: e.detail || '' }))));
  }

  // ---- API tokens ----------------------------------------------------------
  async function pageTokens() {
    const body = h('tbody');
    const name = h('input', { type: 'text', name: 'name', placeholder: 'backup-script', required: true, autocomplete: 'off' });
    const scope = h('select', { name: 'scope' }, h('option', { value: 'full', text: 'Full access' }), h('option', { value: 'read', text: 'Read only (status, metrics)' }));
    const form = h('form', { class: 'panel', novalidate: true },
      h('h2', { text: 'New token' }),
      h('div', { class: 'grid2' }, field('Name', name, 'what will use it'), field('Access', scope)),
      h('div', { class: 'form-error', role: 'alert', tabindex: '-1' }),
      h('div', { class: 'formbuttons' }, h('button', { type: 'submit', class: 'primary', text: 'Create token' })));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const r = await api('POST', '/api/v1/tokens', { name: name.value, scope: scope.value });
      if (!r.ok) return showProblems(form, r.data);
      name.value = '';
      clearProblems(form);
      showSecret(r.data);
      loadTokens(body);
    });
    render(pagehead('API tokens'),
      h('p', { class: 'muted', text: 'Tokens let scripts, Prometheus and "camgate rule" use the API: send "Authorization: Bearer <token>". ' +
        'A token is shown once, when it is created; camgate keeps only a hash of it.' }),
      h('div', { class: 'tablewrap' }, h('table', { class: 'cards' },
        h('thead', null, h('tr', null, ...['Name', 'Access', 'Created', 'By', 'Last used', ''].map((c) => h('th', { scope: 'col', text: c })))),
        body)),
      form);
    loadTokens(body);
  }
  function showSecret(data) {
    const secret = h('p', { class: 'secret', id: 'token-secret', text: data.secret, tabindex: '0' });
    const copy = h('button', {
      type: 'button', text: 'Copy', onclick: async () => {
        try { await navigator.clipboard.writeText(data.secret); toast('Copied.'); } catch (e) {
          const sel = window.getSelection(); const range = document.createRange();
          range.selectNodeContents(secret); sel.removeAllRanges(); sel.addRange(range);
          toast('Selected: press Ctrl+C (or long-press) to copy.');
        }
      },
    });
    openDialog(h('h2', { text: `Token ${data.token.name}` }),
      h('p', { text: 'Copy it now: it will not be shown again. Anyone holding it can ' + (data.token.scope === 'read' ? 'read the status and metrics.' : 'change your rules.') }),
      secret, h('div', { class: 'formbuttons' }, copy, h('button', { type: 'button', class: 'primary', text: 'Done', onclick: closeDialog })));
  }
  async function loadTokens(body) {
    const r = await api('GET', '/api/v1/tokens');
    if (!r.ok) return;
    if (!r.data.tokens.length) { body.replaceChildren(h('tr', null, h('td', { colspan: 6, class: 'empty', text: 'No API tokens.' }))); return; }
    body.replaceChildren(...r.data.tokens.map((t) => h('tr', null,
      h('td', { 'data-label': 'Name', text: t.name }),
      h('td', { 'data-label': 'Access', text: t.scope === 'read' ? 'read only' : 'full' }),
      h('td', { 'data-label': 'Created', text: fmtTime(t.created) }),
      h('td', { 'data-label': 'By', text: t.created_by }),
      h('td', { 'data-label': 'Last used', text: t.last_used ? fmtTime(t.last_used) : 'never (since start)' }),
      h('td', null, h('button', {
        type: 'button', class: 'danger', text: 'Revoke', 'aria-label': `Revoke token ${t.name}`,
        onclick: async () => {
          if (!(await confirmDialog(`Revoke token ${t.name}?`, 'Scripts using it stop working at once.', 'Revoke'))) return;
          const res = await api('DELETE', `/api/v1/tokens/${encodeURIComponent(t.id)}`);
          toast(res.ok ? `Token ${t.name} revoked.` : res.data.error, !res.ok);
          loadTokens(body);
        },
      })))));
  }

  // ---- Account -------------------------------------------------------------
  async function pageAccount() {
    const cur = h('input', { type: 'password', name: 'current', autocomplete: 'current-password', required: true });
    const nw = h('input', { type: 'password', name: 'new', autocomplete: 'new-password', required: true });
    const nw2 = h('input', { type: 'password', name: 'new2', autocomplete: 'new-password', required: true });
    const form = h('form', { class: 'panel', novalidate: true },
      h('h2', { text: 'Change password' }),
      field('Current password', cur), field('New password', nw), ...strengthMeter(nw), field('Repeat the new password', nw2),
      h('div', { class: 'form-error', role: 'alert', tabindex: '-1' }),
      h('div', { class: 'formbuttons' }, h('button', { type: 'submit', class: 'primary', text: 'Change password' })));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      if (nw.value !== nw2.value) return showProblems(form, { problems: [{ field: 'new2', message: 'The passwords differ.' }] });
      const r = await api('POST', '/api/v1/password', { current: cur.value, new: nw.value }, { noLogin: true });
      if (!r.ok) return showProblems(form, r.data);
      loggedIn(r.data);
      form.reset();
      toast('Password changed. Every other session was logged out.');
    });
    const s = await api('GET', '/api/v1/session');
    render(pagehead('Account'),
      h('p', { class: 'panel' }, `Logged in as ${state.user}`, s.ok && s.data.expires ? `; this session ends ${fmtTime(s.data.expires)}` : '', `. camgate ${s.data.version || ''}.`),
      form,
      h('p', { class: 'muted small', text: 'Locked out? On the gateway, run "camgate admin reset-password --config camgate.yaml"; it works without the web UI.' }));
  }

  document.getElementById('logout').addEventListener('click', async () => {
    await api('POST', '/api/v1/logout', null, { noLogin: true });
    state.session = '';
    localStorage.removeItem('camgate-session');
    history.replaceState(null, '', '/');
    showLogin('You are logged out.');
  });

  async function boot() {
    const setup = await api('GET', '/api/v1/setup', null, { noLogin: true });
    if (setup.ok && setup.data.needed) return showSetup();
    if (!state.session) return showLogin();
    const who = await api('GET', '/api/v1/session', null, { noLogin: true });
    if (!who.ok) return showLogin();
    startApp();
  }
  boot();
})();
