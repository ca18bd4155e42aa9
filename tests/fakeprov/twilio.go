package main

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
)

func parseForm(c *reqCtx) (url.Values, error) {
	return url.ParseQuery(string(c.body))
}

// twilioSignature: base64(HMAC-SHA1(auth token, URL + each POST parameter
// name and value, sorted by name)), as Twilio signs its callbacks.
func twilioSignature(authToken, fullURL string, params url.Values) string {
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(fullURL)
	for _, k := range keys {
		for _, v := range params[k] {
			b.WriteString(k)
			b.WriteString(v)
		}
	}
	m := hmac.New(sha1.New, []byte(authToken))
	m.Write([]byte(b.String()))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

type twilioError struct {
	Code     int    `json:"code"`
	Message  string `json:"message"`
	MoreInfo string `json:"more_info"`
	Status   int    `json:"status"`
}

func twErr(w http.ResponseWriter, status, code int, msg string) {
	writeJSON(w, status, twilioError{code, msg, "https://www.twilio.com/docs/errors/" + itoa(code), status})
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// twilio: POST /2010-04-01/Accounts/{sid}/Messages.json, basic auth, form body.
func (s *server) twilio(c *reqCtx) {
	w, r := c.w, c.r
	rest := strings.TrimPrefix(r.URL.Path, "/2010-04-01/Accounts/")
	sid, tail, _ := strings.Cut(rest, "/")
	if tail != "Messages.json" {
		twErr(w, 404, 20404, "The requested resource was not found")
		return
	}
	if r.Method != http.MethodPost {
		twErr(w, 405, 20004, "Method not allowed")
		return
	}
	user, pass, ok := r.BasicAuth()
	if !ok || user != s.opts.twilioSID || sid != s.opts.twilioSID ||
		subtle.ConstantTimeCompare([]byte(pass), []byte(s.opts.twilioToken)) != 1 {
		c.note = "auth refused"
		twErr(w, 401, 20003, "Authenticate")
		return
	}
	form, err := parseForm(c)
	if err != nil {
		twErr(w, 400, 20001, "bad form body")
		return
	}
	to, from, msvc, body := form.Get("To"), form.Get("From"), form.Get("MessagingServiceSid"), form.Get("Body")
	switch {
	case to == "":
		twErr(w, 400, 21604, "A 'To' phone number is required.")
		return
	case from == "" && msvc == "":
		twErr(w, 400, 21603, "A 'From' phone number is required.")
		return
	case body == "" && form.Get("MediaUrl") == "":
		twErr(w, 400, 21602, "Message body is required.")
		return
	case s.isDead(rTwilio, to):
		c.note = "invalid To"
		twErr(w, 400, 21211, "The 'To' number "+to+" is not a valid phone number.")
		return
	}
	var b [16]byte
	rand.Read(b[:])
	msid := "SM" + hex.EncodeToString(b[:])
	now := time.Now().UTC().Format(time.RFC1123Z)
	writeJSON(w, 201, map[string]interface{}{
		"sid": msid, "account_sid": sid, "to": to, "from": from, "messaging_service_sid": nullable(msvc),
		"body": body, "status": "queued", "num_segments": "1", "direction": "outbound-api",
		"date_created": now, "date_updated": now, "api_version": "2010-04-01",
		"uri": "/2010-04-01/Accounts/" + sid + "/Messages/" + msid + ".json",
	})
	cb := form.Get("StatusCallback")
	s.twMu.Lock()
	on, status, delay := s.twCallbacks, s.twCallbackStatus, s.twCallbackDelay
	s.twMu.Unlock()
	if cb != "" && on {
		params := url.Values{
			"MessageSid": {msid}, "SmsSid": {msid}, "AccountSid": {sid}, "MessageStatus": {status},
			"SmsStatus": {status}, "To": {to}, "From": {from}, "ApiVersion": {"2010-04-01"},
		}
		if status == "undelivered" || status == "failed" {
			params.Set("ErrorCode", "30003")
		}
		go s.twilioCallback(cb, params, delay)
	}
}

func nullable(s string) interface{} {
	if s == "" {
		return nil
	}
	return s
}

var cbClient = &http.Client{Timeout: 5 * time.Second}

func (s *server) twilioCallback(cbURL string, params url.Values, delay time.Duration) {
	time.Sleep(delay)
	s.stats.twilioCallbacksSent.Add(1)
	body := params.Encode()
	req, err := http.NewRequest(http.MethodPost, cbURL, strings.NewReader(body))
	if err != nil {
		s.stats.twilioCallbacksFailed.Add(1)
		return
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", twilioSignature(s.opts.twilioToken, cbURL, params))
	req.Header.Set("User-Agent", "TwilioProxy/1.1")
	resp, err := cbClient.Do(req)
	status := 0
	if err == nil {
		status = resp.StatusCode
		resp.Body.Close()
	}
	if err == nil && status >= 200 && status < 300 {
		s.stats.twilioCallbacksOK.Add(1)
	} else {
		s.stats.twilioCallbacksFailed.Add(1)
	}
	if s.recording.Load() {
		note := "callback answered " + itoa(status)
		if err != nil {
			note = "callback failed: " + err.Error()
		}
		s.record(recorded{Route: "twilio_callback", Method: "POST", Path: cbURL, Proto: "HTTP/1.1",
			Headers: req.Header, Body: body, Status: status, Note: note})
	}
}

// sendgrid: POST /v3/mail/send, bearer API key, JSON mail; 202 + X-Message-Id.
func (s *server) sendgrid(c *reqCtx) {
	w, r := c.w, c.r
	sgErr := func(status int, msg, field string) {
		c.note = msg
		writeJSON(w, status, map[string]interface{}{"errors": []interface{}{
			map[string]interface{}{"message": msg, "field": nullable(field), "help": nil}}})
	}
	if r.Method != http.MethodPost {
		sgErr(405, "method not allowed", "")
		return
	}
	h := r.Header.Get("authorization")
	if len(h) < 7 || !strings.EqualFold(h[:7], "bearer ") ||
		subtle.ConstantTimeCompare([]byte(strings.TrimSpace(h[7:])), []byte(s.opts.sendgridKey)) != 1 {
		sgErr(401, "The provided authorization grant is invalid, expired, or revoked", "")
		return
	}
	var m struct {
		Personalizations []struct {
			To []struct {
				Email string `json:"email"`
			} `json:"to"`
		} `json:"personalizations"`
		From *struct {
			Email string `json:"email"`
		} `json:"from"`
		Subject    string            `json:"subject"`
		Content    []json.RawMessage `json:"content"`
		TemplateID string            `json:"template_id"`
	}
	if err := json.Unmarshal(c.body, &m); err != nil {
		sgErr(400, "Bad Request", "")
		return
	}
	switch {
	case len(m.Personalizations) == 0 || len(m.Personalizations[0].To) == 0 || m.Personalizations[0].To[0].Email == "":
		sgErr(400, "The personalizations field is required and must have at least one personalization.", "personalizations")
	case m.From == nil || m.From.Email == "":
		sgErr(400, "The from object must be provided for every email send.", "from")
	case len(m.Content) == 0 && m.TemplateID == "":
		sgErr(400, "Unless a valid template_id is provided, the content parameter is required.", "content")
	default:
		var b [11]byte
		rand.Read(b[:])
		w.Header().Set("X-Message-Id", base64.RawURLEncoding.EncodeToString(b[:]))
		w.WriteHeader(202)
	}
}
