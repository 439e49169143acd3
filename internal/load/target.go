package load

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// NewTarget builds a target from a method, a URL, "Name: value" headers
// and a body, refusing what cannot be sent as it was meant: a URL that is
// not http(s), a method or header name that is not a token, a header value
// with CR or LF.
func NewTarget(method, rawURL string, headers []string, body []byte) (Target, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return Target{}, fmt.Errorf("%q is not an http:// or https:// URL", rawURL)
	}
	if !ValidToken(method) {
		return Target{}, fmt.Errorf("method %q is not an HTTP token", method)
	}
	h := http.Header{}
	for _, kv := range headers {
		k, v, ok := strings.Cut(kv, ":")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || !ValidToken(k) {
			return Target{}, fmt.Errorf("header %q: want 'Name: value' with a name of letters, digits and !#$%%&'*+-.^_`|~", kv)
		}
		if !ValidHeaderValue(v) {
			return Target{}, fmt.Errorf("header %q: a value may not hold CR, LF or other control characters", kv)
		}
		h.Add(k, v)
	}
	return Target{Method: strings.ToUpper(method), URL: u, Header: h, Body: body}, nil
}

// ReadTargets reads a file of 'METHOD URL [@bodyfile]' lines (# starts a
// comment; a body file's path is relative to the file), each sent with
// headers.
func ReadTargets(path string, headers []string) ([]Target, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--targets: %w", err)
	}
	var out []Target
	for i, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if len(f) < 2 || len(f) > 3 {
			return nil, fmt.Errorf("%s:%d: want 'METHOD URL [@bodyfile]'", path, i+1)
		}
		var body []byte
		if len(f) == 3 {
			if !strings.HasPrefix(f[2], "@") {
				return nil, fmt.Errorf("%s:%d: a body file is written @path", path, i+1)
			}
			if body, err = ReadBody(filepath.Join(filepath.Dir(path), f[2][1:])); err != nil {
				return nil, fmt.Errorf("%s:%d: %w", path, i+1, err)
			}
		}
		t, err := NewTarget(f[0], f[1], headers, body)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, i+1, err)
		}
		out = append(out, t)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s has no targets", path)
	}
	return out, nil
}

// SaleTarget is the order endpoint of the shop at base: POST base/api/orders.
func SaleTarget(base Target) Target {
	t := base
	t.URL = base.URL.JoinPath("api", "orders")
	if !strings.HasPrefix(t.URL.Path, "/") {
		t.URL.Path = "/" + t.URL.Path
	}
	return t
}

// ProductLiteral renders a product id as the JSON the shop takes: a number
// as it is, anything else as a string.
func ProductLiteral(id string) string {
	if _, err := strconv.ParseInt(id, 10, 64); err == nil {
		return id
	}
	return strconv.Quote(id)
}

// ParseIPRange reads A.B.C.D-A.B.C.E (the last number ranges) or a comma
// list of such ranges and addresses.
func ParseIPRange(s string) ([]net.IP, error) {
	var out []net.IP
	for part := range strings.SplitSeq(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a := net.ParseIP(strings.TrimSpace(lo)).To4()
		if a == nil {
			return nil, fmt.Errorf("%q is not an IPv4 address", lo)
		}
		if !isRange {
			out = append(out, a)
			continue
		}
		b := net.ParseIP(strings.TrimSpace(hi)).To4()
		if b == nil || !a[:3].Equal(b[:3]) || b[3] < a[3] {
			return nil, fmt.Errorf("%q: a range differs only in its last number, low to high", part)
		}
		for x := int(a[3]); x <= int(b[3]); x++ {
			out = append(out, net.IPv4(a[0], a[1], a[2], byte(x)).To4())
		}
	}
	local, err := localAddrs()
	if err != nil {
		return nil, err
	}
	for _, ip := range out {
		if !ip.IsLoopback() && !local[ip.String()] {
			return nil, fmt.Errorf("%s is not an address of this machine: a connection can only start from one", ip)
		}
	}
	return out, nil
}

// localAddrs is the set of this machine's interface addresses. Every
// address of 127.0.0.0/8 is this machine's too, without being listed.
func localAddrs() (map[string]bool, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("list this machine's addresses: %w", err)
	}
	out := map[string]bool{}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			out[n.IP.String()] = true
		}
	}
	return out, nil
}
