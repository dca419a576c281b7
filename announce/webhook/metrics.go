package webhook

import "github.com/prometheus/client_golang/prometheus"

var (
	eventsDesc = prometheus.NewDesc("announce_webhook_events_total",
		"Webhook deliveries (an event times a receiver) by result: ok, failed (refused, or failing after every try), dropped (queue full or shutdown).",
		[]string{"result"}, nil)
	retriesDesc = prometheus.NewDesc("announce_webhook_retries_total",
		"Webhook attempts that failed and were tried again.", nil, nil)
	pendingDesc = prometheus.NewDesc("announce_webhook_pending",
		"Webhook deliveries queued, in flight or waiting to retry.", nil, nil)
)

// Collector exposes the dispatcher's counters to Prometheus.
func (d *Dispatcher) Collector() prometheus.Collector { return collector{d} }

type collector struct{ d *Dispatcher }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- eventsDesc
	ch <- retriesDesc
	ch <- pendingDesc
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	s := c.d.Stats()
	ch <- prometheus.MustNewConstMetric(eventsDesc, prometheus.CounterValue, float64(s.OK), "ok")
	ch <- prometheus.MustNewConstMetric(eventsDesc, prometheus.CounterValue, float64(s.Failed), "failed")
	ch <- prometheus.MustNewConstMetric(eventsDesc, prometheus.CounterValue, float64(s.Dropped), "dropped")
	ch <- prometheus.MustNewConstMetric(retriesDesc, prometheus.CounterValue, float64(s.Retries))
	ch <- prometheus.MustNewConstMetric(pendingDesc, prometheus.GaugeValue, float64(s.Pending))
}
