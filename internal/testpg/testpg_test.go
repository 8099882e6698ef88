package testpg

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// A role the superuser creates with a password logs in over TCP with the real psql and
// selects; once dropped it is gone from pg_roles and can no longer log in.
func TestRoleLifecycle(t *testing.T) {
	s := Start(t)

	if got := s.ConnectionURL(); got != "postgresql://{{username}}:{{password}}@127.0.0.1:"+strconv.Itoa(s.Port)+"/postgres?sslmode=disable" {
		t.Errorf("ConnectionURL() = %q", got)
	}
	if !s.RoleExists(t, s.AdminUser) {
		t.Fatalf("the superuser %s is not in pg_roles: %v", s.AdminUser, s.Roles(t))
	}
	if _, err := s.Psql(t, s.AdminUser, "wrong-"+s.AdminPassword, "SELECT 1"); err == nil || !strings.Contains(err.Error(), "password authentication failed") {
		t.Errorf("the superuser with a wrong password: err = %v, want password authentication failed", err)
	}

	const role, password = "app_user", "s3cret-Pa55"
	s.AdminSQL(t, "CREATE ROLE "+role+" WITH LOGIN PASSWORD '"+password+"'")
	if !s.RoleExists(t, role) {
		t.Fatalf("%s not in pg_roles after CREATE ROLE: %v", role, s.Roles(t))
	}
	out, err := s.Psql(t, role, password, "SELECT 1")
	if err != nil || out != "1" {
		t.Fatalf("SELECT 1 as %s: %q, %v", role, out, err)
	}
	if out, err := s.Psql(t, role, password, "SELECT current_user"); err != nil || out != role {
		t.Errorf("SELECT current_user as %s: %q, %v", role, out, err)
	}

	s.AdminSQL(t, "DROP ROLE "+role)
	if s.RoleExists(t, role) {
		t.Errorf("%s still in pg_roles after DROP ROLE: %v", role, s.Roles(t))
	}
	if _, err := s.Psql(t, role, password, "SELECT 1"); err == nil {
		t.Errorf("the dropped role %s still logs in", role)
	}
	if !strings.Contains(s.Log(), "connection authorized: user="+role) {
		t.Errorf("the log does not show %s's connection:\n%s", role, s.Log())
	}
}

// Stopping leaves no postgres process and no directory behind.
func TestCleanupStopsTheServer(t *testing.T) {
	var s *Server
	t.Run("server", func(t *testing.T) { s = Start(t) })
	pid := s.cmd.Process.Pid
	if err := syscall.Kill(pid, 0); err == nil {
		t.Errorf("postmaster %d still running after the test's cleanup", pid)
	}
	if err := syscall.Kill(-pid, 0); err == nil {
		t.Errorf("process group %d (the backends) still has processes after the test's cleanup", pid)
	}
	if _, err := os.Stat(s.Dir); !os.IsNotExist(err) {
		t.Errorf("%s still there after the test's cleanup: %v", s.Dir, err)
	}
}

// Two servers at once get their own ports, passwords and directories.
func TestTwoServers(t *testing.T) {
	a, b := Start(t), Start(t)
	if a.Port == b.Port || a.AdminPassword == b.AdminPassword || a.Dir == b.Dir {
		t.Fatalf("the servers share a port, password or directory: %+v %+v", a, b)
	}
	if _, err := a.Psql(t, a.AdminUser, b.AdminPassword, "SELECT 1"); err == nil {
		t.Errorf("b's password logs in to a")
	}
}

func TestVersionLess(t *testing.T) {
	got := []string{"15", "9.6", "16", "10", "9.10"}
	slices.SortFunc(got, func(a, b string) int {
		switch {
		case versionLess(a, b):
			return -1
		case versionLess(b, a):
			return 1
		}
		return 0
	})
	if want := []string{"9.6", "9.10", "10", "15", "16"}; !slices.Equal(got, want) {
		t.Errorf("sorted %v, want %v", got, want)
	}
}

// Without PostgreSQL the error names the package to install (Start fails the test with it).
func TestMissingBinariesNameThePackage(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	saved := debianRoot
	debianRoot = t.TempDir()
	t.Cleanup(func() { debianRoot = saved })
	_, err := findBinaries()
	if err == nil || !strings.Contains(err.Error(), "install Debian's postgresql package") {
		t.Errorf("findBinaries() without PostgreSQL: %v", err)
	}
}
