package idalloc_test

import (
	"context"
	"sync"
	"testing"

	"github.com/runyard/runyard/libs/idalloc"
)

// counter is a Source with the same contract as the stores' NextIDs.
type counter struct {
	mu    sync.Mutex
	value map[string]int64
	calls int
}

func (c *counter) NextIDs(_ context.Context, name string, n int64) (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	c.value[name] += n
	return c.value[name], nil
}

func TestAllocatorUniqueAcrossAllocators(t *testing.T) {
	t.Parallel()
	src := &counter{value: map[string]int64{}}
	a, b := idalloc.New(src, "runs", 10), idalloc.New(src, "runs", 10)
	seen := map[int64]bool{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			alloc := a
			if i%2 == 1 {
				alloc = b
			}
			ids, err := alloc.Next(context.Background(), 3)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for _, id := range ids {
				if seen[id] || id <= 0 {
					t.Errorf("id %d twice or not positive", id)
				}
				seen[id] = true
			}
		}()
	}
	wg.Wait()
	if len(seen) != 60 {
		t.Fatalf("got %d ids, want 60", len(seen))
	}
	// 60 ids in blocks of 10 from two allocators: at most 8 reservations, far fewer than 60.
	if src.calls > 8 {
		t.Fatalf("%d reservations for 60 ids", src.calls)
	}
}

func TestAllocatorLargeRequest(t *testing.T) {
	t.Parallel()
	src := &counter{value: map[string]int64{}}
	a := idalloc.New(src, "blocks", 4)
	ids, err := a.Next(context.Background(), 9)
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range ids {
		if id != int64(i+1) {
			t.Fatalf("ids = %v, want 1..9", ids)
		}
	}
}
