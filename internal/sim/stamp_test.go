package sim

import (
	"bytes"
	"os/exec"
	"testing"
	"time"
)

// TestStampDecodes has ffmpeg decode a generated stream and reads every
// frame's stamp back: the encoder is valid H.264, lossless where the
// stamp is, and each P frame carries exactly the blocks that changed.
func TestStampDecodes(t *testing.T) {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg not installed")
	}
	for _, tc := range []struct{ w, h int }{{640, 360}, {352, 288}} {
		s := newStamper(tc.w, tc.h, 25, 10, 7)
		var in bytes.Buffer
		start := time.UnixMilli(1_760_000_000_000)
		const frames = 23
		for n := 0; n < frames; n++ {
			for _, u := range s.frame(n, start.Add(time.Duration(n)*40*time.Millisecond)) {
				in.Write([]byte{0, 0, 0, 1})
				in.Write(u)
			}
		}
		cmd := exec.Command("ffmpeg", "-v", "error", "-f", "h264", "-i", "-", "-f", "rawvideo", "-pix_fmt", "gray", "-")
		cmd.Stdin = &in
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil || stderr.Len() > 0 {
			t.Fatalf("%dx%d: ffmpeg: %v: %s", tc.w, tc.h, err, stderr.String())
		}
		size := tc.w * tc.h
		if len(out) != frames*size {
			t.Fatalf("%dx%d: got %d bytes of frames, want %d", tc.w, tc.h, len(out), frames*size)
		}
		for n := 0; n < frames; n++ {
			pic := out[n*size : (n+1)*size]
			ch, cnt, at, ok := ReadStamp(func(x, y int) byte { return pic[y*tc.w+x] }, tc.w)
			want := start.Add(time.Duration(n) * 40 * time.Millisecond)
			if !ok || ch != 7 || cnt != n || !at.Equal(want) {
				t.Fatalf("%dx%d frame %d: got channel %d counter %d time %v ok %v, want 7 %d %v", tc.w, tc.h, n, ch, cnt, at, ok, n, want)
			}
		}
	}
}
