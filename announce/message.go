package announce

import (
	"fmt"
	"time"
	"unicode/utf8"
)

// Message is one announcement on a channel. ID 0 means nothing was published yet.
type Message struct {
	ID      uint64    `json:"id"`
	Channel string    `json:"channel"`
	Content string    `json:"content"`
	Time    time.Time `json:"time,omitzero"`
	// Expired is set on the message that ends another one's TTL: it names
	// the expired message's id and has empty content, the only way an empty
	// content is ever stored (see schedule.go).
	Expired uint64 `json:"expired,omitempty"`
}

// MaxChannelName is the longest valid channel name in bytes.
const MaxChannelName = 64

// ValidateChannel reports whether name matches [A-Za-z0-9_.:-]{1,64} and is
// not "." or "..", which URLs treat as path segments.
func ValidateChannel(name string) error {
	if len(name) == 0 || len(name) > MaxChannelName {
		return fmt.Errorf("%w: must be 1 to %d characters", ErrInvalidChannel, MaxChannelName)
	}
	if name == "." || name == ".." { // path segments, never names
		return fmt.Errorf("%w: %q is a path segment", ErrInvalidChannel, name)
	}
	for i := 0; i < len(name); i++ {
		if !channelByte(name[i]) {
			return fmt.Errorf("%w: only letters, digits and _ . : - are allowed", ErrInvalidChannel)
		}
	}
	return nil
}

func channelByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return c == '_' || c == '.' || c == ':' || c == '-'
}

// ValidateContent checks that content is non-empty UTF-8 of at most max bytes.
func ValidateContent(content string, max int) error {
	switch {
	case content == "":
		return ErrEmptyContent
	case max > 0 && len(content) > max:
		return fmt.Errorf("%w: %d bytes, the limit is %d", ErrMessageTooLarge, len(content), max)
	case !utf8.ValidString(content):
		return ErrInvalidUTF8
	}
	return nil
}
