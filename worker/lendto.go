package worker

import (
	"fmt"
	"slices"
	"strings"
)

// Lending: by default every member of the network may split a model onto
// this machine; the owner of the machine may name the ones who may
// instead. The gate holds streams from anyone else, and the worker
// announces whom it lends to, so that other heads leave it out of their
// plans rather than fail to load.

// LendAll is the word for every member, in --lend-to and the node API.
const LendAll = "all"

// ParseLendTo reads --lend-to: "all" (or nothing) is every member, nil;
// otherwise member names or peer ids, separated by commas.
func ParseLendTo(s string) ([]string, error) {
	s = strings.TrimSpace(s)
	if s == "" || strings.EqualFold(s, LendAll) {
		return nil, nil
	}
	var out []string
	for _, who := range strings.Split(s, ",") {
		who = strings.TrimSpace(who)
		switch {
		case who == "":
			return nil, fmt.Errorf("%q names an empty member: give names or peer ids separated by commas, or all", s)
		case strings.EqualFold(who, LendAll):
			return nil, fmt.Errorf("%q: all means every member, so it stands alone", s)
		}
		if !slices.Contains(out, who) {
			out = append(out, who)
		}
	}
	return out, nil
}
