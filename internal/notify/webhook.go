package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/camgate/camgate/internal/config"
)

// ntfy's priorities (https://docs.ntfy.sh/publish/#message-priority):
// 4 is "high" (a long vibration), 3 the default.
var ntfyPriority = map[string]int{
	config.EventBan:           4,
	config.EventDeviceLockout: 5,
	config.EventConfigRefused: 4,
	config.EventBlock:         3,
}

// ntfyTags become emoji in ntfy's apps
// (https://docs.ntfy.sh/publish/#tags-emojis).
var ntfyTags = map[string]string{
	config.EventBan:           "no_entry,camgate",
	config.EventBlock:         "shield,camgate",
	config.EventDeviceLockout: "lock,camgate",
	config.EventConfigRefused: "warning,camgate",
}

// jsonMessage is the json format's body.
type jsonMessage struct {
	Event
	Priority int `json:"priority"`
	// HeldBack counts events not sent before this one (rate limit).
	HeldBack int `json:"held_back"`
}

// send posts one event.
func (n *Notifier) send(ctx context.Context, o outgoing) error {
	s := o.settings
	msg := o.e.Message
	if o.held > 0 {
		msg += fmt.Sprintf(" (%d earlier events were not sent: rate limit; see the admin UI)", o.held)
	}
	var body []byte
	ct := "text/plain; charset=utf-8"
	if s.JSON() {
		ct = "application/json"
		body, _ = json.Marshal(jsonMessage{Event: o.e, Priority: ntfyPriority[o.e.Kind], HeldBack: o.held})
	} else {
		body = []byte(msg)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("notify url: %w", err)
	}
	req.Header.Set("Content-Type", ct)
	req.Header.Set("User-Agent", "camgate")
	if !s.JSON() {
		// ntfy's publish headers (https://docs.ntfy.sh/publish/).
		req.Header.Set("Title", headerSafe(o.e.Title))
		req.Header.Set("Priority", strconv.Itoa(max(ntfyPriority[o.e.Kind], 3)))
		req.Header.Set("Tags", ntfyTags[o.e.Kind])
	}
	if s.TokenFile != "" {
		tok, err := n.readToken(s.TokenFile)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := n.c.Client.Do(req)
	if err != nil {
		return fmt.Errorf("post to the notify url: %w", err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("notify url answered %s", resp.Status)
	}
	return nil
}

// readToken reads notify.token_file.
func (n *Notifier) readToken(path string) (string, error) {
	if !filepath.IsAbs(path) && n.c.BaseDir != "" {
		path = filepath.Join(n.c.BaseDir, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("notify.token_file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" || strings.ContainsAny(tok, "\r\n") {
		return "", fmt.Errorf("notify.token_file %s: want the token alone on one line", path)
	}
	return tok, nil
}

// headerSafe keeps a title to one line of printable ASCII, which HTTP
// headers carry safely.
func headerSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return ' '
		}
		return r
	}, s)
}
