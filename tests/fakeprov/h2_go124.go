//go:build go1.24

package main

import "net/http"

// Go 1.24 made the HTTP/2 server's stream limit configurable; Apple allows
// about 1000 streams per connection.
func configureHTTP2(srv *http.Server, maxStreams int) {
	srv.HTTP2 = &http.HTTP2Config{MaxConcurrentStreams: maxStreams}
}
