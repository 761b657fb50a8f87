package syncworker

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/runyard/runyard/libs/natsbus"
)

// Lease keys in the RUNYARD_LEASES bucket. Wire contracts: never derive them from Go
// identifiers.
const (
	// LeaseSyncScheduler is the lease of the worker that starts periodic syncs and polls.
	LeaseSyncScheduler = "sync-scheduler"
	// leaseConnectorPrefix + connector id is the lease one sync or poll of a connector holds.
	leaseConnectorPrefix = "sync-connector."
)

// leaseTry is how long a worker waits for a connector's lease before it counts the lease
// as held elsewhere. The first acquisition attempt is immediate; this covers its round trip.
const leaseTry = 2 * time.Second

// errBusy says another worker holds a connector's lease.
var errBusy = errors.New("syncworker: the connector is being synced by another worker")

// withConnectorLease runs fn while holding the connector's lease, and reports whether it
// ran: false when another worker holds the lease. fn's context ends when the lease is lost
// (a renewal failed), so a sync never goes on once another worker may have started one.
func (w *Worker) withConnectorLease(ctx context.Context, connectorID string, fn func(ctx context.Context) error) (bool, error) {
	l, err := w.bus.NewLease(ctx, natsbus.LeaseConfig{Key: leaseConnectorPrefix + connectorID})
	if err != nil {
		return false, err
	}
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu        sync.Mutex
		started   bool
		abandoned bool
		ferr      error
	)
	began := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = l.Run(lctx, func(hctx context.Context) {
			mu.Lock()
			if abandoned || started {
				// Acquired after the caller gave up, or again after fn returned: hand the
				// lease straight back.
				mu.Unlock()
				cancel()
				return
			}
			started = true
			mu.Unlock()
			close(began)
			ferr = fn(hctx)
			cancel()
		})
	}()
	t := time.NewTimer(leaseTry)
	defer t.Stop()
	select {
	case <-began:
		<-done
		return true, ferr
	case <-t.C:
	case <-ctx.Done():
	}
	mu.Lock()
	if started {
		mu.Unlock()
		<-done
		return true, ferr
	}
	abandoned = true
	mu.Unlock()
	cancel()
	<-done
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	return false, nil
}
