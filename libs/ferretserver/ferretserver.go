// Package ferretserver runs an embedded FerretDB (SQLite handler): a real MongoDB-wire server
// in-process. It is how tests exercise the MongoDB store where no MongoDB exists.
package ferretserver

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/FerretDB/FerretDB/ferretdb"
)

// Server is a running embedded FerretDB.
type Server struct {
	uri    string
	cancel context.CancelFunc
	done   chan struct{}
}

// Start runs FerretDB on addr (port 0 picks a free one) with its SQLite files under dir.
func Start(dir, addr string) (*Server, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("ferretserver: %w", err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("ferretserver: %w", err)
	}
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: addr},
		Handler:   "sqlite",
		SQLiteURL: "file:" + abs + "/",
		// FerretDB logs every connection at info level; its own errors still reach the client.
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		return nil, fmt.Errorf("ferretserver: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		_ = f.Run(ctx)
	}()
	s.uri = f.MongoDBURI()
	return s, nil
}

// URI is the MongoDB connection string of the server.
func (s *Server) URI() string { return s.uri }

// Stop shuts the server down and waits for it.
func (s *Server) Stop() {
	s.cancel()
	<-s.done
}
