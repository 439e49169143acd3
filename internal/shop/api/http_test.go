package api_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stampede-dev/stampede/internal/shop"
	"github.com/stampede-dev/stampede/internal/shop/api"
	"github.com/stampede-dev/stampede/internal/shop/sqlite"
)

func newShop(t *testing.T, strategy func(shop.Store) shop.Strategy, maxInFlight int) (*httptest.Server, shop.Store) {
	return newShopOn(t, func(s shop.Store) shop.Store { return s }, strategy, maxInFlight)
}

// newShopOn is newShop with the SQLite store seen through wrap.
func newShopOn(t *testing.T, wrap func(shop.Store) shop.Store, strategy func(shop.Store) shop.Strategy, maxInFlight int) (*httptest.Server, shop.Store) {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "shop.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	st := wrap(db)
	svc := shop.NewService(st, strategy(st), maxInFlight, 5*time.Second)
	srv := httptest.NewServer(api.NewHandler(svc, "sqlite", slog.New(slog.NewTextHandler(io.Discard, nil))))
	t.Cleanup(srv.Close)
	return srv, st
}

type answer struct {
	status int
	header http.Header
	body   map[string]any
}

func (a answer) code() string {
	e, _ := a.body["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func call(t *testing.T, srv *httptest.Server, method, path, body string, hdr ...string) answer {
	t.Helper()
	req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode, header: resp.Header}
	b, _ := io.ReadAll(resp.Body)
	if strings.Contains(resp.Header.Get("Content-Type"), "json") {
		if err := json.Unmarshal(b, &a.body); err != nil {
			t.Fatalf("%s %s: body %q is not JSON: %v", method, path, b, err)
		}
	}
	return a
}

func atomic(s shop.Store) shop.Strategy { return shop.Atomic{Store: s} }

// TestAPIErrors checks each kind of bad request gets its status and code.
func TestAPIErrors(t *testing.T) {
	srv, _ := newShop(t, atomic, 100)
	if a := call(t, srv, "POST", "/api/products", `{"name":"phone","stock":1,"per_user_limit":1}`); a.status != 201 || a.body["id"] != 1.0 {
		t.Fatalf("create: %d %v", a.status, a.body)
	}
	huge := `{"product_id":1,"user_id":"` + strings.Repeat("x", api.MaxBodyBytes) + `","quantity":1}`
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"malformed order", "POST", "/api/orders", `{"product_id":1,`, 400, shop.CodeInvalidJSON},
		{"missing quantity", "POST", "/api/orders", `{"product_id":1,"user_id":"a"}`, 400, shop.CodeMissingField},
		{"zero quantity", "POST", "/api/orders", `{"product_id":1,"user_id":"a","quantity":0}`, 422, shop.CodeInvalidValue},
		{"absurd quantity", "POST", "/api/orders", `{"product_id":1,"user_id":"a","quantity":99999999999}`, 422, shop.CodeInvalidValue},
		{"empty user", "POST", "/api/orders", `{"product_id":1,"user_id":"","quantity":1}`, 422, shop.CodeInvalidValue},
		{"unknown product", "POST", "/api/orders", `{"product_id":999,"user_id":"a","quantity":1}`, 404, shop.CodeNotFound},
		{"impossible product", "POST", "/api/orders", `{"product_id":"nope","user_id":"a","quantity":1}`, 404, shop.CodeNotFound},
		{"body too large", "POST", "/api/orders", huge, 413, shop.CodeBodyTooLarge},
		{"bad product", "POST", "/api/products", `{"name":"x","stock":-5}`, 422, shop.CodeInvalidValue},
		{"product without name", "POST", "/api/products", `{"stock":5}`, 400, shop.CodeMissingField},
		{"get unknown product", "GET", "/api/products/42", ``, 404, shop.CodeNotFound},
		{"get non-numeric product", "GET", "/api/products/x", ``, 404, shop.CodeNotFound},
		{"orders of unknown product", "GET", "/api/products/42/orders", ``, 404, shop.CodeNotFound},
		// What a store cannot hold is refused here, not in a group commit
		// where it would fail every order of its batch.
		{"NUL in user_id", "POST", "/api/orders", `{"product_id":1,"user_id":"a\u0000b","quantity":1}`, 422, shop.CodeInvalidValue},
		{"invalid UTF-8 in user_id", "POST", "/api/orders", "{\"product_id\":1,\"user_id\":\"a\xff\",\"quantity\":1}", 422, shop.CodeInvalidValue},
		{"lone surrogate in user_id", "POST", "/api/orders", `{"product_id":1,"user_id":"a\udc00","quantity":1}`, 422, shop.CodeInvalidValue},
		{"NUL in a product name", "POST", "/api/products", `{"name":"a\u0000","stock":1}`, 422, shop.CodeInvalidValue},
		{"unknown route", "GET", "/api/nothing", ``, 404, shop.CodeNotFound},
		{"wrong method", "DELETE", "/api/orders", ``, 405, shop.CodeMethodNotAllowed},
		// Not a redirect to the cleaned path, in HTML, as ServeMux answers.
		{"dot-dot segment", "GET", "/api/products/../products/1", ``, 404, shop.CodeNotFound},
		{"empty segment", "POST", "//api/orders", `{"product_id":1,"user_id":"a","quantity":1}`, 404, shop.CodeNotFound},
		{"dot segment", "GET", "/api/./products/1", ``, 404, shop.CodeNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := call(t, srv, tc.method, tc.path, tc.body)
			if a.status != tc.status || a.code() != tc.code {
				t.Errorf("%s %s: %d %q, want %d %q", tc.method, tc.path, a.status, a.code(), tc.status, tc.code)
			}
		})
	}

	if a := call(t, srv, "PUT", "/api/products/1", ``); a.header.Get("Allow") != "GET" {
		t.Errorf("405 for PUT /api/products/1: Allow %q, want GET", a.header.Get("Allow"))
	}
	if a := call(t, srv, "POST", "/api/orders", `{"product_id":1,"user_id":"a","quantity":1}`, "Idempotency-Key", "k\xff"); a.status != 422 || a.code() != shop.CodeInvalidValue {
		t.Errorf("Idempotency-Key of invalid UTF-8: %d %q, want 422 %s", a.status, a.code(), shop.CodeInvalidValue)
	}
	if a := call(t, srv, "POST", "/api/orders", `{"product_id":1,"user_id":"a","quantity":1}`, "Idempotency-Key", "k1", "Idempotency-Key", "k2"); a.status != 400 || a.code() != shop.CodeBadRequest {
		t.Errorf("two Idempotency-Key headers: %d %q, want 400 %s", a.status, a.code(), shop.CodeBadRequest)
	}
	first := call(t, srv, "POST", "/api/orders", `{"product_id":1,"user_id":7,"quantity":1}`, "Idempotency-Key", "k1")
	if first.status != 201 || first.body["user_id"] != "7" {
		t.Fatalf("first order: %d %v", first.status, first.body)
	}
	again := call(t, srv, "POST", "/api/orders", `{"product_id":1,"user_id":"7","quantity":1}`, "Idempotency-Key", "k1")
	if again.status != 200 || again.body["order_id"] != first.body["order_id"] {
		t.Errorf("replay: %d %v, want 200 and order %v", again.status, again.body, first.body["order_id"])
	}
	if a := call(t, srv, "POST", "/api/orders", `{"product_id":1,"user_id":"7","quantity":2}`, "Idempotency-Key", "k1"); a.status != 409 || a.code() != shop.CodeIdempotencyConflict {
		t.Errorf("replay with another body: %d %q", a.status, a.code())
	}
	if a := call(t, srv, "POST", "/api/orders", `{"product_id":1,"user_id":"8","quantity":1}`); a.status != 409 || a.code() != shop.CodeSoldOut {
		t.Errorf("sold out: %d %q", a.status, a.code())
	}
	call(t, srv, "POST", "/api/products", `{"name":"case","stock":10,"per_user_limit":1}`)
	call(t, srv, "POST", "/api/orders", `{"product_id":2,"user_id":"9","quantity":1}`)
	if a := call(t, srv, "POST", "/api/orders", `{"product_id":2,"user_id":"9","quantity":1}`); a.status != 409 || a.code() != shop.CodeLimitExceeded {
		t.Errorf("limit: %d %q", a.status, a.code())
	}
	if a := call(t, srv, "GET", "/api/products/1", ``); a.status != 200 || a.body["stock"] != 0.0 || a.body["sold"] != 1.0 {
		t.Errorf("product 1: %d %v, want stock 0 sold 1", a.status, a.body)
	}
	if a := call(t, srv, "GET", "/healthz", ``); a.status != 200 || a.body["status"] != "ok" || a.body["strategy"] != "atomic" || a.body["store"] != "sqlite" {
		t.Errorf("healthz: %d %v", a.status, a.body)
	}
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`stampede_http_requests_total{code="409",route="POST /api/orders"} 3`,
		`stampede_product_stock{product="1"} 0`,
		`stampede_product_stock{product="2"} 9`,
		`stampede_order_duration_seconds_count`,
	} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// blocking holds every order until released, to fill the shop.
type blocking struct {
	entered chan struct{}
	release chan struct{}
}

func (b *blocking) Name() string { return "blocking" }
func (b *blocking) Buy(ctx context.Context, o shop.Order) (shop.Order, error) {
	b.entered <- struct{}{}
	<-b.release
	return o, nil
}

// TestShedsLoad checks that orders past --max-inflight get 503 overloaded
// with Retry-After, and that the ones admitted still complete.
func TestShedsLoad(t *testing.T) {
	b := &blocking{entered: make(chan struct{}, 2), release: make(chan struct{})}
	srv, _ := newShop(t, func(shop.Store) shop.Strategy { return b }, 2)
	call(t, srv, "POST", "/api/products", `{"name":"phone","stock":5}`)
	var wg sync.WaitGroup
	statuses := make([]int, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i] = call(t, srv, "POST", "/api/orders", `{"product_id":1,"user_id":"a","quantity":1}`).status
		}()
	}
	<-b.entered
	<-b.entered
	a := call(t, srv, "POST", "/api/orders", `{"product_id":1,"user_id":"b","quantity":1}`)
	if a.status != 503 || a.code() != shop.CodeOverloaded || a.header.Get("Retry-After") != "1" {
		t.Errorf("third order: %d %q Retry-After %q; want 503 overloaded with Retry-After 1", a.status, a.code(), a.header.Get("Retry-After"))
	}
	close(b.release)
	wg.Wait()
	if statuses[0] != 201 || statuses[1] != 201 {
		t.Errorf("admitted orders answered %v, want 201 201", statuses)
	}
}
