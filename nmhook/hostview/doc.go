// Package hostview reads the host view (addresses and routes of every
// routing table) of the current network namespace through netlink, and the
// ports of a bridge. It is the I/O edge of the pure conflict package.
package hostview
