// What the discovery walk does in a database, PKI or SSH mount: list its roles and make
// one entry per endpoint a grant can name (database/creds/readonly, pki/issue/web,
// ssh/sign/ops). One LIST per role list; SSH roles are read only when the LIST gives no
// key types.

package discovery

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/apono-io/vault-plugin-apono/backend/resource"
	"github.com/apono-io/vault-plugin-apono/backend/vaultapi"
)

// roleList is one LIST of an engine's roles and the endpoints each role listed there
// gives; SSH's endpoint depends on the role's key_type (sshEndpoint).
type roleList struct {
	list      string
	endpoints []string
}

var roleLists = map[string][]roleList{
	resource.TypeDatabase: {{"roles", []string{"creds"}}, {"static-roles", []string{"static-creds"}}},
	resource.TypePKI:      {{"roles", []string{"issue", "sign"}}},
	resource.TypeSSH:      {{"roles", nil}},
}

func roleListTasks(mount, typ string) []WalkTask {
	var out []WalkTask
	for _, l := range roleLists[typ] {
		out = append(out, WalkTask{kind: TaskListRoles, mount: mount, path: l.list, typ: typ})
	}
	return out
}

// sshEndpoint is what an SSH role of keyType grants: an OTP (or, before Vault 1.13,
// dynamic) role gives credentials (creds/<role>); a CA role, and one of a type unknown,
// signs keys (sign/<role>). Vault's LIST <mount>/roles gives every role's key_type in
// key_info, so telling them apart costs no read.
func sshEndpoint(keyType string) string {
	if keyType == "otp" || keyType == "dynamic" {
		return "creds"
	}
	return "sign"
}

// roleEntry is the entry of one endpoint of an engine's role.
func roleEntry(mount, typ, endpoint, role string) Entry {
	return Entry{Name: mount + "/" + endpoint + "/" + role, Type: typ, Kind: KindRole, Mount: mount, Path: role, Endpoint: endpoint}
}

// listRoles lists the roles of a database, PKI or SSH mount (list is "roles" or
// "static-roles"). A LIST that fails, denied or otherwise, skips that list: one engine's
// trouble never fails the sync.
func (w *Walker) listRoles(ctx context.Context, mount, typ, list string) error {
	listPath := mount + "/" + list
	w.listCalls.Add(1)
	keys, info, err := w.client.List(ctx, listPath)
	switch {
	case vaultapi.IsStatus(err, http.StatusForbidden):
		w.skip(mount, list, DeniedReason("LIST "+listPath))
		return nil
	case err != nil && ctx.Err() != nil:
		return ctx.Err()
	case err != nil:
		w.skip(mount, list, fmt.Sprintf("LIST %s failed: %v", listPath, vaultapi.Redact(err)))
		return nil
	}
	var endpoints []string
	for _, l := range roleLists[typ] {
		if l.list == list {
			endpoints = l.endpoints
		}
	}
	var known []Entry
	var unknown []string // SSH roles whose key_type the LIST did not give
	for _, role := range keys {
		if role == "" {
			continue
		}
		eps := endpoints
		keyType := ""
		if typ == resource.TypeSSH {
			ki, _ := info[role].(map[string]interface{})
			keyType, _ = ki["key_type"].(string)
			eps = []string{sshEndpoint(keyType)}
		}
		var es []Entry
		valid := true
		for _, ep := range eps {
			e := roleEntry(mount, typ, ep, role)
			if err := checkRoleName(e.Name, role); err != nil {
				w.rejectName(e.Name, err)
				valid = false
				break
			}
			e.KeyType = keyType
			es = append(es, e)
		}
		switch {
		case !valid:
		case typ == resource.TypeSSH && keyType == "":
			unknown = append(unknown, role)
		default:
			known = append(known, es...)
		}
	}
	if err := w.reserve(len(known) + len(unknown)); err != nil {
		return err
	}
	w.emit(known...)
	tasks := make([]WalkTask, 0, len(unknown))
	for _, role := range unknown {
		tasks = append(tasks, WalkTask{kind: TaskReadSSHRole, mount: mount, path: role})
	}
	w.push(tasks...)
	return nil
}

// checkRoleName refuses what no role could name: an engine resource is one role, so a
// listed name with "/" (a folder of roles) is not grantable as such.
func checkRoleName(name, role string) error {
	if err := resource.ValidateName(name); err != nil {
		return err
	}
	if strings.Contains(role, "/") {
		return fmt.Errorf("resource %q: a database, PKI or SSH resource names one role, and %q holds a '/'", name, role)
	}
	return nil
}

// readSSHRole learns an SSH role's key_type when the LIST did not give it (Vault leaves a
// role out of key_info when it cannot parse it). Denied, the role is reported as
// sign/<role>, the endpoint of CA roles, the usual kind, with key_type unknown.
func (w *Walker) readSSHRole(ctx context.Context, mount, role string) error {
	readPath := mount + "/roles/" + role
	data, denied, err := w.gatedRead(ctx, mount, readPath)
	switch {
	case denied:
		if err != nil {
			return err
		}
		w.warnOnce(fmt.Sprintf("Vault's LIST %s/roles gave no key type for some roles and reading %s/roles/<name> is denied: they are reported as %s/sign/<role> with key_type %q (allow read on %s/roles/* in the management policy to tell CA roles from OTP ones)",
			mount, mount, mount, KeyTypeUnknown, mount))
		e := roleEntry(mount, resource.TypeSSH, "sign", role)
		e.KeyType = KeyTypeUnknown
		w.emit(e)
		return nil
	case err != nil && ctx.Err() != nil:
		return ctx.Err()
	case err != nil:
		w.unreserve()
		w.skip(mount, "roles/"+role, fmt.Sprintf("reading %s failed: %v", readPath, vaultapi.Redact(err)))
		return nil
	case data == nil:
		w.unreserve() // deleted between the LIST and the read
		return nil
	}
	keyType, _ := data["key_type"].(string)
	if keyType == "" {
		keyType = KeyTypeUnknown
	}
	e := roleEntry(mount, resource.TypeSSH, sshEndpoint(keyType), role)
	e.KeyType = keyType
	w.emit(e)
	return nil
}
