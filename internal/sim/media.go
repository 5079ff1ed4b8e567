package sim

// streamKind is the main stream (N01) or the sub-stream (N02).
type streamKind int

const (
	streamMain streamKind = 1
	streamSub  streamKind = 2
)

// stampGOP is frames per IDR: one a second at 25 fps, as a Hikvision
// device's default "I-frame interval" of 25 (or 50) does.
const stampGOP = 25

// clip describes a stream kind: its picture size, rate and parameter
// sets. The frames are generated per session by a stamper (stamp.go), so
// every viewer starts on an IDR frame and sees its own channel stamped.
type clip struct {
	name          string
	width, height int
	fps           int
	sps, pps      []byte
}

// newStamper returns the generator of a session's frames.
func (c *clip) newStamper(channel int) *stamper {
	return newStamper(c.width, c.height, c.fps, stampGOP, channel)
}

func loadClips() (map[streamKind]*clip, error) {
	out := map[streamKind]*clip{}
	for kind, c := range map[streamKind]*clip{
		streamMain: {name: "main", width: 640, height: 360, fps: 25},
		streamSub:  {name: "sub", width: 352, height: 288, fps: 25},
	} {
		s := c.newStamper(0)
		c.sps, c.pps = s.sps, s.pps
		out[kind] = c
	}
	return out, nil
}
