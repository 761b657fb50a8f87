package connector

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"syscall"

	"github.com/runyard/runyard/libs/netguard"
)

// ErrForbiddenAddress is wrapped by every refusal: netguard's, the rule all of Runyard's
// outbound calls to user-supplied URLs (webhooks, connectors) share.
var ErrForbiddenAddress = netguard.ErrRefused

// CheckAddr says whether a connector may connect to ip: netguard's rule (link-local and
// cloud metadata addresses always refused; loopback and private ranges only when
// allowPrivate is set).
func CheckAddr(ip netip.Addr, allowPrivate bool) error {
	return netguard.Guard{AllowPrivate: allowPrivate}.CheckAddr(ip)
}

// DialControl returns a net.Dialer Control function that refuses connections to addresses
// CheckAddr refuses. It runs after name resolution, on the address actually dialled, so a
// name that resolves (or later re-resolves) to a forbidden address is caught too.
func DialControl(allowPrivate bool) func(network, address string, c syscall.RawConn) error {
	return netguard.Guard{AllowPrivate: allowPrivate}.Control
}

// CheckBaseURL validates a connector's base URL: http or https, a host, no credentials,
// query or fragment, and no literal address or metadata name that CheckAddr refuses. A host
// name is not resolved here (its addresses may change); DialControl checks them on dial.
func CheckBaseURL(raw string, allowPrivate bool) error {
	if raw == "" {
		return errors.New("is required")
	}
	if len(raw) > MaxBaseURLLength {
		return fmt.Errorf("must be at most %d characters", MaxBaseURLLength)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("is not a URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return errors.New("must be an http or https URL")
	}
	if u.Hostname() == "" {
		return errors.New("must name a host")
	}
	if u.User != nil {
		return errors.New("must not hold credentials: use auth")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return errors.New("must not have a query or fragment")
	}
	if err := (netguard.Guard{AllowPrivate: allowPrivate}).CheckHost(u.Hostname()); err != nil {
		return errors.New(strings.TrimPrefix(err.Error(), ErrForbiddenAddress.Error()+": "))
	}
	return nil
}
