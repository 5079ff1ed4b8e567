package sim

import (
	"embed"
	"errors"
	"fmt"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
)

// The clips are pre-encoded with ffmpeg (see media/README.md) so that the
// simulator needs no encoder, and no ffmpeg, at run time.
//
//go:embed media/main.h264 media/sub.h264
var mediaFiles embed.FS

// streamKind is the main stream (N01) or the sub-stream (N02).
type streamKind int

const (
	streamMain streamKind = 1
	streamSub  streamKind = 2
)

// clip is a parsed H.264 clip, looped by the RTSP streams.
type clip struct {
	name          string
	width, height int
	fps           int
	sps, pps      []byte
	// aus are the access units in decoding order, each a list of NAL
	// units without start codes. The first is an IDR with SPS and PPS.
	aus [][][]byte
}

func loadClips() (map[streamKind]*clip, error) {
	out := map[streamKind]*clip{}
	for kind, name := range map[streamKind]string{streamMain: "media/main.h264", streamSub: "media/sub.h264"} {
		b, err := mediaFiles.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("clip %s: %w", name, err)
		}
		c, err := parseClip(name, b)
		if err != nil {
			return nil, fmt.Errorf("clip %s: %w", name, err)
		}
		out[kind] = c
	}
	return out, nil
}

// parseClip splits an Annex-B byte stream into access units. A new access
// unit starts at an SPS, PPS or access unit delimiter, or at a slice whose
// first_mb_in_slice is 0 (H.264 section 7.4.1.2.3). SEI is dropped.
func parseClip(name string, b []byte) (*clip, error) {
	nalus := splitAnnexB(b)
	c := &clip{name: name, fps: 25}
	var cur [][]byte
	haveSlice := false
	flush := func() {
		if haveSlice {
			c.aus = append(c.aus, cur)
		}
		cur, haveSlice = nil, false
	}
	for _, n := range nalus {
		if len(n) == 0 {
			continue
		}
		switch h264.NALUType(n[0] & 0x1f) {
		case h264.NALUTypeSPS:
			flush()
			if c.sps == nil {
				c.sps = n
			}
			cur = append(cur, n)
		case h264.NALUTypePPS:
			if haveSlice {
				flush()
			}
			if c.pps == nil {
				c.pps = n
			}
			cur = append(cur, n)
		case h264.NALUTypeAccessUnitDelimiter:
			flush()
		case h264.NALUTypeSEI:
		case h264.NALUTypeIDR, h264.NALUTypeNonIDR:
			// first_mb_in_slice is the first ue(v) of the slice header; it
			// is 0 exactly when the header's first bit is 1.
			if len(n) > 1 && n[1]&0x80 != 0 && haveSlice {
				flush()
			}
			cur = append(cur, n)
			haveSlice = true
		default:
			cur = append(cur, n)
		}
	}
	flush()
	if c.sps == nil || c.pps == nil || len(c.aus) == 0 {
		return nil, errors.New("no SPS, PPS or frames")
	}
	if !h264.IsRandomAccess(c.aus[0]) {
		return nil, errors.New("does not start with an IDR frame")
	}
	var sps h264.SPS
	if err := sps.Unmarshal(c.sps); err != nil {
		return nil, fmt.Errorf("sps: %w", err)
	}
	c.width, c.height = sps.Width(), sps.Height()
	if f := sps.FPS(); f >= 1 && f <= 120 {
		c.fps = int(f + 0.5)
	}
	return c, nil
}

// splitAnnexB returns the NAL units of an Annex-B byte stream (H.264
// Annex B: each unit follows a 00 00 01 start code, optionally preceded by
// a zero byte). mediacommon's AnnexB parses one access unit, with a cap on
// units, not a whole stream.
func splitAnnexB(b []byte) [][]byte {
	var out [][]byte
	start := -1
	for i := 0; i+2 < len(b); {
		if b[i] == 0 && b[i+1] == 0 && b[i+2] == 1 {
			if start >= 0 {
				end := i
				for end > start && b[end-1] == 0 {
					end--
				}
				out = append(out, b[start:end])
			}
			i += 3
			start = i
			continue
		}
		i++
	}
	if start >= 0 && start < len(b) {
		out = append(out, b[start:])
	}
	return out
}
