// ONVIF client check for camgate's end-to-end test (internal/rtsp
// onvif_e2e_test.go): agsh/onvif, as Home Assistant's and many NVRs'
// ONVIF code paths use it, connects through camgate, reads the profiles,
// the stream URI and the snapshot URI, and prints them as JSON. The
// password comes from ONVIF_PASSWORD, never argv.
//
//   node onvif.mjs HOST PORT USER
import onvif from 'onvif';

const [hostname, port, username] = process.argv.slice(2);
const password = process.env.ONVIF_PASSWORD;
const fail = (what, err) => { console.error(`${what}: ${err && err.message ? err.message : err}`); process.exit(1); };

new onvif.Cam({ hostname, port: Number(port), username, password, timeout: 5000 }, function (err) {
  if (err) fail('connect', err);
  const profiles = (this.profiles || []).map((p) => p.$.token);
  if (profiles.length === 0) fail('profiles', 'none');
  this.getStreamUri({ protocol: 'RTSP', profileToken: profiles[0] }, (err, stream) => {
    if (err) fail('GetStreamUri', err);
    this.getSnapshotUri({ profileToken: profiles[0] }, (err, snap) => {
      if (err) fail('GetSnapshotUri', err);
      const xaddrs = Object.fromEntries(Object.entries(this.uri || {}).map(([k, v]) => [k, v.href]));
      console.log(JSON.stringify({ profiles, stream: stream.uri, snapshot: snap.uri, xaddrs }));
    });
  });
});
