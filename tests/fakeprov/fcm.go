package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// setupFCM loads (-fcm-sa) or generates (-fcm-sa-out) the service account
// whose key signs the OAuth2 assertions. Runs once the ports are known (a
// generated account's token_uri points at this fake).
func (s *server) setupFCM() error {
	o := s.opts
	switch {
	case o.fcmSA != "":
		sa, k, err := loadSA(o.fcmSA)
		if err != nil {
			return fmt.Errorf("-fcm-sa: %v", err)
		}
		s.fcmPub, s.fcmEmail, s.fcmTokenURI, s.fcmProjectID, s.fcmSAPath = &k.PublicKey, sa.ClientEmail, sa.TokenURI, sa.ProjectID, o.fcmSA
	case o.fcmSAOut != "":
		uri := fmt.Sprintf("https://127.0.0.1:%d/token", s.tlsPort)
		if o.fcmTokenPlainHTTP {
			uri = fmt.Sprintf("http://127.0.0.1:%d/token", s.httpPort)
		}
		b, k, err := genSA(o.fcmProject, uri)
		if err != nil {
			return err
		}
		if err := writeFileAtomic(o.fcmSAOut, b, 0o600); err != nil {
			return err
		}
		var sa serviceAccount
		json.Unmarshal(b, &sa)
		s.fcmPub, s.fcmEmail, s.fcmTokenURI, s.fcmProjectID, s.fcmSAPath = &k.PublicKey, sa.ClientEmail, uri, sa.ProjectID, o.fcmSAOut
	}
	return nil
}

type oauthErr struct {
	Error string `json:"error"`
	Desc  string `json:"error_description"`
}

// fcmToken: POST /token, grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer.
func (s *server) fcmToken(c *reqCtx) {
	s.stats.fcmTokenRequests.Add(1)
	w, r := c.w, c.r
	refuse := func(status int, code, desc string) {
		s.stats.fcmAssertionFailed.Add(1)
		c.note = desc
		writeJSON(w, status, oauthErr{code, desc})
	}
	if r.Method != http.MethodPost {
		refuse(405, "invalid_request", "POST only")
		return
	}
	if s.fcmPub == nil {
		refuse(500, "server_error", "the fake has no service account (-fcm-sa or -fcm-sa-out)")
		return
	}
	form, err := parseForm(c)
	if err != nil {
		refuse(400, "invalid_request", "bad form body")
		return
	}
	if form.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		refuse(400, "unsupported_grant_type", "Invalid grant_type: "+form.Get("grant_type"))
		return
	}
	j, err := splitJWT(form.Get("assertion"))
	if err != nil || !verifyRS256(s.fcmPub, j) {
		refuse(400, "invalid_grant", "Invalid JWT Signature.")
		return
	}
	now := time.Now().Unix()
	iat, ok1 := claimInt(j.claims, "iat")
	exp, ok2 := claimInt(j.claims, "exp")
	switch {
	case claimStr(j.claims, "iss") != s.fcmEmail:
		refuse(400, "invalid_grant", "Invalid issuer.")
	case s.fcmTokenURI != "" && claimStr(j.claims, "aud") != s.fcmTokenURI:
		refuse(400, "invalid_grant", "Invalid JWT audience.")
	case !strings.Contains(claimStr(j.claims, "scope"), "https://www.googleapis.com/auth/firebase.messaging") &&
		!strings.Contains(claimStr(j.claims, "scope"), "https://www.googleapis.com/auth/cloud-platform"):
		refuse(400, "invalid_scope", "Invalid OAuth scope or ID token audience provided.")
	case !ok1 || !ok2 || exp <= iat || exp-iat > 3600 || iat > now+60 || exp < now:
		refuse(400, "invalid_grant", "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe.")
	default:
		var b [24]byte
		rand.Read(b[:])
		tok := "ya29.fake-" + hex.EncodeToString(b[:])
		ttl := s.opts.fcmTokenTTL
		s.fcmTokMu.Lock()
		s.fcmTokens[tok] = time.Now().Add(ttl)
		s.fcmTokMu.Unlock()
		s.stats.fcmTokensOK.Add(1)
		writeJSON(w, 200, map[string]interface{}{"access_token": tok, "expires_in": int(ttl / time.Second), "token_type": "Bearer"})
	}
}

func fcmError(code int, status, msg string, fcmCode string) map[string]interface{} {
	e := map[string]interface{}{"code": code, "message": msg, "status": status}
	if fcmCode != "" {
		e["details"] = []interface{}{map[string]interface{}{
			"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": fcmCode}}
	}
	return map[string]interface{}{"error": e}
}

// fcmSend: POST /v1/projects/{id}/messages:send with a bearer token it issued.
func (s *server) fcmSend(c *reqCtx) {
	w, r := c.w, c.r
	if r.Method != http.MethodPost {
		writeJSON(w, 405, fcmError(405, "INVALID_ARGUMENT", "POST only", ""))
		return
	}
	project := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/v1/projects/"), "/messages:send")
	h := r.Header.Get("authorization")
	ok := false
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		s.fcmTokMu.Lock()
		exp, found := s.fcmTokens[strings.TrimSpace(h[7:])]
		s.fcmTokMu.Unlock()
		ok = found && time.Now().Before(exp)
	}
	if !ok {
		s.stats.fcmAuthFailed.Add(1)
		c.note = "UNAUTHENTICATED"
		w.Header().Set("WWW-Authenticate", `Bearer realm="https://accounts.google.com/"`)
		writeJSON(w, 401, fcmError(401, "UNAUTHENTICATED",
			"Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.", ""))
		return
	}
	if s.fcmProjectID != "" && project != s.fcmProjectID {
		c.note = "SENDER_ID_MISMATCH"
		writeJSON(w, 403, fcmError(403, "PERMISSION_DENIED", "SenderId mismatch", "SENDER_ID_MISMATCH"))
		return
	}
	var req struct {
		Message *struct {
			Token string `json:"token"`
			Topic string `json:"topic"`
		} `json:"message"`
	}
	if json.Unmarshal(c.body, &req) != nil || req.Message == nil || (req.Message.Token == "" && req.Message.Topic == "") {
		c.note = "INVALID_ARGUMENT"
		writeJSON(w, 400, fcmError(400, "INVALID_ARGUMENT", "Request contains an invalid argument.", "INVALID_ARGUMENT"))
		return
	}
	if s.isDead(rFCMSend, req.Message.Token) {
		c.note = "UNREGISTERED"
		writeJSON(w, 404, fcmError(404, "NOT_FOUND", "Requested entity was not found.", "UNREGISTERED"))
		return
	}
	writeJSON(w, 200, map[string]string{"name": fmt.Sprintf("projects/%s/messages/%d", project, s.fcmSeq.Add(1))})
}
