package connector

import (
	"fmt"

	"github.com/rs/zerolog"

	"github.com/runyard/runyard/libs/airflow"
)

// ClientOptions tune the Airflow client of a connector.
type ClientOptions struct {
	// AllowPrivate lets the client reach loopback and private addresses
	// (RUNYARD_CONNECTOR_ALLOW_PRIVATE).
	AllowPrivate bool
	// RateLimit is requests per second [airflow.DefaultRateLimit].
	RateLimit float64
	Logger    zerolog.Logger
}

// NewClient returns an Airflow client for conn: its base URL and version, its secret opened
// with ciph, and a dialer that refuses the addresses CheckAddr refuses.
func NewClient(conn *Connector, ciph *Cipher, opts ClientOptions) (*airflow.Client, error) {
	if conn.Type != TypeAirflow {
		return nil, fmt.Errorf("connector %s: type %q has no client", conn.ID, conn.Type)
	}
	if err := CheckBaseURL(conn.BaseURL, opts.AllowPrivate); err != nil {
		return nil, fmt.Errorf("connector %s: base_url %w", conn.ID, err)
	}
	secret, err := ciph.OpenAuth(conn)
	if err != nil {
		return nil, fmt.Errorf("connector %s: %w", conn.ID, err)
	}
	a := airflow.Auth{Kind: airflow.AuthKind(conn.Auth.Kind), Username: conn.Auth.Username}
	if conn.Auth.Kind == AuthToken {
		a.Token = secret
	} else {
		a.Password = secret
	}
	version := airflow.APIVersion(conn.APIVersion)
	if conn.APIVersion == APIVersionAuto && conn.DetectedVersion != "" {
		// Detected by an earlier sync: skip the probes.
		version = airflow.APIVersion(conn.DetectedVersion)
	}
	c, err := airflow.New(airflow.Config{
		BaseURL: conn.BaseURL, Version: version, Auth: a, RateLimit: opts.RateLimit,
		DialControl: DialControl(opts.AllowPrivate),
		Logger:      opts.Logger.With().Str("connector_id", conn.ID).Logger(),
	})
	if err != nil {
		return nil, fmt.Errorf("connector %s: %w", conn.ID, err)
	}
	return c, nil
}
