// Package textsafe says which characters make text read other than it is (the ones that
// show nothing or reorder what follows), and shortens input quoted in an error. The plugin
// refuses those characters in free text people write (backend) and the chat formats drop
// them from what they render, from this one list. It imports nothing of the project.
package textsafe

// ZeroWidthJoiner joins emoji into one (👨‍👩‍👧). It is hidden, but the chat formats keep
// it: alone it changes no order, and without it a joined emoji falls apart.
const ZeroWidthJoiner = '\u200D'

// Hidden reports whether r shows nothing or changes the direction of the text around it:
// the bidirectional controls (U+061C, U+200E, U+200F, U+202A-U+202E, U+2066-U+2069), the
// zero-width characters (U+200B-U+200D, U+2060) and the byte order mark (U+FEFF).
func Hidden(r rune) bool {
	switch {
	case r == '\u061C', r == '\u200E', r == '\u200F', r == '\u2060', r == '\uFEFF':
		return true
	case r >= '\u200B' && r <= '\u200D', r >= '\u202A' && r <= '\u202E', r >= '\u2066' && r <= '\u2069':
		return true
	}
	return false
}

// Truncate shortens text a caller sent to at most 64 bytes and "...", for an error
// message that names it without echoing a page of input.
func Truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
