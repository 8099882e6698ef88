package discovery

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
	SnapshotHeaderPath  = "sync/current"
	SnapshotChunkPrefix = "sync/snapshot/" // + <generation>/<n>
	SyncStatusPath      = "sync/status"
)

// Chunk bounds: raft refuses entries above 1 MiB by default (max_entry_size) and some
// storage backends allow 512 KiB, so a chunk holds at most this much JSON before
// compression, whatever the size of the entries' custom_metadata.
var (
	SnapshotChunkEntries = 10000
	SnapshotChunkBytes   = 256 << 10
)

// SnapshotHeader describes the current snapshot; its entries are in Chunks.
type SnapshotHeader struct {
	Generation       string            `json:"generation"`
	SyncedAt         time.Time         `json:"synced_at"`
	Duration         time.Duration     `json:"duration"`
	Total            int               `json:"total"`
	Skipped          []SkippedPath     `json:"skipped"`
	SkippedCount     int               `json:"skipped_count"`
	Ungrantable      []UngrantableName `json:"ungrantable"`
	UngrantableCount int               `json:"ungrantable_count"`
	Warnings         []string          `json:"warnings,omitempty"`
	ListCalls        int64             `json:"list_calls"`
	ReadCalls        int64             `json:"read_calls"`
	Counts           map[string]int    `json:"counts"` // per type
	Kinds            map[string]int    `json:"kinds"`
	Mounts           map[string]int    `json:"mounts"`
	Chunks           []ChunkRef        `json:"chunks"`
}

// ChunkRef is one storage entry of the snapshot; chunks hold consecutive, sorted names.
type ChunkRef struct {
	First string `json:"first"`
	Last  string `json:"last"`
	Count int    `json:"count"`
}

// SyncStatus records the last attempt, successful or not, and the last one the periodic
// job made: it waits sync_interval after that, so a failing sync is not retried every
// minute, while a failed request (e.g. past its time limit) does not hold it back.
type SyncStatus struct {
	AttemptedAt           time.Time `json:"attempted_at"`
	Error                 string    `json:"error,omitempty"`
	BackgroundAttemptedAt time.Time `json:"background_attempted_at"`
}

func NewGeneration() (string, error) {
	var r [4]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", err
	}
	return fmt.Sprintf("%016x-%s", time.Now().UnixNano(), hex.EncodeToString(r[:])), nil
}

// StoreSnapshot writes entries (sorted) in chunks under a new generation, points the
// header at it, and removes every other generation. The header's Duration runs from
// started to when the chunks are stored.
func StoreSnapshot(ctx context.Context, s logical.Storage, h *SnapshotHeader, entries []Entry, started time.Time) error {
	gen, err := NewGeneration()
	if err != nil {
		return err
	}
	h.Generation = gen
	h.Chunks = nil

	var buf bytes.Buffer
	var ref ChunkRef
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
		key := fmt.Sprintf("%s%s/%d", SnapshotChunkPrefix, gen, len(h.Chunks))
		if err := s.Put(ctx, &logical.StorageEntry{Key: key, Value: value}); err != nil {
			return fmt.Errorf("storing snapshot chunk %s: %w", key, err)
		}
		h.Chunks = append(h.Chunks, ref)
		buf.Reset()
		ref = ChunkRef{}
		return nil
	}
	for i := range entries {
		js, err := json.Marshal(&entries[i])
		if err != nil {
			return err
		}
		if ref.Count > 0 && (ref.Count >= SnapshotChunkEntries || buf.Len()+len(js)+2 > SnapshotChunkBytes) {
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
	entry, err := logical.StorageEntryJSON(SnapshotHeaderPath, h)
	if err != nil {
		return err
	}
	if err := s.Put(ctx, entry); err != nil {
		return fmt.Errorf("storing snapshot header: %w", err)
	}
	return DeleteOtherGenerations(ctx, s, gen)
}

func DeleteOtherGenerations(ctx context.Context, s logical.Storage, keep string) error {
	gens, err := s.List(ctx, SnapshotChunkPrefix)
	if err != nil {
		return err
	}
	for _, g := range gens {
		g = strings.TrimSuffix(g, "/")
		if g == keep {
			continue
		}
		keys, err := s.List(ctx, SnapshotChunkPrefix+g+"/")
		if err != nil {
			return err
		}
		for _, k := range keys {
			if err := s.Delete(ctx, SnapshotChunkPrefix+g+"/"+k); err != nil {
				return err
			}
		}
	}
	return nil
}

func LoadSnapshotHeader(ctx context.Context, s logical.Storage) (*SnapshotHeader, error) {
	entry, err := s.Get(ctx, SnapshotHeaderPath)
	if err != nil || entry == nil {
		return nil, err
	}
	h := &SnapshotHeader{}
	if err := entry.DecodeJSON(h); err != nil {
		return nil, fmt.Errorf("decoding snapshot header: %w", err)
	}
	return h, nil
}

func LoadSnapshotChunk(ctx context.Context, s logical.Storage, h *SnapshotHeader, i int) ([]Entry, error) {
	key := fmt.Sprintf("%s%s/%d", SnapshotChunkPrefix, h.Generation, i)
	entry, err := s.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	if entry == nil {
		// Only a sync that replaced this generation after the header was read does this.
		return nil, fmt.Errorf("snapshot chunk %s is missing; the snapshot was replaced while reading it, try again", key)
	}
	var out []Entry
	if err := jsonutil.DecodeJSON(entry.Value, &out); err != nil {
		return nil, fmt.Errorf("decoding snapshot chunk %s: %w", key, err)
	}
	return out, nil
}

func LoadSyncStatus(ctx context.Context, s logical.Storage) (*SyncStatus, error) {
	entry, err := s.Get(ctx, SyncStatusPath)
	if err != nil || entry == nil {
		return nil, err
	}
	st := &SyncStatus{}
	if err := entry.DecodeJSON(st); err != nil {
		return nil, fmt.Errorf("decoding sync status: %w", err)
	}
	return st, nil
}
