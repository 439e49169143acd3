package load

import (
	"errors"
	"strings"
	"testing"
)

// TestParserWherePiecesFall: each response is parsed to the same end
// however the socket cuts it, whole, in two pieces at every point, or a
// byte at a time: the status, the bytes counted (all of them), completion
// exactly at the last byte, and whether the connection ends.
func TestParserWherePiecesFall(t *testing.T) {
	for _, c := range []struct {
		name   string
		resp   string
		status int
		close  bool
		eof    bool // complete only when the connection ends
	}{
		{"length", "HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nhello, world\n", 200, false, false},
		{"empty", "HTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n", 201, false, false},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nTrailer: yes\r\n\r\n", 200, false, false},
		{"no body", "HTTP/1.1 204 No Content\r\nContent-Length: 99\r\n\r\n", 204, false, false},
		{"not modified", "HTTP/1.1 304 Not Modified\r\n\r\n", 304, false, false},
		{"close", "HTTP/1.1 409 Conflict\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}", 409, true, false},
		{"to the end", "HTTP/1.0 200 OK\r\n\r\nuntil the server closes", 200, true, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			cuts := [][]int{{len(c.resp)}}
			for i := 1; i < len(c.resp); i++ {
				cuts = append(cuts, []int{i, len(c.resp)})
			}
			bytewise := make([]int, len(c.resp))
			for i := range bytewise {
				bytewise[i] = i + 1
			}
			cuts = append(cuts, bytewise)
			var p parser
			for _, ends := range cuts {
				p.reset(true)
				from, done := 0, false
				for k, to := range ends {
					used, d, err := p.feed([]byte(c.resp[from:to]))
					if err != nil {
						t.Fatalf("cut at %v: %v", ends, err)
					}
					if used != to-from {
						t.Fatalf("cut at %v: used %d of %d bytes", ends, used, to-from)
					}
					if d && k != len(ends)-1 {
						t.Fatalf("cut at %v: complete after byte %d of %d", ends, to, len(c.resp))
					}
					done, from = d, to
				}
				if c.eof {
					if done {
						t.Fatalf("cut at %v: complete before the connection ended", ends)
					}
					if done, err := p.eof(); !done || err != nil {
						t.Fatalf("cut at %v: the end of the connection gave %v, %v", ends, done, err)
					}
				} else if !done {
					t.Fatalf("cut at %v: not complete at the last byte", ends)
				}
				if p.status != c.status || p.n != int64(len(c.resp)) || p.close != c.close {
					t.Fatalf("cut at %v: status %d, %d bytes, close %v; want %d, %d, %v",
						ends, p.status, p.n, p.close, c.status, len(c.resp), c.close)
				}
			}
		})
	}
}

// TestParserRefuses: what is not an HTTP/1.1 response is errMalformed; a
// connection that ends before a byte of the answer is errClosed; one that
// ends inside a body with a length cut it short (errMalformed). Bytes
// after a complete response are left unused.
func TestParserRefuses(t *testing.T) {
	for _, c := range []struct {
		name string
		resp string
	}{
		{"not http", "SSH-2.0-OpenSSH_9.2\r\n"},
		{"short status line", "HTTP/1.1 20\r\n"},
		{"status out of range", "HTTP/1.1 999 Nope\r\n"},
		{"header without colon", "HTTP/1.1 200 OK\r\nnonsense\r\n\r\n"},
		{"negative length", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"},
		{"bad chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"},
		{"line too long", "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("a", maxLine) + "\r\n\r\n"},
	} {
		var p parser
		p.reset(true)
		if _, _, err := p.feed([]byte(c.resp)); !errors.Is(err, errMalformed) {
			t.Errorf("%s: %v, want errMalformed", c.name, err)
		}
	}
	var p parser
	p.reset(true)
	if done, err := p.eof(); done || !errors.Is(err, errClosed) {
		t.Errorf("end before any byte: %v, %v; want errClosed", done, err)
	}
	p.reset(true)
	p.feed([]byte("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"))
	if done, err := p.eof(); done || !errors.Is(err, errMalformed) {
		t.Errorf("end inside a body: %v, %v; want errMalformed", done, err)
	}
	p.reset(true)
	two := "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
	if used, done, err := p.feed([]byte(two + two)); used != len(two) || !done || err != nil {
		t.Errorf("two responses in one piece: used %d, done %v, %v; want %d, true, nil", used, done, err, len(two))
	}
	p.reset(false)
	if p.feed([]byte(two)); !p.close {
		t.Error("without keep-alive every response should end its connection")
	}
}
