// Package idalloc hands out integer ids without a database round trip per id: it reserves
// blocks of ids from a sequence (hi/lo) and serves them from memory. Ids are unique across
// processes; unused ids of a block are lost when a process stops, so ids may have gaps.
package idalloc

import (
	"context"
	"fmt"
	"sync"
)

// Source reserves n ids of the sequence name and returns the last one.
type Source interface {
	NextIDs(ctx context.Context, name string, n int64) (int64, error)
}

// Allocator serves ids of one sequence. It is safe for concurrent use.
type Allocator struct {
	src   Source
	name  string
	block int64

	mu         sync.Mutex
	next, last int64 // next id to hand out; last id reserved
}

// New returns an allocator reserving block ids at a time from src's sequence name.
func New(src Source, name string, block int64) *Allocator {
	if block < 1 {
		block = 1
	}
	return &Allocator{src: src, name: name, block: block}
}

// Next returns n unique ids.
func (a *Allocator) Next(ctx context.Context, n int) ([]int64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ids := make([]int64, 0, n)
	for len(ids) < n {
		if a.next == 0 || a.next > a.last {
			want := max(a.block, int64(n-len(ids)))
			last, err := a.src.NextIDs(ctx, a.name, want)
			if err != nil {
				return nil, fmt.Errorf("idalloc: %s: %w", a.name, err)
			}
			a.next, a.last = last-want+1, last
		}
		ids = append(ids, a.next)
		a.next++
	}
	return ids, nil
}

// One returns a single unique id.
func (a *Allocator) One(ctx context.Context) (int64, error) {
	ids, err := a.Next(ctx, 1)
	if err != nil {
		return 0, err
	}
	return ids[0], nil
}
