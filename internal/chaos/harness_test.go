//go:build unix

package chaos_test

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/announce/announce/internal/testenv"
)

// buildAnnounce builds the announce command (with -race when the test runs
// with it) into dir and returns its path.
func buildAnnounce(t *testing.T) string {
	t.Helper()
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	gomod, err := exec.Command(goBin, "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "announce")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command(goBin, append(args, ".")...)
	cmd.Dir = filepath.Dir(strings.TrimSpace(string(gomod)))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return bin
}

// proc is one announce node process, restartable on its port after a kill.
type proc struct {
	t    *testing.T
	bin  string
	args []string
	URL  string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	out  bytes.Buffer // the latest run's output
}

func startProc(t *testing.T, bin string, args ...string) *proc {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	p := &proc{t: t, bin: bin, URL: "http://" + addr,
		args: append([]string{"serve", "--listen", addr, "--log-level", "warn"}, args...)}
	p.start()
	t.Cleanup(p.kill)
	return p
}

// start runs the process and waits until /healthz answers.
func (p *proc) start() {
	p.t.Helper()
	p.mu.Lock()
	p.out.Reset()
	p.cmd = exec.Command(p.bin, p.args...)
	p.cmd.Env = append(os.Environ(), "ANNOUNCE_PUBLISH_KEY=")
	p.cmd.Stdout, p.cmd.Stderr = &lockedWriter{mu: &p.mu, w: &p.out}, &lockedWriter{mu: &p.mu, w: &p.out}
	p.done = make(chan struct{})
	var werr error
	if err := testenv.StartProcess(p.cmd, &werr, p.done); err != nil {
		p.mu.Unlock()
		p.t.Fatalf("starting announce: %v", err)
	}
	done := p.done
	p.mu.Unlock()
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-done:
			p.t.Fatalf("announce %s exited at start: %s", strings.Join(p.args, " "), p.output())
		default:
		}
		if resp, err := client.Get(p.URL + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("announce at %s not healthy within a minute: %s", p.URL, p.output())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill sends SIGKILL and waits for the exit; nothing if it is not running.
func (p *proc) kill() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	_ = cmd.Process.Kill()
	<-done
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (w *lockedWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(b)
}

// linkProxy forwards a node's TCP connections to Redis. pause stalls every
// byte both ways until resume, as a hung network would; cut closes every
// connection, as a reset would.
type linkProxy struct {
	Addr   string
	target string
	ln     net.Listener

	mu    sync.Mutex
	gate  chan struct{} // nil: forwarding; else closed by resume
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func newLinkProxy(t *testing.T, target string) *linkProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &linkProxy{Addr: ln.Addr().String(), target: target, ln: ln, conns: make(map[net.Conn]struct{})}
	p.wg.Go(p.accept)
	t.Cleanup(p.close)
	return p
}

func (p *linkProxy) pause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gate == nil {
		p.gate = make(chan struct{})
	}
}

func (p *linkProxy) resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gate != nil {
		close(p.gate)
		p.gate = nil
	}
}

func (p *linkProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

func (p *linkProxy) close() {
	p.ln.Close()
	p.resume()
	p.cut()
	p.wg.Wait()
}

func (p *linkProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.DialTimeout("tcp", p.target, time.Second)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[s] = struct{}{}, struct{}{}
		p.mu.Unlock()
		p.wg.Go(func() { p.pipe(s, c) })
		p.wg.Go(func() { p.pipe(c, s) })
	}
}

func (p *linkProxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			gate := p.gate
			p.mu.Unlock()
			if gate != nil {
				<-gate
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
