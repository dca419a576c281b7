package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/announce/presence"
	"github.com/announce/announce/announce/redis"
	"github.com/announce/announce/api"
	"github.com/announce/announce/internal/serve"
)

// Serve runs the server until SIGINT or SIGTERM, then stops gracefully.
func Serve(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("announce serve", flag.ContinueOnError)
	cfg := serve.Config{CORSOrigins: []string{"*"}}
	fs.StringVar(&cfg.Listen, "listen", ":8000", "address to serve on")
	fs.StringVar(&cfg.DataDir, "data-dir", "./data", "directory of the embedded on-disk store")
	fs.BoolVar(&cfg.Memory, "memory", false, "keep everything in memory instead of --data-dir")
	fs.StringVar(&cfg.Redis, "redis", "", "Redis URL (redis://host:6379/0, redis+sentinel://SENTINEL:26379/0?master_name=NAME, or redis+cluster://NODE:7000?addr=NODE2:7000): scale-out mode, nodes share ids and messages")
	fs.IntVar(&cfg.History, "history", announce.DefaultHistory, "messages kept per channel for resume and catch-up")
	fs.IntVar(&cfg.MaxMessage, "max-message", announce.DefaultMaxMessage, "largest message content in bytes")
	fs.DurationVar(&cfg.PollTimeout, "poll-timeout", api.DefaultPollTimeout, "longest a long-poll waits (clients may ask for less)")
	fs.StringVar(&cfg.PublishKey, "publish-key", "", "key required to publish (Authorization: Bearer KEY); empty: publishing is open")
	fs.Var((*listFlag)(&cfg.CORSOrigins), "cors-origins", "comma-separated origins allowed for cross-origin GETs (* for any); cross-origin publishing needs an explicit origin")
	fs.Var((*listFlag)(&cfg.AllowedOrigins), "allowed-origins", "comma-separated origins allowed to open a WebSocket besides the same host")
	fs.IntVar(&cfg.MaxConns, "max-conns", 0, "most simultaneous connections (0: no limit)")
	fs.IntVar(&cfg.Queue, "queue", announce.DefaultQueue, "messages an observer's send queue holds before it is cut as a slow consumer")
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", 10*time.Second, "graceful shutdown deadline")
	fs.StringVar(&cfg.Welcome, "welcome", "", "content of the default channel's first message on a fresh store")
	fs.StringVar(&cfg.PrivatePrefix, "private-prefix", api.DefaultPrivatePrefix, "channels whose name starts with this need a token to observe")
	fs.StringVar(&cfg.TokenSecret, "token-secret", "", "secret signing channel tokens; empty: derived from --publish-key, else random (tokens die with the process)")
	fs.BoolVar(&cfg.Presence.Events, "presence-events", false, "send join and leave events (event: presence) to SSE and WebSocket observers")
	fs.DurationVar(&cfg.Presence.Grace, "presence-grace", presence.DefaultGrace, "how long a long-poll client stays present after its last poll")
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
	if err := errors.Join(validate(cfg), validateLimits(cfg.Limits)); err != nil {
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
			node.Shutdown()
			return 1
		}
	}
	if err := node.Shutdown(); err != nil {
		log.Error("shutdown", "err", err)
		return 1
	}
	log.Info("stopped")
	return 0
}

func validate(cfg serve.Config) error {
	if err := validateListen(cfg.Listen); err != nil {
		return err
	}
	switch {
	case cfg.PollTimeout < time.Second:
		return errors.New("--poll-timeout must be at least 1s")
	case cfg.History < 1:
		return errors.New("--history must be at least 1")
	case cfg.MaxMessage < 1:
		return errors.New("--max-message must be at least 1")
	case cfg.Queue < 1:
		return errors.New("--queue must be at least 1")
	case cfg.MaxConns < 0:
		return errors.New("--max-conns must be 0 (no limit) or more")
	case cfg.Memory && cfg.Redis != "":
		return errors.New("--memory and --redis exclude each other")
	case cfg.Presence.Grace < 0:
		return errors.New("--presence-grace must not be negative")
	case len(cfg.RedisSubscribe) > 0 && cfg.Redis == "":
		return errors.New("--redis-subscribe needs --redis")
	case len(cfg.RedisSubscribe) > 0 && redis.ValidateIngestNames(cfg.RedisSubscribe, "") != nil:
		return fmt.Errorf("--redis-subscribe: %w", redis.ValidateIngestNames(cfg.RedisSubscribe, ""))
	case (cfg.TLS.CertFile == "") != (cfg.TLS.KeyFile == ""):
		return errors.New("--tls-cert and --tls-key go together: give both files")
	case cfg.H2C && cfg.TLS.CertFile != "":
		return errors.New("--h2c is cleartext HTTP/2; with --tls-cert HTTP/2 is already on (ALPN)")
	case announce.ValidateChannel(cfg.PrivatePrefix+"x") != nil:
		return errors.New("--private-prefix must be 1 to 63 of [A-Za-z0-9_.:-]")
	}
	return nil
}

// validateListen checks --listen is host:port, suggesting the colon that a
// bare port number lacks.
func validateListen(addr string) error {
	if _, _, err := net.SplitHostPort(addr); err == nil {
		return nil
	}
	if _, err := strconv.ParseUint(addr, 10, 16); err == nil {
		return fmt.Errorf("--listen %s: an address is HOST:PORT; for port %s on every interface write --listen :%s (or 127.0.0.1:%s for this machine only)", addr, addr, addr, addr)
	}
	return fmt.Errorf("--listen %q: want HOST:PORT, e.g. :8000 or 127.0.0.1:8000", addr)
}
