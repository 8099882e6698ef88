// Package window decides when a role's access windows (days, hours, IANA time zone) are open.
package window

import (
	"errors"
	"fmt"
	"strings"
	"time"
	_ "time/tzdata" // Vault's container may have no /usr/share/zoneinfo; this keeps zones loadable there
)

// Limits on user input, checked before any of it is looked at further.
const (
	// MaxWindows is how many windows one role may name.
	MaxWindows = 16

	maxSpecLen    = 128 // the longest real spec ("mon,tue,... 00:00-24:00 America/Argentina/ComodRivadavia") is 73
	maxZoneLen    = 64  // the longest IANA name is 32
	minutesPerDay = 24 * 60
)

const (
	form        = `"<days> <HH:MM>-<HH:MM> <IANA zone>", e.g. "mon-fri 08:00-18:00 Europe/Berlin"`
	allowedDays = "allowed: mon tue wed thu fri sat sun, ranges like mon-fri, lists like mon,wed,fri, or daily"
	zoneHint    = "use an IANA name like Europe/Berlin, America/New_York or UTC"
)

// weekOrder is the order days are read and written in: a week starts on Monday.
var weekOrder = [7]time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday, time.Saturday, time.Sunday}

var dayNames = map[string]time.Weekday{
	"mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday, "thu": time.Thursday,
	"fri": time.Friday, "sat": time.Saturday, "sun": time.Sunday,
}

const everyDay = 1<<7 - 1

// Window is one access window: it opens on each of its days at start, local wall-clock time
// of its zone, and closes at end on the same day, or on the next day when end is before
// start (crossing midnight).
//
// Wall-clock times that a DST change makes ambiguous or skips are resolved so that a window
// is one unbroken stretch and never shorter than the clock allows:
//   - a start or end that does not exist (skipped when clocks go forward) is the first
//     instant after it, when the clocks jump: 02:30-04:00 Europe/Berlin on the last Sunday
//     of March opens at 03:00 CEST; 01:00-03:00 that day lasts one hour;
//   - a start that occurs twice (the hour repeated when clocks go back) is its first
//     occurrence, an end its second: 00:00-02:30 Europe/Berlin on the last Sunday of
//     October closes at 02:30 CET, after three and a half hours.
//
// Windows come from Parse; the zero Window is not a window.
type Window struct {
	days  uint8 // bit d set: opens on time.Weekday(d)
	start int   // minutes after local midnight, 0 to 1439
	end   int   // 1 to 1440; end < start: closes on the next day
	loc   *time.Location
}

// Parse reads one window: "<days> <HH:MM>-<HH:MM> <IANA zone>". Errors quote spec and say
// what is allowed, so they can go back to the user as they are.
func Parse(spec string) (Window, error) {
	if len(spec) > maxSpecLen {
		return Window{}, fmt.Errorf("%q is longer than %d characters (the form is %s)", spec[:48]+"...", maxSpecLen, form)
	}
	fields := strings.Fields(spec)
	if len(fields) == 0 {
		return Window{}, errors.New("empty access window (the form is " + form + ")")
	}
	if len(fields) != 3 {
		return Window{}, fmt.Errorf("%q: the form is %s", spec, form)
	}
	days, err := parseDays(fields[0])
	if err != nil {
		return Window{}, fmt.Errorf("%q: %w", spec, err)
	}
	start, end, err := parseHours(fields[1])
	if err != nil {
		return Window{}, fmt.Errorf("%q: %w", spec, err)
	}
	loc, err := loadZone(fields[2])
	if err != nil {
		return Window{}, fmt.Errorf("%q: %w", spec, err)
	}
	return Window{days: days, start: start, end: end, loc: loc}, nil
}

// parseDays reads "daily", a day, a range (wrapping past Sunday, like fri-mon) or a comma
// list of days and ranges. Case does not matter.
func parseDays(s string) (uint8, error) {
	s = strings.ToLower(s)
	if s == "daily" {
		return everyDay, nil
	}
	var days uint8
	for _, item := range strings.Split(s, ",") {
		if item == "" {
			return 0, fmt.Errorf("empty day in %q (%s)", s, allowedDays)
		}
		if item == "daily" {
			return 0, fmt.Errorf("daily is every day and stands alone, not in a list (%s)", allowedDays)
		}
		from, to, isRange := strings.Cut(item, "-")
		first, ok := dayNames[from]
		if !ok {
			return 0, fmt.Errorf("unknown day %q (%s)", from, allowedDays)
		}
		if !isRange {
			days |= 1 << first
			continue
		}
		last, ok := dayNames[to]
		if !ok {
			return 0, fmt.Errorf("unknown day %q (%s)", to, allowedDays)
		}
		if first == last {
			return 0, fmt.Errorf("range %q starts and ends on the same day (write %s alone)", item, from)
		}
		for d := first; ; d = (d + 1) % 7 {
			days |= 1 << d
			if d == last {
				break
			}
		}
	}
	return days, nil
}

// parseHours reads "HH:MM-HH:MM": start 00:00 to 23:59, end 00:01 to 24:00, not equal.
func parseHours(s string) (start, end int, err error) {
	from, to, ok := strings.Cut(s, "-")
	if !ok {
		return 0, 0, fmt.Errorf("hours %q: want HH:MM-HH:MM, e.g. 08:00-18:00", s)
	}
	start, ok = clock(from)
	if !ok || start >= minutesPerDay {
		return 0, 0, fmt.Errorf("start %q: want HH:MM from 00:00 to 23:59", from)
	}
	end, ok = clock(to)
	if !ok || end > minutesPerDay {
		return 0, 0, fmt.Errorf("end %q: want HH:MM from 00:01 to 24:00", to)
	}
	if end == 0 {
		return 0, 0, fmt.Errorf("end %q: write 24:00 for the midnight that ends a day", to)
	}
	if start == end {
		return 0, 0, fmt.Errorf("hours %q: start and end are the same (00:00-24:00 is the whole day)", s)
	}
	return start, end, nil
}

// clock reads exactly two-digit "HH:MM" with MM below 60 as minutes after midnight; HH may
// be 24 (only 24:00 is then below the caller's bound).
func clock(s string) (int, bool) {
	if len(s) != 5 || s[2] != ':' {
		return 0, false
	}
	for _, i := range []int{0, 1, 3, 4} {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	h := int(s[0]-'0')*10 + int(s[1]-'0')
	m := int(s[3]-'0')*10 + int(s[4]-'0')
	if h > 24 || m > 59 {
		return 0, false
	}
	return h*60 + m, true
}

// loadZone loads an IANA zone after checking its name looks like one, so nothing but a
// plain zone name reaches time.LoadLocation (which reads files named by it).
func loadZone(name string) (*time.Location, error) {
	if len(name) > maxZoneLen || !zoneNameShape(name) {
		return nil, fmt.Errorf("time zone %q is not a zone name (%s)", name, zoneHint)
	}
	switch lower := strings.ToLower(name); {
	case lower == "local" || lower == "localtime":
		// time.LoadLocation would give the Vault server's own zone, which differs from node to node.
		return nil, fmt.Errorf("time zone %q is the server's own zone, not a fixed one (%s)", name, zoneHint)
	case lower == "posixrules" || strings.HasPrefix(lower, "posix/") || strings.HasPrefix(lower, "right/"):
		// Only some systems have these copies (right/ even counts leap seconds); Vault nodes must agree.
		return nil, fmt.Errorf("time zone %q is a system-specific copy (%s)", name, zoneHint)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("unknown time zone %q (%s)", name, zoneHint)
	}
	return loc, nil
}

// zoneNameShape reports whether name is slash-separated parts that each start with an ASCII
// letter and hold only letters, digits, '_', '+' and '-' (Etc/GMT+5, America/Port-au-Prince).
func zoneNameShape(name string) bool {
	for _, part := range strings.Split(name, "/") {
		if part == "" || !isLetter(part[0]) {
			return false
		}
		for i := 0; i < len(part); i++ {
			c := part[i]
			if !isLetter(c) && !(c >= '0' && c <= '9') && c != '_' && c != '+' && c != '-' {
				return false
			}
		}
	}
	return true
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// String gives the window back in canonical form, which Parse reads as the same window:
// lower-case days in week order from Monday, runs of three or more as ranges, "daily" for
// all seven; single spaces.
func (w Window) String() string {
	return formatDays(w.days) + " " + formatClock(w.start) + "-" + formatClock(w.end) + " " + w.loc.String()
}

func formatDays(days uint8) string {
	if days == everyDay {
		return "daily"
	}
	on := func(i int) bool { return days&(1<<weekOrder[(i+7)%7]) != 0 }
	var parts []string
	for i := 0; i < 7; i++ {
		if !on(i) || on(i-1) {
			continue // not the first day of a run
		}
		n := 1
		for on(i + n) {
			n++
		}
		first, last := dayName(weekOrder[i]), dayName(weekOrder[(i+n-1)%7])
		switch n {
		case 1:
			parts = append(parts, first)
		case 2:
			parts = append(parts, first, last)
		default:
			parts = append(parts, first+"-"+last)
		}
	}
	return strings.Join(parts, ",")
}

func dayName(d time.Weekday) string { return strings.ToLower(d.String()[:3]) }

func formatClock(minutes int) string { return fmt.Sprintf("%02d:%02d", minutes/60, minutes%60) }
