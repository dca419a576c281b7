package cli_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/announce/token"
	"github.com/announce/announce/api"
	"github.com/announce/announce/internal/cli"
)

// tokenRun runs `announce token args...` and returns the exit status and output.
func tokenRun(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	run, ok := cli.Commands["token"]
	if !ok {
		t.Fatal(`no "token" command`)
	}
	var out, errOut bytes.Buffer
	code := run(args, strings.NewReader(""), &out, &errOut)
	return code, strings.TrimSpace(out.String()), errOut.String()
}

// tokenAPI serves a real API on a memory hub, configured by cfg.
func tokenAPI(t *testing.T, cfg api.Config) string {
	t.Helper()
	store := announce.NewMemoryStore(10)
	hub, err := announce.NewHub(announce.Config{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Hub = hub
	s, err := api.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		_ = s.Shutdown(context.Background())
		hs.Close()
		_ = hub.Shutdown(context.Background())
		_ = store.Close()
	})
	return hs.URL
}

func tokenStatus(t *testing.T, method, url, auth string) int {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader("from a CLI token"))
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestTokenCommandWithSecret(t *testing.T) {
	t.Setenv("ANNOUNCE_TOKEN_SECRET", "")
	t.Setenv("ANNOUNCE_PUBLISH_KEY", "")
	const secret = "cli-test-secret-0123456789abcdef"
	code, tok, stderr := tokenRun(t, "-c", "private-cli", "--duration", "90m", "--publish", "--name", "ops", "--secret", secret)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	s, _ := token.NewSigner([]byte(secret), nil)
	c, err := s.Verify(tok)
	if err != nil {
		t.Fatalf("printed token %q does not verify: %v", tok, err)
	}
	if c.Channel != "private-cli" || !c.Publish || c.Name() != "ops" {
		t.Errorf("claims %+v", c)
	}
	if d := time.Until(c.Expires()); d < 89*time.Minute || d > 90*time.Minute {
		t.Errorf("expires in %v, want 90m", d)
	}
	// A server with that secret lets it observe and publish.
	url := tokenAPI(t, api.Config{TokenSecret: secret, PublishKey: "some key"})
	if got := tokenStatus(t, http.MethodGet, url+"/channels/private-cli?token="+tok, ""); got != http.StatusOK {
		t.Errorf("observe: %d", got)
	}
	if got := tokenStatus(t, http.MethodPost, url+"/channels/private-cli/messages", tok); got != http.StatusCreated {
		t.Errorf("publish: %d", got)
	}
	if got := tokenStatus(t, http.MethodGet, url+"/channels/private-other?token="+tok, ""); got != http.StatusForbidden {
		t.Errorf("other channel: %d", got)
	}
}

// With no secret given, the command signs like a server that has none: from the publish key.
func TestTokenCommandFromEnvironment(t *testing.T) {
	t.Setenv("ANNOUNCE_TOKEN_SECRET", "")
	t.Setenv("ANNOUNCE_PUBLISH_KEY", "the-publish-key")
	code, tok, stderr := tokenRun(t, "-c", "private-env")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	url := tokenAPI(t, api.Config{PublishKey: "the-publish-key"})
	if got := tokenStatus(t, http.MethodGet, url+"/channels/private-env?token="+tok, ""); got != http.StatusOK {
		t.Errorf("observe with a key-derived token: %d", got)
	}
	if got := tokenStatus(t, http.MethodPost, url+"/channels/private-env/messages", tok); got != http.StatusForbidden {
		t.Errorf("publish without --publish: %d", got)
	}

	t.Setenv("ANNOUNCE_TOKEN_SECRET", "env-secret")
	_, tok, _ = tokenRun(t, "--channel", "private-env")
	url = tokenAPI(t, api.Config{TokenSecret: "env-secret", PublishKey: "the-publish-key"})
	if got := tokenStatus(t, http.MethodGet, url+"/channels/private-env?token="+tok, ""); got != http.StatusOK {
		t.Errorf("observe with ANNOUNCE_TOKEN_SECRET: %d", got)
	}
}

func TestTokenCommandErrors(t *testing.T) {
	t.Setenv("ANNOUNCE_TOKEN_SECRET", "")
	t.Setenv("ANNOUNCE_PUBLISH_KEY", "")
	for _, args := range [][]string{
		{"--secret", "s"},              // no channel
		{"-c", "a/b", "--secret", "s"}, // bad channel
		{"-c", "x", "--secret", "s", "--duration", "25h"},
		{"-c", "x", "--secret", "s", "--duration", "soon"},
		{"-c", "x"},                           // no secret
		{"-c", "x", "--secret", "s", "extra"}, // stray argument
		{"--no-such-flag"},
	} {
		code, out, stderr := tokenRun(t, args...)
		if code != 2 || out != "" || stderr == "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 2, nothing, a reason", args, code, out, stderr)
		}
	}
	if code, _, _ := tokenRun(t, "--help"); code != 0 {
		t.Errorf("--help: exit %d", code)
	}
}
