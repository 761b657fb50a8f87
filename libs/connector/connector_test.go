package connector_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/runyard/runyard/libs/airflow"
	"github.com/runyard/runyard/libs/airflow/airflowtest"
	"github.com/runyard/runyard/libs/connector"
	"github.com/runyard/runyard/libs/run"
	"github.com/runyard/runyard/libs/validation"
)

func validConnector() *connector.Connector {
	c := &connector.Connector{ID: "con_x", Space: "s1", Name: "prod", BaseURL: "https://airflow.example.com/",
		Auth: connector.Auth{Kind: connector.AuthPassword, Username: "admin", Password: "pw"}}
	c.Normalize()
	return c
}

func fields(err error) []string {
	var errs validation.Errors
	if !errors.As(err, &errs) {
		return nil
	}
	out := make([]string, len(errs))
	for i, e := range errs {
		out[i] = e.Field
	}
	return out
}

func TestValidate(t *testing.T) {
	t.Parallel()
	c := validConnector()
	if err := c.Validate(false); err != nil {
		t.Fatalf("valid connector refused: %v", err)
	}
	if c.BaseURL != "https://airflow.example.com" || c.APIVersion != "auto" || c.Sync.IntervalSeconds != 300 || c.Sync.LookbackDays != 7 {
		t.Fatalf("defaults: %+v", c)
	}
	for field, mutate := range map[string]func(*connector.Connector){
		"name":                  func(c *connector.Connector) { c.Name = "" },
		"type":                  func(c *connector.Connector) { c.Type = "dagster" },
		"base_url":              func(c *connector.Connector) { c.BaseURL = "http://169.254.169.254/latest" },
		"api_version":           func(c *connector.Connector) { c.APIVersion = "v3" },
		"auth.kind":             func(c *connector.Connector) { c.Auth.Kind = "oauth" },
		"auth.username":         func(c *connector.Connector) { c.Auth.Username = "" },
		"auth.password":         func(c *connector.Connector) { c.Auth.Password = "" },
		"auth.token":            func(c *connector.Connector) { c.Auth = connector.Auth{Kind: connector.AuthToken} },
		"sync.interval_seconds": func(c *connector.Connector) { c.Sync.IntervalSeconds = 5 },
		"sync.lookback_days":    func(c *connector.Connector) { c.Sync.LookbackDays = 1000 },
		"sync.dag_id_pattern":   func(c *connector.Connector) { c.Sync.DAGIDPattern = "([" },
	} {
		c := validConnector()
		mutate(c)
		got := fields(c.Validate(false))
		if len(got) != 1 || got[0] != field {
			t.Errorf("%s: fields %v", field, got)
		}
	}
	c = validConnector()
	c.Sync.DAGIDPattern = `^etl_`
	if !c.MatchesDAG("etl_sales") || c.MatchesDAG("ml_train") {
		t.Error("dag_id_pattern does not select DAGs")
	}
}

func TestBaseURLAndDialRules(t *testing.T) {
	t.Parallel()
	for raw, allowPrivateOK := range map[string]bool{
		"https://airflow.example.com":          true,
		"https://airflow.example.com/sub/path": true,
		"http://10.0.0.5:8080":                 true,
		"http://127.0.0.1:8080":                true,
		"http://[::1]:8080":                    true,
		"http://localhost:8080":                true,
		"http://169.254.169.254":               false,
		"http://[fe80::1]":                     false,
		"http://metadata.google.internal":      false,
		"http://[fd00:ec2::254]":               false,
		"http://0.0.0.0":                       true,
		"ftp://airflow.example.com":            false,
		"https://u:p@airflow.example.com":      false,
		"https://airflow.example.com/?x=1":     false,
	} {
		public := !strings.ContainsAny(raw, "[") && (strings.Contains(raw, "example.com") && allowPrivateOK)
		if err := connector.CheckBaseURL(raw, false); (err == nil) != public {
			t.Errorf("CheckBaseURL(%s, private off) = %v", raw, err)
		}
		if err := connector.CheckBaseURL(raw, true); (err == nil) != allowPrivateOK {
			t.Errorf("CheckBaseURL(%s, private on) = %v", raw, err)
		}
	}
	for addr, allowed := range map[string][2]bool{ // [private off, private on]
		"93.184.216.34":          {true, true},
		"2606:4700::1111":        {true, true},
		"127.0.0.1":              {false, true},
		"10.1.2.3":               {false, true},
		"192.168.1.1":            {false, true},
		"172.16.0.1":             {false, true},
		"100.64.0.1":             {false, true},
		"fd12::1":                {false, true},
		"169.254.169.254":        {false, false},
		"169.254.1.1":            {false, false},
		"fe80::1":                {false, false},
		"100.100.100.200":        {false, false},
		"::ffff:169.254.169.254": {false, false},
	} {
		for i, priv := range []bool{false, true} {
			err := connector.CheckAddr(netip.MustParseAddr(addr), priv)
			if (err == nil) != allowed[i] {
				t.Errorf("CheckAddr(%s, private %v) = %v", addr, priv, err)
			}
			dial := connector.DialControl(priv)("tcp", netip.AddrPortFrom(netip.MustParseAddr(addr), 443).String(), nil)
			if (dial == nil) != allowed[i] || (dial != nil && !errors.Is(dial, connector.ErrForbiddenAddress)) {
				t.Errorf("DialControl(%v)(%s) = %v", priv, addr, dial)
			}
		}
	}
}

func TestCipher(t *testing.T) {
	t.Parallel()
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i)
	}
	parsed, err := connector.ParseKey(base64.StdEncoding.EncodeToString(key))
	if err != nil || string(parsed) != string(key) {
		t.Fatalf("ParseKey: %v", err)
	}
	for _, bad := range []string{"", "short", base64.StdEncoding.EncodeToString(key[:16])} {
		if _, err := connector.ParseKey(bad); !errors.Is(err, connector.ErrBadKey) {
			t.Errorf("ParseKey(%q) = %v", bad, err)
		}
	}
	ciph, err := connector.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	c := validConnector()
	c.Auth.Password = "hunter2-secret"
	if err := ciph.SealAuth(c); err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(c)
	if c.Auth.Password != "" || strings.Contains(string(raw), "hunter2") || !c.Auth.SecretSet() {
		t.Fatalf("sealed connector still shows the secret: %s", raw)
	}
	if got, err := ciph.OpenAuth(c); err != nil || got != "hunter2-secret" {
		t.Fatalf("OpenAuth = %q, %v", got, err)
	}
	other := *c
	other.ID = "con_other"
	if _, err := ciph.OpenAuth(&other); !errors.Is(err, connector.ErrUnsealing) {
		t.Fatalf("a secret moved to another connector opened: %v", err)
	}
	key2 := append([]byte(nil), key...)
	key2[0] ^= 1
	ciph2, _ := connector.NewCipher(key2)
	if _, err := ciph2.OpenAuth(c); !errors.Is(err, connector.ErrUnsealing) {
		t.Fatalf("opened with the wrong key: %v", err)
	}
	// An update without a new secret keeps the sealed one.
	sealed := c.Auth.SecretSealed
	if err := ciph.SealAuth(c); err != nil || c.Auth.SecretSealed != sealed {
		t.Fatalf("resealing without a new secret changed it: %v", err)
	}
}

func TestKeyFile(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	k1, err := connector.LoadOrCreateKeyFile(dir)
	if err != nil || len(k1) != 32 {
		t.Fatalf("create: %v", err)
	}
	st, err := os.Stat(filepath.Join(dir, connector.KeyFileName))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v %v", st.Mode(), err)
	}
	k2, err := connector.LoadOrCreateKeyFile(dir)
	if err != nil || string(k1) != string(k2) {
		t.Fatalf("reload gave another key: %v", err)
	}
	if err := os.Chmod(filepath.Join(dir, connector.KeyFileName), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := connector.LoadOrCreateKeyFile(dir); err == nil {
		t.Fatal("a world-readable key file was accepted")
	}
}

var uuidPattern = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_-]{0,254}$`)

func TestMirrorKeys(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 250)
	seen := map[string]string{}
	for _, k := range [][2]string{{"con_a", "etl.sales"}, {"con_a", "etl_sales"}, {"con_b", "etl.sales"}, {"con_a", long}, {"con_a", "-lead"}} {
		u := connector.PipelineUUID(k[0], k[1])
		if !uuidPattern.MatchString(u) {
			t.Errorf("PipelineUUID%v = %q: not a valid pipeline uuid", k, u)
		}
		if u != connector.PipelineUUID(k[0], k[1]) {
			t.Errorf("PipelineUUID%v is not deterministic", k)
		}
		if prev, dup := seen[u]; dup {
			t.Errorf("PipelineUUID%v collides with %s", k, prev)
		}
		seen[u] = k[0] + "/" + k[1]
	}
	if connector.BlockUUID("t", -1) != "t" || connector.BlockUUID("t", 3) != "t[3]" {
		t.Error("BlockUUID")
	}
	for state, want := range map[string]run.Status{"queued": run.StatusInitial, "running": run.StatusRunning, "success": run.StatusCompleted, "failed": run.StatusFailed} {
		if got := connector.RunStatus(state); got != want {
			t.Errorf("RunStatus(%s) = %s", state, got)
		}
	}
	for state, want := range map[string]run.Status{"": run.StatusInitial, "up_for_retry": run.StatusQueued, "deferred": run.StatusRunning, "upstream_failed": run.StatusUpstreamFailed, "skipped": run.StatusCancelled} {
		if got := connector.TaskStatus(state); got != want {
			t.Errorf("TaskStatus(%q) = %s", state, got)
		}
	}
}

// TestNewClient builds a connector's client from its sealed secret and checks that the dial
// guard is in force: the fake server listens on loopback, which only AllowPrivate reaches.
func TestNewClient(t *testing.T) {
	t.Parallel()
	srv := airflowtest.NewServer(airflowtest.Config{APIVersion: "v2", DAGs: 3})
	defer srv.Close()
	key := make([]byte, 32)
	ciph, _ := connector.NewCipher(key)
	c := validConnector()
	c.BaseURL = srv.URL
	c.Auth.Password = "admin"
	if err := ciph.SealAuth(c); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := connector.NewClient(c, ciph, connector.ClientOptions{}); err == nil {
		t.Fatal("a loopback base URL was accepted without AllowPrivate")
	}
	cl, err := connector.NewClient(c, ciph, connector.ClientOptions{AllowPrivate: true, RateLimit: 100})
	if err != nil {
		t.Fatal(err)
	}
	dags, err := cl.ListDAGs(ctx, airflow.DAGFilter{})
	if err != nil || len(dags) != 3 {
		t.Fatalf("ListDAGs through the connector: %d, %v", len(dags), err)
	}
	// A base URL that passed validation but dials a forbidden address (a DNS answer can
	// change) is stopped at the dial.
	guarded, err := airflow.New(airflow.Config{BaseURL: srv.URL, Version: airflow.V2, DialControl: connector.DialControl(false), MaxRetries: airflow.NoRetries})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := guarded.Version(ctx); !errors.Is(err, connector.ErrForbiddenAddress) {
		t.Fatalf("dial to loopback without AllowPrivate: %v", err)
	}
}
