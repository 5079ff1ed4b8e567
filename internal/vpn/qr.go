package vpn

import (
	"fmt"

	qrcode "github.com/skip2/go-qrcode"
)

// qrSize is the PNG's width in pixels: a wg-quick config (about 300
// bytes) is a version 10-13 code, which this size draws with several
// pixels per module so a phone camera reads it off a screen.
const qrSize = 512

// QR returns the PNG of a QR code holding text (a peer's config), with
// medium error correction, what the WireGuard apps scan.
func QR(text string) ([]byte, error) {
	png, err := qrcode.Encode(text, qrcode.Medium, qrSize)
	if err != nil {
		return nil, fmt.Errorf("qr code: %w", err)
	}
	return png, nil
}
