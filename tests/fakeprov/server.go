package main

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Routes: what latency, errors, counters and recordings are keyed by.
const (
	rAPNs = iota
	rFCMToken
	rFCMSend
	rTwilio
	rSendGrid
	rWebhook
	rOther
	nRoutes
)

var routeNames = [nRoutes]string{"apns", "fcm_token", "fcm_send", "twilio", "sendgrid", "webhook", "other"}

func routeByName(name string) (int, bool) {
	for i, n := range routeNames {
		if n == name {
			return i, true
		}
	}
	return 0, false
}

func routeOf(path string) int {
	switch {
	case strings.HasPrefix(path, "/3/device/"):
		return rAPNs
	case path == "/token":
		return rFCMToken
	case strings.HasPrefix(path, "/v1/projects/") && strings.HasSuffix(path, "/messages:send"):
		return rFCMSend
	case strings.HasPrefix(path, "/2010-04-01/Accounts/"):
		return rTwilio
	case path == "/v3/mail/send":
		return rSendGrid
	case path == "/hook" || strings.HasPrefix(path, "/hook/"):
		return rWebhook
	}
	return rOther
}

// injection is one route's injected behaviour; replaced whole (copy on write).
type injection struct {
	latMinMs, latMaxMs int     // uniform in [min, max]; 0, 0 = none
	errRate            float64 // share of requests answered with errStatus
	errStatus          int
	errBody            string
	errRetryAfter      string
	failNextStatus     int // status of the "fail the next N" answers
	failNextBody       string
	failNextRetryAfter string
}

type stats struct {
	tlsConns, plainConns, openConns atomic.Int64
	requests                        [nRoutes]atomic.Int64
	maxStreams                      atomic.Int64 // most streams in flight on one connection
	inflight, maxInflight           atomic.Int64 // over all connections
	http1APNs                       atomic.Int64
	apnsJWTVerified, apnsJWTFailed  atomic.Int64
	fcmTokenRequests, fcmTokensOK   atomic.Int64
	fcmAssertionFailed              atomic.Int64
	fcmAuthFailed                   atomic.Int64
	twilioCallbacksSent             atomic.Int64
	twilioCallbacksOK               atomic.Int64
	twilioCallbacksFailed           atomic.Int64
	webhookVerified, webhookFailed  atomic.Int64
	webhookUnchecked                atomic.Int64
	injectedErrors, injectedDelays  atomic.Int64

	mu        sync.Mutex
	responses [nRoutes]map[int]int64
}

type recorded struct {
	Seq     int64               `json:"seq"`
	Time    string              `json:"time"`
	Route   string              `json:"route"`
	Method  string              `json:"method"`
	Path    string              `json:"path"`
	Query   string              `json:"query,omitempty"`
	Proto   string              `json:"proto"`
	Conn    int64               `json:"conn"`
	Headers map[string][]string `json:"headers"`
	Body    string              `json:"body"`
	Status  int                 `json:"status"`
	Note    string              `json:"note,omitempty"` // e.g. "signature verified"
}

type server struct {
	opts             *options
	cert             tls.Certificate
	caPEM            []byte
	tlsPort          int
	httpPort         int
	connSeq          atomic.Int64
	stats            stats
	inj              [nRoutes]atomic.Pointer[injection]
	failNext         [nRoutes]atomic.Int64
	recording        atomic.Bool
	recMu            sync.Mutex
	recs             []recorded
	recSeq           int64
	rngMu            sync.Mutex
	rng              *rand.Rand
	deadMu           sync.RWMutex
	dead             [nRoutes]map[string]bool // tokens / numbers answered as dead
	apnsPub          *ecdsa.PublicKey
	apnsTokMu        sync.Mutex
	apnsTokens       map[string]int64 // verified JWT -> iat
	apnsTokensSeen   atomic.Int64
	fcmPub           *rsa.PublicKey
	fcmEmail         string
	fcmTokenURI      string
	fcmProjectID     string
	fcmSAPath        string
	fcmTokMu         sync.Mutex
	fcmTokens        map[string]time.Time // access token -> expiry
	fcmSeq           atomic.Int64
	twMu             sync.Mutex
	twCallbacks      bool
	twCallbackStatus string
	twCallbackDelay  time.Duration
	twSeq            atomic.Int64
	webhookKey       []byte
}

func newServer(o *options) (*server, error) {
	s := &server{
		opts:             o,
		rng:              rand.New(rand.NewSource(time.Now().UnixNano())),
		apnsTokens:       map[string]int64{},
		fcmTokens:        map[string]time.Time{},
		twCallbacks:      o.twilioCallbacks,
		twCallbackStatus: o.twilioCallbackStatus,
		twCallbackDelay:  o.twilioCallbackDelay,
	}
	for i := range s.dead {
		s.dead[i] = map[string]bool{}
		s.stats.responses[i] = map[int]int64{}
		s.inj[i].Store(&injection{})
	}
	s.recording.Store(o.record)
	var err error
	if s.cert, s.caPEM, err = makeCerts(); err != nil {
		return nil, err
	}
	for _, t := range splitList(o.apnsUnregistered) {
		s.dead[rAPNs][t] = true
	}
	for _, t := range splitList(o.fcmUnregistered) {
		s.dead[rFCMSend][t] = true
	}
	for _, t := range splitList(o.twilioInvalid) {
		s.dead[rTwilio][t] = true
	}
	if o.apnsKey != "" {
		if s.apnsPub, err = loadECPublic(o.apnsKey); err != nil {
			return nil, fmt.Errorf("-apns-key: %v", err)
		}
	}
	if o.webhookSecret != "" {
		if s.webhookKey, err = parseWebhookSecret(o.webhookSecret); err != nil {
			return nil, fmt.Errorf("-webhook-secret: %v", err)
		}
	}
	return s, nil
}

func (s *server) isDead(route int, key string) bool {
	s.deadMu.RLock()
	defer s.deadMu.RUnlock()
	return s.dead[route][key]
}

func (s *server) randInt(lo, hi int) int {
	if hi <= lo {
		return lo
	}
	s.rngMu.Lock()
	defer s.rngMu.Unlock()
	return lo + s.rng.Intn(hi-lo+1)
}

func (s *server) randFloat() float64 {
	s.rngMu.Lock()
	defer s.rngMu.Unlock()
	return s.rng.Float64()
}

// respWriter remembers the status for stats and recordings.
type respWriter struct {
	http.ResponseWriter
	status int
}

func (w *respWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *respWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = 200
	}
	return w.ResponseWriter.Write(b)
}

// reqCtx is what a route handler gets: the request, its body (read whole),
// and a note for the recording.
type reqCtx struct {
	w     *respWriter
	r     *http.Request
	body  []byte
	route int
	note  string
}

const maxBody = 1 << 20

func (s *server) serveProvider(w http.ResponseWriter, r *http.Request) {
	route := routeOf(r.URL.Path)
	s.stats.requests[route].Add(1)
	ci, _ := r.Context().Value(ctxKey{}).(*connInfo)
	if ci != nil {
		n := ci.inflight.Add(1)
		raiseMax(&s.stats.maxStreams, n)
		defer ci.inflight.Add(-1)
	}
	raiseMax(&s.stats.maxInflight, s.stats.inflight.Add(1))
	defer s.stats.inflight.Add(-1)

	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	rw := &respWriter{ResponseWriter: w}
	c := &reqCtx{w: rw, r: r, body: body, route: route}
	if err != nil {
		writeJSON(rw, 413, map[string]string{"error": "body too large or unreadable"})
	} else if !s.inject(c) {
		switch route {
		case rAPNs:
			s.apns(c)
		case rFCMToken:
			s.fcmToken(c)
		case rFCMSend:
			s.fcmSend(c)
		case rTwilio:
			s.twilio(c)
		case rSendGrid:
			s.sendgrid(c)
		case rWebhook:
			s.webhook(c)
		default:
			writeJSON(rw, 404, map[string]string{"error": "no such route"})
		}
	}
	if rw.status == 0 {
		rw.status = 200
	}
	s.stats.mu.Lock()
	s.stats.responses[route][rw.status]++
	s.stats.mu.Unlock()
	if s.recording.Load() {
		var conn int64
		if ci != nil {
			conn = ci.id
		}
		s.record(recorded{
			Route: routeNames[route], Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery,
			Proto: r.Proto, Conn: conn, Headers: r.Header, Body: string(body), Status: rw.status, Note: c.note,
		})
	}
}

func raiseMax(m *atomic.Int64, v int64) {
	for {
		cur := m.Load()
		if v <= cur || m.CompareAndSwap(cur, v) {
			return
		}
	}
}

func (s *server) record(rec recorded) {
	s.recMu.Lock()
	defer s.recMu.Unlock()
	s.recSeq++
	rec.Seq = s.recSeq
	rec.Time = time.Now().UTC().Format(time.RFC3339Nano)
	if len(s.recs) >= s.opts.recordMax && len(s.recs) > 0 {
		s.recs = s.recs[1:]
	}
	s.recs = append(s.recs, rec)
}

// inject applies the route's latency, then a "fail next" or random error.
// True when it answered.
func (s *server) inject(c *reqCtx) bool {
	in := s.inj[c.route].Load()
	if in.latMaxMs > 0 {
		d := s.randInt(in.latMinMs, in.latMaxMs)
		if d > 0 {
			s.stats.injectedDelays.Add(1)
			time.Sleep(time.Duration(d) * time.Millisecond)
		}
	}
	for {
		n := s.failNext[c.route].Load()
		if n <= 0 {
			break
		}
		if s.failNext[c.route].CompareAndSwap(n, n-1) {
			s.injectedError(c, in.failNextStatus, in.failNextBody, in.failNextRetryAfter)
			return true
		}
	}
	if in.errRate > 0 && s.randFloat() < in.errRate {
		s.injectedError(c, in.errStatus, in.errBody, in.errRetryAfter)
		return true
	}
	return false
}

func (s *server) injectedError(c *reqCtx, status int, body, retryAfter string) {
	s.stats.injectedErrors.Add(1)
	if status == 0 {
		status = 503
	}
	if body == "" {
		body = defaultErrorBody(c.route, status)
	}
	if retryAfter != "" {
		c.w.Header().Set("Retry-After", retryAfter)
	}
	c.w.Header().Set("Content-Type", "application/json")
	if c.route == rAPNs {
		c.w.Header().Set("apns-id", apnsID(c.r))
	}
	c.note = "injected"
	c.w.WriteHeader(status)
	io.WriteString(c.w, body)
}

func defaultErrorBody(route, status int) string {
	switch route {
	case rAPNs:
		reason := map[int]string{429: "TooManyRequests", 500: "InternalServerError", 503: "ServiceUnavailable",
			403: "InvalidProviderToken", 410: "Unregistered", 400: "BadDeviceToken"}[status]
		if reason == "" {
			reason = "InternalServerError"
		}
		if status == 410 {
			return fmt.Sprintf(`{"reason":"Unregistered","timestamp":%d}`, time.Now().UnixMilli())
		}
		return `{"reason":"` + reason + `"}`
	case rFCMSend, rFCMToken:
		st := map[int]string{429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE", 401: "UNAUTHENTICATED",
			403: "PERMISSION_DENIED", 400: "INVALID_ARGUMENT", 404: "NOT_FOUND"}[status]
		if st == "" {
			st = "INTERNAL"
		}
		return fmt.Sprintf(`{"error":{"code":%d,"message":"injected","status":"%s"}}`, status, st)
	case rTwilio:
		return fmt.Sprintf(`{"code":20500,"message":"injected","status":%d}`, status)
	case rSendGrid:
		return `{"errors":[{"message":"injected","field":null,"help":null}]}`
	}
	return `{"error":"injected"}`
}

func writeJSON(w http.ResponseWriter, status int, v interface{}) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
}

// ----------------------------------------------------------------- control

func (s *server) controlMux() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	m.HandleFunc("/stats", s.ctlStats)
	m.HandleFunc("/requests", s.ctlRequests)
	m.HandleFunc("/reset", s.ctlReset)
	m.HandleFunc("/control/latency", s.ctlLatency)
	m.HandleFunc("/control/errors", s.ctlErrors)
	m.HandleFunc("/control/fail-next", s.ctlFailNext)
	m.HandleFunc("/control/dead", s.ctlDead)
	m.HandleFunc("/control/record", s.ctlRecord)
	m.HandleFunc("/control/twilio", s.ctlTwilio)
	return m
}

// routesOf resolves a control request's "route": one name, or "*" / "" for all.
func routesOf(name string) ([]int, error) {
	if name == "" || name == "*" {
		all := make([]int, nRoutes)
		for i := range all {
			all[i] = i
		}
		return all, nil
	}
	r, ok := routeByName(name)
	if !ok {
		return nil, fmt.Errorf("unknown route %q (one of %s, or *)", name, strings.Join(routeNames[:], ", "))
	}
	return []int{r}, nil
}

type ctlReq struct {
	Route      string   `json:"route"`
	Ms         *int     `json:"ms"`
	MinMs      int      `json:"min_ms"`
	MaxMs      int      `json:"max_ms"`
	Rate       float64  `json:"rate"`
	Status     int      `json:"status"`
	Body       string   `json:"body"`
	RetryAfter string   `json:"retry_after"`
	N          int64    `json:"n"`
	Tokens     []string `json:"tokens"`
	Remove     bool     `json:"remove"`
	On         *bool    `json:"on"`
	Callbacks  *bool    `json:"callbacks"`
	CbStatus   string   `json:"callback_status"`
	DelayMs    *int     `json:"delay_ms"`
}

func readCtl(w http.ResponseWriter, r *http.Request) (*ctlReq, []int, bool) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST a JSON object", http.StatusMethodNotAllowed)
		return nil, nil, false
	}
	var q ctlReq
	if err := json.NewDecoder(r.Body).Decode(&q); err != nil && err != io.EOF {
		http.Error(w, "bad JSON: "+err.Error(), http.StatusBadRequest)
		return nil, nil, false
	}
	routes, err := routesOf(q.Route)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return nil, nil, false
	}
	return &q, routes, true
}

func (s *server) updateInj(routes []int, f func(*injection)) {
	for _, rt := range routes {
		for {
			old := s.inj[rt].Load()
			nw := *old
			f(&nw)
			if s.inj[rt].CompareAndSwap(old, &nw) {
				break
			}
		}
	}
}

// POST /control/latency {"route":"apns","ms":20} or {"min_ms":10,"max_ms":30}; ms 0 clears.
func (s *server) ctlLatency(w http.ResponseWriter, r *http.Request) {
	q, routes, ok := readCtl(w, r)
	if !ok {
		return
	}
	lo, hi := q.MinMs, q.MaxMs
	if q.Ms != nil {
		lo, hi = *q.Ms, *q.Ms
	}
	if lo < 0 || hi < lo {
		http.Error(w, "need 0 <= min_ms <= max_ms", http.StatusBadRequest)
		return
	}
	s.updateInj(routes, func(in *injection) { in.latMinMs, in.latMaxMs = lo, hi })
	io.WriteString(w, "ok\n")
}

// POST /control/errors {"route":"apns","rate":0.1,"status":503,"body":"...","retry_after":"1"}; rate 0 clears.
func (s *server) ctlErrors(w http.ResponseWriter, r *http.Request) {
	q, routes, ok := readCtl(w, r)
	if !ok {
		return
	}
	if q.Rate < 0 || q.Rate > 1 {
		http.Error(w, "rate in [0, 1]", http.StatusBadRequest)
		return
	}
	s.updateInj(routes, func(in *injection) {
		in.errRate, in.errStatus, in.errBody, in.errRetryAfter = q.Rate, q.Status, q.Body, q.RetryAfter
	})
	io.WriteString(w, "ok\n")
}

// POST /control/fail-next {"route":"apns","n":3,"status":503,"body":..,"retry_after":..}; n 0 clears.
func (s *server) ctlFailNext(w http.ResponseWriter, r *http.Request) {
	q, routes, ok := readCtl(w, r)
	if !ok {
		return
	}
	s.updateInj(routes, func(in *injection) {
		in.failNextStatus, in.failNextBody, in.failNextRetryAfter = q.Status, q.Body, q.RetryAfter
	})
	for _, rt := range routes {
		s.failNext[rt].Store(q.N)
	}
	io.WriteString(w, "ok\n")
}

// POST /control/dead {"route":"apns","tokens":["..."]} adds device tokens
// (APNs 410, FCM UNREGISTERED: route fcm_send) or numbers (twilio 21211);
// "remove":true takes them out.
func (s *server) ctlDead(w http.ResponseWriter, r *http.Request) {
	q, routes, ok := readCtl(w, r)
	if !ok {
		return
	}
	if len(routes) != 1 {
		http.Error(w, "name one route", http.StatusBadRequest)
		return
	}
	s.deadMu.Lock()
	for _, t := range q.Tokens {
		if q.Remove {
			delete(s.dead[routes[0]], t)
		} else {
			s.dead[routes[0]][t] = true
		}
	}
	s.deadMu.Unlock()
	io.WriteString(w, "ok\n")
}

// POST /control/record {"on":false}
func (s *server) ctlRecord(w http.ResponseWriter, r *http.Request) {
	q, _, ok := readCtl(w, r)
	if !ok {
		return
	}
	if q.On != nil {
		s.recording.Store(*q.On)
	}
	io.WriteString(w, "ok\n")
}

// POST /control/twilio {"callbacks":true,"callback_status":"undelivered","delay_ms":20}
func (s *server) ctlTwilio(w http.ResponseWriter, r *http.Request) {
	q, _, ok := readCtl(w, r)
	if !ok {
		return
	}
	s.twMu.Lock()
	if q.Callbacks != nil {
		s.twCallbacks = *q.Callbacks
	}
	if q.CbStatus != "" {
		s.twCallbackStatus = q.CbStatus
	}
	if q.DelayMs != nil {
		s.twCallbackDelay = time.Duration(*q.DelayMs) * time.Millisecond
	}
	s.twMu.Unlock()
	io.WriteString(w, "ok\n")
}

// POST /reset: counters, recordings, injected latency and errors back to
// zero. Dead sets, keys and issued FCM tokens stay.
func (s *server) ctlReset(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST", http.StatusMethodNotAllowed)
		return
	}
	st := &s.stats
	for _, c := range []*atomic.Int64{&st.tlsConns, &st.plainConns, &st.maxStreams, &st.maxInflight, &st.http1APNs,
		&st.apnsJWTVerified, &st.apnsJWTFailed, &st.fcmTokenRequests, &st.fcmTokensOK, &st.fcmAssertionFailed,
		&st.fcmAuthFailed, &st.twilioCallbacksSent, &st.twilioCallbacksOK, &st.twilioCallbacksFailed,
		&st.webhookVerified, &st.webhookFailed, &st.webhookUnchecked, &st.injectedErrors, &st.injectedDelays} {
		c.Store(0)
	}
	s.apnsTokensSeen.Store(0)
	s.apnsTokMu.Lock()
	s.apnsTokens = map[string]int64{}
	s.apnsTokMu.Unlock()
	st.mu.Lock()
	for i := range st.requests {
		st.requests[i].Store(0)
		st.responses[i] = map[int]int64{}
		s.inj[i].Store(&injection{})
		s.failNext[i].Store(0)
	}
	st.mu.Unlock()
	s.recMu.Lock()
	s.recs = nil
	s.recMu.Unlock()
	io.WriteString(w, "ok\n")
}

func (s *server) ctlStats(w http.ResponseWriter, r *http.Request) {
	st := &s.stats
	req := map[string]int64{}
	resp := map[string]map[string]int64{}
	st.mu.Lock()
	for i := 0; i < nRoutes; i++ {
		if n := st.requests[i].Load(); n > 0 {
			req[routeNames[i]] = n
		}
		if len(st.responses[i]) > 0 {
			m := map[string]int64{}
			for code, n := range st.responses[i] {
				m[strconv.Itoa(code)] = n
			}
			resp[routeNames[i]] = m
		}
	}
	st.mu.Unlock()
	var ru syscall.Rusage
	cpu := 0.0
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		cpu = float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
	}
	writeJSON(w, 200, map[string]interface{}{
		"requests":                req,
		"responses":               resp,
		"tls_connections":         st.tlsConns.Load(),
		"plain_connections":       st.plainConns.Load(),
		"open_connections":        st.openConns.Load(),
		"max_concurrent_streams":  st.maxStreams.Load(),
		"max_in_flight":           st.maxInflight.Load(),
		"apns_http1_requests":     st.http1APNs.Load(),
		"apns_jwt_verified":       st.apnsJWTVerified.Load(),
		"apns_jwt_failed":         st.apnsJWTFailed.Load(),
		"apns_provider_tokens":    s.apnsTokensSeen.Load(),
		"fcm_token_requests":      st.fcmTokenRequests.Load(),
		"fcm_tokens_issued":       st.fcmTokensOK.Load(),
		"fcm_assertion_failed":    st.fcmAssertionFailed.Load(),
		"fcm_auth_failed":         st.fcmAuthFailed.Load(),
		"twilio_callbacks_sent":   st.twilioCallbacksSent.Load(),
		"twilio_callbacks_ok":     st.twilioCallbacksOK.Load(),
		"twilio_callbacks_failed": st.twilioCallbacksFailed.Load(),
		"webhook_verified":        st.webhookVerified.Load(),
		"webhook_failed":          st.webhookFailed.Load(),
		"webhook_unchecked":       st.webhookUnchecked.Load(),
		"injected_errors":         st.injectedErrors.Load(),
		"injected_delays":         st.injectedDelays.Load(),
		"cpu_s":                   cpu,
	})
}

// GET /requests[?route=apns]: one JSON object per line.
func (s *server) ctlRequests(w http.ResponseWriter, r *http.Request) {
	want := r.URL.Query().Get("route")
	s.recMu.Lock()
	recs := make([]recorded, 0, len(s.recs))
	for _, rec := range s.recs {
		if want == "" || rec.Route == want {
			recs = append(recs, rec)
		}
	}
	s.recMu.Unlock()
	w.Header().Set("Content-Type", "application/x-ndjson")
	enc := json.NewEncoder(w)
	for i := range recs {
		enc.Encode(&recs[i])
	}
}
