package api

import (
	"encoding/json"

	"github.com/announce/announce/announce"
	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the Prometheus series of one node, read mostly from the hub's counters.
type metrics struct {
	pollTimeouts   prometheus.Counter
	publishSeconds prometheus.Histogram
	acceptErrors   prometheus.Counter
}

func newMetrics(reg *prometheus.Registry, hub *announce.Hub) (*metrics, error) {
	st := hub.Stats()
	m := &metrics{
		pollTimeouts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "announce_poll_timeouts_total", Help: "Long-polls answered by their timeout.",
		}),
		publishSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "announce_publish_seconds", Help: "Time from receiving a publish to its acknowledgement (store commit).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		acceptErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "announce_accept_errors_total", Help: "Failed accepts of new connections (too many open files, ...), each retried after a back-off.",
		}),
	}
	cs := []prometheus.Collector{
		m.pollTimeouts, m.publishSeconds, m.acceptErrors,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "announce_published_total", Help: "Messages accepted for publishing."},
			func() float64 { return float64(st.Published()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "announce_slow_consumers_total", Help: "Observers cut because their send queue overflowed."},
			func() float64 { return float64(st.SlowConsumers()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "announce_gaps_filled_total", Help: "Messages recovered from the store after a gap in the id sequence."},
			func() float64 { return float64(st.GapsFilled()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "announce_channels_cached", Help: "Channels held in memory (--max-cached-channels bounds those without observers)."},
			func() float64 { return float64(hub.CachedChannels()) }),
	}
	for _, t := range announce.Transports {
		labels := prometheus.Labels{"transport": t.String()}
		cs = append(cs,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "announce_observers", Help: "Registered observers per transport.", ConstLabels: labels},
				func() float64 { return float64(st.Observers(t)) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "announce_delivered_total", Help: "Messages handed to observers per transport.", ConstLabels: labels},
				func() float64 { return float64(st.Delivered(t)) }),
		)
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) handler(reg *prometheus.Registry) gin.HandlerFunc {
	h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	return gin.WrapH(h)
}

// jsonRaw embeds pre-encoded JSON in a gin.H answer.
func jsonRaw(b []byte) json.RawMessage { return b }
