package backend

import (
	"context"
	"net/http"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/metrics"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

func pathMetrics(b *aponoBackend) *framework.Path {
	return &framework.Path{
		Pattern: "metrics$",
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: "apono",
			OperationSuffix: "metrics",
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{
				Callback: b.pathMetricsRead,
				Summary:  "The plugin's numbers in Prometheus' text format.",
				Responses: map[int][]framework.Response{
					http.StatusOK: {{Description: "Prometheus text exposition format (" + metrics.ContentType + ")"}},
				},
			},
		},
		HelpSynopsis:    "The plugin's numbers in Prometheus' text format, for a scraper.",
		HelpDescription: pathMetricsHelp,
	}
}

const pathMetricsHelp = `
Reading metrics returns the plugin's numbers in Prometheus' text exposition format (not
JSON): scrape it at /v1/<mount>/metrics with a Vault token in "Authorization: Bearer"
whose policy allows read on <mount>/metrics. Vault's own telemetry cannot carry an
external plugin's numbers, so the plugin serves them here.

Counters (since this node's plugin process started, on the node that did the work):
apono_grants_issued_total{via}, apono_grants_ended_total{ended},
apono_grant_remove_failures_total, apono_grant_issue_seconds and
apono_grant_remove_seconds (histograms), apono_events_total{event},
apono_event_deliveries_total{target,result}, apono_sweeper_removed_total{kind}.

Gauges (read from storage at each scrape, the same on every node): apono_grants_live,
apono_requests_open{status}, apono_request_oldest_pending_seconds,
apono_events_pending{target}, apono_event_oldest_pending_seconds{target},
apono_indexes_ready.
`

func (b *aponoBackend) pathMetricsRead(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	b.rememberMount(req)
	var gauges []metrics.Gauge
	counts, ready, err := b.store.Counts(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	readyValue := 0.0
	if ready {
		readyValue = 1
		gauges = append(gauges,
			metrics.Gauge{Name: "grants_live", Help: "Grants whose access lives now.", Value: float64(counts.LiveGrants)},
			metrics.Gauge{Name: "requests_open", Help: "Access requests waiting for approvers (pending) or for pickup (approved).",
				Labels: map[string]string{"status": "pending"}, Value: float64(counts.PendingRequests)},
			metrics.Gauge{Name: "requests_open", Labels: map[string]string{"status": "approved"}, Value: float64(counts.ApprovedRequests)})
		oldest := 0.0
		if !counts.OldestPending.IsZero() {
			oldest = time.Since(counts.OldestPending).Seconds()
		}
		gauges = append(gauges, metrics.Gauge{Name: "request_oldest_pending_seconds",
			Help: "How long the oldest pending request has waited for its approvers (0: none waits).", Value: oldest})
	}
	gauges = append(gauges, metrics.Gauge{Name: "indexes_ready",
		Help: "1 once the indexes hold every record; until then the grant and request gauges are left out.", Value: readyValue})
	for _, q := range b.notify.AllQueues(ctx, req.Storage) {
		n, oldest, err := q.PendingSummary(ctx)
		if err != nil {
			return nil, err
		}
		gauges = append(gauges,
			metrics.Gauge{Name: "events_pending", Help: "Events stored for a target (\"\" is notify_url), not yet delivered.",
				Labels: map[string]string{"target": q.Name}, Value: float64(n)},
			metrics.Gauge{Name: "event_oldest_pending_seconds", Help: "Age of the oldest event not yet delivered to a target.",
				Labels: map[string]string{"target": q.Name}, Value: oldest.Seconds()})
	}
	body, err := b.metrics.Render(gauges)
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]interface{}{
		logical.HTTPContentType:        metrics.ContentType,
		logical.HTTPRawBody:            body,
		logical.HTTPStatusCode:         http.StatusOK,
		logical.HTTPCacheControlHeader: "no-store",
	}}, nil
}
