// The Findings page: `camgate audit`'s findings that need no network (the
// rules' and the recorded firmware's), with the devices and rules they
// concern and how to fix each (internal/admin/events.go).
'use strict';

(window.camgatePages = window.camgatePages || {}).findings = (ui) => {
  const { h, api, render, pagehead } = ui;
  const body = h('div', { class: 'findings-page' }, h('p', { class: 'loading', text: 'Loading…' }));
  render(pagehead('Findings', h('button', { type: 'button', text: 'Refresh', onclick: load })), body);
  load();

  async function load() {
    const r = await api('GET', '/api/v1/findings');
    if (!r.ok) { body.replaceChildren(h('p', { class: 'error', text: r.data.error || 'cannot list the findings' })); return; }
    const fs = r.data.findings || [];
    body.replaceChildren(h('p', { class: 'muted', text: r.data.note }),
      fs.length ? h('ul', { class: 'findings' }, ...fs.map((f) => h('li', { class: 'panel finding ' + f.severity, 'data-id': f.id },
        h('span', { class: 'sev', text: f.severity }), ' ', h('strong', { text: f.title }),
        h('p', { class: 'small', text: 'Fix: ' + f.fix }),
        h('p', { class: 'muted small', text: [f.devices.length ? 'Devices: ' + f.devices.join(', ') : '', f.rules.length ? 'Rules: ' + f.rules.join(', ') : ''].filter(Boolean).join(' · ') }))))
        : h('p', { class: 'empty', text: 'No findings.' }));
  }
};
