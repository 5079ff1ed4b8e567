package admin

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/camgate/camgate/internal/forward"
)

// TestUpdateErrorWebFix: a rule the gateway may not bind for want of
// rights is answered with the fix an owner can make in the browser, not
// the command line's setcap.
func TestUpdateErrorWebFix(t *testing.T) {
	priv := &forward.PrivilegedPortError{Network: "tcp", Addr: netip.MustParseAddrPort("0.0.0.0:554"),
		Err: &os.SyscallError{Syscall: "bind", Err: syscall.EACCES}}
	err := updateError(fmt.Errorf("apply: rule %q: listen tcp 0.0.0.0:554: %w", "dvr-rtsp", priv))
	var ae apiError
	if !errors.As(err, &ae) || ae.Status != http.StatusConflict {
		t.Fatalf("got %v, want a 409 apiError", err)
	}
	for _, want := range []string{"not applied, nothing changed", "external port of 1024 or more (for example 8554)", "camgate's package"} {
		if !strings.Contains(ae.Message, want) {
			t.Errorf("got message %q, want it to say %q", ae.Message, want)
		}
	}
	if strings.Contains(ae.Message, "setcap") || strings.Contains(ae.Message, "sudo") {
		t.Errorf("got message %q, want no command line in the UI", ae.Message)
	}
	if len(ae.Problems) != 1 || ae.Problems[0].Field != "external_port" {
		t.Errorf("got problems %+v, want one on external_port", ae.Problems)
	}
}
