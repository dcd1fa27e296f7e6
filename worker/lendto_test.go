package worker

import (
	"slices"
	"testing"
)

func TestParseLendTo(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
		bad  bool
	}{
		{in: "", want: nil},
		{in: "all", want: nil},
		{in: " ALL ", want: nil},
		{in: "alice", want: []string{"alice"}},
		{in: "alice, 12D3KooWabc ,alice", want: []string{"alice", "12D3KooWabc"}},
		{in: "alice,,bob", bad: true},
		{in: "alice,all", bad: true},
		{in: ",", bad: true},
	} {
		got, err := ParseLendTo(c.in)
		if (err != nil) != c.bad || !slices.Equal(got, c.want) {
			t.Errorf("ParseLendTo(%q) = %q, %v; want %q, error %v", c.in, got, err, c.want, c.bad)
		}
	}
}
