package cli

import (
	"bytes"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Targets `announce bench` can load: announce itself, or nginx + nchan
// (docs/nchan.conf) for a side-by-side comparison in the same run.
const (
	targetAnnounce = "announce"
	targetNchan    = "nchan"
)

// nchan speaks its own dialect: one subscriber location for every
// transport (/sub/CH, negotiated as WebSocket, EventSource or long-poll),
// a publisher location (/pub/CH, the body is the message), and messages
// delivered raw, without an id the bench could count by. The bench's
// content carries its sequence number ({"t":UNIXNANO,"seq":K}), so message
// K counts as id K+1 on a channel that starts empty.

// nchanPath is nchan's subscriber path for the bench's channel on the observer's server.
func (o *observer) nchanPath(kind string) string {
	return o.srv.base.Path + "/" + kind + "/" + url.PathEscape(o.b.cfg.channel)
}

// seqOf reads the sequence number the bench put in a raw content.
func seqOf(data []byte) (uint64, bool) {
	i := bytes.Index(data, []byte(`"seq":`))
	if i < 0 {
		return 0, false
	}
	return leadingUint(data[i+6:])
}

// deliverRaw records a raw content as nchan delivers it.
func (o *observer) deliverRaw(data []byte) {
	now := time.Now().UnixNano()
	seq, ok := seqOf(data)
	if !ok {
		return
	}
	sent, _ := stampOf(data, false)
	o.deliver(o.base+seq+1, sent, now)
}

// procStats reads a process's resident set and CPU time from /proc (Linux),
// under the names of the Prometheus process collector, so that a target
// without /metrics (nginx) is measured like announce.
func procStats(pid int) (map[string]float64, error) {
	out := map[string]float64{}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	for line := range strings.SplitSeq(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				kb, _ := strconv.ParseFloat(f[0], 64)
				out["process_resident_memory_bytes"] = kb * 1024
			}
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	// Fields after the command (which may hold spaces) closed by ')'.
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 {
		f := strings.Fields(string(stat[i+1:]))
		if len(f) > 13 {
			utime, _ := strconv.ParseFloat(f[11], 64)
			stime, _ := strconv.ParseFloat(f[12], 64)
			out["process_cpu_seconds_total"] = (utime + stime) / 100 // USER_HZ is 100 on Linux
		}
	}
	return out, nil
}
