// camgate admin UI: the security events banner (issue 16, item 5). It
// shows, on every page, a device that is locking camgate out (the guard's
// device-login status in /api/v1/status "devices") and the security
// events since the owner last dismissed the banner: bans, exploit-filter
// blocks, a refused config file (/api/v1/events, internal/admin/events.go).
// app.js hands it every status it fetches (the "camgate:status" event).
'use strict';

(() => {
  const banner = document.getElementById('events-banner');
  if (!banner) return;
  const text = banner.querySelector('.text');
  const dismiss = banner.querySelector('button');
  const seenKey = 'camgate-events-seen';
  let newest = '';
  let busy = false;

  const kindText = { ban: ['ban', 'bans'], block: ['blocked exploit attempt', 'blocked exploit attempts'],
    'device-lockout': ['device lockout warning', 'device lockout warnings'], 'config-refused': ['refused config file', 'refused config files'] };
  const plural = (n, k) => `${n} ${(kindText[k] || [k, k])[n === 1 ? 0 : 1]}`;

  async function show(st) {
    if (busy) return;
    busy = true;
    try {
      const lines = [];
      for (const d of (st && st.devices) || []) {
        if (d.held_back > 0 || (d.budget > 0 && d.failures >= d.budget)) {
          lines.push(`Device ${d.device} is locking camgate out: it counted ${d.failures} failed logins` +
            (d.budget ? ` of ${d.budget} allowed` : '') + `; camgate holds further logins back (${d.held_back} so far) until one succeeds.`);
        }
      }
      const seen = localStorage.getItem(seenKey) || new Date(Date.now() - 24 * 3600e3).toISOString();
      const headers = { Accept: 'application/json', 'X-Camgate-Session': localStorage.getItem('camgate-session') || '' };
      const resp = await fetch('/api/v1/events?since=' + encodeURIComponent(seen), { headers, credentials: 'same-origin', cache: 'no-store' });
      if (resp.ok) {
        const data = await resp.json();
        const evs = (data.events || []).filter((e) => e.kind !== 'device-lockout');
        if (evs.length) {
          newest = evs[0].time;
          const counts = {};
          evs.forEach((e) => { counts[e.kind] = (counts[e.kind] || 0) + 1; });
          lines.push(`Security events: ${Object.entries(counts).map(([k, n]) => plural(n, k)).join(', ')}. Latest: ${evs[0].message}`);
        }
        if (data.notify && data.notify.last_error) lines.push(`Notifications are failing: ${data.notify.last_error}`);
      }
      text.replaceChildren(...lines.map((l) => Object.assign(document.createElement('p'), { textContent: l })));
      banner.hidden = lines.length === 0;
      dismiss.hidden = !newest;
    } catch (e) {
      // The status loop tries again in a few seconds.
    } finally {
      busy = false;
    }
  }

  dismiss.addEventListener('click', () => {
    if (newest) localStorage.setItem(seenKey, newest);
    banner.hidden = true;
  });
  document.addEventListener('camgate:status', (ev) => show(ev.detail));
})();
