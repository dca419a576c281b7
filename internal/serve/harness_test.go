//go:build unix

package serve_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/announce/announce/internal/testenv"
)

// The process tests run the real announce binary, built once per test run
// from the module's main package (with -race when the tests run with it, so
// a data race in the server fails them too).

// startTimeout bounds a server's start-up: the first test also waits for the
// build, and a -race binary on a loaded CI machine is slow to start.
const startTimeout = 30 * time.Second

// raceEnabled reports whether the tests were built with -race (race_test.go).
var raceEnabled bool

var build struct {
	once sync.Once
	dir  string // temporary directory holding the binary; removed by TestMain
	bin  string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
	os.Exit(code)
}

// announceBinary builds the announce command once and returns its path.
func announceBinary(t testing.TB) string {
	t.Helper()
	build.once.Do(func() {
		gomod, err := exec.Command(goTool(), "env", "GOMOD").Output()
		if err != nil {
			build.err = fmt.Errorf("go env GOMOD: %w", err)
			return
		}
		root := filepath.Dir(strings.TrimSpace(string(gomod)))
		if build.dir, err = os.MkdirTemp("", "announce-bin-"); err != nil {
			build.err = err
			return
		}
		build.bin = filepath.Join(build.dir, "announce")
		args := []string{"build", "-o", build.bin}
		if raceEnabled {
			args = append(args, "-race")
		}
		cmd := exec.Command(goTool(), append(args, ".")...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			build.err = fmt.Errorf("go %s in %s: %v\n%s", strings.Join(args, " "), root, err, out)
		}
	})
	if build.err != nil {
		t.Fatalf("building announce: %v", build.err)
	}
	return build.bin
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// cleanEnv is the test's environment without ANNOUNCE_* variables, plus extra.
func cleanEnv(extra ...string) []string {
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "ANNOUNCE_") })
	return append(env, extra...)
}

// lockedBuffer collects a process's output.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// server is one run of `announce serve`.
type server struct {
	t    *testing.T
	cmd  *exec.Cmd
	URL  string // http://127.0.0.1:port
	Addr string // 127.0.0.1:port
	out  *lockedBuffer
	done chan struct{} // closed when the process has exited
	err  error         // cmd.Wait's result, valid once done is closed
}

// serverOpts adjusts a server's start.
type serverOpts struct {
	env []string // extra environment, NAME=value
	// bare passes only --listen and --data-dir before the args, so that
	// ANNOUNCE_POLL_TIMEOUT is not overridden by the usual --poll-timeout.
	bare bool
	// nofile, when set, is the process's open-file limit (soft and hard),
	// set by the shell that execs it.
	nofile int
}

// startServer runs `announce serve --listen 127.0.0.1:PORT --data-dir dir
// --poll-timeout 30s args...` (args win: the flag package keeps the last
// value) and waits until /healthz answers. The process is killed at the
// end of the test if it still runs; its output is logged if the test failed.
func startServer(t *testing.T, dir string, args ...string) *server {
	t.Helper()
	return startServerOpts(t, serverOpts{}, dir, args...)
}

func startServerOpts(t *testing.T, o serverOpts, dir string, args ...string) *server {
	t.Helper()
	bin := announceBinary(t)
	var lastErr error
	// A free port can be taken by another process before the server binds
	// it; then the server exits at once and a new port is worth a try.
	for range 5 {
		addr := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
		all := []string{"serve", "--listen", addr, "--data-dir", dir}
		if !o.bare {
			all = append(all, "--poll-timeout", "30s")
		}
		all = append(all, args...)
		s := &server{t: t, URL: "http://" + addr, Addr: addr, out: new(lockedBuffer), done: make(chan struct{})}
		s.cmd = exec.Command(bin, all...)
		if o.nofile > 0 {
			s.cmd = exec.Command("/bin/sh", append([]string{"-c", `ulimit -n "$0" && exec "$@"`, strconv.Itoa(o.nofile), bin}, all...)...)
		}
		s.cmd.Env = cleanEnv(o.env...)
		s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
		if err := testenv.StartProcess(s.cmd, &s.err, s.done); err != nil {
			t.Fatalf("starting %s: %v", bin, err)
		}
		t.Cleanup(func() {
			s.kill()
			if t.Failed() {
				t.Logf("output of announce %s:\n%s", strings.Join(all, " "), s.out.String())
			}
		})
		if lastErr = s.waitHealthy(); lastErr == nil {
			return s
		}
		s.kill()
		if !strings.Contains(s.out.String(), "address already in use") {
			break
		}
	}
	t.Fatalf("announce serve did not come up: %v", lastErr)
	return nil
}

func (s *server) waitHealthy() error {
	deadline := time.Now().Add(startTimeout)
	client := &http.Client{Timeout: time.Second}
	for {
		select {
		case <-s.done:
			return fmt.Errorf("it exited (%v):\n%s", s.err, s.out.String())
		default:
		}
		resp, err := client.Get(s.URL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no healthy /healthz within %v (last: %v)", startTimeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// signal sends sig to the server.
func (s *server) signal(sig os.Signal) {
	s.t.Helper()
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("sending %v: %v", sig, err)
	}
}

// kill kills the server (SIGKILL) if it runs and waits for it.
func (s *server) kill() {
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Kill()
	<-s.done
}

// waitExit waits up to timeout for the process to exit and returns its exit
// status and how long it took; it fails the test if it does not exit.
func (s *server) waitExit(timeout time.Duration) (code int, took time.Duration) {
	s.t.Helper()
	start := time.Now()
	select {
	case <-s.done:
	case <-time.After(timeout):
		s.t.Fatalf("announce did not exit within %v", timeout)
	}
	return s.cmd.ProcessState.ExitCode(), time.Since(start)
}

// terminate sends SIGTERM and checks that the process exits with status 0
// within shutdownTimeout (plus a moment for the process to be reaped).
func (s *server) terminate(shutdownTimeout time.Duration) {
	s.t.Helper()
	s.signal(syscall.SIGTERM)
	code, took := s.waitExit(shutdownTimeout + 10*time.Second)
	if code != 0 {
		s.t.Fatalf("after SIGTERM announce exited with status %d, want 0", code)
	}
	if took > shutdownTimeout+2*time.Second {
		s.t.Fatalf("after SIGTERM announce took %v to exit; --shutdown-timeout is %v", took, shutdownTimeout)
	}
}

// runAnnounce runs the binary to completion (at most 30s) and returns its
// combined output and exit status.
func runAnnounce(t *testing.T, env []string, args ...string) (string, int) {
	t.Helper()
	bin := announceBinary(t) // built first: the build is not the command's time
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = cleanEnv(env...)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("running announce %s: %v", strings.Join(args, " "), err)
	}
	return string(out), cmd.ProcessState.ExitCode()
}
