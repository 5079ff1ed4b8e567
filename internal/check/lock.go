package check

import (
	"context"
	"fmt"
	"time"

	"github.com/camgate/camgate/internal/config"
	"github.com/camgate/camgate/internal/hikvision"
)

// LayerLogin is the device's illegal-login lock as the gateway sees it
// (issue 14): a recorder that locks camgate's address out refuses every
// remote user's login, although every port answers.
const LayerLogin Layer = "login"

// lockTimeout bounds the lock probe: one unauthenticated request on the
// LAN.
const lockTimeout = 3 * time.Second

// loginLayer asks the device behind a web rule, without credentials (so
// it cannot add to the count), whether it locks this address out: the
// 401 of an unauthenticated ISAPI request carries lockStatus and
// retryLoginTime. It reports ok=false when the rule is not a Hikvision
// web rule, or the inside layer did not reach it.
func (r *runner) loginLayer(ctx context.Context, rule *config.Rule, kind Kind, inside Result) (Result, bool) {
	if inside.Status != OK || (kind != KindHTTP && kind != KindHTTPS) || inside.Target == "" {
		return Result{}, false
	}
	scheme := "http"
	if kind == KindHTTPS {
		scheme = "https"
	}
	c, err := hikvision.New(hikvision.Config{Scheme: scheme, Host: inside.Target, AcceptSelfSigned: true, Timeout: lockTimeout})
	if err != nil {
		return Result{}, false
	}
	defer c.Close()
	pr, err := c.Probe(ctx)
	if err != nil || !pr.Hikvision {
		return Result{}, false
	}
	res := Result{Layer: LayerLogin, Protocol: "tcp", Probe: kind, Target: inside.Target}
	switch {
	case pr.Locked:
		res.Status = Fail
		res.Reason = "the device is locking camgate's address out after too many failed logins: every remote login fails, even with the right password"
		res.Fix = "wait for the lock to run out (30 minutes on Hikvision) or reboot the device; keep guard: auth on its rules and its password stored (camgate device add), so guesses never reach it"
	case pr.LoginsLeft >= 0 && pr.LoginsLeft <= 2:
		res.Status = Fail
		res.Reason = fmt.Sprintf("the device takes only %d more failed login(s) from camgate's address before it locks everyone out", pr.LoginsLeft)
		res.Fix = "log in once with the right password (a success resets the count), and keep guard: auth on the device's rules"
	case pr.LoginsLeft >= 0:
		res.Status = OK
		res.Reason = fmt.Sprintf("not locked; %d failed logins left before the device's lock", pr.LoginsLeft)
	default:
		res.Status = OK
		res.Reason = "not locked"
	}
	return res, true
}
