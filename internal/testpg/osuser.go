package testpg

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// serverAccount is the account the server runs as when the test runs as root; Debian's
// postgresql package creates it.
const serverAccount = "postgres"

var accountOnce struct {
	sync.Once
	cred *syscall.Credential
	err  error
}

// serverCredential returns nil when this process is not root (the server runs as this
// process's user), else the postgres account, made first if it is missing.
func serverCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	accountOnce.Do(func() {
		accountOnce.cred, accountOnce.err = ensureAccount(serverAccount)
	})
	return accountOnce.cred, accountOnce.err
}

// ensureAccount looks the account up and, if it is missing, adds it as a system account
// with no login shell. Another test process may add it at the same moment: useradd then
// fails, and the look-up after it decides.
func ensureAccount(name string) (*syscall.Credential, error) {
	var lastErr error
	for attempt := 0; attempt < 10; attempt++ {
		if u, err := user.Lookup(name); err == nil {
			uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
			gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
			if err1 != nil || err2 != nil {
				return nil, fmt.Errorf("account %s: uid %q, gid %q", name, u.Uid, u.Gid)
			}
			return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
		}
		out, err := exec.Command("useradd", "--system", "--user-group", "--no-create-home",
			"--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name).CombinedOutput()
		if err == nil {
			continue
		}
		lastErr = fmt.Errorf("useradd %s: %v: %s", name, err, out)
		time.Sleep(200 * time.Millisecond) // another useradd holds /etc/passwd's lock
	}
	return nil, lastErr
}

// tempRoot is where the server's directory goes: os.TempDir(), unless the server runs as
// another account that cannot reach it (TMPDIR under /root, say); then /tmp.
func tempRoot(cred *syscall.Credential) string {
	dir := os.TempDir()
	if cred == nil {
		return dir
	}
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return "/tmp"
		}
		if d == filepath.Dir(d) {
			return dir
		}
	}
}

// chown gives path to the server's account (nothing to do when it is this process's).
func chown(path string, cred *syscall.Credential) error {
	if cred == nil {
		return nil
	}
	return os.Chown(path, int(cred.Uid), int(cred.Gid))
}
