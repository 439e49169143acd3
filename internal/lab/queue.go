package lab

import (
	"context"
	"errors"
	"slices"
	"sync"
)

// Queue runs experiments Slots at a time (one, if Slots is 0), first come
// first served, and lets waiters watch their place in line. At most
// MaxWaiting (if not 0) may wait; one more is refused with ErrQueueFull.
// The zero value is an empty queue of one slot, ready to use.
type Queue struct {
	Slots      int
	MaxWaiting int

	mu      sync.Mutex
	running []*QueueEntry
	waiting []*QueueEntry
	changed chan struct{} // closed and replaced on every change
}

// ErrQueueFull is Acquire's answer when MaxWaiting runs already wait.
var ErrQueueFull = errors.New("the lab has too many runs waiting; try again shortly")

func (q *Queue) slots() int { return max(1, q.Slots) }

// QueueEntry is one run holding or waiting for the slot.
type QueueEntry struct {
	Run        string `json:"run"`
	Experiment string `json:"experiment"`
}

// QueueState is a snapshot for the page.
type QueueState struct {
	Running *QueueEntry  `json:"running"`
	Waiting []QueueEntry `json:"waiting"`
	// Others is, in the lab's answer, the queue of the runs that are not
	// heavy (a few run at once; Running is the first of them).
	Others *QueueState `json:"others,omitempty"`
}

func (q *Queue) notifyLocked() {
	if q.changed != nil {
		close(q.changed)
	}
	q.changed = make(chan struct{})
}

// Acquire waits for the slot. While waiting it calls wait with the number
// of runs ahead and the entry running now, each time that changes. It
// returns a release func, or ctx's error if ctx ends first, in which case
// the entry has left the line.
func (q *Queue) Acquire(ctx context.Context, e QueueEntry, wait func(ahead int, running QueueEntry)) (release func(), err error) {
	me := &e
	q.mu.Lock()
	if q.MaxWaiting > 0 && len(q.waiting) >= q.MaxWaiting {
		q.mu.Unlock()
		return nil, ErrQueueFull
	}
	q.waiting = append(q.waiting, me)
	q.notifyLocked()
	lastAhead := -1
	for {
		if len(q.running) < q.slots() && q.waiting[0] == me {
			q.waiting = q.waiting[1:]
			q.running = append(q.running, me)
			q.notifyLocked()
			q.mu.Unlock()
			var once sync.Once
			return func() {
				once.Do(func() {
					q.mu.Lock()
					q.running = slices.DeleteFunc(q.running, func(r *QueueEntry) bool { return r == me })
					q.notifyLocked()
					q.mu.Unlock()
				})
			}, nil
		}
		ahead := slices.Index(q.waiting, me) // waiting before me
		if len(q.running) >= q.slots() {
			ahead++ // and the slots are taken: the next to end lets one in
		}
		var running QueueEntry
		if len(q.running) > 0 {
			running = *q.running[0]
		}
		changed := q.changed
		q.mu.Unlock()
		if ahead != lastAhead {
			lastAhead = ahead
			wait(ahead, running)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			q.mu.Lock()
			q.waiting = slices.DeleteFunc(q.waiting, func(w *QueueEntry) bool { return w == me })
			q.notifyLocked()
			q.mu.Unlock()
			return nil, ctx.Err()
		}
		q.mu.Lock()
	}
}

// State returns who runs and who waits.
func (q *Queue) State() QueueState {
	q.mu.Lock()
	defer q.mu.Unlock()
	st := QueueState{Waiting: []QueueEntry{}}
	if len(q.running) > 0 {
		r := *q.running[0]
		st.Running = &r
	}
	for _, w := range q.waiting {
		st.Waiting = append(st.Waiting, *w)
	}
	return st
}
