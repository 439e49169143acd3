// Package api is the shop's HTTP API: its routes, the JSON it reads and
// writes, the status of each error code, and its Prometheus metrics. The
// domain it serves, shop.Service, knows nothing of HTTP.
package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/stampede-dev/stampede/internal/shop"
)

// Handler serves the shop's HTTP API. Create it with NewHandler.
type Handler struct {
	svc       *shop.Service
	storeKind string
	log       *slog.Logger
	mux       *http.ServeMux

	requests *prometheus.CounterVec
	counters sync.Map // routeCode → prometheus.Counter
	latency  prometheus.Histogram
	inFlight prometheus.Gauge
	shed     prometheus.Counter
}

// NewHandler returns the API for svc. storeKind names the store in
// /healthz ("sqlite", "postgres"). Metrics go to a registry of the
// handler's own, served at /metrics.
func NewHandler(svc *shop.Service, storeKind string, log *slog.Logger) *Handler {
	h := &Handler{svc: svc, storeKind: storeKind, log: log, mux: http.NewServeMux()}
	reg := prometheus.NewRegistry()
	h.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "stampede_http_requests_total", Help: "HTTP requests by route pattern and status code.",
	}, []string{"route", "code"})
	h.latency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "stampede_order_duration_seconds", Help: "Time to answer POST /api/orders, shed requests included.",
		Buckets: prometheus.ExponentialBuckets(50e-6, 2, 18),
	})
	h.inFlight = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "stampede_orders_in_flight", Help: "Orders being placed now.",
	})
	h.shed = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "stampede_orders_shed_total", Help: "Orders refused with 503 overloaded.",
	})
	reg.MustRegister(h.requests, h.latency, h.inFlight, h.shed, stockCollector{svc.Store()},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	h.mux.HandleFunc("POST /api/products", h.createProduct)
	h.mux.HandleFunc("GET /api/products/{id}", h.getProduct)
	h.mux.HandleFunc("GET /api/products/{id}/orders", h.listOrders)
	h.mux.HandleFunc("POST /api/orders", h.placeOrder)
	h.mux.HandleFunc("GET /healthz", h.health)
	h.mux.HandleFunc("GET /readyz", h.ready)
	h.mux.HandleFunc("/", h.noRoute)
	h.mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return h
}

// ServeHTTP implements http.Handler and counts every request by the route
// pattern it matched.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
	if !cleanPath(r.URL.Path) {
		// ServeMux would answer a redirect to the cleaned path, in HTML;
		// an API client is better told in its own shape.
		writeError(sw, shop.NewError(shop.CodeNotFound, "no such route: "+r.URL.Path+" (a path holds no ., .. or empty segments)"))
		h.counter("unmatched", sw.code).Inc()
		return
	}
	h.mux.ServeHTTP(sw, r)
	route := r.Pattern
	if route == "" || route == "/" {
		route = "unmatched"
	}
	h.counter(route, sw.code).Inc()
}

// cleanPath reports whether p is a path ServeMux would route as it is,
// without redirecting to a cleaned form.
func cleanPath(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	c := path.Clean(p)
	if p[len(p)-1] == '/' && c != "/" {
		c += "/"
	}
	return c == p
}

// counter returns the request counter of a route and status, looked up by
// label values once and then kept: WithLabelValues hashes its labels on
// every call.
func (h *Handler) counter(route string, code int) prometheus.Counter {
	k := routeCode{route, code}
	if c, ok := h.counters.Load(k); ok {
		return c.(prometheus.Counter)
	}
	c, _ := h.counters.LoadOrStore(k, h.requests.WithLabelValues(route, strconv.Itoa(code)))
	return c.(prometheus.Counter)
}

type routeCode struct {
	route string
	code  int
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (h *Handler) createProduct(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	np, derr := DecodeProduct(body)
	if derr != nil {
		writeError(w, derr)
		return
	}
	p, err := h.svc.Store().CreateProduct(r.Context(), np)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, p)
}

func (h *Handler) getProduct(w http.ResponseWriter, r *http.Request) {
	id, derr := ParseProductID(r.PathValue("id"))
	if derr != nil {
		writeError(w, derr)
		return
	}
	p, err := h.svc.Store().Product(r.Context(), id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

// listOrders streams a product's orders as JSON lines. A failure after the
// first line can only be reported by cutting the stream short, so a client
// should check the count against the product's sold figure.
func (h *Handler) listOrders(w http.ResponseWriter, r *http.Request) {
	id, derr := ParseProductID(r.PathValue("id"))
	if derr != nil {
		writeError(w, derr)
		return
	}
	if _, err := h.svc.Store().Product(r.Context(), id); err != nil {
		h.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	bw := bufio.NewWriterSize(w, 32<<10)
	enc := json.NewEncoder(bw)
	err := h.svc.Store().Orders(r.Context(), id, func(o shop.Order) error { return enc.Encode(o) })
	if err == nil {
		err = bw.Flush()
	}
	if err != nil && r.Context().Err() == nil {
		h.log.Error("stream orders", "product", id, "err", err)
	}
}

func (h *Handler) placeOrder(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	h.inFlight.Inc()
	defer func() {
		h.inFlight.Dec()
		h.latency.Observe(time.Since(start).Seconds())
	}()
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	req, derr := DecodeOrder(body)
	if derr != nil {
		writeError(w, derr)
		return
	}
	switch keys := r.Header["Idempotency-Key"]; len(keys) {
	case 0:
	case 1:
		req.IdempotencyKey = keys[0]
	default:
		writeError(w, shop.NewError(shop.CodeBadRequest, "one Idempotency-Key header, not "+strconv.Itoa(len(keys))))
		return
	}
	if !ValidKey(req.IdempotencyKey) {
		writeError(w, shop.NewError(shop.CodeInvalidValue, "Idempotency-Key must be UTF-8 text without control characters, at most "+strconv.Itoa(MaxIdemKeyLen)+" bytes"))
		return
	}
	o, created, err := h.svc.PlaceOrder(r.Context(), req)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	bp := answerPool.Get().(*[]byte)
	defer answerPool.Put(bp)
	if b, ok := appendOrder((*bp)[:0], o); ok {
		*bp = append(b, '\n')
		writeBody(w, status, *bp)
		return
	}
	writeJSON(w, status, o)
}

// answerPool holds the buffers orders are answered from.
var answerPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// noRoute answers what no route serves, in the API's own error shape: 405
// with Allow when the path exists for other methods, 404 otherwise.
func (h *Handler) noRoute(w http.ResponseWriter, r *http.Request) {
	var allow []string
	for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE"} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, p := h.mux.Handler(probe); p != "" && p != "/" {
			allow = append(allow, m)
		}
	}
	if len(allow) == 0 {
		writeError(w, shop.NewError(shop.CodeNotFound, "no such route: "+r.URL.Path))
		return
	}
	w.Header().Set("Allow", strings.Join(allow, ", "))
	writeError(w, shop.NewError(shop.CodeMethodNotAllowed, r.Method+" is not served here; use "+strings.Join(allow, " or ")))
}

// ready answers whether the shop can take orders: /healthz says the
// process lives, /readyz that its backends answer.
func (h *Handler) ready(w http.ResponseWriter, r *http.Request) {
	if err := h.svc.Ready(); err != nil {
		w.Header()["Retry-After"] = retryAfter
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (h *Handler) health(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"status":     "ok",
		"goroutines": runtime.NumGoroutine(),
		"strategy":   h.svc.Strategy().Name(),
		"store":      h.storeKind,
		"pid":        os.Getpid(),
	})
}

// fail reports err: an *shop.Error as itself, anything else as an internal
// error whose detail goes to the log, not to the client.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	var e *shop.Error
	if !errors.As(err, &e) {
		if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
			return // the client has gone; nobody reads the answer
		}
		h.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		e = shop.NewError(shop.CodeInternal, "internal error; see the shop's log")
	}
	if e.Code == shop.CodeOverloaded {
		h.shed.Inc()
	}
	writeError(w, e)
}

func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, shop.NewError(shop.CodeBodyTooLarge, "body is over "+strconv.Itoa(MaxBodyBytes)+" bytes"))
		} else {
			writeError(w, shop.NewError(shop.CodeBadRequest, "could not read the body"))
		}
		return nil, false
	}
	return body, true
}

func writeError(w http.ResponseWriter, e *shop.Error) {
	if status(e) == http.StatusServiceUnavailable {
		w.Header()["Retry-After"] = retryAfter
	}
	writeBody(w, status(e), errorBody(e))
}

var (
	retryAfter = []string{"1"}
	jsonType   = []string{"application/json"}
)

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":{"code":"internal","message":"could not encode the answer"}}`)
	}
	writeBody(w, status, append(b, '\n'))
}

// writeBody writes a JSON answer that ends in a newline.
func writeBody(w http.ResponseWriter, status int, b []byte) {
	h := w.Header()
	h["Content-Type"] = jsonType
	h["Content-Length"] = []string{strconv.Itoa(len(b))}
	w.WriteHeader(status)
	w.Write(b)
}

// stockCollector reports the stock of the first products at each scrape.
type stockCollector struct{ store shop.Store }

var stockDesc = prometheus.NewDesc("stampede_product_stock", "Units left, per product (the first 100 products).", []string{"product"}, nil)

func (c stockCollector) Describe(ch chan<- *prometheus.Desc) { ch <- stockDesc }

func (c stockCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	ps, err := c.store.Products(ctx, 100)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(stockDesc, err)
		return
	}
	for _, p := range ps {
		ch <- prometheus.MustNewConstMetric(stockDesc, prometheus.GaugeValue, float64(p.Stock), strconv.FormatInt(p.ID, 10))
	}
}
