package prefork

import "testing"

// A worker knows how many processes serve with it from its environment;
// any other process counts itself alone.
func TestProcesses(t *testing.T) {
	for _, tc := range []struct {
		worker, workers string
		want            int
	}{
		{"", "", 1},
		{"", "8", 1}, // not started by Supervise
		{"3", "8", 8},
		{"0", "", 1},
		{"0", "many", 1},
	} {
		t.Setenv(WorkerEnv, tc.worker)
		t.Setenv(WorkersEnv, tc.workers)
		if got := Processes(); got != tc.want {
			t.Errorf("%s=%q %s=%q: Processes() = %d, want %d", WorkerEnv, tc.worker, WorkersEnv, tc.workers, got, tc.want)
		}
	}
}
