// Package guard protects the exposed ports: source access lists today;
// per-source limits, brute-force bans, HTTPS termination and the Hikvision
// exploit filter as the guard feature grows (docs/SECURITY.md).
//
// The gateway asks a Policy for each rule's hooks; the data plane (package
// forward) calls them at accept time (TCP) or on a session's first
// datagram (UDP).
package guard
