package main

import (
	"fmt"
	"strings"
	"time"
)

// The targets of issue 16, judged against figures of the same run.
const (
	pageP50Max    = 50 * time.Millisecond // a page of 100, at the largest size
	pageGrowthMax = 1.5                   // a page's p50 at the largest size over its p50 at the first
	stepGrowthMax = 1.2                   // create, approve, pickup: the same ratio
	restShareMax  = 0.01                  // of one core, Vault + plugin at rest, over the empty baseline
)

type report struct {
	opts               *options
	server             string
	cpus               int
	loadStart, loadEnd string
	started, finished  time.Time
	restBaseline       restCPU
	grantRows          []row // the grant lists at each number of live grants
	rows               []row // the request lists and steps at each number of requests
}

// count is n as people write sizes: 600, 10k.
func count(n int) string {
	if n >= 1000 && n%1000 == 0 {
		return fmt.Sprintf("%dk", n/1000)
	}
	return fmt.Sprint(n)
}

// table prints the figures of rows, one column per row, judged last against first.
func table(b *strings.Builder, rows []row, label func(row) string) {
	if len(rows) == 0 {
		return
	}
	first, last := rows[0], rows[len(rows)-1]
	fmt.Fprintf(b, "  %-40s", "p50 / p99, ms")
	for _, row := range rows {
		fmt.Fprintf(b, " %16s", label(row))
	}
	fmt.Fprintf(b, "  %8s  %-18s\n", "p50 last", "target")
	fmt.Fprintf(b, "  %-40s%s  %8s\n", "", strings.Repeat(" ", 17*len(rows)), "/ first")
	for i, f := range first.figures {
		fmt.Fprintf(b, "  %-40s", f.name)
		for _, row := range rows {
			g := row.figures[i]
			fmt.Fprintf(b, " %16s", ms(g.p50)+" / "+ms(g.p99))
		}
		ratio, ok, target := verdict(last.figures[i], f)
		fmt.Fprintf(b, "  %8.2f  %-18s %s\n", ratio, target, pass(ok))
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond)) }

// isStep reports whether a figure is an access-flow step rather than a list page.
func isStep(name string) bool {
	return name == "request create" || name == "approve" || strings.HasPrefix(name, "pickup")
}

// verdict judges figure f at the largest size against the same figure at the first.
func verdict(f, first figure) (ratio float64, ok bool, target string) {
	ratio = float64(f.p50) / float64(first.p50)
	if isStep(f.name) {
		return ratio, ratio <= stepGrowthMax, fmt.Sprintf("<=%.1fx", stepGrowthMax)
	}
	return ratio, ratio <= pageGrowthMax && f.p50 <= pageP50Max, fmt.Sprintf("<=%.1fx, <=%s", pageGrowthMax, ms(pageP50Max)+"ms")
}

func pass(ok bool) string {
	if ok {
		return "PASS"
	}
	return "FAIL"
}

func (r *report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "bench-scale on %s, %d CPUs; load average %s at start, %s at end; run took %s\n",
		r.server, r.cpus, r.loadStart, r.loadEnd, r.finished.Sub(r.started).Round(time.Second))
	fmt.Fprintf(&b, "%d samples per figure (pickups: at most 30), one call after the other; pages of 100 (limit=100, first page)\n\n", r.opts.samples)
	table(&b, r.rows, func(row row) string { return count(row.requests) + " requests" })
	b.WriteString("\n")
	table(&b, r.grantRows, func(row row) string { return count(row.grants) + " grants" })
	if len(r.rows) == 0 {
		return b.String()
	}
	last := r.rows[len(r.rows)-1]
	fmt.Fprintf(&b, "\nCPU at rest (the periodic job runs once a minute; %s measured at each size), seconds per minute:\n", r.opts.rest)
	fmt.Fprintf(&b, "  %-40s %8s %8s %8s %12s\n", "", "Vault", "plugin", "total", "over base")
	fmt.Fprintf(&b, "  %-40s %8.3f %8.3f %8.3f %12s\n", fmt.Sprintf("%s live grants, no requests (base)", count(last.grants)),
		r.restBaseline.vault.Seconds(), r.restBaseline.plugin.Seconds(), r.restBaseline.total().Seconds(), "")
	for _, row := range r.rows {
		over := row.rest.total() - r.restBaseline.total()
		share := over.Seconds() / 60
		fmt.Fprintf(&b, "  %-40s %8.3f %8.3f %8.3f %8.3f = %4.2f%% of a core\n", fmt.Sprintf("%d requests, %d live grants", row.requests, row.grants),
			row.rest.vault.Seconds(), row.rest.plugin.Seconds(), row.rest.total().Seconds(), over.Seconds(), share*100)
	}
	over := last.rest.total() - r.restBaseline.total()
	fmt.Fprintf(&b, "  target: Vault + plugin at rest over the base (what the stored requests cost) <= %.0f%% of one core at the largest size: %s\n",
		restShareMax*100, pass(over.Seconds()/60 <= restShareMax))
	return b.String()
}
