// camgate admin UI: the config-file banner. It shows when camgate.yaml on
// disk is not what runs: edited by hand and not yet reloaded (changes made
// here are then refused, so that the edit is never overwritten), refused
// by a reload because it is invalid, or out of step after a change that
// could not be saved nor undone. app.js hands it every status it fetches
// (the "camgate:status" event); the Reload button applies the file as
// SIGHUP does.
'use strict';

(() => {
  const banner = document.getElementById('config-banner');
  if (!banner) return;
  const text = banner.querySelector('.text');
  const button = banner.querySelector('button');

  function show(st) {
    const cf = (st && st.config_file) || {};
    const file = (st && st.config ? st.config.split('/').pop() : '') || 'camgate.yaml';
    let msg = '';
    if (cf.out_of_step) {
      msg = `The gateway and ${file} are out of step: ${cf.out_of_step}`;
    } else if (cf.refused) {
      msg = `${file} on disk was refused, so the last good config keeps running: ${cf.refused}. Fix the file, then reload it.`;
    } else if (cf.changed_on_disk) {
      msg = `${file} changed on disk and has not been reloaded. Changes made here are refused until it is, so that the edit is not lost: reload it first.`;
    }
    text.textContent = msg;
    banner.hidden = msg === '';
  }

  button.addEventListener('click', async () => {
    button.disabled = true;
    const headers = { Accept: 'application/json' };
    const session = localStorage.getItem('camgate-session');
    if (session) headers['X-Camgate-Session'] = session;
    try {
      const resp = await fetch('/api/v1/config/reload', { method: 'POST', headers, credentials: 'same-origin', cache: 'no-store' });
      const data = await resp.json().catch(() => ({}));
      if (resp.ok) {
        text.textContent = 'Reloaded.';
        banner.hidden = true;
        // Show the reloaded rules on the current page.
        window.dispatchEvent(new HashChangeEvent('hashchange'));
      } else {
        text.textContent = data.error || `reload failed (${resp.status})`;
      }
    } catch (e) {
      text.textContent = 'cannot reach camgate: ' + e.message;
    } finally {
      button.disabled = false;
    }
  });

  document.addEventListener('camgate:status', (ev) => show(ev.detail));
})();
