package mongostore_test

import (
	"context"
	"testing"
	"time"

	"github.com/runyard/runyard/libs/mongostore"
	"github.com/runyard/runyard/libs/storetest"
	"github.com/runyard/runyard/libs/testenv"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) storetest.Store {
		uri, db := testenv.Mongo(t)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		s, err := mongostore.Open(ctx, uri, db)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close(context.Background()) })
		return s
	})
}
