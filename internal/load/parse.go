package load

import (
	"bytes"
	"strconv"
)

// parser reads one HTTP/1.1 response at a time from whatever pieces the
// socket delivers, without keeping them: only an unfinished line (of the
// head, or a chunk's size) is carried to the next piece, so a connection
// waiting for its answer costs no buffer and a body of any length costs
// nothing at all. It is the epoll reactor's counterpart of conn.roundTrip.
type parser struct {
	state  parseState
	status int
	length int64 // -1: none given
	chunk  bool
	close  bool  // the connection ends after this response
	v10    bool  // an HTTP/1.0 answer: the connection ends unless it says keep-alive
	keep   bool  // the answer's Connection header says keep-alive
	remain int64 // bytes of the body (or of the chunk and its CRLF) to come
	n      int64 // bytes of this response so far
	carry  []byte
}

type parseState uint8

const (
	psStatus parseState = iota
	psHeader
	psBody
	psChunkSize
	psChunkData
	psTrailer
	psUntilEOF // no length given: the body runs to the end of the connection
)

// maxLine bounds a line of the head or a chunk size line, as the lean
// client's 16 KiB read buffer does.
const maxLine = 16 << 10

// reset readies p for the next response; keepAlive false makes every
// response the connection's last.
func (p *parser) reset(keepAlive bool) {
	*p = parser{length: -1, close: !keepAlive, carry: p.carry[:0]}
}

// feed takes the next bytes from the connection. It returns how many it
// used and whether the response is complete; bytes after a complete
// response are not used (the caller sends one request at a time, so there
// should be none).
func (p *parser) feed(data []byte) (used int, done bool, err error) {
	for used < len(data) {
		d := data[used:]
		switch p.state {
		case psBody, psChunkData:
			k := int(min(int64(len(d)), p.remain))
			used += k
			p.n += int64(k)
			p.remain -= int64(k)
			if p.remain > 0 {
				continue
			}
			if p.state == psBody {
				return used, true, nil
			}
			p.state = psChunkSize
		case psUntilEOF:
			p.n += int64(len(d))
			return len(data), false, nil
		default: // a line
			i := bytes.IndexByte(d, '\n')
			if i < 0 {
				if len(p.carry)+len(d) > maxLine {
					return used, false, errMalformed
				}
				p.carry = append(p.carry, d...)
				p.n += int64(len(d))
				return len(data), false, nil
			}
			line := d[:i+1]
			used += i + 1
			p.n += int64(i + 1)
			if len(p.carry)+len(line) > maxLine {
				return used, false, errMalformed
			}
			if len(p.carry) > 0 {
				p.carry = append(p.carry, line...)
				line = p.carry
			}
			done, err := p.line(line)
			p.carry = p.carry[:0]
			if err != nil || done {
				return used, done, err
			}
		}
	}
	return used, false, nil
}

// eof reports whether the connection's end completes the response (a body
// that runs to the end) or cuts it short.
func (p *parser) eof() (done bool, err error) {
	if p.state == psUntilEOF {
		return true, nil
	}
	if p.state == psStatus && p.n == 0 {
		return false, errClosed
	}
	return false, errMalformed
}

// line handles one complete line, CRLF included.
func (p *parser) line(line []byte) (done bool, err error) {
	switch p.state {
	case psStatus:
		if p.status = statusOf(line); p.status == 0 {
			return false, errMalformed
		}
		p.v10, p.state = isHTTP10(line), psHeader
	case psHeader:
		if len(line) <= 2 { // the blank line ends the head
			return p.bodyStarts()
		}
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			return false, errMalformed
		}
		name, value := line[:colon], bytes.TrimSpace(line[colon+1:])
		switch {
		case asciiEqualFold(name, "content-length"):
			n, err := strconv.ParseInt(string(value), 10, 64)
			if err != nil || n < 0 {
				return false, errMalformed
			}
			p.length = n
		case asciiEqualFold(name, "transfer-encoding"):
			p.chunk = asciiEqualFold(value, "chunked")
		case asciiEqualFold(name, "connection"):
			closes, keep := connectionTokens(value)
			p.close = p.close || closes
			p.keep = p.keep || keep
		}
	case psChunkSize:
		line = bytes.TrimSpace(line)
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i]
		}
		size, err := strconv.ParseInt(string(line), 16, 64)
		if err != nil || size < 0 || size > 1<<60 {
			return false, errMalformed
		}
		if size == 0 {
			p.state = psTrailer
			return false, nil
		}
		p.state, p.remain = psChunkData, size+2 // the data and its CRLF
	case psTrailer:
		if len(line) <= 2 {
			return true, nil
		}
	}
	return false, nil
}

func (p *parser) bodyStarts() (done bool, err error) {
	if p.v10 && !p.keep {
		p.close = true
	}
	switch {
	case p.status < 200 || p.status == 204 || p.status == 304:
		return true, nil
	case p.chunk:
		p.state = psChunkSize
	case p.length == 0:
		return true, nil
	case p.length > 0:
		p.state, p.remain = psBody, p.length
	default:
		p.state, p.close = psUntilEOF, true
	}
	return false, nil
}

// statusOf reads the status code of a status line ("HTTP/1.1 200 OK\r\n"),
// or returns 0 if line is not one.
func statusOf(line []byte) int {
	if len(line) < 13 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' ||
		(line[12] != ' ' && line[12] != '\r' && line[12] != '\n') {
		return 0
	}
	code := 0
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return 0
		}
		code = code*10 + int(c-'0')
	}
	if code < 100 || code > 599 {
		return 0
	}
	return code
}

// isHTTP10 reports whether a status line (already checked by statusOf) is
// HTTP/1.0's: such a connection is persistent only when the answer says
// "Connection: keep-alive" (RFC 9112, section 9.3).
func isHTTP10(line []byte) bool { return line[7] == '0' }

// connectionTokens reads a Connection header's comma-separated options:
// whether they include close, and keep-alive.
func connectionTokens(v []byte) (closes, keepAlive bool) {
	for len(v) > 0 {
		tok := v
		if i := bytes.IndexByte(v, ','); i >= 0 {
			tok, v = v[:i], v[i+1:]
		} else {
			v = nil
		}
		tok = bytes.TrimSpace(tok)
		closes = closes || asciiEqualFold(tok, "close")
		keepAlive = keepAlive || asciiEqualFold(tok, "keep-alive")
	}
	return closes, keepAlive
}
