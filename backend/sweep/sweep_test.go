package sweep

import (
	"testing"
	"time"
)

// A suspect is removable only on a sighting at least minAge after its first, and a
// suspect that a sweep no longer sees (something explained it) starts over.
func TestSightingsNeedTwoFarEnoughApart(t *testing.T) {
	start := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	minAge := 2 * time.Minute
	s := sightings{}
	if s.secondSighting("a", start, minAge) {
		t.Fatal("removable on its first sighting")
	}
	if s.secondSighting("a", start.Add(minAge-time.Second), minAge) {
		t.Fatal("removable on a second sighting sooner than minAge")
	}
	if !s.secondSighting("a", start.Add(minAge), minAge) {
		t.Fatal("not removable on a sighting minAge after the first")
	}
	s.secondSighting("b", start, minAge)
	s.forgetAllBut(map[string]bool{"a": true})
	if _, ok := s["b"]; ok {
		t.Fatal("b was not seen in this sweep and is still remembered")
	}
	if s.secondSighting("b", start.Add(time.Hour), minAge) {
		t.Fatal("b, forgotten, was removable on its next sighting")
	}
}
