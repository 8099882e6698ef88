package backend

import (
	"context"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/apono-io/vault-plugin-apono/backend/store"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

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
		b.store.StartBuild(req.Storage, false)
	}
	data := map[string]interface{}{
		"version":          store.IndexVersion,
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
	resp := &logical.Response{Data: map[string]interface{}{"started": b.store.StartBuild(req.Storage, true)}}
	if resp.Data["started"] == false {
		resp.AddWarning("a build is already running; read " + req.MountPoint + "indexes for its progress")
	}
	return resp, nil
}
