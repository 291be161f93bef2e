// Package chaos holds patchbay's chaos suite (`make chaos`): a real
// three-server Consul cluster, a two-node NATS cluster, two resolvers and
// three listener hosts, each in its own network namespace on a bridge, put
// through the faults of issue 13 while the suite measures how long patchbay
// takes to converge and checks that every rendered file ends up equal to
// what the stored bindings imply.
//
// The suite lives in the package's tests and runs only when asked
// (PATCHBAY_CHAOS=1), as root; see docs/failure-behaviour.md.
package chaos
