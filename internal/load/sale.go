package load

import (
	"bytes"
	"context"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// Pauses between the attempts of one purchase: doubling from the first to
// the last, each drawn from its upper half so that a crowd told 503 at once
// does not come back at once.
const (
	firstRetryPause = 20 * time.Millisecond
	lastRetryPause  = time.Second
)

// purchase buys once for its user. An answer that settles nothing (a 503, a
// 504 or a transport error: the order may or may not have been taken) is sent
// again with the same Idempotency-Key until the shop answers definitively
// or the request timeout has passed since the first attempt, so a buyer
// whose order was stored learns it, as a 201 or as the replayed order.
// Every attempt is a request of its own in the statistics; the outcome is
// counted once.
func (w *worker) purchase(ctx context.Context, intended time.Time) {
	s := w.e.cfg.Sale
	k := w.e.purchases.Add(1) - 1
	t := w.e.cfg.Targets[0]
	w.buf = appendPurchase(w.buf[:0], t, s, k, w.e.cfg.KeepAlive)
	if t.URL.Scheme == "https" { // net/http sends it: give it the parts
		t.Method, t.Body = "POST", appendSaleBody(nil, s, k)
		t.Header = http.Header{"Content-Type": {"application/json"}, "Idempotency-Key": {saleKey(s, k)}}
	}
	start := time.Now()
	giveUp := start.Add(w.e.cfg.Timeout)
	pause := firstRetryPause
	for attempts := 1; ; attempts++ {
		status, in, err := w.send(ctx, 0, t, w.buf)
		w.record(intended, status, in, int64(len(w.buf)), err)
		var body []byte
		if w.c != nil {
			body = w.c.body
		}
		outcome, id := SaleOutcome(status, body, err)
		if outcome == Unsettled && ctx.Err() == nil {
			wait := pause/2 + rand.N(pause/2+1)
			if time.Now().Add(wait).Before(giveUp) && sleep(ctx, wait) {
				pause = min(2*pause, lastRetryPause)
				intended = time.Now()
				w.sh.mu.Lock()
				w.sh.w.sale.Retries++
				w.sh.mu.Unlock()
				continue
			}
		}
		if s.Record != nil {
			s.Record(Purchase{
				Key: saleKey(s, k), User: "u" + strconv.FormatInt(s.user(k), 10), Quantity: s.Quantity,
				Start: start, End: time.Now(), Attempts: attempts, Status: status, Outcome: outcome, OrderID: id,
			})
		}
		w.sh.mu.Lock()
		sc := &w.sh.w.sale
		switch outcome {
		case Acknowledged:
			w.sh.w.orders = append(w.sh.w.orders, id)
		case SoldOut:
			sc.SoldOut++
		case LimitExceeded:
			sc.LimitExceeded++
		case Unsettled: // still unsettled when time ran out
			sc.Unsettled++
		default:
			sc.Other++
		}
		w.sh.mu.Unlock()
		return
	}
}

// SaleOutcome reads a shop's answer to a purchase (a transport error as
// err): what it settled, and the order id of an acknowledgement. It reads
// without decoding JSON: 200 and 201 carry "order_id", a 409 carries an
// error "code".
func SaleOutcome(status int, body []byte, err error) (Outcome, string) {
	switch {
	case err != nil, status == 503, status == 504:
		return Unsettled, ""
	case status == 200 || status == 201:
		if id := jsonString(body, `"order_id"`); id != "" {
			return Acknowledged, id
		}
	case status == 409:
		switch jsonString(body, `"code"`) {
		case "sold_out":
			return SoldOut, ""
		case "limit_exceeded":
			return LimitExceeded, ""
		}
	}
	return Other, ""
}

// jsonString finds "key":"value" in a flat JSON body and returns value (no
// escapes expected in ids and codes).
func jsonString(body []byte, key string) string {
	i := bytes.Index(body, []byte(key))
	if i < 0 {
		return ""
	}
	rest := bytes.TrimLeft(body[i+len(key):], " \t")
	if len(rest) == 0 || rest[0] != ':' {
		return ""
	}
	rest = bytes.TrimLeft(rest[1:], " \t")
	if len(rest) == 0 || rest[0] != '"' {
		return ""
	}
	end := bytes.IndexByte(rest[1:], '"')
	if end < 0 {
		return ""
	}
	return string(rest[1 : 1+end])
}

// appendPurchase renders purchase k's request into b.
func appendPurchase(b []byte, t Target, s *FlashSale, k int64, keepAlive bool) []byte {
	user := s.user(k)
	body := len(`{"product_id":,"user_id":"u","quantity":}`) + len(s.ProductID) + digits(user) + digits(int64(s.Quantity))
	b = append(b, "POST "...)
	b = append(b, t.URL.RequestURI()...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, t.URL.Host...)
	b = append(b, "\r\nUser-Agent: stampede\r\nContent-Type: application/json\r\nIdempotency-Key: "...)
	b = append(b, s.RunID...)
	b = append(b, '-')
	b = strconv.AppendInt(b, k, 10)
	b = append(b, "\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(body), 10)
	if !keepAlive {
		b = append(b, "\r\nConnection: close"...)
	}
	b = append(b, "\r\n\r\n"...)
	return appendSaleBody(b, s, k)
}

// appendSaleBody renders purchase k's JSON body into b.
func appendSaleBody(b []byte, s *FlashSale, k int64) []byte {
	b = append(b, `{"product_id":`...)
	b = append(b, s.ProductID...)
	b = append(b, `,"user_id":"u`...)
	b = strconv.AppendInt(b, s.user(k), 10)
	b = append(b, `","quantity":`...)
	b = strconv.AppendInt(b, int64(s.Quantity), 10)
	return append(b, '}')
}

// saleKey is purchase k's Idempotency-Key, the same on every retry.
func saleKey(s *FlashSale, k int64) string { return s.RunID + "-" + strconv.FormatInt(k, 10) }

func digits(n int64) int {
	d := 1
	for n >= 10 {
		n /= 10
		d++
	}
	return d
}
