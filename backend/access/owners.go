package access

// Where a set's principals came from.
const (
	SetSourceRole        = "role"
	SetSourceMetadata    = "custom_metadata"   // the secret's own owner_metadata_key value
	SetSourceIntegration = "integration_owner" // config's fallback approver
	SetSourceTable       = "owners_table"      // the operator's owners table (apono/owners/<pattern>)
)
