package backend

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
)

// The owners of a KV v2 folder, read when a request for it is made (and again at pickup):
// the folder's own tag (on the secret named like the folder: kv/app for kv/app/*) and the
// tag of every secret below it. The read is bounded: it lists the folder level by level
// and reads the metadata of at most max_folder_secrets secrets, sync_concurrency calls at
// a time; a folder holding more is refused with a 400 that says to ask for less. Names
// below the folder that no role could name (validateResourceName refuses them), folders
// the management policy may not list and metadata it may not read are owned by
// integration_owner, which then has to approve as well.

const (
	defaultMaxFolderSecrets = 1000
	maxMaxFolderSecrets     = 100000
)

func (c *pluginConfig) maxFolderSecrets() int {
	if c.MaxFolderSecrets <= 0 {
		return defaultMaxFolderSecrets
	}
	return c.MaxFolderSecrets
}

// folderSecret is one secret found below a folder, and what its metadata said.
type folderSecret struct {
	path      string // below the mount
	tag, note string
	err       error
}

// folderOwners adds the owners of folder ref to col; msg is a 400.
func (b *aponoBackend) folderOwners(ctx context.Context, client vaultClient, cfg *pluginConfig, col *ownerCollector, ref resourceRef) (msg string, err error) {
	limit := cfg.maxFolderSecrets()
	if ref.Path != "" {
		// The folder's own tag, where the secret named like it has one. That secret is not
		// inside the folder's grant, so without a tag it adds no owner.
		tag, note, err := readOwnerTag(ctx, client, cfg.OwnerMetadataKey, ref.Mount, ref.Path, ref.Mount+"/"+ref.Path)
		if err != nil {
			return "", err
		}
		if tag != "" || note != "" {
			col.claim(ref.Name+" (its own tag, on "+ref.Mount+"/"+ref.Path+")", tag, note)
		}
	}

	var secrets []folderSecret
	dirs := []string{""}
	if ref.Path != "" {
		dirs = []string{ref.Path + "/"}
	}
	sem := make(chan struct{}, cfg.syncConcurrency())
	for len(dirs) > 0 {
		// One level: list every folder of it at once.
		type listing struct {
			dir  string
			keys []string
			err  error
		}
		out := make([]listing, len(dirs))
		var wg sync.WaitGroup
		for i, dir := range dirs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				keys, _, err := client.List(ctx, ref.Mount+"/metadata/"+dir)
				out[i] = listing{dir: dir, keys: keys, err: err}
			}()
		}
		wg.Wait()
		dirs = nil
		for _, l := range out {
			switch {
			case isStatus(l.err, http.StatusForbidden):
				col.unowned(ref.Name, fmt.Sprintf("%s: the management policy may not list %s/metadata/%s, so the owners below it are unknown; integration_owner approves as well", ref.Name, ref.Mount, l.dir))
				continue
			case l.err != nil:
				return "", fmt.Errorf("listing %s/metadata/%s for the owners of %s: %w", ref.Mount, l.dir, ref.Name, redact(l.err))
			}
			for _, key := range l.keys {
				if key == "" || key == "/" {
					continue
				}
				p := l.dir + key
				name := ref.Mount + "/" + p
				if strings.HasSuffix(key, "/") {
					name += "*"
				}
				if validateResourceName(name) != nil {
					// Never read: only names the plugin would accept go into a Vault path.
					col.unowned(ref.Name, fmt.Sprintf("%s: %q below it is not a name the plugin reads; integration_owner approves as well", ref.Name, truncateForError(name)))
					continue
				}
				if strings.HasSuffix(key, "/") {
					dirs = append(dirs, p)
					continue
				}
				secrets = append(secrets, folderSecret{path: p})
				if len(secrets) > limit {
					return fmt.Sprintf("resources: folder %s holds more than %d secrets (max_folder_secrets), whose owners would all have to be read for this request; ask for a narrower folder or for the secrets themselves", ref.Name, limit), nil
				}
			}
		}
	}
	if len(secrets) == 0 {
		col.unowned(ref.Name, "")
		return "", nil
	}

	var wg sync.WaitGroup
	for i := range secrets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			s := &secrets[i]
			s.tag, s.note, s.err = readOwnerTag(ctx, client, cfg.OwnerMetadataKey, ref.Mount, s.path, ref.Mount+"/"+s.path)
		}()
	}
	wg.Wait()
	// Sets come out in the order of the secrets' names, not of the calls' answers.
	sort.Slice(secrets, func(i, j int) bool { return secrets[i].path < secrets[j].path })
	for _, s := range secrets {
		if s.err != nil {
			return "", s.err
		}
		col.claim(ref.Mount+"/"+s.path, s.tag, s.note)
	}
	return "", nil
}
