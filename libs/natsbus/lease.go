package natsbus

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/runyard/runyard/libs/logging"
)

// Leader leases: a key in a JetStream key-value bucket whose entries expire. Wire contracts,
// like every name in this package.
const (
	// BucketLeases holds one key per lease; its value names the holder.
	BucketLeases = "RUNYARD_LEASES"
	// LeaseScheduler is the lease of the time-schedule leader.
	LeaseScheduler = "scheduler"
	// LeaseTTL is how long a lease outlives its holder's last renewal. It is the bucket's
	// max age, fixed when the bucket is created: a lease taken over after a holder dies
	// waits this long, and holders renew three times within it.
	LeaseTTL = 10 * time.Second
)

// leaseBucket opens the lease bucket, creating it with ttl when it does not exist. An existing
// bucket is used as it is: its TTL is the one every holder must follow.
func (b *Bus) leaseBucket(ctx context.Context, ttl time.Duration, replicas int) (jetstream.KeyValue, error) {
	kv, err := b.js.KeyValue(ctx, BucketLeases)
	if err == nil {
		return kv, nil
	}
	if !errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("natsbus: open bucket %s: %w", BucketLeases, err)
	}
	kv, err = b.js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      BucketLeases,
		Description: "Runyard leader leases: one key per lease, expiring unless its holder renews it",
		History:     1,
		TTL:         ttl,
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
	})
	if errors.Is(err, jetstream.ErrBucketExists) {
		// Another process created it first, with another configuration: use theirs.
		kv, err = b.js.KeyValue(ctx, BucketLeases)
	}
	if err != nil {
		return nil, fmt.Errorf("natsbus: create bucket %s: %w", BucketLeases, err)
	}
	return kv, nil
}

// LeaseConfig describes one contender for a lease.
type LeaseConfig struct {
	// Key names the lease (LeaseScheduler).
	Key string
	// Holder identifies this contender in the bucket; empty means host name, process id and
	// a random suffix. It must be unique among contenders.
	Holder string
	// TTL is the bucket's TTL if this lease has to create the bucket (Setup normally has);
	// zero means LeaseTTL.
	TTL time.Duration
}

// Lease is one process's candidacy for a named lease. At most one holder leads at a time:
// acquiring is a key-value Create, which fails while the key exists, and holding is an Update
// on the last revision every TTL/3, which fails as soon as anyone else wrote the key. The
// key expires TTL after the last renewal, so a holder that dies is replaced within TTL and a
// retry interval; one that stops releases the key and is replaced within a retry interval.
type Lease struct {
	kv     jetstream.KeyValue
	key    string
	holder string
	ttl    time.Duration
	// renew is the renewal period and the bound of one renewal: a holder whose renewal has
	// not succeeded within 2·renew of the previous one gives up, a third of the TTL before
	// the key can expire and be taken by another.
	renew time.Duration
	// retry is how often a contender tries to acquire a lease someone else holds.
	retry time.Duration
	held  atomic.Bool
	// failing is set after an acquisition attempt failed for a reason other than another
	// holder, so that an unreachable server is reported once, not every retry.
	failing bool
	log     zerolog.Logger
}

// NewLease prepares a candidacy for cfg.Key; Run contends.
func (b *Bus) NewLease(ctx context.Context, cfg LeaseConfig) (*Lease, error) {
	if cfg.Key == "" {
		return nil, errors.New("natsbus: lease: no key")
	}
	if cfg.TTL <= 0 {
		cfg.TTL = LeaseTTL
	}
	if cfg.Holder == "" {
		host, _ := os.Hostname()
		var r [4]byte
		_, _ = rand.Read(r[:]) // crypto/rand.Read never fails on supported platforms
		cfg.Holder = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(r[:]))
	}
	kv, err := b.leaseBucket(ctx, cfg.TTL, 1)
	if err != nil {
		return nil, err
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("natsbus: lease %s: bucket status: %w", cfg.Key, err)
	}
	ttl := st.TTL()
	if ttl <= 0 {
		return nil, fmt.Errorf("natsbus: lease %s: bucket %s has no TTL, so a dead holder's lease would never expire", cfg.Key, BucketLeases)
	}
	return &Lease{
		kv: kv, key: cfg.Key, holder: cfg.Holder, ttl: ttl,
		renew: ttl / 3,
		retry: min(ttl/3, time.Second),
		log:   b.log.With().Str(logging.KeyLease, cfg.Key).Str(logging.KeyHolder, cfg.Holder).Logger(),
	}, nil
}

// Holder is the name this contender holds the lease under.
func (l *Lease) Holder() string { return l.holder }

// Held reports whether this contender currently leads.
func (l *Lease) Held() bool { return l.held.Load() }

// Run contends for the lease until ctx ends. Each time it acquires the lease it calls lead
// with a context that is cancelled the moment leadership is lost (a renewal fails) or ctx
// ends, and waits for lead to return; then it releases the lease if it still holds it (so a
// stopping leader is replaced at once) and contends again. lead must return promptly once
// its context is cancelled: until then it may still act, briefly alongside a new leader, so
// what it does must be idempotent. Run returns when ctx ends.
func (l *Lease) Run(ctx context.Context, lead func(ctx context.Context)) error {
	wait := time.NewTimer(0)
	defer wait.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-wait.C:
		}
		if rev, ok := l.acquire(ctx); ok {
			l.hold(ctx, rev, lead)
		}
		wait.Reset(l.retry)
	}
}

// acquire tries once to take the lease and returns the revision it holds it at.
func (l *Lease) acquire(ctx context.Context) (uint64, bool) {
	rev, err := l.kv.Create(ctx, l.key, []byte(l.holder))
	if err == nil {
		l.failing = false
		return rev, true
	}
	if ctx.Err() != nil {
		return 0, false
	}
	e, gerr := l.kv.Get(ctx, l.key)
	switch {
	case gerr == nil && string(e.Value()) == l.holder:
		// Still ours: a renewal failed but the server kept our write (its reply was lost),
		// and nobody has taken the key since. Hold it only if it can be refreshed now, as it
		// may be about to expire.
		rev, err := l.update(ctx, e.Revision())
		if err != nil {
			return 0, false
		}
		return rev, true
	case gerr == nil:
		// Held by another contender: the common case for every process but the leader.
		l.failing = false
	case errors.Is(gerr, jetstream.ErrKeyNotFound), errors.Is(gerr, jetstream.ErrKeyDeleted):
		// Freed between the two calls, or another contender won a race for a freed key.
	case !l.failing:
		l.failing = true
		l.log.Warn().Err(fmt.Errorf("natsbus: acquire lease %s: %w", l.key, err)).Msg("lease cannot be acquired; retrying")
	default:
		l.log.Debug().Err(err).Msg("lease cannot be acquired; retrying")
	}
	return 0, false
}

// hold leads from revision rev: it runs lead and renews the lease until lead returns, ctx
// ends or a renewal fails, then releases the lease unless it was lost.
func (l *Lease) hold(ctx context.Context, rev uint64, lead func(ctx context.Context)) {
	l.held.Store(true)
	l.log.Info().Msg("lease acquired: leading")
	leadCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer cancel() // a lead that returns on its own ends the term
		lead(leadCtx)
	}()

	lost := false
	t := time.NewTicker(l.renew)
	for !lost && leadCtx.Err() == nil {
		select {
		case <-leadCtx.Done():
		case <-t.C:
			next, err := l.update(leadCtx, rev)
			switch {
			case err == nil:
				rev = next
			case leadCtx.Err() == nil:
				lost = true
				l.log.Warn().Err(err).Msg("lease lost: renewal failed; leading stops")
			}
		}
	}
	t.Stop()
	l.held.Store(false)
	cancel()
	<-done
	if lost {
		return
	}
	// Release, so that another contender takes over now rather than after the TTL. Only our
	// own revision is deleted: if it changed, the lease is no longer ours to release.
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), l.renew)
	defer rcancel()
	if err := l.kv.Delete(rctx, l.key, jetstream.LastRevision(rev)); err != nil {
		l.log.Warn().Err(err).Msg("lease not released; it expires after its TTL")
		return
	}
	l.log.Info().Msg("lease released")
}

// update renews the lease from revision rev, bounded by the renewal period.
func (l *Lease) update(ctx context.Context, rev uint64) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, l.renew)
	defer cancel()
	next, err := l.kv.Update(ctx, l.key, []byte(l.holder), rev)
	if err != nil {
		return 0, fmt.Errorf("natsbus: renew lease %s: %w", l.key, err)
	}
	return next, nil
}
