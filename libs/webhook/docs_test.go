package webhook_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/runyard/runyard/libs/webhook"
)

// TestShellRecipeOfTheDocs runs the openssl recipe of docs/events.md against a signature
// made here, so the documented way to verify stays right.
func TestShellRecipeOfTheDocs(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl is not installed")
	}
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "events.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "Shell, with the body saved")
	if ok {
		_, rest, ok = strings.Cut(rest, "```sh\n")
	}
	script, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("docs/events.md has no shell recipe under Verifying a delivery")
	}
	dir := t.TempDir()
	body := []byte(`{"type":"pipeline_run.status_changed","id":"e1","space":"default","note":"it's \"quoted\" % and $dollar"}` + "\n")
	if err := os.WriteFile(filepath.Join(dir, "body.json"), body, 0o600); err != nil {
		t.Fatal(err)
	}
	const secret, ts = "whsec_docs-recipe-secret", int64(1764590000)
	for sig, want := range map[string]string{
		webhook.Sign(secret, ts, body):               "valid",
		webhook.Sign(secret, ts+1, body):             "invalid",
		webhook.Sign("whsec_other-secret", ts, body): "invalid",
	} {
		cmd := exec.Command("sh", "-c", script)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "TS="+strconv.FormatInt(ts, 10), "SIG="+sig, "SECRET="+secret)
		out, err := cmd.CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != want {
			t.Errorf("recipe on %s: %q, %v; want %s", sig, out, err, want)
		}
	}
}
