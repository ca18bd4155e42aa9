package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"strconv"
	"strings"
	"time"
)

// parseWebhookSecret: "whsec_<base64 key>" (Standard Webhooks).
func parseWebhookSecret(s string) ([]byte, error) {
	if !strings.HasPrefix(s, "whsec_") {
		return nil, errors.New("expected whsec_<base64>")
	}
	return base64.StdEncoding.DecodeString(strings.TrimPrefix(s, "whsec_"))
}

// webhookSign: "v1,<base64 HMAC-SHA256(key, id.timestamp.body)>".
func webhookSign(key []byte, id, ts string, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id + "." + ts + "."))
	m.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// webhookVerify checks the headers of a Standard Webhooks delivery; ""
// when it verifies, else why not.
func webhookVerify(key []byte, id, ts, sigs string, body []byte, now time.Time) string {
	if id == "" || ts == "" || sigs == "" {
		return "missing webhook-id, webhook-timestamp or webhook-signature"
	}
	t, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return "bad webhook-timestamp"
	}
	if d := now.Unix() - t; d > 300 || d < -300 {
		return "webhook-timestamp outside 5 minutes"
	}
	want := webhookSign(key, id, ts, body)
	for _, s := range strings.Fields(sigs) {
		if hmac.Equal([]byte(s), []byte(want)) {
			return ""
		}
	}
	return "no matching v1 signature"
}

// webhook: the receiver, POST /hook[/...].
func (s *server) webhook(c *reqCtx) {
	h := c.r.Header
	if s.webhookKey == nil {
		s.stats.webhookUnchecked.Add(1)
		c.note = "unchecked"
	} else if why := webhookVerify(s.webhookKey, h.Get("webhook-id"), h.Get("webhook-timestamp"),
		h.Get("webhook-signature"), c.body, time.Now()); why != "" {
		s.stats.webhookFailed.Add(1)
		c.note = "signature failed: " + why
		writeJSON(c.w, 401, map[string]string{"error": why})
		return
	} else {
		s.stats.webhookVerified.Add(1)
		c.note = "signature verified"
	}
	c.w.WriteHeader(s.opts.webhookStatus)
	io.WriteString(c.w, "")
}
