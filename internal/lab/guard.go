package lab

import (
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// guard refuses what a web page elsewhere could make a browser send the
// lab, which runs code on this machine:
//   - a Host that is not an IP address, localhost or an allowed name: a
//     page whose name was rebound to 127.0.0.1 (DNS rebinding) still sends
//     its own name as the Host, and is refused (403);
//   - an Origin that is not the lab's own (a cross-site request, which
//     browsers send with it): 403;
//   - a run asked for in anything but JSON, which a cross-site form can
//     send without the browser asking first (a "simple" text/plain
//     request): 415.
func guard(h http.Handler, allowHosts []string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !hostAllowed(r.Host, allowHosts) {
			writeError(w, http.StatusForbidden, "foreign_host", "the lab answers only to its own address (an IP address or localhost), or to a name given with --allow-host")
			return
		}
		if o := r.Header.Get("Origin"); o != "" {
			u, err := url.Parse(o)
			if err != nil || u.Host != r.Host {
				writeError(w, http.StatusForbidden, "foreign_origin", "the lab takes requests only from its own pages")
				return
			}
		}
		if r.Method == http.MethodPost && !isJSON(r.Header.Get("Content-Type")) {
			writeError(w, http.StatusUnsupportedMediaType, "want_json", "send the run's parameters as application/json")
			return
		}
		h.ServeHTTP(w, r)
	})
}

func hostAllowed(hostport string, allow []string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(strings.Trim(host, "[]"), "."))
	return host == "localhost" || net.ParseIP(host) != nil || slices.Contains(allow, host)
}

func isJSON(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	return strings.EqualFold(strings.TrimSpace(mt), "application/json")
}
