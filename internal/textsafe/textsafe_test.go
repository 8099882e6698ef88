package textsafe

import "testing"

func TestHidden(t *testing.T) {
	hidden := []rune{'\u061C', '\u200B', '\u200C', '\u200D', '\u200E', '\u200F', '\u202A', '\u202B', '\u202C', '\u202D', '\u202E',
		'\u2060', '\u2066', '\u2067', '\u2068', '\u2069', '\uFEFF'}
	for _, r := range hidden {
		if !Hidden(r) {
			t.Errorf("%U is not hidden", r)
		}
	}
	for _, r := range "abc ÄéЖ中文👨-_.,;:!?\u00A0\u2028\u2070\u2065\u200A\u202F" {
		if Hidden(r) {
			t.Errorf("%U is hidden", r)
		}
	}
}
