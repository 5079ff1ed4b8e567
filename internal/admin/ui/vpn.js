// camgate admin UI: the VPN page (the built-in WireGuard server, package
// vpn). Add a person with the cameras they may watch and an expiry, show
// their QR code once, list peers with their last handshake and traffic,
// revoke. It registers itself in window.camgatePages; app.js passes the
// helpers (ui) when the page is shown.
'use strict';

(window.camgatePages = window.camgatePages || {}).vpn = (ui) => {
  const { h, api, render, toast, field, pagehead, poll, fmtBytes, fmtTime, showProblems, clearProblems, confirmDialog, openDialog, closeDialog } = ui;

  const expiries = [['7d', '1 week'], ['30d', '30 days'], ['90d', '90 days'], ['1d', '1 day'], ['never', 'Never']];

  async function pageVPN() {
    const r = await api('GET', '/api/v1/vpn');
    if (!r.ok) return;
    if (!r.data.enabled) {
      render(pagehead('VPN'), h('div', { class: 'panel' },
        h('p', { text: 'The built-in VPN is off. It is the safer way in: a phone scans a QR code with the WireGuard app and reaches only the cameras you allow, with no camera port open to the internet.' }),
        h('p', null, 'Turn it on with ', h('code', { text: 'vpn: {enabled: true}' }), ' in camgate.yaml, forward UDP port 51820 to this gateway (or add ', h('code', { text: 'router: true' }), '), then reload.')));
      return;
    }
    const body = h('tbody');
    const info = h('p', { class: 'hint' });
    render(pagehead('VPN'), addForm(r.data.devices || [], body), info,
      h('table', { class: 'list', id: 'vpn-peers' },
        h('thead', null, h('tr', null, ...['Name', 'Address', 'Cameras', 'Expires', 'Last handshake', 'Received', 'Sent', 'Refused', ''].map((t) => h('th', { text: t })))),
        body));
    poll(() => loadPeers(body, info), 3000);
  }

  function addForm(devices, body) {
    const name = h('input', { type: 'text', name: 'name', placeholder: 'alice-phone', required: true, autocomplete: 'off' });
    const boxes = devices.map((d) => h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'allow', value: d }), ' ', d));
    const exp = h('select', { name: 'expires' }, ...expiries.map(([v, t]) => h('option', { value: v, text: t })));
    const form = h('form', { class: 'panel', novalidate: true, id: 'vpn-add' },
      h('h2', { text: 'Add a person' }),
      h('div', { class: 'grid2' },
        field('Name', name, 'lower-case letters, digits and -'),
        field('Expires', exp, 'the phone stops working then; revoke any time')),
      h('fieldset', { class: 'field' }, h('legend', { text: 'Cameras they may watch' }),
        boxes.length ? boxes : h('p', { class: 'hint', text: 'No devices yet: add your recorder with "camgate device add" first.' })),
      h('div', { class: 'form-error', role: 'alert', tabindex: '-1' }),
      h('div', { class: 'formbuttons' }, h('button', { type: 'submit', class: 'primary', text: 'Add and show QR code' })));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const allow = [...form.querySelectorAll('input[name=allow]:checked')].map((b) => b.value);
      const r = await api('POST', '/api/v1/vpn/peers', { name: name.value.trim(), allow, expires: exp.value });
      if (!r.ok) return showProblems(form, r.data);
      clearProblems(form);
      name.value = '';
      showQR(r.data);
      loadPeers(body);
    });
    return form;
  }

  // showQR shows the new peer's QR code once: the page keeps no copy, and
  // the download link works once, for ten minutes.
  function showQR(d) {
    const until = new Date(d.qr_expires).toLocaleTimeString();
    openDialog(h('h2', { text: `Scan with the WireGuard app: ${d.peer.name}` }),
      h('img', { src: 'data:image/png;base64,' + d.qr_png, alt: `WireGuard QR code for ${d.peer.name}`, id: 'vpn-qr', width: 320, height: 320 }),
      h('p', { text: 'In the WireGuard app: + then "Scan from QR code". It is shown only now: it holds the phone\'s private key.' }),
      h('p', null, h('a', { href: d.qr_url, download: `${d.peer.name}.png`, id: 'vpn-qr-link', text: 'Download the QR code' }),
        ` (works once, until ${until})`),
      h('details', null, h('summary', { text: 'Config file (for a laptop)' }), h('pre', { class: 'secret', text: d.config })),
      h('div', { class: 'formbuttons' }, h('button', { type: 'button', class: 'primary', text: 'Done', onclick: closeDialog })));
  }

  async function loadPeers(body, info) {
    const r = await api('GET', '/api/v1/vpn');
    if (!r.ok || !r.data.enabled) return;
    const v = r.data.vpn;
    if (info) info.textContent = `UDP port ${v.listen_port}, phones dial ${v.endpoint || '(set vpn.endpoint)'}; ${v.refused} packets refused in all.`;
    if (!v.peers.length) { body.replaceChildren(h('tr', null, h('td', { colspan: 9, class: 'empty', text: 'No peers yet.' }))); return; }
    body.replaceChildren(...v.peers.map((p) => h('tr', { 'data-peer': p.name },
      h('td', { 'data-label': 'Name', text: p.name }),
      h('td', { 'data-label': 'Address', text: p.address }),
      h('td', { 'data-label': 'Cameras', text: (p.allow || []).join(', ') }),
      h('td', { 'data-label': 'Expires', text: p.expired ? 'expired' : (p.expires ? fmtTime(p.expires) : 'never') }),
      h('td', { 'data-label': 'Last handshake', text: p.last_handshake ? fmtTime(p.last_handshake) : 'never' }),
      h('td', { 'data-label': 'Received', class: 'num', text: fmtBytes(p.rx_bytes) }),
      h('td', { 'data-label': 'Sent', class: 'num', text: fmtBytes(p.tx_bytes) }),
      h('td', { 'data-label': 'Refused', class: 'num', text: String(p.refused) }),
      h('td', null, h('button', { type: 'button', class: 'danger', text: 'Revoke', onclick: () => revoke(p.name, body) })))));
  }

  async function revoke(name, body) {
    if (!await confirmDialog(`Revoke ${name}?`, 'Their tunnel is cut at once; to let them back in, add them again and send a new QR code.', 'Revoke')) return;
    const r = await api('DELETE', '/api/v1/vpn/peers/' + encodeURIComponent(name));
    if (!r.ok) return toast(r.data.error || 'revoke failed', true);
    toast(`${name} revoked.`);
    loadPeers(body);
  }

  pageVPN();
};
