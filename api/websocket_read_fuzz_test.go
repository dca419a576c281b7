package api_test

import (
	"encoding/binary"
	"io"
	"testing"
	"time"

	"github.com/announce/announce/announce"
)

// FuzzWebSocketStream sends arbitrary client bytes, cut into two writes at
// an arbitrary point, on a real WebSocket: the frame reader may answer, close
// or wait for more, but never panics, and the server keeps serving.
func FuzzWebSocketStream(f *testing.F) {
	pub := frame(true, 0x1, []byte(`{"type":"publish","content":"hi"}`), true)
	f.Add(pub, uint16(3))
	f.Add(append(frame(false, 0x1, []byte(`{"type":"pub`), true), frame(true, 0x0, []byte(`lish","content":"x"}`), true)...), uint16(9))
	f.Add(frame(true, 0x9, []byte("ping"), true), uint16(1))
	f.Add(binary.BigEndian.AppendUint64([]byte{0x81, 0xff}, 1<<20), uint16(2)) // declares more than the limit
	f.Add(binary.BigEndian.AppendUint64([]byte{0x81, 0xff}, 200), uint16(10))  // declares, sends nothing
	f.Add([]byte{0x88, 0x80, 0, 0, 0, 0}, uint16(0))
	ts := newTestServerHub(f, func(c *announce.Config) { c.MaxMessage = 256 })
	f.Fuzz(func(t *testing.T, data []byte, cut uint16) {
		w := dialRawWS(t, ts, "/channels/fuzz/ws")
		defer w.conn.Close()
		at := int(cut) % (len(data) + 1)
		_, _ = w.conn.Write(data[:at])
		_, _ = w.conn.Write(data[at:])
		// Whatever it answers, read for a moment; the server owes nothing more.
		_ = w.conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		_, _ = io.Copy(io.Discard, w.r)
		ts.Publish(t, "fuzz-alive", "still serving")
	})
}
