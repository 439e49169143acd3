package async

import (
	"context"
	"sync"
	"time"
)

// Pipeline is the guide's producer/consumer template made to work: its
// producers send on a buffered channel, its consumers range over it, and
// the channel is closed when every producer is done — not after a fixed
// sleep, as the guide's version does, which returns while consumers may
// still be working (or would panic on a send to a closed channel if a
// producer were slower than the sleep). It returns how many values the
// consumers received and their sum, and stops early when ctx is done.
func Pipeline(ctx context.Context, producers, consumers, each int, pause time.Duration) (received, sum int) {
	ch := make(chan int, 10)
	var sent sync.WaitGroup
	for p := range producers {
		sent.Go(func() {
			for i := range each {
				select {
				case ch <- p*each + i:
				case <-ctx.Done():
					return
				}
				time.Sleep(pause)
			}
		})
	}
	// Close once every producer has returned: consumers' loops end.
	go func() { sent.Wait(); close(ch) }()
	var mu sync.Mutex
	var done sync.WaitGroup
	for range consumers {
		done.Go(func() {
			for v := range ch {
				mu.Lock()
				received, sum = received+1, sum+v
				mu.Unlock()
			}
		})
	}
	done.Wait()
	return received, sum
}
