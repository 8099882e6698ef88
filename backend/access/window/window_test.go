package window

import (
	"strings"
	"testing"
)

// sameWindow compares two windows by value; their *time.Location differ per load.
func sameWindow(a, b Window) bool {
	return a.days == b.days && a.start == b.start && a.end == b.end && a.loc.String() == b.loc.String()
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     string // canonical String(); empty when wantErr is set
		wantErr  string
	}{
		{name: "weekdays", in: "mon-fri 08:00-18:00 Europe/Berlin", want: "mon-fri 08:00-18:00 Europe/Berlin"},
		{name: "weekend list", in: "sat,sun 10:00-14:00 America/New_York", want: "sat,sun 10:00-14:00 America/New_York"},
		{name: "all days written out is daily", in: "mon-sun 22:00-06:00 UTC", want: "daily 22:00-06:00 UTC"},
		{name: "whole day", in: "daily 00:00-24:00 Asia/Kolkata", want: "daily 00:00-24:00 Asia/Kolkata"},
		{name: "upper case days", in: "Mon-FRI 08:00-18:00 Europe/Berlin", want: "mon-fri 08:00-18:00 Europe/Berlin"},
		{name: "DAILY", in: "DAILY 08:00-09:00 UTC", want: "daily 08:00-09:00 UTC"},
		{name: "wrapping range", in: "fri-mon 09:00-17:00 UTC", want: "fri-mon 09:00-17:00 UTC"},
		{name: "list of three becomes a range", in: "wed,mon,tue 09:00-17:00 UTC", want: "mon-wed 09:00-17:00 UTC"},
		{name: "list in week order", in: "fri,mon,wed 09:00-17:00 UTC", want: "mon,wed,fri 09:00-17:00 UTC"},
		{name: "two days over the week end", in: "mon,sun 09:00-17:00 UTC", want: "sun,mon 09:00-17:00 UTC"},
		{name: "two-day range is a list", in: "sat-sun 09:00-17:00 UTC", want: "sat,sun 09:00-17:00 UTC"},
		{name: "repeated day", in: "mon,mon 09:00-17:00 UTC", want: "mon 09:00-17:00 UTC"},
		{name: "ranges that cover the week", in: "mon-wed,thu-sun 09:00-17:00 UTC", want: "daily 09:00-17:00 UTC"},
		{name: "run and wrapped run", in: "thu,sun-tue 09:00-17:00 UTC", want: "thu,sun-tue 09:00-17:00 UTC"},
		{name: "overlapping ranges", in: "mon-wed,tue-thu 09:00-17:00 UTC", want: "mon-thu 09:00-17:00 UTC"},
		{name: "extra whitespace", in: "  tue \t 09:00-17:00   Asia/Kathmandu ", want: "tue 09:00-17:00 Asia/Kathmandu"},
		{name: "last minute", in: "mon 23:59-24:00 UTC", want: "mon 23:59-24:00 UTC"},
		{name: "first minute", in: "mon 00:00-00:01 UTC", want: "mon 00:00-00:01 UTC"},
		{name: "crossing midnight", in: "fri 23:59-00:01 UTC", want: "fri 23:59-00:01 UTC"},
		{name: "zone with plus", in: "mon 09:00-17:00 Etc/GMT+5", want: "mon 09:00-17:00 Etc/GMT+5"},
		{name: "zone with three parts", in: "mon 09:00-17:00 America/Argentina/Buenos_Aires", want: "mon 09:00-17:00 America/Argentina/Buenos_Aires"},
		{name: "zone with hyphens", in: "mon 09:00-17:00 America/Port-au-Prince", want: "mon 09:00-17:00 America/Port-au-Prince"},

		{name: "empty", in: "", wantErr: `empty access window (the form is "<days> <HH:MM>-<HH:MM> <IANA zone>"`},
		{name: "blank", in: " \t ", wantErr: "empty access window"},
		{name: "too long", in: "mon-fri 08:00-18:00 " + strings.Repeat("A", 120), wantErr: "is longer than 128 characters"},
		{name: "no zone", in: "mon-fri 08:00-18:00", wantErr: `"mon-fri 08:00-18:00": the form is "<days> <HH:MM>-<HH:MM> <IANA zone>"`},
		{name: "extra field", in: "mon-fri 08:00-18:00 Europe/Berlin now", wantErr: "the form is"},
		{name: "space in day list", in: "mon, fri 08:00-18:00 Europe/Berlin", wantErr: "the form is"},
		{name: "unknown day", in: "mon-fry 08:00-18:00 Europe/Berlin", wantErr: `"mon-fry 08:00-18:00 Europe/Berlin": unknown day "fry" (allowed: mon tue wed thu fri sat sun, ranges like mon-fri, lists like mon,wed,fri, or daily)`},
		{name: "full day name", in: "monday 08:00-18:00 UTC", wantErr: `unknown day "monday"`},
		{name: "empty day in list", in: "mon,,fri 08:00-18:00 UTC", wantErr: `empty day in "mon,,fri"`},
		{name: "trailing comma", in: "mon, 08:00-18:00 UTC", wantErr: `empty day in "mon,"`},
		{name: "open range", in: "mon- 08:00-18:00 UTC", wantErr: `unknown day ""`},
		{name: "range of one day", in: "mon-mon 08:00-18:00 UTC", wantErr: `range "mon-mon" starts and ends on the same day (write mon alone)`},
		{name: "range of three days", in: "mon-tue-wed 08:00-18:00 UTC", wantErr: `unknown day "tue-wed"`},
		{name: "daily in a list", in: "daily,mon 08:00-18:00 UTC", wantErr: "daily is every day and stands alone"},
		{name: "no hyphen in hours", in: "mon 08:00/18:00 UTC", wantErr: `hours "08:00/18:00": want HH:MM-HH:MM`},
		{name: "one-digit hour", in: "mon 8:00-18:00 UTC", wantErr: `start "8:00": want HH:MM from 00:00 to 23:59`},
		{name: "signed hour", in: "mon +8:00-18:00 UTC", wantErr: `start "+8:00"`},
		{name: "seconds", in: "mon 08:00:00-18:00 UTC", wantErr: `start "08:00:00"`},
		{name: "start 24:00", in: "mon 24:00-06:00 UTC", wantErr: `start "24:00": want HH:MM from 00:00 to 23:59`},
		{name: "minute 60", in: "mon 08:60-09:00 UTC", wantErr: `start "08:60"`},
		{name: "end past 24:00", in: "mon 08:00-24:01 UTC", wantErr: `end "24:01": want HH:MM from 00:01 to 24:00`},
		{name: "end 25:00", in: "mon 08:00-25:00 UTC", wantErr: `end "25:00"`},
		{name: "end 00:00", in: "mon 08:00-00:00 UTC", wantErr: `end "00:00": write 24:00 for the midnight that ends a day`},
		{name: "empty end", in: "mon 08:00- UTC", wantErr: `end ""`},
		{name: "start equals end", in: "mon 08:00-08:00 UTC", wantErr: `hours "08:00-08:00": start and end are the same (00:00-24:00 is the whole day)`},
		{name: "Local zone", in: "mon 08:00-18:00 Local", wantErr: `time zone "Local" is the server's own zone`},
		{name: "local zone", in: "mon 08:00-18:00 local", wantErr: `time zone "local" is the server's own zone`},
		{name: "localtime zone", in: "mon 08:00-18:00 localtime", wantErr: "the server's own zone"},
		{name: "unknown zone", in: "mon 08:00-18:00 Europe/Berln", wantErr: `unknown time zone "Europe/Berln" (use an IANA name like Europe/Berlin, America/New_York or UTC)`},
		{name: "offset is no zone", in: "mon 08:00-18:00 +01:00", wantErr: `time zone "+01:00" is not a zone name`},
		{name: "path traversal", in: "mon 08:00-18:00 ../../etc/passwd", wantErr: "is not a zone name"},
		{name: "absolute path", in: "mon 08:00-18:00 /etc/localtime", wantErr: "is not a zone name"},
		{name: "empty part", in: "mon 08:00-18:00 Europe//Berlin", wantErr: "is not a zone name"},
		{name: "control character", in: "mon 08:00-18:00 Europe/Berlin\x00", wantErr: `time zone "Europe/Berlin\x00" is not a zone name`},
		{name: "non-ASCII", in: "mon 08:00-18:00 Europe/Zürich", wantErr: "is not a zone name"},
		{name: "zone too long", in: "mon 08:00-18:00 " + strings.Repeat("A", 65), wantErr: "is not a zone name"},
		{name: "posix copy", in: "mon 08:00-18:00 posix/Europe/Berlin", wantErr: "is a system-specific copy"},
		{name: "leap-second copy", in: "mon 08:00-18:00 right/UTC", wantErr: "is a system-specific copy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, err := Parse(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Parse(%q) = %v, %v; want error containing %q", tc.in, w, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.in, err)
			}
			if got := w.String(); got != tc.want {
				t.Fatalf("Parse(%q).String() = %q, want %q", tc.in, got, tc.want)
			}
			again, err := Parse(w.String())
			if err != nil || !sameWindow(again, w) {
				t.Fatalf("round trip of %q: %v, %v", w, again, err)
			}
		})
	}
}
