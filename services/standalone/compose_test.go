package main

// These tests keep the deployment files in step with the binary: a mode renamed, a variable
// dropped from config.Vars or a validation rule tightened breaks them here rather than in a
// container that will not start. They read only files of the repository and need no Docker.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"go.yaml.in/yaml/v3"

	"github.com/runyard/runyard/libs/config"
)

// runyardServices are the compose services that run the runyard binary, one per mode.
var runyardServices = []string{"gateway", "executor", "syncworker", "notifier"}

func TestComposeFile(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		// env stands in for the shell and .env file that `docker compose` interpolates from.
		env []string
	}{
		// What `docker compose up` gets on a fresh checkout: every ${VAR:-default} must hold.
		{name: "defaults"},
		{name: "overrides", env: []string{
			"RUNYARD_ADMIN_API_KEY=override-admin-key-0123456789",
			"RUNYARD_EXECUTOR_WORKERS=7",
			"RUNYARD_LOG_LEVEL=debug",
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root := repoRoot(t)
			p := loadCompose(t, root, tc.env)
			for _, name := range append([]string{"nats", "mongo"}, runyardServices...) {
				if _, ok := p.Services[name]; !ok {
					t.Fatalf("docker-compose.yml has no service %q", name)
				}
			}
			for _, kv := range tc.env {
				name, want, _ := strings.Cut(kv, "=")
				found := false
				for _, svc := range runyardServices {
					if v, ok := p.Services[svc].Environment[name]; ok && v != nil {
						found = true
						if *v != want {
							t.Errorf("%s: %s = %q, want the shell's %q", svc, name, *v, want)
						}
					}
				}
				if !found {
					t.Errorf("no runyard service takes %s from the shell", name)
				}
			}

			image := p.Services[runyardServices[0]].Image
			for _, name := range runyardServices {
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					checkComposeService(t, root, p, p.Services[name], image)
				})
			}
		})
	}
}

func loadCompose(t *testing.T, root string, env []string) *types.Project {
	t.Helper()
	// No WithOsEnv and no WithDotEnv: the result must not depend on the machine running the
	// test, and nothing outside the repository is read.
	opts, err := cli.NewProjectOptions(
		[]string{filepath.Join(root, "docker-compose.yml")},
		cli.WithName("runyard"),
		cli.WithWorkingDirectory(root),
		cli.WithEnv(env),
		cli.WithInterpolation(true),
		cli.WithResolvedPaths(true),
	)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := opts.LoadProject(ctx)
	if err != nil {
		t.Fatalf("load docker-compose.yml: %v", err)
	}
	return p
}

func checkComposeService(t *testing.T, root string, p *types.Project, svc types.ServiceConfig, image string) {
	name := svc.Name

	if svc.Build == nil {
		t.Fatalf("%s: no build section; it must build deployments/Dockerfile", name)
	}
	dockerfile := svc.Build.Dockerfile
	if !filepath.IsAbs(dockerfile) {
		dockerfile = filepath.Join(svc.Build.Context, dockerfile)
	}
	if want := filepath.Join(root, "deployments", "Dockerfile"); filepath.Clean(dockerfile) != want {
		t.Errorf("%s: builds %s, want %s", name, dockerfile, want)
	}
	if filepath.Clean(svc.Build.Context) != root {
		// The Dockerfile copies go.work, libs and services from the context.
		t.Errorf("%s: build context %s, want the repository root %s", name, svc.Build.Context, root)
	}
	if svc.Image == "" || svc.Image != image {
		t.Errorf("%s: image %q; the runyard services must share one image (%q)", name, svc.Image, image)
	}

	// The image's ENTRYPOINT is the binary, so the command is its argument list.
	if len(svc.Entrypoint) > 0 {
		t.Errorf("%s: entrypoint %q overrides the image's runyard binary", name, svc.Entrypoint)
	}
	if len(svc.Command) != 1 {
		t.Fatalf("%s: command %q, want exactly one argument: the mode", name, svc.Command)
	}
	mode, ok := Modes[svc.Command[0]]
	if !ok {
		t.Fatalf("%s: command %q is not a mode of the binary (%v)", name, svc.Command[0], modeNames())
	}
	if svc.Command[0] != name {
		t.Errorf("service %s runs mode %q; name the service after its mode", name, svc.Command[0])
	}

	env := make(map[string]string, len(svc.Environment))
	for k, v := range svc.Environment {
		if !isConfigVar(k) {
			t.Errorf("%s: environment sets %s, which Runyard does not read (see `runyard env`)", name, k)
		}
		if v != nil {
			env[k] = *v
		}
	}
	cfg, err := config.Load(mode, lookupIn(env))
	if err != nil {
		t.Fatalf("%s: the service's environment does not start mode %s: %v", name, mode, err)
	}
	checkHost(t, name, "RUNYARD_NATS_URL", cfg.NATSURL, p, "nats")
	checkHost(t, name, "RUNYARD_MONGO_URI", cfg.MongoURI, p, "mongo")
	for _, dep := range []string{"nats", "mongo"} {
		if _, ok := svc.DependsOn[dep]; !ok {
			t.Errorf("%s: does not depend on %s", name, dep)
		}
	}
	if d := svc.DependsOn["mongo"]; d.Condition != types.ServiceConditionHealthy || p.Services["mongo"].HealthCheck == nil {
		// Runyard creates indexes at start-up and exits if MongoDB does not answer yet.
		t.Errorf("%s: should wait for a healthy mongo (condition %q, mongo healthcheck set: %v)",
			name, d.Condition, p.Services["mongo"].HealthCheck != nil)
	}

	if mode == config.ModeGateway {
		port := portOf(t, cfg.HTTPAddr)
		published := false
		for _, pc := range svc.Ports {
			published = published || (pc.Target == uint32(port) && pc.Published != "")
		}
		if !published {
			t.Errorf("%s: listens on %s (RUNYARD_HTTP_ADDR) but does not publish port %d: %+v", name, cfg.HTTPAddr, port, svc.Ports)
		}
		return
	}
	// `docker compose up --scale` starts several containers of a service: a fixed name or a
	// published host port would collide.
	if svc.ContainerName != "" {
		t.Errorf("%s: container_name %q prevents --scale", name, svc.ContainerName)
	}
	if len(svc.Ports) > 0 {
		t.Errorf("%s: publishes ports %+v, which prevents --scale", name, svc.Ports)
	}
}

// checkHost asserts that every URL of a comma-separated list points at the compose service.
func checkHost(t *testing.T, svc, name, value string, p *types.Project, want string) {
	t.Helper()
	for _, part := range strings.Split(value, ",") {
		u, err := url.Parse(strings.TrimSpace(part))
		if err != nil {
			t.Errorf("%s: %s: %v", svc, name, err)
			continue
		}
		if u.Hostname() != want {
			t.Errorf("%s: %s points at host %q, want the %q service", svc, name, u.Hostname(), want)
		}
	}
	if _, ok := p.Services[want]; !ok {
		t.Errorf("%s: %s needs a %q service", svc, name, want)
	}
}

// k8sObject holds the fields of the manifests that the test looks at.
type k8sObject struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name      string            `yaml:"name"`
		Namespace string            `yaml:"namespace"`
		Labels    map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Data       map[string]string `yaml:"data"`
	StringData map[string]string `yaml:"stringData"`
	Spec       struct {
		Replicas *int             `yaml:"replicas"`
		Selector map[string]any   `yaml:"selector"`
		Ports    []k8sServicePort `yaml:"ports"`
		Template *k8sPodTemplate  `yaml:"template"`
	} `yaml:"spec"`

	file string
}

type k8sServicePort struct {
	Port       int    `yaml:"port"`
	TargetPort any    `yaml:"targetPort"`
	Name       string `yaml:"name"`
}

type k8sPodTemplate struct {
	Metadata struct {
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Spec struct {
		TerminationGracePeriodSeconds *int           `yaml:"terminationGracePeriodSeconds"`
		Containers                    []k8sContainer `yaml:"containers"`
	} `yaml:"spec"`
}

type k8sContainer struct {
	Name    string   `yaml:"name"`
	Image   string   `yaml:"image"`
	Command []string `yaml:"command"`
	Args    []string `yaml:"args"`
	Ports   []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	Env []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			ConfigMapKeyRef *k8sKeyRef `yaml:"configMapKeyRef"`
			SecretKeyRef    *k8sKeyRef `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	EnvFrom []struct {
		ConfigMapRef *k8sKeyRef `yaml:"configMapRef"`
		SecretRef    *k8sKeyRef `yaml:"secretRef"`
	} `yaml:"envFrom"`
	ReadinessProbe *k8sProbe `yaml:"readinessProbe"`
	LivenessProbe  *k8sProbe `yaml:"livenessProbe"`
	Resources      struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
}

type k8sKeyRef struct {
	Name string `yaml:"name"`
	Key  string `yaml:"key"`
}

type k8sProbe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"`
	} `yaml:"httpGet"`
}

func TestKubernetesManifests(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	dir := filepath.Join(root, "deployments", "kubernetes")
	objs, files := loadManifests(t, dir)

	var (
		configMaps  = map[string]map[string]string{}
		secrets     = map[string]map[string]string{}
		deployments []k8sObject
		services    []k8sObject
	)
	for _, o := range objs {
		if o.Kind != "Namespace" && o.Metadata.Namespace != "runyard" {
			t.Errorf("%s: %s %s is in namespace %q, want runyard", o.file, o.Kind, o.Metadata.Name, o.Metadata.Namespace)
		}
		switch o.Kind {
		case "ConfigMap":
			configMaps[o.Metadata.Name] = o.Data
		case "Secret":
			vals := make(map[string]string, len(o.Data)+len(o.StringData))
			for k, v := range o.Data {
				b, err := base64.StdEncoding.DecodeString(v)
				if err != nil {
					t.Errorf("%s: secret %s: data.%s is not base64: %v", o.file, o.Metadata.Name, k, err)
				}
				vals[k] = string(b)
			}
			// The API server merges stringData over data.
			for k, v := range o.StringData {
				vals[k] = v
			}
			secrets[o.Metadata.Name] = vals
		case "Deployment":
			deployments = append(deployments, o)
		case "Service":
			services = append(services, o)
		}
	}
	for kind, byName := range map[string]map[string]map[string]string{"ConfigMap": configMaps, "Secret": secrets} {
		if len(byName) == 0 {
			t.Errorf("no %s among the manifests", kind)
		}
		for name, data := range byName {
			for k := range data {
				if !isConfigVar(k) {
					t.Errorf("%s %s: key %s is not a variable Runyard reads (see `runyard env`)", kind, name, k)
				}
			}
		}
	}

	var modes []string
	for _, d := range deployments {
		tmpl := d.Spec.Template
		if tmpl == nil || len(tmpl.Spec.Containers) != 1 {
			t.Errorf("%s: deployment %s: want a pod template with one container", d.file, d.Metadata.Name)
			continue
		}
		c := tmpl.Spec.Containers[0]
		where := d.file + ": " + d.Metadata.Name
		if len(c.Command) > 0 {
			t.Errorf("%s: command %q replaces the image's runyard entrypoint; set args", where, c.Command)
		}
		if len(c.Args) != 1 {
			t.Errorf("%s: args %q, want exactly one: the mode", where, c.Args)
			continue
		}
		mode, ok := Modes[c.Args[0]]
		if !ok {
			t.Errorf("%s: args[0] %q is not a mode of the binary (%v)", where, c.Args[0], modeNames())
			continue
		}
		modes = append(modes, c.Args[0])

		env := containerEnv(t, where, c, configMaps, secrets)
		cfg, err := config.Load(mode, lookupIn(env))
		if err != nil {
			t.Errorf("%s: the container's environment does not start mode %s: %v", where, mode, err)
			continue
		}
		grace := 30 * time.Second // the Kubernetes default
		if s := tmpl.Spec.TerminationGracePeriodSeconds; s != nil {
			grace = time.Duration(*s) * time.Second
		}
		if grace <= cfg.ShutdownTimeout {
			// Otherwise the kubelet kills the process while it is still handing work back.
			t.Errorf("%s: terminationGracePeriodSeconds %s is not longer than RUNYARD_SHUTDOWN_TIMEOUT %s", where, grace, cfg.ShutdownTimeout)
		}
		if len(c.Resources.Requests) == 0 || len(c.Resources.Limits) == 0 {
			t.Errorf("%s: set resource requests and limits", where)
		}
		if mode == config.ModeGateway {
			checkGatewayPod(t, where, d, c, cfg, services)
		}
	}
	sort.Strings(modes)
	if want := []string{"executor", "gateway", "notifier", "syncworker"}; !slices.Equal(modes, want) {
		t.Errorf("deployments run modes %v, want one each of %v", modes, want)
	}

	// kubectl apply -k applies only what kustomization.yaml lists.
	kust, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		Resources []string `yaml:"resources"`
	}
	if err := yaml.Unmarshal(kust, &k); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	for _, f := range files {
		if !slices.Contains(k.Resources, f) {
			t.Errorf("kustomization.yaml does not list %s", f)
		}
	}
}

// loadManifests decodes every YAML document of the directory's manifests (all but
// kustomization.yaml) and returns them with the manifest file names.
func loadManifests(t *testing.T, dir string) ([]k8sObject, []string) {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var (
		objs  []k8sObject
		files []string
	)
	for _, path := range paths {
		base := filepath.Base(path)
		if base == "kustomization.yaml" {
			continue
		}
		files = append(files, base)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			var o k8sObject
			err := dec.Decode(&o)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", base, err)
			}
			if o.Kind == "" {
				// An empty document, such as after a trailing ---.
				continue
			}
			o.file = base
			objs = append(objs, o)
		}
	}
	if len(objs) == 0 {
		t.Fatalf("no manifests in %s", dir)
	}
	return objs, files
}

// containerEnv resolves the container's environment as the kubelet would: envFrom first, then
// env entries, which win.
func containerEnv(t *testing.T, where string, c k8sContainer, configMaps, secrets map[string]map[string]string) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, ef := range c.EnvFrom {
		var (
			src map[string]string
			ok  bool
		)
		switch {
		case ef.ConfigMapRef != nil:
			src, ok = configMaps[ef.ConfigMapRef.Name]
		case ef.SecretRef != nil:
			src, ok = secrets[ef.SecretRef.Name]
		}
		if !ok {
			t.Errorf("%s: envFrom names a ConfigMap or Secret that the manifests do not define", where)
		}
		for k, v := range src {
			env[k] = v
		}
	}
	for _, e := range c.Env {
		if !isConfigVar(e.Name) {
			t.Errorf("%s: env %s is not a variable Runyard reads (see `runyard env`)", where, e.Name)
		}
		if e.ValueFrom == nil {
			env[e.Name] = e.Value
			continue
		}
		var (
			ref *k8sKeyRef
			src map[string]map[string]string
		)
		switch {
		case e.ValueFrom.ConfigMapKeyRef != nil:
			ref, src = e.ValueFrom.ConfigMapKeyRef, configMaps
		case e.ValueFrom.SecretKeyRef != nil:
			ref, src = e.ValueFrom.SecretKeyRef, secrets
		default:
			t.Errorf("%s: env %s: unsupported valueFrom", where, e.Name)
			continue
		}
		v, ok := src[ref.Name][ref.Key]
		if !ok {
			t.Errorf("%s: env %s refers to %s/%s, which the manifests do not define", where, e.Name, ref.Name, ref.Key)
		}
		env[e.Name] = v
	}
	return env
}

func checkGatewayPod(t *testing.T, where string, d k8sObject, c k8sContainer, cfg config.Config, services []k8sObject) {
	t.Helper()
	port := portOf(t, cfg.HTTPAddr)
	named := map[string]int{}
	listed := false
	for _, p := range c.Ports {
		named[p.Name] = p.ContainerPort
		listed = listed || p.ContainerPort == port
	}
	if !listed {
		t.Errorf("%s: listens on %s (RUNYARD_HTTP_ADDR) but does not declare containerPort %d", where, cfg.HTTPAddr, port)
	}
	resolve := func(p any) int {
		switch p := p.(type) {
		case int:
			return p
		case string:
			return named[p]
		}
		return 0
	}
	for _, probe := range []struct {
		name, path string
		p          *k8sProbe
	}{
		// Readiness follows NATS and the store; liveness only the process.
		{"readinessProbe", "/readyz", c.ReadinessProbe},
		{"livenessProbe", "/healthz", c.LivenessProbe},
	} {
		if probe.p == nil || probe.p.HTTPGet == nil {
			t.Errorf("%s: no HTTP %s", where, probe.name)
			continue
		}
		if g := probe.p.HTTPGet; g.Path != probe.path || resolve(g.Port) != port {
			t.Errorf("%s: %s GET %s on port %v, want %s on %d", where, probe.name, g.Path, g.Port, probe.path, port)
		}
	}

	labels := d.Spec.Template.Metadata.Labels
	found := false
	for _, s := range services {
		sel, _ := s.Spec.Selector["app.kubernetes.io/name"].(string)
		if sel == "" || labels["app.kubernetes.io/name"] != sel {
			continue
		}
		found = true
		for _, sp := range s.Spec.Ports {
			if resolve(sp.TargetPort) != port {
				t.Errorf("%s: service %s targets port %v, but the gateway listens on %d", s.file, s.Metadata.Name, sp.TargetPort, port)
			}
		}
	}
	if !found {
		t.Errorf("%s: no Service selects the gateway pods", where)
	}
}

func TestDockerfile(t *testing.T) {
	t.Parallel()
	f, err := os.Open(filepath.Join(repoRoot(t), "deployments", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ins := dockerInstructions(t, f)

	// The final stage starts at the last FROM; its ENTRYPOINT and CMD are what a container runs.
	last := 0
	for i, in := range ins {
		if in.op == "FROM" {
			last = i
		}
	}
	var entrypoint, cmd, expose []string
	binaryCopied := false
	for _, in := range ins[last:] {
		switch in.op {
		case "ENTRYPOINT":
			entrypoint = execForm(t, in)
		case "CMD":
			cmd = execForm(t, in)
		case "EXPOSE":
			expose = strings.Fields(in.args)
		}
	}
	if len(entrypoint) != 1 {
		// Compose commands and Kubernetes args are only the mode: the binary must be all of
		// the entrypoint, in exec form so that it gets SIGTERM directly.
		t.Fatalf("ENTRYPOINT %q, want exactly the runyard binary in exec form", entrypoint)
	}
	for _, in := range ins[last:] {
		if in.op == "COPY" && strings.HasPrefix(in.args, "--from=") && strings.HasSuffix(in.args, " "+entrypoint[0]) {
			binaryCopied = true
		}
	}
	if !binaryCopied {
		t.Errorf("the final stage does not COPY --from the build stage to the ENTRYPOINT %s", entrypoint[0])
	}
	built := false
	for _, in := range ins[:last] {
		built = built || (in.op == "RUN" && strings.Contains(in.args, "go build") && strings.HasSuffix(in.args, "./services/standalone"))
	}
	if !built {
		t.Error("the build stage does not go build ./services/standalone, the runyard binary")
	}
	if len(cmd) != 1 {
		t.Fatalf("CMD %q, want exactly one argument: the default mode", cmd)
	}
	if _, ok := Modes[cmd[0]]; !ok {
		t.Errorf("CMD %q is not a mode of the binary (%v)", cmd[0], modeNames())
	}
	// The port a container listens on when RUNYARD_HTTP_ADDR keeps its default.
	for _, v := range config.Vars() {
		if v.Name == "RUNYARD_HTTP_ADDR" {
			if want := strconv.Itoa(portOf(t, v.Default)); !slices.Contains(expose, want) && !slices.Contains(expose, want+"/tcp") {
				t.Errorf("EXPOSE %v does not include %s, the port of RUNYARD_HTTP_ADDR's default %q", expose, want, v.Default)
			}
		}
	}
}

type dockerInstruction struct {
	op, args string
	line     int
}

// dockerInstructions splits a Dockerfile into instructions: comments dropped, continuation
// lines joined. It is enough for this repository's Dockerfile, not a full parser.
func dockerInstructions(t *testing.T, r io.Reader) []dockerInstruction {
	t.Helper()
	var (
		out   []dockerInstruction
		cur   strings.Builder
		start int
	)
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") || (line == "" && cur.Len() == 0) {
			continue
		}
		if cur.Len() == 0 {
			start = n
		}
		if cont, ok := strings.CutSuffix(line, `\`); ok {
			cur.WriteString(cont + " ")
			continue
		}
		cur.WriteString(line)
		op, args, _ := strings.Cut(strings.TrimSpace(cur.String()), " ")
		out = append(out, dockerInstruction{op: strings.ToUpper(op), args: strings.Join(strings.Fields(args), " "), line: start})
		cur.Reset()
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func execForm(t *testing.T, in dockerInstruction) []string {
	t.Helper()
	var args []string
	if err := json.Unmarshal([]byte(in.args), &args); err != nil {
		t.Errorf("Dockerfile line %d: %s %s is not in exec (JSON) form: %v", in.line, in.op, in.args, err)
	}
	return args
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.work")); err != nil {
		t.Fatalf("repository root not found from the test's directory: %v", err)
	}
	return root
}

func isConfigVar(name string) bool {
	for _, v := range config.Vars() {
		if v.Name == name {
			return true
		}
	}
	return false
}

func lookupIn(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}
}

func portOf(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("address %q: port is not a number", addr)
	}
	return n
}

func modeNames() []string {
	names := make([]string, 0, len(Modes))
	for m := range Modes {
		names = append(names, m)
	}
	sort.Strings(names)
	return names
}
