package verify

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"sort"
	"time"

	"github.com/stampede-dev/stampede/internal/load"
)

// Verdict of one invariant.
type Verdict string

const (
	Pass Verdict = "pass"
	Fail Verdict = "FAIL"
)

// Invariant is one row of the verdict table.
type Invariant struct {
	Name     string  `json:"name"`
	Expected string  `json:"expected"`
	Observed string  `json:"observed"`
	Verdict  Verdict `json:"verdict"`
}

// Report is what a verification found.
type Report struct {
	Invariants []Invariant `json:"invariants"`
	Outcomes   Outcomes    `json:"outcomes"`
	Requests   int64       `json:"requests"` // HTTP answers during the sale, retries included
	Errors     int64       `json:"transport_errors"`
	Events     []Event     `json:"faults"`
	// Planned purchases, and those Sent during the sale; LongestStall
	// the longest a purchase waited for its definite answer, outside the
	// faults' down windows.
	Planned      int     `json:"planned"`
	Sent         int     `json:"sent"`
	LongestStall float64 `json:"longest_stall_seconds"`
	Timeline     []Slot  `json:"timeline"`
	// History is every purchase (as settled) and every stock read, in the
	// order they were called; WriteHistory writes it.
	History []Op `json:"-"`
}

// Op is one operation of the history: a purchase or a stock read.
type Op struct {
	Kind     string        `json:"op"` // "purchase" or "read"
	Call     time.Duration `json:"call_ns"`
	Return   time.Duration `json:"return_ns"`
	Key      string        `json:"key,omitempty"`
	User     string        `json:"user,omitempty"`
	Outcome  string        `json:"outcome,omitempty"`
	OrderID  string        `json:"order_id,omitempty"`
	Attempts int           `json:"attempts,omitempty"`
	Stock    *int64        `json:"stock,omitempty"` // what a read saw
}

// Outcomes counts the purchases by their final answer, after settling.
type Outcomes struct {
	Purchases     int `json:"purchases"`
	Acknowledged  int `json:"acknowledged"`
	SoldOut       int `json:"sold_out"`
	LimitExceeded int `json:"limit_exceeded"`
	Unsettled     int `json:"unsettled"`
	Other         int `json:"other"`
	Retried       int `json:"retried"` // purchases that took more than one attempt
	Stored        int `json:"stored_orders"`
}

// OK reports whether no invariant failed.
func (r *Report) OK() bool {
	for _, inv := range r.Invariants {
		if inv.Verdict == Fail {
			return false
		}
	}
	return true
}

func verdict(ok bool) Verdict {
	if ok {
		return Pass
	}
	return Fail
}

// check judges the settled sale against its history.
func (r *run) check(st settled) *Report {
	rep := &Report{}
	oc := &rep.Outcomes
	oc.Purchases, oc.Stored = len(r.purchases), len(st.orders)
	sent := make(map[string]load.Purchase, len(r.purchases))
	wantPerUser := make(map[string]int64)
	for _, p := range r.purchases {
		sent[p.Key] = p
		switch p.Outcome {
		case load.Acknowledged:
			oc.Acknowledged++
		case load.SoldOut:
			oc.SoldOut++
		case load.LimitExceeded:
			oc.LimitExceeded++
		case load.Unsettled:
			oc.Unsettled++
		default:
			oc.Other++
		}
		if p.Attempts > 1 {
			oc.Retried++
		}
		wantPerUser[p.User] += int64(p.Quantity)
	}
	add := func(name, expected, observed string, v Verdict) {
		rep.Invariants = append(rep.Invariants, Invariant{name, expected, observed, v})
	}
	n := r.initial

	add("books balance", fmt.Sprintf("stock + sold = %d", n),
		fmt.Sprintf("%d + %d = %d", st.stock, st.sold, st.stock+st.sold), verdict(st.stock+st.sold == n))

	var storedUnits int64
	byUser := make(map[string]int64)
	byKey := make(map[string]int)
	byID := make(map[string]int)
	for _, o := range st.orders {
		storedUnits += o.Quantity
		byUser[o.User] += o.Quantity
		byKey[o.Key]++
		byID[o.ID]++
	}
	add("never oversold", fmt.Sprintf("stock >= 0, stored units <= %d", n),
		fmt.Sprintf("stock %d, %d units in %d orders", st.stock, storedUnits, len(st.orders)),
		verdict(st.stock >= 0 && storedUnits <= n && st.sold <= n))
	add("sold matches the orders", "sold = units in stored orders",
		fmt.Sprintf("sold %d, stored %d", st.sold, storedUnits), verdict(st.sold == storedUnits))

	var missing, twice int
	for _, p := range r.purchases {
		if p.Outcome != load.Acknowledged {
			continue
		}
		switch byID[p.OrderID] {
		case 0:
			missing++
		case 1:
		default:
			twice++
		}
	}
	for _, c := range byKey {
		if c > 1 {
			twice += c - 1
		}
	}
	add("acknowledged orders stored once", fmt.Sprintf("all %d stored, none twice", oc.Acknowledged),
		fmt.Sprintf("%d missing, %d stored twice", missing, twice), verdict(missing == 0 && twice == 0))

	var phantom, toldNo int
	for _, o := range st.orders {
		switch p, ok := sent[o.Key]; {
		case !ok || p.User != o.User:
			phantom++
		case p.Outcome != load.Acknowledged:
			toldNo++
		}
	}
	add("no order nobody sent", "every stored order's key and user were sent",
		fmt.Sprintf("%d stored orders without a sender", phantom), verdict(phantom == 0))
	add("no buyer charged and refused", "every stored order's buyer was acknowledged",
		fmt.Sprintf("%d stored orders whose buyer heard otherwise", toldNo), verdict(toldNo == 0))

	if lim := r.cfg.Limit; lim > 0 {
		var over int
		for _, units := range byUser {
			if units > int64(lim) {
				over++
			}
		}
		add("per-user limit", fmt.Sprintf("no user holds more than %d", lim),
			fmt.Sprintf("%d users over the limit", over), verdict(over == 0))
	}

	add("every purchase settled", "a 201/200 or a 409 for each",
		fmt.Sprintf("%d unsettled, %d other answers", oc.Unsettled, oc.Other), verdict(oc.Unsettled == 0 && oc.Other == 0))

	// Demand is what the buyers could take: each user up to the limit.
	var demand int64
	for _, units := range wantPerUser {
		if lim := int64(r.cfg.Limit); lim > 0 {
			units = min(units, lim)
		}
		demand += units
	}
	if demand >= n {
		add("no undersell", fmt.Sprintf("nothing left unsold: stock <= 0 (demand %d >= %d; below 0 is judged by never oversold)", demand, n),
			fmt.Sprintf("stock %d", st.stock), verdict(st.stock <= 0))
	} else {
		add("no undersell", fmt.Sprintf("stock %d (demand %d < %d)", n-demand, demand, n),
			fmt.Sprintf("stock %d", st.stock), verdict(st.stock == n-demand))
	}

	var changed int
	var first string
	for _, rp := range st.replays {
		if rp.status != http.StatusOK || rp.got != rp.want {
			if changed++; changed == 1 {
				first = fmt.Sprintf(" (the first: key %s, %d %s)", rp.key, rp.status, rp.outcome)
			}
		}
	}
	add("retries replay the order", fmt.Sprintf("%d acknowledged keys sent again: 200, same order", len(st.replays)),
		fmt.Sprintf("%d answered otherwise%s", changed, first), verdict(changed == 0))

	stored := make(map[string]bool, len(st.orders))
	for _, o := range st.orders {
		stored[o.Key] = true
	}
	ops, purchases := r.history(stored)
	lin := checkCounter(r.initial, ops)
	obs := fmt.Sprintf("%d reads, %d purchases: a legal order exists", len(ops)-purchases, purchases)
	if !lin.ok {
		obs = lin.why
	}
	add("stock reads linearizable", "a legal order of every read and purchase", obs, verdict(lin.ok))
	return rep
}

// history is the sale as the linearizability check sees it. A purchase
// whose answer was lost took effect if and only if its order is stored;
// whether before its buyer gave up is unknown, so it stays open to the end.
// limit_exceeded and failed purchases leave the stock alone and are left
// out.
func (r *run) history(stored map[string]bool) (ops []stockOp, purchases int) {
	at := func(t time.Time) int64 { return t.Sub(r.start).Nanoseconds() }
	for _, p := range r.purchases {
		op := stockOp{call: at(p.Start), ret: at(p.End)}
		switch {
		case p.Outcome == load.Acknowledged:
			op.kind = opAck
		case p.Outcome == load.SoldOut:
			op.kind = opSoldOut
		case stored[p.Key] && p.Outcome != load.LimitExceeded:
			op.kind, op.ret = opAck, math.MaxInt64
		default:
			continue
		}
		ops = append(ops, op)
	}
	purchases = len(ops)
	for _, rd := range r.reads {
		ops = append(ops, stockOp{kind: opRead, call: at(rd.Start), ret: at(rd.End), stock: rd.Stock})
	}
	return ops, purchases
}

// orders reads a product's orders as the shop streams them.
func (s *shopProc) orders(ctx context.Context, id string) ([]order, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", s.base+"/api/products/"+id+"/orders", nil)
	if err != nil {
		return nil, err
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("read the orders: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("read the orders: status %d", resp.StatusCode)
	}
	var out []order
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var o order
		if err := json.Unmarshal(sc.Bytes(), &o); err != nil {
			return nil, fmt.Errorf("read the orders: %w", err)
		}
		out = append(out, o)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read the orders: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// checkRan adds the checks that the sale itself ran: that (nearly) every
// planned purchase was sent, and that no purchase waited for its definite
// answer longer than MaxStall, outside the windows in which a fault held
// the shop or a backend down.
func (r *run) checkRan(rep *Report, events []Event) {
	rep.Planned, rep.Sent = r.cfg.Purchases, len(r.during)
	verdict := Pass
	if float64(rep.Sent) < 0.95*float64(rep.Planned) {
		verdict = Fail
	}
	rep.Invariants = append(rep.Invariants, Invariant{"the sale ran",
		fmt.Sprintf("at least 95%% of the %d planned purchases sent", rep.Planned),
		fmt.Sprintf("%d sent (%.1f%%)", rep.Sent, 100*float64(rep.Sent)/float64(max(rep.Planned, 1))), verdict})
	stall, at := longestStall(r.during, r.start, events)
	rep.LongestStall = stall.Seconds()
	if r.cfg.MaxStall > 0 {
		verdict = Pass
		if stall > r.cfg.MaxStall {
			verdict = Fail
		}
		rep.Invariants = append(rep.Invariants, Invariant{"no stall",
			fmt.Sprintf("every purchase answered within %v (fault windows aside)", r.cfg.MaxStall),
			fmt.Sprintf("longest wait %v, sent at %v", stall.Round(time.Millisecond), at.Round(time.Millisecond)), verdict})
	}
}

// down is how long a fault holds the shop or a backend unable to answer:
// from its start to its end for the faults that stop something for a
// while; a killed worker, replaced by its supervisor, holds nothing down.
func down(e Event) bool { return e.Kind != KillWorker && e.Err == "" }

// longestStall is the longest a purchase of the sale waited for its
// answer, whatever it was (one that gave up unsettled waited its whole
// timeout), less what of the wait fell inside the faults' down windows
// (merged, so that overlapping faults are not taken off twice); and when
// that purchase was sent, since the sale's start.
func longestStall(purchases []load.Purchase, start time.Time, events []Event) (time.Duration, time.Duration) {
	type span struct{ from, to time.Duration }
	var windows []span
	for _, ev := range events {
		if down(ev) && ev.End > ev.Start {
			windows = append(windows, span{ev.Start, ev.End})
		}
	}
	sort.Slice(windows, func(i, j int) bool { return windows[i].from < windows[j].from })
	var merged []span
	for _, w := range windows {
		if n := len(merged); n > 0 && w.from <= merged[n-1].to {
			merged[n-1].to = max(merged[n-1].to, w.to)
			continue
		}
		merged = append(merged, w)
	}
	var longest, at time.Duration
	for _, p := range purchases {
		from, to := p.Start.Sub(start), p.End.Sub(start)
		wait := to - from
		for _, w := range merged {
			wait -= max(0, min(to, w.to)-max(from, w.from))
		}
		if wait > longest {
			longest, at = wait, from
		}
	}
	return longest, at
}
