package main

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// callTimeout bounds one call, so that a stuck path fails the round
// instead of hanging the driver.
const callTimeout = 30 * time.Second

// result is the measurement of one path at one concurrency level, summed
// over its closed-loop rounds.
type result struct {
	calls     int64
	errors    int64
	elapsed   time.Duration // sum of the rounds' wall-clock times
	latencies []time.Duration
	firstErr  error
}

// add merges r2 into r.
func (r *result) add(r2 result) {
	r.calls += r2.calls
	r.errors += r2.errors
	r.elapsed += r2.elapsed
	r.latencies = append(r.latencies, r2.latencies...)
	if r.firstErr == nil {
		r.firstErr = r2.firstErr
	}
}

// rate returns the successful calls per second.
func (r *result) rate() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.calls-r.errors) / r.elapsed.Seconds()
}

// percentile returns the latency below which a fraction q of the calls
// finished, by the nearest-rank method. It sorts the latencies.
func (r *result) percentile(q float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	slices.Sort(r.latencies)
	rank := int(q*float64(len(r.latencies))+0.999999) - 1
	return r.latencies[min(max(rank, 0), len(r.latencies)-1)]
}

// runClosedLoop runs callers goroutines that each call p back to back for
// d, and returns what they measured. A call still running at the end
// finishes and counts, so elapsed runs until the last caller returns.
// record false drops the latencies, for warm-up rounds.
func runClosedLoop(ctx context.Context, p *path, callers int, d time.Duration, record bool) result {
	ctx, cancel := context.WithTimeout(ctx, d+callTimeout)
	defer cancel()
	var (
		mu  sync.Mutex
		all result
		wg  sync.WaitGroup
	)
	var ready, started sync.WaitGroup
	ready.Add(callers)
	started.Add(1)
	var end atomic.Int64 // the deadline in UnixNano, set when all callers are ready
	for range callers {
		call := p.newCall(ctx)
		wg.Go(func() {
			local := result{}
			if record {
				local.latencies = make([]time.Duration, 0, 1024)
			}
			ready.Done()
			started.Wait()
			deadline := end.Load()
			for {
				start := time.Now()
				if start.UnixNano() >= deadline || ctx.Err() != nil {
					break
				}
				err := call()
				took := time.Since(start)
				local.calls++
				if err != nil {
					local.errors++
					if local.firstErr == nil {
						local.firstErr = err
					}
				}
				if record {
					local.latencies = append(local.latencies, took)
				}
			}
			mu.Lock()
			all.add(local)
			mu.Unlock()
		})
	}
	ready.Wait()
	begin := time.Now()
	end.Store(begin.Add(d).UnixNano())
	started.Done()
	wg.Wait()
	all.elapsed = time.Since(begin)
	return all
}
