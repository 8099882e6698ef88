package backend

import (
	"testing"
	"time"

	hclog "github.com/hashicorp/go-hclog"
)

func TestSweepIntervalFromEnv(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"1s", time.Second},
		{"90s", 90 * time.Second},
		{"0s", 0},
		{"-5s", 0},
		{"soon", 0},
		{"10", 0}, // no unit: not a duration
	} {
		t.Run(tc.in, func(t *testing.T) {
			if got := sweepIntervalFromEnv(tc.in, hclog.NewNullLogger()); got != tc.want {
				t.Errorf("sweepIntervalFromEnv(%q) = %s, want %s", tc.in, got, tc.want)
			}
		})
	}
}
