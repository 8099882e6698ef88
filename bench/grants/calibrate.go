package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
)

const calibrationGrants = 10

// callCount is how often the plugin called one Vault path per grant (or per revoke).
type callCount struct {
	call string // "<operation> <path>", grant names replaced by <grant>
	per  float64
}

// calibrate counts, with a file audit device, the Vault calls the plugin makes for one
// grant and one revoke, and times the single calls a grant is made of. The audit device
// is off again before anything is timed for the table.
func (b *bench) calibrate(ctx context.Context, rep *report) error {
	progress("counting the plugin's Vault calls per grant and per revoke (audit log, %d grants)", calibrationGrants)
	auditPath := filepath.Join(b.srv.Dir, "audit.log")
	if err := b.client.Sys().EnableAuditWithOptionsWithContext(ctx, "bench", &api.EnableAuditOptions{
		Type: "file", Options: map[string]string{"file_path": auditPath},
	}); err != nil {
		return fmt.Errorf("enabling the audit device: %w", err)
	}
	var grants []object
	for i := 0; i < calibrationGrants; i++ {
		g, err := b.plugin.create(ctx)
		if err != nil {
			return err
		}
		grants = append(grants, g)
	}
	fi, err := os.Stat(auditPath)
	if err != nil {
		return err
	}
	issueEnd := fi.Size() // the file device writes an entry before the request returns
	for _, g := range grants {
		if err := b.plugin.remove(ctx, g); err != nil {
			return err
		}
	}
	if err := b.client.Sys().DisableAuditWithContext(ctx, "bench"); err != nil {
		return fmt.Errorf("disabling the audit device: %w", err)
	}
	if rep.callsPerGrant, rep.callsPerRevoke, err = pluginCalls(auditPath, issueEnd, calibrationGrants); err != nil {
		return err
	}

	// The single calls, one at a time: sys/mounts with a token of the plugin's AppRole (as
	// the plugin reads it), the rest with the root client as the baseline does them.
	mgmt, err := b.managementClient(ctx)
	if err != nil {
		return err
	}
	const nMounts, n = 100, 20
	var mounts, policy, user, del []time.Duration
	cpu0 := b.procs.cpu()
	for i := 0; i < nMounts; i++ {
		t0 := time.Now()
		if _, err := mgmt.Sys().ListMountsWithContext(ctx); err != nil {
			return err
		}
		mounts = append(mounts, time.Since(t0))
	}
	mountsCPU := perOp(b.procs.cpu().sub(cpu0), nMounts)
	cpu0 = b.procs.cpu()
	for i := 0; i < n; i++ {
		o, ps, us, err := b.baseline.createParts(ctx)
		if err != nil {
			return err
		}
		policy, user = append(policy, ps), append(user, us)
		t0 := time.Now()
		if err := b.baseline.remove(ctx, o); err != nil {
			return err
		}
		del = append(del, time.Since(t0))
	}
	pairCPU := perOp(b.procs.cpu().sub(cpu0), n)
	rep.singleCalls = []namedStats{
		{name: "read sys/mounts (plugin's token)", s: summarize(mounts), cpu: &mountsCPU},
		{name: "write the policy (sys/policies/acl)", s: summarize(policy)},
		{name: "create the userpass user (bcrypt)", s: summarize(user)},
		{name: "delete policy + user", s: summarize(del)},
	}
	rep.pairCPU = pairCPU
	return nil
}

// managementClient is a client logged in with the plugin's AppRole.
func (b *bench) managementClient(ctx context.Context) (*api.Client, error) {
	s, err := b.client.Logical().WriteWithContext(ctx, "auth/approle/login", map[string]interface{}{
		"role_id": b.setup.RoleID, "secret_id": b.setup.SecretID,
	})
	if err != nil {
		return nil, fmt.Errorf("approle login: %w", err)
	}
	if s == nil || s.Auth == nil {
		return nil, fmt.Errorf("approle login returned no token")
	}
	c, err := b.client.Clone()
	if err != nil {
		return nil, err
	}
	c.SetToken(s.Auth.ClientToken)
	return c, nil
}

var grantNameRe = regexp.MustCompile(`apono-[0-9a-f]{8}-[0-9a-f]{16}`)

// pluginCalls reads the audit log: requests made with the plugin's token (or logging it
// in) before offset split are the grants', the rest the revokes'.
func pluginCalls(path string, split int64, grants int) (issue, revoke []callCount, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	issueCounts, revokeCounts := map[string]int{}, map[string]int{}
	var offset int64
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		line := sc.Bytes()
		lineStart := offset
		offset += int64(len(line)) + 1
		var e struct {
			Type string `json:"type"`
			Auth struct {
				DisplayName string `json:"display_name"`
			} `json:"auth"`
			Request struct {
				Operation string `json:"operation"`
				Path      string `json:"path"`
			} `json:"request"`
		}
		if json.Unmarshal(line, &e) != nil || e.Type != "request" {
			continue
		}
		byPlugin := strings.HasPrefix(e.Auth.DisplayName, "approle") || strings.HasPrefix(e.Request.Path, "auth/approle/login")
		if !byPlugin {
			continue
		}
		call := e.Request.Operation + " " + grantNameRe.ReplaceAllString(e.Request.Path, "<grant>")
		if lineStart < split {
			issueCounts[call]++
		} else {
			revokeCounts[call]++
		}
	}
	if err := sc.Err(); err != nil {
		return nil, nil, err
	}
	return perGrant(issueCounts, grants), perGrant(revokeCounts, grants), nil
}

func perGrant(counts map[string]int, grants int) []callCount {
	var out []callCount
	for call, n := range counts {
		out = append(out, callCount{call: call, per: float64(n) / float64(grants)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].call < out[j].call })
	return out
}
