// Package archtest holds no code, only the test of patchbay's import
// rule: the rooms (packages) form layers along the data path, and a room
// imports only rooms of lower layers. docs/architecture.md explains the
// layers; the table in archtest_test.go is the rule itself.
package archtest
