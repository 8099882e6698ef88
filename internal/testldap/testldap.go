// Package testldap starts a throwaway OpenLDAP server, Debian's slapd, for one test: on
// 127.0.0.1 and a free port, from a slapd.conf and an mdb database in a temporary
// directory (no root needed, nothing of the system's slapd touched), with people who bind
// by password and groupOfNames groups, stopped when the test ends.
package testldap

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"github.com/apono-io/vault-plugin-apono/internal/testproc"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	// BaseDN is the directory's suffix; people and groups sit in the two ou's below it.
	BaseDN   = "dc=apono,dc=test"
	PeopleDN = "ou=people," + BaseDN
	GroupsDN = "ou=groups," + BaseDN
	// AdminDN is slapd's rootdn: it writes; BindDN is a read-only service account, what
	// Vault's LDAP auth method binds as to find people and their groups.
	AdminDN = "cn=admin," + BaseDN
	BindDN  = "cn=vault," + BaseDN

	startTimeout  = 30 * time.Second
	stopTimeout   = 10 * time.Second
	clientTimeout = 30 * time.Second
	startAttempts = 5
)

// Person is an inetOrgPerson under PeopleDN: uid=<UID>, with a salted SHA-1 password.
type Person struct {
	UID, Password string
}

// Group is a groupOfNames under GroupsDN: cn=<CN>, its members people's uids. The schema
// wants at least one member.
type Group struct {
	CN      string
	Members []string
}

// Directory is what the server holds when it starts.
type Directory struct {
	People []Person
	Groups []Group
}

// Server is one running slapd and what a test needs to reach it.
type Server struct {
	Host          string // always 127.0.0.1
	Port          int
	AdminPassword string // AdminDN's, random per server
	BindPassword  string // BindDN's, random per server
	Dir           string // the server's temporary directory: slapd.conf, data/, its log
	LogPath       string // slapd's stderr at debug level "stats": every connection and operation

	bins   binaries
	conf   string
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been waited for
}

// Start writes a slapd.conf (core, cosine and inetorgperson schemas, one mdb database,
// ACLs under which anyone may bind, only a bound DN may read, and only the admin may
// write), loads the base, ou=people, ou=groups, the bind account and dir with slapadd,
// and starts slapd in the foreground on ldap://127.0.0.1:<free port>/; the test's cleanup
// stops it (SIGTERM, then its process group is killed) and removes the directory. It fails
// the test, never skips it, when slapd or the LDAP client tools are not installed.
func Start(t testing.TB, dir Directory) *Server {
	t.Helper()
	begin := time.Now()
	bins, err := findBinaries()
	if err != nil {
		t.Fatal(err)
	}
	tmp, err := os.MkdirTemp("", "testldap-")
	if err != nil {
		t.Fatalf("testldap: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	s := &Server{
		Host:          "127.0.0.1",
		AdminPassword: testproc.RandomPassword(t),
		BindPassword:  testproc.RandomPassword(t),
		Dir:           tmp,
		LogPath:       filepath.Join(tmp, "slapd.log"),
		bins:          bins,
		conf:          filepath.Join(tmp, "slapd.conf"),
	}
	if err := s.writeConfig(); err != nil {
		t.Fatalf("testldap: %v", err)
	}
	if err := s.load(dir); err != nil {
		t.Fatalf("testldap: %v", err)
	}
	for attempt := 1; ; attempt++ {
		err := s.start()
		if err == nil {
			break
		}
		// Another process may take the free port between our look and slapd's bind.
		if errors.Is(err, errPortTaken) && attempt < startAttempts {
			continue
		}
		t.Fatalf("testldap: %v\n%s", err, lastLines(s.Log(), 40))
	}
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Errorf("testldap: %v", err)
		}
		if t.Failed() {
			t.Logf("testldap: slapd's log (%s):\n%s", s.LogPath, lastLines(s.Log(), 60))
		}
	})
	t.Logf("testldap: slapd (%s) ready on %s with %d people and %d groups in %s", bins.slapd, s.URL(),
		len(dir.People), len(dir.Groups), time.Since(begin).Round(time.Millisecond))
	return s
}

// URL is the server's address as Vault's LDAP auth method and ldapsearch -H take it.
func (s *Server) URL() string { return fmt.Sprintf("ldap://%s:%d", s.Host, s.Port) }

// UserDN is the DN of the person uid.
func UserDN(uid string) string { return "uid=" + escapeRDN(uid) + "," + PeopleDN }

// GroupDN is the DN of the group cn.
func GroupDN(cn string) string { return "cn=" + escapeRDN(cn) + "," + GroupsDN }

// AddPerson adds a person with ldapadd, as the admin.
func (s *Server) AddPerson(t testing.TB, p Person) {
	t.Helper()
	s.mustAdmin(t, s.bins.ldapadd, personLDIF(p))
}

// AddGroup adds a groupOfNames with ldapadd, as the admin.
func (s *Server) AddGroup(t testing.TB, g Group) {
	t.Helper()
	s.mustAdmin(t, s.bins.ldapadd, groupLDIF(g))
}

// AddMember adds the person uid to the group cn with ldapmodify, as the admin.
func (s *Server) AddMember(t testing.TB, cn, uid string) {
	t.Helper()
	s.mustAdmin(t, s.bins.ldapmodify, fmt.Sprintf("dn: %s\nchangetype: modify\nadd: member\nmember: %s\n", GroupDN(cn), UserDN(uid)))
}

// RemoveMember removes the person uid from the group cn with ldapmodify, as the admin. A
// groupOfNames cannot lose its last member (slapd refuses: object class violation).
func (s *Server) RemoveMember(t testing.TB, cn, uid string) {
	t.Helper()
	s.mustAdmin(t, s.bins.ldapmodify, fmt.Sprintf("dn: %s\nchangetype: modify\ndelete: member\nmember: %s\n", GroupDN(cn), UserDN(uid)))
}

// Members returns the uids of the group cn's members, sorted, as the bind account reads them.
func (s *Server) Members(t testing.TB, cn string) []string {
	t.Helper()
	out, err := s.client(s.bins.ldapsearch, BindDN, s.BindPassword, "",
		"-LLL", "-o", "ldif-wrap=no", "-b", GroupDN(cn), "-s", "base", "(objectClass=groupOfNames)", "member")
	if err != nil {
		t.Fatalf("testldap: %v", err)
	}
	var uids []string
	for _, line := range strings.Split(out, "\n") {
		dn, ok := strings.CutPrefix(line, "member: ")
		if !ok {
			continue
		}
		uid, ok := strings.CutSuffix(strings.TrimPrefix(dn, "uid="), ","+PeopleDN)
		if !ok {
			t.Fatalf("testldap: member %q of %s is not under %s", dn, cn, PeopleDN)
		}
		uids = append(uids, uid)
	}
	sort.Strings(uids)
	return uids
}

// WhoAmI binds as dn with password (ldapwhoami -x) and returns the authorization identity
// slapd answers with ("dn:<dn>"); a wrong password is an error ("Invalid credentials").
func (s *Server) WhoAmI(t testing.TB, dn, password string) (string, error) {
	t.Helper()
	out, err := s.client(s.bins.ldapwhoami, dn, password, "")
	return strings.TrimSpace(out), err
}

// Log returns slapd's log so far.
func (s *Server) Log() string {
	b, err := os.ReadFile(s.LogPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	return string(b)
}

// mustAdmin runs an ldapadd or ldapmodify with ldif on stdin, as the admin; an error fails
// the test.
func (s *Server) mustAdmin(t testing.TB, bin, ldif string) {
	t.Helper()
	if _, err := s.client(bin, AdminDN, s.AdminPassword, ldif); err != nil {
		t.Fatalf("testldap: %v\nLDIF:\n%s", err, ldif)
	}
}

// client runs one of OpenLDAP's client tools against the server with a simple bind as dn
// (anonymous when dn is ""), the password in a 0600 file (-y), not on the command line;
// stdin (if any) is the LDIF.
func (s *Server) client(bin, dn, password, stdin string, args ...string) (string, error) {
	flags := []string{"-x", "-H", s.URL()}
	if dn != "" {
		pwFile, err := os.CreateTemp(s.Dir, "pw-")
		if err != nil {
			return "", err
		}
		defer os.Remove(pwFile.Name())
		if _, err := pwFile.WriteString(password); err != nil { // -y takes the file's bytes, a newline included
			pwFile.Close()
			return "", err
		}
		if err := pwFile.Close(); err != nil {
			return "", err
		}
		flags = append(flags, "-D", dn, "-y", pwFile.Name())
	}
	ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(flags, args...)...)
	cmd.Env = clientEnv()
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s as %s: %v: %s", filepath.Base(bin), dn, err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// writeConfig writes slapd.conf: everything slapd keeps (pid, args, database) in Dir.
func (s *Server) writeConfig() error {
	data := filepath.Join(s.Dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		return err
	}
	var conf strings.Builder
	conf.WriteString("# testldap: a throwaway slapd for one test.\n")
	for _, schema := range []string{"core", "cosine", "inetorgperson"} {
		fmt.Fprintf(&conf, "include %s\n", filepath.Join(s.bins.schemaDir, schema+".schema"))
	}
	fmt.Fprintf(&conf, "pidfile %s\nargsfile %s\n", filepath.Join(s.Dir, "slapd.pid"), filepath.Join(s.Dir, "slapd.args"))
	if s.bins.moduleDir != "" {
		fmt.Fprintf(&conf, "modulepath %s\nmoduleload back_mdb\n", s.bins.moduleDir)
	}
	// Anyone may bind (auth) with a password; only a bound DN reads; only the rootdn writes.
	fmt.Fprintf(&conf, `
database mdb
maxsize 67108864
suffix %q
rootdn %q
rootpw %s
directory %s
index objectClass eq
index uid,cn,member eq
access to attrs=userPassword
  by anonymous auth
  by * none
access to *
  by users read
  by * none
`, BaseDN, AdminDN, ssha(s.AdminPassword), data)
	return os.WriteFile(s.conf, []byte(conf.String()), 0o600)
}

// load puts the base entries and dir into the database with slapadd, before slapd runs.
func (s *Server) load(dir Directory) error {
	var ldif strings.Builder
	fmt.Fprintf(&ldif, "dn: %s\nobjectClass: dcObject\nobjectClass: organization\ndc: apono\no: testldap\n\n", BaseDN)
	fmt.Fprintf(&ldif, "dn: %s\nobjectClass: organizationalUnit\nou: people\n\n", PeopleDN)
	fmt.Fprintf(&ldif, "dn: %s\nobjectClass: organizationalUnit\nou: groups\n\n", GroupsDN)
	fmt.Fprintf(&ldif, "dn: %s\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: vault\nuserPassword: %s\n\n",
		BindDN, ssha(s.BindPassword))
	for _, p := range dir.People {
		ldif.WriteString(personLDIF(p) + "\n")
	}
	for _, g := range dir.Groups {
		ldif.WriteString(groupLDIF(g) + "\n")
	}
	path := filepath.Join(s.Dir, "seed.ldif")
	if err := os.WriteFile(path, []byte(ldif.String()), 0o600); err != nil {
		return err
	}
	cmd := exec.Command(s.bins.slapadd, "-q", "-f", s.conf, "-l", path)
	cmd.Env = clientEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("slapadd: %v\n%s", err, out)
	}
	return nil
}

func personLDIF(p Person) string {
	return fmt.Sprintf("dn: %s\nobjectClass: inetOrgPerson\nuid: %s\ncn: %s\nsn: %s\nmail: %s@example.test\nuserPassword: %s\n",
		UserDN(p.UID), p.UID, p.UID, p.UID, p.UID, ssha(p.Password))
}

func groupLDIF(g Group) string {
	var b strings.Builder
	fmt.Fprintf(&b, "dn: %s\nobjectClass: groupOfNames\ncn: %s\n", GroupDN(g.CN), g.CN)
	for _, uid := range g.Members {
		fmt.Fprintf(&b, "member: %s\n", UserDN(uid))
	}
	return b.String()
}

var errPortTaken = errors.New("the port was taken")

// start runs slapd in the foreground (-d: it neither forks nor detaches) as a child in a
// process group of its own that gets SIGTERM if this process dies, so a test binary killed
// by its timeout leaves no server behind. It is ready when ldapwhoami binds as BindDN.
func (s *Server) start() error {
	port, err := testproc.FreePort()
	if err != nil {
		return err
	}
	logFile, err := os.OpenFile(s.LogPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer logFile.Close()
	s.Port = port
	cmd := exec.Command(s.bins.slapd, "-d", "stats", "-f", s.conf, "-h", s.URL()+"/")
	cmd.Env = clientEnv()
	cmd.Dir = s.Dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("slapd: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	s.cmd, s.exited = cmd, exited

	deadline := time.Now().Add(startTimeout)
	var lastErr error
	for {
		select {
		case <-exited:
			if strings.Contains(s.Log(), "Address already in use") {
				return errPortTaken
			}
			return fmt.Errorf("slapd exited while starting: %v", cmd.ProcessState)
		case <-time.After(20 * time.Millisecond):
		}
		if c, err := net.DialTimeout("tcp", net.JoinHostPort(s.Host, strconv.Itoa(port)), time.Second); err == nil {
			c.Close()
			if _, lastErr = s.client(s.bins.ldapwhoami, BindDN, s.BindPassword, ""); lastErr == nil {
				return nil
			}
		}
		if time.Now().After(deadline) {
			s.kill()
			return fmt.Errorf("slapd not ready after %s: %v", startTimeout, lastErr)
		}
	}
}

// stop sends slapd SIGTERM (its clean shutdown) and kills the process group if that is
// not enough.
func (s *Server) stop() error {
	if !testproc.Stop(s.cmd, s.exited, stopTimeout) {
		return fmt.Errorf("slapd did not stop %s after SIGTERM (killed its process group)", stopTimeout)
	}
	return nil
}

// kill sends SIGKILL to slapd's process group and waits for slapd.
func (s *Server) kill() { testproc.Kill(s.cmd, s.exited) }

// ssha is password in slapd's {SSHA} scheme: base64(SHA-1(password + salt) + salt).
func ssha(password string) string {
	salt := make([]byte, 8)
	if _, err := rand.Read(salt); err != nil {
		panic(err)
	}
	sum := sha1.Sum(append([]byte(password), salt...))
	return "{SSHA}" + base64.StdEncoding.EncodeToString(append(sum[:], salt...))
}

// escapeRDN escapes an attribute value for a DN (RFC 4514 2.4).
func escapeRDN(v string) string {
	var b strings.Builder
	for i, r := range v {
		switch {
		case strings.ContainsRune(`,+"\<>;=`, r),
			i == 0 && (r == ' ' || r == '#'),
			i == len(v)-1 && r == ' ':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// clientEnv is this process's environment without LDAP* variables, and LDAPNOINIT so the
// client tools read no ldap.conf or ldaprc that would point them elsewhere.
func clientEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LDAP") {
			env = append(env, kv)
		}
	}
	return append(env, "LDAPNOINIT=1")
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
