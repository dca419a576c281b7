package api

import (
	"errors"
	"fmt"
	"time"

	"github.com/announce/announce/announce"
)

// sseProtocol is the SSE side of a streamSession, hijacked or through the
// ResponseWriter.
type sseProtocol struct {
	since  *uint64
	replay announce.Replay
}

func (p *sseProtocol) start(st *streamSession) error {
	r := p.replay
	p.replay = announce.Replay{}
	st.bufs = append(st.bufs[:0], []byte("retry: 3000\n\n"))
	if r.Truncated && len(r.Messages) > 0 {
		st.bufs = append(st.bufs, fmt.Appendf(nil, "event: truncated\ndata: %s\n\n", truncatedNotice(*p.since, r.Messages[0].ID)))
	}
	for _, e := range r.Messages {
		st.bufs = append(st.bufs, p.wire(e))
	}
	return st.write()
}

// readable drops what the client sends (nothing, on an event stream) and
// notices it leaving.
func (p *sseProtocol) readable(st *streamSession) error {
	var b [64]byte
	if _, err := st.Conn().Read(b[:]); err != nil {
		return errGone
	}
	return nil
}

func (p *sseProtocol) wire(e *announce.Envelope) []byte { return e.Wire(sseWire).([]byte) }

func (p *sseProtocol) presence(event []byte) []byte { return presenceFrame(event) }

func (p *sseProtocol) keepalive(st *streamSession) (time.Duration, error) {
	return st.keepalive, st.send(sseKeepalive)
}

func (p *sseProtocol) end(st *streamSession, reason error) {
	switch {
	case errors.Is(reason, announce.ErrSlowConsumer):
		// A short retry: the client should resume from history soon.
		_ = st.send(fmt.Appendf(nil, "retry: 500\nevent: error\ndata: {\"event\":\"error\",\"error\":%q}\n\n", reason.Error()))
	case errors.Is(reason, errTokenExpired):
		_ = st.send([]byte(sseTokenExpired))
	case errors.Is(reason, announce.ErrDeleted):
		_ = st.send([]byte("event: deleted\ndata: " + deletedEvent + "\n\n"))
	}
}
