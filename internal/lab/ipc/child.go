package ipc

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// childEnv starts this binary as one end of a mechanism: "ROLE MECH CPU
// TRIPS BYTES LIMIT-MS", ROLE client or server. The endpoint is fd 3 (and
// fd 4 for the pipe's other direction); for signals, the server's pid
// comes over fd 3 and the client's in childPeer.
const (
	childEnv  = "STAMPEDE_IPC_CHILD"
	childPeer = "STAMPEDE_IPC_PEER"
)

// Shared memory layout: the request and reply sequence numbers on cache
// lines of their own, then one slot of data.
const (
	shmReq  = 0
	shmResp = 64
	shmData = 4096
	shmSize = shmData + chunk
)

// chunk is the unit of the throughput test, and the most a message holds.
const chunk = 64 << 10

// msg is the size of a round trip's message.
const msg = 64

// childResult is what the client prints.
type childResult struct {
	RTTs       []int64 `json:"rtts"` // nanoseconds, in order
	Bytes      int64   `json:"bytes"`
	StreamNs   int64   `json:"streamNs"`
	Mismatches int     `json:"mismatches"` // echoes that differed from what was sent
}

// end is one side of a mechanism, as the child sees it.
type end interface {
	send(b []byte) error
	recv(b []byte) error // fills b completely (or one datagram of len(b))
}

// fdEnd is a stream or datagram descriptor, used with blocking system
// calls on the pinned thread: no netpoller, no other thread involved.
type fdEnd struct {
	r, w  int
	dgram bool
}

func (e fdEnd) send(b []byte) error {
	for len(b) > 0 {
		n, err := unix.Write(e.w, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if e.dgram {
			return nil
		}
		b = b[n:]
	}
	return nil
}

func (e fdEnd) recv(b []byte) error {
	for len(b) > 0 {
		n, err := unix.Read(e.r, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("closed")
		}
		if e.dgram {
			return nil
		}
		b = b[n:]
	}
	return nil
}

// shmEnd is a one-slot ring in shared memory: the writer copies into the
// slot and bumps its sequence number; the reader waits for it to change,
// by spinning or on a futex.
type shmEnd struct {
	mem          []byte
	mine, theirs *uint32 // the sequence this side bumps, and the one it waits on
	seen, next   uint32
	futex        bool
}

func (e *shmEnd) send(b []byte) error {
	copy(e.mem[shmData:], b)
	e.next++
	atomic.StoreUint32(e.mine, e.next)
	if e.futex {
		unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(e.mine)), 1 /* FUTEX_WAKE */, 1, 0, 0, 0)
	}
	return nil
}

func (e *shmEnd) recv(b []byte) error {
	for spins := 0; atomic.LoadUint32(e.theirs) == e.seen; spins++ {
		if e.futex {
			unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(e.theirs)), 0 /* FUTEX_WAIT */, uintptr(e.seen), 0, 0, 0)
		}
	}
	e.seen = atomic.LoadUint32(e.theirs)
	copy(b, e.mem[shmData:])
	return nil
}

// mqEnd is a pair of POSIX message queues (one each way), used as a byte
// stream: a send is cut into messages of at most mqMsgSize, and a receive
// takes what is left of the last message before the next.
type mqEnd struct {
	r, w int
	left []byte
	buf  []byte
}

// mqMsgSize is Linux's default largest message (fs.mqueue.msgsize_max),
// which an unprivileged process cannot raise.
const mqMsgSize = 8192

func (e *mqEnd) send(b []byte) error {
	for len(b) > 0 {
		n := min(len(b), mqMsgSize)
		for {
			_, _, errno := unix.Syscall6(unix.SYS_MQ_TIMEDSEND, uintptr(e.w), uintptr(unsafe.Pointer(&b[0])), uintptr(n), 0, 0, 0)
			if errno == unix.EINTR {
				continue
			}
			if errno != 0 {
				return errno
			}
			break
		}
		b = b[n:]
	}
	return nil
}

func (e *mqEnd) recv(b []byte) error {
	for len(b) > 0 {
		if len(e.left) == 0 {
			n, _, errno := unix.Syscall6(unix.SYS_MQ_TIMEDRECEIVE, uintptr(e.r), uintptr(unsafe.Pointer(&e.buf[0])), uintptr(len(e.buf)), 0, 0, 0)
			if errno == unix.EINTR {
				continue
			}
			if errno != 0 {
				return errno
			}
			e.left = e.buf[:n]
		}
		k := copy(b, e.left)
		b, e.left = b[k:], e.left[k:]
	}
	return nil
}

// sigEnd carries no data: a signal is the message.
type sigEnd struct {
	peer int
	ch   chan os.Signal
}

func (e sigEnd) send([]byte) error { return unix.Kill(e.peer, unix.SIGUSR1) }
func (e sigEnd) recv([]byte) error { <-e.ch; return nil }

// ChildMain runs one end when this process was started as one, then
// exits; it reports false at once otherwise. Call it first in main.
func ChildMain() bool {
	v := os.Getenv(childEnv)
	if v == "" {
		return false
	}
	if err := child(v); err != nil {
		fmt.Fprintln(os.Stderr, "ipc child:", err)
		os.Exit(1)
	}
	os.Exit(0)
	return true
}

func child(v string) error {
	f := strings.Fields(v)
	if len(f) != 6 {
		return fmt.Errorf("bad %s=%q", childEnv, v)
	}
	role, mech := f[0], f[1]
	var n [4]int
	for i := range n {
		var err error
		if n[i], err = strconv.Atoi(f[2+i]); err != nil {
			return fmt.Errorf("bad %s=%q", childEnv, v)
		}
	}
	cpu, trips, total, limit := n[0], n[1], int64(n[2]), time.Duration(n[3])*time.Millisecond
	// Everything measured runs on this goroutine's thread, pinned.
	runtime.LockOSThread()
	var set unix.CPUSet
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return fmt.Errorf("pin to CPU %d: %w", cpu, err)
	}
	e, err := open(role, mech)
	if err != nil {
		return err
	}
	if role == "server" {
		return serve(e, mech)
	}
	return client(e, mech, trips, total, limit)
}

func open(role, mech string) (end, error) {
	// Descriptors the parent made through os (pipes, TCP) may be in
	// non-blocking mode, which the children share; these ends block.
	for _, fd := range []int{3, 4} {
		unix.SetNonblock(fd, false)
	}
	switch mech {
	case "pipe":
		return fdEnd{r: 3, w: 4}, nil
	case "unix", "tcp":
		return fdEnd{r: 3, w: 3}, nil
	case "mq":
		return &mqEnd{r: 3, w: 4, buf: make([]byte, mqMsgSize)}, nil
	case "unixgram":
		return fdEnd{r: 3, w: 3, dgram: true}, nil
	case "shm-spin", "shm-futex":
		mem, err := unix.Mmap(3, 0, shmSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
		if err != nil {
			return nil, fmt.Errorf("map the shared memory: %w", err)
		}
		req, resp := (*uint32)(unsafe.Pointer(&mem[shmReq])), (*uint32)(unsafe.Pointer(&mem[shmResp]))
		if role == "client" {
			return &shmEnd{mem: mem, mine: req, theirs: resp, futex: mech == "shm-futex"}, nil
		}
		return &shmEnd{mem: mem, mine: resp, theirs: req, futex: mech == "shm-futex"}, nil
	case "signal":
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGUSR1)
		if role == "server" {
			peer, err := strconv.Atoi(os.Getenv(childPeer))
			if err != nil {
				return nil, fmt.Errorf("no client pid")
			}
			// Tell the client who to signal, and that the handler is set.
			if _, err := unix.Write(3, []byte(strconv.Itoa(os.Getpid())+"\n")); err != nil {
				return nil, err
			}
			return sigEnd{peer: peer, ch: ch}, nil
		}
		var buf [32]byte
		nr, err := unix.Read(3, buf[:])
		if err != nil {
			return nil, err
		}
		peer, err := strconv.Atoi(strings.TrimSpace(string(buf[:nr])))
		if err != nil {
			return nil, fmt.Errorf("no server pid")
		}
		return sigEnd{peer: peer, ch: ch}, nil
	}
	return nil, fmt.Errorf("no mechanism %q", mech)
}

// serve echoes pings and acknowledges stream chunks until told to quit.
// The first byte of a message says what it is: 'p' a ping of msg bytes,
// 's' a stream chunk of chunk bytes, 'q' quit. Signals carry nothing:
// every one is a ping.
func serve(e end, mech string) error {
	buf := make([]byte, chunk)
	whole := mech == "unixgram" || mech == "shm-spin" || mech == "shm-futex" // a message arrives whole
	for {
		b := buf[:msg]
		if whole {
			b = buf
		}
		if err := e.recv(b); err != nil {
			return err
		}
		if mech == "signal" {
			b[0] = 'p'
		}
		switch b[0] {
		case 'p':
			if err := e.send(buf[:msg]); err != nil {
				return err
			}
		case 's':
			if !whole {
				if err := e.recv(buf[msg:chunk]); err != nil {
					return err
				}
			}
			// One chunk in flight at a time: the slot of shared memory
			// holds one, and a datagram socket would otherwise drop.
			if err := e.send(buf[:1]); err != nil {
				return err
			}
		case 'q':
			return nil
		default:
			return fmt.Errorf("unexpected message %q", b[0])
		}
	}
}

// client times the round trips, then the stream, and prints the result.
func client(e end, mech string, trips int, total int64, limit time.Duration) error {
	var r childResult
	out := make([]byte, msg)
	in := make([]byte, msg)
	deadline := time.Now().Add(limit)
	for i := 0; i < trips && time.Now().Before(deadline); i++ {
		out[0] = 'p'
		for k := 1; k < msg; k++ {
			out[k] = byte(i + k)
		}
		t := time.Now()
		if err := e.send(out); err != nil {
			return err
		}
		if err := e.recv(in); err != nil {
			return err
		}
		r.RTTs = append(r.RTTs, time.Since(t).Nanoseconds())
		if mech != "signal" && !bytes.Equal(in, out) {
			r.Mismatches++
		}
	}
	if mech != "signal" {
		data := make([]byte, chunk)
		ack := make([]byte, 1)
		t := time.Now()
		deadline := t.Add(limit)
		data[0] = 's'
		for r.Bytes < total && time.Now().Before(deadline) {
			if err := e.send(data); err != nil {
				return err
			}
			if err := e.recv(ack); err != nil {
				return err
			}
			r.Bytes += chunk
		}
		r.StreamNs = time.Since(t).Nanoseconds()
	}
	quit := out[:msg]
	quit[0] = 'q'
	if mech == "signal" {
		unix.Kill(e.(sigEnd).peer, unix.SIGTERM)
	} else if err := e.send(quit); err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(r)
}
