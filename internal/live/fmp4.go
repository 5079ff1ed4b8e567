package live

import (
	"encoding/binary"
	"fmt"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
)

// The browser gets fragmented MP4 (ISO/IEC 14496-12, "ISO BMFF", with the
// byte stream format of the W3C "ISO BMFF Byte Stream Format" for MSE): one
// initialization segment (ftyp, moov) and then one media segment (moof,
// mdat) per frame, so a frame is playable as soon as it arrives. The boxes
// are few and fixed, so they are written here rather than through a
// library: one video track, timescale 90 kHz (RTP's clock for video).

const timescale = 90000

// params are a stream's H.264 parameter sets: a change of either starts a
// new initialization segment, so viewers reconnect.
type params struct {
	sps, pps      []byte
	width, height int
}

func newParams(sps, pps []byte) (*params, error) {
	var s h264.SPS
	if err := s.Unmarshal(sps); err != nil {
		return nil, fmt.Errorf("h264 sps: %w", err)
	}
	if len(sps) < 4 || len(pps) == 0 {
		return nil, fmt.Errorf("h264 sps or pps too short")
	}
	return &params{sps: sps, pps: pps, width: s.Width(), height: s.Height()}, nil
}

// codec is the RFC 6381 codecs parameter MediaSource.isTypeSupported and
// addSourceBuffer need: avc1 and the SPS's profile, constraints and level.
func (p *params) codec() string {
	return fmt.Sprintf("avc1.%02X%02X%02X", p.sps[1], p.sps[2], p.sps[3])
}

// box appends an ISO BMFF box: 32-bit size, type, payload.
func box(b []byte, typ string, payload ...[]byte) []byte {
	n := 8
	for _, p := range payload {
		n += len(p)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(n))
	b = append(b, typ...)
	for _, p := range payload {
		b = append(b, p...)
	}
	return b
}

func u16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }
func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }
func zeros(n int) []byte  { return make([]byte, n) }

// unityMatrix is the identity transform of mvhd and tkhd.
var unityMatrix = []byte{
	0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0x40, 0, 0, 0,
}

// initSegment returns ftyp and moov for one H.264 track.
func (p *params) initSegment() []byte {
	ftyp := box(nil, "ftyp", []byte("isom"), u32(0x200), []byte("isomiso2avc1mp41"))
	mvhd := box(nil, "mvhd", zeros(4), zeros(8), u32(1000), zeros(4), u32(0x00010000), u16(0x0100), zeros(10),
		unityMatrix, zeros(24), u32(2))
	tkhd := box(nil, "tkhd", u32(3), zeros(8), u32(1), zeros(4), zeros(4), zeros(8), zeros(8),
		unityMatrix, u32(uint32(p.width)<<16), u32(uint32(p.height)<<16))
	mdhd := box(nil, "mdhd", zeros(4), zeros(8), u32(timescale), zeros(4), u16(0x55c4), zeros(2))
	hdlr := box(nil, "hdlr", zeros(4), zeros(4), []byte("vide"), zeros(12), []byte("VideoHandler\x00"))
	avcC := box(nil, "avcC", []byte{1, p.sps[1], p.sps[2], p.sps[3], 0xff, 0xe1}, u16(uint16(len(p.sps))), p.sps,
		[]byte{1}, u16(uint16(len(p.pps))), p.pps)
	avc1 := box(nil, "avc1", zeros(6), u16(1), zeros(16), u16(uint16(p.width)), u16(uint16(p.height)),
		u32(0x00480000), u32(0x00480000), zeros(4), u16(1), zeros(32), u16(0x18), u16(0xffff), avcC)
	stbl := box(nil, "stbl",
		box(nil, "stsd", zeros(4), u32(1), avc1),
		box(nil, "stts", zeros(8)),
		box(nil, "stsc", zeros(8)),
		box(nil, "stsz", zeros(12)),
		box(nil, "stco", zeros(8)))
	dinf := box(nil, "dinf", box(nil, "dref", zeros(4), u32(1), box(nil, "url ", u32(1))))
	minf := box(nil, "minf", box(nil, "vmhd", u32(1), zeros(8)), dinf, stbl)
	trak := box(nil, "trak", tkhd, box(nil, "mdia", mdhd, hdlr, minf))
	mvex := box(nil, "mvex", box(nil, "trex", zeros(4), u32(1), u32(1), zeros(12)))
	return append(ftyp, box(nil, "moov", mvhd, trak, mvex)...)
}

// Sample flags (ISO/IEC 14496-12 section 8.8.3.1): a sync sample depends
// on no other; any other sample depends on others and is not a sync sample.
const (
	flagsSync    = 0x02000000
	flagsNonSync = 0x01010000
)

// fragmentHeader returns moof and the mdat header for one sample of size
// bytes decoded at dts (timescale units), presented cto later, lasting
// dur; the sample's bytes follow it.
func fragmentHeader(seq uint32, dts uint64, cto, dur uint32, size int, key bool) []byte {
	flags := uint32(flagsNonSync)
	if key {
		flags = flagsSync
	}
	// data offset, duration, size, flags, composition time offset
	const trunFlags = 0x000001 | 0x000100 | 0x000200 | 0x000400 | 0x000800
	// moof is 8 + mfhd 16 + traf (8 + tfhd 16 + tfdt 20 + trun 36) = 104
	// bytes; the data starts after it and mdat's 8-byte header.
	const moofSize = 104
	trun := box(nil, "trun", u32(trunFlags), u32(1), u32(moofSize+8), u32(dur), u32(uint32(size)), u32(flags), u32(cto))
	traf := box(nil, "traf",
		box(nil, "tfhd", u32(0x020000), u32(1)), // default-base-is-moof
		box(nil, "tfdt", u32(0x01000000), u64(dts)),
		trun)
	out := box(make([]byte, 0, moofSize+8), "moof", box(nil, "mfhd", zeros(4), u32(seq)), traf)
	out = binary.BigEndian.AppendUint32(out, uint32(size+8))
	return append(out, "mdat"...)
}
