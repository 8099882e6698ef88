package window

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func mustSet(t testing.TB, specs ...string) Set {
	t.Helper()
	s, err := ParseList(specs)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustTime(t testing.TB, s string) time.Time {
	t.Helper()
	at, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return at
}

// DST changes in 2026: Europe/Berlin goes forward on 29 March (02:00 CET -> 03:00 CEST) and
// back on 25 October (03:00 CEST -> 02:00 CET); America/New_York forward on 8 March
// (02:00 EST -> 03:00 EDT) and back on 1 November (02:00 EDT -> 01:00 EST).
func TestAtAndNextStart(t *testing.T) {
	const berlin = "mon-fri 08:00-18:00 Europe/Berlin"
	for _, tc := range []struct {
		name    string
		windows []string
		at      string
		end     string // At's end; empty: closed
		next    string // NextStart; empty: the same as at (open)
	}{
		{name: "inside", windows: []string{berlin}, at: "2026-12-01T10:00:00+01:00", end: "2026-12-01T18:00:00+01:00"},
		{name: "at the start", windows: []string{berlin}, at: "2026-12-02T08:00:00+01:00", end: "2026-12-02T18:00:00+01:00"},
		{name: "a second before the end", windows: []string{berlin}, at: "2026-12-01T17:59:59+01:00", end: "2026-12-01T18:00:00+01:00"},
		{name: "at the end", windows: []string{berlin}, at: "2026-12-01T18:00:00+01:00", next: "2026-12-02T08:00:00+01:00"},
		{name: "a second before the start", windows: []string{berlin}, at: "2026-12-02T07:59:59+01:00", next: "2026-12-02T08:00:00+01:00"},
		{name: "t in another zone", windows: []string{berlin}, at: "2026-12-01T17:30:00Z", next: "2026-12-02T08:00:00+01:00"},
		{name: "friday evening to monday", windows: []string{berlin}, at: "2026-12-04T19:00:00+01:00", next: "2026-12-07T08:00:00+01:00"},
		{name: "sunday to monday", windows: []string{berlin}, at: "2026-12-06T23:59:00+01:00", next: "2026-12-07T08:00:00+01:00"},
		{name: "new year", windows: []string{"mon-fri 08:00-18:00 UTC"}, at: "2026-12-31T18:00:00Z", next: "2027-01-01T08:00:00Z"},
		{name: "wrapping range, closed midweek", windows: []string{"fri-mon 09:00-17:00 UTC"}, at: "2026-12-01T12:00:00Z", next: "2026-12-04T09:00:00Z"},
		{name: "wrapping range, open on monday", windows: []string{"fri-mon 09:00-17:00 UTC"}, at: "2026-12-07T12:00:00Z", end: "2026-12-07T17:00:00Z"},

		{name: "crossing midnight, before it", windows: []string{"fri 22:00-06:00 UTC"}, at: "2026-12-04T23:00:00Z", end: "2026-12-05T06:00:00Z"},
		{name: "crossing midnight, on the next day", windows: []string{"fri 22:00-06:00 UTC"}, at: "2026-12-05T05:00:00Z", end: "2026-12-05T06:00:00Z"},
		{name: "crossing midnight, the next day is not listed", windows: []string{"fri 22:00-06:00 UTC"}, at: "2026-12-05T23:00:00Z", next: "2026-12-11T22:00:00Z"},
		{name: "crossing midnight, before it on friday", windows: []string{"fri 22:00-06:00 UTC"}, at: "2026-12-04T05:00:00Z", next: "2026-12-04T22:00:00Z"},
		{name: "crossing midnight into monday", windows: []string{"sun 22:00-06:00 UTC"}, at: "2026-12-07T03:00:00Z", end: "2026-12-07T06:00:00Z"},
		{name: "crossing midnight into the new year", windows: []string{"thu 22:00-06:00 UTC"}, at: "2027-01-01T01:00:00Z", end: "2027-01-01T06:00:00Z"},
		{name: "nightly, at noon", windows: []string{"mon-sun 22:00-06:00 UTC"}, at: "2026-12-01T12:00:00Z", next: "2026-12-01T22:00:00Z"},
		{name: "nightly runs into the next night", windows: []string{"daily 22:00-06:00 UTC"}, at: "2026-12-01T05:00:00Z", end: "2026-12-01T06:00:00Z"},

		{name: "Berlin spring: start skipped opens when clocks jump", windows: []string{"sun 02:30-04:00 Europe/Berlin"}, at: "2026-03-29T01:30:00+01:00", next: "2026-03-29T03:00:00+02:00"},
		{name: "Berlin spring: the shortened window", windows: []string{"sun 02:30-04:00 Europe/Berlin"}, at: "2026-03-29T03:00:00+02:00", end: "2026-03-29T04:00:00+02:00"},
		{name: "Berlin spring: 01:00-03:00 is one hour", windows: []string{"sun 01:00-03:00 Europe/Berlin"}, at: "2026-03-29T01:30:00+01:00", end: "2026-03-29T03:00:00+02:00"},
		{name: "Berlin spring: 01:00-03:00 is over at 03:00 CEST", windows: []string{"sun 01:00-03:00 Europe/Berlin"}, at: "2026-03-29T03:00:00+02:00", next: "2026-04-05T01:00:00+02:00"},
		{name: "Berlin spring: a window inside the skipped hour is skipped", windows: []string{"sun 02:00-02:30 Europe/Berlin"}, at: "2026-03-29T00:00:00+01:00", next: "2026-04-05T02:00:00+02:00"},
		{name: "Berlin spring: across the change, 7 hours", windows: []string{"sat 22:00-06:00 Europe/Berlin"}, at: "2026-03-28T22:00:00+01:00", end: "2026-03-29T06:00:00+02:00"},
		{name: "Berlin autumn: ambiguous start is the first", windows: []string{"sun 02:30-05:00 Europe/Berlin"}, at: "2026-10-25T02:00:00+02:00", next: "2026-10-25T02:30:00+02:00"},
		{name: "Berlin autumn: open through the repeated hour", windows: []string{"sun 02:30-05:00 Europe/Berlin"}, at: "2026-10-25T02:10:00+01:00", end: "2026-10-25T05:00:00+01:00"},
		{name: "Berlin autumn: ambiguous end is the second", windows: []string{"sun 00:00-02:30 Europe/Berlin"}, at: "2026-10-25T02:45:00+02:00", end: "2026-10-25T02:30:00+01:00"},
		{name: "Berlin autumn: closed after the second 02:30", windows: []string{"sun 00:00-02:30 Europe/Berlin"}, at: "2026-10-25T02:30:00+01:00", next: "2026-11-01T00:00:00+01:00"},
		{name: "Berlin autumn: across the change, 9 hours", windows: []string{"sat 22:00-06:00 Europe/Berlin"}, at: "2026-10-24T22:00:00+02:00", end: "2026-10-25T06:00:00+01:00"},
		{name: "Berlin: weekdays keep local hours after the change", windows: []string{berlin}, at: "2026-03-30T07:30:00+02:00", next: "2026-03-30T08:00:00+02:00"},

		{name: "New York spring: start skipped", windows: []string{"sun 02:30-04:00 America/New_York"}, at: "2026-03-08T01:30:00-05:00", next: "2026-03-08T03:00:00-04:00"},
		{name: "New York spring: 01:00-03:00 is one hour", windows: []string{"daily 01:00-03:00 America/New_York"}, at: "2026-03-08T01:30:00-05:00", end: "2026-03-08T03:00:00-04:00"},
		{name: "New York spring: the next day is two hours again", windows: []string{"daily 01:00-03:00 America/New_York"}, at: "2026-03-09T01:00:00-04:00", end: "2026-03-09T03:00:00-04:00"},
		{name: "New York autumn: ambiguous start is the first", windows: []string{"sun 01:30-03:00 America/New_York"}, at: "2026-11-01T01:00:00-04:00", next: "2026-11-01T01:30:00-04:00"},
		{name: "New York autumn: ambiguous end is the second", windows: []string{"sun 00:00-01:30 America/New_York"}, at: "2026-11-01T01:45:00-04:00", end: "2026-11-01T01:30:00-05:00"},
		{name: "New York autumn: across the change, 9 hours", windows: []string{"sat 22:00-06:00 America/New_York"}, at: "2026-10-31T23:00:00-04:00", end: "2026-11-01T06:00:00-05:00"},

		{name: "Kathmandu: a second before", windows: []string{"mon-fri 09:00-17:00 Asia/Kathmandu"}, at: "2026-12-01T03:14:59Z", next: "2026-12-01T09:00:00+05:45"},
		{name: "Kathmandu: at 09:00 +05:45", windows: []string{"mon-fri 09:00-17:00 Asia/Kathmandu"}, at: "2026-12-01T03:15:00Z", end: "2026-12-01T17:00:00+05:45"},
		{name: "Kathmandu: friday night is monday's local date already in UTC", windows: []string{"mon 00:00-01:00 Asia/Kathmandu"}, at: "2026-12-06T18:30:00Z", end: "2026-12-07T01:00:00+05:45"},

		{name: "several zones: weekend window in New York", windows: []string{berlin, "sat,sun 10:00-14:00 America/New_York"}, at: "2026-12-05T12:00:00-05:00", end: "2026-12-05T14:00:00-05:00"},
		{name: "several zones: friday evening in Berlin to saturday in New York", windows: []string{berlin, "sat,sun 10:00-14:00 America/New_York"}, at: "2026-12-04T18:00:00+01:00", next: "2026-12-05T10:00:00-05:00"},
		{name: "several zones: sunday afternoon to monday in Berlin", windows: []string{berlin, "sat,sun 10:00-14:00 America/New_York"}, at: "2026-12-06T14:00:00-05:00", next: "2026-12-07T08:00:00+01:00"},
		{name: "several zones: the earliest next start wins", windows: []string{"mon 09:00-10:00 Asia/Tokyo", "sun 20:00-21:00 America/Los_Angeles"}, at: "2026-12-06T12:00:00Z", next: "2026-12-07T09:00:00+09:00"},

		{name: "touching windows merge", windows: []string{"mon-fri 08:00-12:00 Europe/Berlin", "mon-fri 12:00-18:00 Europe/Berlin"}, at: "2026-12-01T09:00:00+01:00", end: "2026-12-01T18:00:00+01:00"},
		{name: "touching windows merge, listed the other way", windows: []string{"mon-fri 12:00-18:00 Europe/Berlin", "mon-fri 08:00-12:00 Europe/Berlin"}, at: "2026-12-01T09:00:00+01:00", end: "2026-12-01T18:00:00+01:00"},
		{name: "windows a minute apart do not merge", windows: []string{"mon-fri 08:00-12:00 Europe/Berlin", "mon-fri 12:01-18:00 Europe/Berlin"}, at: "2026-12-01T09:00:00+01:00", end: "2026-12-01T12:00:00+01:00"},
		{name: "touching across zones", windows: []string{"mon 08:00-12:00 Europe/Berlin", "mon 06:00-10:00 America/New_York"}, at: "2026-12-07T09:00:00+01:00", end: "2026-12-07T10:00:00-05:00"},
		{name: "overlapping across zones while only the US is on summer time", windows: []string{"mon 08:00-12:00 Europe/Berlin", "mon 06:00-10:00 America/New_York"}, at: "2026-03-16T09:00:00+01:00", end: "2026-03-16T10:00:00-04:00"},
		{name: "a window inside another", windows: []string{"mon 08:00-18:00 UTC", "mon 09:00-10:00 UTC"}, at: "2026-12-07T09:30:00Z", end: "2026-12-07T18:00:00Z"},
		{name: "touching over midnight", windows: []string{"mon 00:00-24:00 UTC", "tue 00:00-24:00 UTC"}, at: "2026-12-07T10:00:00Z", end: "2026-12-09T00:00:00Z"},
		{name: "night and day windows chain over the week", windows: []string{"mon-fri 22:00-06:00 UTC", "mon-fri 06:00-22:00 UTC"}, at: "2026-12-07T10:00:00Z", end: "2026-12-12T06:00:00Z"},
		{name: "a six-day stretch", windows: []string{"mon-sat 00:00-24:00 UTC"}, at: "2026-12-07T10:00:00Z", end: "2026-12-13T00:00:00Z"},
		{name: "the day outside a six-day stretch", windows: []string{"mon-sat 00:00-24:00 UTC"}, at: "2026-12-13T10:00:00Z", next: "2026-12-14T00:00:00Z"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := mustSet(t, tc.windows...)
			at := mustTime(t, tc.at)
			open, end := s.At(at)
			if wantOpen := tc.end != ""; open != wantOpen {
				t.Fatalf("At(%s) open = %v, want %v", tc.at, open, wantOpen)
			}
			// Compared as written: the end is in the zone of the window that ends the stretch.
			if open && end.Format(time.RFC3339) != tc.end {
				t.Errorf("At(%s) end = %s, want %s", tc.at, end.Format(time.RFC3339), tc.end)
			}
			// Written in the zone of the window that opens, or t itself when open.
			wantNext := tc.next
			if wantNext == "" {
				wantNext = tc.at
			}
			if next, ok := s.NextStart(at); !ok || next.Format(time.RFC3339) != wantNext {
				t.Errorf("NextStart(%s) = %s, %v; want %s", tc.at, next.Format(time.RFC3339), ok, wantNext)
			}
		})
	}
}

func TestAlwaysOpen(t *testing.T) {
	for _, tc := range []struct {
		name    string
		windows []string
	}{
		{name: "whole days", windows: []string{"daily 00:00-24:00 Asia/Kolkata"}},
		{name: "night and day", windows: []string{"daily 22:00-06:00 UTC", "daily 06:00-22:00 UTC"}},
		{name: "two zones", windows: []string{"daily 00:00-12:00 UTC", "daily 12:00-24:00 Etc/GMT+0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := mustSet(t, tc.windows...)
			for _, at := range []string{"2026-03-29T01:59:00Z", "2026-10-25T00:30:00Z", "2026-12-31T23:59:59Z"} {
				now := mustTime(t, at)
				open, end := s.At(now)
				if !open || !end.Equal(now.Add(Horizon)) {
					t.Errorf("At(%s) = %v, %s; want open until t+Horizon", at, open, end)
				}
				if next, ok := s.NextStart(now); !ok || !next.Equal(now) {
					t.Errorf("NextStart(%s) = %s, %v; want t", at, next, ok)
				}
			}
		})
	}
}

func TestEmptySet(t *testing.T) {
	for name, s := range map[string]Set{"zero": {}, "blank specs": mustSet(t, "", "  ")} {
		t.Run(name, func(t *testing.T) {
			now := mustTime(t, "2026-12-01T10:00:00Z")
			if open, _ := s.At(now); open {
				t.Error("an empty set is open")
			}
			if next, ok := s.NextStart(now); ok {
				t.Errorf("an empty set opens at %s", next)
			}
			_, err := s.Check(now)
			if err == nil || err.Error() != "outside every access window: none is defined" {
				t.Errorf("Check: %v", err)
			}
			if s.Len() != 0 || s.String() != "" {
				t.Errorf("Len %d, String %q", s.Len(), s.String())
			}
		})
	}
}

func TestCheck(t *testing.T) {
	s := mustSet(t, "sat,sun 10:00-14:00 America/New_York", "mon-fri 08:00-18:00 Europe/Berlin")
	for _, tc := range []struct {
		name, at, end, err string
	}{
		{name: "closed", at: "2026-12-01T18:30:00+01:00", err: "outside every access window; the next opens at 2026-12-02T08:00:00+01:00 (mon-fri 08:00-18:00 Europe/Berlin)"},
		{name: "closed before the weekend", at: "2026-12-05T01:00:00Z", err: "outside every access window; the next opens at 2026-12-05T10:00:00-05:00 (sat,sun 10:00-14:00 America/New_York)"},
		{name: "open", at: "2026-12-01T10:00:00+01:00", end: "2026-12-01T18:00:00+01:00"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			end, err := s.Check(mustTime(t, tc.at))
			if tc.err != "" {
				var closed *ClosedError
				if err == nil || err.Error() != tc.err || !errors.As(err, &closed) || closed.Next.IsZero() {
					t.Fatalf("Check(%s) = %v, want %q", tc.at, err, tc.err)
				}
				return
			}
			if err != nil || !end.Equal(mustTime(t, tc.end)) {
				t.Fatalf("Check(%s) = %s, %v; want %s", tc.at, end, err, tc.end)
			}
		})
	}
}

func TestParseList(t *testing.T) {
	tooMany := make([]string, MaxWindows+1)
	for i := range tooMany {
		tooMany[i] = fmt.Sprintf("mon %02d:00-%02d:30 UTC", i, i)
	}
	for _, tc := range []struct {
		name    string
		in      []string
		want    []string
		wantErr string
	}{
		{name: "none", in: nil, want: []string{}},
		{name: "canonical, in order", in: []string{"sat-sun 10:00-14:00 America/New_York", "Mon-Fri 08:00-18:00 Europe/Berlin"}, want: []string{"sat,sun 10:00-14:00 America/New_York", "mon-fri 08:00-18:00 Europe/Berlin"}},
		{name: "repeats kept once", in: []string{"mon-fri 08:00-18:00 UTC", "mon,tue,wed,thu,fri 08:00-18:00 UTC"}, want: []string{"mon-fri 08:00-18:00 UTC"}},
		{name: "blank entries skipped", in: []string{"", "mon 08:00-18:00 UTC", " "}, want: []string{"mon 08:00-18:00 UTC"}},
		{name: "sixteen", in: tooMany[:MaxWindows], want: tooMany[:MaxWindows]},
		{name: "seventeen", in: tooMany, wantErr: "access_windows: at most 16 windows are allowed, got 17"},
		{name: "one bad", in: []string{"mon 08:00-18:00 UTC", "mon-fry 08:00-18:00 Europe/Berlin"}, wantErr: `access_windows: "mon-fry 08:00-18:00 Europe/Berlin": unknown day "fry" (allowed: mon tue wed thu fri sat sun, ranges like mon-fri, lists like mon,wed,fri, or daily)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseList(tc.in)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("ParseList = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Strings(); strings.Join(got, "|") != strings.Join(tc.want, "|") || s.Len() != len(tc.want) {
				t.Fatalf("Strings() = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestAgainstWallClock compares At with a direct reading of the wall clock, minute by
// minute around DST changes, for sets drawn at random: t is inside a window when its local
// day and time are. The two differ by design only in a repeated hour (there a window is
// one unbroken stretch), so those instants are skipped.
func TestAgainstWallClock(t *testing.T) {
	zones := []string{"Europe/Berlin", "America/New_York", "Asia/Kathmandu", "UTC", "Australia/Sydney"}
	starts := []string{"2026-03-06T00:00:00Z", "2026-03-27T00:00:00Z", "2026-10-23T00:00:00Z", "2026-10-30T00:00:00Z", "2026-04-03T00:00:00Z"}
	rng := rand.New(rand.NewPCG(1, 2))
	for n := 0; n < 100; n++ {
		var specs []string
		for range 1 + rng.IntN(3) {
			days := uint8(1 + rng.IntN(everyDay))
			start, end := 30*rng.IntN(48), 30*(1+rng.IntN(48))
			if start == end {
				end = start%(minutesPerDay-30) + 30
			}
			specs = append(specs, formatDays(days)+" "+formatClock(start)+"-"+formatClock(end)+" "+zones[rng.IntN(len(zones))])
		}
		s := mustSet(t, specs...)
		from := mustTime(t, starts[n%len(starts)])
		t.Run(strings.Join(specs, "; "), func(t *testing.T) {
			for u := from; u.Before(from.Add(4 * 24 * time.Hour)); u = u.Add(15 * time.Minute) {
				if repeatedHour(s, u) {
					continue
				}
				open, end := s.At(u)
				if want := byWallClock(s, u); open != want {
					t.Fatalf("At(%s) open = %v, the wall clock says %v", u, open, want)
				}
				if open && (!isOpen(s, end.Add(-time.Second)) || isOpen(s, end)) {
					t.Fatalf("At(%s) end %s is not where the stretch closes", u, end)
				}
				next, ok := s.NextStart(u)
				if !ok || next.Before(u) || !isOpen(s, next) || (!open && (next.Equal(u) || isOpen(s, next.Add(-time.Second)))) {
					t.Fatalf("NextStart(%s) = %s, %v is not where a stretch opens", u, next, ok)
				}
			}
		})
	}
}

func isOpen(s Set, t time.Time) bool { open, _ := s.At(t); return open }

// byWallClock reads t on each window's local clock.
func byWallClock(s Set, t time.Time) bool {
	for _, w := range s.windows {
		local := t.In(w.loc)
		minute := local.Hour()*60 + local.Minute()
		today := w.days&(1<<local.Weekday()) != 0
		yesterday := w.days&(1<<((local.Weekday()+6)%7)) != 0
		if w.end > w.start && today && minute >= w.start && minute < w.end ||
			w.end < w.start && (today && minute >= w.start || yesterday && minute < w.end) {
			return true
		}
	}
	return false
}

// repeatedHour reports whether t's local time shows twice in any of the set's zones.
func repeatedHour(s Set, t time.Time) bool {
	for _, w := range s.windows {
		local := t.In(w.loc).Format("2006-01-02 15:04")
		for _, d := range []time.Duration{-time.Hour, time.Hour} {
			if t.Add(d).In(w.loc).Format("2006-01-02 15:04") == local {
				return true
			}
		}
	}
	return false
}

// At and NextStart run on every request, pickup and renewal of a role with windows.
func BenchmarkAt(b *testing.B) {
	sixteen := make([]string, MaxWindows)
	for i := range sixteen {
		sixteen[i] = fmt.Sprintf("daily %02d:00-%02d:30 Europe/Berlin", i, i+9)
	}
	for name, s := range map[string]Set{
		"two windows":                  mustSet(b, "mon-fri 08:00-18:00 Europe/Berlin", "sat,sun 10:00-14:00 America/New_York"),
		"sixteen windows, always open": mustSet(b, append(sixteen[:15:15], "daily 15:00-24:00 UTC")...),
	} {
		now := mustTime(b, "2026-12-01T10:00:00Z")
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				s.At(now)
				s.NextStart(now)
			}
		})
	}
}
