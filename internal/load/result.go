package load

import (
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Result is everything a run measured. It is what a .stl file holds, and
// results from several processes or machines merge exactly: histograms add.
type Result struct {
	Started   time.Time
	Duration  time.Duration
	Mode      string // "closed" or "open"
	Target    string
	Latency   *hdrhistogram.Histogram // µs, from each request's intended send time
	Status    map[int]int64
	Errors    map[string]int64
	BytesIn   int64
	BytesOut  int64
	Sale      *SaleCounts     // nil unless the flash-sale scenario ran
	Orders    map[string]bool // acknowledged order ids (flash sale)
	Seconds   []Second        // one per second of the run
	TargetRPS float64         // the open model's mean target rate, or 0
	// Unfinished counts requests still unanswered when the run's time
	// ended: neither answers nor errors, and not in the rate.
	Unfinished int64
	// Completions counts requests answered or failed, and BusyMicros their
	// summed time from intended send to answer: with the users and their
	// think time, Little's law checks the run (see Report.LittleUsers).
	Completions, BusyMicros int64
	// UnfinishedMicros is the unfinished requests' time within the
	// measured run; OldestUnfinishedMicros the age of the oldest at the end.
	UnfinishedMicros, OldestUnfinishedMicros int64
	Users                                    int     // closed model: virtual users, or 0
	ThinkSeconds                             float64 // closed model: think time
	Generator                                GeneratorLoad
}

// Second is one second of a run.
type Second struct {
	Requests int64
	Errors   int64
	Latency  *hdrhistogram.Histogram
}

// NewResult returns an empty Result.
func NewResult() *Result {
	return &Result{Latency: newHistogram(), Status: map[int]int64{}, Errors: map[string]int64{}, Orders: map[string]bool{}}
}

// Requests counts requests answered or failed.
func (r *Result) Requests() int64 {
	n := r.Latency.TotalCount()
	for _, e := range r.Errors {
		n += e
	}
	return n
}

// Merge adds o into r. Durations take the longer; seconds add by index,
// so runs started together line up.
func (r *Result) Merge(o *Result) {
	if r.Started.IsZero() || (!o.Started.IsZero() && o.Started.Before(r.Started)) {
		r.Started = o.Started
	}
	r.Duration = max(r.Duration, o.Duration)
	if r.Mode == "" {
		r.Mode, r.Target = o.Mode, o.Target
	}
	r.TargetRPS += o.TargetRPS
	r.Latency.Merge(o.Latency)
	for k, v := range o.Status {
		r.Status[k] += v
	}
	for k, v := range o.Errors {
		r.Errors[k] += v
	}
	r.BytesIn += o.BytesIn
	r.BytesOut += o.BytesOut
	r.Unfinished += o.Unfinished
	r.Completions += o.Completions
	r.BusyMicros += o.BusyMicros
	r.UnfinishedMicros += o.UnfinishedMicros
	r.OldestUnfinishedMicros = max(r.OldestUnfinishedMicros, o.OldestUnfinishedMicros)
	r.Users += o.Users
	r.ThinkSeconds = max(r.ThinkSeconds, o.ThinkSeconds)
	r.Generator.CPUCores += o.Generator.CPUCores
	r.Generator.Cap += o.Generator.Cap
	r.Generator.Busy = max(r.Generator.Busy, o.Generator.Busy)
	if o.Sale != nil {
		if r.Sale == nil {
			r.Sale = &SaleCounts{}
		}
		r.Sale.add(*o.Sale)
	}
	maps.Copy(r.Orders, o.Orders)
	for i, s := range o.Seconds {
		if i >= len(r.Seconds) {
			r.Seconds = append(r.Seconds, Second{Latency: newHistogram()})
		}
		r.Seconds[i].Requests += s.Requests
		r.Seconds[i].Errors += s.Errors
		r.Seconds[i].Latency.Merge(s.Latency)
	}
	if r.Sale != nil {
		r.Sale.Acknowledged = int64(len(r.Orders))
	}
}

// Report is the summary printed at the end of a run; --output json prints
// it as one object.
type Report struct {
	// Requests counts the requests answered or failed; Answered those
	// with an HTTP answer, of any status. RPS is Answered over the
	// measured time: errors are never throughput.
	Requests        int64            `json:"requests"`
	Answered        int64            `json:"answered"`
	DurationSeconds float64          `json:"duration_seconds"`
	RPS             float64          `json:"rps"`
	Latency         Percentiles      `json:"latency_seconds"`
	StatusCodes     map[string]int64 `json:"status_codes"`
	Errors          map[string]int64 `json:"errors"`
	// Unfinished requests were under way when the time ran out; the
	// oldest of them had waited OldestUnfinishedSeconds.
	Unfinished              int64   `json:"unfinished"`
	OldestUnfinishedSeconds float64 `json:"oldest_unfinished_seconds,omitempty"`
	// ErrorRate is the share of finished requests that failed: transport
	// errors and 5xx answers.
	ErrorRate float64 `json:"error_rate"`
	// Users and ThinkSeconds describe the closed model's crowd;
	// LittleUsers is what Little's law makes of the measurement,
	// throughput × (mean response time + think time): it should be the
	// users who ran. A shortfall means the users did not keep the load
	// they were meant to (a generator that could not keep up).
	Users        int           `json:"users,omitempty"`
	ThinkSeconds float64       `json:"think_seconds,omitempty"`
	LittleUsers  float64       `json:"little_users,omitempty"`
	Generator    GeneratorLoad `json:"generator"`
	BytesIn      int64         `json:"bytes_in"`
	BytesOut     int64         `json:"bytes_out"`
	Mode         string        `json:"mode"`
	TargetRPS    float64       `json:"target_rps,omitempty"`
	FlashSale    *SaleCounts   `json:"flash_sale,omitempty"`
	// Verdict, when the shop's books were read before and after, says
	// what the sale did to them.
	Verdict *Verdict `json:"sale_verdict,omitempty"`
}

// Percentiles of latency, in seconds.
type Percentiles struct {
	Min  float64 `json:"min"`
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P95  float64 `json:"p95"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	Max  float64 `json:"max"`
}

func percentiles(h *hdrhistogram.Histogram) Percentiles {
	if h.TotalCount() == 0 {
		return Percentiles{}
	}
	s := func(us int64) float64 { return float64(us) / 1e6 }
	return Percentiles{
		Min: s(h.Min()), Mean: math.Round(h.Mean()) / 1e6, Max: s(h.Max()),
		P50: s(h.ValueAtQuantile(50)), P90: s(h.ValueAtQuantile(90)), P95: s(h.ValueAtQuantile(95)),
		P99: s(h.ValueAtQuantile(99)), P999: s(h.ValueAtQuantile(99.9)),
	}
}

// Report summarises r.
func (r *Result) Report() Report {
	rep := Report{
		Requests:                r.Requests(),
		Answered:                r.Latency.TotalCount(),
		Unfinished:              r.Unfinished,
		OldestUnfinishedSeconds: float64(r.OldestUnfinishedMicros) / 1e6,
		Users:                   r.Users,
		ThinkSeconds:            r.ThinkSeconds,
		Generator:               r.Generator,
		DurationSeconds:         r.Duration.Seconds(),
		Latency:                 percentiles(r.Latency),
		StatusCodes:             map[string]int64{},
		Errors:                  map[string]int64{},
		BytesIn:                 r.BytesIn,
		BytesOut:                r.BytesOut,
		Mode:                    r.Mode,
		TargetRPS:               r.TargetRPS,
		FlashSale:               r.Sale,
	}
	failed := rep.Requests - rep.Answered
	for k, v := range r.Status {
		rep.StatusCodes[strconv.Itoa(k)] = v
		if k >= 500 {
			failed += v
		}
	}
	if rep.Requests > 0 {
		rep.ErrorRate = float64(failed) / float64(rep.Requests)
	}
	if d := r.Duration.Seconds(); d > 0 {
		rep.RPS = math.Round(float64(rep.Answered)/d*10) / 10
		if r.Users > 0 && r.Completions > 0 {
			// N = X·(R + Z): the time users spent waiting for answers
			// (those still unanswered at the end included), over the
			// run, plus the users thinking.
			x := float64(r.Completions) / d
			waiting := float64(r.BusyMicros+r.UnfinishedMicros) / 1e6 / d
			rep.LittleUsers = math.Round((waiting+x*r.ThinkSeconds)*10) / 10
		}
	}
	maps.Copy(rep.Errors, r.Errors)
	return rep
}

// WriteText prints the report for a person.
func (rep Report) WriteText(w io.Writer) {
	ms := func(s float64) string { return strconv.FormatFloat(s*1e3, 'f', 3, 64) + "ms" }
	fmt.Fprintf(w, "requests      %d answered in %.2fs, %.1f req/s (%s model", rep.Answered, rep.DurationSeconds, rep.RPS, rep.Mode)
	if rep.TargetRPS > 0 {
		fmt.Fprintf(w, ", target %.1f req/s", rep.TargetRPS)
	}
	if rep.Users > 0 {
		fmt.Fprintf(w, ", %d users", rep.Users)
		if rep.ThinkSeconds > 0 {
			fmt.Fprintf(w, " thinking %s", strconv.FormatFloat(rep.ThinkSeconds, 'g', 4, 64)+"s")
		}
	}
	fmt.Fprintln(w, ")")
	if failed := rep.Requests - rep.Answered; failed > 0 || rep.Unfinished > 0 {
		fmt.Fprintf(w, "not answered  %d failed (not counted in req/s), %d unfinished when the time ran out\n", failed, rep.Unfinished)
	}
	l := rep.Latency
	fmt.Fprintf(w, "latency       min %s  mean %s  p50 %s  p90 %s  p99 %s  p99.9 %s  max %s\n",
		ms(l.Min), ms(l.Mean), ms(l.P50), ms(l.P90), ms(l.P99), ms(l.P999), ms(l.Max))
	fmt.Fprintf(w, "status codes  %s\n", joinCounts(rep.StatusCodes))
	if len(rep.Errors) > 0 {
		fmt.Fprintf(w, "errors        %s\n", joinCounts(rep.Errors))
	}
	fmt.Fprintf(w, "bytes         in %d, out %d\n", rep.BytesIn, rep.BytesOut)
	if s := rep.FlashSale; s != nil {
		fmt.Fprintf(w, "flash sale    acknowledged %d, sold_out %d, limit_exceeded %d, unsettled %d, other %d; %d retries\n",
			s.Acknowledged, s.SoldOut, s.LimitExceeded, s.Unsettled, s.Other, s.Retries)
	}
	if v := rep.Verdict; v != nil {
		fmt.Fprintf(w, "verdict       %s\n", v.Line)
	}
	for _, note := range rep.Notes() {
		fmt.Fprintf(w, "note          %s\n", note)
	}
}

// LittleTolerance is how far Little's law may miss (as a share of the
// users) before a run counts as measured wrong: the run's edges alone
// leave up to one cycle (response plus think time) of each user uncounted.
func (rep Report) LittleTolerance() float64 {
	if rep.DurationSeconds <= 0 || rep.Requests == 0 {
		return 1
	}
	cycle := rep.Latency.Mean + rep.ThinkSeconds
	return 0.1 + cycle/rep.DurationSeconds
}

// LittleHolds reports whether the closed model's measurement passes
// Little's law: the users who ran equal throughput × (R + Z), within
// LittleTolerance. It holds trivially for the open model.
func (rep Report) LittleHolds() bool {
	if rep.Users == 0 || rep.LittleUsers == 0 {
		return true
	}
	return math.Abs(rep.LittleUsers-float64(rep.Users)) <= rep.LittleTolerance()*float64(rep.Users)
}

// Notes says, in a line each, what makes the run's figures doubtful: a
// generator that was its own limit, Little's law broken, errors.
func (rep Report) Notes() []string {
	var out []string
	if rep.Generator.Saturated() {
		out = append(out, fmt.Sprintf("the load generator was busy %.0f%% of the time it could use (%.2f cores): it, not the service, may have been the limit; give it a core of its own (see bench/usl.sh)",
			100*rep.Generator.Busy, rep.Generator.CPUCores))
	}
	if !rep.LittleHolds() {
		out = append(out, fmt.Sprintf("Little's law does not hold: %d users, but throughput × (response + think time) is %.1f; the users did not keep up the load they were meant to",
			rep.Users, rep.LittleUsers))
	}
	if n := rep.Errors[ErrTooManyFiles]; n > 0 {
		out = append(out, fmt.Sprintf("%d requests failed because the load generator ran out of file descriptors: raise ulimit -n, or spread the crowd over processes with --procs", n))
	}
	if n := rep.Errors[ErrNoLocalPort]; n > 0 {
		out = append(out, fmt.Sprintf("%d connections found no free local port (closed ones wait 60 s in TIME_WAIT): spread them over addresses with --source-ips 127.0.0.2-127.0.0.60", n))
	}
	if rep.ErrorRate > MaxErrorRate {
		out = append(out, fmt.Sprintf("%.1f%% of the requests failed: the service did not hold this load", 100*rep.ErrorRate))
	}
	if rep.Stuck() {
		out = append(out, fmt.Sprintf("requests still unanswered at the end had waited up to %s, 10× and more the p99 of those answered (%s): the latency shown leaves out the slowest (a full accept queue? a stall?)",
			time.Duration(rep.OldestUnfinishedSeconds*1e9).Round(time.Millisecond), time.Duration(rep.Latency.P99*1e9).Round(time.Microsecond)))
	}
	return out
}

// Stuck reports whether requests left unanswered at the end had waited
// far longer than the answered ones: 10 times their p99, and at least
// 50 ms. Their latency is in no percentile, so the percentiles understate
// the run.
func (rep Report) Stuck() bool {
	return rep.OldestUnfinishedSeconds > max(10*rep.Latency.P99, 0.05)
}

// MaxErrorRate is the share of failed requests past which a measurement
// says the service failed at that load, rather than how fast it was.
const MaxErrorRate = 0.01

func joinCounts(m map[string]int64) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, k+": "+strconv.FormatInt(m[k], 10))
	}
	return strings.Join(parts, ", ")
}

// The file format: gzip-compressed JSON, histograms as sparse
// [value_us, count] pairs.
type fileResult struct {
	Format    string           `json:"format"`
	Started   time.Time        `json:"started"`
	Duration  float64          `json:"duration_seconds"`
	Mode      string           `json:"mode"`
	Target    string           `json:"target"`
	TargetRPS float64          `json:"target_rps,omitempty"`
	Latency   [][2]int64       `json:"latency_us"`
	Status    map[string]int64 `json:"status_codes"`
	Errors    map[string]int64 `json:"errors"`
	BytesIn   int64            `json:"bytes_in"`
	BytesOut  int64            `json:"bytes_out"`
	Sale      *SaleCounts      `json:"flash_sale,omitempty"`
	Orders    []string         `json:"order_ids,omitempty"`
	Seconds   []fileSecond     `json:"seconds"`
	// Since format 1 was first written; absent in older files.
	Unfinished   int64         `json:"unfinished,omitempty"`
	UnfinishedUS int64         `json:"unfinished_us,omitempty"`
	OldestUS     int64         `json:"oldest_unfinished_us,omitempty"`
	Completions  int64         `json:"completions,omitempty"`
	BusyMicros   int64         `json:"busy_us,omitempty"`
	Users        int           `json:"users,omitempty"`
	ThinkSeconds float64       `json:"think_seconds,omitempty"`
	Generator    GeneratorLoad `json:"generator"`
}

type fileSecond struct {
	Requests int64      `json:"requests"`
	Errors   int64      `json:"errors"`
	Latency  [][2]int64 `json:"latency_us"`
}

const fileFormat = "stampede-load-result/1"

func sparse(h *hdrhistogram.Histogram) [][2]int64 {
	var out [][2]int64
	for _, b := range h.Distribution() {
		if b.Count > 0 {
			out = append(out, [2]int64{b.From, b.Count})
		}
	}
	return out
}

func dense(pairs [][2]int64) (*hdrhistogram.Histogram, error) {
	h := newHistogram()
	for _, p := range pairs {
		if err := h.RecordValues(p[0], p[1]); err != nil {
			return nil, err
		}
	}
	return h, nil
}

// WriteFile saves r as a .stl file.
func (r *Result) WriteFile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	zw := gzip.NewWriter(f)
	fr := fileResult{
		Format: fileFormat, Started: r.Started, Duration: r.Duration.Seconds(), Mode: r.Mode, Target: r.Target,
		TargetRPS: r.TargetRPS, Latency: sparse(r.Latency), Status: map[string]int64{}, Errors: r.Errors,
		BytesIn: r.BytesIn, BytesOut: r.BytesOut, Sale: r.Sale, Orders: slices.Sorted(maps.Keys(r.Orders)),
		Unfinished: r.Unfinished, UnfinishedUS: r.UnfinishedMicros, OldestUS: r.OldestUnfinishedMicros, Completions: r.Completions, BusyMicros: r.BusyMicros, Users: r.Users,
		ThinkSeconds: r.ThinkSeconds, Generator: r.Generator,
	}
	for k, v := range r.Status {
		fr.Status[strconv.Itoa(k)] = v
	}
	for _, s := range r.Seconds {
		fr.Seconds = append(fr.Seconds, fileSecond{Requests: s.Requests, Errors: s.Errors, Latency: sparse(s.Latency)})
	}
	err = json.NewEncoder(zw).Encode(fr)
	if cerr := zw.Close(); err == nil {
		err = cerr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// ReadFile loads a .stl file.
func ReadFile(path string) (*Result, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("%s is not a stampede result file: %w", path, err)
	}
	var fr fileResult
	if err := json.NewDecoder(zr).Decode(&fr); err != nil || fr.Format != fileFormat {
		return nil, fmt.Errorf("%s is not a stampede result file (%v)", path, err)
	}
	r := NewResult()
	r.Started, r.Duration, r.Mode, r.Target, r.TargetRPS = fr.Started, time.Duration(fr.Duration*float64(time.Second)), fr.Mode, fr.Target, fr.TargetRPS
	if r.Latency, err = dense(fr.Latency); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for k, v := range fr.Status {
		code, err := strconv.Atoi(k)
		if err != nil {
			return nil, fmt.Errorf("%s: status %q", path, k)
		}
		r.Status[code] = v
	}
	maps.Copy(r.Errors, fr.Errors)
	r.BytesIn, r.BytesOut, r.Sale = fr.BytesIn, fr.BytesOut, fr.Sale
	r.Unfinished, r.Completions, r.BusyMicros = fr.Unfinished, fr.Completions, fr.BusyMicros
	r.UnfinishedMicros, r.OldestUnfinishedMicros = fr.UnfinishedUS, fr.OldestUS
	r.Users, r.ThinkSeconds, r.Generator = fr.Users, fr.ThinkSeconds, fr.Generator
	for _, id := range fr.Orders {
		r.Orders[id] = true
	}
	for _, s := range fr.Seconds {
		h, err := dense(s.Latency)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		r.Seconds = append(r.Seconds, Second{Requests: s.Requests, Errors: s.Errors, Latency: h})
	}
	return r, nil
}
