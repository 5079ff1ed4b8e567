package main

import (
	"context"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"

	"github.com/camgate/camgate/internal/sim"
	"github.com/camgate/camgate/internal/store"
)

const demoHelp = `
Start a simulated Hikvision DVR and a camgate gateway in front of it, both on
loopback, and print what to open: the DVR's web page and live video through
camgate, and the admin UI. Nothing is exposed beyond this machine.

The simulator listens on free loopback ports (like a DVR on your LAN); the
gateway forwards the DVR's usual services from fixed loopback ports, just as
it would forward them from your public address. The demo's config file is
written to --dir and watched: edit it and camgate applies the change.

Needs nothing but this binary; ffplay (Debian package ffmpeg) or VLC to watch.`

func runDemo(ctx context.Context, e *env, args []string) error {
	fl := newFlags(e, "demo", "[--dir DIR] [--web-port 8082] [--rtsp-port 8554] [flags]", demoHelp)
	dir := fl.String("dir", "", "directory for the demo's config and state (default: a new temporary directory)")
	webPort := fl.Int("web-port", 8082, "gateway port for the DVR's web page (HTTP)")
	rtspPort := fl.Int("rtsp-port", 8554, "gateway port for live video (RTSP)")
	httpsPort := fl.Int("https-port", 8443, "gateway port for the DVR's HTTPS page")
	adminPort := fl.Int("admin-port", 8088, "port of camgate's admin UI (plain HTTP, loopback only)")
	logLevel := fl.String("log-level", "info", "log level: debug, info, warn or error")
	if err := parseFlags(fl, args); err != nil {
		return err
	}
	for name, p := range map[string]int{"--web-port": *webPort, "--rtsp-port": *rtspPort, "--https-port": *httpsPort, "--admin-port": *adminPort} {
		if p < 1 || p > 65535 {
			return fmt.Errorf("%w: %s %d is outside 1-65535", errUsage, name, p)
		}
	}
	if *dir == "" {
		d, err := os.MkdirTemp("", "camgate-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		*dir = d
	}
	log, err := newLogger(e.stderr, "text", *logLevel)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}

	loopback := netip.MustParseAddr("127.0.0.1")
	dvr, err := sim.New(sim.Config{
		Listen: loopback,
		// Free ports for the device's services; no discovery responders,
		// which would answer the whole LAN.
		Ports:  sim.Ports{SADP: -1, WSDiscovery: -1, SDKOverTLS: -1, WebSocket: -1},
		Logger: log,
	})
	if err != nil {
		return fmt.Errorf("start the simulated DVR: %w", err)
	}
	simCtx, stopSim := context.WithCancel(ctx)
	simDone := make(chan error, 1)
	go func() { simDone <- dvr.Run(simCtx) }()
	defer func() { stopSim(); <-simDone }()

	path := filepath.Join(*dir, "camgate.yaml")
	if err := store.WriteFile(path, []byte(demoConfig(dvr, *webPort, *rtspPort, *httpsPort, *adminPort)), 0o600); err != nil {
		return err
	}
	printDemoBanner(e, dvr, path, *webPort, *rtspPort, *httpsPort, *adminPort)
	log.Debug("demo config written", "config", path)
	return runServe(ctx, e, []string{"--config", path, "--watch", "--log-level", *logLevel})
}

func demoConfig(dvr *sim.Device, web, rtsp, https, admin int) string {
	port := func(s sim.Service) int { return int(dvr.Addr(s).Port()) }
	return fmt.Sprintf(`# camgate demo: a simulated Hikvision DVR on loopback behind camgate.
# Edit this file while the demo runs: camgate applies the change.
version: 1
listen_address: 127.0.0.1
state_dir: state
admin:
  listen: http://127.0.0.1:%d
rules:
  - name: dvr-web
    description: DVR web page and ISAPI (HTTP)
    protocol: tcp
    external_port: %d
    internal_ip: 127.0.0.1
    internal_port: %d
  - name: dvr-rtsp
    description: live video (RTSP; RTP over UDP is relayed too)
    protocol: tcp
    external_port: %d
    internal_ip: 127.0.0.1
    internal_port: %d
  - name: dvr-https
    description: DVR web page over HTTPS (the DVR's own self-signed certificate)
    protocol: tcp
    external_port: %d
    internal_ip: 127.0.0.1
    internal_port: %d
  - name: dvr-server
    description: server/SDK port for iVMS-4200 (off; a frequent attack target)
    protocol: tcp
    external_port: %d
    internal_ip: 127.0.0.1
    enabled: false
`, admin, web, port(sim.ServiceHTTP), rtsp, port(sim.ServiceRTSP), https, port(sim.ServiceHTTPS), port(sim.ServiceSDK))
}

func printDemoBanner(e *env, dvr *sim.Device, path string, web, rtsp, https, admin int) {
	id := dvr.Identity()
	rtspURL := url.URL{Scheme: "rtsp", User: url.UserPassword(dvr.User(), dvr.Password()),
		Host: "127.0.0.1:" + strconv.Itoa(rtsp), Path: "/Streaming/Channels/101"}
	w := e.stdout
	fmt.Fprintf(w, "\ncamgate demo: a simulated Hikvision %s (%s) behind camgate, on loopback.\n\n", id.Model, id.DeviceType)
	fmt.Fprintf(w, "  DVR login       user %q, password %q (generated for this run)\n\n", dvr.User(), dvr.Password())
	fmt.Fprintf(w, "  Live video      ffplay '%s'\n", rtspURL.String())
	fmt.Fprintf(w, "                  (VLC: Media > Open Network Stream, same URL; sub-stream: .../Channels/102)\n")
	fmt.Fprintf(w, "                  RTP over UDP (the players' default) and over TCP both pass through camgate;\n")
	fmt.Fprintf(w, "                  on loopback that proves little: try it from another machine (docs/RTSP.md)\n")
	fmt.Fprintf(w, "  Web page        http://127.0.0.1:%d/\n", web)
	fmt.Fprintf(w, "  Device info     curl --digest -u %s:'%s' http://127.0.0.1:%d/ISAPI/System/deviceInfo\n", dvr.User(), dvr.Password(), web)
	fmt.Fprintf(w, "  HTTPS           https://127.0.0.1:%d/ (the DVR's self-signed certificate)\n", https)
	fmt.Fprintf(w, "  Admin UI        http://127.0.0.1:%d/ (open the one-time setup link from the log below)\n", admin)
	fmt.Fprintf(w, "  Config          %s (edit it; camgate reloads)\n", path)
	fmt.Fprintf(w, "  Device ports    HTTP %s, RTSP %s, HTTPS %s, server %s: camgate forwards to these\n\n",
		dvr.Addr(sim.ServiceHTTP), dvr.Addr(sim.ServiceRTSP), dvr.Addr(sim.ServiceHTTPS), dvr.Addr(sim.ServiceSDK))
	fmt.Fprintf(w, "Stop with Ctrl-C.\n\n")
}
