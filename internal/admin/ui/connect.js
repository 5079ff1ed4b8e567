// The Connect page (issue 16, item 4): where the internet reaches this
// site, each rule's and camera's ready-to-copy URLs with the real external
// ports and a QR code of each for a phone, and what to do on the router,
// with "let camgate open the router" when the router speaks UPnP, NAT-PMP
// or PCP (it sets the rule's router flag through the rules API).
// internal/admin/connect.go serves the data and the QR codes.
'use strict';

(window.camgatePages = window.camgatePages || {}).connect = (ui) => {
  const { h, api, render, pagehead, toast } = ui;
  const body = h('div', { class: 'connect' }, h('p', { class: 'loading', text: 'Loading…' }));
  render(pagehead('Connect', h('button', { type: 'button', text: 'Refresh', onclick: load })),
    h('p', { class: 'muted', text: 'How to reach each camera and rule from the internet. Copy a URL, or point a phone at its QR code.' }),
    body);
  load();

  async function load() {
    const r = await api('GET', '/api/v1/connect');
    if (!r.ok) { body.replaceChildren(h('p', { class: 'error', text: r.data.error || 'cannot read the connect card' })); return; }
    const v = r.data;
    const pub = v.public.host
      ? h('p', { id: 'connect-public' }, 'Public address: ', h('strong', { text: v.public.host }), ` (from ${sourceText(v.public.source)})`)
      : h('p', { id: 'connect-public', class: 'warn', text: 'camgate does not know the public address: set public_ip or ddns in camgate.yaml, or turn on router automation.' });
    body.replaceChildren(
      h('section', { class: 'panel', id: 'connect-summary' }, pub,
        v.public.warning ? h('p', { class: 'warn', text: v.public.warning }) : null,
        h('p', {}, 'camgate on the LAN: ', h('strong', { text: v.lan_address })),
        v.router_protocol ? h('p', { text: `The router speaks ${v.router_protocol.toUpperCase()}: camgate can open its ports for you.` })
          : h('p', { class: 'muted', text: v.router_note || '' }),
        v.advice ? h('p', { class: 'advice', id: 'connect-advice', text: cap(v.advice) + '.' }) : null),
      h('h2', { text: 'Cameras' }),
      ...(v.cameras.length ? v.cameras.map(cameraCard) : [h('p', { class: 'empty', text: 'No cameras yet.' })]),
      h('h2', { text: 'Rules' }),
      ...(v.rules.length ? v.rules.map(ruleCard) : [h('p', { class: 'empty', text: 'No rules yet.' })]));
  }

  const sourceText = (s) => ({ ddns: 'the dynamic DNS name', router: "the router's WAN address", config: 'public_ip in camgate.yaml',
    'ddns-source': 'the address the DDNS updater saw' })[s] || s;
  const cap = (s) => s.charAt(0).toUpperCase() + s.slice(1);

  function cameraCard(c) {
    return h('section', { class: 'panel connect-camera', 'data-camera': c.name },
      h('h3', { text: c.name }), h('p', { class: 'muted small', text: c.address }),
      c.urls.length ? urlList(c.urls) : h('p', { class: 'muted', text: 'No enabled rule forwards to this camera.' }));
  }

  function ruleCard(r) {
    const open = r.can_open_router ? h('button', { type: 'button', class: 'primary open-router', text: 'Let camgate open the router', onclick: () => openRouter(r) }) : null;
    return h('section', { class: 'panel connect-rule', 'data-rule': r.name },
      h('h3', { text: r.name }),
      h('p', { class: 'forward', text: `Forward ${r.forward}` + (r.device ? ` · ${r.device}` : '') }),
      h('p', { class: r.mapped ? 'ok advice' : 'advice', text: cap(r.advice) + '.' }), open,
      r.urls.length ? urlList(r.urls) : null);
  }

  function urlList(urls) {
    return h('ul', { class: 'connect-urls' }, ...urls.map((u) => {
      const out = h('input', { type: 'text', readonly: true, value: u.url, class: 'url', 'aria-label': u.label, size: Math.min(60, u.url.length) });
      const img = h('img', { class: 'qr', alt: `QR code of ${u.url}`, width: 128, height: 128 });
      qr(img, u.qr);
      return h('li', { 'data-url': u.url },
        h('div', { class: 'muted small', text: u.label }), out,
        h('button', { type: 'button', text: 'Copy', onclick: async () => {
          try { await navigator.clipboard.writeText(u.url); toast('Copied.'); } catch (e) { out.select(); toast('Selected: press Ctrl+C to copy.'); }
        } }), img);
    }));
  }

  // qr fetches a QR code with the session header, which an <img src>
  // would not carry.
  async function qr(img, path) {
    try {
      const resp = await fetch(path, { headers: { 'X-Camgate-Session': localStorage.getItem('camgate-session') || '' }, credentials: 'same-origin', cache: 'no-store' });
      if (!resp.ok) { img.alt = 'no QR code: ' + resp.status; return; }
      // A data: URL, which the UI's Content-Security-Policy allows for
      // images (blob: it does not).
      const blob = await resp.blob();
      img.src = await new Promise((resolve, reject) => {
        const fr = new FileReader();
        fr.onload = () => resolve(fr.result);
        fr.onerror = () => reject(fr.error);
        fr.readAsDataURL(blob);
      });
    } catch (e) { img.alt = 'no QR code: ' + e.message; }
  }

  // openRouter sets the rule's router flag through the rules API, with
  // the rule's ETag, so a concurrent edit is refused rather than lost.
  async function openRouter(r) {
    const path = `/api/v1/rules/${encodeURIComponent(r.name)}`;
    const g = await api('GET', path);
    if (!g.ok) { toast(g.data.error || 'cannot read the rule', true); return; }
    const rule = Object.assign({}, g.data, { router: true });
    delete rule.etag;
    delete rule.effective;
    const p = await api('PUT', path, rule, { etag: g.data.etag });
    if (!p.ok) { toast(p.status === 412 ? 'The rule changed meanwhile: try again.' : (p.data.error || 'cannot change the rule'), true); return; }
    toast(`camgate asks the router to open ${r.forward}.`);
    load();
  }
};
