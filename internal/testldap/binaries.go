package testldap

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// sbinDirs are where slapd and slapadd live off a non-root PATH: Debian's slapd package
// puts them in /usr/sbin.
var sbinDirs = []string{"/usr/sbin", "/usr/local/sbin", "/usr/local/libexec"}

// schemaDirs and moduleDirs are where Debian (first) and other systems keep OpenLDAP's
// schema files and its loadable backends; Debian builds back_mdb as a module.
var (
	schemaDirs = []string{"/etc/ldap/schema", "/etc/openldap/schema", "/usr/local/etc/openldap/schema"}
	moduleDirs = []string{"/usr/lib/ldap", "/usr/lib64/openldap", "/usr/lib/openldap", "/usr/local/libexec/openldap"}
)

// binaries are the OpenLDAP programs and files a server needs.
type binaries struct {
	slapd, slapadd                              string
	ldapadd, ldapmodify, ldapsearch, ldapwhoami string
	schemaDir                                   string // core.schema, cosine.schema, inetorgperson.schema
	moduleDir                                   string // back_mdb.so; "" when mdb is built into slapd
}

// findBinaries looks for slapd and slapadd on PATH, then in sbinDirs; for the client tools
// on PATH; and for the schema and module directories in their usual places.
func findBinaries() (binaries, error) {
	var b binaries
	var err error
	for _, p := range []struct {
		dst  *string
		name string
		sbin bool
		pkg  string
	}{
		{&b.slapd, "slapd", true, "slapd"},
		{&b.slapadd, "slapadd", true, "slapd"},
		{&b.ldapadd, "ldapadd", false, "ldap-utils"},
		{&b.ldapmodify, "ldapmodify", false, "ldap-utils"},
		{&b.ldapsearch, "ldapsearch", false, "ldap-utils"},
		{&b.ldapwhoami, "ldapwhoami", false, "ldap-utils"},
	} {
		if *p.dst, err = exec.LookPath(p.name); err == nil {
			continue
		}
		found := false
		for _, dir := range sbinDirs {
			if f := filepath.Join(dir, p.name); p.sbin && executable(f) {
				*p.dst, found = f, true
				break
			}
		}
		if !found {
			return binaries{}, fmt.Errorf("testldap: %s is not on PATH nor in %v: install Debian's %s package (bash scripts/system-deps.sh as root, or sudo apt-get install -y slapd ldap-utils)", p.name, sbinDirs, p.pkg)
		}
	}
	for _, dir := range schemaDirs {
		if _, err := os.Stat(filepath.Join(dir, "inetorgperson.schema")); err == nil {
			b.schemaDir = dir
			break
		}
	}
	if b.schemaDir == "" {
		return binaries{}, fmt.Errorf("testldap: no inetorgperson.schema in %v: install Debian's slapd package (bash scripts/system-deps.sh as root)", schemaDirs)
	}
	for _, dir := range moduleDirs {
		if _, err := os.Stat(filepath.Join(dir, "back_mdb.so")); err == nil {
			b.moduleDir = dir
			break
		}
	}
	return b, nil
}

func executable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}
