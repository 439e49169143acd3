package load

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latencies are recorded in microseconds, from 1 µs to 10 minutes, to
// three significant figures.
const (
	minLatencyUS = 1
	maxLatencyUS = 600_000_000
	sigFigs      = 3
)

func newHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(minLatencyUS, maxLatencyUS, sigFigs)
}

// Error classes, as reported.
const (
	ErrConnectRefused = "connect_refused"
	ErrTimeout        = "timeout"
	ErrReset          = "reset"
	ErrClosed         = "closed"
	ErrMalformed      = "malformed"
	// ErrTooManyFiles: the generator ran out of file descriptors (raise
	// ulimit -n, or spread the crowd with --procs).
	ErrTooManyFiles = "too_many_open_files"
	// ErrNoLocalPort: no local port was free for a new connection (too
	// many in TIME_WAIT: use --source-ips).
	ErrNoLocalPort = "no_local_port"
	ErrOther       = "other"
)

// classify names the class of a transport error.
func classify(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return ErrTooManyFiles
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return ErrNoLocalPort
	case errors.Is(err, syscall.ECONNREFUSED):
		return ErrConnectRefused
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return ErrTimeout
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return ErrReset
	case errors.Is(err, errClosed), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return ErrClosed
	case errors.Is(err, errMalformed):
		return ErrMalformed
	}
	return ErrOther
}

// SaleCounts are the flash-sale scenario's outcomes, one per purchase.
type SaleCounts struct {
	Acknowledged  int64 `json:"acknowledged"`
	SoldOut       int64 `json:"sold_out"`
	LimitExceeded int64 `json:"limit_exceeded"`
	// Unsettled purchases had no definitive answer (only 503s or transport
	// errors) when their timeout passed: the shop may have taken them.
	Unsettled int64 `json:"unsettled"`
	Other     int64 `json:"other"`
	// Retries counts attempts after each purchase's first.
	Retries int64 `json:"retries"`
}

func (s *SaleCounts) add(o SaleCounts) {
	s.Acknowledged += o.Acknowledged
	s.SoldOut += o.SoldOut
	s.LimitExceeded += o.LimitExceeded
	s.Unsettled += o.Unsettled
	s.Other += o.Other
	s.Retries += o.Retries
}

// window is what workers record between two ticks of the reporter.
type window struct {
	hist     *hdrhistogram.Histogram
	status   [600]int64
	errors   map[string]int64
	bytesIn  int64
	bytesOut int64
	// unfinished counts requests cut off by the run's end; completions
	// the requests answered or failed, and busyUS their summed time from
	// intended send to end (for Little's law).
	unfinished, completions, busyUS int64
	// unfinishedUS is the unfinished requests' time within the measured
	// run, oldestUS the age of the oldest at the end.
	unfinishedUS, oldestUS int64
	sale                   SaleCounts
	orders                 []string
}

func newWindow() *window {
	return &window{hist: newHistogram(), errors: map[string]int64{}}
}

func (w *window) reset() {
	w.hist.Reset()
	w.status = [600]int64{}
	clear(w.errors)
	w.bytesIn, w.bytesOut, w.sale, w.orders = 0, 0, SaleCounts{}, w.orders[:0]
	w.unfinished, w.completions, w.busyUS, w.unfinishedUS, w.oldestUS = 0, 0, 0, 0, 0
}
