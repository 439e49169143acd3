package load

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Stock is what a stampede shop says of a product: GET /api/products/ID.
type Stock struct {
	Stock int64 `json:"stock"`
	Sold  int64 `json:"sold"`
}

// ErrNoProduct is ReadStock's answer for a product the shop does not have.
var ErrNoProduct = errors.New("the shop has no such product")

// ReadStock reads a product from the shop at base (the flash sale's URL).
func ReadStock(ctx context.Context, base, productID string, insecure bool, timeout time.Duration) (Stock, error) {
	c := &http.Client{Timeout: timeout, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: insecure}}}
	defer c.CloseIdleConnections()
	u := strings.TrimRight(base, "/") + "/api/products/" + strings.Trim(productID, `"`)
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return Stock{}, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return Stock{}, fmt.Errorf("read product: %w", err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return Stock{}, ErrNoProduct
	case resp.StatusCode != http.StatusOK:
		return Stock{}, fmt.Errorf("read product: %s answered %d", u, resp.StatusCode)
	}
	var s Stock
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&s); err != nil {
		return Stock{}, fmt.Errorf("read product: %s: %w", u, err)
	}
	return s, nil
}

// Verdict is what a flash sale did to the shop's books, from the product
// read before and after the run and the orders the buyers were told of.
type Verdict struct {
	Before       Stock `json:"before"`
	After        Stock `json:"after"`
	Acknowledged int64 `json:"acknowledged"`
	// Oversold is how many units the shop sold beyond what it had.
	Oversold int64 `json:"oversold"`
	// Unacknowledged counts units sold during the run beyond the
	// acknowledged orders (another client, or buyers not told).
	Unacknowledged int64 `json:"unacknowledged"`
	// Lost counts acknowledged orders the shop does not hold.
	Lost int64  `json:"lost"`
	Line string `json:"verdict"`
}

// Failed reports whether the shop broke its promise: it oversold, or lost
// orders it had acknowledged.
func (v Verdict) Failed() bool { return v.Oversold > 0 || v.Lost > 0 }

// Judge compares the books. The units on sale are stock + sold as read
// before the run.
func Judge(before, after Stock, acknowledged int64) Verdict {
	v := Verdict{Before: before, After: after, Acknowledged: acknowledged}
	had := before.Stock + before.Sold
	v.Oversold = max(0, after.Sold-had, -after.Stock)
	v.Unacknowledged = max(0, after.Sold-before.Sold-acknowledged)
	v.Lost = max(0, acknowledged-(after.Sold-before.Sold))
	switch {
	case v.Oversold > 0:
		v.Line = fmt.Sprintf("sold %d of %d: OVERSOLD by %d", after.Sold, had, v.Oversold)
	case v.Lost > 0:
		v.Line = fmt.Sprintf("sold %d of %d, but %d orders were acknowledged: LOST %d", after.Sold, had, acknowledged, v.Lost)
	default:
		v.Line = fmt.Sprintf("sold %d of %d, %d left: the books balance", after.Sold, had, after.Stock)
		if v.Unacknowledged > 0 {
			v.Line += fmt.Sprintf(" (%d units sold during the run were not acknowledged to these buyers)", v.Unacknowledged)
		}
	}
	return v
}
