package api_test

import (
	"bufio"
	"encoding/binary"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/announce/announce/announce"
)

func TestWebSocketFrameTrickledByteByByteIsPublished(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	w := dialRawWS(t, ts, "/channels/trickle/ws")
	f := frame(true, 0x1, []byte(`{"type":"publish","content":"slow"}`), true)
	for i := range f {
		w.send(t, f[i:i+1])
	}
	m := w.expectEvent(t, "ack")
	if m["id"] != float64(1) {
		t.Fatalf("ack %v, want id 1", m)
	}
	if c := currentID(t, ts, "trickle"); c != 1 {
		t.Fatalf("current id %d, want 1", c)
	}
}

// A client that declares a frame of the largest size and sends only its
// header must not make the server reserve that size: 200 of them would
// take 200 MiB if it did.
func TestWebSocketDeclaredFrameReservesOnlyWhatArrived(t *testing.T) {
	const conns, maxMessage = 200, 1 << 20
	ts := newTestServerHub(t, func(c *announce.Config) { c.MaxMessage = maxMessage })
	var ws []*rawWS
	for range conns {
		ws = append(ws, dialRawWS(t, ts, "/channels/declared/ws"))
	}
	before := heapAfterGC()
	for _, w := range ws {
		h := []byte{0x81, 0x80 | 127}
		h = binary.BigEndian.AppendUint64(h, maxMessage)
		h = append(h, 1, 2, 3, 4)        // the mask
		h = append(h, `{"type":"pub`...) // the start of the payload, no more
		w.send(t, h)
	}
	waitServerRead(t, ts)
	after := heapAfterGC()
	if grown := int64(after) - int64(before); grown > 16<<20 {
		t.Fatalf("heap grew %d MiB for %d declared frames of %d bytes: the declared length was reserved",
			grown>>20, conns, maxMessage)
	}
	// The server still serves: a new client publishes.
	ts.Publish(t, "declared", "still up")
}

func heapAfterGC() uint64 {
	runtime.GC()
	runtime.GC() // the second cycle empties the sync.Pools the first one moved aside
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// waitServerRead waits until the server's established sockets hold no
// unread byte (Linux /proc/net/tcp's rx_queue), so what was sent has been
// read and handled.
func waitServerRead(t *testing.T, ts *testServer) {
	t.Helper()
	_, port, _ := strings.Cut(ts.Addr(), ":")
	p, _ := strconv.Atoi(port)
	local := ":" + strings.ToUpper(strconv.FormatInt(int64(p), 16))
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		unread := unreadBytes(t, local)
		if unread == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server left %d bytes unread", unread)
		}
	}
}

func unreadBytes(t *testing.T, localPortSuffix string) int64 {
	t.Helper()
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var total int64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		// sl local rem st tx_queue:rx_queue ...; 01 is ESTABLISHED
		if len(fields) < 5 || !strings.HasSuffix(fields[1], localPortSuffix) || fields[3] != "01" {
			continue
		}
		_, rx, _ := strings.Cut(fields[4], ":")
		n, _ := strconv.ParseInt(rx, 16, 64)
		total += n
	}
	return total
}
