package load

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// TestReactorCountsExactly: more users than cores, each on its own
// connection, -n ends the run at exactly that many requests, every one
// answered and counted once, with the bytes each way.
func TestReactorCountsExactly(t *testing.T) {
	var served, conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		w.Write([]byte("ok"))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	cfg := Config{Targets: target(t, srv.URL), Users: 37, Requests: 5000, KeepAlive: true, Engine: EngineEpoll}
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	rep := res.Report()
	req := int64(len(buildRequest(cfg.Targets[0], true)))
	if rep.Requests != 5000 || rep.StatusCodes["200"] != 5000 || len(rep.Errors) != 0 || served.Load() != 5000 {
		t.Errorf("requests %d, statuses %v, errors %v, served %d; want 5000 × 200", rep.Requests, rep.StatusCodes, rep.Errors, served.Load())
	}
	if rep.BytesOut != 5000*req {
		t.Errorf("bytes out %d, want %d", rep.BytesOut, 5000*req)
	}
	if n := conns.Load(); n != 37 {
		t.Errorf("%d connections for 37 users on keep-alive", n)
	}
}

// TestReactorNewConnections: a server that closes every connection after
// its answer, and a run without keep-alive, each cost one connection per
// request, and every request is still answered.
func TestReactorNewConnections(t *testing.T) {
	for _, c := range []struct {
		name      string
		keepAlive bool
		header    string
	}{{"server closes", true, "close"}, {"no keep-alive", false, ""}} {
		var conns atomic.Int64
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if c.header != "" {
				w.Header().Set("Connection", c.header)
			}
			w.Write([]byte("ok"))
		}))
		srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				conns.Add(1)
			}
		}
		srv.Start()
		res, err := Run(context.Background(), Config{Targets: target(t, srv.URL), Users: 8, Requests: 400, KeepAlive: c.keepAlive, Engine: EngineEpoll})
		srv.Close()
		if err != nil {
			t.Fatal(err)
		}
		rep := res.Report()
		if rep.StatusCodes["200"] != 400 || len(rep.Errors) != 0 || conns.Load() != 400 {
			t.Errorf("%s: statuses %v, errors %v, %d connections; want 400 × 200 over 400 connections", c.name, rep.StatusCodes, rep.Errors, conns.Load())
		}
	}
}

// TestReactorErrors: a closed port is connect_refused, a server that never
// answers is a timeout at --timeout, one that hangs up without answering
// is closed, and one that answers nonsense is malformed; each run still
// ends when -d says.
func TestReactorErrors(t *testing.T) {
	closedPort := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		return "http://" + addr + "/"
	}
	rawServer := func(answer func(net.Conn)) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					buf := make([]byte, 4096)
					c.Read(buf)
					answer(c)
				}()
			}
		}()
		return "http://" + ln.Addr().String() + "/"
	}
	silent := rawServer(func(c net.Conn) { time.Sleep(5 * time.Second); c.Close() })
	hangUp := rawServer(func(c net.Conn) { c.Close() })
	nonsense := rawServer(func(c net.Conn) { c.Write([]byte("SSH-2.0-OpenSSH_9.2\r\n")); c.Close() })
	for _, c := range []struct {
		url, class string
	}{{closedPort(), ErrConnectRefused}, {silent, ErrTimeout}, {hangUp, ErrClosed}, {nonsense, ErrMalformed}} {
		start := time.Now()
		res, err := Run(context.Background(), Config{Targets: target(t, c.url), Users: 4, Duration: 700 * time.Millisecond,
			Timeout: 300 * time.Millisecond, KeepAlive: true, Engine: EngineEpoll})
		if err != nil {
			t.Fatal(err)
		}
		rep := res.Report()
		var other int64
		for k, n := range rep.Errors {
			if k != c.class {
				other += n
			}
		}
		if rep.Errors[c.class] == 0 || other != 0 || len(rep.StatusCodes) != 0 {
			t.Errorf("%s: errors %v, statuses %v; want only %s", c.url, rep.Errors, rep.StatusCodes, c.class)
		}
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("%s: a 0.7 s run took %v", c.url, took)
		}
	}
}

// TestEngineChoice: --engine epoll where the reactor cannot serve, or an
// engine of no name, is one clear error; auto falls back to goroutines.
func TestEngineChoice(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	base := Config{Targets: target(t, srv.URL), Duration: 100 * time.Millisecond, KeepAlive: true}
	for _, c := range []struct {
		mod  func(*Config)
		want string
	}{
		{func(c *Config) { c.Rate, c.Engine = 10, EngineEpoll }, "the epoll engine cannot run the open model (--rate); leave --engine out"},
		{func(c *Config) { c.Users, c.Think, c.Engine = 2, time.Millisecond, EngineEpoll }, "the epoll engine cannot run --think; leave --engine out"},
		{func(c *Config) { c.Users, c.Engine = 2, "fibers" }, `engine "fibers": epoll or goroutines`},
	} {
		cfg := base
		c.mod(&cfg)
		if _, err := Run(context.Background(), cfg); err == nil || err.Error() != c.want {
			t.Errorf("got %v, want %q", err, c.want)
		}
	}
	cfg := base
	cfg.Users, cfg.Think = 2, time.Millisecond
	if cfg.reactor() {
		t.Error("--think should run on goroutines")
	}
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests() == 0 {
		t.Error("auto with --think sent nothing")
	}
}
