//go:build tools

// Package tools pins vegeta, the benchmarks' load generator, so that `go build` can build it
// from this module (`go install pkg@version` fails: the proxy refuses the module's version list,
// which go install reads to check for deprecation).
package tools

import _ "github.com/tsenart/vegeta/v12"
