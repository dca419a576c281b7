package deploy_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// systemd-analyze verify checks deploy/announce.service (its ExecStart
// pointed at a real binary, since verify wants one). Where systemd-analyze
// is absent, this check alone is skipped, and says so.
func TestSystemdUnitVerifies(t *testing.T) {
	src, err := os.ReadFile("announce.service")
	if err != nil {
		t.Fatal(err)
	}
	unit := string(src)
	for _, want := range []string{"DynamicUser=yes", "StateDirectory=announce", "--data-dir ${STATE_DIRECTORY}",
		"LimitNOFILE=", "ProtectSystem=strict", "ExecReload=/bin/kill -HUP $MAINPID"} {
		if !strings.Contains(unit, want) {
			t.Errorf("deploy/announce.service has no %q", want)
		}
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed here: `systemd-analyze verify deploy/announce.service` not run (the unit's settings above were checked)")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "announce")
	build := exec.Command(goTool(), "build", "-o", bin, "github.com/announce/announce")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building announce: %v\n%s", err, out)
	}
	const installed = "/usr/local/bin/announce"
	if !strings.Contains(unit, "ExecStart="+installed+" ") {
		t.Fatalf("deploy/announce.service no longer starts %s", installed)
	}
	path := filepath.Join(dir, "announce.service")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(unit, installed, bin)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify deploy/announce.service: %v\n%s", err, out)
	}
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}
