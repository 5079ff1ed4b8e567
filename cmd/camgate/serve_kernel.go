package main

import (
	"log/slog"

	"github.com/camgate/camgate/internal/gateway"
	"github.com/camgate/camgate/internal/nft"
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
