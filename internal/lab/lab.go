// Package lab is the frame every lab experiment runs in: the Experiment
// interface, typed parameters with hard bounds, the events a run streams,
// a description of the machine a figure was measured on, and the HTTP
// server that serves the embedded web page, starts runs, queues the heavy
// ones and streams their events with Server-Sent Events.
//
// Experiments live in their own packages and import only this one; the
// server and the `stampede bench` command run them the same way, so every
// figure on the page can be reproduced from a shell.
package lab

import (
	"context"
	"io"
)

// Experiment is one runnable demo.
type Experiment interface {
	// Info describes the experiment and its parameters. It is called often
	// and must be cheap and constant.
	Info() Info
	// Run measures (or simulates) with params already checked against
	// Info().Params, streaming events through emit. emit is safe to call
	// from several goroutines, but not after Run has returned. Run must
	// return promptly once ctx is done, and must not leave goroutines,
	// threads or child processes behind, whether it finished or not.
	Run(ctx context.Context, params Values, emit func(Event)) error
}

// Info describes an experiment.
type Info struct {
	ID      string `json:"id"`
	Title   string `json:"title"`
	Chapter int    `json:"chapter"`
	Summary string `json:"summary"`
	// Heavy experiments load the whole machine, so the server runs them
	// one at a time, in order of arrival.
	Heavy bool `json:"heavy"`
	// Simulation is true when the figures come from a model, not from
	// this machine; the page labels them so.
	Simulation bool    `json:"simulation"`
	Params     []Param `json:"params"`
}

// Event is one message of a run's stream.
type Event struct {
	// Kind is one of the Kind* constants.
	Kind    string  `json:"kind"`
	Message string  `json:"message,omitempty"`
	Done    int64   `json:"done,omitempty"`
	Total   int64   `json:"total,omitempty"`
	Series  string  `json:"series,omitempty"`
	X       float64 `json:"x,omitempty"`
	Y       float64 `json:"y,omitempty"`
	// Data is the payload of a result.
	Data any `json:"data,omitempty"`
	// Machine is set by the runner on results and on the start event.
	Machine *Machine `json:"machine,omitempty"`
	// Position is set on queued events: how many runs are ahead.
	Position int    `json:"position,omitempty"`
	RunID    string `json:"run,omitempty"`
}

// Event kinds. Experiments emit progress, point and result; the runner
// adds the others.
const (
	KindQueued   = "queued"   // waiting for a heavy slot (Position, Message)
	KindStart    = "start"    // the run began (Machine)
	KindProgress = "progress" // Message, Done of Total
	KindPoint    = "point"    // one measured point: Series, X, Y
	KindResult   = "result"   // Data, the experiment's result; Machine
	KindError    = "error"    // the run failed: Message
	KindEnd      = "end"      // nothing follows
)

// Progress reports work done so far.
func Progress(msg string, done, total int64) Event {
	return Event{Kind: KindProgress, Message: msg, Done: done, Total: total}
}

// Point reports one measured point of a series, for live charts.
func Point(series string, x, y float64) Event {
	return Event{Kind: KindPoint, Series: series, X: x, Y: y}
}

// Result carries an experiment's result. A run emits one, last.
func Result(data any) Event { return Event{Kind: KindResult, Data: data} }

// TextResult is implemented by results that can print themselves for
// `stampede bench` without --json.
type TextResult interface {
	WriteText(w io.Writer) error
}
