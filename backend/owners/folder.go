package owners

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/config"
	"github.com/apono-io/vault-plugin-apono/backend/resource"
	"github.com/apono-io/vault-plugin-apono/backend/vaultapi"
	"github.com/apono-io/vault-plugin-apono/internal/textsafe"
)

// The owners of a KV v2 folder, read when a request for it is made (and again at pickup):
// the folder's own tag (on the secret named like the folder: kv/app for kv/app/*) and the
// tag of every secret below it. The read is bounded: it lists the folder level by level
// and reads the metadata of at most max_folder_secrets secrets, sync_concurrency calls at
// a time; a folder holding more is refused with a 400 that says to ask for less. Names
// below the folder that no role could name (resource.ValidateName refuses them), folders
// the management policy may not list and metadata it may not read are owned by
// integration_owner, which then has to approve as well. A secret without the tag, and an
// empty folder, take their owners from the owners table (or integration_owner). Without
// owner_metadata_key no metadata is read: the scan only lists the secrets, for the table.

// folderSecret is one secret found below a folder, and what its metadata said.
type folderSecret struct {
	path      string // below the mount
	tag, note string
	err       error
}

// folderClaim is one finding of a folder's scan: resource is owned by what tag names, or
// (unowned) by integration_owner; note says why, when it is not plain.
type folderClaim struct {
	resource, tag, note string
	unowned             bool
}

// folderScan is what a folder's scan found: its claims in order, or msg, a 400.
type folderScan struct {
	claims []folderClaim
	msg    string
	at     time.Time
}

// folderOwners adds the owners of folder ref to col; msg is a 400. A request reads them
// fresh; a preview (dry_run, which any requester may send as often as they like and which
// counts against no bound) uses a scan of the same folder made in the last
// FolderOwnersCacheTTL, so repeated previews do not each read up to max_folder_secrets
// metadata. Concurrent previews of one folder wait for one scan.
func (r *Resolver) folderOwners(ctx context.Context, client vaultapi.Client, cfg *config.Config, col *Collector, ref resource.Ref, preview bool) (msg string, err error) {
	key := folderOwnersKey(cfg, ref)
	var scan *folderScan
	if preview {
		defer r.Locks.Lock("folder-owners:" + key)()
		scan = r.cache.get(key, r.clock())
	}
	if scan == nil {
		if scan, err = r.scanFolder(ctx, client, cfg, ref); err != nil {
			return "", err
		}
		r.cache.put(key, scan)
	}
	if scan.msg != "" {
		return scan.msg, nil
	}
	for _, c := range scan.claims {
		if c.unowned {
			col.Unowned(c.resource, c.note)
		} else {
			col.Claim(c.resource, c.tag, c.note)
		}
	}
	return "", nil
}

// scanFolder reads the owners of folder ref (see the top of this file).
func (r *Resolver) scanFolder(ctx context.Context, client vaultapi.Client, cfg *config.Config, ref resource.Ref) (*folderScan, error) {
	scan := &folderScan{at: r.clock()}
	unowned := func(resource, note string) {
		scan.claims = append(scan.claims, folderClaim{resource: resource, note: note, unowned: true})
	}
	limit := cfg.FolderSecretsLimit()
	if ref.Path != "" && cfg.OwnerMetadataKey != "" {
		// The folder's own tag, where the secret named like it has one. That secret is not
		// inside the folder's grant, so without a tag it adds no owner.
		tag, note, err := ReadOwnerTag(ctx, client, cfg.OwnerMetadataKey, ref.Mount, ref.Path, ref.Mount+"/"+ref.Path)
		if err != nil {
			return nil, err
		}
		if tag != "" || note != "" {
			scan.claims = append(scan.claims, folderClaim{resource: ref.Name + " (its own tag, on " + ref.Mount + "/" + ref.Path + ")", tag: tag, note: note})
		}
	}

	var secrets []folderSecret
	dirs := []string{""}
	if ref.Path != "" {
		dirs = []string{ref.Path + "/"}
	}
	sem := make(chan struct{}, cfg.SyncWorkers())
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
			case vaultapi.IsStatus(l.err, http.StatusForbidden):
				unowned(ref.Name, fmt.Sprintf("%s: the management policy may not list %s/metadata/%s, so the owners below it are unknown; integration_owner approves as well", ref.Name, ref.Mount, l.dir))
				continue
			case l.err != nil:
				return nil, fmt.Errorf("listing %s/metadata/%s for the owners of %s: %w", ref.Mount, l.dir, ref.Name, vaultapi.Redact(l.err))
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
				if resource.ValidateName(name) != nil {
					// Never read: only names the plugin would accept go into a Vault path.
					unowned(ref.Name, fmt.Sprintf("%s: %q below it is not a name the plugin reads; integration_owner approves as well", ref.Name, textsafe.Truncate(name)))
					continue
				}
				if strings.HasSuffix(key, "/") {
					dirs = append(dirs, p)
					continue
				}
				secrets = append(secrets, folderSecret{path: p})
				if len(secrets) > limit {
					return &folderScan{at: scan.at, msg: fmt.Sprintf("resources: folder %s holds more than %d secrets (max_folder_secrets), whose owners would all have to be read for this request; ask for a narrower folder or for the secrets themselves", ref.Name, limit)}, nil
				}
			}
		}
	}
	if len(secrets) == 0 {
		// An empty folder has no tag: its owners are the table's entry for it, if any.
		scan.claims = append(scan.claims, folderClaim{resource: ref.Name})
		return scan, nil
	}
	if cfg.OwnerMetadataKey == "" {
		sort.Slice(secrets, func(i, j int) bool { return secrets[i].path < secrets[j].path })
		for _, s := range secrets {
			scan.claims = append(scan.claims, folderClaim{resource: ref.Mount + "/" + s.path})
		}
		return scan, nil
	}

	var wg sync.WaitGroup
	for i := range secrets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			s := &secrets[i]
			s.tag, s.note, s.err = ReadOwnerTag(ctx, client, cfg.OwnerMetadataKey, ref.Mount, s.path, ref.Mount+"/"+s.path)
		}()
	}
	wg.Wait()
	// Sets come out in the order of the secrets' names, not of the calls' answers.
	sort.Slice(secrets, func(i, j int) bool { return secrets[i].path < secrets[j].path })
	for _, s := range secrets {
		if s.err != nil {
			return nil, s.err
		}
		scan.claims = append(scan.claims, folderClaim{resource: ref.Mount + "/" + s.path, tag: s.tag, note: s.note})
	}
	return scan, nil
}

// Folder scans kept for previews: for FolderOwnersCacheTTL, and at most
// maxFolderOwnersCached claims in all (a folder's scan holds up to max_folder_secrets).
const (
	FolderOwnersCacheTTL  = 30 * time.Second
	maxFolderOwnersCached = 50000
)

// folderOwnersKey names a folder's scan: the folder, and the config it was read with.
func folderOwnersKey(cfg *config.Config, ref resource.Ref) string {
	return ref.Mount + "/" + ref.Path + "\x00" + cfg.OwnerMetadataKey + "\x00" + strconv.Itoa(cfg.FolderSecretsLimit())
}

// folderOwnersCache holds recent folder scans, for previews only.
type folderOwnersCache struct {
	mu     sync.Mutex
	m      map[string]*folderScan
	claims int
}

// get returns the scan of key made less than FolderOwnersCacheTTL before now, or nil.
func (c *folderOwnersCache) get(key string, now time.Time) *folderScan {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.m[key]
	if s == nil || now.Sub(s.at) >= FolderOwnersCacheTTL {
		return nil
	}
	return s
}

// put keeps s as the scan of key, dropping expired scans, and the oldest while the cache
// would hold too many claims.
func (c *folderOwnersCache) put(key string, s *folderScan) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]*folderScan{}
	}
	if old := c.m[key]; old != nil {
		c.claims -= len(old.claims)
		delete(c.m, key)
	}
	now := s.at
	for k, v := range c.m {
		if now.Sub(v.at) >= FolderOwnersCacheTTL {
			c.claims -= len(v.claims)
			delete(c.m, k)
		}
	}
	if len(s.claims) > maxFolderOwnersCached {
		return
	}
	for c.claims+len(s.claims) > maxFolderOwnersCached {
		oldest := ""
		for k, v := range c.m {
			if oldest == "" || v.at.Before(c.m[oldest].at) {
				oldest = k
			}
		}
		c.claims -= len(c.m[oldest].claims)
		delete(c.m, oldest)
	}
	c.m[key] = s
	c.claims += len(s.claims)
}

func (r *Resolver) clock() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}
