package backend

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/helper/compressutil"
	"github.com/hashicorp/vault/sdk/helper/jsonutil"
	"github.com/hashicorp/vault/sdk/logical"
)

// Storage layout of the snapshot. A sync writes its chunks under a new generation, then
// the header naming that generation, then deletes every other generation: a reader sees
// the old snapshot or the new one, never a mix, and a sync that dies leaves only garbage
// the next one removes.
const (
	snapshotHeaderPath  = "sync/current"
	snapshotChunkPrefix = "sync/snapshot/" // + <generation>/<n>
	syncStatusPath      = "sync/status"
)

// Chunk bounds: raft refuses entries above 1 MiB by default (max_entry_size) and some
// storage backends allow 512 KiB, so a chunk holds at most this much JSON before
// compression, whatever the size of the entries' custom_metadata.
var (
	snapshotChunkEntries = 10000
	snapshotChunkBytes   = 256 << 10
)

// snapshotHeader describes the current snapshot; its entries are in Chunks.
type snapshotHeader struct {
	Generation       string            `json:"generation"`
	SyncedAt         time.Time         `json:"synced_at"`
	Duration         time.Duration     `json:"duration"`
	Total            int               `json:"total"`
	Skipped          []skippedPath     `json:"skipped"`
	SkippedCount     int               `json:"skipped_count"`
	Ungrantable      []ungrantableName `json:"ungrantable"`
	UngrantableCount int               `json:"ungrantable_count"`
	Warnings         []string          `json:"warnings,omitempty"`
	ListCalls        int64             `json:"list_calls"`
	ReadCalls        int64             `json:"read_calls"`
	Counts           map[string]int    `json:"counts"` // per type
	Kinds            map[string]int    `json:"kinds"`
	Mounts           map[string]int    `json:"mounts"`
	Chunks           []chunkRef        `json:"chunks"`
}

// chunkRef is one storage entry of the snapshot; chunks hold consecutive, sorted names.
type chunkRef struct {
	First string `json:"first"`
	Last  string `json:"last"`
	Count int    `json:"count"`
}

// syncStatus records the last attempt, successful or not, and the last one the periodic
// job made: it waits sync_interval after that, so a failing sync is not retried every
// minute, while a failed request (e.g. past its time limit) does not hold it back.
type syncStatus struct {
	AttemptedAt           time.Time `json:"attempted_at"`
	Error                 string    `json:"error,omitempty"`
	BackgroundAttemptedAt time.Time `json:"background_attempted_at"`
}

func newGeneration() (string, error) {
	var r [4]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", err
	}
	return fmt.Sprintf("%016x-%s", time.Now().UnixNano(), hex.EncodeToString(r[:])), nil
}

// storeSnapshot writes entries (sorted) in chunks under a new generation, points the
// header at it, and removes every other generation. The header's Duration runs from
// started to when the chunks are stored.
func storeSnapshot(ctx context.Context, s logical.Storage, h *snapshotHeader, entries []resourceEntry, started time.Time) error {
	gen, err := newGeneration()
	if err != nil {
		return err
	}
	h.Generation = gen
	h.Chunks = nil

	var buf bytes.Buffer
	var ref chunkRef
	flush := func() error {
		if ref.Count == 0 {
			return nil
		}
		buf.WriteByte(']')
		value, err := compressutil.Compress(buf.Bytes(), &compressutil.CompressionConfig{
			Type:                 compressutil.CompressionTypeGzip,
			GzipCompressionLevel: gzip.BestSpeed,
		})
		if err != nil {
			return err
		}
		key := fmt.Sprintf("%s%s/%d", snapshotChunkPrefix, gen, len(h.Chunks))
		if err := s.Put(ctx, &logical.StorageEntry{Key: key, Value: value}); err != nil {
			return fmt.Errorf("storing snapshot chunk %s: %w", key, err)
		}
		h.Chunks = append(h.Chunks, ref)
		buf.Reset()
		ref = chunkRef{}
		return nil
	}
	for i := range entries {
		js, err := json.Marshal(&entries[i])
		if err != nil {
			return err
		}
		if ref.Count > 0 && (ref.Count >= snapshotChunkEntries || buf.Len()+len(js)+2 > snapshotChunkBytes) {
			if err := flush(); err != nil {
				return err
			}
		}
		if ref.Count == 0 {
			buf.WriteByte('[')
			ref.First = entries[i].Name
		} else {
			buf.WriteByte(',')
		}
		buf.Write(js)
		ref.Last = entries[i].Name
		ref.Count++
	}
	if err := flush(); err != nil {
		return err
	}

	h.Duration = time.Since(started)
	entry, err := logical.StorageEntryJSON(snapshotHeaderPath, h)
	if err != nil {
		return err
	}
	if err := s.Put(ctx, entry); err != nil {
		return fmt.Errorf("storing snapshot header: %w", err)
	}
	return deleteOtherGenerations(ctx, s, gen)
}

func deleteOtherGenerations(ctx context.Context, s logical.Storage, keep string) error {
	gens, err := s.List(ctx, snapshotChunkPrefix)
	if err != nil {
		return err
	}
	for _, g := range gens {
		g = strings.TrimSuffix(g, "/")
		if g == keep {
			continue
		}
		keys, err := s.List(ctx, snapshotChunkPrefix+g+"/")
		if err != nil {
			return err
		}
		for _, k := range keys {
			if err := s.Delete(ctx, snapshotChunkPrefix+g+"/"+k); err != nil {
				return err
			}
		}
	}
	return nil
}

func loadSnapshotHeader(ctx context.Context, s logical.Storage) (*snapshotHeader, error) {
	entry, err := s.Get(ctx, snapshotHeaderPath)
	if err != nil || entry == nil {
		return nil, err
	}
	h := &snapshotHeader{}
	if err := entry.DecodeJSON(h); err != nil {
		return nil, fmt.Errorf("decoding snapshot header: %w", err)
	}
	return h, nil
}

func loadSnapshotChunk(ctx context.Context, s logical.Storage, h *snapshotHeader, i int) ([]resourceEntry, error) {
	key := fmt.Sprintf("%s%s/%d", snapshotChunkPrefix, h.Generation, i)
	entry, err := s.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	if entry == nil {
		// Only a sync that replaced this generation after the header was read does this.
		return nil, fmt.Errorf("snapshot chunk %s is missing; the snapshot was replaced while reading it, try again", key)
	}
	var out []resourceEntry
	if err := jsonutil.DecodeJSON(entry.Value, &out); err != nil {
		return nil, fmt.Errorf("decoding snapshot chunk %s: %w", key, err)
	}
	return out, nil
}

func loadSyncStatus(ctx context.Context, s logical.Storage) (*syncStatus, error) {
	entry, err := s.Get(ctx, syncStatusPath)
	if err != nil || entry == nil {
		return nil, err
	}
	st := &syncStatus{}
	if err := entry.DecodeJSON(st); err != nil {
		return nil, fmt.Errorf("decoding sync status: %w", err)
	}
	return st, nil
}
