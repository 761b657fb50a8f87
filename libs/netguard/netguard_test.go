package netguard_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/runyard/runyard/libs/netguard"
)

func TestCheckAddr(t *testing.T) {
	t.Parallel()
	cases := []struct {
		addr            string
		strict, lenient bool // allowed without and with AllowPrivate
	}{
		{"169.254.169.254", false, false},
		{"169.254.10.1", false, false},
		{"fe80::1", false, false},
		{"fd00:ec2::254", false, false},
		{"::ffff:169.254.169.254", false, false}, // IPv4-mapped
		{"100.100.100.200", false, false},
		{"224.0.0.1", false, false},
		{"255.255.255.255", false, false},
		{"127.0.0.1", false, true},
		{"127.8.9.10", false, true},
		{"::1", false, true},
		{"::ffff:127.0.0.1", false, true},
		{"10.1.2.3", false, true},
		{"172.16.0.1", false, true},
		{"172.31.255.255", false, true},
		{"192.168.1.1", false, true},
		{"fc00::1", false, true},
		{"fd12:3456::1", false, true},
		{"0.0.0.0", false, true},
		{"::", false, true},
		{"172.32.0.1", true, true},
		{"8.8.8.8", true, true},
		{"2001:4860:4860::8888", true, true},
	}
	for _, tc := range cases {
		ip := netip.MustParseAddr(tc.addr)
		for _, g := range []netguard.Guard{{}, {AllowPrivate: true}} {
			want := tc.strict
			if g.AllowPrivate {
				want = tc.lenient
			}
			err := g.CheckAddr(ip)
			if (err == nil) != want {
				t.Errorf("AllowPrivate=%v %s: err = %v, want allowed=%v", g.AllowPrivate, tc.addr, err, want)
			}
			if err != nil && !errors.Is(err, netguard.ErrRefused) {
				t.Errorf("%s: error %v does not wrap ErrRefused", tc.addr, err)
			}
		}
	}
}

func TestCheckHost(t *testing.T) {
	t.Parallel()
	lenient := netguard.Guard{AllowPrivate: true}
	for _, h := range []string{"metadata.google.internal", "METADATA.google.internal.", "[fd00:ec2::254]", "169.254.169.254", "[fe80::1]"} {
		if err := lenient.CheckHost(h); !errors.Is(err, netguard.ErrRefused) {
			t.Errorf("%s: err = %v, want refused even with private allowed", h, err)
		}
	}
	strict := netguard.Guard{}
	for _, h := range []string{"localhost", "api.localhost", "127.0.0.1", "[::1]", "10.0.0.1"} {
		if err := strict.CheckHost(h); !errors.Is(err, netguard.ErrRefused) {
			t.Errorf("%s: err = %v, want refused", h, err)
		}
		if err := lenient.CheckHost(h); err != nil {
			t.Errorf("%s with private allowed: %v", h, err)
		}
	}
	if err := strict.CheckHost("hooks.example.com"); err != nil {
		t.Errorf("a public name is refused before resolution: %v", err)
	}
}

// TestDialRefusesResolvedLoopback dials a name that resolves to loopback: the check on the
// dialled address refuses it, which is what a rebinding name would meet.
func TestDialRefusesResolvedLoopback(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// A dialer alone (no host-name shortcut): the resolved 127.0.0.1 is refused at dial time.
	d := netguard.Guard{}.Dialer(5 * time.Second)
	if _, err := d.DialContext(ctx, "tcp", net.JoinHostPort("localhost", port)); !errors.Is(err, netguard.ErrRefused) {
		t.Fatalf("dial localhost: err = %v, want refused", err)
	}
	if _, err := d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", port)); !errors.Is(err, netguard.ErrRefused) {
		t.Fatalf("dial 127.0.0.1: err = %v, want refused", err)
	}

	// The client refuses it too, and reaches it when private addresses are allowed.
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	if _, err := (netguard.Guard{}).Client(5 * time.Second).Do(req); !errors.Is(err, netguard.ErrRefused) {
		t.Fatalf("client: err = %v, want refused", err)
	}
	res, err := netguard.Guard{AllowPrivate: true}.Client(5 * time.Second).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if res.StatusCode != http.StatusNoContent {
		t.Fatalf("status %d", res.StatusCode)
	}
	// Allowing private addresses never opens link-local ones: refused before any packet.
	c, err := netguard.Guard{AllowPrivate: true}.Dialer(time.Second).DialContext(ctx, "tcp", "169.254.169.254:80")
	if !errors.Is(err, netguard.ErrRefused) {
		if c != nil {
			_ = c.Close()
		}
		t.Fatalf("dial metadata: err = %v, want refused", err)
	}
}

func TestClientFollowsNoRedirect(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/", http.StatusFound)
	}))
	t.Cleanup(srv.Close)
	res, err := netguard.Guard{AllowPrivate: true}.Client(5 * time.Second).Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if res.StatusCode != http.StatusFound {
		t.Fatalf("status %d, want the redirect itself", res.StatusCode)
	}
}
