// Package fig is one figure of `make bench`'s report, shared by the
// benchmark program and the measurements the namespace lab takes for it
// (printed as "LABFIG <json>" lines).
package fig

import (
	"encoding/json"
	"fmt"
	"io"
)

// Figure is one line of the report: a Potluck measurement beside the anchor
// it is judged against, both taken in the same run.
type Figure struct {
	Section string `json:"section"`
	Name    string `json:"name"`
	Unit    string `json:"unit"`
	// Value is the median of Runs (or the single measurement).
	Value float64   `json:"value"`
	Runs  []float64 `json:"runs,omitempty"`
	// Anchor names what Value is compared with; AnchorValue and AnchorRuns
	// are its measurements, in the same unit.
	Anchor      string    `json:"anchor,omitempty"`
	AnchorValue float64   `json:"anchor_value,omitempty"`
	AnchorRuns  []float64 `json:"anchor_runs,omitempty"`
	// Relation says how Value compares with the anchor ("0.62x", "+41 µs").
	Relation string `json:"relation,omitempty"`
	Target   string `json:"target,omitempty"`
	// Met is nil when the figure has no target.
	Met  *bool  `json:"met,omitempty"`
	Note string `json:"note,omitempty"`
	// Err is set when the figure could not be measured.
	Err string `json:"error,omitempty"`
}

// LinePrefix starts the line a lab measurement prints its figure on.
const LinePrefix = "LABFIG "

// Print writes f as the line the benchmark program reads from a lab's
// output.
func Print(w io.Writer, f Figure) {
	data, _ := json.Marshal(f)
	fmt.Fprintf(w, "%s%s\n", LinePrefix, data)
}
