package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// measureTCP runs iperf3 through each peer: one stream, then eight.
// A fresh iperf3 server per peer keeps one peer's failure from leaving the
// server busy for the next.
func (h *harness) measureTCP(ctx context.Context) {
	secs := int(h.opts.duration.Round(time.Second) / time.Second)
	for _, peer := range h.opts.peers {
		if ctx.Err() != nil {
			return
		}
		err := func() error {
			sport, err := h.ports.get()
			if err != nil {
				return err
			}
			srv, err := h.procs.start("iperf3-server", nil, nil, "iperf3", "-s", "-B", "127.0.0.1", "-p", strconv.Itoa(int(sport)))
			if err != nil {
				return err
			}
			defer h.procs.stopChild(srv)
			if err := waitListening(ctx, srv, []route{{proto: "tcp", listen: sport}}, 5*time.Second); err != nil {
				return err
			}
			lport, err := h.ports.get()
			if err != nil {
				return err
			}
			in, err := h.startPeer(ctx, peer, []route{{name: "bench-tcp", proto: "tcp", listen: lport, target: sport}}, peerOpts{})
			if err != nil {
				return err
			}
			defer h.stopPeer(in)
			host, port, _ := strings.Cut(in.addr(0), ":")
			for _, streams := range []int{1, 8} {
				id := "tcp" + strconv.Itoa(streams)
				args := []string{"-c", host, "-p", port, "-t", strconv.Itoa(secs), "-O", "1", "-J"}
				if streams > 1 {
					args = append(args, "-P", strconv.Itoa(streams))
				}
				out, err := runTool(ctx, time.Duration(secs+30)*time.Second, "iperf3", args...)
				if err != nil {
					if msg := iperfError(out); msg != "" {
						err = fmt.Errorf("iperf3: %s", msg)
					}
					h.recordErr(id, peer, err)
					continue
				}
				r, err := parseIperf(out)
				if err != nil {
					h.recordErr(id, peer, err)
					continue
				}
				r.Metric, r.Peer = id, peer
				if err := in.alive(); err != nil {
					h.recordErr(id, peer, err)
					continue
				}
				h.record(r)
			}
			return nil
		}()
		if err != nil {
			h.recordErr("tcp1", peer, err)
		}
	}
}

// iperfJSON is the part of `iperf3 -J` the harness reads.
type iperfJSON struct {
	Error string `json:"error"`
	End   struct {
		SumSent struct {
			BitsPerSecond float64 `json:"bits_per_second"`
			Retransmits   float64 `json:"retransmits"`
		} `json:"sum_sent"`
		SumReceived struct {
			BitsPerSecond float64 `json:"bits_per_second"`
		} `json:"sum_received"`
	} `json:"end"`
}

func parseIperf(out []byte) (Result, error) {
	var j iperfJSON
	if err := json.Unmarshal(out, &j); err != nil {
		return Result{}, fmt.Errorf("parse iperf3 -J: %w", err)
	}
	if j.Error != "" {
		return Result{}, fmt.Errorf("iperf3: %s", j.Error)
	}
	if j.End.SumReceived.BitsPerSecond == 0 {
		return Result{}, errors.New("iperf3 reported no received data")
	}
	return Result{
		Value: j.End.SumReceived.BitsPerSecond / 1e9,
		Detail: map[string]float64{
			"sent_gbps":   j.End.SumSent.BitsPerSecond / 1e9,
			"retransmits": j.End.SumSent.Retransmits,
		},
	}, nil
}

func iperfError(out []byte) string {
	var j iperfJSON
	if json.Unmarshal(out, &j) == nil {
		return j.Error
	}
	return ""
}

// httpBackend starts the dedicated nginx that serves the small static page
// wrk fetches through every peer. One worker keeps the backend's share of
// the two cores the same for every peer.
func (h *harness) httpBackend(ctx context.Context) (*child, uint16, error) {
	port, err := h.ports.get()
	if err != nil {
		return nil, 0, err
	}
	dir, err := os.MkdirTemp(h.dir, "http-")
	if err != nil {
		return nil, 0, err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, 0, err
	}
	www := filepath.Join(dir, "www")
	if err := os.Mkdir(www, 0o755); err != nil {
		return nil, 0, err
	}
	// A page about the size of a camera's login redirect.
	page := "<!doctype html><title>camgate bench</title><p>" + strings.Repeat("camgate ", 60) + "</p>\n"
	if err := os.WriteFile(filepath.Join(www, "index.html"), []byte(page), 0o644); err != nil {
		return nil, 0, err
	}
	var b strings.Builder
	b.WriteString(nginxMain(dir, "1"))
	fmt.Fprintf(&b, "http {\n  access_log off;\n  client_body_temp_path %[1]s/body;\n  proxy_temp_path %[1]s/proxy;\n  fastcgi_temp_path %[1]s/fastcgi;\n  uwsgi_temp_path %[1]s/uwsgi;\n  scgi_temp_path %[1]s/scgi;\n", dir)
	fmt.Fprintf(&b, "  server {\n    listen 127.0.0.1:%d backlog=4096;\n    root %s;\n    location / { }\n  }\n}\n", port, www)
	cfg := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o644); err != nil {
		return nil, 0, err
	}
	c, err := h.procs.start("nginx-http", nil, nil, "nginx", "-e", "stderr", "-p", dir, "-c", cfg)
	if err != nil {
		return nil, 0, err
	}
	if err := waitListening(ctx, c, []route{{proto: "tcp", listen: port}}, 5*time.Second); err != nil {
		h.procs.stopChild(c)
		return nil, 0, err
	}
	return c, port, nil
}

// wrk's load shape for the conns measure: two threads (the machine has two
// cores) and 32 connections, each closed after its response.
const (
	wrkThreads = 2
	wrkConns   = 32
)

// measureConns runs wrk with Connection: close through each peer.
func (h *harness) measureConns(ctx context.Context) {
	backend, bport, err := h.httpBackend(ctx)
	if err != nil {
		for _, p := range h.opts.peers {
			h.recordErr("conns", p, err)
		}
		return
	}
	defer h.procs.stopChild(backend)
	for _, peer := range h.opts.peers {
		if ctx.Err() != nil {
			return
		}
		r, err := h.connsOne(ctx, peer, bport)
		if err != nil {
			h.recordErr("conns", peer, err)
			continue
		}
		h.record(r)
		if c, ok := r.Detail["peer_cpu_seconds"]; ok {
			if cr, ok := cpuPerOp("conns_cpu", peer, c, r.Detail["requests"]); ok {
				h.record(cr)
			}
		}
		// Let TIME_WAIT sockets and the backend settle between peers.
		sleepCtx(ctx, time.Second)
	}
}

func (h *harness) connsOne(ctx context.Context, peer string, bport uint16) (Result, error) {
	lport, err := h.ports.get()
	if err != nil {
		return Result{}, err
	}
	in, err := h.startPeer(ctx, peer, []route{{name: "bench-http", proto: "tcp", listen: lport, target: bport}}, peerOpts{})
	if err != nil {
		return Result{}, err
	}
	defer h.stopPeer(in)
	cpu0, measured := in.cpuSeconds()
	out, err := runTool(ctx, h.opts.duration+30*time.Second, "wrk",
		"-t", strconv.Itoa(wrkThreads), "-c", strconv.Itoa(wrkConns), "-d", fmt.Sprintf("%ds", int(h.opts.duration.Seconds())),
		"-H", "Connection: close", "http://"+in.addr(0)+"/")
	if err != nil {
		return Result{}, err
	}
	r, err := parseWrk(string(out))
	if err != nil {
		return Result{}, err
	}
	if err := in.alive(); err != nil {
		return Result{}, err
	}
	r.Metric, r.Peer = "conns", peer
	if cpu1, _ := in.cpuSeconds(); measured {
		r.Detail["peer_cpu_seconds"] = cpu1 - cpu0
	}
	return r, nil
}

var (
	wrkRPS      = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkTotal    = regexp.MustCompile(`(\d+) requests in`)
	wrkSockErrs = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	wrkNon2xx   = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
)

// parseWrk reads wrk's summary. Errors are kept in Detail: a few read
// errors are normal with Connection: close, but non-2xx answers or
// connect errors mean the peer failed requests, so the figure is refused
// when more than 1% of requests went wrong.
func parseWrk(out string) (Result, error) {
	m := wrkRPS.FindStringSubmatch(out)
	if m == nil {
		return Result{}, fmt.Errorf("no Requests/sec in wrk output: %s", lastLines(out, 3))
	}
	rps, _ := strconv.ParseFloat(m[1], 64)
	d := map[string]float64{}
	if m := wrkTotal.FindStringSubmatch(out); m != nil {
		d["requests"], _ = strconv.ParseFloat(m[1], 64)
	}
	bad := 0.0
	if m := wrkSockErrs.FindStringSubmatch(out); m != nil {
		for i, k := range []string{"err_connect", "err_read", "err_write", "err_timeout"} {
			d[k], _ = strconv.ParseFloat(m[i+1], 64)
		}
		bad += d["err_connect"] + d["err_timeout"]
	}
	if m := wrkNon2xx.FindStringSubmatch(out); m != nil {
		d["non2xx"], _ = strconv.ParseFloat(m[1], 64)
		bad += d["non2xx"]
	}
	if d["requests"] > 0 && bad > 0.01*d["requests"] {
		return Result{}, fmt.Errorf("wrk: %.0f of %.0f requests failed (connect errors, timeouts or non-2xx)", bad, d["requests"])
	}
	return Result{Value: rps, Detail: d}, nil
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
