package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"time"

	"github.com/camgate/camgate/internal/gateway"
	"github.com/camgate/camgate/internal/guard"
	"github.com/camgate/camgate/internal/nft"
	"github.com/camgate/camgate/internal/site"
)

// withKernel gives the gateway the kernel data plane (docs/KERNEL.md) when
// this host can run it: CAP_NET_ADMIN, nftables and IPv4 forwarding.
// Otherwise rules under dataplane: auto stay in userspace, and the reason
// is logged once here and shown per rule in status.
func withKernel(log *slog.Logger, c gateway.Config) gateway.Config {
	t, err := nft.Open(nft.Config{Logger: log})
	if err != nil {
		log.Info("kernel data plane unavailable, so rules with dataplane auto run in userspace", "why", err.Error())
		c.KernelOff = err.Error()
		return c
	}
	c.Kernel = t
	return c
}

// kernelBanInterval is how often the guard's bans are copied into the
// kernel plane. The guard enforces a ban on its own rule at once; a kernel
// rule to the same device follows within this.
const kernelBanInterval = time.Second

// startKernelBans copies the brute-force guard's bans into the kernel
// plane, where they apply to kernel rules to the banned device: a ban
// covers every rule to the device whose logins failed (docs/SECURITY.md).
// It returns a function that stops the copying.
func startKernelBans(ctx context.Context, log *slog.Logger, s *site.Site) (func(context.Context), error) {
	g := s.Gateway()
	p, ok := g.Policy().(*guard.Policy)
	if !ok || !g.HasKernel() {
		return nil, nil
	}
	rctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		copyBans(rctx, log, g, p)
	}()
	return func(context.Context) {
		cancel()
		<-done
	}, nil
}

// copyBans runs until ctx is done, pushing the bans when they change.
func copyBans(ctx context.Context, log *slog.Logger, g *gateway.Gateway, p *guard.Policy) {
	t := time.NewTicker(kernelBanInterval)
	defer t.Stop()
	last := ""
	for {
		bans := map[netip.Addr][]netip.Addr{}
		for _, b := range p.Bans() {
			dev, err := netip.ParseAddr(b.Device)
			if err != nil || !b.Source.Addr().Is4() {
				continue
			}
			bans[dev] = append(bans[dev], b.Source.Addr())
		}
		for _, srcs := range bans {
			slices.SortFunc(srcs, netip.Addr.Compare)
		}
		if key := fmt.Sprint(bans); key != last {
			if err := g.SetKernelBans(bans); err != nil {
				log.Warn("copy the guard's bans to the kernel rules", "err", err)
			} else {
				last = key
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
