// Package natsserver runs an embedded nats-server with JetStream, for the standalone binary
// and for tests.
package natsserver

import (
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Config says where the embedded server listens and keeps its data.
type Config struct {
	// Addr is host:port; port 0 picks a free one.
	Addr string
	// StoreDir holds JetStream's file storage.
	StoreDir string
}

// Server is a running embedded server.
type Server struct {
	s *server.Server
}

// Start runs the server and waits until it accepts clients.
func Start(cfg Config) (*Server, error) {
	host, portStr, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("natsserver: address %q: %w", cfg.Addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("natsserver: port %q: %w", portStr, err)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	s, err := server.NewServer(&server.Options{
		ServerName:         "runyard-embedded",
		Host:               host,
		Port:               port,
		JetStream:          true,
		StoreDir:           cfg.StoreDir,
		NoSigs:             true,
		MaxPayload:         8 << 20,
		JetStreamMaxMemory: 256 << 20,
	})
	if err != nil {
		return nil, fmt.Errorf("natsserver: %w", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("natsserver: not ready within 10s on %s", cfg.Addr)
	}
	return &Server{s: s}, nil
}

// URL is the client URL of the server.
func (s *Server) URL() string { return s.s.ClientURL() }

// Shutdown stops the server and waits for it to finish.
func (s *Server) Shutdown() {
	s.s.Shutdown()
	s.s.WaitForShutdown()
}
