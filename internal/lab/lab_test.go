package lab

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

var params = []Param{
	{Name: "n", Kind: Int, Default: 10, Min: 1, Max: 100},
	{Name: "f", Kind: Float, Default: 0.5, Min: 0, Max: 1},
	{Name: "on", Kind: Bool, Default: false},
	{Name: "alg", Kind: Choice, Default: "rr", Choices: []string{"rr", "fcfs"}},
	{Name: "text", Kind: Text, Default: "", MaxLen: 5, Check: func(s string) error {
		if strings.Contains(s, "!") {
			return errors.New("no exclamation marks")
		}
		return nil
	}},
}

func TestResolve(t *testing.T) {
	got, err := Resolve(params, map[string]any{"n": "100", "f": 0.25, "on": "true", "alg": "fcfs"})
	if err != nil {
		t.Fatal(err)
	}
	want := Values{"n": 100, "f": 0.25, "on": true, "alg": "fcfs", "text": ""}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %#v, want %#v", got, want)
	}
	defaults, err := Resolve(params, nil)
	if err != nil || defaults.Int("n") != 10 || defaults.Float("f") != 0.5 || defaults.String("alg") != "rr" {
		t.Fatalf("defaults: %#v, %v", defaults, err)
	}
	f := func(v float64) *float64 { return &v }
	for _, c := range []struct {
		raw  map[string]any
		want ParamError
	}{
		{map[string]any{"n": 101.0}, ParamError{Code: CodeOutOfRange, Param: "n", Message: "n: 101 is out of range: allowed 1 to 100", Min: f(1), Max: f(100)}},
		{map[string]any{"n": "0"}, ParamError{Code: CodeOutOfRange, Param: "n", Message: "n: 0 is out of range: allowed 1 to 100", Min: f(1), Max: f(100)}},
		{map[string]any{"n": 2.5}, ParamError{Code: CodeBadParam, Param: "n", Message: "n: 2.5 is not a whole number"}},
		{map[string]any{"n": "ten"}, ParamError{Code: CodeBadParam, Param: "n", Message: `n: "ten" is not a number`}},
		{map[string]any{"n": true}, ParamError{Code: CodeBadParam, Param: "n", Message: "n: want a number, got bool"}},
		{map[string]any{"f": "NaN"}, ParamError{Code: CodeBadParam, Param: "f", Message: "f: want a finite number"}},
		{map[string]any{"on": "maybe"}, ParamError{Code: CodeBadParam, Param: "on", Message: `on: "maybe" is not true or false`}},
		{map[string]any{"alg": "lottery"}, ParamError{Code: CodeOutOfRange, Param: "alg", Message: `alg: "lottery" is not allowed: one of rr, fcfs`, Choices: []string{"rr", "fcfs"}}},
		{map[string]any{"text": "toolong"}, ParamError{Code: CodeOutOfRange, Param: "text", Message: "text: 7 bytes is too long: at most 5", Max: f(5)}},
		{map[string]any{"text": "hi!"}, ParamError{Code: CodeBadParam, Param: "text", Message: "text: no exclamation marks"}},
		{map[string]any{"x": 1.0}, ParamError{Code: CodeUnknownParam, Param: "x", Message: `unknown parameter "x" (known: n, f, on, alg, text)`}},
	} {
		_, err := Resolve(params, c.raw)
		var pe *ParamError
		if !errors.As(err, &pe) || !reflect.DeepEqual(*pe, c.want) {
			t.Errorf("Resolve(%v) = %#v, want %#v", c.raw, err, c.want)
		}
	}
}

// fake is a configurable experiment for the server tests.
type fake struct {
	id      string
	heavy   bool
	run     func(ctx context.Context, p Values, emit func(Event)) error
	started atomic.Int32
}

func (f *fake) Info() Info {
	return Info{ID: f.id, Title: "fake " + f.id, Heavy: f.heavy, Params: params[:1]}
}

func (f *fake) Run(ctx context.Context, p Values, emit func(Event)) error {
	f.started.Add(1)
	return f.run(ctx, p, emit)
}

func newTestServer(t *testing.T, exps ...Experiment) (*Server, *httptest.Server) {
	t.Helper()
	s := NewServer(slog.New(slog.NewTextHandler(io.Discard, nil)), exps...)
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		ts.Close()
		s.Wait()
	})
	return s, ts
}

func post(t *testing.T, url, body string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("decode answer to POST %s: %v", url, err)
	}
	return resp.StatusCode, out
}

// stream opens a run's event stream and returns a channel of its events.
func stream(t *testing.T, ctx context.Context, url string) <-chan Event {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	ch := make(chan Event, 100)
	go func() {
		defer close(ch)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			line, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			var e Event
			if err := json.Unmarshal([]byte(line), &e); err != nil {
				t.Errorf("bad event %q: %v", line, err)
				return
			}
			ch <- e
		}
	}()
	return ch
}

func next(t *testing.T, ch <-chan Event) Event {
	t.Helper()
	select {
	case e, ok := <-ch:
		if !ok {
			t.Fatal("stream ended early")
		}
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10s")
	}
	return Event{}
}

func TestRunStreamsEvents(t *testing.T) {
	exp := &fake{id: "count", run: func(ctx context.Context, p Values, emit func(Event)) error {
		emit(Progress("counting", 1, 2))
		emit(Point("s", 1, 2))
		emit(Result(map[string]int{"n": p.Int("n")}))
		return nil
	}}
	_, ts := newTestServer(t, exp)

	resp, err := http.Get(ts.URL + "/api/experiments")
	if err != nil {
		t.Fatal(err)
	}
	var infos []Info
	if err := json.NewDecoder(resp.Body).Decode(&infos); err != nil || len(infos) != 1 || infos[0].ID != "count" || infos[0].Params[0].Max != 100 {
		t.Fatalf("experiments: %+v, %v", infos, err)
	}
	resp.Body.Close()

	status, body := post(t, ts.URL+"/api/experiments/count/runs", `{"n": 7}`)
	if status != http.StatusCreated {
		t.Fatalf("create: %d %v", status, body)
	}
	ch := stream(t, context.Background(), ts.URL+body["events"].(string))
	var kinds []string
	var result Event
	for e := range ch {
		kinds = append(kinds, e.Kind)
		if e.RunID != body["id"] {
			t.Errorf("event of run %q on the stream of %q", e.RunID, body["id"])
		}
		if e.Kind == KindResult {
			result = e
		}
	}
	if want := []string{KindStart, KindProgress, KindPoint, KindResult, KindEnd}; !reflect.DeepEqual(kinds, want) {
		t.Fatalf("events %v, want %v", kinds, want)
	}
	if result.Machine == nil || result.Machine.Cores < 1 || result.Machine.Go == "" || result.Machine.GOMAXPROCS < 1 {
		t.Errorf("result lacks the machine: %+v", result.Machine)
	}
	if got := result.Data.(map[string]any)["n"]; got != 7.0 {
		t.Errorf("result n = %v, want 7", got)
	}
	// A run streams once.
	resp, err = http.Get(ts.URL + body["events"].(string))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("second stream: %d, want 404", resp.StatusCode)
	}
}

func TestCreateRefusals(t *testing.T) {
	exp := &fake{id: "x", run: func(context.Context, Values, func(Event)) error { return nil }}
	_, ts := newTestServer(t, exp)
	for _, c := range []struct {
		path, body string
		status     int
		code       string
	}{
		{"/api/experiments/nope/runs", `{}`, 404, "unknown_experiment"},
		{"/api/experiments/x/runs", `{"n": 1000}`, 422, CodeOutOfRange},
		{"/api/experiments/x/runs", `{"n": "many"}`, 422, CodeBadParam},
		{"/api/experiments/x/runs", `{"m": 1}`, 422, CodeUnknownParam},
		{"/api/experiments/x/runs", `[1, 2]`, 400, "bad_json"},
		{"/api/experiments/x/runs", `{`, 400, "bad_json"},
		{"/api/experiments/x/runs", `{"n": 5} {"n": 6}`, 400, "bad_json"},
		{"/api/experiments/x/runs", `{"n": 5}}`, 400, "bad_json"},
	} {
		status, body := post(t, ts.URL+c.path, c.body)
		e, _ := body["error"].(map[string]any)
		if status != c.status || e["code"] != c.code {
			t.Errorf("POST %s %s: %d %v, want %d %s", c.path, c.body, status, body, c.status, c.code)
		}
		if c.code == CodeOutOfRange && (e["min"] != 1.0 || e["max"] != 100.0 || e["param"] != "n") {
			t.Errorf("422 lacks the allowed range: %v", e)
		}
	}
	if exp.started.Load() != 0 {
		t.Errorf("a refused run started")
	}
}

// TestForeignPagesAreRefused: the lab runs code on this machine, so a
// page elsewhere must not drive it. A Host that is a name other than
// localhost (a DNS-rebound page sends its own) is 403, unless allowed; an
// Origin other than the lab's own is 403; a run asked for as text/plain
// (what a cross-site form may send unasked) is 415. The lab's own page
// goes through.
func TestForeignPagesAreRefused(t *testing.T) {
	exp := &fake{id: "x", run: func(_ context.Context, _ Values, emit func(Event)) error { emit(Result(1)); return nil }}
	s, ts := newTestServer(t, exp)
	s.AllowHosts = nil
	host := strings.TrimPrefix(ts.URL, "http://")
	_, port, _ := net.SplitHostPort(host)
	do := func(method, path, hostHdr, origin, ctype, body string) (int, string) {
		req, _ := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
		req.Host = hostHdr
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct{ Error struct{ Code string } }
		json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out.Error.Code
	}
	for _, c := range []struct {
		method, path, host, origin, ctype string
		status                            int
		code                              string
	}{
		{"GET", "/api/experiments", "evil.example:" + port, "", "", 403, "foreign_host"},
		{"POST", "/api/experiments/x/runs", "rebound.attacker.test", "", "application/json", 403, "foreign_host"},
		{"POST", "/api/experiments/x/runs", host, "http://evil.example", "application/json", 403, "foreign_origin"},
		{"POST", "/api/experiments/x/runs", host, "http://127.0.0.1:1", "application/json", 403, "foreign_origin"},
		{"POST", "/api/experiments/x/runs", host, "", "text/plain", 415, "want_json"},
		{"POST", "/api/experiments/x/runs", host, "http://" + host, "application/json; charset=utf-8", 201, ""},
		{"GET", "/api/experiments", "localhost:" + port, "", "", 200, ""},
		{"GET", "/api/experiments", "[::1]:" + port, "", "", 200, ""},
	} {
		status, code := do(c.method, c.path, c.host, c.origin, c.ctype, `{}`)
		if status != c.status || code != c.code {
			t.Errorf("%s %s Host %q Origin %q %s: %d %q, want %d %q", c.method, c.path, c.host, c.origin, c.ctype, status, code, c.status, c.code)
		}
	}
	// A name given with --allow-host goes through.
	s2 := NewServer(slog.New(slog.NewTextHandler(io.Discard, nil)), exp)
	s2.AllowHosts = []string{"lab.internal"}
	ts2 := httptest.NewServer(s2.Handler())
	defer ts2.Close()
	req, _ := http.NewRequest("GET", ts2.URL+"/api/experiments", nil)
	req.Host = "LAB.internal:8080"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("an allowed host: %d", resp.StatusCode)
	}
}

// blocker runs until its context ends and reports that it returned.
func blocker(id string, heavy bool) (*fake, chan struct{}) {
	returned := make(chan struct{}, 1)
	return &fake{id: id, heavy: heavy, run: func(ctx context.Context, _ Values, emit func(Event)) error {
		emit(Progress("blocking", 0, 1))
		<-ctx.Done()
		returned <- struct{}{}
		return ctx.Err()
	}}, returned
}

func TestClosingTheStreamCancelsTheRun(t *testing.T) {
	exp, returned := blocker("block", false)
	_, ts := newTestServer(t, exp)
	_, body := post(t, ts.URL+"/api/experiments/block/runs", `{}`)
	ctx, cancel := context.WithCancel(context.Background())
	ch := stream(t, ctx, ts.URL+body["events"].(string))
	if e := next(t, ch); e.Kind != KindStart {
		t.Fatalf("first event %s, want start", e.Kind)
	}
	if e := next(t, ch); e.Kind != KindProgress {
		t.Fatalf("second event %s, want progress", e.Kind)
	}
	cancel() // the page goes away
	select {
	case <-returned:
	case <-time.After(10 * time.Second):
		t.Fatal("the run did not stop when its stream closed")
	}
}

func TestDeleteCancelsTheRun(t *testing.T) {
	exp, returned := blocker("block", false)
	_, ts := newTestServer(t, exp)
	_, body := post(t, ts.URL+"/api/experiments/block/runs", `{}`)
	ch := stream(t, context.Background(), ts.URL+body["events"].(string))
	next(t, ch)
	next(t, ch)
	req, _ := http.NewRequest("DELETE", ts.URL+"/api/runs/"+body["id"].(string), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE: %d", resp.StatusCode)
	}
	<-returned
	var kinds []string
	for e := range ch {
		kinds = append(kinds, e.Kind+":"+e.Message)
	}
	if want := []string{"error:cancelled", "end:"}; !reflect.DeepEqual(kinds, want) {
		t.Errorf("after DELETE: %v, want %v", kinds, want)
	}
	req, _ = http.NewRequest("DELETE", ts.URL+"/api/runs/nope", nil)
	if resp, err = http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("DELETE unknown run: %v %v", resp.StatusCode, err)
	}
}

func TestHeavyRunsQueue(t *testing.T) {
	first, firstReturned := blocker("first", true)
	second := &fake{id: "second", heavy: true, run: func(ctx context.Context, _ Values, emit func(Event)) error {
		emit(Result("ran"))
		return nil
	}}
	_, ts := newTestServer(t, first, second)
	_, b1 := post(t, ts.URL+"/api/experiments/first/runs", `{}`)
	ctx1, stop1 := context.WithCancel(context.Background())
	ch1 := stream(t, ctx1, ts.URL+b1["events"].(string))
	next(t, ch1) // start: it holds the slot

	_, b2 := post(t, ts.URL+"/api/experiments/second/runs", `{}`)
	ch2 := stream(t, context.Background(), ts.URL+b2["events"].(string))
	e := next(t, ch2)
	if e.Kind != KindQueued || e.Position != 1 || !strings.Contains(e.Message, "first is running") {
		t.Fatalf("second run's first event: %+v, want queued behind first", e)
	}
	resp, err := http.Get(ts.URL + "/api/queue")
	if err != nil {
		t.Fatal(err)
	}
	var q QueueState
	json.NewDecoder(resp.Body).Decode(&q)
	resp.Body.Close()
	if q.Running == nil || q.Running.Experiment != "first" || len(q.Waiting) != 1 || q.Waiting[0].Experiment != "second" {
		t.Fatalf("queue: %+v", q)
	}
	if second.started.Load() != 0 {
		t.Fatal("the second heavy run started while the first held the slot")
	}
	stop1()
	<-firstReturned
	var kinds []string
	for e := range ch2 {
		kinds = append(kinds, e.Kind)
	}
	if want := []string{KindStart, KindResult, KindEnd}; !reflect.DeepEqual(kinds, want) {
		t.Errorf("second run after the first: %v, want %v", kinds, want)
	}
}

func TestQueueLeavesLineOnCancel(t *testing.T) {
	var q Queue
	release, err := q.Acquire(context.Background(), QueueEntry{Run: "a"}, func(int, QueueEntry) {})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error)
	go func() {
		_, err := q.Acquire(ctx, QueueEntry{Run: "b"}, func(int, QueueEntry) {})
		errc <- err
	}()
	for len(q.State().Waiting) != 1 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled waiter: %v", err)
	}
	if st := q.State(); len(st.Waiting) != 0 || st.Running.Run != "a" {
		t.Fatalf("after cancel: %+v", st)
	}
	release()
	release() // twice is harmless
	if st := q.State(); st.Running != nil {
		t.Fatalf("after release: %+v", st)
	}
}

// Runs created and never streamed are capped per client address: one
// client's cannot lock another out, and they are dropped after pendingTTL.
func TestPendingRunsCappedPerClient(t *testing.T) {
	s, ts := newTestServer(t, &fake{id: "x"})
	from := func(ip string) *http.Client {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
		return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	}
	create := func(c *http.Client) (int, string) {
		resp, err := c.Post(ts.URL+"/api/experiments/x/runs", "application/json", strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var a struct{ Error struct{ Code string } }
		json.NewDecoder(resp.Body).Decode(&a)
		return resp.StatusCode, a.Error.Code
	}
	one, other := from("127.0.0.1"), from("127.0.0.2")
	for i := range maxPendingPerClient {
		if status, code := create(one); status != 201 {
			t.Fatalf("run %d: %d %s", i, status, code)
		}
	}
	if status, code := create(one); status != 503 || code != "too_many_runs" {
		t.Errorf("one run past the client's cap: %d %q, want 503 too_many_runs", status, code)
	}
	if status, code := create(other); status != 201 {
		t.Errorf("another client, meanwhile: %d %q, want 201", status, code)
	}
	s.mu.Lock()
	for _, p := range s.pending {
		p.created = p.created.Add(-pendingTTL - time.Second) // as if never streamed for longer than the TTL
	}
	s.mu.Unlock()
	if status, code := create(one); status != 201 {
		t.Errorf("once the unstreamed runs expired: %d %q, want 201", status, code)
	}
}

// A queue of two slots runs two at once; the third waits behind them, and
// with MaxWaiting 1 a fourth is refused.
func TestQueueSlots(t *testing.T) {
	q := Queue{Slots: 2, MaxWaiting: 1}
	none := func(int, QueueEntry) {}
	r1, err1 := q.Acquire(context.Background(), QueueEntry{Run: "a"}, none)
	r2, err2 := q.Acquire(context.Background(), QueueEntry{Run: "b"}, none)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	ahead := make(chan int, 4)
	got := make(chan error)
	go func() {
		r, err := q.Acquire(context.Background(), QueueEntry{Run: "c"}, func(n int, _ QueueEntry) { ahead <- n })
		if r != nil {
			defer r()
		}
		got <- err
	}()
	if n := <-ahead; n != 1 {
		t.Errorf("the third waits with %d ahead, want 1", n)
	}
	if _, err := q.Acquire(context.Background(), QueueEntry{Run: "d"}, none); !errors.Is(err, ErrQueueFull) {
		t.Errorf("a fourth, one already waiting: %v, want ErrQueueFull", err)
	}
	r1()
	if err := <-got; err != nil {
		t.Errorf("the third, once a slot was free: %v", err)
	}
	r2()
}

func TestRunWithoutResultFails(t *testing.T) {
	exp := &fake{id: "mute", run: func(context.Context, Values, func(Event)) error { return nil }}
	err := Execute(context.Background(), exp, Values{"n": 1}, ReadMachine(), func(Event) {})
	if err == nil || err.Error() != "experiment mute returned no result" {
		t.Fatalf("Execute = %v", err)
	}
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{"127.0.0.1:8080": true, "localhost:1": true, "[::1]:80": true, "0.0.0.0:8080": false, ":8080": false, "192.168.1.2:80": false} {
		if got := IsLoopback(addr); got != want {
			t.Errorf("IsLoopback(%q) = %v", addr, got)
		}
	}
}
