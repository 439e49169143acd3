package lab

import (
	"context"
	"sync"
)

// Queue runs heavy experiments one at a time, first come first served,
// and lets waiters watch their place in line.
// The zero value is an empty queue ready to use.
type Queue struct {
	mu      sync.Mutex
	running *QueueEntry
	waiting []*QueueEntry
	changed chan struct{} // closed and replaced on every change
}

// QueueEntry is one run holding or waiting for the slot.
type QueueEntry struct {
	Run        string `json:"run"`
	Experiment string `json:"experiment"`
}

// QueueState is a snapshot for the page.
type QueueState struct {
	Running *QueueEntry  `json:"running"`
	Waiting []QueueEntry `json:"waiting"`
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
	q.waiting = append(q.waiting, me)
	q.notifyLocked()
	lastAhead := -1
	for {
		if q.running == nil && q.waiting[0] == me {
			q.waiting = q.waiting[1:]
			q.running = me
			q.notifyLocked()
			q.mu.Unlock()
			var once sync.Once
			return func() {
				once.Do(func() {
					q.mu.Lock()
					q.running = nil
					q.notifyLocked()
					q.mu.Unlock()
				})
			}, nil
		}
		ahead := 1 // the running entry
		for _, w := range q.waiting {
			if w == me {
				break
			}
			ahead++
		}
		if q.running == nil {
			ahead--
		}
		var running QueueEntry
		if q.running != nil {
			running = *q.running
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
			for i, w := range q.waiting {
				if w == me {
					q.waiting = append(q.waiting[:i], q.waiting[i+1:]...)
					break
				}
			}
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
	if q.running != nil {
		r := *q.running
		st.Running = &r
	}
	for _, w := range q.waiting {
		st.Waiting = append(st.Waiting, *w)
	}
	return st
}
