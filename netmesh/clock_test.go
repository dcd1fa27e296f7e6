package netmesh

import (
	"testing"
	"time"
)

// The hub's topic and message key are a TOTP of the wall clock, one per
// hubKeyInterval (see there): members whose clocks are hours apart, or
// whose clock jumps, must land in the same window. The token's own
// interval does not do that.
func TestHubKeyIgnoresTheClock(t *testing.T) {
	window := func(at time.Time, interval int64) int64 { return at.Unix() / interval }
	now := time.Now()
	for _, skew := range []time.Duration{time.Hour, -time.Hour, 14 * time.Hour, -14 * time.Hour, 30 * 24 * time.Hour} {
		if window(now, hubKeyInterval) != window(now.Add(skew), hubKeyInterval) {
			t.Errorf("a clock %s off lands in another hub window", skew)
		}
	}
	// What the token's interval would have done: about 40 % of the time,
	// an hour apart is another window.
	split := 0
	for s := int64(0); s < tokenOTPInterval; s += 60 {
		at := time.Unix(s, 0)
		if window(at, tokenOTPInterval) != window(at.Add(time.Hour), tokenOTPInterval) {
			split++
		}
	}
	if frac := float64(split) / (tokenOTPInterval / 60); frac < 0.3 {
		t.Errorf("with the token's interval, an hour's skew splits %.0f%% of the time; the reasoning above is off", frac*100)
	}
	if hubKeyInterval/(365*24*3600) < 10000 {
		t.Errorf("hubKeyInterval %d s: the window would turn within ten thousand years", hubKeyInterval)
	}
}
