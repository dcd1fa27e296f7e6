package members

import "slices"

// IDs are the peer ids of the members list names. A member is named by
// its peer id, or by its name: the member first seen under that name, so
// a member that announces another's name later does not take its place.
// A name no member has yet names nobody until one joins with it; a
// removed member, nobody.
func (r *Roll) IDs(list []string) []string {
	var ids []string
	known := r.List()
	slices.SortStableFunc(known, func(a, b Member) int { return a.FirstSeen.Compare(b.FirstSeen) })
	for _, who := range list {
		for _, m := range known {
			if m.IsRemoved() {
				continue
			}
			if m.PeerID == who || m.Name == who {
				ids = append(ids, m.PeerID)
				break
			}
		}
	}
	return ids
}
