package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/announce/announce/internal/serve"
)

// Serve runs the server until SIGINT or SIGTERM, then stops gracefully.
func Serve(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("announce serve", flag.ContinueOnError)
	cfg := serve.DefaultConfig()
	fs.StringVar(&cfg.Listen, "listen", cfg.Listen, "address to serve on")
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "directory of the embedded on-disk store")
	fs.BoolVar(&cfg.Memory, "memory", false, "keep everything in memory instead of --data-dir")
	fs.StringVar(&cfg.Redis, "redis", "", "Redis URL (redis://host:6379/0, redis+sentinel://SENTINEL:26379/0?master_name=NAME, or redis+cluster://NODE:7000?addr=NODE2:7000): scale-out mode, nodes share ids and messages")
	fs.IntVar(&cfg.History, "history", cfg.History, "messages kept per channel for resume and catch-up")
	fs.IntVar(&cfg.MaxMessage, "max-message", cfg.MaxMessage, "largest message content in bytes")
	fs.DurationVar(&cfg.PollTimeout, "poll-timeout", cfg.PollTimeout, "longest a long-poll waits (clients may ask for less)")
	fs.StringVar(&cfg.PublishKey, "publish-key", "", "key required to publish (Authorization: Bearer KEY); empty: publishing is open")
	fs.Var((*listFlag)(&cfg.CORSOrigins), "cors-origins", "comma-separated origins allowed for cross-origin GETs (* for any); cross-origin publishing needs an explicit origin")
	fs.Var((*listFlag)(&cfg.AllowedOrigins), "allowed-origins", "comma-separated origins allowed to open a WebSocket besides the same host")
	fs.IntVar(&cfg.MaxConns, "max-conns", 0, "most simultaneous connections (0: no limit)")
	fs.IntVar(&cfg.Queue, "queue", cfg.Queue, "messages an observer's send queue holds before it is cut as a slow consumer")
	shutdownTimeout := fs.Duration("shutdown-timeout", serve.DefaultShutdownTimeout, "graceful shutdown deadline")
	fs.StringVar(&cfg.Welcome, "welcome", "", "content of the default channel's first message on a fresh store")
	fs.StringVar(&cfg.PrivatePrefix, "private-prefix", cfg.PrivatePrefix, "channels whose name starts with this need a token to observe")
	fs.StringVar(&cfg.TokenSecret, "token-secret", "", "secret signing channel tokens; empty: derived from --publish-key, else random (tokens die with the process)")
	fs.BoolVar(&cfg.Presence.Events, "presence-events", false, "send join and leave events (event: presence) to SSE and WebSocket observers")
	fs.DurationVar(&cfg.Presence.Grace, "presence-grace", cfg.Presence.Grace, "how long a long-poll client stays present after its last poll")
	fs.Var((*appendListFlag)(&cfg.Presence.Webhooks), "webhook", "URL receiving connected, disconnected and published events as signed JSON POSTs (repeatable, or comma-separated)")
	fs.StringVar(&cfg.Presence.WebhookSecret, "webhook-secret", "", "secret of the webhooks' X-Announce-Signature (HMAC-SHA256 of the body)")
	fs.Var((*listFlag)(&cfg.RedisSubscribe), "redis-subscribe", "comma-separated Redis pub/sub channels (name* for a pattern) whose raw PUBLISHes become announcements on the channel of that name; needs --redis")
	fs.StringVar(&cfg.TLS.CertFile, "tls-cert", "", "PEM certificate chain: serve HTTPS (HTTP/2 and HTTP/1.1) on --listen; reloaded when the file changes or on SIGHUP")
	fs.StringVar(&cfg.TLS.KeyFile, "tls-key", "", "PEM private key of --tls-cert")
	fs.BoolVar(&cfg.H2C, "h2c", false, "also speak cleartext HTTP/2 (prior knowledge) on --listen, for a proxy in front; WebSocket stays on HTTP/1.1")
	limitFlags(fs, &cfg.Limits)
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	debugAddr := fs.String("debug-addr", "", "serve net/http/pprof on this address (e.g. 127.0.0.1:6060); off when empty")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: announce [serve] [flags]\n\nEvery flag also reads ANNOUNCE_<FLAG> (e.g. --poll-timeout ↔ ANNOUNCE_POLL_TIMEOUT).\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if code, ok := parseArgs(fs, args, stdout, stderr, "announce"); !ok {
		return code
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintln(stderr, "announce: --log-level:", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	cfg.Logger = log
	if err := cfg.Validate(); err != nil {
		fmt.Fprintln(stderr, "announce:", err)
		return 2
	}

	if *debugAddr != "" {
		if err := startDebug(*debugAddr, log); err != nil {
			log.Error("--debug-addr", "err", err)
			return 1
		}
	}
	// Signals first, so a SIGTERM during start-up still stops gracefully.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)
	node, err := serve.Start(cfg)
	if errors.Is(err, syscall.EADDRINUSE) {
		log.Error("cannot start: another process is listening on "+cfg.Listen+"; choose another address with --listen (e.g. --listen :8001) or stop that process", "err", err)
		return 1
	}
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	select {
	case s := <-sig:
		log.Info("shutting down", "signal", s.String())
	case err := <-node.Done():
		if !errors.Is(err, http.ErrServerClosed) {
			log.Error("server failed", "err", err)
			shutdown(node, *shutdownTimeout)
			return 1
		}
	}
	switch err := shutdown(node, *shutdownTimeout); {
	case err == nil:
	case serve.Graceful(err): // a client still busy at the deadline was cut: the deadline working
		log.Warn(err.Error(), "shutdown_timeout", *shutdownTimeout)
	default:
		log.Error("shutdown", "err", err)
		return 1
	}
	log.Info("stopped")
	return 0
}

// shutdown stops node within timeout (the default when not positive).
func shutdown(node *serve.Node, timeout time.Duration) error {
	if timeout <= 0 {
		timeout = serve.DefaultShutdownTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return node.Shutdown(ctx)
}
