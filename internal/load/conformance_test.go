package load

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stampede-dev/stampede/internal/testenv"
)

// The conformance matrix: the generator against HTTP servers nobody here
// wrote, each on loopback, each counted against the server's own record
// of what it answered. Every server ends connections in its own way:
// Python's http.server answers HTTP/1.0 and closes every one; nginx and
// lighttpd close after 100 requests (keepalive_requests,
// max-keep-alive-requests) with Connection: close; Go's net/http and
// Node's http close connections idle longer than a short timeout, which
// users who think outlast. None of it is an error, and every answer the
// server gave before the end is counted.

// external is a server in a process of its own, and how to read how many
// 200s it logged once it has stopped.
type external struct {
	url   string
	count func(t *testing.T) int64
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startProcess runs cmd until the test ends and waits for port to take
// connections; stop ends it with sig and waits.
func startProcess(t *testing.T, cmd *exec.Cmd, port int, sig syscall.Signal) (stop func()) {
	t.Helper()
	var out bytes.Buffer
	if cmd.Stdout == nil {
		cmd.Stdout = &out
	}
	if cmd.Stderr == nil {
		cmd.Stderr = &out
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cmd.Process.Signal(sig)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}
	t.Cleanup(stop)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	for deadline := time.Now().Add(15 * time.Second); ; {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return stop
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never listened on %s: %s", cmd.Path, addr, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// countLines counts the lines of path that contain every one of subs.
func countLines(t *testing.T, path string, subs ...string) int64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var n int64
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
lines:
	for sc.Scan() {
		for _, s := range subs {
			if !strings.Contains(sc.Text(), s) {
				continue lines
			}
		}
		n++
	}
	return n
}

func pythonServer(t *testing.T) external {
	py := testenv.Binary(t, "python3")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "index.html"), []byte("hello\n"), 0o644)
	port := freePort(t)
	logPath := filepath.Join(t.TempDir(), "access.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logf.Close() })
	cmd := exec.Command(py, "-m", "http.server", strconv.Itoa(port), "--bind", "127.0.0.1", "--directory", dir)
	cmd.Stderr = logf
	stop := startProcess(t, cmd, port, syscall.SIGTERM)
	return external{url: fmt.Sprintf("http://127.0.0.1:%d/", port), count: func(t *testing.T) int64 {
		stop()
		return countLines(t, logPath, `"GET / HTTP/1.1" 200`)
	}}
}

// startNginx serves dir on a free loopback port with one nginx worker,
// its http block holding extra, until the test ends; it returns the port
// and a stop that lets the worker finish and exit.
func startNginx(t *testing.T, dir, extra string) (int, func()) {
	bin := testenv.Binary(t, "nginx")
	port := freePort(t)
	conf := fmt.Sprintf(`daemon off;
master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events { worker_connections 1024; }
http {
	%[3]s
	client_body_temp_path %[1]s/body;
	proxy_temp_path %[1]s/proxy;
	fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;
	server { listen 127.0.0.1:%[2]d; root %[1]s; }
}
`, dir, port, extra)
	os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o644)
	return port, startProcess(t, exec.Command(bin, "-p", dir, "-c", filepath.Join(dir, "nginx.conf")), port, syscall.SIGQUIT)
}

func nginxServer(t *testing.T) external {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "index.html"), []byte("hello\n"), 0o644)
	port, stop := startNginx(t, dir, "access_log "+dir+"/access.log;\n\tkeepalive_requests 100;")
	return external{url: fmt.Sprintf("http://127.0.0.1:%d/", port), count: func(t *testing.T) int64 {
		stop()
		return countLines(t, filepath.Join(dir, "access.log"), `"GET / HTTP/1.1" 200`)
	}}
}

func lighttpdServer(t *testing.T) external {
	bin := testenv.Binary(t, "lighttpd")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "index.html"), []byte("hello\n"), 0o644)
	port := freePort(t)
	conf := fmt.Sprintf(`server.document-root = "%[1]s"
server.bind = "127.0.0.1"
server.port = %[2]d
server.errorlog = "%[1]s/error.log"
server.modules = ( "mod_accesslog" )
accesslog.filename = "%[1]s/access.log"
server.max-keep-alive-requests = 100
index-file.names = ( "index.html" )
`, dir, port)
	os.WriteFile(filepath.Join(dir, "lighttpd.conf"), []byte(conf), 0o644)
	cmd := exec.Command(bin, "-D", "-f", filepath.Join(dir, "lighttpd.conf"))
	stop := startProcess(t, cmd, port, syscall.SIGTERM)
	return external{url: fmt.Sprintf("http://127.0.0.1:%d/", port), count: func(t *testing.T) int64 {
		stop()
		return countLines(t, filepath.Join(dir, "access.log"), `"GET / HTTP/1.1" 200`)
	}}
}

// nodeServer is Node's http module with a keep-alive timeout of 50 ms: it
// closes a connection idle that long. It prints how many it answered when
// told to stop.
func nodeServer(t *testing.T) external {
	bin := testenv.Binary(t, "node")
	port := freePort(t)
	script := fmt.Sprintf(`const http = require('http');
let n = 0;
const s = http.createServer((req, res) => { n++; res.end('ok'); });
s.keepAliveTimeout = 50;
process.on('SIGTERM', () => { process.stdout.write('answered ' + n + '\n', () => process.exit(0)); });
s.listen(%d, '127.0.0.1');
`, port)
	var out bytes.Buffer
	cmd := exec.Command(bin, "-e", script)
	cmd.Stdout = &out
	stop := startProcess(t, cmd, port, syscall.SIGTERM)
	return external{url: fmt.Sprintf("http://127.0.0.1:%d/", port), count: func(t *testing.T) int64 {
		stop()
		var n int64
		if _, err := fmt.Sscanf(out.String(), "answered %d", &n); err != nil {
			t.Fatalf("node said %q", out.String())
		}
		return n
	}}
}

// goIdleServer is Go's net/http closing connections idle for 50 ms; it
// counts what it answers and the connections it took.
func goIdleServer(t *testing.T) (external, *atomic.Int64) {
	var answered, conns atomic.Int64
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler:     http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { answered.Add(1); w.Write([]byte("ok")) }),
		IdleTimeout: 50 * time.Millisecond,
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				conns.Add(1)
			}
		},
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return external{url: "http://" + l.Addr().String() + "/", count: func(t *testing.T) int64 {
		srv.Shutdown(context.Background())
		return answered.Load()
	}}, &conns
}

// checkAgainstLog runs cfg against the server and holds the count to the
// server's: every 200 the server logged was counted, less at most the
// requests cut off at the end (the server may have answered them after
// the generator stopped listening); no error; the rate is the answers
// over the measured time.
func checkAgainstLog(t *testing.T, srv external, cfg Config) Report {
	t.Helper()
	cfg.Targets = target(t, srv.url)
	cfg.KeepAlive = true
	start := time.Now()
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	rep := res.Report()
	logged := srv.count(t)
	t.Logf("%s: %d answered (%v), %d unfinished, errors %v, %.1f req/s; the server logged %d; took %v",
		cfg.Engine, rep.Answered, rep.StatusCodes, rep.Unfinished, rep.Errors, rep.RPS, logged, took.Round(time.Millisecond))
	if len(rep.Errors) != 0 || rep.Requests != rep.Answered {
		t.Errorf("errors %v: a server ending its connections is not an error", rep.Errors)
	}
	if rep.Unfinished > int64(cfg.Users) {
		t.Errorf("%d unfinished of %d users: a user can have only one request under way", rep.Unfinished, cfg.Users)
	}
	if ok := rep.StatusCodes["200"]; ok != rep.Answered || ok == 0 || ok > logged || logged > ok+rep.Unfinished {
		t.Errorf("counted %d 200s (%d unfinished); the server logged %d", ok, rep.Unfinished, logged)
	}
	if rep.DurationSeconds != cfg.Duration.Seconds() || rep.RPS != float64(int64(float64(rep.Answered)/rep.DurationSeconds*10+0.5))/10 {
		t.Errorf("rate %.1f over %gs for %d answers in a %v run", rep.RPS, rep.DurationSeconds, rep.Answered, cfg.Duration)
	}
	if took > cfg.Duration+cfg.Warmup+2*time.Second {
		t.Errorf("a %v run took %v", cfg.Duration, took)
	}
	return rep
}

func TestConformsToPythonHTTPServer(t *testing.T) {
	for _, engine := range []string{EngineEpoll, EngineGoroutines} {
		t.Run(engine, func(t *testing.T) {
			checkAgainstLog(t, pythonServer(t), Config{Users: 4, Duration: 2 * time.Second, Engine: engine, Timeout: 5 * time.Second})
		})
	}
}

func TestConformsToNginx(t *testing.T) {
	for _, engine := range []string{EngineEpoll, EngineGoroutines} {
		t.Run(engine, func(t *testing.T) {
			rep := checkAgainstLog(t, nginxServer(t), Config{Users: 8, Duration: 2 * time.Second, Engine: engine, Timeout: 5 * time.Second})
			if rep.Answered < 300 {
				t.Errorf("%d answers: too few to have crossed keepalive_requests 100 on 8 connections", rep.Answered)
			}
		})
	}
}

func TestConformsToLighttpd(t *testing.T) {
	for _, engine := range []string{EngineEpoll, EngineGoroutines} {
		t.Run(engine, func(t *testing.T) {
			checkAgainstLog(t, lighttpdServer(t), Config{Users: 8, Duration: 2 * time.Second, Engine: engine, Timeout: 5 * time.Second})
		})
	}
}

// Users who think 100 ms outlast the servers' 50 ms idle timeouts: every
// request after a user's first finds its connection closed by the server.
func TestConformsToNodeHTTP(t *testing.T) {
	checkAgainstLog(t, nodeServer(t), Config{Users: 8, Think: 100 * time.Millisecond, Duration: 2 * time.Second, Timeout: 5 * time.Second})
}

func TestConformsToNetHTTPIdleTimeout(t *testing.T) {
	srv, conns := goIdleServer(t)
	rep := checkAgainstLog(t, srv, Config{Users: 8, Think: 100 * time.Millisecond, Duration: 2 * time.Second, Timeout: 5 * time.Second})
	// Each user's connection went idle past the timeout between requests,
	// so nearly every request took a new one.
	if n := conns.Load(); n < rep.Answered/2 {
		t.Errorf("%d connections for %d answers: the server's idle timeout was never met", n, rep.Answered)
	}
}

// TestGeneratorSaturationIsReported: nginx sends a 4 MiB file with
// sendfile, which costs it little, and the generator, held to one thread,
// must copy every byte: the generator, not the server, is the limit, and
// the report says so. Against a server that sleeps 10 ms a request the
// same generator is nearly idle, and says nothing.
func TestGeneratorSaturationIsReported(t *testing.T) {
	dir := t.TempDir()
	big := make([]byte, 4<<20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	os.WriteFile(filepath.Join(dir, "big.bin"), big, 0o644)
	port, _ := startNginx(t, dir, "access_log off;\n\tsendfile on;")
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { time.Sleep(10 * time.Millisecond) })
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: slow}
	go srv.Serve(l)
	defer srv.Close()

	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	run := func(url string) Report {
		res, err := Run(context.Background(), Config{Targets: target(t, url), Users: 4, Duration: time.Second, KeepAlive: true, Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return res.Report()
	}
	rep := run(fmt.Sprintf("http://127.0.0.1:%d/big.bin", port))
	t.Logf("4 MiB bodies: %.1f req/s, generator %+v", rep.RPS, rep.Generator)
	if rep.Generator.Cap != 1 || !rep.Generator.Saturated() || len(rep.Notes()) == 0 || !strings.Contains(rep.Notes()[0], "the load generator was busy") {
		t.Errorf("a generator copying 4 MiB bodies on one thread: %+v, notes %q", rep.Generator, rep.Notes())
	}
	rep = run("http://" + l.Addr().String() + "/")
	t.Logf("10 ms server: %.1f req/s, generator %+v", rep.RPS, rep.Generator)
	if rep.Generator.Saturated() || rep.Generator.Busy > 0.5 || len(rep.Notes()) != 0 {
		t.Errorf("a generator waiting on a 10 ms server: %+v, notes %q", rep.Generator, rep.Notes())
	}
}

// TestStuckRequestsAreSaid: Python's http.server listens with a backlog
// of 5, so 64 users connecting at once overflow it and the kernel drops
// their SYNs, to be sent again a second later. Those requests are never
// hidden: where they are few, they are still unanswered at the end, in no
// percentile, and the report says so; where they are many (a busy
// machine), the p99 itself shows the second they lost. Little's law,
// which counts the unanswered ones' time, holds either way.
func TestStuckRequestsAreSaid(t *testing.T) {
	srv := pythonServer(t)
	res, err := Run(context.Background(), Config{Targets: target(t, srv.url), Users: 64, Duration: 2 * time.Second, KeepAlive: true, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	rep := res.Report()
	t.Logf("%d answered, %d unfinished, oldest %.3fs, p99 %.4fs, Little %.1f", rep.Answered, rep.Unfinished, rep.OldestUnfinishedSeconds, rep.Latency.P99, rep.LittleUsers)
	if rep.Unfinished == 0 || rep.Unfinished > 64 || rep.OldestUnfinishedSeconds < 0.9 {
		t.Errorf("64 users on a backlog of 5: %d unfinished, the oldest %.3fs; want some, waiting since a dropped SYN", rep.Unfinished, rep.OldestUnfinishedSeconds)
	}
	notes := strings.Join(rep.Notes(), "\n")
	switch {
	case rep.Stuck():
		if !strings.Contains(notes, "the latency shown leaves out the slowest") {
			t.Errorf("stuck, yet the notes do not say so: %s", notes)
		}
	case rep.Latency.P99 < 0.9:
		t.Errorf("requests waited %.3fs, yet neither the p99 (%.4fs) shows it nor the notes say so: %s", rep.OldestUnfinishedSeconds, rep.Latency.P99, notes)
	}
	if !rep.LittleHolds() {
		t.Errorf("Little's law: %.1f users against 64", rep.LittleUsers)
	}
}
