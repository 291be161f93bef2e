package manifest

// FederationOf is the federation a manifest, instance, datastore or
// binding of federation fed belongs to: an empty one is the default.
func FederationOf(fed string) string {
	if fed == "" {
		return DefaultFederation
	}
	return fed
}
