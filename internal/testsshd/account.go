package testsshd

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strings"
	"sync"
	"time"
)

// rootLoginAccount is the unprivileged account logins are for when the test runs as root.
const rootLoginAccount = "aponossh"

var accountOnce struct {
	sync.Once
	name string
	err  error
}

// loginAccount returns the account logins are for: as root, aponossh, made first if it is
// missing; otherwise the account running the test (a non-root sshd can log in no other).
func loginAccount() (string, error) {
	accountOnce.Do(func() {
		if os.Geteuid() != 0 {
			u, err := user.Current()
			if err != nil {
				accountOnce.err = err
				return
			}
			accountOnce.name = u.Username
			return
		}
		accountOnce.name, accountOnce.err = rootLoginAccount, ensureAccount(rootLoginAccount)
	})
	return accountOnce.name, accountOnce.err
}

// ensureAccount makes name a login account with a home and a shell whose password is "*",
// not "!": without PAM, sshd refuses every login to an account whose password is locked
// ("!", what useradd leaves), keys and certificates included. Another test process may
// run this at the same moment; useradd and usermod then fail on /etc/passwd's lock, and
// the next round looks again.
func ensureAccount(name string) error {
	var lastErr error
	for attempt := 0; attempt < 10; attempt++ {
		if attempt > 0 {
			time.Sleep(200 * time.Millisecond)
		}
		if _, err := user.Lookup(name); err != nil {
			out, err := exec.Command("useradd", "--create-home", "--shell", "/bin/sh", "--password", "*",
				"--comment", "testsshd login account", name).CombinedOutput()
			if err != nil {
				lastErr = fmt.Errorf("useradd %s: %v: %s", name, err, out)
			}
			continue
		}
		locked, err := passwordLocked(name)
		if err != nil {
			return err
		}
		if !locked {
			return nil
		}
		if out, err := exec.Command("usermod", "--password", "*", name).CombinedOutput(); err != nil {
			lastErr = fmt.Errorf("usermod --password '*' %s: %v: %s", name, err, out)
		}
	}
	return lastErr
}

// passwordLocked says whether name's password in /etc/shadow starts with "!".
func passwordLocked(name string) (bool, error) {
	f, err := os.Open("/etc/shadow")
	if err != nil {
		return false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.SplitN(sc.Text(), ":", 3)
		if len(fields) >= 2 && fields[0] == name {
			return strings.HasPrefix(fields[1], "!"), nil
		}
	}
	return false, sc.Err()
}
