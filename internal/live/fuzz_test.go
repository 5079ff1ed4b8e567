package live

import (
	"encoding/binary"
	"testing"
)

// FuzzFramer feeds device bytes (one access unit: NAL units, each with a
// 2-byte length) to the framer, which parses SPS and slices from the
// device, and checks that whatever it accepts makes well-formed MP4 boxes.
// Seeds in testdata/fuzz/FuzzFramer are the simulator's stamped IDR (with
// SPS and PPS) and P frames.
func FuzzFramer(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		var au [][]byte
		for len(b) >= 2 {
			n := int(binary.BigEndian.Uint16(b))
			b = b[2:]
			if n > len(b) {
				n = len(b)
			}
			au = append(au, b[:n])
			b = b[n:]
		}
		fr := &framer{}
		for i := range 2 { // the same unit twice: a key frame, then one after it
			fm := fr.frame(au, int64(i)*3600)
			if fm == nil {
				continue
			}
			checkBoxes(t, fm.p.initSegment())
			checkBoxes(t, append(fragmentHeader(1, uint64(fm.dts), fm.cto, 3600, len(fm.avcc), fm.key), fm.avcc...))
		}
	})
}

// checkBoxes checks that b is a sequence of whole ISO BMFF boxes.
func checkBoxes(t *testing.T, b []byte) {
	t.Helper()
	for len(b) > 0 {
		if len(b) < 8 {
			t.Fatalf("%d trailing bytes, want whole boxes", len(b))
		}
		n := int(binary.BigEndian.Uint32(b))
		if n < 8 || n > len(b) {
			t.Fatalf("box %q of size %d in %d bytes", b[4:8], n, len(b))
		}
		b = b[n:]
	}
}
