package command

import "github.com/runyard/runyard/libs/backfill"

// Backfill command types. They are wire names: never derive them from Go identifiers.
const (
	TypeStartBackfill  = "backfill.start"
	TypeCancelBackfill = "backfill.cancel"
)

// StartBackfill asks an executor to start a backfill whose status is initial: make its
// hidden schedule, set it running and trigger one run per date. Handling it again only
// triggers the dates that have no run yet.
type StartBackfill struct {
	BackfillID int64 `json:"backfill_id"`
}

// CancelBackfill asks an executor to cancel a backfill and every run of it that has not
// finished.
type CancelBackfill struct {
	BackfillID int64 `json:"backfill_id"`
}

// BackfillResult is the Result of a successful StartBackfill or CancelBackfill: the backfill
// as it is after the command.
type BackfillResult struct {
	Backfill backfill.Backfill `json:"backfill"`
}
