package main

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// apns answers POST /3/device/{token} as Apple's provider API does.
func (s *server) apns(c *reqCtx) {
	r, w := c.r, c.w
	id := apnsID(r)
	w.Header().Set("apns-id", id)
	fail := func(status int, reason string) {
		c.note = reason
		writeJSON(w, status, map[string]string{"reason": reason})
	}
	if r.ProtoMajor != 2 {
		s.stats.http1APNs.Add(1)
		if !s.opts.apnsAllowHTTP1 {
			c.note = "HTTP/1 refused"
			http.Error(w, "APNs speaks HTTP/2 only", http.StatusHTTPVersionNotSupported)
			return
		}
	}
	if r.Method != http.MethodPost {
		fail(405, "MethodNotAllowed")
		return
	}
	token := strings.TrimPrefix(r.URL.Path, "/3/device/")
	if token == "" || strings.Contains(token, "/") {
		fail(404, "BadPath")
		return
	}
	if v := r.Header.Get("apns-id"); v != "" && !isUUID(v) {
		fail(400, "BadMessageId")
		return
	}
	if s.apnsPub != nil {
		if reason := s.apnsAuth(r.Header.Get("authorization")); reason != "" {
			fail(403, reason)
			return
		}
	}
	if r.Header.Get("apns-topic") == "" {
		fail(400, "MissingTopic")
		return
	}
	if pt := r.Header.Get("apns-push-type"); pt != "" && !validPushType[pt] {
		fail(400, "InvalidPushType")
		return
	}
	if p := r.Header.Get("apns-priority"); p != "" && p != "5" && p != "10" && p != "1" {
		fail(400, "BadPriority")
		return
	}
	if !isHex(token) {
		fail(400, "BadDeviceToken")
		return
	}
	if len(c.body) == 0 {
		fail(400, "PayloadEmpty")
		return
	}
	if len(c.body) > 4096 {
		fail(413, "PayloadTooLarge")
		return
	}
	var payload map[string]json.RawMessage
	if json.Unmarshal(c.body, &payload) != nil {
		fail(400, "BadRequest") // not a JSON object
		return
	}
	if _, ok := payload["aps"]; !ok {
		fail(400, "BadRequest")
		return
	}
	if s.isDead(rAPNs, token) {
		c.note = "Unregistered"
		writeJSON(w, 410, map[string]interface{}{"reason": "Unregistered", "timestamp": time.Now().UnixMilli()})
		return
	}
	w.WriteHeader(200)
}

var validPushType = map[string]bool{"alert": true, "background": true, "voip": true, "complication": true,
	"fileprovider": true, "mdm": true, "location": true, "liveactivity": true, "pushtotalk": true, "widgets": true}

// apnsAuth checks "bearer <jwt>"; returns Apple's reason when refused.
// Verified tokens are cached: Apple, too, verifies a token once, and a
// provider is expected to reuse it for up to an hour.
func (s *server) apnsAuth(h string) string {
	if h == "" {
		s.stats.apnsJWTFailed.Add(1)
		return "MissingProviderToken"
	}
	if len(h) < 7 || !strings.EqualFold(h[:7], "bearer ") {
		s.stats.apnsJWTFailed.Add(1)
		return "InvalidProviderToken"
	}
	tok := strings.TrimSpace(h[7:])
	now := time.Now().Unix()
	maxAge := int64(s.opts.apnsTokenMaxAge / time.Second)
	s.apnsTokMu.Lock()
	iat, ok := s.apnsTokens[tok]
	s.apnsTokMu.Unlock()
	if !ok {
		j, err := splitJWT(tok)
		if err != nil || !verifyES256(s.apnsPub, j) {
			s.stats.apnsJWTFailed.Add(1)
			return "InvalidProviderToken"
		}
		if s.opts.apnsKeyID != "" && claimStr(j.header, "kid") != s.opts.apnsKeyID {
			s.stats.apnsJWTFailed.Add(1)
			return "InvalidProviderToken"
		}
		if s.opts.apnsTeam != "" && claimStr(j.claims, "iss") != s.opts.apnsTeam {
			s.stats.apnsJWTFailed.Add(1)
			return "InvalidProviderToken"
		}
		var has bool
		if iat, has = claimInt(j.claims, "iat"); !has || iat > now+60 {
			s.stats.apnsJWTFailed.Add(1)
			return "InvalidProviderToken"
		}
		s.apnsTokMu.Lock()
		if len(s.apnsTokens) > 10000 {
			s.apnsTokens = map[string]int64{}
		}
		if _, dup := s.apnsTokens[tok]; !dup {
			s.apnsTokens[tok] = iat
			s.apnsTokensSeen.Add(1)
		}
		s.apnsTokMu.Unlock()
	}
	if now-iat > maxAge {
		s.stats.apnsJWTFailed.Add(1)
		return "ExpiredProviderToken"
	}
	s.stats.apnsJWTVerified.Add(1)
	return ""
}

func apnsID(r *http.Request) string {
	if v := r.Header.Get("apns-id"); v != "" && isUUID(v) {
		return v
	}
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%X-%X-%X-%X-%X", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func isHex(s string) bool {
	if len(s) == 0 || len(s)%2 != 0 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// isUUID: 8-4-4-4-12 hexadecimal digits.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		c := s[i]
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if c != '-' {
				return false
			}
		} else if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}
