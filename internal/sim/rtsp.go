package sim

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/bluenviron/gortsplib/v5/pkg/headers"
)

// How the RTSP side imitates a Hikvision device on top of gortsplib:
//
//   - gortsplib writes Content-Base from the URL the client asked for, and
//     relative a=control lines "trackID=0". A Hikvision device instead
//     answers with its own LAN IP:port in Content-Base and absolute control
//     URLs "rtsp://IP:554/Streaming/Channels/101/trackID=1?transportmode=
//     unicast&profile=Profile_1" (scottlamb/retina testdata
//     hikvision_describe.txt). OnDescribe returns our own SDP as the body,
//     and OnResponse replaces Content-Base.
//   - The video is trackID=1 on the device but media index 0 in gortsplib,
//     so OnRequest renumbers the trackID of every SETUP URL (1 -> 0) before
//     gortsplib parses it, and OnResponse puts the device's track URL back
//     into RTP-Info.
//   - gortsplib's realm is fixed ("ipcam") and its verifier does not know
//     the illegal-login lock, so authentication is ours (digest.go), with
//     the device's realm and its MD5 challenge without qop.

// rtspConnState is per-connection state. gortsplib calls a connection's
// OnRequest, handler and OnResponse one request at a time.
type rtspConnState struct {
	req      *base.Request
	origPath string
	origURL  string // the request line's URL, before renumberTrack
	user     string
	base     string // Content-Base of the DESCRIBE being answered
	trackURL string // the device's control URL of the last SETUP track
}

type rtspHandler struct {
	d   *Device
	srv *gortsplib.Server

	mu      sync.Mutex      // guards following
	ctx     context.Context // parent of the feeders; nil once shut down
	feeders sync.WaitGroup
}

// rtspSession is per-session state. Every session gets its own stream and
// feeder, started once PLAY has been answered, so that every viewer's
// video begins with SPS, PPS and an IDR frame, as a camera's does, and a
// decoder never sees frames that reference pictures it never got.
type rtspSession struct {
	kind    streamKind
	channel int // the camera number stamped into the pictures
	stream  *gortsplib.ServerStream

	mu      sync.Mutex // guards following
	started bool
	stop    context.CancelFunc
}

// serveRTSP runs the RTSP server until ctx is done.
func (d *Device) serveRTSP(ctx context.Context, ln net.Listener) error {
	h := &rtspHandler{d: d, ctx: ctx}
	srv := &gortsplib.Server{
		Handler:      h,
		RTSPAddress:  ln.Addr().String(),
		ReadTimeout:  10 * time.Second,
		WriteTimeout: 10 * time.Second,
		IdleTimeout:  60 * time.Second,
		Listen:       func(string, string) (net.Listener, error) { return ln, nil },
	}
	h.srv = srv
	if rtp := d.udp[ServiceRTP]; rtp != nil {
		rtcp := d.rtcp
		srv.UDPRTPAddress = rtp.LocalAddr().String()
		srv.UDPRTCPAddress = rtcp.LocalAddr().String()
		srv.ListenPacket = func(_, addr string) (net.PacketConn, error) {
			switch addr {
			case srv.UDPRTPAddress:
				return rtp, nil
			case srv.UDPRTCPAddress:
				return rtcp, nil
			}
			return nil, fmt.Errorf("unexpected udp listen on %s", addr)
		}
	}
	if err := srv.Start(); err != nil {
		ln.Close()
		if rtp := d.udp[ServiceRTP]; rtp != nil {
			rtp.Close()
			d.rtcp.Close()
		}
		return err
	}
	waitc := make(chan error, 1)
	go func() { waitc <- srv.Wait() }()
	var err error
	select {
	case <-ctx.Done():
	case err = <-waitc:
		waitc <- err
	}
	h.mu.Lock()
	h.ctx = nil // no new feeders; the running ones see ctx done
	h.mu.Unlock()
	srv.Close() // closes every session, and so every per-session stream
	<-waitc
	h.feeders.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// newStream makes a session's stream of the given kind.
func (h *rtspHandler) newStream(kind streamKind) (*gortsplib.ServerStream, error) {
	c := h.d.clips[kind]
	st := &gortsplib.ServerStream{Server: h.srv, Desc: &description.Session{Medias: []*description.Media{{
		Type:    description.MediaTypeVideo,
		Formats: []format.Format{&format.H264{PayloadTyp: 96, SPS: c.sps, PPS: c.pps, PacketizationMode: 1}},
	}}}}
	if err := st.Initialize(); err != nil {
		return nil, err
	}
	return st, nil
}

// startFeeder starts the session's feeder once (PLAY may come twice).
func (h *rtspHandler) startFeeder(s *rtspSession) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ctx == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return
	}
	ctx, cancel := context.WithCancel(h.ctx)
	s.started, s.stop = true, cancel
	h.feeders.Add(1)
	go func() {
		defer h.feeders.Done()
		h.d.feed(ctx, s.stream, h.d.clips[s.kind], s.channel)
	}()
}

// OnSessionClose implements gortsplib.ServerHandlerOnSessionClose: it
// stops the session's feeder and closes its stream (gortsplib has already
// removed the session from the stream's readers).
func (h *rtspHandler) OnSessionClose(ctx *gortsplib.ServerHandlerOnSessionCloseCtx) {
	s, ok := ctx.Session.UserData().(*rtspSession)
	if !ok {
		return
	}
	s.mu.Lock()
	s.started = true // never start one now
	stop := s.stop
	s.mu.Unlock()
	if stop != nil {
		stop()
	}
	s.stream.Close()
}

// feed writes clip c's generated frames into stream in real time, from an
// IDR frame, until ctx is done. Each frame is stamped with the channel,
// its number and the wall time it was made (stamp.go).
func (d *Device) feed(ctx context.Context, stream *gortsplib.ServerStream, c *clip, channel int) {
	medi := stream.Desc.Medias[0]
	enc, err := medi.Formats[0].(*format.H264).CreateEncoder()
	if err != nil {
		d.log.Error("rtsp: h264 encoder", "clip", c.name, "err", err)
		return
	}
	var rb [4]byte
	rand.Read(rb[:])
	ts := binary.BigEndian.Uint32(rb[:])
	step := uint32(90000 / c.fps)
	gen := c.newStamper(channel)
	tick := time.NewTicker(time.Second / time.Duration(c.fps))
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := time.Now()
		pkts, err := enc.Encode(gen.frame(i, now))
		if err != nil {
			d.log.Error("rtsp: packetize", "clip", c.name, "err", err)
			return
		}
		for _, p := range pkts {
			p.Timestamp = ts
			stream.WritePacketRTPWithNTP(medi, p, now)
		}
		ts += step
	}
}

func connState(sc *gortsplib.ServerConn) *rtspConnState {
	st, _ := sc.UserData().(*rtspConnState)
	if st == nil {
		st = &rtspConnState{}
		sc.SetUserData(st)
	}
	return st
}

// OnConnOpen implements gortsplib.ServerHandlerOnConnOpen.
func (h *rtspHandler) OnConnOpen(ctx *gortsplib.ServerHandlerOnConnOpenCtx) {
	ctx.Conn.SetUserData(&rtspConnState{})
}

// OnRequest implements gortsplib.ServerHandlerOnRequest.
func (h *rtspHandler) OnRequest(sc *gortsplib.ServerConn, req *base.Request) {
	st := connState(sc)
	st.req, st.user, st.origPath, st.origURL = req, "", "", ""
	if req.URL != nil {
		st.origPath = (*url.URL)(req.URL).RequestURI()
		st.origURL = req.URL.String()
		if req.Method == base.Setup {
			renumberTrack(req.URL)
		}
	}
}

// OnResponse implements gortsplib.ServerHandlerOnResponse.
func (h *rtspHandler) OnResponse(sc *gortsplib.ServerConn, res *base.Response) {
	st := connState(sc)
	if st.req == nil {
		return
	}
	// Captured Hikvision answers carry no Server header.
	delete(res.Header, "Server")
	if res.StatusCode == base.StatusOK {
		switch st.req.Method {
		case base.Describe:
			if st.base != "" {
				res.Header["Content-Base"] = base.HeaderValue{st.base}
			}
		case base.Play:
			// The session is now an active reader of its stream (gortsplib
			// answered PLAY), so the first frame sent reaches it.
			if ss := sc.Session(); ss != nil {
				if s, ok := ss.UserData().(*rtspSession); ok {
					h.startFeeder(s)
				}
			}
			if st.trackURL != "" {
				var ri headers.RTPInfo
				if ri.Unmarshal(res.Header["RTP-Info"]) == nil {
					for _, e := range ri {
						e.URL = st.trackURL
					}
					res.Header["RTP-Info"] = ri.Marshal()
				}
			}
		}
	}
	src := addrPortOf(sc.NetConn().RemoteAddr())
	h.d.reqs.add(Request{Service: ServiceRTSP, Source: src,
		Method: string(st.req.Method), Path: st.origPath, Status: int(res.StatusCode), User: st.user})
	h.d.log.Debug("request", "service", "rtsp", "src", src.String(), "method", string(st.req.Method),
		"path", st.origPath, "status", int(res.StatusCode))
	st.req, st.base = nil, ""
}

// trackRE finds the track id at the end of a SETUP URL's path or query.
var trackRE = regexp.MustCompile(`(?i)/trackID=([0-9]+)$`)

// renumberTrack turns the device's trackID=1 into gortsplib's media index
// 0. Other ids (Hikvision's metadata track is 3) point past the one media
// and get 404-like errors from gortsplib, as on a device without them.
func renumberTrack(u *base.URL) {
	fix := func(s string) string {
		m := trackRE.FindStringSubmatchIndex(s)
		if m == nil {
			return s
		}
		n, err := strconv.Atoi(s[m[2]:m[3]])
		if err != nil || n < 1 {
			n = 1 << 20
		}
		return s[:m[2]] + strconv.Itoa(n-1)
	}
	u.Path = fix(u.Path)
	u.RawQuery = fix(u.RawQuery)
}

// channelRE matches /Streaming/Channels/<channel><stream>, stream 01 or
// 02, and the legacy /h264/ch<channel>/<main|sub>/av_stream.
var (
	channelRE = regexp.MustCompile(`(?i)^/Streaming/Channels/([1-9][0-9]?)0([12])$`)
	legacyRE  = regexp.MustCompile(`(?i)^/(?:h264|mpeg4)/ch([1-9][0-9]?)/(main|sub)/av_stream$`)
)

// streamFor maps a request path to the stream it names.
func (d *Device) streamFor(path string) (streamKind, int, bool) {
	var ch int
	var kind streamKind
	if m := channelRE.FindStringSubmatch(path); m != nil {
		ch, _ = strconv.Atoi(m[1])
		kind = streamMain
		if m[2] == "2" {
			kind = streamSub
		}
	} else if m := legacyRE.FindStringSubmatch(path); m != nil {
		ch, _ = strconv.Atoi(m[1])
		kind = streamMain
		if strings.EqualFold(m[2], "sub") {
			kind = streamSub
		}
	} else {
		return 0, 0, false
	}
	return kind, ch, ch >= 1 && ch <= d.id.channels()
}

func addrPortOf(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		return unmapAP(ta.AddrPort())
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return unmapAP(ap)
}

// authorize checks an RTSP request's credentials; it returns the response
// to send instead when they do not let it through.
func (h *rtspHandler) authorize(sc *gortsplib.ServerConn, req *base.Request) *base.Response {
	d := h.d
	st := connState(sc)
	src := addrPortOf(sc.NetConn().RemoteAddr()).Addr()
	unauthorized := func(stale bool) *base.Response {
		return &base.Response{StatusCode: base.StatusUnauthorized,
			Header: base.Header{"WWW-Authenticate": base.HeaderValue{d.auth.rtspChallenge(stale)}}}
	}
	var c credentials
	var perr error
	vals := req.Header["Authorization"]
	if len(vals) > 0 {
		c, perr = parseAuthorization(vals[0])
		st.user = presentedUser(c)
	}
	if locked, left := d.locks.locked(src); locked {
		d.log.Info("refused: source is locked", "service", "rtsp", "src", src.String(), "unlock_in", left.Round(time.Second))
		return unauthorized(false)
	}
	switch {
	case len(vals) == 0:
		return unauthorized(false)
	case perr != nil:
		return &base.Response{StatusCode: base.StatusBadRequest}
	case c.scheme == "digest":
		md5, _ := lookupAlgo("MD5")
		v := d.auth.verify(digestRequest{method: string(req.Method), algos: []digestAlgo{md5},
			uriOK: func(uri string) bool { return sameRTSPURI(uri, st.origURL) }}, c.params, d.user, d.password)
		switch v {
		case verdictOK:
			d.locks.succeed(src)
			return nil
		case verdictStale, verdictUnknownNonce:
			return unauthorized(v == verdictStale)
		case verdictMalformed:
			return &base.Response{StatusCode: base.StatusBadRequest}
		}
	}
	locked, remaining := d.locks.fail(src)
	if locked {
		d.log.Warn("illegal login lock: source locked", "service", "rtsp", "src", src.String(), "user", st.user)
	} else {
		d.log.Info("failed login", "service", "rtsp", "src", src.String(), "user", st.user, "attempts_left", remaining)
	}
	return unauthorized(false)
}

// OnDescribe implements gortsplib.ServerHandlerOnDescribe: it answers with
// the device's own SDP.
func (h *rtspHandler) OnDescribe(ctx *gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if res := h.authorize(ctx.Conn, ctx.Request); res != nil {
		return res, nil, nil
	}
	kind, _, ok := h.d.streamFor(ctx.Path)
	if !ok {
		return &base.Response{StatusCode: base.StatusNotFound}, nil, nil
	}
	local := addrPortOf(ctx.Conn.NetConn().LocalAddr())
	own := h.d.ownAddr(local.Addr(), 0, addrPortOf(ctx.Conn.NetConn().RemoteAddr()).Addr())
	hostport := netip.AddrPortFrom(own, local.Port()).String()
	st := connState(ctx.Conn)
	st.base = "rtsp://" + hostport + ctx.Path + "/"
	return &base.Response{
		StatusCode: base.StatusOK,
		Body:       h.d.sdp(own, st.base, kind),
	}, nil, nil
}

// trackQuery is the query Hikvision appends to its control URLs.
func trackQuery(kind streamKind) string {
	return "transportmode=unicast&profile=Profile_" + strconv.Itoa(int(kind))
}

// sdp renders the session description the way a Hikvision device does.
func (d *Device) sdp(own netip.Addr, contentBase string, kind streamKind) []byte {
	c := d.clips[kind]
	q := trackQuery(kind)
	sess := d.boot.UnixMicro()
	lines := []string{
		"v=0",
		fmt.Sprintf("o=- %d %d IN IP4 %s", sess, sess, own),
		"s=Media Presentation",
		"e=NONE",
		"b=AS:5050",
		"t=0 0",
		"a=control:" + contentBase + "?" + q,
		"m=video 0 RTP/AVP 96",
		"c=IN IP4 0.0.0.0",
		"b=AS:5000",
		"a=recvonly",
		fmt.Sprintf("a=x-dimensions:%d,%d", c.width, c.height),
		"a=control:" + contentBase + "trackID=1?" + q,
		"a=rtpmap:96 H264/90000",
		fmt.Sprintf("a=fmtp:96 profile-level-id=%s; packetization-mode=1; sprop-parameter-sets=%s,%s",
			strings.ToUpper(hex.EncodeToString(c.sps[1:4])),
			base64.StdEncoding.EncodeToString(c.sps), base64.StdEncoding.EncodeToString(c.pps)),
	}
	return []byte(strings.Join(lines, "\r\n") + "\r\n")
}

// OnSetup implements gortsplib.ServerHandlerOnSetup.
func (h *rtspHandler) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if res := h.authorize(ctx.Conn, ctx.Request); res != nil {
		return res, nil, nil
	}
	kind, ch, ok := h.d.streamFor(ctx.Path)
	if !ok {
		return &base.Response{StatusCode: base.StatusNotFound}, nil, nil
	}
	sess, _ := ctx.Session.UserData().(*rtspSession)
	if sess == nil {
		stream, err := h.newStream(kind)
		if err != nil {
			return &base.Response{StatusCode: base.StatusInternalServerError}, nil, err
		}
		sess = &rtspSession{kind: kind, channel: ch, stream: stream}
		ctx.Session.SetUserData(sess)
	} else if sess.kind != kind {
		return &base.Response{StatusCode: base.StatusBadRequest}, nil, nil
	}
	stream := sess.stream
	local := addrPortOf(ctx.Conn.NetConn().LocalAddr())
	own := h.d.ownAddr(local.Addr(), 0, addrPortOf(ctx.Conn.NetConn().RemoteAddr()).Addr())
	connState(ctx.Conn).trackURL = "rtsp://" + netip.AddrPortFrom(own, local.Port()).String() +
		ctx.Path + "/trackID=1?" + trackQuery(kind)
	return &base.Response{StatusCode: base.StatusOK}, stream, nil
}

// OnPlay implements gortsplib.ServerHandlerOnPlay.
func (h *rtspHandler) OnPlay(*gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// sameRTSPURI checks a Digest uri against the request line's URL, as a
// Hikvision device does: the response hashes the uri, so a proxy that
// rewrote the request URL (but not the uri) is caught here. An absolute
// uri must name the same host, port, path and query; a bare path (some
// clients send one) the same path. Any host is served: the device does
// not care which of its names, or whose, the client used.
func sameRTSPURI(uri, reqURL string) bool {
	u, err1 := url.Parse(uri)
	r, err2 := url.Parse(reqURL)
	if err1 != nil || err2 != nil {
		return false
	}
	trim := func(p string) string { return strings.TrimSuffix(p, "/") }
	if trim(u.Path) != trim(r.Path) {
		return false
	}
	if u.Host == "" {
		return true
	}
	return strings.EqualFold(u.Host, r.Host) && u.RawQuery == r.RawQuery
}
