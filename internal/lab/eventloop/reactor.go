// Package eventloop is the lab's chapter 5 experiment on the event loop:
// a real epoll reactor (golang.org/x/sys/unix) serving HTTP/1.1
// keep-alive connections on one thread, in the three phases the guide
// describes (timers due, wait for I/O, run the ready callbacks), with
// every iteration recorded; then the same connections against Go's
// net/http, a goroutine per connection, for memory, requests per second,
// and what one blocking callback does to everyone else.
package eventloop

import (
	"bytes"
	"container/heap"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Iteration is one turn of the loop.
type Iteration struct {
	N         int     `json:"n"`
	AtUS      float64 `json:"atUs"`   // since the loop started
	WaitUS    float64 `json:"waitUs"` // in epoll_wait
	TimeoutMS int     `json:"timeoutMs"`
	Ready     int     `json:"ready"` // descriptors epoll_wait returned
	Accepted  int     `json:"accepted"`
	Timers    int     `json:"timers"`    // timers that fired
	Callbacks int     `json:"callbacks"` // requests handled
	WorkUS    float64 `json:"workUs"`    // time in callbacks and timers
	// Queue lists, for the first iterations, what ran: "timer tick",
	// "accept fd 7", "request on fd 9: GET /"…
	Queue []string `json:"queue,omitempty"`
}

// Totals add up every iteration.
type Totals struct {
	Iterations int     `json:"iterations"`
	WaitMS     float64 `json:"waitMs"`
	WorkMS     float64 `json:"workMs"`
	Ready      int     `json:"ready"`
	Callbacks  int     `json:"callbacks"`
	Timers     int     `json:"timers"`
	Accepted   int     `json:"accepted"`
}

// conn is a client connection's state: what has been read and not yet
// answered, and what is written but not yet sent.
type conn struct {
	fd  int
	in  []byte
	out []byte
}

type timer struct {
	at    time.Time
	name  string
	every time.Duration
}

type timers []timer

func (t timers) Len() int           { return len(t) }
func (t timers) Less(i, j int) bool { return t[i].at.Before(t[j].at) }
func (t timers) Swap(i, j int)      { t[i], t[j] = t[j], t[i] }
func (t *timers) Push(x any)        { *t = append(*t, x.(timer)) }
func (t *timers) Pop() any {
	old := *t
	x := old[len(old)-1]
	*t = old[:len(old)-1]
	return x
}

// Reactor is the event loop. Start it with Serve; Stop ends it.
type Reactor struct {
	lfd, epfd int
	wake      int // an eventfd Stop writes to
	Addr      string
	conns     map[int]*conn
	timers    timers
	stop      atomic.Bool
	done      chan struct{}
	// record makes GET /_record answer the iterations as JSON.
	record bool

	mu      sync.Mutex // guards what Serve records for readers
	iters   []Iteration
	keep    int // iterations kept in full
	totals  Totals
	started time.Time
}

// Listen opens the listening socket on a free loopback port.
func Listen(keep int) (*Reactor, error) {
	lfd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	unix.SetsockoptInt(lfd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	if err := unix.Bind(lfd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		unix.Close(lfd)
		return nil, fmt.Errorf("bind: %w", err)
	}
	if err := unix.Listen(lfd, 4096); err != nil {
		unix.Close(lfd)
		return nil, fmt.Errorf("listen: %w", err)
	}
	sa, err := unix.Getsockname(lfd)
	if err != nil {
		unix.Close(lfd)
		return nil, err
	}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		unix.Close(lfd)
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	wake, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(lfd)
		unix.Close(epfd)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	r := &Reactor{lfd: lfd, epfd: epfd, wake: wake, conns: map[int]*conn{}, done: make(chan struct{}), keep: keep,
		Addr: fmt.Sprintf("127.0.0.1:%d", sa.(*unix.SockaddrInet4).Port)}
	for _, fd := range []int{lfd, wake} {
		if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}); err != nil {
			r.closeAll()
			return nil, fmt.Errorf("epoll_ctl: %w", err)
		}
	}
	return r, nil
}

// Every adds a timer that fires every d, as a loop's housekeeping does.
func (r *Reactor) Every(name string, d time.Duration) {
	heap.Push(&r.timers, timer{at: time.Now().Add(d), name: name, every: d})
}

// Serve runs the loop on the calling goroutine, locked to its thread,
// until Stop. Requests are answered "ok"; a request for /block?ms=N holds
// the loop for N milliseconds, as a callback that blocks would.
func (r *Reactor) Serve() {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer close(r.done)
	defer r.closeAll()
	events := make([]unix.EpollEvent, 256)
	buf := make([]byte, 64<<10)
	r.mu.Lock()
	r.started = time.Now()
	r.mu.Unlock()
	for n := 0; !r.stop.Load(); n++ {
		it := Iteration{N: n, AtUS: us(time.Since(r.started)), TimeoutMS: -1}
		detail := n < r.keep
		// 1. Wait for I/O, no longer than until the next timer is due.
		if len(r.timers) > 0 {
			it.TimeoutMS = max(0, int(time.Until(r.timers[0].at).Milliseconds()))
		}
		t0 := time.Now()
		ready, err := unix.EpollWait(r.epfd, events, it.TimeoutMS)
		it.WaitUS = us(time.Since(t0))
		if err != nil && !errors.Is(err, unix.EINTR) {
			return
		}
		it.Ready = max(0, ready)
		work := time.Now()
		// 2. Timers that are due.
		for len(r.timers) > 0 && !r.timers[0].at.After(time.Now()) {
			t := heap.Pop(&r.timers).(timer)
			it.Timers++
			if detail {
				it.Queue = append(it.Queue, "timer "+t.name)
			}
			if t.every > 0 {
				t.at = t.at.Add(t.every)
				heap.Push(&r.timers, t)
			}
		}
		// 3. The callbacks of the descriptors that are ready.
		for _, ev := range events[:it.Ready] {
			fd := int(ev.Fd)
			switch fd {
			case r.wake:
				continue
			case r.lfd:
				for {
					cfd, _, err := unix.Accept4(r.lfd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
					if err != nil {
						break
					}
					unix.SetsockoptInt(cfd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
					if unix.EpollCtl(r.epfd, unix.EPOLL_CTL_ADD, cfd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(cfd)}) != nil {
						unix.Close(cfd)
						continue
					}
					r.conns[cfd] = &conn{fd: cfd}
					it.Accepted++
					if detail {
						it.Queue = append(it.Queue, fmt.Sprintf("accept: fd %d", cfd))
					}
				}
			default:
				c := r.conns[fd]
				if c == nil {
					continue
				}
				if ev.Events&unix.EPOLLOUT != 0 {
					r.flush(c)
				}
				if ev.Events&(unix.EPOLLIN|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
					it.Callbacks += r.readable(c, buf, detail, &it.Queue)
				}
			}
		}
		it.WorkUS = us(time.Since(work))
		r.mu.Lock()
		if detail {
			r.iters = append(r.iters, it)
		}
		t := &r.totals
		t.Iterations++
		t.WaitMS += it.WaitUS / 1e3
		t.WorkMS += it.WorkUS / 1e3
		t.Ready += it.Ready
		t.Callbacks += it.Callbacks
		t.Timers += it.Timers
		t.Accepted += it.Accepted
		r.mu.Unlock()
	}
}

var response = []byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok")

// readable reads what a connection has and answers every complete
// request in it; it returns how many it answered.
func (r *Reactor) readable(c *conn, buf []byte, detail bool, queue *[]string) int {
	for {
		n, err := unix.Read(c.fd, buf)
		if n > 0 {
			c.in = append(c.in, buf[:n]...)
		}
		if n == 0 || (err != nil && err != unix.EAGAIN && err != unix.EINTR) {
			r.drop(c)
			return 0
		}
		if err != nil || n < len(buf) {
			break
		}
	}
	answered := 0
	for {
		end := bytes.Index(c.in, []byte("\r\n\r\n"))
		if end < 0 {
			if len(c.in) > 16<<10 { // no request line and headers this long
				r.drop(c)
			}
			return answered
		}
		line, _, _ := bytes.Cut(c.in[:end], []byte("\r\n"))
		if detail {
			*queue = append(*queue, fmt.Sprintf("request on fd %d: %s", c.fd, line))
		}
		if r.record && bytes.HasPrefix(line, []byte("GET /_record ")) {
			iters, totals := r.Record()
			body, _ := json.Marshal(record{iters, totals})
			c.out = fmt.Appendf(c.out, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nContent-Type: application/json\r\n\r\n", len(body))
			c.out = append(c.out, body...)
			c.in = c.in[end+4:]
			answered++
			r.flush(c)
			continue
		}
		// The blocking callback: what a loop must never run.
		if ms, ok := blockFor(line); ok {
			time.Sleep(time.Duration(ms) * time.Millisecond)
		}
		c.in = c.in[end+4:]
		c.out = append(c.out, response...)
		answered++
		r.flush(c)
	}
}

// blockFor reads N from a request line "GET /block?ms=N HTTP/1.1".
func blockFor(line []byte) (int, bool) {
	_, rest, ok := bytes.Cut(line, []byte("/block?ms="))
	if !ok {
		return 0, false
	}
	num, _, _ := bytes.Cut(rest, []byte(" "))
	ms, err := strconv.Atoi(string(num))
	if err != nil || ms < 0 || ms > 5000 {
		return 0, false
	}
	return ms, true
}

// flush writes what it can; the rest waits for EPOLLOUT.
func (r *Reactor) flush(c *conn) {
	for len(c.out) > 0 {
		n, err := unix.Write(c.fd, c.out)
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			unix.EpollCtl(r.epfd, unix.EPOLL_CTL_MOD, c.fd, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT, Fd: int32(c.fd)})
			return
		}
		if err != nil {
			r.drop(c)
			return
		}
		c.out = c.out[n:]
	}
	c.out = c.out[:0]
}

func (r *Reactor) drop(c *conn) {
	unix.EpollCtl(r.epfd, unix.EPOLL_CTL_DEL, c.fd, nil)
	unix.Close(c.fd)
	delete(r.conns, c.fd)
}

// Stop ends the loop and waits for it to close every descriptor.
func (r *Reactor) Stop() {
	r.stop.Store(true)
	var one [8]byte
	one[0] = 1
	unix.Write(r.wake, one[:])
	<-r.done
}

func (r *Reactor) closeAll() {
	for _, c := range r.conns {
		unix.Close(c.fd)
	}
	r.conns = map[int]*conn{}
	unix.Close(r.lfd)
	unix.Close(r.epfd)
	unix.Close(r.wake)
}

// Record returns the iterations kept in full and the totals so far.
func (r *Reactor) Record() ([]Iteration, Totals) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Iteration(nil), r.iters...), r.totals
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
