// What the discovery walk does in a Transit mount: list keys and tell what each key's type
// lets a grant do.

package discovery

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/apono-io/vault-plugin-apono/backend/resource"
	"github.com/apono-io/vault-plugin-apono/backend/vaultapi"
)

// KeyTypeUnknown is reported for a Transit key whose type Vault did not give: the LIST has
// no key_info (Vault 1.14) and the management policy may not read transit/keys/<name>.
const KeyTypeUnknown = "unknown"

func (w *Walker) listTransit(ctx context.Context, mount string) error {
	listPath := mount + "/keys"
	w.listCalls.Add(1)
	keys, info, err := w.client.List(ctx, listPath)
	if vaultapi.IsStatus(err, http.StatusForbidden) {
		w.skip(mount, "", DeniedReason("LIST "+listPath))
		return nil
	}
	if err != nil {
		return CallError(ctx, "listing "+listPath, err)
	}
	var known []Entry
	var unknown []string
	for _, key := range keys {
		name := mount + "/" + key
		if err := resource.ValidateName(name); err != nil || strings.Contains(key, "/") {
			if err == nil {
				err = fmt.Errorf("resource %q: a Transit key name cannot contain '/'", name)
			}
			w.rejectName(name, err)
			continue
		}
		e := Entry{Name: name, Type: resource.TypeTransit, Kind: KindKey, Mount: mount, Path: key}
		if ki, ok := info[key].(map[string]interface{}); ok && SetKeyType(&e, ki) {

			known = append(known, e)
			continue
		}
		unknown = append(unknown, key)
	}
	if err := w.reserve(len(known) + len(unknown)); err != nil {
		return err
	}
	w.emit(known...)
	tasks := make([]WalkTask, 0, len(unknown))
	for _, key := range unknown {
		tasks = append(tasks, WalkTask{kind: TaskReadTransitKey, mount: mount, path: key})
	}
	w.push(tasks...)
	return nil
}

func (w *Walker) readTransitKey(ctx context.Context, mount, key string) error {
	e := Entry{Name: mount + "/" + key, Type: resource.TypeTransit, Kind: KindKey, Mount: mount, Path: key, KeyType: KeyTypeUnknown}
	readPath := mount + "/keys/" + key
	data, denied, err := w.gatedRead(ctx, mount, readPath)
	switch {
	case denied:
		if err != nil {
			return err
		}
		w.warnOnce(fmt.Sprintf("Vault's LIST %s/keys gives no key types and reading %s/keys/<name> is denied: key types are reported as %q (allow read on %s/keys/* in the management policy to get them)", mount, mount, KeyTypeUnknown, mount))
	case err != nil:
		return CallError(ctx, "reading "+readPath, err)
	case data == nil:
		w.unreserve() // deleted between the LIST and the read
		return nil
	default:
		if !SetKeyType(&e, data) {
			e.KeyType = KeyTypeUnknown
		}
	}

	w.emit(e)
	return nil
}

// SetKeyType fills the key type and what the key supports from a key's read or its LIST
// key_info; false when d has no type.
func SetKeyType(e *Entry, d map[string]interface{}) bool {
	t, ok := d["type"].(string)
	if !ok || t == "" {
		return false
	}
	e.KeyType = t
	enc, dec, sign := KeyTypeSupports(t)
	if v, ok := d["supports_encryption"].(bool); ok {
		enc = &v
	}
	if v, ok := d["supports_decryption"].(bool); ok {
		dec = &v
	}
	if v, ok := d["supports_signing"].(bool); ok {
		sign = &v
	}
	e.SupportsEncryption, e.SupportsDecryption, e.SupportsSigning = enc, dec, sign
	return true
}

// KeyTypeSupports is what Vault's Transit key types can do (keysutil), for when only the
// type is known; nil for types this plugin does not know.
func KeyTypeSupports(t string) (enc, dec, sign *bool) {
	yes, no := true, false
	switch {
	case strings.HasPrefix(t, "aes") || t == "chacha20-poly1305":
		return &yes, &yes, &no
	case strings.HasPrefix(t, "rsa-"):
		return &yes, &yes, &yes
	case t == "ed25519" || strings.HasPrefix(t, "ecdsa-"):
		return &no, &no, &yes
	case t == "hmac":
		return &no, &no, &no
	}
	return nil, nil, nil
}
