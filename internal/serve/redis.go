package serve

import (
	"errors"

	"github.com/announce/announce/announce"
)

// openRedis opens the Redis store and broker (scale-out mode).
func openRedis(cfg Config) (announce.Store, func(announce.BrokerSink) (announce.Broker, error), error) {
	return nil, nil, errors.New("redis support is not built yet")
}
