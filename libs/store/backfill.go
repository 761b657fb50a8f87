package store

// BackfillFilter selects backfills. Zero fields do not filter.
type BackfillFilter struct {
	Space        string
	PipelineUUID string
}
