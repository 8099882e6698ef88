package sortedset

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
)

// randomKeys returns n UUID-shaped keys, like request ids.
func randomKeys(rng *rand.Rand, n int) []string {
	ks := make([]string, n)
	for i := range ks {
		a, b := rng.Uint64(), rng.Uint64()
		ks[i] = fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", a>>32, a>>16&0xffff, a&0xffff, b>>48, b&0xffffffffffff)
	}
	return ks
}

// benchSet returns a set of n random keys (built by AddMany, then 10% more by Add so
// segments are not all full), a counting storage, and the size of the head in storage.
func benchSet(b *testing.B, n int) (*Manager, *Set, *countingStorage, *rand.Rand, float64) {
	b.Helper()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(uint64(n), 1))
	st := &countingStorage{Storage: &logical.InmemStorage{}, t: b}
	m := NewManager(Options{})
	s := m.Set("idx/bench")
	if err := s.AddMany(ctx, st, randomKeys(rng, n*9/10)); err != nil {
		b.Fatal(err)
	}
	for _, k := range randomKeys(rng, n/10) {
		if err := s.Add(ctx, st, k); err != nil {
			b.Fatal(err)
		}
	}
	e, _ := st.Storage.Get(ctx, "idx/bench/h")
	st.take()
	return m, s, st, rng, float64(len(e.Value))
}

func BenchmarkAdd(b *testing.B) {
	for _, n := range []int{1_000, 100_000} {
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			_, s, st, rng, headBytes := benchSet(b, n)
			ctx := context.Background()
			ks := randomKeys(rng, b.N)
			b.ResetTimer()
			for i := range b.N {
				if err := s.Add(ctx, st, ks[i]); err != nil {
					b.Fatal(err)
				}
			}
			c := st.take()
			b.ReportMetric(float64(c.gets)/float64(b.N), "gets/op")
			b.ReportMetric(float64(c.puts)/float64(b.N), "puts/op")
			b.ReportMetric(headBytes, "head-bytes")
		})
	}
}

// BenchmarkScan100 reads a page of 100 keys from a random place, with the cache warm and
// cold (every entry read from storage).
func BenchmarkScan100(b *testing.B) {
	for _, n := range []int{1_000, 100_000} {
		for _, cold := range []bool{false, true} {
			b.Run(fmt.Sprintf("keys=%d/cold=%v", n, cold), func(b *testing.B) {
				m, s, st, rng, headBytes := benchSet(b, n)
				ctx := context.Background()
				starts := randomKeys(rng, b.N)
				b.ResetTimer()
				for i := range b.N {
					if cold {
						m.Reset()
					}
					seen := 0
					if err := s.Scan(ctx, st, starts[i], func(string) bool { seen++; return seen < 100 }); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(st.take().gets)/float64(b.N), "gets/op")
				b.ReportMetric(headBytes, "head-bytes")
			})
		}
	}
}
