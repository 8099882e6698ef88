package testldap

import (
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// People bind with their passwords and nobody else's; the bind account reads groups;
// members added and removed with ldapmodify show at once.
func TestPeopleAndGroups(t *testing.T) {
	s := Start(t, Directory{
		People: []Person{{"ann", "ann-pw-1"}, {"ben", "ben-pw-2"}},
		Groups: []Group{{CN: "owners", Members: []string{"ann"}}},
	})
	if !strings.HasPrefix(s.URL(), "ldap://127.0.0.1:") || s.Port == 0 {
		t.Fatalf("URL() = %q", s.URL())
	}
	if id, err := s.WhoAmI(t, UserDN("ann"), "ann-pw-1"); err != nil || id != "dn:"+UserDN("ann") {
		t.Fatalf("ann binds: %q, %v", id, err)
	}
	if _, err := s.WhoAmI(t, UserDN("ann"), "ben-pw-2"); err == nil || !strings.Contains(err.Error(), "Invalid credentials") {
		t.Errorf("ann with ben's password: %v, want Invalid credentials", err)
	}
	if _, err := s.WhoAmI(t, BindDN, "wrong"); err == nil {
		t.Errorf("the bind account with a wrong password binds")
	}
	if got := s.Members(t, "owners"); !slices.Equal(got, []string{"ann"}) {
		t.Fatalf("owners = %v", got)
	}

	s.AddPerson(t, Person{"cid", "cid-pw-3"})
	s.AddGroup(t, Group{CN: "auditors", Members: []string{"cid"}})
	s.AddMember(t, "owners", "ben")
	s.AddMember(t, "owners", "cid")
	if got := s.Members(t, "owners"); !slices.Equal(got, []string{"ann", "ben", "cid"}) {
		t.Fatalf("owners after two adds = %v", got)
	}
	s.RemoveMember(t, "owners", "ann")
	if got := s.Members(t, "owners"); !slices.Equal(got, []string{"ben", "cid"}) {
		t.Fatalf("owners after removing ann = %v", got)
	}
	if got := s.Members(t, "auditors"); !slices.Equal(got, []string{"cid"}) {
		t.Fatalf("auditors = %v", got)
	}
	if id, err := s.WhoAmI(t, UserDN("cid"), "cid-pw-3"); err != nil || id != "dn:"+UserDN("cid") {
		t.Fatalf("cid, added over the wire, binds: %q, %v", id, err)
	}
	// The log is slapd's "stats" level: the binds are there.
	if !strings.Contains(s.Log(), `BIND dn="`+UserDN("cid")+`"`) {
		t.Errorf("the log does not show cid's bind:\n%s", lastLines(s.Log(), 20))
	}
}

// Without a bind, nothing is readable: Vault must be given BindDN.
func TestAnonymousReadsNothing(t *testing.T) {
	s := Start(t, Directory{People: []Person{{"ann", "ann-pw-1"}}, Groups: []Group{{CN: "owners", Members: []string{"ann"}}}})
	out, err := s.client(s.bins.ldapsearch, "", "", "", "-LLL", "-b", BaseDN, "(objectClass=*)", "dn")
	// slapd answers "No such object" (32): under the ACLs the anonymous see not even the base.
	if err == nil || strings.Contains(out, "dn:") || !strings.Contains(err.Error(), "No such object") {
		t.Fatalf("an anonymous search: %v\n%s", err, out)
	}
	out, err = s.client(s.bins.ldapsearch, BindDN, s.BindPassword, "", "-LLL", "-b", BaseDN, "(objectClass=*)", "dn")
	if err != nil || !strings.Contains(out, "dn: "+UserDN("ann")) {
		t.Fatalf("the bind account's search: %v\n%s", err, out)
	}
}

// Stopping leaves no slapd and no directory behind.
func TestCleanupStopsTheServer(t *testing.T) {
	var s *Server
	t.Run("server", func(t *testing.T) { s = Start(t, Directory{}) })
	pid := s.cmd.Process.Pid
	if err := syscall.Kill(pid, 0); err == nil {
		t.Errorf("slapd %d still running after the test's cleanup", pid)
	}
	if _, err := os.Stat(s.Dir); !os.IsNotExist(err) {
		t.Errorf("%s still there after the test's cleanup: %v", s.Dir, err)
	}
	if !strings.Contains(s.Log(), "(no log") {
		t.Errorf("the log outlived the directory")
	}
}

// Two servers at once get their own ports, passwords and directories.
func TestTwoServers(t *testing.T) {
	a, b := Start(t, Directory{}), Start(t, Directory{})
	if a.Port == b.Port || a.AdminPassword == b.AdminPassword || a.Dir == b.Dir {
		t.Fatalf("the servers share a port, password or directory: %+v %+v", a, b)
	}
	if _, err := a.WhoAmI(t, BindDN, b.BindPassword); err == nil {
		t.Errorf("b's bind password binds to a")
	}
}

// Without slapd the error names the package to install (Start fails the test with it).
func TestMissingBinariesNameThePackage(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	saved := sbinDirs
	sbinDirs = []string{t.TempDir()}
	t.Cleanup(func() { sbinDirs = saved })
	_, err := findBinaries()
	if err == nil || !strings.Contains(err.Error(), "install Debian's slapd package") {
		t.Errorf("findBinaries() without slapd: %v", err)
	}
}

func TestEscapeRDN(t *testing.T) {
	for in, want := range map[string]string{"ann": "ann", "a,b": `a\,b`, " x ": `\ x\ `, "#1": `\#1`, `a+b=c`: `a\+b\=c`} {
		if got := escapeRDN(in); got != want {
			t.Errorf("escapeRDN(%q) = %q, want %q", in, got, want)
		}
	}
}
