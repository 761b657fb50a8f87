package store

// PipelineFilter selects the pipelines of one space for the orchestration list. Zero fields
// do not filter. Provider and State match records stored without them as their defaults
// (pipeline.ProviderNative, pipeline.StateActive), as the pipeline package reads them.
type PipelineFilter struct {
	// Space is required: pipelines are listed one space at a time.
	Space string
	// Provider is pipeline.ProviderNative or pipeline.ProviderAirflow.
	Provider string
	// State is pipeline.StateActive, StatePaused or StateInactive.
	State string
	// Owner matches a pipeline one of whose owners is exactly Owner.
	Owner       string
	Criticality string
	TeamID      string
	ConnectorID string
	// Query matches a case-insensitive substring of the name, uuid, description or provider
	// id.
	Query string
	// WatchedBy keeps only the pipelines this user watches.
	WatchedBy string
}
