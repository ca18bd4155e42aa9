package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// The Standard Webhooks test vector (the specification's example).
func TestWebhookVector(t *testing.T) {
	key, err := parseWebhookSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"test": 2432232314}`)
	got := webhookSign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", body)
	if got != "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=" {
		t.Fatalf("signature %s", got)
	}
	now := time.Unix(1614265330, 0)
	if why := webhookVerify(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", "v1,bogus "+got, body, now); why != "" {
		t.Fatal(why)
	}
	if webhookVerify(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", got, []byte("{}"), now) == "" {
		t.Fatal("a changed body verified")
	}
	if webhookVerify(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", got, body, now.Add(10*time.Minute)) == "" {
		t.Fatal("a stale timestamp verified")
	}
}

func TestTwilioSignatureSortsParams(t *testing.T) {
	p := url.Values{"b": {"2"}, "a": {"1"}}
	a := twilioSignature("tok", "https://x/cb?q=1", p)
	raw, _ := base64.StdEncoding.DecodeString(a)
	if len(raw) != 20 {
		t.Fatalf("not a SHA-1 HMAC: %q", a)
	}
	if a != twilioSignature("tok", "https://x/cb?q=1", url.Values{"a": {"1"}, "b": {"2"}}) {
		t.Fatal("order matters")
	}
	if a == twilioSignature("tok2", "https://x/cb?q=1", p) {
		t.Fatal("key ignored")
	}
}

func newTestServer(t *testing.T, o *options) (*server, *http.Client, string) {
	s, err := newServer(o)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(http.HandlerFunc(s.serveProvider))
	ts.TLS = &tls.Config{Certificates: []tls.Certificate{s.cert}}
	ts.EnableHTTP2 = true
	ts.Config.ConnContext = s.connContext
	ts.StartTLS()
	t.Cleanup(ts.Close)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s.caPEM)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	return s, &http.Client{Transport: tr}, ts.URL
}

func TestAPNs(t *testing.T) {
	dir := t.TempDir()
	pemKey, key, err := genP8()
	if err != nil {
		t.Fatal(err)
	}
	if err := writeFileAtomic(dir+"/k.p8", pemKey, 0o600); err != nil {
		t.Fatal(err)
	}
	s, c, base := newTestServer(t, &options{apnsKey: dir + "/k.p8", apnsKeyID: "KID1", apnsTeam: "TEAM1",
		apnsTokenMaxAge: time.Hour, apnsUnregistered: "dead00", recordMax: 10, record: true})
	jwt := func(kid string, iat int64) string {
		tok, err := signJWT(key, map[string]interface{}{"alg": "ES256", "kid": kid},
			map[string]interface{}{"iss": "TEAM1", "iat": iat})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	good := jwt("KID1", time.Now().Unix())
	post := func(token, auth, topic string) (int, string, *http.Response) {
		req, _ := http.NewRequest("POST", base+"/3/device/"+token, strings.NewReader(`{"aps":{"alert":"hi"}}`))
		if auth != "" {
			req.Header.Set("authorization", "bearer "+auth)
		}
		if topic != "" {
			req.Header.Set("apns-topic", topic)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor != 2 {
			t.Fatalf("not HTTP/2: %s", resp.Proto)
		}
		return resp.StatusCode, string(b), resp
	}
	cases := []struct {
		token, auth, topic string
		status             int
		reason             string
	}{
		{"abcd01", good, "com.example", 200, ""},
		{"abcd01", "", "com.example", 403, "MissingProviderToken"},
		{"abcd01", jwt("OTHER", time.Now().Unix()), "com.example", 403, "InvalidProviderToken"},
		{"abcd01", jwt("KID1", time.Now().Unix()-7200), "com.example", 403, "ExpiredProviderToken"},
		{"abcd01", good[:len(good)-4] + "AAAA", "com.example", 403, "InvalidProviderToken"},
		{"abcd01", good, "", 400, "MissingTopic"},
		{"not-hex", good, "com.example", 400, "BadDeviceToken"},
		{"dead00", good, "com.example", 410, "Unregistered"},
	}
	for _, k := range cases {
		st, body, resp := post(k.token, k.auth, k.topic)
		if st != k.status || !strings.Contains(body, k.reason) {
			t.Errorf("%+v: got %d %s", k, st, body)
		}
		if !isUUID(resp.Header.Get("apns-id")) {
			t.Errorf("apns-id %q", resp.Header.Get("apns-id"))
		}
	}
	if n := s.stats.apnsJWTVerified.Load(); n != 4 {
		t.Errorf("verified %d", n)
	}
	if n := s.stats.requests[rAPNs].Load(); n != int64(len(cases)) {
		t.Errorf("requests %d", n)
	}
	// fail-next: two 503s with Retry-After, then 200 again
	s.updateInj([]int{rAPNs}, func(in *injection) { in.failNextStatus, in.failNextRetryAfter = 503, "2" })
	s.failNext[rAPNs].Store(2)
	for i, want := range []int{503, 503, 200} {
		st, body, resp := post("abcd02", good, "t")
		if st != want || (want == 503 && (resp.Header.Get("Retry-After") != "2" || !strings.Contains(body, "ServiceUnavailable"))) {
			t.Errorf("fail-next %d: %d %s", i, st, body)
		}
	}
}
