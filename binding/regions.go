package binding

// ReadRegions are the regions whose binding a consumer in region reads,
// in order: its region's, else the region-less one (which prefers no
// region). The resolver writes a region's binding only where the service
// has live instances.
func ReadRegions(region string) []string {
	if region == "" {
		return []string{""}
	}
	return []string{region, ""}
}
