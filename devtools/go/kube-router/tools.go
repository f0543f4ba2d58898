//go:build tools

// Package tools pins kube-router, the NetworkPolicy engine of the local cluster (its
// firewall controller only: --run-firewall, programming iptables and ipset).
package tools

import _ "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router"
