package announce

import "errors"

// Sentinel errors; the API maps them to HTTP status codes in one place.
var (
	ErrInvalidChannel  = errors.New("invalid channel name")
	ErrEmptyContent    = errors.New("content is empty")
	ErrMessageTooLarge = errors.New("content is too large")
	ErrInvalidUTF8     = errors.New("content is not valid UTF-8")
	ErrUnavailable     = errors.New("store unavailable")
	ErrClosed          = errors.New("hub is shut down")

	// Reasons an observer is closed.
	ErrSlowConsumer = errors.New("slow consumer")
	ErrShutdown     = errors.New("server shutting down")
)
