// The Cameras page, the first page after login: every device camgate
// knows, with a live tile per camera (internal/admin/cameras.go), and the
// share links (share.go). It registers itself in window.camgatePages and
// gets the UI helpers from app.js.
'use strict';

(window.camgatePages = window.camgatePages || {}).cameras = (ui) => {
  const { h, api, render, pagehead, toast, fmtTime } = ui;
  const list = h('div', { class: 'cameras' }, h('p', { class: 'loading', text: 'Loading…' }));
  const shares = h('div', { id: 'shares' });
  render(pagehead('Cameras', h('button', { type: 'button', text: 'Add device', onclick: () => window.CamgateAddDevice(ui, load) }),
    h('button', { type: 'button', text: 'Refresh', onclick: load })),
    h('p', { class: 'muted', text: 'Live video straight from camgate: no camera port is forwarded to the internet and no plugin is needed. ' +
      'Tiles play the sub-stream; switch a tile to the main stream or full screen with its buttons.' }),
    ...(window.CamgateLive.supported() ? [] : [h('p', { class: 'panel warn', text: window.CamgateLive.unsupportedText })]),
    list, h('h2', { text: 'Share links' }), shares);
  // Each tile's player and observer, stopped on refresh and on leaving.
  let cleanups = [];
  const stopTiles = () => { cleanups.forEach((fn) => fn()); cleanups = []; };
  ui.onLeave(stopTiles);
  load();

  async function load() {
    stopTiles();
    const r = await api('GET', '/api/v1/cameras');
    if (!r.ok) { list.replaceChildren(h('p', { class: 'error', text: r.data.error || 'cannot list the cameras' })); return; }
    const cams = r.data.cameras || [];
    if (!cams.length) {
      list.replaceChildren(h('p', { class: 'empty', text: 'No devices yet. Add one with the Add device button, or camgate device add --ip <DVR address> on the command line.' }));
    } else {
      list.replaceChildren(...cams.map(deviceCard));
    }
    loadShares();
  }

  function deviceCard(d) {
    const facts = h('dl', { class: 'facts' },
      h('dt', { text: 'Address' }), h('dd', { text: d.address }),
      d.model ? [h('dt', { text: 'Model' }), h('dd', { text: d.model })] : null,
      d.firmware ? [h('dt', { text: 'Firmware' }), h('dd', { text: d.firmware })] : null,
      h('dt', { text: 'Rules' }), h('dd', { text: d.rules.length ? d.rules.join(', ') : 'none' }));
    // One tile per camera number; its streams (main, sub) are choices.
    const byCam = new Map();
    for (const c of d.channels) {
      if (!byCam.has(c.camera)) byCam.set(c.camera, []);
      byCam.get(c.camera).push(c);
    }
    const tiles = [...byCam.entries()].map(([cam, chans]) => tile(d, cam, chans));
    const findings = (d.findings || []).length
      ? h('ul', { class: 'findings', 'aria-label': `Audit findings for ${d.name}` }, ...d.findings.map((f) =>
        h('li', { class: 'finding ' + f.severity, title: f.fix }, h('span', { class: 'sev', text: f.severity }), ' ', f.title)))
      : h('p', { class: 'muted small', text: 'No audit findings from its rules and recorded firmware (run camgate audit for the device itself).' });
    return h('section', { class: 'panel device', 'data-device': d.name },
      h('h2', { text: d.name }), facts, findings,
      d.note ? h('p', { class: 'muted', text: d.note }) : null,
      tiles.length ? h('div', { class: 'tiles' }, ...tiles) : null);
  }

  function tile(d, cam, chans) {
    const playable = chans.filter((c) => c.live);
    let cur = playable.find((c) => c.stream === 'sub') || playable[0];
    const label = `${d.name} camera ${cam}`;
    const video = h('video', { class: 'live', 'aria-label': `Live video of ${label}`, muted: true, playsinline: true });
    const status = h('span', { class: 'live-state', role: 'status', text: cur ? 'connecting…' : 'not playable' });
    const box = h('figure', { class: 'tile', 'data-camera': String(cam), 'data-device': d.name }, video,
      h('figcaption', {}, h('span', { text: `Camera ${cam}` }), status));
    if (!cur) return box;
    let player = null;
    const start = () => {
      if (player) player.stop();
      box.dataset.channel = String(cur.id);
      player = window.CamgateLive.play(video, {
        url: () => cur.live,
        headers: { 'X-Camgate-Session': localStorage.getItem('camgate-session') || '' },
        onState: (st, text) => { status.textContent = st === 'playing' ? `live · ${cur.stream}` : (text ? `${st}: ${text}` : st); box.dataset.state = st; },
      });
    };
    const streamBtn = playable.length > 1 ? h('button', {
      type: 'button', class: 'small', text: 'Main stream', 'aria-label': `Switch ${label} stream`,
      onclick: () => {
        cur = playable.find((c) => c !== cur) || cur;
        streamBtn.textContent = cur.stream === 'sub' ? 'Main stream' : 'Sub-stream';
        start();
      },
    }) : null;
    const full = h('button', { type: 'button', class: 'small', text: 'Full screen', 'aria-label': `Full screen ${label}`,
      onclick: () => (box.requestFullscreen ? box.requestFullscreen() : video.webkitEnterFullscreen && video.webkitEnterFullscreen()) });
    const shareBtn = h('button', { type: 'button', class: 'small', text: 'Share', 'aria-label': `Share ${label}`, onclick: () => shareDialog(d, cur) });
    box.append(h('div', { class: 'tile-actions' }, streamBtn, full, shareBtn));
    // Play only while the tile is on screen: each tile costs the device a
    // stream while someone watches it.
    const io = new IntersectionObserver((es) => {
      for (const e of es) {
        if (e.isIntersecting && !player) start();
        else if (!e.isIntersecting && player) { player.stop(); player = null; status.textContent = 'paused (off screen)'; }
      }
    });
    io.observe(box);
    cleanups.push(() => { io.disconnect(); if (player) player.stop(); player = null; });
    return box;
  }

  function shareDialog(d, ch) {
    const expires = h('select', { name: 'expires' },
      h('option', { value: '1h', text: '1 hour' }), h('option', { value: '24h', text: '24 hours', selected: true }),
      h('option', { value: '168h', text: '7 days' }));
    const maxv = h('input', { name: 'max_viewers', type: 'number', min: '0', value: '0', inputmode: 'numeric' });
    const label = h('input', { name: 'label', maxlength: '100', placeholder: 'for the neighbour' });
    const err = h('div', { class: 'form-error', role: 'alert' });
    const form = h('form', {},
      h('h2', { text: `Share ${d.name} camera ${ch.camera} (${ch.stream})` }),
      h('p', { class: 'muted', text: 'Whoever has the link sees this one camera live, with no login, and nothing else. You can revoke it at any time.' }),
      ui.field('Expires after', expires), ui.field('Viewers at a time', maxv, '0 means no limit'), ui.field('Note', label),
      err, h('div', { class: 'formbuttons' }, h('button', { type: 'button', text: 'Cancel', onclick: ui.closeDialog }),
        h('button', { type: 'submit', class: 'primary', text: 'Create link' })));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const r = await api('POST', '/api/v1/shares', { device: d.name, channel: ch.id, expires: expires.value,
        max_viewers: Number(maxv.value) || 0, label: label.value });
      if (!r.ok) { err.textContent = (r.data.problems || []).map((p) => p.message).join('; ') || r.data.error; return; }
      const url = location.origin + r.data.path;
      const out = h('input', { id: 'share-url', readonly: true, value: url, 'aria-label': 'Share link' });
      ui.openDialog(h('h2', { text: 'Share link created' }),
        h('p', { text: `Send this link. It works until ${fmtTime(r.data.share.expires)}; it is shown only now.` }), out,
        h('div', { class: 'formbuttons' },
          h('button', { type: 'button', text: 'Copy', onclick: async () => {
            try { await navigator.clipboard.writeText(url); toast('Copied.'); } catch (e) { out.select(); toast('Selected: press Ctrl+C to copy.'); }
          } }),
          h('button', { type: 'button', class: 'primary', text: 'Done', onclick: ui.closeDialog })));
      out.select();
      loadShares();
    });
    ui.openDialog(form);
  }

  async function loadShares() {
    const r = await api('GET', '/api/v1/shares');
    if (!r.ok) { shares.replaceChildren(h('p', { class: 'muted', text: r.data.error || '' })); return; }
    const rows = (r.data.shares || []).map((s) => h('tr', { 'data-share': s.id },
      h('td', { text: s.label || s.id }), h('td', { text: `${s.device} / ${s.channel}` }),
      h('td', { text: fmtTime(s.expires) }), h('td', { class: 'num', text: String(s.viewers) + (s.max_viewers ? ` of ${s.max_viewers}` : '') }),
      h('td', { text: s.state }),
      h('td', {}, s.state === 'active' ? h('button', { type: 'button', class: 'danger small', text: 'Revoke', 'aria-label': `Revoke share ${s.label || s.id}`,
        onclick: async () => {
          const ok = await ui.confirmDialog('Revoke this link?', 'Anyone watching through it is stopped at once.', 'Revoke');
          if (!ok) return;
          const d = await api('DELETE', '/api/v1/shares/' + encodeURIComponent(s.id));
          if (d.ok) { toast('Revoked.'); loadShares(); } else toast(d.data.error, true);
        } }) : null)));
    shares.replaceChildren(rows.length
      ? h('table', { class: 'shares' }, h('thead', {}, h('tr', {}, ...['Link', 'Channel', 'Expires', 'Viewers', 'State', ''].map((t) => h('th', { text: t })))), h('tbody', {}, ...rows))
      : h('p', { class: 'empty', text: 'No share links. Use a tile\'s Share button to make one.' }));
  }
};
