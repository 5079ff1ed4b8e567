package sim

import "time"

// The simulator's video is generated, not played from a file, so that
// every frame says which frame it is and when it was made. A browser
// test reads those facts back from a canvas grab: the frame counter must
// increase between two grabs, and the wall time stamped at encoding gives
// the glass-to-glass latency (docs/LIVE.md).
//
// The encoder needs no DCT: every macroblock it sends is I_PCM (H.264
// section 7.3.5, raw samples) and every macroblock it does not send is
// P_Skip, which copies the reference picture (all motion vectors are zero
// because no macroblock ever has one). The picture is a grid of solid
// 16x16 colour blocks: colour bars, a row of stamp bits, and a cursor that
// moves one block per frame. An IDR frame carries every block; a P frame
// carries only the blocks that changed, so the stream is a few kilobytes
// per frame plus one full picture per GOP, lossless, with deblocking off
// so a block's centre is exactly its colour.

// Stamp layout: bits are blocks in raster order starting at block row 1,
// white for 1 and black for 0, most significant bit first.
const (
	// StampMagic is the 4 bits that open a stamp (1010), so a reader can
	// tell a stamped picture from something else.
	StampMagic = 0xA
	// StampBits is the number of bits in a stamp: magic (4), channel (8),
	// frame counter (24), Unix time in milliseconds (48).
	StampBits = 4 + 8 + 24 + 48
	// StampRow is the block row where the stamp starts.
	StampRow = 1
)

// yuv is a block colour in BT.601 studio range.
type yuv struct{ y, cb, cr byte }

var (
	stampOne  = yuv{235, 128, 128}
	stampZero = yuv{16, 128, 128}
	// bars are 75% colour bars: white, yellow, cyan, green, magenta, red,
	// blue, black.
	bars = []yuv{{180, 128, 128}, {168, 44, 136}, {145, 147, 44}, {133, 63, 52},
		{63, 193, 204}, {51, 109, 212}, {28, 212, 120}, {16, 128, 128}}
	cursorColour = yuv{210, 16, 146}
)

// stamper generates one stream's H.264 access units.
type stamper struct {
	wmb, hmb int // size in macroblocks
	crop     int // rows cropped off the bottom, in 2-row units
	gop      int
	channel  int
	sps, pps []byte

	prev     []yuv // the decoder's current picture, one colour per block
	frameNum int
	idrID    int
}

// newStamper returns a generator of w x h pictures (w a multiple of 16,
// h even),
// with an IDR frame every gop frames. channel is stamped into every
// picture.
func newStamper(w, h, fps, gop, channel int) *stamper {
	s := &stamper{wmb: w / 16, hmb: (h + 15) / 16, gop: gop, channel: channel}
	s.crop = (s.hmb*16 - h) / 2
	s.sps = s.makeSPS(fps)
	s.pps = makePPS()
	return s
}

// picture returns the block colours of frame n made at time t.
func (s *stamper) picture(n int, t time.Time) []yuv {
	p := make([]yuv, s.wmb*s.hmb)
	for i := range p {
		x := i % s.wmb
		p[i] = bars[x*len(bars)/s.wmb]
	}
	var bits [StampBits]bool
	put := func(off, width int, v uint64) {
		for i := 0; i < width; i++ {
			bits[off+i] = v>>(width-1-i)&1 == 1
		}
	}
	put(0, 4, StampMagic)
	put(4, 8, uint64(s.channel))
	put(12, 24, uint64(n))
	put(36, 48, uint64(t.UnixMilli()))
	start := StampRow * s.wmb
	for i, b := range bits {
		if start+i >= len(p) {
			break
		}
		p[start+i] = stampZero
		if b {
			p[start+i] = stampOne
		}
	}
	// The cursor runs along the last whole block row, one block per frame.
	p[(s.hmb-2)*s.wmb+n%s.wmb] = cursorColour
	return p
}

// frame returns access unit n (SPS, PPS and IDR every gop frames, else
// one P slice), made at time t.
func (s *stamper) frame(n int, t time.Time) [][]byte {
	cur := s.picture(n, t)
	idr := n%s.gop == 0 || s.prev == nil
	var w bitWriter
	if idr {
		s.frameNum = 0
		s.idrID = (s.idrID + 1) & 0xffff
		w.ue(0) // first_mb_in_slice
		w.ue(7) // slice_type: I, all slices
		w.ue(0) // pic_parameter_set_id
		w.u(0, 4)
		w.ue(uint(s.idrID))
		w.u(0, 1) // no_output_of_prior_pics_flag
		w.u(0, 1) // long_term_reference_flag
		w.se(0)   // slice_qp_delta
		w.ue(1)   // disable_deblocking_filter_idc: off
		for _, c := range cur {
			w.ue(25) // mb_type I_PCM
			w.pcm(c)
		}
	} else {
		s.frameNum = (s.frameNum + 1) % 16
		w.ue(0)
		w.ue(5) // slice_type: P, all slices
		w.ue(0)
		w.u(uint64(s.frameNum), 4)
		w.u(0, 1) // num_ref_idx_active_override_flag
		w.u(0, 1) // ref_pic_list_modification_flag_l0
		w.u(0, 1) // adaptive_ref_pic_marking_mode_flag
		w.se(0)
		w.ue(1)
		skip := 0
		for i, c := range cur {
			if c == s.prev[i] {
				skip++
				continue
			}
			w.ue(uint(skip)) // mb_skip_run
			skip = 0
			w.ue(5 + 25) // mb_type I_PCM in a P slice
			w.pcm(c)
		}
		if skip > 0 {
			w.ue(uint(skip))
		}
	}
	w.trailing()
	s.prev = cur
	if idr {
		return [][]byte{s.sps, s.pps, nalu(0x65, w.b)}
	}
	return [][]byte{nalu(0x41, w.b)}
}

// makeSPS writes a Constrained Baseline SPS with timing and "no
// reordering" in its VUI, so that decoders output every frame at once.
func (s *stamper) makeSPS(fps int) []byte {
	var w bitWriter
	w.u(66, 8)   // profile_idc: Baseline
	w.u(0xc0, 8) // constraint_set0 and 1: Constrained Baseline
	w.u(30, 8)   // level_idc 3.0
	w.ue(0)      // seq_parameter_set_id
	w.ue(0)      // log2_max_frame_num_minus4
	w.ue(2)      // pic_order_cnt_type 2: output order is decoding order
	w.ue(1)      // max_num_ref_frames
	w.u(0, 1)    // gaps_in_frame_num_value_allowed_flag
	w.ue(uint(s.wmb - 1))
	w.ue(uint(s.hmb - 1))
	w.u(1, 1)                   // frame_mbs_only_flag
	w.u(1, 1)                   // direct_8x8_inference_flag
	w.u(boolBit(s.crop > 0), 1) // frame_cropping_flag
	if s.crop > 0 {
		w.ue(0) // left, right, top
		w.ue(0)
		w.ue(0)
		w.ue(uint(s.crop))
	}
	w.u(1, 1) // vui_parameters_present_flag
	w.u(0, 4) // aspect ratio, overscan, video signal type, chroma loc
	w.u(1, 1) // timing_info_present_flag
	w.u(1, 32)
	w.u(uint64(2*fps), 32)
	w.u(1, 1) // fixed_frame_rate_flag
	w.u(0, 3) // nal hrd, vcl hrd, pic_struct_present_flag
	w.u(1, 1) // bitstream_restriction_flag
	w.u(1, 1) // motion_vectors_over_pic_boundaries_flag
	w.ue(2)   // max_bytes_per_pic_denom
	w.ue(1)   // max_bits_per_mb_denom
	w.ue(16)  // log2_max_mv_length_horizontal
	w.ue(16)  // log2_max_mv_length_vertical
	w.ue(0)   // max_num_reorder_frames
	w.ue(1)   // max_dec_frame_buffering
	w.trailing()
	return nalu(0x67, w.b)
}

func boolBit(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

func makePPS() []byte {
	var w bitWriter
	w.ue(0)   // pic_parameter_set_id
	w.ue(0)   // seq_parameter_set_id
	w.u(0, 1) // entropy_coding_mode_flag: CAVLC
	w.u(0, 1) // bottom_field_pic_order_in_frame_present_flag
	w.ue(0)   // num_slice_groups_minus1
	w.ue(0)   // num_ref_idx_l0_default_active_minus1
	w.ue(0)   // num_ref_idx_l1_default_active_minus1
	w.u(0, 1) // weighted_pred_flag
	w.u(0, 2) // weighted_bipred_idc
	w.se(0)   // pic_init_qp_minus26
	w.se(0)   // pic_init_qs_minus26
	w.se(0)   // chroma_qp_index_offset
	w.u(1, 1) // deblocking_filter_control_present_flag
	w.u(0, 1) // constrained_intra_pred_flag
	w.u(0, 1) // redundant_pic_cnt_present_flag
	w.trailing()
	return nalu(0x68, w.b)
}

// nalu prefixes an RBSP with its header byte and inserts emulation
// prevention bytes (H.264 section 7.4.1: no 00 00 0x with x <= 3).
func nalu(header byte, rbsp []byte) []byte {
	out := make([]byte, 0, len(rbsp)+len(rbsp)/64+2)
	out = append(out, header)
	zeros := 0
	for _, b := range rbsp {
		if zeros == 2 && b <= 3 {
			out = append(out, 3)
			zeros = 0
		}
		out = append(out, b)
		if b == 0 {
			zeros++
		} else {
			zeros = 0
		}
	}
	return out
}

// bitWriter writes an RBSP most significant bit first.
type bitWriter struct {
	b    []byte
	nbit int // bits used in the last byte (0 = byte aligned)
}

func (w *bitWriter) bit(v bool) {
	if w.nbit == 0 {
		w.b = append(w.b, 0)
	}
	if v {
		w.b[len(w.b)-1] |= 0x80 >> w.nbit
	}
	w.nbit = (w.nbit + 1) % 8
}

// u writes v in n bits.
func (w *bitWriter) u(v uint64, n int) {
	for i := n - 1; i >= 0; i-- {
		w.bit(v>>i&1 == 1)
	}
}

// ue writes v as Exp-Golomb (section 9.1).
func (w *bitWriter) ue(v uint) {
	x := uint64(v) + 1
	n := 0
	for t := x; t > 1; t >>= 1 {
		n++
	}
	w.u(0, n)
	w.u(x, n+1)
}

// se writes a signed Exp-Golomb value.
func (w *bitWriter) se(v int) {
	if v <= 0 {
		w.ue(uint(-2 * v))
		return
	}
	w.ue(uint(2*v - 1))
}

// pcm aligns to a byte and writes one macroblock's samples: 256 luma,
// 64 Cb, 64 Cr (4:2:0).
func (w *bitWriter) pcm(c yuv) {
	w.nbit = 0
	var blk [384]byte
	for i := range blk {
		switch {
		case i < 256:
			blk[i] = c.y
		case i < 320:
			blk[i] = c.cb
		default:
			blk[i] = c.cr
		}
	}
	w.b = append(w.b, blk[:]...)
}

// trailing writes rbsp_trailing_bits.
func (w *bitWriter) trailing() {
	w.bit(true)
	w.nbit = 0
}

// ReadStamp decodes a stamp from a picture's luma, given a function that
// returns the luma at a pixel: it reports the channel, frame counter and
// the time stamped, and false when the magic is not there. Tests use it on
// frames decoded by ffmpeg; the browser test has the same logic in
// JavaScript.
func ReadStamp(luma func(x, y int) byte, width int) (channel, counter int, at time.Time, ok bool) {
	wmb := width / 16
	read := func(off, n int) uint64 {
		var x uint64
		for i := off; i < off+n; i++ {
			b := StampRow*wmb + i
			x <<= 1
			if luma(b%wmb*16+8, b/wmb*16+8) >= 128 {
				x |= 1
			}
		}
		return x
	}
	if read(0, 4) != StampMagic {
		return 0, 0, time.Time{}, false
	}
	return int(read(4, 8)), int(read(12, 24)), time.UnixMilli(int64(read(36, 48))), true
}
