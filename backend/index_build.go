package backend

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/apono-io/vault-plugin-apono/backend/store"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// Building the indexes from the records. Storage written by a release before the indexes
// has records and no idx/version: the active node then reads every request and grant
// once (in the background, from InitializeFunc or the first list) and adds their entries;
// lists wait for it (up to indexWait, then a 503 that says how far it is). Writes go on
// meanwhile, adding and removing their own entries as always, so nothing is missed; an
// entry the build adds for a record changed since it read it is one too many, which its
// reader repairs. indexes/rebuild runs the same build on demand, without making anyone
// wait (what the indexes hold stays readable).

const (
	indexVersionKey = store.IndexStoragePrefix + "version"
	indexVersion    = "1"
	// indexWait is how long a list waits for a build before it answers 503.
	indexWait = 20 * time.Second
	// crashPointEnv, in the plugin's catalog entry, makes the plugin exit at a named point,
	// once (the end-to-end fault tests): "<point>:<file>" exits there when file exists,
	// removing it first. "request-after-index" is after a new request's index entries are
	// written and before its record.
	crashPointEnv = "APONO_TEST_CRASH_POINT"
)

// indexesReady returns once the indexes hold every record, starting the build if no one
// has; a 503 when it takes longer than indexWait.
func (b *aponoBackend) indexesReady(ctx context.Context, s logical.Storage) error {
	select {
	case <-b.idx.Ready:
		return nil
	default:
	}
	b.startIndexBuild(s, false)
	timer := time.NewTimer(indexWait)
	defer timer.Stop()
	select {
	case <-b.idx.Ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
	}
	b.idx.Mu.Lock()
	err := b.idx.BuildErr
	b.idx.Mu.Unlock()
	if err != nil {
		return fmt.Errorf("building the indexes: %w", err)
	}
	return logical.CodedError(http.StatusServiceUnavailable, fmt.Sprintf(
		"the plugin is building its indexes of requests and grants (once, after an upgrade): %d of %d records read; lists answer once it is done",
		b.idx.Progress.Load(), b.idx.Total.Load()))
}

// startIndexBuild runs a build in the background unless one runs; without force it only
// builds when storage has no indexes of this version.
func (b *aponoBackend) startIndexBuild(s logical.Storage, force bool) bool {
	x := b.idx
	x.Mu.Lock()
	defer x.Mu.Unlock()
	if x.Building {
		return false
	}
	x.Building, x.BuildErr = true, nil
	b.background.Add(1)
	go func() {
		defer b.background.Done()
		err := b.buildIndexes(b.lifetime, s, force)
		x.Mu.Lock()
		x.Building = false
		x.BuildErr = err
		if err == nil {
			x.BuiltAt = time.Now().UTC()
			select {
			case <-x.Ready:
			default:
				close(x.Ready)
			}
		}
		x.Mu.Unlock()
		if err != nil && b.lifetime.Err() == nil {
			b.Logger().Error("building the indexes of requests and grants failed; the next list or periodic run tries again", "error", err)
		}
	}()
	return true
}

func (b *aponoBackend) buildIndexes(ctx context.Context, s logical.Storage, force bool) error {
	if !force {
		entry, err := s.Get(ctx, indexVersionKey)
		if err != nil {
			return err
		}
		if entry != nil && string(entry.Value) == indexVersion {
			return nil
		}
	}
	start := time.Now()
	requestIDs, err := s.List(ctx, store.RequestStoragePrefix)
	if err != nil {
		return err
	}
	grantIDs, err := store.ListGrantIDs(ctx, s)
	if err != nil {
		return err
	}
	b.idx.Total.Store(int64(len(requestIDs) + len(grantIDs)))
	b.idx.Progress.Store(0)
	b.Logger().Info("building the indexes of requests and grants", "requests", len(requestIDs), "grants", len(grantIDs), "forced", force)

	var mu sync.Mutex
	bySet := map[string][]string{}
	collect := func(entries []store.Entry) {
		mu.Lock()
		for _, e := range entries {
			bySet[e.Set] = append(bySet[e.Set], e.Key)
		}
		mu.Unlock()
	}
	read := func(ids []string, load func(id string) ([]store.Entry, error)) error {
		var wg sync.WaitGroup
		errs := make(chan error, 1)
		work := make(chan string)
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for id := range work {
					entries, err := load(id)
					if err != nil {
						select {
						case errs <- err:
						default:
						}
						continue
					}
					collect(entries)
					b.idx.Progress.Add(1)
				}
			}()
		}
		for _, id := range ids {
			work <- id
		}
		close(work)
		wg.Wait()
		select {
		case err := <-errs:
			return err
		default:
			return nil
		}
	}
	if err := read(requestIDs, func(id string) ([]store.Entry, error) {
		rec, err := store.GetRequest(ctx, s, id)
		if err != nil || rec == nil {
			return nil, err
		}
		return store.RequestEntries(rec), nil
	}); err != nil {
		return err
	}
	historyIDs, err := s.List(ctx, store.HistoryStoragePrefix)
	if err != nil {
		return err
	}
	if err := read(historyIDs, func(id string) ([]store.Entry, error) {
		h, err := store.GetHistory(ctx, s, id)
		if err != nil || h == nil {
			return nil, err
		}
		return store.HistoryEntries(h), nil
	}); err != nil {
		return err
	}
	if err := read(grantIDs, func(id string) ([]store.Entry, error) {
		g, err := store.GetGrant(ctx, s, id)
		if err != nil || g == nil {
			return nil, err
		}
		return store.GrantEntries(g), nil
	}); err != nil {
		return err
	}
	names := make([]string, 0, len(bySet))
	for name := range bySet {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		keys := bySet[name]
		sort.Strings(keys)
		if err := b.idx.Set(name).AddMany(ctx, s, keys); err != nil {
			return fmt.Errorf("index %s: %w", name, err)
		}
	}
	if err := s.Put(ctx, &logical.StorageEntry{Key: indexVersionKey, Value: []byte(indexVersion)}); err != nil {
		return err
	}
	b.Logger().Info("indexes of requests and grants built", "requests", len(requestIDs), "grants", len(grantIDs),
		"sets", len(names), "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// crashAt exits the plugin process at point when the fault tests ask for it.
func (b *aponoBackend) crashAt(point string) {
	at, flag, ok := strings.Cut(b.crashPoint, ":")
	if !ok || at != point || flag == "" {
		return
	}
	if err := os.Remove(flag); err != nil {
		return // not armed
	}
	b.Logger().Warn("exiting at a test crash point ("+crashPointEnv+")", "point", point)
	os.Exit(3)
}

func pathIndexes(b *aponoBackend) []*framework.Path {
	return []*framework.Path{
		{
			Pattern: "indexes$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: "apono",
				OperationSuffix: "indexes",
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{Callback: b.pathIndexesRead,
					DisplayAttrs: &framework.DisplayAttributes{OperationVerb: "read"}},
			},
			HelpSynopsis:    "State of the indexes of requests and grants.",
			HelpDescription: pathIndexesHelp,
		},
		{
			Pattern: "indexes/rebuild$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: "apono",
				OperationVerb:   "rebuild",
				OperationSuffix: "indexes",
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.UpdateOperation: &framework.PathOperation{
					Callback:                    b.pathIndexesRebuild,
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
				},
			},
			HelpSynopsis:    "Add every record's index entries again, in the background.",
			HelpDescription: pathIndexesHelp,
		},
	}
}

const pathIndexesHelp = `
Lists of requests and grants and the periodic jobs read indexes (ordered sets under the
plugin's storage) instead of every record. Reading indexes shows whether they are ready
(after an upgrade from a release without them, the active node builds them once from the
records), when they were built, how many records each holds, and how many stale entries
(left by a crash between an index write and its record's) readers have removed.
Writing indexes/rebuild adds every record's entries again in the background; lists keep
answering meanwhile.
`

func (b *aponoBackend) pathIndexesRead(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	b.rememberMount(req)
	x := b.idx
	x.Mu.Lock()
	building, builtAt, buildErr := x.Building, x.BuiltAt, x.BuildErr
	x.Mu.Unlock()
	ready := false
	select {
	case <-x.Ready:
		ready = true
	default:
		b.startIndexBuild(req.Storage, false)
	}
	data := map[string]interface{}{
		"version":          indexVersion,
		"ready":            ready,
		"building":         building,
		"records_read":     x.Progress.Load(),
		"records_total":    x.Total.Load(),
		"built_at":         access.FormatTime(builtAt),
		"entries_repaired": x.Repaired.Load(),
		"error":            "",
	}
	if buildErr != nil {
		data["error"] = buildErr.Error()
	}
	if ready {
		for name, set := range map[string]string{"requests": "req/all", "grants": "grant/all"} {
			n, err := x.Set(set).Count(ctx, req.Storage)
			if err != nil {
				return nil, err
			}
			data[name] = n
		}
	}
	return &logical.Response{Data: data}, nil
}

func (b *aponoBackend) pathIndexesRebuild(_ context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	b.rememberMount(req)
	resp := &logical.Response{Data: map[string]interface{}{"started": b.startIndexBuild(req.Storage, true)}}
	if resp.Data["started"] == false {
		resp.AddWarning("a build is already running; read " + req.MountPoint + "indexes for its progress")
	}
	return resp, nil
}
