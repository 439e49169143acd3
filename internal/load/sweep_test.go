package load

import (
	"context"
	"math"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stampede-dev/stampede/internal/usl"
)

// TestSweepRecoversTheLaw: a server whose service time grows with the
// requests in flight exactly as the Universal Scalability Law says (so its
// closed-model throughput is λN / (1 + σ(N−1) + κN(N−1))) is swept, and
// the fit gives back σ and κ within 35 % and the peak within 20 %.
func TestSweepRecoversTheLaw(t *testing.T) {
	// λ 50: 20 ms of service alone, so that the fixed cost of a request
	// on a loaded machine (about 1 ms under -race beside other tests)
	// is small beside it, as it is for a real service.
	law := usl.Model{Sigma: 0.05, Kappa: 0.002, Lambda: 50} // peak at N ≈ 21.8
	var inFlight atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := float64(inFlight.Add(1))
		defer inFlight.Add(-1)
		time.Sleep(time.Duration(n / law.X(n) * float64(time.Second)))
	}))
	defer srv.Close()
	points, m, err := Sweep(context.Background(), Config{Targets: target(t, srv.URL), KeepAlive: true, Timeout: 10 * time.Second},
		[]int{1, 2, 4, 8, 16, 24, 32, 48}, 1500*time.Millisecond, 200*time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("fit σ %.4f κ %.5f λ %.1f peak %.1f (law: σ %g κ %g λ %g peak %.1f)", m.Sigma, m.Kappa, m.Lambda, m.Peak(), law.Sigma, law.Kappa, law.Lambda, law.Peak())
	within := func(got, want, tol float64) bool { return math.Abs(got-want) <= tol*want }
	if len(points) != 8 || !within(m.Sigma, law.Sigma, 0.35) || !within(m.Kappa, law.Kappa, 0.35) || !within(m.Peak(), law.Peak(), 0.2) {
		t.Errorf("fit %+v, peak %.1f; want σ %g, κ %g, peak %.1f (points %+v)", *m, m.Peak(), law.Sigma, law.Kappa, law.Peak(), points)
	}
}
