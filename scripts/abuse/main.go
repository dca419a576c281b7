// Command abuse replays hostile-client attacks against a fresh announce
// server each (loopback only, bounded in count and time) and prints one
// table: attack, load sent, server RSS before and after, /healthz during and
// after, data lost. scripts/abuse.sh builds the server and runs it.
package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

var (
	bin  = flag.String("bin", "bin/announce", "the announce binary")
	gets = flag.Int("gets", 1_000_000, "GETs of distinct channel names")
	wsN  = flag.Int("ws", 5000, "WebSocket connections declaring a largest frame")
	only = flag.String("only", "", "run only the attack whose name contains this")
)

type row struct {
	attack, load         string
	before, after        string
	healthDuring, health string
	lost                 string
}

func main() {
	flag.Parse()
	http.DefaultClient.Timeout = 5 * time.Second // a server that stopped accepting must not hang the table
	rows := []row{
		run("distinct-name GETs", nil, "", distinctGets),
		run("long-polls on unknown names", nil, "", unknownLongPolls),
		run("declared WS frames", nil, "", declaredFrames),
		run("publish flood, --publish-rate 100", []string{"--publish-rate", "100", "--publish-burst", "100"}, "", publishFlood),
		run("conns from one IP, --max-conns-per-ip 50", []string{"--max-conns-per-ip", "50"}, "", perIPConns),
		run("EMFILE (ulimit -n 100)", nil, "100", emfile),
	}
	fmt.Printf("| %s | %s | %s | %s | %s | %s | %s |\n", "attack", "load sent", "RSS before", "RSS after", "/healthz during", "/healthz after", "data lost")
	fmt.Println("|---|---|---|---|---|---|---|")
	for _, r := range rows {
		fmt.Printf("| %s | %s | %s | %s | %s | %s | %s |\n", r.attack, r.load, r.before, r.after, r.healthDuring, r.health, r.lost)
	}
}

type server struct {
	url, addr string
	debug     string // --debug-addr, whose heap profile forces a GC
	cmd       *exec.Cmd
}

// run starts a fresh server, publishes a canary, runs attack (which
// returns the load it sent and checks /healthz while it runs), then reads
// RSS, /healthz and the canary.
func run(name string, args []string, nofile string, attack func(s *server, during func() string) string) row {
	if !strings.Contains(name, *only) {
		return row{attack: name, load: "skipped (-only)"}
	}
	dir, _ := os.MkdirTemp("", "abuse")
	defer os.RemoveAll(dir)
	addr, debug := freeAddr(), freeAddr()
	cmdline := fmt.Sprintf("exec %s serve --listen %s --debug-addr %s --data-dir %s --publish-key abuse-key %s", *bin, addr, debug, dir, strings.Join(args, " "))
	if nofile != "" {
		cmdline = "ulimit -n " + nofile + "; " + cmdline
	}
	cmd := exec.Command("bash", "-c", cmdline)
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		panic(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	s := &server{url: "http://" + addr, addr: addr, debug: debug, cmd: cmd}
	for i := 0; i < 200 && healthz(s) != "ok"; i++ {
		time.Sleep(50 * time.Millisecond)
	}
	publish(s, "canary", "still here", "abuse-key")
	r := row{attack: name, before: rss(cmd.Process.Pid)}
	var during atomic.Value
	during.Store("not checked")
	check := func() string { h := healthz(s); during.Store(h); return h }
	r.load = attack(s, check)
	r.healthDuring = during.Load().(string)
	time.Sleep(time.Second)
	r.after, r.health = rss(cmd.Process.Pid), healthz(s)
	r.lost = "0"
	if c := current(s, "canary"); c != "still here" {
		r.lost = "canary gone: " + c
	}
	return r
}

func rss(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for l := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return fmt.Sprintf("%d MiB", kb/1024)
		}
	}
	return "?"
}

func healthz(s *server) string {
	c := http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get(s.url + "/healthz")
	if err != nil {
		return "fail"
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return strconv.Itoa(resp.StatusCode)
	}
	return "ok"
}

func publish(s *server, ch, content, key string) int {
	req, _ := http.NewRequest("POST", s.url+"/channels/"+ch+"/messages", strings.NewReader(`{"content":`+strconv.Quote(content)+`}`))
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func current(s *server, ch string) string {
	resp, err := http.DefaultClient.Get(s.url + "/channels/" + ch)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	var info struct {
		Current struct{ Content string } `json:"current"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&info)
	return info.Current.Content
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// heap is the server's live heap: the heap profile's gc=1 collects first.
func heap(s *server) string {
	if resp, err := http.Get("http://" + s.debug + "/debug/pprof/heap?gc=1"); err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	return fmt.Sprintf("%.0f MiB", metric(s, "go_memstats_heap_alloc_bytes")/(1<<20))
}

// metric reads one unlabelled series of /metrics (-1 when absent).
func metric(s *server, name string) float64 {
	resp, err := http.Get(s.url + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return -1
}

func distinctGets(s *server, during func() string) string {
	before := heap(s)
	var next atomic.Int64
	var wg sync.WaitGroup
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	for range 32 {
		wg.Go(func() {
			c := http.Client{Transport: tr}
			for {
				i := next.Add(1)
				if i > int64(*gets) {
					return
				}
				resp, err := c.Get(fmt.Sprintf("%s/channels/x-%d", s.url, i))
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				if i == int64(*gets)/2 {
					during()
				}
			}
		})
	}
	wg.Wait()
	return fmt.Sprintf("%d GETs /channels/x-N, 32 clients; channels cached after: %.0f; heap %s -> %s",
		*gets, metric(s, "announce_channels_cached"), before, heap(s))
}

func declaredFrames(s *server, during func() string) string {
	before := heap(s)
	var conns []net.Conn
	for i := 0; i < *wsN; i++ {
		c, err := net.Dial("tcp", s.addr)
		if err != nil {
			break
		}
		conns = append(conns, c)
		fmt.Fprintf(c, "GET /channels/ws-%d/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", i)
		r := bufio.NewReader(c)
		if resp, err := http.ReadResponse(r, nil); err != nil || resp.StatusCode != 101 {
			break
		}
		h := []byte{0x81, 0x80 | 127}
		h = binary.BigEndian.AppendUint64(h, 64<<10)
		c.Write(append(h, 1, 2, 3, 4)) // 14 bytes: a frame of the limit, then nothing
	}
	time.Sleep(2 * time.Second)
	during()
	after := heap(s)
	for _, c := range conns {
		c.Close()
	}
	return fmt.Sprintf("%d WebSockets x 14-byte header (heap %s -> %s)", len(conns), before, after)
}

func publishFlood(s *server, during func() string) string {
	var acked, limited atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for ctx.Err() == nil {
				switch publish(s, "flood", strings.Repeat("x", 1024), "abuse-key") {
				case 201:
					acked.Add(1)
				case 429:
					limited.Add(1)
				}
			}
		})
	}
	time.Sleep(5 * time.Second)
	during()
	wg.Wait()
	resp, _ := http.Get(s.url + "/channels/flood")
	var info struct {
		Current struct{ ID int64 } `json:"current"`
	}
	if resp != nil {
		_ = json.NewDecoder(resp.Body).Decode(&info)
		resp.Body.Close()
	}
	if info.Current.ID != acked.Load() {
		fmt.Fprintf(os.Stderr, "publish flood: %d acknowledged, current id %d\n", acked.Load(), info.Current.ID)
	}
	return fmt.Sprintf("16 clients x 10 s of 1 KiB publishes: %d acked (= current id %d), %d got 429", acked.Load(), info.Current.ID, limited.Load())
}

func perIPConns(s *server, during func() string) string {
	var conns []net.Conn
	for range 200 {
		c, err := net.Dial("tcp", s.addr)
		if err != nil {
			break
		}
		conns = append(conns, c)
	}
	statuses := map[int]int{}
	for i, c := range conns {
		if i < 50 {
			continue // the first 50 stay idle and hold their places
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "GET /channels/x HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			statuses[0]++
			continue
		}
		statuses[resp.StatusCode]++
		resp.Body.Close()
	}
	during() // a liveness probe past the limit still gets 200
	for _, c := range conns {
		c.Close()
	}
	return fmt.Sprintf("200 connections, 150 asking GET /channels/x: %d answered 429, %d closed unanswered (at most 64 refusals are written at once), %d 200",
		statuses[429], statuses[0], statuses[200])
}

func unknownLongPolls(s *server, during func() string) string {
	before := heap(s)
	var next atomic.Int64
	var wg sync.WaitGroup
	tr := &http.Transport{MaxIdleConnsPerHost: 500}
	const n = 100_000
	for range 500 {
		wg.Go(func() {
			c := http.Client{Transport: tr, Timeout: 10 * time.Second}
			for {
				i := next.Add(1)
				if i > n {
					return
				}
				resp, err := c.Get(fmt.Sprintf("%s/channels/lp-%d/status?timeout=0.2", s.url, i))
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				if i == n/2 {
					during()
				}
			}
		})
	}
	wg.Wait()
	after, sessions := heap(s), metric(s, "announce_presence_sessions")
	time.Sleep(15 * time.Second) // past --presence-grace, which keeps each poll's client present for 10 s
	return fmt.Sprintf("%d long-polls on distinct unknown names, 500 at a time, 0.2 s each; channels cached after: %.0f; heap %s -> %s (%.0f presence sessions), %s 15 s later",
		n, metric(s, "announce_channels_cached"), before, after, sessions, heap(s))
}

func emfile(s *server, during func() string) string {
	var conns []net.Conn
	for range 150 {
		c, err := net.DialTimeout("tcp", s.addr, time.Second)
		if err != nil {
			continue
		}
		conns = append(conns, c)
	}
	for _, c := range conns {
		c.Close()
	}
	time.Sleep(2 * time.Second)
	during()
	return "150 connections opened and closed"
}
