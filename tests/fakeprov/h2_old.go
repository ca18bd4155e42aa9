//go:build !go1.24

package main

import "net/http"

// Before Go 1.24 the bundled HTTP/2 server allows 250 streams per
// connection and has no standard-library knob.
func configureHTTP2(srv *http.Server, maxStreams int) {}
