package config_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/runyard/runyard/libs/config"
)

// secret is recognisable in any output, so that a leak of a secret value is easy to spot.
const secret = "S3CR3TzQ9"

func lookup(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}
}

// distributed is the minimum environment of a process running one service alone.
func distributed() map[string]string {
	return map[string]string{
		"RUNYARD_NATS_URL":  "nats://nats:4222",
		"RUNYARD_MONGO_URI": "mongodb://runyard:" + secret + "@mongo:27017/?authSource=admin",
	}
}

func TestLoadDefaults(t *testing.T) {
	t.Parallel()
	c, err := config.Load(config.ModeStandalone, lookup(nil))
	if err != nil {
		t.Fatalf("Load(standalone, empty env) = %v", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"HTTPAddr", c.HTTPAddr, ":6789"},
		{"DataDir", c.DataDir, "./runyard-data"},
		{"NATSURL", c.NATSURL, ""},
		{"NATSAddr", c.NATSAddr, "127.0.0.1:4222"},
		{"MongoURI", c.MongoURI, ""},
		{"MongoDatabase", c.MongoDatabase, "runyard"},
		{"AdminAPIKey", c.AdminAPIKey, ""},
		{"DefaultSpace", c.DefaultSpace, "default"},
		{"LogLevel", c.LogLevel, "info"},
		{"CommandWait", c.CommandWait, 5 * time.Second},
		{"ExecutorWorkers", c.ExecutorWorkers, 32},
		{"MaxBodyBytes", c.MaxBodyBytes, 1 << 20},
		{"ShutdownTimeout", c.ShutdownTimeout, 10 * time.Second},
		{"EventMaxAge", c.EventMaxAge, 168 * time.Hour},
		{"EventMaxBytes", c.EventMaxBytes, int64(1 << 30)},
		{"BlockLogMaxBytes", c.BlockLogMaxBytes, 1 << 20},
	}
	for _, ch := range checks {
		t.Run(ch.name, func(t *testing.T) {
			t.Parallel()
			if ch.got != ch.want {
				t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
			}
		})
	}
}

func TestLoadValues(t *testing.T) {
	t.Parallel()
	env := distributed()
	env["RUNYARD_HTTP_ADDR"] = "  0.0.0.0:8080 "
	env["RUNYARD_ADMIN_API_KEY"] = secret + "-0123456789abcdef"
	env["RUNYARD_LOG_LEVEL"] = "debug"
	env["RUNYARD_COMMAND_WAIT"] = "250ms"
	env["RUNYARD_EXECUTOR_WORKERS"] = "4096"
	env["RUNYARD_EVENT_MAX_BYTES"] = "1048576"
	env["RUNYARD_NATS_URL"] = "nats://n1:4222, tls://n2:4222"
	c, err := config.Load(config.ModeExecutor, lookup(env))
	if err != nil {
		t.Fatalf("Load() = %v", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"HTTPAddr", c.HTTPAddr, "0.0.0.0:8080"},
		{"AdminAPIKey", c.AdminAPIKey, secret + "-0123456789abcdef"},
		{"LogLevel", c.LogLevel, "debug"},
		{"CommandWait", c.CommandWait, 250 * time.Millisecond},
		{"ExecutorWorkers", c.ExecutorWorkers, 4096},
		{"EventMaxBytes", c.EventMaxBytes, int64(1 << 20)},
		{"NATSURL", c.NATSURL, "nats://n1:4222, tls://n2:4222"},
		{"MongoURI", c.MongoURI, env["RUNYARD_MONGO_URI"]},
	}
	for _, ch := range checks {
		t.Run(ch.name, func(t *testing.T) {
			t.Parallel()
			if ch.got != ch.want {
				t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
			}
		})
	}
}

func TestLoadModes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		mode    config.Mode
		env     map[string]string
		wantErr []string // substrings of the error; nil means no error
	}{
		{mode: config.ModeStandalone, env: nil},
		{mode: config.ModeStandalone, env: distributed()},
		{mode: config.ModeGateway, env: nil, wantErr: []string{"RUNYARD_NATS_URL", "gateway"}},
		{mode: config.ModeExecutor, env: nil, wantErr: []string{"RUNYARD_NATS_URL", "executor"}},
		{mode: config.ModeSyncWorker, env: nil, wantErr: []string{"RUNYARD_NATS_URL", "syncworker"}},
		// Without MongoDB a service alone uses the SQLite store of its data directory.
		{mode: config.ModeGateway, env: map[string]string{"RUNYARD_NATS_URL": "nats://nats:4222"}},
		{mode: config.ModeGateway, env: map[string]string{"RUNYARD_MONGO_URI": "mongodb://mongo"}, wantErr: []string{"RUNYARD_NATS_URL"}},
		{mode: config.ModeGateway, env: map[string]string{"RUNYARD_NATS_URL": "  ", "RUNYARD_MONGO_URI": " "}, wantErr: []string{"RUNYARD_NATS_URL"}},
		{mode: config.ModeGateway, env: distributed()},
		{mode: config.ModeExecutor, env: distributed()},
		{mode: config.ModeSyncWorker, env: distributed()},
	}
	for _, tt := range tests {
		name := string(tt.mode)
		if tt.env == nil {
			name += "/empty env"
		} else {
			name += "/" + strings.Join(sortedKeys(tt.env), ",")
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := config.Load(tt.mode, lookup(tt.env))
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Load() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Load() = nil, want an error naming %v", tt.wantErr)
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("Load() = %q, want it to contain %q", err, s)
				}
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("Load() = %q leaks the secret", err)
			}
		})
	}
}

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func TestLoadBadValues(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		key   string
		value string
	}{
		{"http addr without port", "RUNYARD_HTTP_ADDR", "localhost"},
		{"http addr garbage", "RUNYARD_HTTP_ADDR", "::::"},
		{"nats addr without port", "RUNYARD_NATS_ADDR", "127.0.0.1"},
		{"data dir blank", "RUNYARD_DATA_DIR", "   "},
		{"mongo database empty", "RUNYARD_MONGO_DATABASE", ""},
		{"default space empty", "RUNYARD_DEFAULT_SPACE", ""},
		{"nats url wrong scheme", "RUNYARD_NATS_URL", "http://nats:4222"},
		{"nats url without host", "RUNYARD_NATS_URL", "nats://"},
		{"nats url second part bad", "RUNYARD_NATS_URL", "nats://n1:4222,n2:4222"},
		{"nats url unparseable", "RUNYARD_NATS_URL", "nats://n1:42x22"},
		{"mongo uri wrong scheme", "RUNYARD_MONGO_URI", "postgres://u:p@db:5432/x"},
		{"mongo uri without scheme", "RUNYARD_MONGO_URI", "mongo:27017"},
		{"admin key too short", "RUNYARD_ADMIN_API_KEY", "0123456789abcde"},
		{"log level unknown", "RUNYARD_LOG_LEVEL", "loud"},
		{"command wait without unit", "RUNYARD_COMMAND_WAIT", "5"},
		{"command wait negative", "RUNYARD_COMMAND_WAIT", "-1s"},
		{"shutdown timeout zero", "RUNYARD_SHUTDOWN_TIMEOUT", "0s"},
		{"event max age garbage", "RUNYARD_EVENT_MAX_AGE", "forever"},
		{"workers zero", "RUNYARD_EXECUTOR_WORKERS", "0"},
		{"workers too many", "RUNYARD_EXECUTOR_WORKERS", "4097"},
		{"workers not a number", "RUNYARD_EXECUTOR_WORKERS", "many"},
		{"max body too small", "RUNYARD_MAX_BODY_BYTES", "1023"},
		{"max body too large", "RUNYARD_MAX_BODY_BYTES", "67108865"},
		{"block log too small", "RUNYARD_BLOCK_LOG_MAX_BYTES", "1"},
		{"event max bytes too small", "RUNYARD_EVENT_MAX_BYTES", "1048575"},
		{"event max bytes not a number", "RUNYARD_EVENT_MAX_BYTES", "1GB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := config.Load(config.ModeStandalone, lookup(map[string]string{tt.key: tt.value}))
			if err == nil {
				t.Fatalf("Load(%s=%q) = nil error, config %+v", tt.key, tt.value, c)
			}
			if !strings.Contains(err.Error(), tt.key) {
				t.Errorf("Load(%s=%q) = %q, want it to name %s", tt.key, tt.value, err, tt.key)
			}
			if c.HTTPAddr != "" || c.ExecutorWorkers != 0 {
				t.Errorf("Load() returned a non-zero Config with an error: %+v", c)
			}
		})
	}
}

func TestLoadReportsEveryProblem(t *testing.T) {
	t.Parallel()
	_, err := config.Load(config.ModeGateway, lookup(map[string]string{
		"RUNYARD_HTTP_ADDR":        "nope",
		"RUNYARD_EXECUTOR_WORKERS": "0",
		"RUNYARD_MONGO_URI":        "postgres://db",
	}))
	if err == nil {
		t.Fatal("Load() = nil, want an error")
	}
	for _, name := range []string{"RUNYARD_HTTP_ADDR", "RUNYARD_EXECUTOR_WORKERS", "RUNYARD_NATS_URL", "RUNYARD_MONGO_URI"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("Load() = %q, want it to name %s", err, name)
		}
	}
}

func TestLoadErrorHidesSecrets(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		key   string
		value string
	}{
		{"short admin key", "RUNYARD_ADMIN_API_KEY", secret},
		{"mongo uri wrong scheme", "RUNYARD_MONGO_URI", "postgres://runyard:" + secret + "@db:5432/x"},
		{"mongo uri without host", "RUNYARD_MONGO_URI", "mongodb:///" + secret},
		{"mongo uri bad port", "RUNYARD_MONGO_URI", "mongodb://runyard:" + secret + "@mongo:27017%zz"},
		{"mongo uri password with slash", "RUNYARD_MONGO_URI", "mongodb://runyard:" + secret + "/x@mongo:27017"},
		{"mongo uri control character", "RUNYARD_MONGO_URI", "mongodb://runyard:" + secret + "\x7f@mongo:27017"},
		{"mongo uri bad second host list entry", "RUNYARD_MONGO_URI", "mongodb://mongo:27017,runyard:" + secret + "@m2:bad"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := distributed()
			env[tt.key] = tt.value
			_, err := config.Load(config.ModeGateway, lookup(env))
			if err == nil {
				t.Fatalf("Load(%s=%q) = nil, want an error", tt.key, tt.value)
			}
			if !strings.Contains(err.Error(), tt.key) {
				t.Errorf("Load() = %q, want it to name %s", err, tt.key)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("Load() = %q leaks the secret value of %s", err, tt.key)
			}
		})
	}
}

func TestVars(t *testing.T) {
	t.Parallel()
	vs := config.Vars()
	if len(vs) == 0 {
		t.Fatal("Vars() is empty")
	}
	names := make([]string, len(vs))
	for i, v := range vs {
		names[i] = v.Name
	}
	if !slices.IsSorted(names) {
		t.Errorf("Vars() not sorted by name: %v", names)
	}
	if len(slices.Compact(slices.Clone(names))) != len(names) {
		t.Errorf("Vars() has duplicate names: %v", names)
	}
	secrets := map[string]bool{}
	for _, v := range vs {
		t.Run(v.Name, func(t *testing.T) {
			t.Parallel()
			if !strings.HasPrefix(v.Name, "RUNYARD_") {
				t.Errorf("name %q lacks the RUNYARD_ prefix", v.Name)
			}
			if strings.TrimSpace(v.Description) == "" {
				t.Errorf("%s has no description", v.Name)
			}
		})
		if v.Secret || v.Credentials {
			secrets[v.Name] = true
		}
	}
	for _, name := range []string{"RUNYARD_ADMIN_API_KEY", "RUNYARD_MONGO_URI", "RUNYARD_NATS_URL"} {
		if !secrets[name] {
			t.Errorf("%s is not marked Secret", name)
		}
	}
	// Vars returns a copy: changing it changes nothing for the next caller.
	vs[0].Name = "CHANGED"
	if config.Vars()[0].Name == "CHANGED" {
		t.Error("Vars() returns the package's own slice")
	}
}

func TestLogMasksSecrets(t *testing.T) {
	t.Parallel()
	env := distributed()
	env["RUNYARD_ADMIN_API_KEY"] = secret + "-0123456789abcdef"
	c, err := config.Load(config.ModeGateway, lookup(env))
	if err != nil {
		t.Fatalf("Load() = %v", err)
	}
	var buf bytes.Buffer
	c.Log(zerolog.New(&buf))
	out := buf.String()
	if strings.Contains(out, secret) {
		t.Fatalf("Log() output leaks a secret: %s", out)
	}
	var line struct {
		Message string            `json:"message"`
		Config  map[string]string `json:"config"`
	}
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("Log() output is not one JSON object: %v: %s", err, out)
	}
	for _, v := range config.Vars() {
		if _, ok := line.Config[v.Name]; !ok {
			t.Errorf("Log() output lacks %s", v.Name)
		}
	}
	for name, want := range map[string]string{
		"RUNYARD_ADMIN_API_KEY": "****",
		"RUNYARD_MONGO_URI":     "mongodb://redacted@mongo:27017/?authSource=admin",
		"RUNYARD_NATS_URL":      "nats://nats:4222",
		"RUNYARD_HTTP_ADDR":     ":6789",
	} {
		if got := line.Config[name]; got != want {
			t.Errorf("logged %s = %q, want %q", name, got, want)
		}
	}
}

func TestLogLeavesUnsetSecretEmpty(t *testing.T) {
	t.Parallel()
	c, err := config.Load(config.ModeStandalone, lookup(nil))
	if err != nil {
		t.Fatalf("Load() = %v", err)
	}
	var buf bytes.Buffer
	c.Log(zerolog.New(&buf))
	var line struct {
		Config map[string]string `json:"config"`
	}
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("Log() output is not JSON: %v: %s", err, buf.String())
	}
	for _, name := range []string{"RUNYARD_ADMIN_API_KEY", "RUNYARD_MONGO_URI", "RUNYARD_NATS_URL"} {
		if got, ok := line.Config[name]; !ok || got != "" {
			t.Errorf("logged %s = %q (present %v), want present and empty", name, got, ok)
		}
	}
}

func TestMongoURIWithReplicaSetHosts(t *testing.T) {
	t.Parallel()
	env := map[string]string{"RUNYARD_MONGO_URI": "mongodb://u:p%40ss@a:27017,b:27017,c/?replicaSet=rs0", "RUNYARD_NATS_URL": "nats://n:4222"}
	c, err := config.Load(config.ModeExecutor, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	c.Log(zerolog.New(&buf))
	if strings.Contains(buf.String(), "p%40ss") || !strings.Contains(buf.String(), "mongodb://redacted@a:27017,b:27017,c/?replicaSet=rs0") {
		t.Fatalf("logged %s", buf.String())
	}
}

func TestSecretKey(t *testing.T) {
	t.Parallel()
	key := strings.Repeat("k", 32)
	for val, ok := range map[string]bool{
		base64.StdEncoding.EncodeToString([]byte(key)):      true,
		base64.RawURLEncoding.EncodeToString([]byte(key)):   true,
		base64.StdEncoding.EncodeToString([]byte(key[:16])): false,
		"not-base64-at-all!!":                               false,
	} {
		env := map[string]string{"RUNYARD_SECRET_KEY": val}
		c, err := config.Load(config.ModeStandalone, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
		if ok != (err == nil) {
			t.Errorf("RUNYARD_SECRET_KEY=%q: %v", val, err)
		}
		if ok && string(c.SecretKey) != key {
			t.Errorf("RUNYARD_SECRET_KEY=%q decoded to %q", val, c.SecretKey)
		}
		if err != nil && strings.Contains(err.Error(), val) {
			t.Errorf("the error shows the key: %v", err)
		}
	}
}
