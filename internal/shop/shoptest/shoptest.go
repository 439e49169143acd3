// Package shoptest drives a running shop over HTTP the way a flash sale
// does, and checks the outcome exactly. Integration tests of the shop, in
// one process or many, share it.
package shoptest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stampede-dev/stampede/internal/shop"
)

// Client talks to one shop.
type Client struct {
	Base string
	HTTP *http.Client
}

// NewClient returns a Client that keeps up to conns connections open.
func NewClient(base string, conns int) *Client {
	tr := &http.Transport{MaxIdleConns: conns, MaxIdleConnsPerHost: conns, IdleConnTimeout: time.Minute}
	return &Client{Base: base, HTTP: &http.Client{Transport: tr, Timeout: 60 * time.Second}}
}

// Close drops idle connections.
func (c *Client) Close() { c.HTTP.CloseIdleConnections() }

// Answer is a decoded response to POST /api/orders.
type Answer struct {
	Status  int
	OrderID string `json:"order_id"`
	Error   struct {
		Code string `json:"code"`
	} `json:"error"`
}

// Outcome names the answer: "201", "200" or "409 sold_out" and so on.
func (a Answer) Outcome() string {
	if a.Error.Code != "" {
		return strconv.Itoa(a.Status) + " " + a.Error.Code
	}
	return strconv.Itoa(a.Status)
}

// Do sends a request and decodes a JSON answer into v (if not nil).
func (c *Client) Do(ctx context.Context, method, path string, hdr http.Header, body []byte, v any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			return resp.StatusCode, fmt.Errorf("decode %s %s answer %q: %w", method, path, b, err)
		}
	}
	return resp.StatusCode, nil
}

// CreateProduct creates a product and returns its id.
func (c *Client) CreateProduct(t testing.TB, name string, stock, limit int64) int64 {
	t.Helper()
	var p shop.Product
	body := fmt.Sprintf(`{"name":%q,"stock":%d,"per_user_limit":%d}`, name, stock, limit)
	code, err := c.Do(context.Background(), "POST", "/api/products", nil, []byte(body), &p)
	if err != nil || code != http.StatusCreated {
		t.Fatalf("create product: status %d, %v", code, err)
	}
	return p.ID
}

// Product reads a product.
func (c *Client) Product(t testing.TB, id int64) shop.Product {
	t.Helper()
	var p shop.Product
	code, err := c.Do(context.Background(), "GET", "/api/products/"+strconv.FormatInt(id, 10), nil, nil, &p)
	if err != nil || code != http.StatusOK {
		t.Fatalf("get product %d: status %d, %v", id, code, err)
	}
	return p
}

// Orders reads every persisted order of a product from the stream.
func (c *Client) Orders(t testing.TB, id int64) []shop.Order {
	t.Helper()
	resp, err := c.HTTP.Get(c.Base + "/api/products/" + strconv.FormatInt(id, 10) + "/orders")
	if err != nil {
		t.Fatalf("list orders: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("list orders: status %d", resp.StatusCode)
	}
	var out []shop.Order
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var o shop.Order
		if err := json.Unmarshal(sc.Bytes(), &o); err != nil {
			t.Fatalf("order line %q: %v", sc.Text(), err)
		}
		out = append(out, o)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("list orders: %v", err)
	}
	return out
}

// Order places one order.
func (c *Client) Order(ctx context.Context, productID int64, user string, qty int64, key string) (Answer, error) {
	var hdr http.Header
	if key != "" {
		hdr = http.Header{"Idempotency-Key": {key}}
	}
	body := `{"product_id":` + strconv.FormatInt(productID, 10) + `,"user_id":"` + user + `","quantity":` + strconv.FormatInt(qty, 10) + `}`
	var a Answer
	code, err := c.Do(ctx, "POST", "/api/orders", hdr, []byte(body), &a)
	a.Status = code
	return a, err
}

// Sale describes a crowd: Orders single-unit orders from Users users, all
// released at once, each with its own Idempotency-Key; every Twins-th order
// (if Twins > 0) is sent twice at the same moment with the same key, as a
// client retrying too early would. Keys start with KeyPrefix, so that two
// crowds at one shop do not share keys.
type Sale struct {
	Users, Orders, Twins int
	KeyPrefix            string
}

// Result is what the crowd saw.
type Result struct {
	Created  map[string]string // order id → user, from 201 answers
	Keys     map[string]string // order id → idempotency key
	Outcomes map[string]int    // Answer.Outcome → count
	// TwinMismatch counts twin pairs whose answers disagree: one bought,
	// the other did not or bought another order.
	TwinMismatch int
	// MinStock is the lowest stock read by a poller during the sale.
	MinStock int64
	// Errors counts transport errors.
	Errors int
}

// Run releases the crowd at product id and waits for every answer.
func Run(t testing.TB, c *Client, id int64, s Sale) Result {
	t.Helper()
	res := Result{Created: map[string]string{}, Keys: map[string]string{}, Outcomes: map[string]int{}, MinStock: 1 << 62}
	var mu sync.Mutex
	record := func(a Answer, user, key string, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			res.Errors++
			t.Logf("order error: %v", err)
			return
		}
		res.Outcomes[a.Outcome()]++
		if a.Status == http.StatusCreated {
			if prev, dup := res.Created[a.OrderID]; dup {
				t.Errorf("order %s acknowledged with 201 twice (users %s and %s)", a.OrderID, prev, user)
			}
			res.Created[a.OrderID] = user
			res.Keys[a.OrderID] = key
		}
	}

	stop := make(chan struct{})
	polled := make(chan struct{})
	go func() { // watch stock while the crowd buys
		defer close(polled)
		for {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			var p shop.Product
			if code, err := c.Do(context.Background(), "GET", "/api/products/"+strconv.FormatInt(id, 10), nil, nil, &p); err == nil && code == 200 {
				mu.Lock()
				res.MinStock = min(res.MinStock, p.Stock)
				mu.Unlock()
			}
		}
	}()

	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range s.Orders {
		user := "user-" + strconv.Itoa(i%s.Users)
		key := s.KeyPrefix + "sale-" + strconv.Itoa(i)
		if s.Twins > 0 && i%s.Twins == 0 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				var a, b Answer
				var ea, eb error
				var inner sync.WaitGroup
				inner.Add(1)
				go func() { defer inner.Done(); b, eb = c.Order(context.Background(), id, user, 1, key) }()
				a, ea = c.Order(context.Background(), id, user, 1, key)
				inner.Wait()
				// Twins: one 201, the other 201 or 200 with the same order.
				for _, x := range []struct {
					a   Answer
					err error
				}{{a, ea}, {b, eb}} {
					if x.err != nil || x.a.Status != http.StatusCreated {
						record(x.a, user, key, x.err)
					}
				}
				switch {
				case ea != nil || eb != nil:
				case a.Status == http.StatusCreated && b.Status == http.StatusCreated && a.OrderID == b.OrderID:
					record(a, user, key, nil) // same order told twice: count once
				case a.Status == http.StatusCreated || b.Status == http.StatusCreated:
					won, other := a, b
					if b.Status == http.StatusCreated {
						won, other = b, a
					}
					record(won, user, key, nil)
					if other.Status != http.StatusOK || other.OrderID != won.OrderID {
						mu.Lock()
						res.TwinMismatch++
						mu.Unlock()
						t.Errorf("twin of order %s answered %s %q", won.OrderID, other.Outcome(), other.OrderID)
					}
				}
			}()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			a, err := c.Order(context.Background(), id, user, 1, key)
			record(a, user, key, err)
		}()
	}
	close(start)
	wg.Wait()
	close(stop)
	<-polled
	return res
}

// CheckHeld asserts that a sale of a product with the given stock and
// per-user limit sold exactly its stock and nothing else: every 201 is one
// persisted order, no order lacks its 201, stock is zero and was never
// negative, no user passed the limit, and retries return the same order.
func CheckHeld(t testing.TB, c *Client, id, stock, limit int64, r Result) {
	t.Helper()
	if r.Errors != 0 {
		t.Errorf("%d requests failed in transport", r.Errors)
	}
	if got := int64(len(r.Created)); got != stock {
		t.Errorf("acknowledged %d orders with 201, want exactly %d (outcomes %v)", got, stock, r.Outcomes)
	}
	for outcome := range r.Outcomes {
		switch outcome {
		case "201", "200", "409 sold_out", "409 limit_exceeded":
		default:
			t.Errorf("unexpected answer %q ×%d", outcome, r.Outcomes[outcome])
		}
	}
	if r.MinStock < 0 {
		t.Errorf("stock read as %d during the sale", r.MinStock)
	}
	p := c.Product(t, id)
	if p.Stock != 0 || p.Sold != stock {
		t.Errorf("product after sale: stock %d sold %d, want 0 and %d", p.Stock, p.Sold, stock)
	}
	orders := c.Orders(t, id)
	if int64(len(orders)) != stock {
		t.Errorf("persisted %d orders, want exactly %d", len(orders), stock)
	}
	perUser := map[string]int64{}
	for _, o := range orders {
		perUser[o.UserID] += o.Quantity
		if _, ok := r.Created[o.ID]; !ok {
			t.Errorf("persisted order %s (user %s) was never acknowledged with 201", o.ID, o.UserID)
		}
	}
	persisted := make(map[string]bool, len(orders))
	for _, o := range orders {
		persisted[o.ID] = true
	}
	for id := range r.Created {
		if !persisted[id] {
			t.Errorf("order %s was acknowledged but is not persisted", id)
		}
	}
	for u, n := range perUser {
		if limit > 0 && n > limit {
			t.Errorf("user %s holds %d units, limit %d", u, n, limit)
		}
	}
	// Honest retries return the same order and buy nothing.
	replayed := 0
	for oid, user := range r.Created {
		if replayed == 20 {
			break
		}
		replayed++
		a, err := c.Order(context.Background(), id, user, 1, r.Keys[oid])
		if err != nil || a.Status != http.StatusOK || a.OrderID != oid {
			t.Errorf("replay of %s: %s %q, %v; want 200 and the same order", oid, a.Outcome(), a.OrderID, err)
		}
		a, err = c.Order(context.Background(), id, user, 2, r.Keys[oid])
		if err != nil || a.Outcome() != "409 idempotency_conflict" {
			t.Errorf("replay of %s with another body: %s, %v; want 409 idempotency_conflict", oid, a.Outcome(), err)
		}
	}
	if p := c.Product(t, id); p.Sold != stock {
		t.Errorf("after replays sold is %d, want %d", p.Sold, stock)
	}
}
