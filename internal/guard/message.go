package guard

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
)

// HTTP/1.x and RTSP/1.0 message heads and body framing, just enough to
// find message boundaries and the few header fields the guards need.
// Everything else passes through: heads are re-emitted field by field
// (with CRLF line ends, so the device never sees a line ending the parser
// judged differently), bodies are streamed, never buffered whole.
//
// Requests are parsed strictly, because a lenient parser in front of a
// device with its own parser invites smuggling (RFC 9112 §11.2): obs-fold,
// whitespace before the colon, both Content-Length and Transfer-Encoding,
// conflicting lengths, a Transfer-Encoding not ending in chunked and
// control characters are refused with 400. Responses come from the
// device and are read leniently, but still within size limits.

// limits bound one message head.
type limits struct {
	line   int // longest start line or field line
	head   int // all of the head
	fields int // number of fields
}

var (
	// requestLimits: Hikvision's web UI sends short heads; 8 KiB lines
	// and 32 KiB heads are what common servers allow.
	requestLimits = limits{line: 8 << 10, head: 32 << 10, fields: 100}
	// responseLimits are looser: the device is trusted more than the
	// internet, but a broken one must not exhaust memory.
	responseLimits = limits{line: 16 << 10, head: 64 << 10, fields: 200}
)

// Reader sizes: each must hold the longest line allowed in its direction
// (a longer one fills the buffer and is refused).
const (
	requestReaderSize  = 8<<10 + 512
	responseReaderSize = 16<<10 + 512
	readerSize         = responseReaderSize // for tests and tools
	// rtspReaderSize reads an RTSP device's stream: interleaved media
	// frames move in bursts as large as this (see copyFrames).
	rtspReaderSize = 64 << 10
)

// maxChunkLine bounds a chunk-size line (with extensions) and a trailer
// field.
const maxChunkLine = 4 << 10

// message is a parsed head.
type message struct {
	response bool
	// Requests.
	method, target string
	// Responses.
	status int
	proto  string // "HTTP/1.1", "RTSP/1.0"

	head []byte // re-emitted head, CRLF line ends, ending with the blank line

	contentLength int64 // -1: absent
	chunked       bool  // Transfer-Encoding ends in chunked
	otherTE       bool  // Transfer-Encoding present, not ending in chunked
	authorization bool
	auth          string // the Authorization value (requests have at most one)
	upgrade       bool   // Upgrade field present
	stale         bool   // a WWW-Authenticate challenge says stale=true
	cseq          string
	host          string // the Host field's value (requests)
}

// parseError is a malformed or oversized message. status is the HTTP
// status to answer a request with.
type parseError struct {
	status int
	msg    string
}

func (e *parseError) Error() string { return e.msg }

func malformed(format string, args ...any) error {
	return &parseError{status: 400, msg: fmt.Sprintf(format, args...)}
}

// readLine returns one line without its line end. A line longer than max
// (or than the reader's buffer) is an error with status tooLong.
func readLine(br *bufio.Reader, max, tooLong int) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) || len(line) > max+2 {
		return nil, &parseError{status: tooLong, msg: fmt.Sprintf("line longer than %d bytes", max)}
	}
	if err != nil {
		if errors.Is(err, io.EOF) && len(line) > 0 {
			return nil, io.ErrUnexpectedEOF
		}
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// readMessage reads one head. fromClient selects the strict request rules;
// rtsp the RTSP/1.0 grammar. An HTTP client sending a response, or an HTTP
// device sending a request, is malformed; in RTSP either side may send
// either (server-to-client requests such as ANNOUNCE).
func readMessage(br *bufio.Reader, lim limits, rtsp, fromClient bool) (*message, error) {
	var line []byte
	var err error
	// RFC 9112 §2.2: ignore at least one empty line before a request.
	for i := 0; ; i++ {
		line, err = readLine(br, lim.line, 414)
		if err != nil {
			return nil, err
		}
		if len(line) > 0 {
			break
		}
		if i >= 4 {
			return nil, malformed("empty lines instead of a message")
		}
	}
	m := &message{contentLength: -1}
	if err := m.parseStart(line, rtsp, fromClient); err != nil {
		return nil, err
	}
	var hb bytes.Buffer
	hb.Grow(len(line) + 256)
	hb.Write(line)
	hb.WriteString("\r\n")
	nfields := 0
	var te []byte
	hosts := 0
	for {
		tooLong := 431
		if !fromClient {
			tooLong = 502
		}
		fl, err := readLine(br, lim.line, tooLong)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if len(fl) == 0 {
			break
		}
		nfields++
		if nfields > lim.fields || hb.Len()+len(fl) > lim.head {
			return nil, &parseError{status: tooLong, msg: fmt.Sprintf("head larger than %d bytes or %d fields", lim.head, lim.fields)}
		}
		name, value, err := splitField(fl, fromClient)
		if err != nil {
			return nil, err
		}
		switch {
		case equalFold(name, "content-length"):
			n, err := parseLength(value)
			if err != nil {
				return nil, err
			}
			if m.contentLength >= 0 && m.contentLength != n {
				return nil, malformed("conflicting Content-Length fields")
			}
			m.contentLength = n
		case equalFold(name, "transfer-encoding"):
			if len(te) > 0 {
				te = append(te, ',')
			}
			te = append(te, value...)
			if fromClient && !m.response {
				continue // re-emitted once, normalised, below
			}
		case equalFold(name, "authorization"):
			if m.authorization && fromClient {
				// Two answers: camgate could judge one while the device
				// reads the other.
				return nil, malformed("several Authorization fields")
			}
			m.authorization = true
			m.auth = string(value)
		case equalFold(name, "upgrade"):
			m.upgrade = true
		case equalFold(name, "host"):
			hosts++
			m.host = string(value)
		case equalFold(name, "www-authenticate"):
			m.stale = m.stale || staleChallenge(value)
		case equalFold(name, "cseq"):
			m.cseq = string(value)
		}
		hb.Write(name)
		hb.WriteString(": ")
		hb.Write(value)
		hb.WriteString("\r\n")
	}
	if fromClient && !m.response && len(te) > 0 {
		// Issue 14: the device gets exactly one "Transfer-Encoding:
		// chunked", whatever spelling passed checkRequest.
		hb.WriteString("Transfer-Encoding: chunked\r\n")
	}
	hb.WriteString("\r\n")
	m.head = hb.Bytes()
	if len(te) > 0 {
		last := lastToken(te)
		m.chunked = equalFold(last, "chunked")
		m.otherTE = !m.chunked
	}
	if fromClient && !m.response {
		if err := m.checkRequest(rtsp, hosts, te); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// parseStart parses a request line or status line.
func (m *message) parseStart(line []byte, rtsp, fromClient bool) error {
	proto := "HTTP/"
	if rtsp {
		proto = "RTSP/"
	}
	if bytes.HasPrefix(line, []byte(proto)) {
		if fromClient && !rtsp {
			return malformed("a response where a request was expected")
		}
		return m.parseStatus(line, proto)
	}
	if !fromClient && !rtsp {
		return malformed("device sent %q where a response was expected", clip(line))
	}
	return m.parseRequestLine(line, proto)
}

func (m *message) parseStatus(line []byte, proto string) error {
	m.response = true
	v, rest, ok := bytes.Cut(line, []byte(" "))
	if !ok || !validVersion(v, proto) {
		return malformed("bad status line %q", clip(line))
	}
	code, _, _ := bytes.Cut(rest, []byte(" "))
	if len(code) != 3 || !isDigits(code) {
		return malformed("bad status code in %q", clip(line))
	}
	m.proto = string(v)
	m.status, _ = strconv.Atoi(string(code))
	if m.status < 100 {
		return malformed("bad status code in %q", clip(line))
	}
	return nil
}

func (m *message) parseRequestLine(line []byte, proto string) error {
	method, rest, ok1 := bytes.Cut(line, []byte(" "))
	target, version, ok2 := bytes.Cut(rest, []byte(" "))
	if !ok1 || !ok2 || len(method) == 0 || len(target) == 0 || !isToken(method) {
		return malformed("bad request line %q", clip(line))
	}
	for _, c := range target {
		// A request target never holds '#' (RFC 9112 §3.2): a fragment
		// could hide "/.." from the filter (issue 14).
		if c <= ' ' || c == 0x7f || c == '#' {
			return malformed("bad request line %q", clip(line))
		}
	}
	if !validVersion(version, proto) {
		if bytes.HasPrefix(version, []byte(proto)) && len(version) == len(proto)+3 {
			return &parseError{status: 505, msg: fmt.Sprintf("version %q is not supported", clip(version))}
		}
		return malformed("bad request line %q", clip(line))
	}
	m.method, m.target, m.proto = string(method), string(target), string(version)
	return nil
}

// checkRequest applies the request-only rules.
func (m *message) checkRequest(rtsp bool, hosts int, te []byte) error {
	if len(te) > 0 {
		if rtsp {
			return malformed("Transfer-Encoding in an RTSP request")
		}
		if m.contentLength >= 0 {
			return malformed("both Content-Length and Transfer-Encoding (RFC 9112 §6.1)")
		}
		// Only "chunked", once: a parameter (chunked;x=1) or another
		// coding (identity, gzip) before it is refused, since the device's
		// parser may read the list differently (issue 14).
		if !equalFold(bytes.Trim(te, " \t"), "chunked") {
			return malformed("Transfer-Encoding %q is not a single chunked", clip(te))
		}
		if m.proto == "HTTP/1.0" {
			return malformed("Transfer-Encoding in an HTTP/1.0 request")
		}
	}
	if !rtsp && m.proto == "HTTP/1.1" && hosts != 1 {
		return malformed("HTTP/1.1 request with %d Host fields (RFC 9112 §3.2)", hosts)
	}
	if !rtsp && hosts > 1 {
		return malformed("several Host fields")
	}
	return nil
}

// splitField splits "name: value" and checks both. Requests get the
// strict rules; responses only lose NUL and bare CR.
func splitField(fl []byte, strict bool) (name, value []byte, err error) {
	if fl[0] == ' ' || fl[0] == '\t' {
		return nil, nil, malformed("obsolete line folding")
	}
	i := bytes.IndexByte(fl, ':')
	if i <= 0 {
		return nil, nil, malformed("field without a colon: %q", clip(fl))
	}
	name = fl[:i]
	if !isToken(name) {
		return nil, nil, malformed("bad field name %q", clip(name))
	}
	value = bytes.Trim(fl[i+1:], " \t")
	for _, c := range value {
		switch {
		case c == 0 || c == '\r' || c == '\n':
			return nil, nil, malformed("control character in field %q", clip(name))
		case strict && (c < ' ' && c != '\t' || c == 0x7f):
			return nil, nil, malformed("control character in field %q", clip(name))
		}
	}
	return name, value, nil
}

func parseLength(v []byte) (int64, error) {
	// A list of equal values ("5, 5") is allowed by RFC 9110 §8.6.
	var n int64 = -1
	for _, part := range bytes.Split(v, []byte(",")) {
		part = bytes.Trim(part, " \t")
		if len(part) == 0 || len(part) > 18 || !isDigits(part) {
			return 0, malformed("bad Content-Length %q", clip(v))
		}
		x, _ := strconv.ParseInt(string(part), 10, 64)
		if n >= 0 && x != n {
			return 0, malformed("conflicting Content-Length %q", clip(v))
		}
		n = x
	}
	return n, nil
}

// staleChallenge reports whether a WWW-Authenticate value carries
// stale=true (RFC 7616 §3.3): the password was right, the nonce old.
func staleChallenge(v []byte) bool {
	lv := bytes.ToLower(v)
	for {
		i := bytes.Index(lv, []byte("stale"))
		if i < 0 {
			return false
		}
		rest := bytes.TrimLeft(lv[i+5:], " \t")
		if len(rest) > 0 && rest[0] == '=' {
			rest = bytes.TrimLeft(rest[1:], " \t\"")
			if bytes.HasPrefix(rest, []byte("true")) {
				return true
			}
		}
		lv = lv[i+5:]
	}
}

func lastToken(list []byte) []byte {
	if i := bytes.LastIndexByte(list, ','); i >= 0 {
		list = list[i+1:]
	}
	t := bytes.Trim(list, " \t")
	if i := bytes.IndexByte(t, ';'); i >= 0 {
		t = bytes.TrimRight(t[:i], " \t")
	}
	return t
}

func validVersion(v []byte, proto string) bool {
	if !bytes.HasPrefix(v, []byte(proto)) {
		return false
	}
	rest := v[len(proto):]
	if proto == "RTSP/" {
		return string(rest) == "1.0"
	}
	return string(rest) == "1.1" || string(rest) == "1.0"
}

// isToken reports whether b is an RFC 9110 token.
func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !isTChar(c) {
			return false
		}
	}
	return true
}

func isTChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}

func isDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}

// equalFold compares an ASCII field name with a lower-case constant.
func equalFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := range b {
		c := b[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// clip shortens untrusted bytes for error messages and logs.
func clip(b []byte) string {
	const max = 80
	if len(b) > max {
		return string(b[:max]) + "..."
	}
	return string(b)
}

// bodyKind is how a message's body is delimited.
type bodyKind int

const (
	bodyNone    bodyKind = iota
	bodyFixed            // Content-Length bytes
	bodyChunked          // chunked transfer coding
	bodyClose            // until the connection closes
)

// requestBody is the framing of a request body (RFC 9112 §6.3 rules 4-7).
func (m *message) requestBody() (bodyKind, int64) {
	switch {
	case m.chunked:
		return bodyChunked, 0
	case m.contentLength > 0:
		return bodyFixed, m.contentLength
	}
	return bodyNone, 0
}

// responseBody is the framing of a response to a request with the given
// method (RFC 9112 §6.3 rules 1-7). RTSP bodies need a Content-Length
// (RFC 2326 §4.3).
func (m *message) responseBody(method string, rtsp bool) (bodyKind, int64) {
	if rtsp {
		if m.contentLength > 0 {
			return bodyFixed, m.contentLength
		}
		return bodyNone, 0
	}
	switch {
	case method == "HEAD", m.status/100 == 1, m.status == 204, m.status == 304:
		return bodyNone, 0
	case m.chunked:
		return bodyChunked, 0
	case m.otherTE:
		return bodyClose, 0
	case m.contentLength >= 0:
		if m.contentLength == 0 {
			return bodyNone, 0
		}
		return bodyFixed, m.contentLength
	}
	return bodyClose, 0
}

// copyBody streams one body from src to dst with buf. raw, if not nil, is
// the connection under src: large bodies between two TCP sockets are then
// spliced once src's buffer is empty (see spliceN).
func copyBody(dst io.Writer, src *bufio.Reader, raw net.Conn, kind bodyKind, n int64, buf []byte) error {
	switch kind {
	case bodyFixed:
		return copyN(dst, src, raw, n, buf)
	case bodyChunked:
		return copyChunked(dst, src, raw, buf)
	case bodyClose:
		if src.Buffered() > 0 {
			if _, err := dst.Write(buf[:copy(buf, mustPeek(src))]); err != nil {
				return err
			}
			src.Discard(min(src.Buffered(), len(buf)))
		}
		if src.Buffered() == 0 {
			if _, ok, err := spliceN(dst, raw, -1); ok {
				return err
			}
		}
		_, err := io.CopyBuffer(dst, onlyReader{src}, buf)
		return err
	}
	return nil
}

func mustPeek(br *bufio.Reader) []byte {
	b, _ := br.Peek(br.Buffered())
	return b
}

// spliceMin is the body size from which splicing beats copying through a
// buffer (a pipe and two syscalls per burst instead of one copy each way).
const spliceMin = 64 << 10

// spliceN moves n bytes (n < 0: until EOF) from raw to dst with splice(2)
// when both are plain TCP sockets (dst through its byte counter). ok is
// false when it could not try; then nothing was moved.
func spliceN(dst io.Writer, raw net.Conn, n int64) (moved int64, ok bool, err error) {
	cw, isCW := dst.(*countWriter)
	if !isCW || raw == nil || (n >= 0 && n < spliceMin) {
		return 0, false, nil
	}
	to, ok1 := cw.w.(*net.TCPConn)
	from, ok2 := raw.(*net.TCPConn)
	if !ok1 || !ok2 {
		return 0, false, nil
	}
	var r io.Reader = from
	if n >= 0 {
		r = &io.LimitedReader{R: from, N: n}
	}
	moved, err = to.ReadFrom(r)
	if moved > 0 {
		cw.add(int(moved))
	}
	return moved, true, err
}

// onlyReader hides WriteTo so io.CopyBuffer uses the given buffer.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func copyN(dst io.Writer, src *bufio.Reader, raw net.Conn, n int64, buf []byte) error {
	for n > 0 {
		if src.Buffered() == 0 {
			if m, ok, err := spliceN(dst, raw, n); ok {
				n -= m
				if err != nil {
					return err
				}
				if n > 0 && m == 0 {
					return io.ErrUnexpectedEOF
				}
				continue
			}
		}
		k := int64(len(buf))
		if n < k {
			k = n
		}
		r, err := src.Read(buf[:k])
		if r > 0 {
			if _, werr := dst.Write(buf[:r]); werr != nil {
				return werr
			}
			n -= int64(r)
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// copyChunked forwards a chunked body as chunks (RFC 9112 §7.1),
// re-emitting each size line and the trailer fields.
func copyChunked(dst io.Writer, src *bufio.Reader, raw net.Conn, buf []byte) error {
	for {
		line, err := readLine(src, maxChunkLine, 400)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return io.ErrUnexpectedEOF
			}
			return err
		}
		size, err := chunkSize(line)
		if err != nil {
			return err
		}
		if err := writeLine(dst, line, buf); err != nil {
			return err
		}
		if size == 0 {
			return copyTrailer(dst, src, buf)
		}
		if err := copyN(dst, src, raw, size, buf); err != nil {
			return err
		}
		crlf, err := readLine(src, 0, 400)
		switch {
		case errors.Is(err, io.EOF):
			return io.ErrUnexpectedEOF
		case err != nil:
			return err
		case len(crlf) != 0:
			return malformed("chunk not followed by CRLF")
		}
		if _, err := dst.Write([]byte("\r\n")); err != nil {
			return err
		}
	}
}

// writeLine writes line and CRLF in one write, through scratch: line
// points into a bufio.Reader's buffer, which must not be appended to.
func writeLine(dst io.Writer, line, scratch []byte) error {
	n := copy(scratch, line)
	if n != len(line) || n+2 > len(scratch) {
		return malformed("line too long")
	}
	scratch[n], scratch[n+1] = '\r', '\n'
	_, err := dst.Write(scratch[:n+2])
	return err
}

// chunkSize parses a chunk-size line: hex digits, then optional
// extensions after ';'.
func chunkSize(line []byte) (int64, error) {
	hex := line
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		hex = line[:i]
	}
	hex = bytes.TrimRight(hex, " \t")
	if len(hex) == 0 || len(hex) > 15 {
		return 0, malformed("bad chunk size %q", clip(line))
	}
	var n int64
	for _, c := range hex {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, malformed("bad chunk size %q", clip(line))
		}
		n = n<<4 | int64(d)
	}
	for _, c := range line[len(hex):] {
		if c == 0 || c == '\r' {
			return 0, malformed("bad chunk extension %q", clip(line))
		}
	}
	return n, nil
}

// copyTrailer forwards trailer fields up to and including the blank line.
func copyTrailer(dst io.Writer, src *bufio.Reader, buf []byte) error {
	total := 0
	for {
		line, err := readLine(src, maxChunkLine, 400)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return io.ErrUnexpectedEOF
			}
			return err
		}
		total += len(line)
		if total > requestLimits.head {
			return malformed("trailer too large")
		}
		if len(line) > 0 {
			if _, _, err := splitField(line, true); err != nil {
				return err
			}
		}
		if err := writeLine(dst, line, buf); err != nil {
			return err
		}
		if len(line) == 0 {
			return nil
		}
	}
}

// copyFrame forwards one RTSP interleaved binary frame (RFC 2326 §10.12):
// '$', a channel byte, a 2-byte big-endian length, then the data.
// copyFrames forwards the interleaved frames src already holds whole in
// one write, straight from its buffer (a camera's frames come in bursts:
// one write per frame cost the RTSP relay over half its throughput), or
// one frame with copyFrame when the first is not whole yet.
func copyFrames(dst io.Writer, src *bufio.Reader, buf []byte) error {
	b, _ := src.Peek(src.Buffered())
	end := 0
	for len(b)-end >= 4 && b[end] == '$' {
		n := 4 + (int(b[end+2])<<8 | int(b[end+3]))
		if len(b)-end < n {
			break
		}
		end += n
	}
	if end == 0 {
		return copyFrame(dst, src, buf)
	}
	if _, err := dst.Write(b[:end]); err != nil {
		return err
	}
	_, err := src.Discard(end)
	return err
}

func copyFrame(dst io.Writer, src *bufio.Reader, buf []byte) error {
	hdr, err := src.Peek(4)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return io.ErrUnexpectedEOF
		}
		return err
	}
	n := int64(hdr[2])<<8 | int64(hdr[3])
	return copyN(dst, src, nil, 4+n, buf)
}
