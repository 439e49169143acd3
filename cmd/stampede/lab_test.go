package main

import (
	"fmt"
	"testing"

	"github.com/stampede-dev/stampede/internal/lab"
	"github.com/stampede-dev/stampede/internal/lab/flashsale"
)

// Every experiment's defaults pass its own bounds, as the page sends them
// (JSON numbers) and as a shell does (strings).
func TestExperimentDefaultsWithinBounds(t *testing.T) {
	seen := map[string]bool{}
	for _, e := range experiments(flashsale.Backends{}) {
		info := e.Info()
		if seen[info.ID] || info.ID == "" || info.Title == "" || info.Chapter < 1 {
			t.Errorf("experiment %+v: id missing, repeated, or no title or chapter", info)
		}
		seen[info.ID] = true
		asJSON, asText := map[string]any{}, map[string]any{}
		for _, p := range info.Params {
			if p.Label == "" {
				t.Errorf("%s.%s has no label", info.ID, p.Name)
			}
			switch d := p.Default.(type) {
			case int:
				asJSON[p.Name] = float64(d)
			default:
				asJSON[p.Name] = d
			}
			asText[p.Name] = fmt.Sprint(p.Default)
		}
		for _, raw := range []map[string]any{asJSON, asText} {
			got, err := lab.Resolve(info.Params, raw)
			if err != nil {
				t.Errorf("%s: defaults refused: %v", info.ID, err)
				continue
			}
			def, _ := lab.Resolve(info.Params, nil)
			if fmt.Sprint(got) != fmt.Sprint(def) {
				t.Errorf("%s: defaults resolve to %v, want %v", info.ID, got, def)
			}
		}
	}
}
