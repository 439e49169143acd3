package load

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"strconv"
	"time"
)

// conn is one HTTP/1.1 connection with reused buffers: the request is
// written from a byte slice the caller keeps, and the response is parsed in
// place from a read buffer, so a request costs no allocation.
type conn struct {
	nc        net.Conn
	r         *bufio.Reader
	keepAlive bool
	// body collects the response body when the caller wants it (the
	// flash-sale scenario reads order ids); otherwise it is skipped.
	body []byte
	buf  []byte // https: what net/http's body is read through
	// served counts the answers read on nc: a connection that has served
	// one may have been closed by the server while idle.
	served    int
	idleSince time.Time
}

var (
	errMalformed = errors.New("malformed HTTP response")
	errClosed    = errors.New("server closed the connection")
	// errNotSent: the run ended before the request could be sent.
	errNotSent = errors.New("not sent: the run had ended")
)

// roundTrip writes req and reads one response. It returns the status code
// and the bytes read. keepBody asks for the body in c.body; last says the
// request itself asked to close the connection (Connection: close).
// After an answer that ends the connection (Connection: close from either
// side, an HTTP/1.0 answer without keep-alive, a body that runs to the
// end) c.nc is closed and nil, and the next request dials anew.
func (c *conn) roundTrip(req []byte, deadline time.Time, keepBody, last bool) (status int, n int64, err error) {
	if !deadline.IsZero() {
		c.nc.SetDeadline(deadline)
	}
	if _, err := c.nc.Write(req); err != nil {
		return 0, 0, err
	}
	line, err := c.r.ReadSlice('\n')
	n += int64(len(line))
	if err != nil {
		if errors.Is(err, io.EOF) && len(line) == 0 {
			return 0, n, errClosed
		}
		return 0, n, err
	}
	if status = statusOf(line); status == 0 {
		return 0, n, errMalformed
	}
	v10, keep := isHTTP10(line), false
	length, chunked, closeAfter := int64(-1), false, !c.keepAlive || last
	for {
		h, err := c.r.ReadSlice('\n')
		n += int64(len(h))
		if err != nil {
			return status, n, err
		}
		if len(h) <= 2 { // the blank line
			break
		}
		colon := bytes.IndexByte(h, ':')
		if colon < 0 {
			return status, n, errMalformed
		}
		name, value := h[:colon], bytes.TrimSpace(h[colon+1:])
		switch {
		case asciiEqualFold(name, "content-length"):
			if length, err = strconv.ParseInt(string(value), 10, 64); err != nil || length < 0 {
				return status, n, errMalformed
			}
		case asciiEqualFold(name, "transfer-encoding"):
			chunked = asciiEqualFold(value, "chunked")
		case asciiEqualFold(name, "connection"):
			closes, ka := connectionTokens(value)
			closeAfter = closeAfter || closes
			keep = keep || ka
		}
	}
	if v10 && !keep {
		closeAfter = true
	}
	c.body = c.body[:0]
	switch {
	case status < 200 || status == 204 || status == 304:
	case chunked:
		m, err := c.readChunked(keepBody)
		n += m
		if err != nil {
			return status, n, err
		}
	case length >= 0:
		m, err := c.readBody(length, keepBody)
		n += m
		if err != nil {
			return status, n, err
		}
	default: // body runs to the end of the connection
		m, err := c.readBody(1<<62, keepBody)
		n += m
		if err != nil && !errors.Is(err, io.EOF) {
			return status, n, err
		}
		closeAfter = true
	}
	if closeAfter {
		c.nc.Close()
		c.nc = nil
	}
	c.served++
	c.idleSince = time.Now()
	return status, n, nil
}

func (c *conn) readBody(length int64, keep bool) (int64, error) {
	var read int64
	for read < length {
		chunk, err := c.r.Peek(min(int(length-read), c.r.Size()))
		if len(chunk) == 0 && err != nil {
			return read, err
		}
		if keep && len(c.body) < maxKeptBody {
			c.body = append(c.body, chunk[:min(len(chunk), maxKeptBody-len(c.body))]...)
		}
		c.r.Discard(len(chunk))
		read += int64(len(chunk))
	}
	return read, nil
}

func (c *conn) readChunked(keep bool) (int64, error) {
	var n int64
	for {
		line, err := c.r.ReadSlice('\n')
		n += int64(len(line))
		if err != nil {
			return n, err
		}
		line = bytes.TrimSpace(line)
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i]
		}
		size, err := strconv.ParseInt(string(line), 16, 64)
		if err != nil || size < 0 {
			return n, errMalformed
		}
		if size == 0 { // trailers, then the blank line
			for {
				t, err := c.r.ReadSlice('\n')
				n += int64(len(t))
				if err != nil {
					return n, err
				}
				if len(t) <= 2 {
					return n, nil
				}
			}
		}
		m, err := c.readBody(size+2, keep) // data and its CRLF
		n += m
		if err != nil {
			return n, err
		}
	}
}

// maxKeptBody bounds what is kept of a body: enough for an order's JSON.
const maxKeptBody = 4096

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}
