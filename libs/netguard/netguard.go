// Package netguard keeps Runyard's outbound HTTP calls to user-supplied URLs (webhooks,
// connectors) away from addresses a tenant must not reach through Runyard: cloud metadata
// services and link-local addresses always, and loopback and private networks unless the
// operator allows them.
//
// The check runs on the address actually dialled (a net.Dialer Control function), after name
// resolution, so a host name that resolves to a public address when validated and to a
// private one when used (DNS rebinding) is still refused.
package netguard

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"time"
)

// AllowPrivateVar is the environment variable that lets outbound calls reach loopback and
// private networks (for installations whose receivers live inside their own network, and
// for tests).
const AllowPrivateVar = "RUNYARD_CONNECTOR_ALLOW_PRIVATE"

// ErrRefused is wrapped by every refusal, so callers can tell it from a network failure.
var ErrRefused = errors.New("netguard: address refused")

var (
	// metadataAddrs are cloud instance metadata services: they hand out credentials, so they
	// are refused even when private addresses are allowed.
	metadataAddrs = []netip.Addr{
		netip.MustParseAddr("169.254.169.254"),
		netip.MustParseAddr("fd00:ec2::254"),
		netip.MustParseAddr("100.100.100.200"), // Alibaba Cloud
		netip.MustParseAddr("192.0.0.192"),     // Oracle Cloud's legacy address
	}
	// metadataHosts are metadata services' host names, refused before any lookup.
	metadataHosts = []string{"metadata.google.internal", "metadata", "metadata.goog", "instance-data", "instance-data.ec2.internal"}

	alwaysRefused = []netip.Prefix{
		netip.MustParsePrefix("169.254.0.0/16"), // link-local, where metadata services live
		netip.MustParsePrefix("fe80::/10"),
		netip.MustParsePrefix("224.0.0.0/4"), // multicast
		netip.MustParsePrefix("ff00::/8"),
		netip.MustParsePrefix("240.0.0.0/4"), // reserved, and the broadcast address
	}
	privateRanges = []netip.Prefix{
		netip.MustParsePrefix("127.0.0.0/8"),
		netip.MustParsePrefix("::1/128"),
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("172.16.0.0/12"),
		netip.MustParsePrefix("192.168.0.0/16"),
		netip.MustParsePrefix("fc00::/7"),
		netip.MustParsePrefix("100.64.0.0/10"), // carrier-grade NAT, private in practice
		// "This host": connecting to 0.0.0.0 or :: reaches the local machine.
		netip.MustParsePrefix("0.0.0.0/8"),
		netip.MustParsePrefix("::/128"),
	}
)

// Guard decides which addresses outbound calls may reach.
type Guard struct {
	// AllowPrivate lets calls reach loopback and private networks. Link-local and metadata
	// addresses stay refused.
	AllowPrivate bool
}

// CheckAddr refuses an address the guard does not let calls reach.
func (g Guard) CheckAddr(ip netip.Addr) error {
	ip = ip.Unmap().WithZone("")
	if !ip.IsValid() {
		return fmt.Errorf("%w: invalid address", ErrRefused)
	}
	for _, m := range metadataAddrs {
		if ip == m {
			return fmt.Errorf("%w: %s is a cloud metadata address", ErrRefused, ip)
		}
	}
	for _, p := range alwaysRefused {
		if p.Contains(ip) {
			return fmt.Errorf("%w: %s is a link-local, multicast or reserved address", ErrRefused, ip)
		}
	}
	if !g.AllowPrivate {
		for _, p := range privateRanges {
			if p.Contains(ip) {
				return fmt.Errorf("%w: %s is a loopback or private address (set %s to allow)", ErrRefused, ip, AllowPrivateVar)
			}
		}
	}
	return nil
}

// CheckHost refuses, without resolving it, a host that is a metadata service's name or an
// address literal the guard refuses. Use it to reject a URL early; the dial-time check is
// what enforces the rule.
func (g Guard) CheckHost(host string) error {
	h := strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
	if h == "" {
		return fmt.Errorf("%w: empty host", ErrRefused)
	}
	for _, m := range metadataHosts {
		if h == m {
			return fmt.Errorf("%w: %s is a cloud metadata host", ErrRefused, h)
		}
	}
	if ip, err := netip.ParseAddr(h); err == nil {
		return g.CheckAddr(ip)
	}
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		if !g.AllowPrivate {
			return fmt.Errorf("%w: %s is a loopback host (set %s to allow)", ErrRefused, h, AllowPrivateVar)
		}
	}
	return nil
}

// Control is a net.Dialer Control function: it runs after resolution, on the address about
// to be connected, and refuses it when the guard does.
func (g Guard) Control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: cannot parse dialled address %q on %s", ErrRefused, address, network)
	}
	return g.CheckAddr(ap.Addr())
}

// Dialer returns a dialer whose every connection passes the guard.
func (g Guard) Dialer(timeout time.Duration) *net.Dialer {
	return &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second, Control: g.Control}
}

// Transport returns an HTTP transport whose connections pass the guard. It uses no proxy: a
// proxy would dial the target itself, out of the guard's sight.
func (g Guard) Transport() *http.Transport {
	d := g.Dialer(10 * time.Second)
	return &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, _, err := net.SplitHostPort(addr)
			if err == nil {
				if err := g.CheckHost(host); err != nil {
					return nil, err
				}
			}
			return d.DialContext(ctx, network, addr)
		},
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// Client returns an HTTP client through Transport that follows no redirects: a redirect
// would be a second, unvalidated URL (the guard would still check its address, but the
// caller asked for one URL, not wherever it points).
func (g Guard) Client(timeout time.Duration) *http.Client {
	return &http.Client{
		Transport: g.Transport(),
		Timeout:   timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}
