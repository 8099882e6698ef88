package testpg

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// debianRoot holds one bin directory per installed major version: Debian's postgresql
// package puts initdb, pg_ctl and postgres there, not on PATH.
var debianRoot = "/usr/lib/postgresql"

// binaries are the programs of one PostgreSQL installation.
type binaries struct {
	dir                           string // the directory initdb, pg_ctl and postgres are in
	initdb, pgCtl, postgres, psql string
}

// findBinaries looks for a directory with initdb, pg_ctl and postgres together (one
// installation, never a mix of versions): on PATH first, then Debian's, highest version
// first. psql comes from the same directory if it is there, else from PATH.
func findBinaries() (binaries, error) {
	dirs := filepath.SplitList(os.Getenv("PATH"))
	dirs = append(dirs, debianBinDirs()...)
	for _, dir := range dirs {
		if dir == "" {
			continue
		}
		b := binaries{dir: dir, initdb: filepath.Join(dir, "initdb"), pgCtl: filepath.Join(dir, "pg_ctl"), postgres: filepath.Join(dir, "postgres")}
		if !executable(b.initdb) || !executable(b.pgCtl) || !executable(b.postgres) {
			continue
		}
		b.psql = filepath.Join(dir, "psql")
		if !executable(b.psql) {
			p, err := exec.LookPath("psql")
			if err != nil {
				return binaries{}, fmt.Errorf("testpg: psql is not in %s nor on PATH: install Debian's postgresql-client package (bash scripts/system-deps.sh as root)", dir)
			}
			b.psql = p
		}
		return b, nil
	}
	return binaries{}, fmt.Errorf("testpg: initdb, pg_ctl and postgres are not on PATH nor in %s/<version>/bin: install Debian's postgresql package (bash scripts/system-deps.sh as root, or sudo apt-get install -y postgresql)", debianRoot)
}

// debianBinDirs returns /usr/lib/postgresql/<version>/bin, highest version first.
func debianBinDirs() []string {
	entries, err := os.ReadDir(debianRoot)
	if err != nil {
		return nil
	}
	var versions []string
	for _, e := range entries {
		if e.IsDir() {
			versions = append(versions, e.Name())
		}
	}
	sort.Slice(versions, func(i, j int) bool { return versionLess(versions[j], versions[i]) })
	dirs := make([]string, len(versions))
	for i, v := range versions {
		dirs[i] = filepath.Join(debianRoot, v, "bin")
	}
	return dirs
}

// versionLess compares dotted versions number by number ("9.6" < "15" < "16").
func versionLess(a, b string) bool {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) && i < len(bs); i++ {
		ai, aerr := strconv.Atoi(as[i])
		bi, berr := strconv.Atoi(bs[i])
		if aerr != nil || berr != nil {
			if as[i] != bs[i] {
				return as[i] < bs[i]
			}
			continue
		}
		if ai != bi {
			return ai < bi
		}
	}
	return len(as) < len(bs)
}

func executable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}
