package store

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"

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
	// IndexVersionKey holds IndexVersion once the indexes hold every record.
	IndexVersionKey = IndexStoragePrefix + "version"
	IndexVersion    = "1"
	// indexWait is how long a list waits for a build before it answers 503.
	indexWait = 20 * time.Second
)

// Ready returns once the indexes hold every record, starting the build if no one
// has; a 503 when it takes longer than indexWait.
func (st *Store) Ready(ctx context.Context, s logical.Storage) error {
	select {
	case <-st.Index.Ready:
		return nil
	default:
	}
	st.StartBuild(s, false)
	timer := time.NewTimer(indexWait)
	defer timer.Stop()
	select {
	case <-st.Index.Ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
	}
	st.Index.Mu.Lock()
	err := st.Index.BuildErr
	st.Index.Mu.Unlock()
	if err != nil {
		return fmt.Errorf("building the indexes: %w", err)
	}
	return logical.CodedError(http.StatusServiceUnavailable, fmt.Sprintf(
		"the plugin is building its indexes of requests and grants (once, after an upgrade): %d of %d records read; lists answer once it is done",
		st.Index.Progress.Load(), st.Index.Total.Load()))
}

// StartBuild runs a build in the background unless one runs; without force it only
// builds when storage has no indexes of this version.
func (st *Store) StartBuild(s logical.Storage, force bool) bool {
	x := st.Index
	x.Mu.Lock()
	defer x.Mu.Unlock()
	if x.Building {
		return false
	}
	x.Building, x.BuildErr = true, nil
	st.Background.Add(1)
	go func() {
		defer st.Background.Done()
		err := st.build(st.Lifetime, s, force)
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
		if err != nil && st.Lifetime.Err() == nil {
			st.Logger().Error("building the indexes of requests and grants failed; the next list or periodic run tries again", "error", err)
		}
	}()
	return true
}

func (st *Store) build(ctx context.Context, s logical.Storage, force bool) error {
	if !force {
		entry, err := s.Get(ctx, IndexVersionKey)
		if err != nil {
			return err
		}
		if entry != nil && string(entry.Value) == IndexVersion {
			return nil
		}
	}
	start := time.Now()
	requestIDs, err := s.List(ctx, RequestStoragePrefix)
	if err != nil {
		return err
	}
	grantIDs, err := ListGrantIDs(ctx, s)
	if err != nil {
		return err
	}
	st.Index.Total.Store(int64(len(requestIDs) + len(grantIDs)))
	st.Index.Progress.Store(0)
	st.Logger().Info("building the indexes of requests and grants", "requests", len(requestIDs), "grants", len(grantIDs), "forced", force)

	var mu sync.Mutex
	bySet := map[string][]string{}
	collect := func(entries []Entry) {
		mu.Lock()
		for _, e := range entries {
			bySet[e.Set] = append(bySet[e.Set], e.Key)
		}
		mu.Unlock()
	}
	read := func(ids []string, load func(id string) ([]Entry, error)) error {
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
					st.Index.Progress.Add(1)
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
	if err := read(requestIDs, func(id string) ([]Entry, error) {
		rec, err := GetRequest(ctx, s, id)
		if err != nil || rec == nil {
			return nil, err
		}
		return RequestEntries(rec), nil
	}); err != nil {
		return err
	}
	historyIDs, err := s.List(ctx, HistoryStoragePrefix)
	if err != nil {
		return err
	}
	if err := read(historyIDs, func(id string) ([]Entry, error) {
		h, err := GetHistory(ctx, s, id)
		if err != nil || h == nil {
			return nil, err
		}
		return HistoryEntries(h), nil
	}); err != nil {
		return err
	}
	if err := read(grantIDs, func(id string) ([]Entry, error) {
		g, err := GetGrant(ctx, s, id)
		if err != nil || g == nil {
			return nil, err
		}
		return GrantEntries(g), nil
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
		if err := st.Index.Set(name).AddMany(ctx, s, keys); err != nil {
			return fmt.Errorf("index %s: %w", name, err)
		}
	}
	if err := s.Put(ctx, &logical.StorageEntry{Key: IndexVersionKey, Value: []byte(IndexVersion)}); err != nil {
		return err
	}
	st.Logger().Info("indexes of requests and grants built", "requests", len(requestIDs), "grants", len(grantIDs),
		"sets", len(names), "took", time.Since(start).Round(time.Millisecond))
	return nil
}
