package grants

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// A lease's InternalData and a WAL entry come back after a restart as plain maps decoded
// from JSON: Objects must survive that trip, and data without a user, policy or mount is
// refused rather than half-removed.
func TestObjectsSurviveTheirJSONTrip(t *testing.T) {
	want := Objects{GrantID: "0123456789abcdef", Username: "apono-x-0123456789abcdef", Policy: "apono-x-0123456789abcdef",
		UserpassMount: "userpass", Entity: "apono-x-0123456789abcdef", BreakGlassKey: "breakglass/r/e/0123456789abcdef"}
	raw, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]interface{}
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	got, err := DecodeObjects(m)
	if err != nil || got != want {
		t.Fatalf("DecodeObjects(%v) = %+v, %v; want %+v", m, got, err, want)
	}
	for _, drop := range []string{"username", "policy", "userpass_mount"} {
		partial := map[string]interface{}{}
		for k, v := range m {
			if k != drop {
				partial[k] = v
			}
		}
		if _, err := DecodeObjects(partial); err == nil || !strings.Contains(err.Error(), "missing") {
			t.Errorf("without %s: %v, want a refusal", drop, err)
		}
	}
}

// A grant that starts in an access window ends with it: ttl and max ttl are cut to the
// time left (at least a second), with a warning only when the ttl itself was cut.
func TestCapAtWindow(t *testing.T) {
	now := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	cases := []struct {
		name             string
		end              time.Time
		ttl, maxTTL      time.Duration
		wantTTL, wantMax time.Duration
		warns            bool
	}{
		{"no window", time.Time{}, time.Hour, 2 * time.Hour, time.Hour, 2 * time.Hour, false},
		{"window longer", now.Add(3 * time.Hour), time.Hour, 2 * time.Hour, time.Hour, 2 * time.Hour, false},
		{"max cut only", now.Add(90 * time.Minute), time.Hour, 2 * time.Hour, time.Hour, 90 * time.Minute, false},
		{"both cut", now.Add(30 * time.Minute), time.Hour, 2 * time.Hour, 30 * time.Minute, 30 * time.Minute, true},
		{"window ending", now.Add(100 * time.Millisecond), time.Hour, time.Hour, time.Second, time.Second, true},
	}
	for _, c := range cases {
		ttl, maxTTL, warning := capAtWindow(c.end, now, c.ttl, c.maxTTL)
		if ttl != c.wantTTL || maxTTL != c.wantMax || (warning != "") != c.warns {
			t.Errorf("%s: got %s, %s, %q; want %s, %s, warning %v", c.name, ttl, maxTTL, warning, c.wantTTL, c.wantMax, c.warns)
		}
	}
}
