package load

import (
	"fmt"
	"io"
	"os"
)

// Bounds on what a run may be told, so that no flag can make it run
// forever or hold the machine's memory.
const (
	MaxUsers     = 1_000_000  // virtual users, requests in flight, connections
	MaxRate      = 10_000_000 // requests per second
	MaxBodyBytes = 64 << 20   // a request body read from a file
)

// ValidToken reports whether s is an HTTP token (RFC 9110), as a method or
// a header name must be.
func ValidToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c < 0x80 && c > 0x20 && (c == '!' || c == '#' || c == '$' || c == '%' || c == '&' || c == '\'' ||
			c == '*' || c == '+' || c == '-' || c == '.' || c == '^' || c == '_' || c == '`' || c == '|' || c == '~'):
		default:
			return false
		}
	}
	return true
}

// ValidHeaderValue reports whether v can be sent as a header value: no
// control characters but the tab, so no CR or LF that would end the header
// and start another of the user's making.
func ValidHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// ReadBody reads a request body from a regular file of at most
// MaxBodyBytes: not a device such as /dev/zero, which never ends, nor a
// pipe.
func ReadBody(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if st.Size() > MaxBodyBytes {
		return nil, fmt.Errorf("%s has %d bytes; a body may have at most %d", path, st.Size(), MaxBodyBytes)
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxBodyBytes+1))
	if err == nil && len(b) > MaxBodyBytes {
		err = fmt.Errorf("%s grew past %d bytes while it was read", path, MaxBodyBytes)
	}
	return b, err
}
