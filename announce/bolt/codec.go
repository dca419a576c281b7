package bolt

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/announce/announce/announce"
)

// A message's value in its channel bucket is
//
//	byte 0       valueVersion (1)
//	bytes 1-8    accept time, Unix seconds, big-endian int64
//	bytes 9-12   accept time, nanoseconds within the second, big-endian uint32
//	bytes 13-    content, UTF-8
//
// The id is the key and the channel the bucket's name, so neither is stored
// again, and the value is built before the id is known: by the publisher's
// goroutine, outside the single committer. Decoding is a few loads and one
// string copy instead of a JSON parse.
//
// Stores written before this format hold the JSON of announce.Message, which
// always starts with '{'; decode still reads it.
const (
	valueVersion = 1
	valueHeader  = 13
)

// encodeValue appends the value of a message accepted at `at` with content to buf.
func encodeValue(buf []byte, at time.Time, content string) []byte {
	buf = append(buf, valueVersion)
	buf = binary.BigEndian.AppendUint64(buf, uint64(at.Unix()))
	buf = binary.BigEndian.AppendUint32(buf, uint32(at.Nanosecond()))
	return append(buf, content...)
}

// decode rebuilds the message stored under key k with value v in channel's
// bucket. v belongs to bbolt's mmap, so nothing of it is kept.
func decode(channel string, k, v []byte) (announce.Message, error) {
	if len(k) != 8 {
		return announce.Message{}, fmt.Errorf("channel %q: key %x is not an id", channel, k)
	}
	id := binary.BigEndian.Uint64(k)
	if len(v) > 0 && v[0] == '{' { // the JSON of the first format
		var m announce.Message
		if err := json.Unmarshal(v, &m); err != nil {
			return announce.Message{}, fmt.Errorf("channel %q id %d: %w", channel, id, err)
		}
		m.ID, m.Channel, m.Time = id, channel, m.Time.UTC()
		return m, nil
	}
	if len(v) < valueHeader || v[0] != valueVersion {
		return announce.Message{}, fmt.Errorf("channel %q id %d: %w", channel, id, errBadValue)
	}
	sec := int64(binary.BigEndian.Uint64(v[1:9]))
	nsec := int64(binary.BigEndian.Uint32(v[9:13]))
	return announce.Message{
		ID:      id,
		Channel: channel,
		Content: string(v[valueHeader:]),
		Time:    time.Unix(sec, nsec).UTC(),
	}, nil
}

var errBadValue = errors.New("value is neither format 1 nor JSON (corrupt or from a newer version)")
