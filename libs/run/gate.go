package run

import (
	"slices"
	"strconv"
)

// Gate holds the slots of a concurrency limit: the ids that hold one, each with the group it
// counts against (a pipeline's gate groups runs by schedule; a run's gate does not group its
// block runs). A gate is one stored document changed only through the store's update
// closure, so executors in different processes never hand out the same slot twice.
type Gate struct {
	Key     string   `json:"key" bson:"_id"`
	Holders []Holder `json:"holders" bson:"holders"`
	Version int64    `json:"version" bson:"version"`
}

// Holder is one id holding a slot.
type Holder struct {
	ID    int64 `json:"id" bson:"id"`
	Group int64 `json:"group" bson:"group"`
}

// Holds reports whether id holds a slot.
func (g *Gate) Holds(id int64) bool {
	return slices.ContainsFunc(g.Holders, func(h Holder) bool { return h.ID == id })
}

// Admit gives id a slot when its group holds fewer than groupLimit and the gate fewer than
// totalLimit (0 means no limit). It reports whether id holds a slot afterwards; admitting a
// holder again is a no-op that reports true.
func (g *Gate) Admit(id, group int64, groupLimit, totalLimit int) bool {
	if g.Holds(id) {
		return true
	}
	inGroup := 0
	for _, h := range g.Holders {
		if h.Group == group {
			inGroup++
		}
	}
	if (groupLimit > 0 && inGroup >= groupLimit) || (totalLimit > 0 && len(g.Holders) >= totalLimit) {
		return false
	}
	g.Holders = append(g.Holders, Holder{ID: id, Group: group})
	return true
}

// Release frees id's slot and reports whether it held one.
func (g *Gate) Release(id int64) bool {
	n := len(g.Holders)
	g.Holders = slices.DeleteFunc(g.Holders, func(h Holder) bool { return h.ID == id })
	return len(g.Holders) < n
}

// PipelineGateKey is the gate of a pipeline's run limits.
func PipelineGateKey(space, pipelineUUID string) string {
	return "pipeline/" + space + "/" + pipelineUUID
}

// RunGateKey is the gate of a run's block-run limit.
func RunGateKey(runID int64) string { return "run/" + strconv.FormatInt(runID, 10) }
