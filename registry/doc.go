// Package registry is the only package that talks to Consul. It stores
// manifests, datastores and live instances in Consul KV, registers instances
// in the Consul catalog, and offers the locks, semaphores and status records
// the resolver and listeners coordinate with. What it reads for the resolver
// is in the resolver's own plain types (binding.Snapshot, binding.Instance).
package registry
