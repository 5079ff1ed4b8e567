// The Cameras page's "Add device" dialog (issue 16, item 1): discover
// devices on the LAN (SADP and WS-Discovery), enter the password once,
// pick the channels to watch. The server does what `camgate device add`
// does (internal/admin/devices.go, package enroll): it asks the device how
// many failed logins it still takes, tries the password once, plans
// guarded rules, stores the password in the state directory and records
// the device in camgate.yaml. cameras.js opens it.
'use strict';

window.CamgateAddDevice = (ui, onAdded) => {
  const { h, api, toast } = ui;
  const input = (name, attrs = {}) => h('input', Object.assign({ name, type: 'text', autocomplete: 'off' }, attrs));
  const address = input('address', { placeholder: '192.168.1.64', inputmode: 'decimal' });
  const user = input('user', { value: 'admin' });
  const password = input('password', { type: 'password', autocomplete: 'new-password' });
  const name = input('name', { placeholder: 'dvr1' });
  const cameras = input('cameras', { value: '1', inputmode: 'numeric' });
  const sub = h('input', { type: 'checkbox', name: 'sub', checked: true, id: 'add-sub' });
  const formError = h('p', { class: 'form-error error', role: 'alert' });
  const found = h('ul', { class: 'discovered', 'aria-label': 'Devices found on the LAN' });
  const submit = h('button', { type: 'submit', class: 'primary', text: 'Add device' });
  const scan = h('button', { type: 'button', text: 'Discover on the LAN', onclick: discoverLAN });

  const form = h('form', { class: 'add-device', onsubmit: add },
    h('h2', { text: 'Add a device' }),
    h('p', { class: 'muted', text: 'camgate logs in once with this password to read the model, firmware and ports, then forwards the device with the guard in front. A wrong password costs the device one of its allowed failed logins, no more.' }),
    h('div', { class: 'formbuttons' }, scan), found,
    ui.field('Address', address, 'The device\'s LAN address.'),
    ui.field('User', user),
    ui.field('Password', password, 'Stored in camgate\'s state directory, never in camgate.yaml.'),
    ui.field('Name', name, 'Optional: names the device and its rules (default dvr1, dvr2, ...).'),
    ui.field('Cameras', cameras, 'How many cameras to watch: 1 to 64. Each gets its main stream (101, 201, ...).'),
    h('div', { class: 'fieldbox' }, sub, h('label', { for: 'add-sub', text: ' and its sub-stream (102, 202, ...), which tiles play' })),
    formError,
    h('div', { class: 'formbuttons' }, h('button', { type: 'button', text: 'Cancel', onclick: ui.closeDialog }), submit));
  ui.openDialog(form);

  async function discoverLAN() {
    scan.disabled = true;
    found.replaceChildren(h('li', { class: 'muted', text: 'Looking for devices…' }));
    const r = await api('POST', '/api/v1/devices/discover', {});
    scan.disabled = false;
    if (!r.ok) { found.replaceChildren(h('li', { class: 'error', text: r.data.error || 'discovery failed' })); return; }
    const devs = r.data.devices || [];
    if (!devs.length) { found.replaceChildren(h('li', { class: 'muted', text: 'No device answered. Enter its address below.' })); return; }
    found.replaceChildren(...devs.map((d) => {
      const inactive = d.activated === false;
      return h('li', { 'data-ip': d.ip },
        h('button', { type: 'button', class: 'link', disabled: inactive, text: `${d.ip} ${d.model || ''}`.trim(), onclick: () => {
          address.value = d.ip; password.focus();
        } }),
        inactive ? ' — not activated: activate it with SADP or its own screen first, and never forward it' : '',
        d.known ? ` — already added as ${d.known}` : '');
    }));
  }

  async function add(ev) {
    ev.preventDefault();
    formError.textContent = '';
    form.querySelectorAll('.field-error').forEach((e) => e.remove());
    const n = Number(cameras.value);
    if (!Number.isInteger(n) || n < 1 || n > 64) { formError.textContent = 'Cameras: enter a number from 1 to 64.'; cameras.focus(); return; }
    const channels = [];
    for (let c = 1; c <= n; c++) { channels.push(c * 100 + 1); if (sub.checked) channels.push(c * 100 + 2); }
    submit.disabled = true;
    submit.textContent = 'Adding…';
    const r = await api('POST', '/api/v1/devices', { address: address.value.trim(), user: user.value.trim(),
      password: password.value, name: name.value.trim(), channels });
    submit.disabled = false;
    submit.textContent = 'Add device';
    if (!r.ok) {
      const probs = r.data.problems || [];
      for (const p of probs) {
        const el = form.querySelector(`[name="${CSS.escape(p.field || '')}"]`);
        if (el) el.closest('.fieldbox').append(h('div', { class: 'field-error', text: p.message }));
      }
      formError.textContent = r.data.error || 'cannot add the device';
      return;
    }
    ui.closeDialog();
    toast(`Added ${r.data.device} (${r.data.model || 'device'}): rules ${r.data.rules.join(', ')}.`);
    onAdded();
  }
};
