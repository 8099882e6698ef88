package store

import (
	"context"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/hashicorp/vault/sdk/logical"
)

// Keys sort as the lists need them: newest first for the record sets, oldest first for
// the deadline and expiry sets, and a bound cuts the due ones off.
func TestKeysSortAsTheListsNeedThem(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	older, newer := NewestFirstKey(t0, "a"), NewestFirstKey(t0.Add(time.Second), "b")
	if !(newer < older) {
		t.Fatalf("newest first: %s should sort before %s", newer, older)
	}
	early, late := TimeKey(t0, "a"), TimeKey(t0.Add(time.Minute), "b")
	if !(early < late) || !(early < TimeBound(t0.Add(time.Second))) || !(TimeBound(t0.Add(time.Second)) < late) {
		t.Fatalf("time keys: %s %s bound %s", early, late, TimeBound(t0.Add(time.Second)))
	}
	if KeyID(late) != "b" || TimeKey(time.Unix(0, -5), "x") != TimeKey(time.Unix(0, 0), "x") {
		t.Fatal("KeyID or the floor of TimeKey")
	}
	if HashedName("kv/app/db") == HashedName("kv/app/db2") || strings.ContainsAny(HashedName("a/b c"), "/ ") {
		t.Fatal("hashed names must differ and hold no path characters")
	}
}

func TestCursorsRoundTripAndRefuseOthers(t *testing.T) {
	key := NewestFirstKey(time.Now(), "5f1c2a8e-1111-2222-3333-444455556666")
	got, msg := DecodeCursor("requests", EncodeCursor("requests", key))
	if msg != "" || got != key {
		t.Fatalf("round trip: %q %q", got, msg)
	}
	for name, after := range map[string]string{
		"another list's":  EncodeCursor("grants", key),
		"not base64":      "%%%",
		"a made-up key":   EncodeCursor("requests", "../../config"),
		"a key too short": EncodeCursor("requests", "12.ab"),
	} {
		if _, msg := DecodeCursor("requests", after); !strings.HasPrefix(msg, "after:") {
			t.Errorf("%s cursor: want a 400 naming after, got %q", name, msg)
		}
	}
	for _, tc := range []struct{ in, want int }{{0, DefaultPageLimit}, {1, 1}, {MaxPageLimit, MaxPageLimit}} {
		if got, msg := CheckLimit(tc.in); got != tc.want || msg != "" {
			t.Errorf("CheckLimit(%d) = %d %q", tc.in, got, msg)
		}
	}
	for _, bad := range []int{-1, MaxPageLimit + 1} {
		if _, msg := CheckLimit(bad); !strings.Contains(msg, "limit") {
			t.Errorf("CheckLimit(%d): want a message naming limit, got %q", bad, msg)
		}
	}
}

func TestDiffEntries(t *testing.T) {
	a, b, c := Entry{"s", "1"}, Entry{"s", "2"}, Entry{"t", "1"}
	adds, removes := DiffEntries([]Entry{a, b}, []Entry{b, c})
	if len(adds) != 1 || adds[0] != c || len(removes) != 1 || removes[0] != a {
		t.Fatalf("adds %v removes %v", adds, removes)
	}
	if adds, removes := DiffEntries(nil, []Entry{a}); len(adds) != 1 || removes != nil {
		t.Fatalf("a new record gains all its entries: %v %v", adds, removes)
	}
}

// A request's entries follow its status: pending puts it where approvers and the deadline
// job find it; ended, only where the retention job does.
func TestRequestEntriesFollowItsStatus(t *testing.T) {
	now := time.Now().UTC()
	r := &access.Request{ID: "5f1c2a8e-1111-2222-3333-444455556666", Role: "app", Status: access.StatusPending,
		CreatedAt: now, ExpiresAt: now.Add(time.Hour), Requester: access.IdentityRef{EntityID: "e1"},
		Sets: []access.ApproverSet{{Principals: []access.Principal{{Kind: access.PrincipalGroup, Name: "owners"}}}}}
	sets := func(r *access.Request) []string {
		var out []string
		for _, e := range RequestEntries(r) {
			out = append(out, e.Set)
		}
		sort.Strings(out)
		return out
	}
	pending := strings.Join(sets(r), " ")
	if !strings.Contains(pending, "req/deadline") || !strings.Contains(pending, "req/open-principal/") || strings.Contains(pending, "req/ended") {
		t.Fatalf("a pending request's sets: %s", pending)
	}
	r.Status, r.EndedAt = access.StatusDenied, now
	ended := strings.Join(sets(r), " ")
	if strings.Contains(ended, "req/deadline") || strings.Contains(ended, "req/open-principal/") || !strings.Contains(ended, "req/ended") {
		t.Fatalf("an ended request's sets: %s", ended)
	}
}

// Records read back as they were written, and a missing one reads as nil.
func TestRecordsRoundTrip(t *testing.T) {
	ctx, s := context.Background(), &logical.InmemStorage{}
	g := &access.Grant{ID: "0123456789abcdef", Role: "app", Resources: []string{"kv/app/db"}, Permission: "read"}
	if err := PutGrant(ctx, s, g); err != nil {
		t.Fatal(err)
	}
	got, err := GetGrant(ctx, s, g.ID)
	if err != nil || got == nil || got.Role != "app" || got.Resources[0] != "kv/app/db" {
		t.Fatalf("grant read back: %+v %v", got, err)
	}
	if ids, err := ListGrantIDs(ctx, s); err != nil || len(ids) != 1 || ids[0] != g.ID {
		t.Fatalf("grant IDs: %v %v", ids, err)
	}
	if missing, err := GetRequest(ctx, s, "5f1c2a8e-1111-2222-3333-444455556666"); err != nil || missing != nil {
		t.Fatalf("a missing request: %v %v", missing, err)
	}
}
