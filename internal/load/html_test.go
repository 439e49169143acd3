package load

import (
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestHTMLReportReadable: round ticks with units (60k req/s, not
// 6.027e+04), latencies in the unit that suits them (836 µs, not 0.001 s),
// and a last second that was only half a second drawn at its own rate
// instead of as a fall to half.
func TestHTMLReportReadable(t *testing.T) {
	r := NewResult()
	r.Mode, r.Duration = "closed", 2500*time.Millisecond
	for _, n := range []int{60270, 60000, 30100} { // the last is half a second's worth
		sec := Second{Latency: newHistogram(), Requests: int64(n)}
		for range 100 {
			sec.Latency.RecordValue(836)
			r.Latency.RecordValue(836)
		}
		r.Seconds = append(r.Seconds, sec)
	}
	var b strings.Builder
	if err := WriteHTML(&b, r, []string{"run.stl"}); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, want := range []string{">836 µs<", ">20k<", ">40k<", ">60k<", ">80k<", ">latency (µs)<", ">req/s<", ">seconds<"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	for _, bad := range []string{"e+0", "e-0", ">0.001<", ">8.669<"} {
		if strings.Contains(page, bad) {
			t.Errorf("page holds %q", bad)
		}
	}
	// The rate of the last half second is 60,200/s: its point sits level
	// with the others, not at half height.
	rps := page[strings.Index(page, `aria-label="requests per second"`):]
	rps = rps[strings.Index(rps, `points="`)+8:]
	pts := strings.Fields(rps[:strings.Index(rps, `"`)])
	if len(pts) != 3 {
		t.Fatalf("rps points %v, want 3", pts)
	}
	y := func(p string) float64 {
		v, err := strconv.ParseFloat(p[strings.Index(p, ",")+1:], 64)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if d := math.Abs(y(pts[2]) - y(pts[1])); d > 2 {
		t.Errorf("last point %s drawn %.1f px from %s; want level", pts[2], d, pts[1])
	}
}

// TestHTMLShowsFailures: a run where half the requests failed does not
// look clean: the page gives the status codes, the errors by cause, the
// unfinished requests and the note that the service did not hold.
func TestHTMLShowsFailures(t *testing.T) {
	r := fixedResult([]int64{1000, 2000, 3000, 4000}, 200)
	r.Status[503] = 2
	r.Latency.RecordValue(5000)
	r.Latency.RecordValue(5000)
	r.Errors[ErrClosed] = 6
	r.Unfinished = 3
	var b strings.Builder
	if err := WriteHTML(&b, r, []string{"run.stl"}); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, want := range []string{
		"<td>6</td><td>6</td><td>3</td><td>66.67%</td>", // 6 answered, 6 failed, 3 unfinished; 2 503s + 6 closed of 12
		"<tr><td>200</td><td>4</td></tr>", "<tr><td>503</td><td>2</td></tr>", "<tr><td>closed</td><td>6</td></tr>",
		"66.7% of the requests failed: the service did not hold this load",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
}

// TestErrorCausesNamed: running out of descriptors or of local ports is
// named, with the fix, not lumped in with "other".
func TestErrorCausesNamed(t *testing.T) {
	for err, want := range map[error]string{
		&net.OpError{Op: "dial", Err: os.NewSyscallError("socket", syscall.EMFILE)}:         ErrTooManyFiles,
		&net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.EADDRNOTAVAIL)}: ErrNoLocalPort,
		&net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}:  ErrConnectRefused,
	} {
		if got := classify(err); got != want {
			t.Errorf("classify(%v) = %s, want %s", err, got, want)
		}
	}
	rep := Report{Requests: 10, Errors: map[string]int64{ErrTooManyFiles: 4}, ErrorRate: 0.4}
	if n := rep.Notes(); len(n) != 2 || !strings.Contains(n[0], "raise ulimit -n, or spread the crowd over processes with --procs") {
		t.Errorf("notes %q", n)
	}
}
