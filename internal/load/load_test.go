package load

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestPacerConstantRate(t *testing.T) {
	p := &pacer{rate: profile{constant: 2000}, end: time.Second}
	var n int
	for {
		off, ok := p.next()
		if !ok {
			break
		}
		if want := time.Duration(n) * 500 * time.Microsecond; off != want {
			t.Fatalf("request %d due at %v, want %v", n, off, want)
		}
		n++
	}
	if n != 2000 {
		t.Errorf("%d requests in 1s at 2000/s, want 2000", n)
	}
}

func TestPacerStages(t *testing.T) {
	st, err := ParseStages("10s:100,5s:100,5s:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &pacer{rate: profile{stages: st}, end: 20 * time.Second}
	perStage := make([]int, 3)
	var last time.Duration
	for {
		off, ok := p.next()
		if !ok {
			break
		}
		if off < last {
			t.Fatalf("schedule went back from %v to %v", last, off)
		}
		last = off
		switch {
		case off < 10*time.Second:
			perStage[0]++
		case off < 15*time.Second:
			perStage[1]++
		default:
			perStage[2]++
		}
	}
	// Ramp 0→100 over 10s: 500 requests; hold 100 for 5s: 500; ramp down
	// 5s: 250. The request due exactly on a boundary counts in the next.
	if want := []int{499, 500, 251}; fmt.Sprint(perStage) != fmt.Sprint(want) {
		t.Errorf("requests per stage %v, want %v", perStage, want)
	}
}

func TestParseStagesErrors(t *testing.T) {
	for _, s := range []string{"", "10s", "x:5", "10s:-1", "0s:5", "10s:abc", "1s:NaN", "1s:Inf", "1s:1e8"} {
		if _, err := ParseStages(s); err == nil {
			t.Errorf("ParseStages(%q) accepted", s)
		}
	}
}

// fixedResult builds a result from known values, two ways split.
func fixedResult(values []int64, status int, orders ...string) *Result {
	r := NewResult()
	r.Mode, r.Target, r.Duration = "closed", "http://example.test/", 2*time.Second
	r.Started = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	sec := Second{Latency: newHistogram()}
	for _, v := range values {
		r.Latency.RecordValue(v)
		sec.Latency.RecordValue(v)
		r.Status[status]++
	}
	sec.Requests = int64(len(values))
	r.Seconds = []Second{sec}
	if orders != nil {
		r.Sale = &SaleCounts{SoldOut: 3}
		for _, id := range orders {
			r.Orders[id] = true
		}
		r.Sale.Acknowledged = int64(len(r.Orders))
	}
	return r
}

func TestMergeIsExact(t *testing.T) {
	var all []int64
	for i := int64(1); i <= 1000; i++ {
		all = append(all, i*37)
	}
	whole := fixedResult(all, 200)
	a, b := fixedResult(all[:300], 200), fixedResult(all[300:], 200)
	a.Merge(b)
	for _, q := range []float64{0, 50, 90, 99, 99.9, 100} {
		if got, want := a.Latency.ValueAtQuantile(q), whole.Latency.ValueAtQuantile(q); got != want {
			t.Errorf("p%v after merge %d, want %d", q, got, want)
		}
	}
	if a.Requests() != 1000 || a.Status[200] != 1000 || a.Seconds[0].Requests != 1000 {
		t.Errorf("merged %d requests, %d 200s, %d in second 0", a.Requests(), a.Status[200], a.Seconds[0].Requests)
	}
}

func TestFileRoundTripAndOrderIDs(t *testing.T) {
	a := fixedResult([]int64{100, 200, 300}, 201, "o1", "o2")
	b := fixedResult([]int64{400}, 201, "o2", "o3") // o2 acknowledged to both (a retried purchase)
	dir := t.TempDir()
	pa, pb := filepath.Join(dir, "a.stl"), filepath.Join(dir, "b.stl")
	if err := a.WriteFile(pa); err != nil {
		t.Fatal(err)
	}
	if err := b.WriteFile(pb); err != nil {
		t.Fatal(err)
	}
	ra, err := ReadFile(pa)
	if err != nil {
		t.Fatal(err)
	}
	rb, _ := ReadFile(pb)
	ra.Merge(rb)
	if ra.Requests() != 4 || ra.Latency.Max() != rb.Latency.Max() || len(ra.Orders) != 3 ||
		ra.Sale.Acknowledged != 3 || ra.Sale.SoldOut != 6 {
		t.Errorf("merged files: %d requests, max %d, orders %v, sale %+v", ra.Requests(), ra.Latency.Max(), ra.Orders, *ra.Sale)
	}
	if _, err := ReadFile(filepath.Join("testdata", "report.golden.json")); err == nil {
		t.Error("a JSON file was read as a result file")
	}
}

// TestReportGolden pins the JSON report's shape and numbers.
func TestReportGolden(t *testing.T) {
	var vals []int64
	for i := int64(1); i <= 100; i++ {
		vals = append(vals, i*1000) // 1 ms … 100 ms
	}
	r := fixedResult(vals, 200)
	r.Errors[ErrTimeout] = 2
	r.BytesIn, r.BytesOut = 12345, 678
	got, _ := json.MarshalIndent(r.Report(), "", "  ")
	golden := filepath.Join("testdata", "report.golden.json")
	if *update {
		os.WriteFile(golden, got, 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update once)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("report:\n%s\nwant:\n%s", got, want)
	}
}

func TestSaleOutcome(t *testing.T) {
	for _, tc := range []struct {
		status int
		body   string
		err    error
		want   Outcome
		id     string
	}{
		{201, `{"order_id":"ab12","product_id":1}`, nil, Acknowledged, "ab12"},
		{200, `{"order_id": "ab12"}`, nil, Acknowledged, "ab12"},
		{409, `{"error":{"code":"sold_out","message":"x"}}`, nil, SoldOut, ""},
		{409, `{"error":{"code":"limit_exceeded"}}`, nil, LimitExceeded, ""},
		{409, `{"error":{"code":"idempotency_conflict"}}`, nil, Other, ""},
		{503, `{"error":{"code":"overloaded"}}`, nil, Unsettled, ""},
		{0, ``, errClosed, Unsettled, ""},
		{201, `{"order":"x"}`, nil, Other, ""},
	} {
		got, id := SaleOutcome(tc.status, []byte(tc.body), tc.err)
		if got != tc.want || id != tc.id {
			t.Errorf("SaleOutcome(%d, %s) = %v %q, want %v %q", tc.status, tc.body, got, id, tc.want, tc.id)
		}
	}
}

func target(t *testing.T, raw string) []Target {
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return []Target{{Method: "GET", URL: u}}
}

// TestKnownLatency runs the closed model against a server that takes 10ms
// and answers in every framing the client must read.
func TestKnownLatency(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(10 * time.Millisecond)
		switch n.Add(1) % 3 {
		case 0: // chunked
			w.Write([]byte("chunk one "))
			w.(http.Flusher).Flush()
			w.Write([]byte("chunk two"))
		case 1:
			w.Header().Set("Content-Length", "5")
			w.Write([]byte("hello"))
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	defer srv.Close()
	for _, engine := range []string{EngineEpoll, EngineGoroutines} {
		res, err := Run(context.Background(), Config{Targets: target(t, srv.URL), Users: 4, Requests: 300, KeepAlive: true, Engine: engine})
		if err != nil {
			t.Fatal(err)
		}
		rep := res.Report()
		if rep.Requests != 300 || rep.StatusCodes["200"] != 200 || rep.StatusCodes["204"] != 100 || len(rep.Errors) != 0 {
			t.Errorf("%s: requests %d, statuses %v, errors %v; want 300 = 200×200 + 100×204, no errors", engine, rep.Requests, rep.StatusCodes, rep.Errors)
		}
		if rep.Latency.Min < 0.010 {
			t.Errorf("%s: min latency %.4fs is below the server's 10ms", engine, rep.Latency.Min)
		}
	}
}

// stallServer answers at once, except that for one second, starting
// 500ms in, it answers nothing.
func stallServer(t *testing.T) *httptest.Server {
	var once sync.Once
	var stallUntil time.Time
	var mu sync.Mutex
	start := time.Now()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if time.Since(start) > 500*time.Millisecond {
			once.Do(func() { mu.Lock(); stallUntil = time.Now().Add(time.Second); mu.Unlock() })
		}
		mu.Lock()
		d := time.Until(stallUntil)
		mu.Unlock()
		if d > 0 {
			time.Sleep(d)
		}
		w.Write([]byte("ok"))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestStallShowsInOpenModel: a 1s stall delays every request scheduled
// during it, so the open model's p99 reflects the stall; the closed model's
// few users simply stop asking during it, and its p99 hides it.
func TestStallShowsInOpenModel(t *testing.T) {
	open, err := Run(context.Background(), Config{Targets: target(t, stallServer(t).URL), Rate: 400, Duration: 3 * time.Second, KeepAlive: true})
	if err != nil {
		t.Fatal(err)
	}
	closed, err := Run(context.Background(), Config{Targets: target(t, stallServer(t).URL), Users: 2, Duration: 3 * time.Second, KeepAlive: true})
	if err != nil {
		t.Fatal(err)
	}
	o, c := open.Report(), closed.Report()
	if o.Answered+o.Unfinished != 1200 || o.StatusCodes["200"] != o.Answered || o.Requests != o.Answered {
		t.Errorf("open model: %d answered (%v), %d unfinished, %d failed; want 1200 in all at 400/s for 3s, none failed",
			o.Answered, o.StatusCodes, o.Unfinished, o.Requests-o.Answered)
	}
	if o.Latency.P99 < 0.8 {
		t.Errorf("open model p99 %.3fs hides a 1s stall", o.Latency.P99)
	}
	if c.Latency.Max < 0.8 {
		t.Errorf("closed model never saw the stall (max %.3fs)", c.Latency.Max)
	}
	if c.Latency.P99 >= 0.5 {
		t.Errorf("closed model p99 %.3fs; expected coordinated omission to hide the stall (%d requests)", c.Latency.P99, c.Requests)
	}
}

// TestRateHeld checks the open model sends exactly the scheduled requests.
func TestRateHeld(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	defer srv.Close()
	res, err := Run(context.Background(), Config{Targets: target(t, srv.URL), Rate: 2000, Duration: 2 * time.Second, KeepAlive: true})
	if err != nil {
		t.Fatal(err)
	}
	rep := res.Report()
	// The hard end cuts off the last few: every scheduled request is
	// either answered or unfinished, and the rate is the answers over 2 s.
	if rep.Answered+rep.Unfinished != 4000 || rep.RPS != float64(rep.Answered)/2 || len(rep.Errors) != 0 || rep.DurationSeconds != 2 {
		t.Errorf("%d answered, %d unfinished, at %.1f/s over %gs, errors %v; want 4000 in all, the rate over 2 s",
			rep.Answered, rep.Unfinished, rep.RPS, rep.DurationSeconds, rep.Errors)
	}
	if rep.Unfinished > 200 {
		t.Errorf("%d of 4000 requests at 2000/s to an instant server unfinished", rep.Unfinished)
	}
}

// TestSaleOverHTTP2 runs the flash sale against a TLS server offering
// HTTP/2, through the net/http path: every purchase arrives as JSON with
// its own key, over HTTP/2, and each order id is recorded once.
func TestSaleOverHTTP2(t *testing.T) {
	var mu sync.Mutex
	protos := map[string]int{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			ProductID int64  `json:"product_id"`
			UserID    string `json:"user_id"`
			Quantity  int64  `json:"quantity"`
		}
		err := json.NewDecoder(r.Body).Decode(&body)
		key := r.Header.Get("Idempotency-Key")
		mu.Lock()
		protos[r.Proto]++
		mu.Unlock()
		if err != nil || body.ProductID != 7 || body.Quantity != 1 || body.UserID == "" || key == "" ||
			r.Header.Get("Content-Type") != "application/json" || r.URL.Path != "/api/orders" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"order_id":"o-%s","user_id":%q}`, key, body.UserID)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	res, err := Run(context.Background(), Config{
		Targets: target(t, srv.URL+"/api/orders"), Users: 4, Requests: 40, KeepAlive: true, Insecure: true,
		Sale: &FlashSale{ProductID: "7", Users: 10, Quantity: 1, RunID: "r"},
	})
	if err != nil {
		t.Fatal(err)
	}
	rep := res.Report()
	if rep.Requests != 40 || rep.StatusCodes["201"] != 40 || rep.FlashSale.Acknowledged != 40 || len(res.Orders) != 40 || !res.Orders["o-r-39"] {
		t.Errorf("report %+v, %d order ids; want 40 purchases acknowledged, ids o-r-0 … o-r-39", rep, len(res.Orders))
	}
	if protos["HTTP/2.0"] != 40 {
		t.Errorf("protocols seen %v, want 40 × HTTP/2.0", protos)
	}
}

// TestMixedSchemesOnOneUser: a user that takes turns between an https and
// an http target keeps one connection state for both (net/http for the
// first, the lean client for the second) and answers every request.
func TestMixedSchemesOnOneUser(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
	secure := httptest.NewTLSServer(ok)
	defer secure.Close()
	plain := httptest.NewServer(ok)
	defer plain.Close()
	targets := append(target(t, secure.URL), target(t, plain.URL)...)
	res, err := Run(context.Background(), Config{Targets: targets, Users: 1, Requests: 6, KeepAlive: true, Insecure: true, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if rep := res.Report(); rep.Answered != 6 || rep.StatusCodes["200"] != 6 || len(rep.Errors) != 0 {
		t.Errorf("%d answered (%v), errors %v; want 6 × 200", rep.Answered, rep.StatusCodes, rep.Errors)
	}
}

// TestCountEndsBeforeDuration: a run that -n ends before -d reports the
// time it took, not the -d it was allowed, so its rate is its own.
func TestCountEndsBeforeDuration(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	defer srv.Close()
	res, err := Run(context.Background(), Config{Targets: target(t, srv.URL), Users: 2, Requests: 200, Duration: 30 * time.Second, KeepAlive: true})
	if err != nil {
		t.Fatal(err)
	}
	rep := res.Report()
	if rep.Answered != 200 || rep.DurationSeconds >= 30 || rep.RPS != float64(int64(200/rep.DurationSeconds*10+0.5))/10 {
		t.Errorf("%d answered in %gs at %.1f/s; want 200 in far less than the 30 s allowed, the rate over that", rep.Answered, rep.DurationSeconds, rep.RPS)
	}
}
