package audit

import "github.com/camgate/camgate/internal/config"

// kernelLockout is the open-to-world finding's meaning for a rule that can
// take the kernel path (docs/KERNEL.md). There, when camgate is the LAN's
// gateway, the device sees each viewer's own address, so its per-source
// lockout applies per viewer again: a guesser locks out only itself.
const kernelLockout = "Anyone can try passwords. This rule can take the kernel path: where camgate is the LAN's gateway the device sees each viewer's own address, so its lockout (7 failures, 30 minutes) applies per viewer again and a guesser locks out only itself; but nothing stops guessing from many addresses, and on a LAN box that masquerades every remote user shares camgate's address again."

// kernelNote rewrites findings of rules that can run in the kernel, where
// the device's lockout works per viewer; the fix still offers guard: auth,
// which moves the rule to userspace.
func kernelNote(fs []Finding, r *config.Rule, cfg *config.Config) []Finding {
	if r.Effective(cfg.Dataplane) == config.DataplaneUserspace || r.UserspaceNeed(cfg.ListenAddress) != "" {
		return fs
	}
	for i := range fs {
		if fs[i].ID == IDRuleOpenToWorld && r.Proto().HasTCP() {
			fs[i].Meaning = kernelLockout
			fs[i].Fix += " (guard: auth moves the rule to the userspace path, where the device sees camgate's address and camgate counts the failures per viewer instead)"
		}
	}
	return fs
}
