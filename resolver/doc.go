// Package resolver is the engine: it binds the requirements of services to
// live providers.
//
// Everything here is pure: Resolve, Explain and BuildGraph read a snapshot
// or manifests and return values, with no I/O, clock or goroutines, so the
// same input always gives byte-identical output. Its input and output types
// (Snapshot, Binding) are the contract in package binding, so it links
// neither the registry nor any network client. The leader-elected loop that
// reads snapshots from Consul, writes bindings back and announces them on
// NATS is package resolverd.
package resolver
