package natsbus_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/runyard/runyard/libs/natsbus"
	"github.com/runyard/runyard/libs/testenv"
)

const testTTL = time.Second

// contender is one process contending for a lease, with what its leader callback saw.
type contender struct {
	bus     *natsbus.Bus
	lease   *natsbus.Lease
	cancel  context.CancelFunc
	done    chan struct{}
	elected atomic.Int32 // terms started
	ended   atomic.Int32 // terms whose lead returned
}

// leading counts the contenders inside their lead callback, across a test.
type leading struct {
	now, most atomic.Int32
}

func (l *leading) enter() {
	n := l.now.Add(1)
	for {
		m := l.most.Load()
		if n <= m || l.most.CompareAndSwap(m, n) {
			return
		}
	}
}

func startContender(t *testing.T, url, holder string, l *leading) *contender {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	bus, err := natsbus.Connect(ctx, url, holder, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(bus.Close)
	lease, err := bus.NewLease(ctx, natsbus.LeaseConfig{Key: "test", Holder: holder, TTL: testTTL})
	if err != nil {
		t.Fatal(err)
	}
	if lease.Holder() != holder {
		t.Fatalf("holder = %q, want %q", lease.Holder(), holder)
	}
	c := &contender{bus: bus, lease: lease, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		_ = lease.Run(ctx, func(ctx context.Context) {
			c.elected.Add(1)
			l.enter()
			<-ctx.Done()
			l.now.Add(-1)
			c.ended.Add(1)
		})
	}()
	return c
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// leaderOf waits for exactly one of cs to lead and returns it and the others.
func leaderOf(t *testing.T, within time.Duration, cs ...*contender) (*contender, []*contender) {
	t.Helper()
	var leader *contender
	var others []*contender
	eventually(t, within, "one contender leads", func() bool {
		leader, others = nil, nil
		for _, c := range cs {
			if c.lease.Held() {
				if leader != nil {
					t.Fatalf("two contenders lead at once")
				}
				leader = c
			} else {
				others = append(others, c)
			}
		}
		return leader != nil
	})
	return leader, others
}

// revision reads the lease key's current revision, which every renewal raises.
func revision(t *testing.T, kv jetstream.KeyValue) uint64 {
	t.Helper()
	e, err := kv.Get(context.Background(), "test")
	if err != nil {
		return 0
	}
	return e.Revision()
}

func leaseKV(t *testing.T, c *contender) jetstream.KeyValue {
	t.Helper()
	js, err := jetstream.New(c.bus.Conn())
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(context.Background(), natsbus.BucketLeases)
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

func TestLeaseOneLeaderAndGracefulHandOver(t *testing.T) {
	t.Parallel()
	url := testenv.NATS(t)
	var l leading
	a := startContender(t, url, "a", &l)
	b := startContender(t, url, "b", &l)
	leader, others := leaderOf(t, 5*time.Second, a, b)
	follower := others[0]

	// Through several renewals the leader keeps the lease and the follower never leads.
	kv := leaseKV(t, leader)
	from := revision(t, kv)
	eventually(t, 3*testTTL, "three renewals", func() bool {
		if follower.elected.Load() != 0 || !leader.lease.Held() {
			t.Fatalf("leadership changed hands while the leader renews")
		}
		return revision(t, kv) >= from+3
	})

	// A leader that stops releases the lease: the follower takes over without waiting for
	// the TTL to run out, and the old leader's work has ended by then.
	start := time.Now()
	leader.cancel()
	<-leader.done
	if leader.ended.Load() != 1 {
		t.Fatal("the stopped leader's lead did not return")
	}
	eventually(t, testTTL, "the follower takes over", follower.lease.Held)
	t.Logf("hand-over after a stop took %v", time.Since(start))
	if l.most.Load() != 1 {
		t.Fatalf("%d contenders led at once", l.most.Load())
	}
}

func TestLeaseFailOverWhenLeaderDies(t *testing.T) {
	t.Parallel()
	url := testenv.NATS(t)
	var l leading
	a := startContender(t, url, "a", &l)
	b := startContender(t, url, "b", &l)
	leader, others := leaderOf(t, 5*time.Second, a, b)
	follower := others[0]

	// The leader's connection dies: it can neither renew nor release. Its lead context is
	// cancelled at the first failed renewal, and the follower takes over once the key has
	// expired, within the TTL and a retry interval of the last renewal.
	start := time.Now()
	leader.bus.Conn().Close()
	eventually(t, testTTL, "the dead leader stops leading", func() bool { return leader.ended.Load() == 1 })
	eventually(t, 2*testTTL+time.Second, "the follower takes over", follower.lease.Held)
	t.Logf("fail-over after the leader died took %v", time.Since(start))
	if l.most.Load() != 1 {
		t.Fatalf("%d contenders led at once", l.most.Load())
	}
	if leader.elected.Load() != 1 {
		t.Fatalf("the dead leader was elected %d times", leader.elected.Load())
	}
}

// TestLeaseBucketFromSetup checks that Setup creates the bucket with the production TTL and
// that a lease follows an existing bucket's TTL rather than its own.
func TestLeaseBucketFromSetup(t *testing.T) {
	t.Parallel()
	url := testenv.NATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bus, err := natsbus.Connect(ctx, url, "setup", zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close()
	opts := natsbus.StreamOptions{EventMaxAge: time.Hour, EventMaxBytes: 1 << 20}
	for range 2 { // idempotent
		if err := bus.Setup(ctx, opts); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := bus.NewLease(ctx, natsbus.LeaseConfig{Key: natsbus.LeaseScheduler, TTL: time.Second}); err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(bus.Conn())
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, natsbus.BucketLeases)
	if err != nil {
		t.Fatal(err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.TTL() != natsbus.LeaseTTL {
		t.Fatalf("bucket TTL = %v, want %v", st.TTL(), natsbus.LeaseTTL)
	}
}
