// camgate live player: one streaming HTTP response of fragmented MP4
// (internal/live) appended to a MediaSource. No plugin, no library. Used
// by the Cameras page (cameras.js) and the share page (share.js).
//
// iOS Safari has no MediaSource for video, but iOS 17.1 and later have
// ManagedMediaSource, which works the same way here; older iOS versions
// cannot play, and the player says so.
'use strict';

window.CamgateLive = (() => {
  const MS = window.ManagedMediaSource || window.MediaSource;

  // supported reports whether this browser can play live view at all.
  function supported() { return !!(MS && window.ReadableStream && window.fetch); }

  const unsupportedText = 'This browser cannot play live video: it has no Media Source Extensions. ' +
    'On iPhone and iPad, update to iOS 17.1 or later (Safari then has Managed Media Source); any current Chrome, Edge or Firefox works.';

  // play streams opts.url() into video until stop() is called.
  //   opts.headers:  extra request headers (the admin session)
  //   opts.onState(state, text): 'connecting', 'playing', 'reconnecting', 'error'
  //   opts.onEnd(result): called when a connection ends; return false to
  //     stop instead of reconnecting (result: {status, msg, retry})
  // It reconnects on loss, backing off up to 5 s.
  function play(video, opts) {
    let stopped = false, ac = null, timer = 0, tries = 0;
    video.muted = true; // browsers autoplay only muted video
    video.playsInline = true;
    video.disableRemotePlayback = true; // ManagedMediaSource needs it
    const onState = opts.onState || (() => {});

    async function once() {
      ac = new AbortController();
      video.dataset.liveStart = String(performance.now()); // time to first frame starts here
      let resp;
      try {
        resp = await fetch(opts.url(), { headers: opts.headers || {}, credentials: 'same-origin', cache: 'no-store', signal: ac.signal });
      } catch (e) {
        return { retry: true, status: 0, msg: 'cannot reach camgate' };
      }
      if (!resp.ok) {
        let msg = resp.statusText;
        try { msg = (await resp.json()).error || msg; } catch (e) { /* not JSON */ }
        return { retry: resp.status >= 500 || resp.status === 429, status: resp.status, msg };
      }
      const codecs = resp.headers.get('X-Content-Codecs') || 'avc1.42E01E';
      const type = `video/mp4; codecs="${codecs}"`;
      if (!MS.isTypeSupported(type)) {
        ac.abort();
        return { retry: false, status: 415, msg: `this browser cannot decode ${codecs}` };
      }
      const ms = new MS();
      const src = URL.createObjectURL(ms);
      video.src = src;
      await new Promise((res) => ms.addEventListener('sourceopen', res, { once: true }));
      URL.revokeObjectURL(src);
      const sb = ms.addSourceBuffer(type);
      sb.mode = 'segments';
      const pending = [];
      let started = false;
      const pump = () => {
        if (sb.updating || !pending.length || ms.readyState !== 'open') return;
        let n = 0;
        for (const c of pending) n += c.length;
        const buf = new Uint8Array(n);
        let o = 0;
        for (const c of pending) { buf.set(c, o); o += c.length; }
        pending.length = 0;
        try { sb.appendBuffer(buf); } catch (e) { ac.abort(); }
      };
      sb.addEventListener('updateend', () => {
        const b = video.buffered;
        if (b.length) {
          const end = b.end(b.length - 1);
          if (!started) {
            // The first response carries the frames since the last key
            // frame: start at the newest, not the oldest.
            started = true;
            tries = 0;
            video.currentTime = Math.max(b.start(0), end - 0.1);
            video.play().catch(() => {});
            onState('playing');
          } else {
            // Stay near the live edge: a little behind, play a little
            // faster; far behind (a stall), jump.
            const lag = end - video.currentTime;
            if (lag > 1.5) video.currentTime = end - 0.1;
            else video.playbackRate = lag > 0.3 ? 1.1 : 1.0;
          }
          if (video.currentTime - b.start(0) > 30) {
            try { sb.remove(b.start(0), video.currentTime - 10); return; } catch (e) { /* retry next time */ }
          }
        }
        pump();
      });
      const reader = resp.body.getReader();
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          pending.push(value);
          pump();
        }
      } catch (e) { /* aborted, or the connection dropped */ }
      return { retry: true, status: 200, msg: 'the stream ended' };
    }

    async function loop() {
      while (!stopped) {
        onState(tries ? 'reconnecting' : 'connecting');
        const r = await once();
        if (stopped) return;
        if (opts.onEnd && opts.onEnd(r) === false) { halt(); return; }
        if (!r.retry) { halt(); onState('error', r.msg); return; }
        tries++;
        onState('reconnecting', r.msg);
        await new Promise((res) => { timer = setTimeout(res, Math.min(5000, 500 * tries)); });
      }
    }
    // halt stops the picture at once: a revoked link must not play on from
    // the buffer.
    function halt() {
      if (ac) ac.abort();
      video.pause();
      video.removeAttribute('src');
      video.load();
    }
    function stop() { stopped = true; clearTimeout(timer); halt(); }
    if (!supported()) onState('error', unsupportedText); else loop();
    return { stop };
  }

  return { play, supported, unsupportedText };
})();
