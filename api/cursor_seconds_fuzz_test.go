package api

import (
	"math"
	"strconv"
	"strings"
	"testing"
	"time"
)

// floatSeconds is parseSeconds without its whole-number fast path: the
// answer the fast path must not change.
func floatSeconds(s string, max time.Duration) (time.Duration, bool) {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || f < 0 || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false
	}
	if f*float64(time.Second) >= float64(max) {
		return max, true
	}
	return time.Duration(f * float64(time.Second)), true
}

// FuzzParseSeconds checks that parseSeconds answers every wait value as
// ParseFloat alone does, whole numbers (the fast path) included.
func FuzzParseSeconds(f *testing.F) {
	for _, s := range []string{"0", "30", " 30 ", "007", "999999999", "1000000000", "59", "60", "61",
		"1.5", "+5", "-1", "1e3", "0x10", "", " ", "inf", "NaN", "1_0", "٣", "30s", "9223372036854775807"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, max := range []time.Duration{60 * time.Second, time.Hour, math.MaxInt64} {
			d, ok := parseSeconds(s, max)
			wantD, wantOK := floatSeconds(s, max)
			if d != wantD || ok != wantOK {
				t.Fatalf("parseSeconds(%q, %v) = %v, %v; ParseFloat gives %v, %v", s, max, d, ok, wantD, wantOK)
			}
		}
	})
}

func TestParseSecondsWhole(t *testing.T) {
	for s, want := range map[string]time.Duration{"0": 0, "30": 30 * time.Second, " 45\t": 45 * time.Second, "600": time.Minute} {
		if d, ok := parseSeconds(s, time.Minute); !ok || d != want {
			t.Errorf("parseSeconds(%q, 1m) = %v, %v; want %v, true", s, d, ok, want)
		}
	}
}
