//go:build race

package costs

// raceEnabled says the tests run under the race detector, whose
// instrumentation swamps the cost of a goroutine switch.
const raceEnabled = true
