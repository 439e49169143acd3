package verify

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stampede-dev/stampede/internal/load"
)

func TestParseFaults(t *testing.T) {
	got, err := ParseFaults("kill-shop@1.5s, pg-pause@2s/3s,kill-worker@1s,redis-restart@0s/100ms")
	if err != nil {
		t.Fatal(err)
	}
	want := []Fault{
		{KillShop, 1500 * time.Millisecond, 500 * time.Millisecond},
		{PGPause, 2 * time.Second, 3 * time.Second},
		{KillWorker, time.Second, 0},
		{RedisRestart, 0, 100 * time.Millisecond},
	}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("fault %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	for _, tc := range []struct{ in, want string }{
		{"kill-shop", `fault "kill-shop": say when, after the sale's start: kill-shop@1s`},
		{"kill-all@1s", `unknown fault "kill-all" (want kill-worker, kill-shop, redis-restart or pg-pause)`},
		{"kill-shop@soon", `fault "kill-shop@soon": the time after @ must be a duration from 0 to 1h, as 1.5s`},
		{"kill-shop@-1s", `fault "kill-shop@-1s": the time after @ must be a duration from 0 to 1h, as 1.5s`},
		{"pg-pause@1s/0s", `fault "pg-pause@1s/0s": the time after / must be a duration from 1ns to 1m, as 2s`},
		{"kill-worker@1s/2s", `fault "kill-worker@1s/2s": a killed worker is restarted by the supervisor; it takes no /FOR`},
	} {
		if _, err := ParseFaults(tc.in); err == nil || err.Error() != tc.want {
			t.Errorf("ParseFaults(%q) = %v, want %q", tc.in, err, tc.want)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		change func(*Config)
		want   string
	}{
		{func(c *Config) { c.Faults = []Fault{{Kind: KillWorker, At: time.Second}} }, "kill-worker needs a shop of worker processes: --procs 2 or more"},
		{func(c *Config) { c.Faults = []Fault{{Kind: RedisRestart, At: time.Second}} }, "redis-restart needs a Redis that verify may kill: --redis private"},
		{func(c *Config) { c.Faults = []Fault{{Kind: PGPause, At: time.Second}} }, "pg-pause needs a PostgreSQL that verify may freeze: --store postgres"},
		{func(c *Config) { c.Faults = []Fault{{Kind: KillShop, At: 7 * time.Second}} }, "fault kill-shop@7s comes after the sale's 6s"},
		{func(c *Config) { c.Users = 601 }, "--users must be from 1 to --purchases"},
		{func(c *Config) { c.Stock = 0 }, "--stock must be from 1 to 1000000"},
		{func(c *Config) { c.Duration = time.Millisecond }, "-d must be from 100ms to 1h"},
	} {
		c := Defaults()
		c.Exe = "stampede"
		tc.change(&c)
		err := c.check()
		if !errors.Is(err, ErrConfig) || err.Error() != "invalid verification: "+tc.want {
			t.Errorf("got %v, want %q", err, tc.want)
		}
	}
}

// A store or a Redis that cannot be reached is a mistake in the command
// line, said before any backend or shop starts: no temporary folder is
// made for the run.
func TestUnreachableBackendsRefusedFirst(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	t.Setenv("TMPDIR", t.TempDir())
	for _, tc := range []struct {
		change func(*Config)
		want   string
	}{
		{func(c *Config) { c.Store = "postgres://postgres@" + closed + "/x" },
			"invalid verification: --store postgres://postgres@" + closed + "/x: cannot reach " + closed + ": connect: connection refused"},
		{func(c *Config) { c.Redis = "redis://" + closed + "/0" },
			"invalid verification: --redis redis://" + closed + "/0: cannot reach " + closed + ": connect: connection refused"},
		{func(c *Config) { c.Redis = "redis://shop.invalid:6379/0" }, "cannot reach shop.invalid:6379: lookup shop.invalid"},
	} {
		c := Defaults()
		c.Exe = "stampede"
		tc.change(&c)
		_, err := Run(context.Background(), c)
		if !errors.Is(err, ErrConfig) || !strings.HasPrefix(strings.TrimPrefix(err.Error(), "invalid verification: --redis redis://shop.invalid:6379/0: "), tc.want) {
			t.Errorf("got %v, want %q", err, tc.want)
		}
	}
	if left, _ := os.ReadDir(os.Getenv("TMPDIR")); len(left) != 0 {
		t.Errorf("refused runs left %d entries in the temporary folder", len(left))
	}
}

// TestCheckFindsEachViolation feeds the checks a made-up sale of 3 units
// that breaks one invariant at a time.
func TestCheckFindsEachViolation(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	buy := func(key, user string, call, ret int, outcome load.Outcome, id string) load.Purchase {
		return load.Purchase{Key: key, User: user, Quantity: 1, Start: at(call), End: at(ret), Attempts: 1, Outcome: outcome, OrderID: id}
	}
	// An honest sale: 3 units, 4 buyers, the last told sold out.
	honest := func() (*run, settled) {
		r := &run{cfg: Defaults(), start: t0, initial: 3}
		r.cfg.Limit = 1
		r.purchases = []load.Purchase{
			buy("k1", "u1", 0, 10, load.Acknowledged, "o1"),
			buy("k2", "u2", 5, 15, load.Acknowledged, "o2"),
			buy("k3", "u3", 20, 30, load.Acknowledged, "o3"),
			buy("k4", "u4", 40, 50, load.SoldOut, ""),
		}
		r.reads = []read{{Start: at(16), End: at(18), Stock: 1}, {Start: at(60), End: at(61), Stock: 0}}
		st := settled{stock: 0, sold: 3, orders: []order{{"o1", "u1", 1, "k1"}, {"o2", "u2", 1, "k2"}, {"o3", "u3", 1, "k3"}},
			replays: []replay{{"k1", "o1", "o1", 200, load.Acknowledged}, {"k2", "o2", "o2", 200, load.Acknowledged}, {"k3", "o3", "o3", 200, load.Acknowledged}}}
		return r, st
	}
	r, st := honest()
	rep := r.check(st)
	for _, inv := range rep.Invariants {
		if inv.Verdict != Pass {
			t.Errorf("honest sale: %s failed: expected %s, observed %s", inv.Name, inv.Expected, inv.Observed)
		}
	}
	if !rep.OK() || len(rep.Invariants) != 11 {
		t.Fatalf("honest sale: OK %v with %d invariants", rep.OK(), len(rep.Invariants))
	}
	for _, tc := range []struct {
		name   string
		break_ func(r *run, st *settled)
		failed []string
	}{
		{"an acknowledged order lost", func(r *run, st *settled) {
			st.orders, st.stock, st.sold = st.orders[:2], 1, 2
		}, []string{"acknowledged orders stored once", "no undersell"}},
		{"an order stored twice", func(r *run, st *settled) {
			st.orders = append(st.orders, order{"o9", "u1", 1, "k1"})
			st.stock, st.sold = -1, 4
		}, []string{"never oversold", "acknowledged orders stored once", "per-user limit"}},
		{"an order nobody sent", func(r *run, st *settled) {
			st.orders[2] = order{"o3", "u3", 1, "zz"}
		}, []string{"no order nobody sent"}},
		{"stock and sold disagree", func(r *run, st *settled) { st.sold = 2 },
			[]string{"books balance", "sold matches the orders"}},
		{"a buyer charged and told sold out", func(r *run, st *settled) {
			r.purchases[2].Outcome, r.purchases[2].OrderID = load.SoldOut, ""
		}, []string{"no buyer charged and refused", "stock reads linearizable"}},
		{"a purchase never answered", func(r *run, st *settled) {
			r.purchases[3].Outcome = load.Unsettled
		}, []string{"every purchase settled"}},
		{"a retry answered with another order", func(r *run, st *settled) {
			st.replays[1] = replay{"k2", "o2", "o7", 201, load.Acknowledged}
		}, []string{"retries replay the order"}},
		{"a retry told sold out", func(r *run, st *settled) {
			st.replays[2] = replay{"k3", "o3", "", 409, load.SoldOut}
		}, []string{"retries replay the order"}},
		{"a stale read", func(r *run, st *settled) {
			r.reads = append(r.reads, read{Start: at(55), End: at(56), Stock: 1})
		}, []string{"stock reads linearizable"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, st := honest()
			tc.break_(r, &st)
			rep := r.check(st)
			var failed []string
			for _, inv := range rep.Invariants {
				if inv.Verdict == Fail {
					failed = append(failed, inv.Name)
				}
			}
			if strings.Join(failed, "; ") != strings.Join(tc.failed, "; ") || rep.OK() {
				t.Errorf("failed %q, want %q", failed, tc.failed)
			}
		})
	}
}

func TestReportWriters(t *testing.T) {
	rep := &Report{
		Invariants: []Invariant{{"books balance", "stock + sold = 3", "0 + 3 = 3", Pass}, {"never oversold", "stock >= 0", "stock -1", Fail}},
		Outcomes:   Outcomes{Purchases: 4, Acknowledged: 3, SoldOut: 1, Stored: 4},
		Events:     []Event{{Fault: Fault{KillShop, time.Second, 500 * time.Millisecond}, Start: time.Second, End: 1600 * time.Millisecond}},
		Timeline:   []Slot{{At: 0, Acknowledged: 2}, {At: time.Second, Acknowledged: 1, SoldOut: 1, Retries: 3, Faults: []string{KillShop}}},
	}
	var text, page bytes.Buffer
	if err := WriteText(&text, rep); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"never oversold  stock >= 0        stock -1   FAIL",
		"fault kill-shop@1s/500ms: from 1s to 1.6s",
		"1s      1         1      0       0        3 kill-shop",
		"verdict: VIOLATED: never oversold",
	} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, text.String())
		}
	}
	if err := WriteHTML(&page, rep); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`<td class="FAIL">FAIL</td>`, `class="fault"><title>kill-shop</title>`, `class="ack"><title>0s: 2 ack</title>`} {
		if !strings.Contains(page.String(), want) {
			t.Errorf("HTML report lacks %q", want)
		}
	}
}

// TestLongestStall: a purchase's wait counts less what of it fell inside
// the faults' down windows, overlapping windows taken off once; a killed
// worker holds nothing down; a purchase that gave up unsettled waited its
// whole time; and the sale ran only if 95 % of its purchases were sent.
func TestLongestStall(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	buy := func(call, ret int, o load.Outcome) load.Purchase {
		return load.Purchase{Start: at(call), End: at(ret), Outcome: o}
	}
	pg := Event{Fault: Fault{Kind: PGPause}, Start: ms(1000), End: ms(3000)}
	shop := Event{Fault: Fault{Kind: KillShop}, Start: ms(2000), End: ms(4000)} // overlaps pg by 1 s
	worker := Event{Fault: Fault{Kind: KillWorker}, Start: ms(5000), End: ms(5001)}
	for _, tc := range []struct {
		name      string
		purchases []load.Purchase
		events    []Event
		want, at  time.Duration
	}{
		{"no fault", []load.Purchase{buy(0, 100, load.Acknowledged), buy(50, 400, load.SoldOut)}, nil, ms(350), ms(50)},
		{"inside two overlapping windows", []load.Purchase{buy(900, 4200, load.Acknowledged)}, []Event{pg, shop}, ms(300), ms(900)},
		{"a killed worker holds nothing down", []load.Purchase{buy(4900, 6100, load.Acknowledged)}, []Event{worker}, ms(1200), ms(4900)},
		{"gave up unsettled", []load.Purchase{buy(0, 100, load.Acknowledged), buy(200, 10200, load.Unsettled)}, nil, ms(10000), ms(200)},
	} {
		got, from := longestStall(tc.purchases, t0, tc.events)
		if got != tc.want || from != tc.at {
			t.Errorf("%s: %v from %v, want %v from %v", tc.name, got, from, tc.want, tc.at)
		}
	}
	r := &run{cfg: Defaults(), start: t0}
	r.cfg.Purchases = 100
	for i := range 94 {
		r.during = append(r.during, buy(i, i+10, load.Acknowledged))
	}
	rep := &Report{}
	r.checkRan(rep, nil)
	if len(rep.Invariants) != 2 || rep.Invariants[0].Verdict != Fail || rep.Invariants[1].Verdict != Pass || rep.Planned != 100 || rep.Sent != 94 {
		t.Errorf("94 of 100 sent: %+v, planned %d, sent %d", rep.Invariants, rep.Planned, rep.Sent)
	}
}
