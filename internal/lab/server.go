package lab

import (
	"context"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

//go:embed web
var webFS embed.FS

// Web returns the page's files: plain HTML, CSS and JavaScript modules.
func Web() fs.FS {
	sub, err := fs.Sub(webFS, "web")
	if err != nil {
		panic(err) // the embed pattern guarantees the directory
	}
	return sub
}

// Limits of the run table: a run that is created but never streamed is
// dropped after pendingTTL (the page streams it at once), and at most
// maxPending may wait to be streamed, maxPendingPerClient of them from one
// client address, so that one client cannot lock the others out.
const (
	pendingTTL          = 10 * time.Second
	maxPending          = 64
	maxPendingPerClient = 16
)

// Limits of the runs under way: heavy ones (which load the machine on
// purpose) one at a time, the others a few per core; maxWaiting more of
// each may wait their turn.
const maxWaiting = 32

func lightSlots() int { return max(2, runtime.NumCPU()) }

// Server serves the lab: the page and the experiments' API.
type Server struct {
	exps    []Experiment
	byID    map[string]Experiment
	machine Machine
	log     *slog.Logger
	queue   Queue // heavy runs
	light   Queue // the others

	mu      sync.Mutex
	pending map[string]*pendingRun
	active  map[string]context.CancelFunc
	wg      sync.WaitGroup

	// AllowHosts are names, besides IP addresses and localhost, that the
	// lab answers to (--allow-host).
	AllowHosts []string
}

type pendingRun struct {
	exp     Experiment
	values  Values
	created time.Time
	client  string // the address it was created from
}

// NewServer returns a server for exps. IDs must be unique. Set AllowHosts
// before calling Handler to let the lab answer to names besides its IP
// addresses and localhost.
func NewServer(log *slog.Logger, exps ...Experiment) *Server {
	s := &Server{
		exps:    exps,
		byID:    make(map[string]Experiment, len(exps)),
		machine: ReadMachine(),
		log:     log,
		pending: map[string]*pendingRun{},
		active:  map[string]context.CancelFunc{},
		queue:   Queue{Slots: 1, MaxWaiting: maxWaiting},
		light:   Queue{Slots: lightSlots(), MaxWaiting: maxWaiting},
	}
	for _, e := range exps {
		id := e.Info().ID
		if _, dup := s.byID[id]; dup {
			panic("lab: duplicate experiment id " + id)
		}
		s.byID[id] = e
	}
	return s
}

// Handler returns the lab's routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /", http.FileServerFS(Web()))
	mux.HandleFunc("GET /api/experiments", s.list)
	mux.HandleFunc("GET /api/machine", func(w http.ResponseWriter, r *http.Request) {
		m := s.machine
		m.GOMAXPROCS = runtime.GOMAXPROCS(0)
		writeJSON(w, http.StatusOK, m)
	})
	mux.HandleFunc("GET /api/queue", func(w http.ResponseWriter, r *http.Request) {
		st := s.queue.State()
		others := s.light.State()
		st.Others = &others
		writeJSON(w, http.StatusOK, st)
	})
	mux.HandleFunc("POST /api/experiments/{id}/runs", s.create)
	mux.HandleFunc("GET /api/runs/{run}/events", s.stream)
	mux.HandleFunc("DELETE /api/runs/{run}", s.cancel)
	return guard(mux, s.AllowHosts)
}

// Wait blocks until every run the server started has returned.
func (s *Server) Wait() { s.wg.Wait() }

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	infos := make([]Info, len(s.exps))
	for i, e := range s.exps {
		infos[i] = e.Info()
	}
	writeJSON(w, http.StatusOK, infos)
}

// apiError is the body of every error answer.
type apiError struct {
	Error any `json:"error"`
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, apiError{Error: map[string]string{"code": code, "message": msg}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) create(w http.ResponseWriter, r *http.Request) {
	exp, ok := s.byID[r.PathValue("id")]
	if !ok {
		writeError(w, http.StatusNotFound, "unknown_experiment", fmt.Sprintf("no experiment %q", r.PathValue("id")))
		return
	}
	raw := map[string]any{}
	if r.ContentLength != 0 {
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
		if err := dec.Decode(&raw); err != nil {
			writeError(w, http.StatusBadRequest, "bad_json", "the body must be a JSON object of parameters: "+err.Error())
			return
		}
		if _, err := dec.Token(); err != io.EOF {
			writeError(w, http.StatusBadRequest, "bad_json", "the body must be one JSON object of parameters, with nothing after it")
			return
		}
	}
	values, err := Resolve(exp.Info().Params, raw)
	if err != nil {
		var pe *ParamError
		if errors.As(err, &pe) {
			writeJSON(w, http.StatusUnprocessableEntity, apiError{Error: pe})
			return
		}
		writeError(w, http.StatusUnprocessableEntity, CodeBadParam, err.Error())
		return
	}
	id := newRunID()
	client, _, _ := net.SplitHostPort(r.RemoteAddr)
	s.mu.Lock()
	mine := 0
	for k, p := range s.pending {
		switch {
		case time.Since(p.created) > pendingTTL:
			delete(s.pending, k)
		case p.client == client:
			mine++
		}
	}
	if len(s.pending) >= maxPending || mine >= maxPendingPerClient {
		s.mu.Unlock()
		w.Header().Set("Retry-After", strconv.Itoa(int(pendingTTL/time.Second)))
		writeError(w, http.StatusServiceUnavailable, "too_many_runs", fmt.Sprintf("too many runs are waiting to be streamed (%d from this client); a run not streamed within %v is dropped", mine, pendingTTL))
		return
	}
	s.pending[id] = &pendingRun{exp: exp, values: values, created: time.Now(), client: client}
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, map[string]string{"id": id, "events": "/api/runs/" + id + "/events"})
}

func (s *Server) cancel(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("run")
	s.mu.Lock()
	cancel, running := s.active[id]
	_, waiting := s.pending[id]
	delete(s.pending, id)
	s.mu.Unlock()
	if !running && !waiting {
		writeError(w, http.StatusNotFound, "unknown_run", "no such run, or it has ended")
		return
	}
	if running {
		cancel()
	}
	w.WriteHeader(http.StatusNoContent)
}

// stream runs a created run and streams its events. The run lives as long
// as this request: when the page goes away, the run is cancelled.
func (s *Server) stream(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("run")
	s.mu.Lock()
	p, ok := s.pending[id]
	delete(s.pending, id)
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "unknown_run", "no such run, or it was already streamed")
		return
	}
	flusher, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, "no_streaming", "this connection cannot stream")
		return
	}
	s.wg.Add(1)
	defer s.wg.Done()
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	s.mu.Lock()
	s.active[id] = cancel
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.active, id)
		s.mu.Unlock()
	}()

	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	sink := newSink(func(e Event) error {
		e.RunID = id
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
			return err
		}
		flusher.Flush()
		return nil
	}, cancel)
	defer sink.close()

	info := p.exp.Info()
	q := &s.light
	if info.Heavy {
		q = &s.queue
	}
	release, err := q.Acquire(ctx, QueueEntry{Run: id, Experiment: info.ID}, func(ahead int, running QueueEntry) {
		sink.emit(Event{Kind: KindQueued, Position: ahead,
			Message: fmt.Sprintf("waiting: %d run(s) ahead; %s is running", ahead, running.Experiment)})
	})
	if errors.Is(err, ErrQueueFull) {
		sink.emit(Event{Kind: KindError, Message: err.Error()})
		sink.emit(Event{Kind: KindEnd})
		return
	}
	if err != nil {
		return // the page went away while waiting
	}
	defer release()
	start := time.Now()
	err = Execute(ctx, p.exp, p.values, s.machine, sink.emit)
	switch {
	case ctx.Err() != nil:
		s.log.Info("lab run cancelled", "experiment", info.ID, "run", id, "after", time.Since(start).Round(time.Millisecond))
		sink.emit(Event{Kind: KindError, Message: "cancelled"})
	case err != nil:
		s.log.Warn("lab run failed", "experiment", info.ID, "run", id, "err", err)
		sink.emit(Event{Kind: KindError, Message: err.Error()})
	default:
		s.log.Info("lab run done", "experiment", info.ID, "run", id, "took", time.Since(start).Round(time.Millisecond))
	}
	sink.emit(Event{Kind: KindEnd})
}

func newRunID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// sink serialises events from many goroutines and drops them once closed,
// so a stray emit after Run returns cannot touch a finished response.
type sink struct {
	mu     sync.Mutex
	write  func(Event) error
	onFail func()
	closed bool
}

func newSink(write func(Event) error, onFail func()) *sink {
	return &sink{write: write, onFail: onFail}
}

func (s *sink) emit(e Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	if err := s.write(e); err != nil {
		s.closed = true
		s.onFail()
	}
}

func (s *sink) close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
}

// Execute runs exp with checked values, emitting a start event, the
// experiment's own events and, on its result, the machine it ran on.
// It is what both the server and `stampede bench` call.
func Execute(ctx context.Context, exp Experiment, values Values, m Machine, emit func(Event)) error {
	m.GOMAXPROCS = runtime.GOMAXPROCS(0)
	start := m
	emit(Event{Kind: KindStart, Machine: &start, Message: exp.Info().Title})
	var results atomic.Int32
	err := exp.Run(ctx, values, func(e Event) {
		if e.Kind == KindResult {
			results.Add(1)
			mm := m
			e.Machine = &mm
		}
		emit(e)
	})
	if err == nil && ctx.Err() == nil && results.Load() == 0 {
		return fmt.Errorf("experiment %s returned no result", exp.Info().ID)
	}
	return err
}
