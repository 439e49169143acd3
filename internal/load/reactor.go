package load

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// The epoll reactor runs the plain closed model (http, no think time, no
// stages, no flash sale) as wrk does: a few loops, one per core, each
// owning its connections and waiting for all of them in one epoll_wait.
// A request costs a write, a read and a share of one epoll_wait. Through Go's
// net package the same request costs a read more: the netpoller reads
// before it waits, so every answer is preceded by a read that finds
// nothing (EAGAIN), and a goroutine parks and wakes for it.
//
// Each loop is a goroutine making blocking epoll_wait calls; the runtime
// hands its P to other goroutines while it waits.

// Engines a run can ask for.
const (
	EngineAuto       = ""           // the reactor where it serves, else goroutines
	EngineEpoll      = "epoll"      // the reactor, or an error where it cannot serve
	EngineGoroutines = "goroutines" // a goroutine per virtual user over Go's net package
)

// reactorFits says why the reactor cannot run c, or nil.
func reactorFits(c *Config) error {
	switch {
	case c.open():
		return errors.New("the open model (--rate)")
	case c.Stages != nil:
		return errors.New("--stages")
	case c.Think > 0:
		return errors.New("--think")
	case c.Sale != nil:
		return errors.New("the flash-sale scenario")
	case c.Connections > 0 && c.Connections < c.Users:
		return errors.New("--connections below -c")
	}
	for _, t := range c.Targets {
		if t.URL.Scheme != "http" {
			return errors.New("https")
		}
	}
	return nil
}

// rconn is one virtual user of the reactor and its connection.
type rconn struct {
	fd      int // -1: none open
	target  int
	written int  // bytes of the request written
	writing bool // waiting for the socket to take the rest
	busy    bool // a request is under way
	served  int  // answers read on this connection
	resent  bool // this request is already on its second connection
	sent    time.Time
	p       parser
}

// loop is one reactor loop.
type loop struct {
	e       *engine
	sh      *shard
	epfd    int
	wake    int // an eventfd: written when the run stops or ends
	conns   []rconn
	addrs   []unix.Sockaddr // per target
	buf     []byte
	events  []unix.EpollEvent
	busy    int   // requests under way
	next    []int // users whose next request starts after this round of events
	spare   []int
	stopped atomic.Bool
	aborted atomic.Bool
}

// wakeTag marks the eventfd among the epoll events; connections are tagged
// with their index.
const wakeTag = -1

// runReactor runs users virtual users over loops reactor loops; ctx stops
// new requests, io abandons those under way.
func (e *engine) runReactor(ctx, io context.Context, stop context.CancelFunc, wg *sync.WaitGroup) error {
	users := e.cfg.Users
	n := min(runtime.GOMAXPROCS(0), users)
	loops := make([]*loop, 0, n)
	for i := range n {
		// Each loop has addresses of its own: a Sockaddr is scratch space
		// for the system call that takes it.
		addrs, err := sockaddrs(e.cfg.Targets)
		var l *loop
		if err == nil {
			l, err = e.newLoop(i, users/n+btoi(i < users%n), addrs)
		}
		if err != nil {
			for _, l := range loops {
				l.close()
			}
			return err
		}
		loops = append(loops, l)
	}
	// One watcher wakes every loop when the run stops and when it is
	// abandoned. The wake-up descriptors are closed only once the watcher
	// and every loop are done: a loop that ends early must not free a
	// number the watcher might still write to (and another loop reuse for
	// a connection).
	wg.Add(len(loops) + 2)
	watched := make(chan struct{})
	go func() {
		defer wg.Done()
		defer close(watched)
		for _, ch := range []<-chan struct{}{ctx.Done(), io.Done()} {
			select {
			case <-ch:
			case <-e.reactorDone:
				return
			}
			for _, l := range loops {
				if ch == ctx.Done() {
					l.stopped.Store(true)
				} else {
					l.aborted.Store(true)
				}
				unix.Write(l.wake, []byte{1, 0, 0, 0, 0, 0, 0, 0})
			}
		}
	}()
	var running sync.WaitGroup
	running.Add(len(loops))
	for _, l := range loops {
		go func() {
			defer wg.Done()
			defer running.Done()
			defer l.closeConns()
			l.run(stop)
		}()
	}
	go func() {
		defer wg.Done()
		running.Wait()
		close(e.reactorDone)
		<-watched
		for _, l := range loops {
			unix.Close(l.wake)
		}
	}()
	return nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// sockaddrs resolves each target's address once, before the run.
func sockaddrs(targets []Target) ([]unix.Sockaddr, error) {
	out := make([]unix.Sockaddr, len(targets))
	for i, t := range targets {
		a, err := net.ResolveTCPAddr("tcp", hostPort(t.URL))
		if err != nil {
			return nil, err
		}
		if ip4 := a.IP.To4(); ip4 != nil {
			sa := &unix.SockaddrInet4{Port: a.Port}
			copy(sa.Addr[:], ip4)
			out[i] = sa
		} else {
			sa := &unix.SockaddrInet6{Port: a.Port}
			copy(sa.Addr[:], a.IP.To16())
			out[i] = sa
		}
	}
	return out, nil
}

func (e *engine) newLoop(i, users int, addrs []unix.Sockaddr) (*loop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll: %w", err)
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: wakeTag}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(wake)
		return nil, fmt.Errorf("epoll: %w", err)
	}
	l := &loop{
		e: e, sh: e.shards[i%len(e.shards)], epfd: epfd, wake: wake, addrs: addrs,
		conns:  make([]rconn, users),
		buf:    make([]byte, 64<<10),
		events: make([]unix.EpollEvent, min(users, 1024)+1),
	}
	for u := range l.conns {
		l.conns[u] = rconn{fd: -1, target: (i + u) % len(addrs)}
	}
	return l, nil
}

// close closes everything the loop holds.
func (l *loop) close() {
	l.closeConns()
	unix.Close(l.wake)
}

// closeConns closes the loop's connections and its epoll descriptor.
func (l *loop) closeConns() {
	for i := range l.conns {
		if l.conns[i].fd >= 0 {
			unix.Close(l.conns[i].fd)
			l.conns[i].fd = -1
		}
	}
	unix.Close(l.epfd)
}

// run starts every user's first request and serves events until the run
// stops and nothing is under way, or it is abandoned.
func (l *loop) run(stop context.CancelFunc) {
	for u := range l.conns {
		l.next = append(l.next, u)
	}
	timeout := l.e.cfg.Timeout
	lastSweep := time.Now()
	// The run's hard end may abandon the loop (io ends with it): what is
	// under way then is unfinished.
	defer func() {
		if !l.e.hardEnd.IsZero() && !time.Now().Before(l.e.hardEnd) {
			l.cutOff()
		}
	}()
	for !l.aborted.Load() {
		if !l.e.hardEnd.IsZero() && !time.Now().Before(l.e.hardEnd) {
			return // the deferred cutOff counts what is under way
		}
		if len(l.next) > 0 && !l.stopped.Load() {
			// Swapped, not reset: a start that fails at once queues its
			// user for the next round, after epoll has been asked again.
			starting := l.next
			l.next = l.spare[:0]
			for _, u := range starting {
				if !l.start(u, stop) {
					break
				}
			}
			l.spare = starting
		}
		if l.busy == 0 && l.stopped.Load() {
			return
		}
		wait := 100 // ms: deadlines are checked at least this often
		if len(l.next) > 0 && !l.stopped.Load() {
			wait = 0
		}
		n, err := unix.EpollWait(l.epfd, l.events, wait)
		if err != nil && err != unix.EINTR {
			l.fail(err)
			return
		}
		for _, ev := range l.events[:max(n, 0)] {
			if ev.Fd == wakeTag {
				var b [8]byte
				unix.Read(l.wake, b[:])
				continue
			}
			u := int(ev.Fd)
			c := &l.conns[u]
			if c.fd < 0 {
				continue // closed earlier in this round
			}
			if !c.busy {
				// An idle connection (the run is stopping) that the server
				// closed, or that has something to say: no request will
				// ask, so close it rather than hear of it every round.
				unix.Close(c.fd)
				c.fd = -1
				continue
			}
			if c.writing {
				if ev.Events&(unix.EPOLLERR|unix.EPOLLHUP) != 0 && c.written == 0 {
					l.finish(u, 0, 0, connectError(c.fd))
					continue
				}
				if ev.Events&unix.EPOLLOUT != 0 {
					l.write(u)
				}
			}
			if c.busy && !c.writing && ev.Events&(unix.EPOLLIN|unix.EPOLLHUP|unix.EPOLLERR|unix.EPOLLRDHUP) != 0 {
				l.read(u)
			}
		}
		if now := time.Now(); now.Sub(lastSweep) >= 100*time.Millisecond {
			lastSweep = now
			for u := range l.conns {
				if c := &l.conns[u]; c.busy && now.Sub(c.sent) > timeout {
					l.finish(u, 0, c.p.n, os.ErrDeadlineExceeded)
				}
			}
		}
	}
}

// cutOff counts the requests under way at the run's hard end as
// unfinished.
func (l *loop) cutOff() {
	for u := range l.conns {
		if c := &l.conns[u]; c.busy {
			l.record(c, 0, c.p.n, os.ErrDeadlineExceeded)
			c.busy = false
		}
	}
	l.busy = 0
}

// fail records a loop that cannot go on as one error per request under way.
func (l *loop) fail(err error) {
	for u := range l.conns {
		if c := &l.conns[u]; c.busy {
			l.record(c, 0, c.p.n, err)
			c.busy = false
		}
	}
	l.busy = 0
}

// start begins user u's next request, dialling first if it has no
// connection. It reports false when the request count is used up.
func (l *loop) start(u int, stop context.CancelFunc) bool {
	if !l.e.take() {
		l.stopped.Store(true)
		stop()
		return false
	}
	c := &l.conns[u]
	c.busy, c.written, c.writing, c.sent, c.resent = true, 0, false, time.Now(), false
	c.p.reset(!l.e.last[c.target])
	l.busy++
	if c.fd < 0 {
		if err := l.dial(u); err != nil {
			l.finish(u, 0, 0, err)
		}
		return true // the write waits for the connection
	}
	l.write(u)
	return true
}

// connectError is why a connection that never took a byte failed.
func connectError(fd int) error {
	if serr, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR); serr != 0 {
		return unix.Errno(serr)
	}
	return errClosed
}

// dial opens a non-blocking connection for user u and waits for it to be
// writable (connected) through epoll.
func (l *loop) dial(u int) error {
	c := &l.conns[u]
	sa := l.addrs[c.target]
	family := unix.AF_INET
	if _, ok := sa.(*unix.SockaddrInet6); ok {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	if ips := l.e.cfg.SourceIPs; len(ips) > 0 {
		ip := ips[l.e.srcNext.Add(1)%uint64(len(ips))]
		var local unix.Sockaddr
		if ip4 := ip.To4(); ip4 != nil && family == unix.AF_INET {
			a := &unix.SockaddrInet4{}
			copy(a.Addr[:], ip4)
			local = a
		} else {
			a := &unix.SockaddrInet6{}
			copy(a.Addr[:], ip.To16())
			local = a
		}
		unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
		if err := unix.Bind(fd, local); err != nil {
			unix.Close(fd)
			return err
		}
	}
	if err := unix.Connect(fd, sa); err != nil && err != unix.EINPROGRESS {
		unix.Close(fd)
		return err
	}
	ev := unix.EpollEvent{Events: unix.EPOLLOUT | unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(u)}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		unix.Close(fd)
		return err
	}
	c.fd, c.writing, c.served = fd, true, 0
	return nil
}

// write sends what is left of user u's request. A socket that takes only
// part of it is watched for room (EPOLLOUT) until it has taken the rest;
// the first EPOLLOUT of a new connection says it connected (or failed to).
func (l *loop) write(u int) {
	c := &l.conns[u]
	req := l.e.reqs[c.target]
	for c.written < len(req) {
		n, err := unix.Write(c.fd, req[c.written:])
		if err == unix.EAGAIN {
			if !c.writing {
				c.writing = true
				l.watch(u, unix.EPOLLIN|unix.EPOLLOUT|unix.EPOLLRDHUP)
			}
			return
		}
		if err != nil && c.written == 0 && c.served > 0 && !c.resent && l.e.retry[c.target] &&
			(err == unix.EPIPE || err == unix.ECONNRESET) {
			l.resend(u)
			return
		}
		if err != nil {
			if c.written == 0 && (err == unix.ENOTCONN || err == unix.EPIPE) {
				err = connectError(c.fd) // a failed connect shows as its pending error
			}
			l.finish(u, 0, 0, err)
			return
		}
		c.written += n
	}
	if c.writing {
		c.writing = false
		l.watch(u, unix.EPOLLIN|unix.EPOLLRDHUP)
	}
}

func (l *loop) watch(u int, events uint32) {
	ev := unix.EpollEvent{Events: events, Fd: int32(u)}
	unix.EpollCtl(l.epfd, unix.EPOLL_CTL_MOD, l.conns[u].fd, &ev)
}

// read takes what user u's connection has and feeds it to the parser.
func (l *loop) read(u int) {
	c := &l.conns[u]
	n, err := unix.Read(c.fd, l.buf)
	switch {
	case err == unix.EAGAIN || err == unix.EINTR:
		return
	case (err == unix.ECONNRESET || n == 0) && c.p.n == 0 && c.served > 0 && !c.resent && l.e.retry[c.target]:
		l.resend(u)
		return
	case err != nil:
		l.finish(u, 0, c.p.n, err)
		return
	case n == 0:
		done, err := c.p.eof()
		if done {
			l.finish(u, c.p.status, c.p.n, nil)
		} else {
			l.finish(u, 0, c.p.n, err)
		}
		return
	}
	used, done, err := c.p.feed(l.buf[:n])
	switch {
	case err != nil:
		l.finish(u, 0, c.p.n, err)
	case done && used < n:
		// More than one response to one request: the connection cannot
		// be trusted for the next.
		l.finish(u, 0, c.p.n, errMalformed)
	case done:
		l.finish(u, c.p.status, c.p.n, nil)
	}
}

// resend sends user u's request again on a new connection: the one it
// went on had served before and the server closed it without a byte of
// answer (an idle connection the server let go). Only a request that may
// be sent twice comes here, and only once.
func (l *loop) resend(u int) {
	c := &l.conns[u]
	unix.Close(c.fd)
	c.fd, c.written, c.writing, c.resent = -1, 0, false, true
	c.p.reset(!l.e.last[c.target])
	if err := l.dial(u); err != nil {
		l.finish(u, 0, 0, err)
	}
}

// finish records user u's request, closes its connection when it failed
// or ends after this response, and queues the user's next request.
func (l *loop) finish(u, status int, in int64, err error) {
	c := &l.conns[u]
	l.record(c, status, in, err)
	if err == nil {
		c.served++
	}
	if (err != nil || c.p.close) && c.fd >= 0 {
		unix.Close(c.fd) // also takes it out of the epoll set
		c.fd = -1
	}
	c.busy = false
	l.busy--
	l.next = append(l.next, u)
}

func (l *loop) record(c *rconn, status int, in int64, err error) {
	l.e.record(l.sh, c.sent, status, in, int64(c.written), err)
}
