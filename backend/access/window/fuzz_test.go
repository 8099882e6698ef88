package window

// FuzzParse runs its seeds with every `go test`; `go test -fuzz=FuzzParse ./backend/access/window/`
// explores beyond them, and a failing input it saves under testdata/fuzz/FuzzParse/ is to
// be committed.

import (
	"testing"
	"time"
)

// FuzzParse: Parse never panics; what it accepts is in range, and String() gives it back in
// a form that parses to the same window and prints the same; the window, as a set, opens
// within two weeks of any moment and its stretches end where At says (or at the Horizon cap).
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"mon-fri 08:00-18:00 Europe/Berlin",
		"sat,sun 10:00-14:00 America/New_York",
		"mon-sun 22:00-06:00 UTC",
		"daily 00:00-24:00 Asia/Kolkata",
		"fri-mon 09:00-17:00 Asia/Kathmandu",
		"thu,sun-tue 02:30-03:30 Europe/Berlin",
		"sun 02:00-02:30 America/New_York",
		"sun 01:30-01:00 Australia/Lord_Howe",
		"Mon,WED 23:59-00:01 Etc/GMT+5",
		"mon-fry 08:00-18:00 Europe/Berlin",
		"mon 24:00-00:00 Local",
		"mon 08:00-18:00 ../../etc/passwd",
		"daily,mon 8:00-08:00 right/UTC",
		"",
	} {
		f.Add(seed)
	}
	moments := []time.Time{
		time.Date(2026, 3, 29, 0, 30, 0, 0, time.UTC),  // Europe's spring change
		time.Date(2026, 10, 25, 0, 30, 0, 0, time.UTC), // Europe's autumn change
		time.Date(2026, 11, 1, 5, 30, 0, 0, time.UTC),  // New York's autumn change
		time.Date(2026, 12, 31, 23, 59, 59, 0, time.UTC),
	}
	f.Fuzz(func(t *testing.T, spec string) {
		w, err := Parse(spec)
		if err != nil {
			return
		}
		if len(spec) > maxSpecLen || w.days == 0 || w.days > everyDay || w.start < 0 || w.start >= minutesPerDay ||
			w.end < 1 || w.end > minutesPerDay || w.start == w.end || w.loc == nil || w.loc == time.Local {
			t.Fatalf("Parse(%q) accepted %+v", spec, w)
		}
		canonical := w.String()
		again, err := Parse(canonical)
		if err != nil || !sameWindow(again, w) || again.String() != canonical {
			t.Fatalf("Parse(%q) = %q, which parses to %q, %v", spec, canonical, again, err)
		}
		s := Set{windows: []Window{w}}
		for _, now := range moments {
			next, ok := s.NextStart(now)
			if !ok || next.Before(now) || next.Sub(now) > 15*24*time.Hour || !isOpen(s, next) {
				t.Fatalf("%q: NextStart(%s) = %s, %v", canonical, now, next, ok)
			}
			// An end at now+Horizon is the cap on an always-open window, not a close.
			if open, end := s.At(now); open && (!end.After(now) || !isOpen(s, end.Add(-time.Second)) || isOpen(s, end) && !end.Equal(now.Add(Horizon))) {
				t.Fatalf("%q: At(%s) ends at %s, where it does not close", canonical, now, end)
			}
		}
	})
}
