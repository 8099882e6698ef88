package window

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Horizon bounds how far ahead a Set looks. A stretch of open time that goes on for longer
// than Horizon after t (a set that is always open, like "daily 00:00-24:00 UTC") is
// reported by At as ending at t+Horizon: past Vault's default max_lease_ttl (768h, 32
// days), so the cap is the role's or Vault's own, while every search stays bounded.
const Horizon = 35 * 24 * time.Hour

const (
	horizonDays = int(Horizon / (24 * time.Hour))
	secPerDay   = 24 * 60 * 60
)

// searchDays are the successive numbers of days ahead that At and NextStart generate
// windows for: nearly every answer is found in the first few days; only long merged
// stretches and DST-skipped weeks need more.
var searchDays = [...]int{3, 17, horizonDays + 2}

// Set is a role's access windows. The zero Set has no windows: it is never open. (A role
// without access windows is not restricted; callers check Len before consulting a Set.)
type Set struct {
	windows []Window
}

// ParseList reads a role's access_windows: at most MaxWindows specs, each as Parse reads
// it; blank entries are skipped and repeats kept once. Errors name the field, ready for a
// Vault 400.
func ParseList(specs []string) (Set, error) {
	if len(specs) > MaxWindows {
		return Set{}, fmt.Errorf("access_windows: at most %d windows are allowed, got %d", MaxWindows, len(specs))
	}
	var s Set
	seen := map[string]bool{}
	for _, spec := range specs {
		if strings.TrimSpace(spec) == "" {
			continue
		}
		w, err := Parse(spec)
		if err != nil {
			return Set{}, fmt.Errorf("access_windows: %w", err)
		}
		if key := w.String(); !seen[key] {
			seen[key] = true
			s.windows = append(s.windows, w)
		}
	}
	return s, nil
}

// Len is the number of windows in s.
func (s Set) Len() int { return len(s.windows) }

// Strings gives the windows in canonical form, in the order they were listed: what a role
// stores and shows.
func (s Set) Strings() []string {
	out := make([]string, len(s.windows))
	for i, w := range s.windows {
		out[i] = w.String()
	}
	return out
}

// String describes s for people: its windows joined with "; ".
func (s Set) String() string { return strings.Join(s.Strings(), "; ") }

// At reports whether t is inside any window and, if so, when the stretch containing t ends:
// windows that overlap or touch (one ends when another opens) count as one stretch. The
// end is exclusive (At(end) is closed), in the zone of the window that ends the stretch,
// and never later than t+Horizon (see Horizon). A grant's lease is capped at this end.
func (s Set) At(t time.Time) (open bool, end time.Time) {
	u := t.Unix() // windows begin and end on whole seconds, so dropping t's fraction changes nothing
	for _, days := range searchDays {
		i, ss := s.search(u, days)
		if i < 0 || ss[i].start > u {
			return false, time.Time{} // a stretch containing u would start before u: the first pass sees it
		}
		switch st := ss[i]; {
		case st.end-u >= int64(Horizon/time.Second):
			return true, t.Round(0).Add(Horizon)
		case st.end < reliableUntil(u, days):
			return true, time.Unix(st.end, 0).In(s.windows[st.last].loc)
		}
	}
	return true, t.Round(0).Add(Horizon) // not reached: the last pass reaches past Horizon
}

// NextStart returns the first moment at or after t at which s is open: t itself when t is
// inside a window, else the moment the next stretch opens (in the zone of the window that
// opens it). It is false only for an empty set, since every window opens at least once in
// any two weeks, DST included.
func (s Set) NextStart(t time.Time) (time.Time, bool) {
	next, _, ok := s.next(t)
	return next, ok
}

// next is NextStart, and the index of the window that opens then (-1 when t is inside one).
// Where several open at the same moment, the first listed is named.
func (s Set) next(t time.Time) (time.Time, int, bool) {
	u := t.Unix()
	for _, days := range searchDays {
		i, ss := s.search(u, days)
		if i < 0 {
			continue
		}
		st := ss[i]
		if st.start <= u {
			return t, -1, true
		}
		if st.start < reliableUntil(u, days) {
			return time.Unix(st.start, 0).In(s.windows[st.first].loc), st.first, true
		}
	}
	return time.Time{}, -1, false
}

// ClosedError is Check's refusal: t is outside every window.
type ClosedError struct {
	// Next is when the next window opens, in its zone; zero when the set has no windows.
	Next time.Time
	// Window is the window that opens at Next.
	Window Window
}

func (e *ClosedError) Error() string {
	if e.Next.IsZero() {
		return "outside every access window: none is defined"
	}
	return fmt.Sprintf("outside every access window; the next opens at %s (%s)", e.Next.Format(time.RFC3339), e.Window)
}

// Check is what a request, pickup or renewal at t asks: inside a window, it returns when the
// stretch ends (as At); outside, a *ClosedError that says when the next window opens.
func (s Set) Check(t time.Time) (end time.Time, err error) {
	if open, end := s.At(t); open {
		return end, nil
	}
	next, i, ok := s.next(t)
	if !ok {
		return time.Time{}, &ClosedError{}
	}
	return time.Time{}, &ClosedError{Next: next, Window: s.windows[i]}
}

// occurrence is one opening of one window, in Unix seconds, end exclusive.
type occurrence struct {
	start, end int64
	win        int
}

// stretch is a run of open time: occurrences that overlap or touch, merged. first and last
// are the windows whose occurrences open and close it.
type stretch struct {
	start, end  int64
	first, last int
}

// reliableUntil is how far the stretches of search(u, days) are certain: every occurrence
// that search leaves out starts on a local date more than days after u's, which is at
// least days-1 days later even across the largest offset change there has been.
func reliableUntil(u int64, days int) int64 { return u + int64(days-1)*secPerDay }

// search builds the stretches from every occurrence that starts between two local days
// before u and days local days after it, and returns the index of the first that ends after
// u (-1 if none does). Occurrences starting earlier ended at least a day before u, so the
// stretches' ends, and their starts from u on, are exact up to reliableUntil(u, days).
func (s Set) search(u int64, days int) (int, []stretch) {
	var occs []occurrence
	for i, w := range s.windows {
		y, m, d := time.Unix(u, 0).In(w.loc).Date()
		for k := -2; k <= days; k++ {
			day := time.Date(y, m, d+k, 0, 0, 0, 0, time.UTC) // the local date, as wall-clock seconds
			if w.days&(1<<day.Weekday()) == 0 {
				continue
			}
			endDay := day
			if w.end < w.start {
				endDay = day.AddDate(0, 0, 1)
			}
			start := instant(w.loc, day.Unix()+int64(w.start)*60, false)
			end := instant(w.loc, endDay.Unix()+int64(w.end)*60, true)
			if end > start { // empty when a DST jump skips the whole window
				occs = append(occs, occurrence{start: start, end: end, win: i})
			}
		}
	}
	slices.SortFunc(occs, func(a, b occurrence) int {
		return cmp.Or(cmp.Compare(a.start, b.start), cmp.Compare(a.win, b.win))
	})
	var ss []stretch
	for _, o := range occs {
		if n := len(ss); n > 0 && o.start <= ss[n-1].end {
			if o.end > ss[n-1].end {
				ss[n-1].end, ss[n-1].last = o.end, o.win
			}
			continue
		}
		ss = append(ss, stretch{start: o.start, end: o.end, first: o.win, last: o.win})
	}
	return slices.IndexFunc(ss, func(st stretch) bool { return st.end > u }), ss
}

// instant returns the Unix time at which the clock of loc reads wall (seconds since
// 1970-01-01 00:00 on that clock). A wall time the clock skips gives the first instant
// after it (when the clock jumps past it); one it shows twice gives the first instant, or
// the last if late.
func instant(loc *time.Location, wall int64, late bool) int64 {
	// No UTC offset has been as large as 16 hours, so every instant showing wall lies within reach.
	const reach = 18 * 60 * 60
	first, found := int64(0), false
	last, exact := int64(0), false
	// Walk the zone's periods of constant offset that cover [wall-reach, wall+reach].
	for u := wall - reach; ; {
		t := time.Unix(u, 0).In(loc)
		_, off := t.Zone()
		from, until := t.ZoneBounds()
		lo, hi := int64(math.MinInt64), int64(math.MaxInt64)
		if !from.IsZero() {
			lo = from.Unix()
		}
		if !until.IsZero() {
			hi = until.Unix()
		}
		// In this period the clock shows wall at wall-off, if that falls inside it; either
		// way its first instant showing wall or later is max(lo, wall-off).
		at := wall - int64(off)
		if !found && max(lo, at) < hi {
			first, found = max(lo, at), true
			if !late {
				return first
			}
		}
		if at >= lo && at < hi {
			last, exact = at, true
		}
		if hi > wall+reach || hi <= u {
			break
		}
		u = hi
	}
	if late && exact {
		return last
	}
	return first
}
