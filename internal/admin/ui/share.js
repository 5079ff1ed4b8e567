// The share page (/s/<secret>): one camera live, no login. It reads the
// link from its own address and asks camgate only about that link.
'use strict';

(() => {
  const base = location.pathname.replace(/\/+$/, '');
  const $ = (id) => document.getElementById(id);
  const video = $('video');
  let player = null;

  function gone(msg) {
    if (player) player.stop();
    player = null;
    $('tile').hidden = true;
    $('gone').textContent = msg;
    $('gone').hidden = false;
    document.title = 'Link unavailable · camgate';
  }

  async function info() {
    let r;
    try { r = await fetch(base + '/info', { cache: 'no-store', credentials: 'omit' }); } catch (e) { return { ok: false, retry: true, msg: 'cannot reach the gateway' }; }
    let data = {};
    try { data = await r.json(); } catch (e) { /* empty */ }
    return { ok: r.ok, status: r.status, data, msg: data.error || r.statusText };
  }

  async function start() {
    const i = await info();
    if (!i.ok) { gone(i.msg); return; }
    const d = i.data;
    $('title').textContent = d.label ? d.label : `Camera ${d.camera}`;
    $('cam').textContent = `${d.device} · camera ${d.camera} (${d.stream})`;
    $('about').textContent = `Live until ${new Date(d.expires).toLocaleString()}.`;
    $('tile').hidden = false;
    $('full').addEventListener('click', () => {
      const t = $('tile');
      if (t.requestFullscreen) t.requestFullscreen(); else if (video.webkitEnterFullscreen) video.webkitEnterFullscreen();
    });
    if (!window.CamgateLive.supported()) { gone(window.CamgateLive.unsupportedText); return; }
    player = window.CamgateLive.play(video, {
      url: () => base + '/stream',
      onState: (st, text) => { $('state').textContent = st === 'playing' ? 'live' : (text ? `${st}: ${text}` : st); $('tile').dataset.state = st; },
      // When a stream ends, ask whether the link still stands: a revoked
      // or expired link stops here, and the page says why.
      onEnd: (r) => {
        if (r.status === 410 || r.status === 404) { gone(r.msg); return false; }
        if (r.status === 200) {
          info().then((j) => { if (!j.ok && !j.retry) gone(j.msg); });
        }
        return true;
      },
    });
  }
  start();
})();
