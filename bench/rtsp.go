package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/camgate/camgate/internal/sim"
)

// The rtsp measure: camgate's RTSP relay (docs/RTSP.md).
//
//   - --rtsp-streams (64) cameras × --p5-mbps (4 Mb/s) of RTP over the
//     UDP relay for --p5-duration: each viewer sets up its stream with a
//     real RTSP SETUP through camgate (a minimal RTSP camera answers it,
//     naming the P5 camera's UDP port as server_port), then the P5
//     machinery streams and counts loss and reordering;
//   - camgate's CPU per relayed RTP datagram, next to the same load
//     through a plain UDP rule (the target: at most 1.2×);
//   - time to first frame through camgate against direct, over UDP and
//     over TCP: `ffmpeg -frames:v 1` against the simulated DVR, the
//     median of five (the target: within 50 ms of direct).

func (h *harness) measureRTSP(ctx context.Context) {
	streams, d, mbps := h.opts.rtspStreams, h.opts.p5Duration, h.opts.p5Mbps
	if plain, err := h.rtpCPU(ctx, streams, d, mbps, false); err != nil {
		h.recordErr("rtsp_udp_rule_cpu", peerCamgate, err)
	} else {
		h.record(plain)
	}
	relay, err := h.rtpCPU(ctx, streams, d, mbps, true)
	if err != nil {
		h.recordErr("rtsp_relay_cpu", peerCamgate, err)
	} else {
		h.record(relay)
	}
	h.firstFrame(ctx)
}

// rtpCPU streams through camgate, over the RTSP relay or a plain UDP rule,
// and returns camgate's CPU per datagram (and records loss and reorder
// for the relay).
func (h *harness) rtpCPU(ctx context.Context, streams int, d time.Duration, mbps float64, relay bool) (Result, error) {
	camConn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return Result{}, err
	}
	_ = camConn.SetWriteBuffer(4 << 20)
	cam := newRTPCamera(camConn, streams)
	defer cam.close()
	camPort := uint16(camConn.LocalAddr().(*net.UDPAddr).Port)
	lport, err := h.ports.get()
	if err != nil {
		return Result{}, err
	}
	routes := []route{{name: "bench-rtp", proto: "udp", listen: lport, target: camPort}}
	var o peerOpts
	var rtspSrv net.Listener
	if relay {
		rtspSrv, err = net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			return Result{}, err
		}
		defer rtspSrv.Close()
		go serveFakeRTSP(rtspSrv, camPort)
		first, err := h.rtpRange(2 * streams)
		if err != nil {
			return Result{}, err
		}
		o.rtpPorts = fmt.Sprintf("%d-%d", first, int(first)+2*streams-1)
		routes = []route{{name: "bench-rtsp", proto: "tcp", listen: lport, target: uint16(rtspSrv.Addr().(*net.TCPAddr).Port), service: "rtsp"}}
	}
	in, err := h.startPeer(ctx, peerCamgate, routes, o)
	if err != nil {
		return Result{}, err
	}
	defer h.stopPeer(in)
	// The viewers' sockets must exist before SETUP names their ports:
	// runRTPWith makes them, so SETUP runs in its dial hook.
	addrs := make([]string, streams)
	cpu0, _ := in.cpuSeconds()
	var rtspConns []net.Conn
	defer func() {
		for _, c := range rtspConns {
			c.Close()
		}
	}()
	dial := func(i int, local *net.UDPAddr) (string, error) {
		if !relay {
			return in.addr(0), nil
		}
		c, sp, err := rtspSetup(in.addr(0), local.Port)
		if err != nil {
			return "", err
		}
		rtspConns = append(rtspConns, c)
		addrs[i] = fmt.Sprintf("127.0.0.1:%d", sp)
		return addrs[i], nil
	}
	st, err := runRTPWith(ctx, cam, dial, streams, mbps, d)
	if err != nil {
		return Result{}, err
	}
	cpu1, _ := in.cpuSeconds()
	if err := in.alive(); err != nil {
		return Result{}, err
	}
	what := "plain udp rule"
	id := "rtsp_udp_rule_cpu"
	if relay {
		what, id = "rtsp relay", "rtsp_relay_cpu"
		h.record(Result{Metric: "rtsp_loss", Peer: peerCamgate, Value: float64(st.lost),
			Detail: map[string]float64{"streams": float64(streams), "mbps_each": mbps, "seconds": d.Seconds(), "sent": float64(st.sent), "received": float64(st.unique)}})
		h.record(Result{Metric: "rtsp_reorder", Peer: peerCamgate, Value: float64(st.reordered)})
	}
	h.logf("rtsp %-15s %d streams × %.1f Mb/s for %s: sent %d, received %d, lost %d, reordered %d, camgate cpu %.2fs",
		what, streams, mbps, d, st.sent, st.unique, st.lost, st.reordered, cpu1-cpu0)
	r, ok := cpuPerOp(id, peerCamgate, cpu1-cpu0, float64(st.unique))
	if !ok {
		return Result{}, fmt.Errorf("%s: nothing relayed", what)
	}
	return r, nil
}

// rtpRange reserves n consecutive ports starting on an even one.
func (h *harness) rtpRange(n int) (uint16, error) {
	var first, prev uint16
	for got := 0; got < n; {
		p, err := h.ports.get()
		if err != nil {
			return 0, err
		}
		if got == 0 && p%2 == 1 {
			continue
		}
		if got > 0 && p != prev+1 {
			got, first = 0, 0
			if p%2 == 1 {
				continue
			}
		}
		if got == 0 {
			first = p
		}
		prev = p
		got++
	}
	return first, nil
}

// rtspSetup sends SETUP through camgate for a viewer bound on localPort
// and returns the connection (kept open: closing it ends the session) and
// the server_port camgate answered.
func rtspSetup(addr string, localPort int) (net.Conn, int, error) {
	c, err := net.DialTimeout("tcp4", addr, 5*time.Second)
	if err != nil {
		return nil, 0, err
	}
	u := "rtsp://" + addr + "/bench/trackID=1"
	fmt.Fprintf(c, "SETUP %s RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP;unicast;client_port=%d-%d\r\n\r\n", u, localPort, localPort+1)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	sp := 0
	session := ""
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			c.Close()
			return nil, 0, fmt.Errorf("setup: %w", err)
		}
		line = strings.TrimSpace(line)
		if line == "" {
			break
		}
		if v, ok := strings.CutPrefix(line, "Transport: "); ok {
			for _, p := range strings.Split(v, ";") {
				if s, ok := strings.CutPrefix(p, "server_port="); ok {
					a, _, _ := strings.Cut(s, "-")
					sp, _ = strconv.Atoi(a)
				}
			}
		}
		if v, ok := strings.CutPrefix(line, "Session: "); ok {
			session, _, _ = strings.Cut(v, ";")
		}
	}
	if sp == 0 {
		c.Close()
		return nil, 0, fmt.Errorf("setup: no server_port in the answer")
	}
	fmt.Fprintf(c, "PLAY rtsp://%s/bench RTSP/1.0\r\nCSeq: 2\r\nSession: %s\r\n\r\n", addr, session)
	for {
		line, err := br.ReadString('\n')
		if err != nil || strings.TrimSpace(line) == "" {
			break
		}
	}
	c.SetReadDeadline(time.Time{})
	return c, sp, nil
}

// serveFakeRTSP is the camera's RTSP side: SETUP is answered with the P5
// camera's UDP port as server_port, anything else with 200.
func serveFakeRTSP(ln net.Listener, camPort uint16) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			br := bufio.NewReader(c)
			n := 0
			for {
				var method, cseq, transport string
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						return
					}
					line = strings.TrimSpace(line)
					if line == "" {
						break
					}
					if method == "" {
						method, _, _ = strings.Cut(line, " ")
					}
					if v, ok := strings.CutPrefix(line, "CSeq: "); ok {
						cseq = v
					}
					if v, ok := strings.CutPrefix(line, "Transport: "); ok {
						transport = v
					}
				}
				n++
				extra := "Session: bench" + strconv.Itoa(n) + ";timeout=60\r\n"
				if method == "SETUP" {
					extra += fmt.Sprintf("Transport: %s;server_port=%d-%d\r\n", transport, camPort, camPort+1)
				}
				fmt.Fprintf(c, "RTSP/1.0 200 OK\r\nCSeq: %s\r\n%s\r\n", cseq, extra)
			}
		}()
	}
}

// firstFrame times `ffmpeg -frames:v 1` against the simulated DVR,
// direct and through camgate, over UDP and TCP.
func (h *harness) firstFrame(ctx context.Context) {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		h.recordErr("rtsp_first_frame_udp", peerCamgate, err)
		return
	}
	dvr, err := sim.New(sim.Config{Listen: netip.MustParseAddr("127.0.0.1"), Password: "Bench-Pass-1",
		Ports: sim.Ports{HTTP: -1, HTTPS: -1, SDK: -1, SDKOverTLS: -1, WebSocket: -1, SADP: -1, WSDiscovery: -1}})
	if err != nil {
		h.recordErr("rtsp_first_frame_udp", peerCamgate, err)
		return
	}
	sctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); dvr.Run(sctx) }()
	defer func() { stop(); wg.Wait() }()
	lport, err := h.ports.get()
	if err != nil {
		return
	}
	first, err := h.rtpRange(8)
	if err != nil {
		return
	}
	in, err := h.startPeer(ctx, peerCamgate, []route{{name: "bench-dvr", proto: "tcp", listen: lport,
		target: dvr.Addr(sim.ServiceRTSP).Port(), service: "rtsp"}}, peerOpts{rtpPorts: fmt.Sprintf("%d-%d", first, first+7)})
	if err != nil {
		h.recordErr("rtsp_first_frame_udp", peerCamgate, err)
		return
	}
	defer h.stopPeer(in)
	for _, tr := range []string{"udp", "tcp"} {
		var direct, through []float64
		for i := 0; i < 5; i++ {
			for _, p := range []struct {
				port uint16
				dst  *[]float64
			}{{dvr.Addr(sim.ServiceRTSP).Port(), &direct}, {lport, &through}} {
				url := fmt.Sprintf("rtsp://admin:Bench-Pass-1@127.0.0.1:%d/Streaming/Channels/101", p.port)
				t0 := time.Now()
				cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
				err := exec.CommandContext(cctx, "ffmpeg", "-nostdin", "-v", "error", "-rtsp_transport", tr,
					"-analyzeduration", "0", "-probesize", "32768", "-i", url, "-frames:v", "1", "-f", "null", "-").Run()
				cancel()
				if err == nil {
					*p.dst = append(*p.dst, float64(time.Since(t0).Milliseconds()))
				}
			}
		}
		if len(direct) == 0 || len(through) == 0 {
			h.recordErr("rtsp_first_frame_"+tr, peerCamgate, fmt.Errorf("ffmpeg never got a frame over %s", tr))
			continue
		}
		slices.Sort(direct)
		slices.Sort(through)
		md, mt := direct[len(direct)/2], through[len(through)/2]
		h.logf("rtsp first frame over %s: direct %.0f ms, through camgate %.0f ms", tr, md, mt)
		h.record(Result{Metric: "rtsp_first_frame_" + tr, Peer: peerCamgate, Value: mt - md,
			Detail: map[string]float64{"direct_ms": md, "camgate_ms": mt}})
	}
}
