// fakeprov: the fake notification providers herald's integration tests and
// benchmarks run against. Test code, never shipped. Standard library only;
// builds with Go 1.19.
//
// One process serves, on 127.0.0.1:
//
//	TLS port   (HTTP/2 and HTTP/1.1, a CA generated at start)  every provider route
//	plain port (HTTP/1.1)                                       every provider route
//	control    (HTTP/1.1)                                       /control/*, /stats, /requests, /reset
//
// Provider routes: APNs POST /3/device/{token}; FCM POST /token and
// POST /v1/projects/{id}/messages:send; Twilio POST
// /2010-04-01/Accounts/{sid}/Messages.json; SendGrid POST /v3/mail/send;
// webhook receiver POST /hook/... . See README.md for flags and the control
// API.
//
// Subcommands:
//
//	fakeprov [serve] [flags]     serve (the default)
//	fakeprov gen-p8 -out F       write a test APNs signing key (.p8, EC P-256 PKCS#8)
//	fakeprov gen-sa -out F ...   write a test FCM service account JSON (RSA key)
package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

type options struct {
	listenTLS, listenHTTP, listenControl string
	portsFile, caOut                     string
	record                               bool
	recordMax                            int
	maxStreams                           int

	apnsKey, apnsKeyID, apnsTeam string
	apnsTokenMaxAge              time.Duration
	apnsUnregistered             string
	apnsAllowHTTP1               bool

	fcmSA, fcmSAOut, fcmProject string
	fcmTokenTTL                 time.Duration
	fcmUnregistered             string
	fcmTokenPlainHTTP           bool

	twilioSID, twilioToken string
	twilioCallbacks        bool
	twilioCallbackDelay    time.Duration
	twilioCallbackStatus   string
	twilioInvalid          string

	sendgridKey string

	webhookSecret string
	webhookStatus int
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("fakeprov: ")
	args := os.Args[1:]
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		serveMain(args)
	case "gen-p8":
		genP8Main(args)
	case "gen-sa":
		genSAMain(args)
	default:
		log.Fatalf("unknown command %q (serve, gen-p8, gen-sa)", cmd)
	}
}

func serveMain(args []string) {
	var o options
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	fs.StringVar(&o.listenTLS, "listen-tls", "127.0.0.1:0", "TLS (HTTP/2) listen address")
	fs.StringVar(&o.listenHTTP, "listen-http", "127.0.0.1:0", "plain HTTP/1.1 listen address")
	fs.StringVar(&o.listenControl, "listen-control", "127.0.0.1:0", "control listen address")
	fs.StringVar(&o.portsFile, "ports-file", "", "write FAKE_*=value lines (shell) here once listening")
	fs.StringVar(&o.caOut, "ca-out", "", "write the generated CA certificate (PEM) here")
	fs.BoolVar(&o.record, "record", true, "record requests (GET /requests); off for benchmarks")
	fs.IntVar(&o.recordMax, "record-max", 100000, "requests kept at most (older ones dropped)")
	fs.IntVar(&o.maxStreams, "max-streams", 1000, "HTTP/2 concurrent streams per connection (Go >= 1.24; older Go: 250)")

	fs.StringVar(&o.apnsKey, "apns-key", "", "APNs: verify provider tokens with this key (.p8 private key or PEM public key); empty: no check")
	fs.StringVar(&o.apnsKeyID, "apns-key-id", "", "APNs: the kid tokens must carry (empty: any)")
	fs.StringVar(&o.apnsTeam, "apns-team-id", "", "APNs: the iss tokens must carry (empty: any)")
	fs.DurationVar(&o.apnsTokenMaxAge, "apns-token-max-age", time.Hour, "APNs: older iat is ExpiredProviderToken")
	fs.StringVar(&o.apnsUnregistered, "apns-unregistered", "", "APNs: comma-separated device tokens answered 410 Unregistered")
	fs.BoolVar(&o.apnsAllowHTTP1, "apns-allow-http1", false, "APNs: serve HTTP/1.1 requests too (Apple does not)")

	fs.StringVar(&o.fcmSA, "fcm-sa", "", "FCM: service account JSON whose key signs token assertions")
	fs.StringVar(&o.fcmSAOut, "fcm-sa-out", "", "FCM: generate a service account at start, write it here (token_uri pointing at this fake)")
	fs.StringVar(&o.fcmProject, "fcm-project", "herald-test", "FCM: project id of a generated service account")
	fs.DurationVar(&o.fcmTokenTTL, "fcm-token-ttl", time.Hour, "FCM: lifetime of issued access tokens")
	fs.StringVar(&o.fcmUnregistered, "fcm-unregistered", "", "FCM: comma-separated registration tokens answered 404 UNREGISTERED")
	fs.BoolVar(&o.fcmTokenPlainHTTP, "fcm-token-plain", false, "FCM: a generated service account's token_uri uses the plain port")

	fs.StringVar(&o.twilioSID, "twilio-sid", "ACtest", "Twilio: account SID (basic auth user)")
	fs.StringVar(&o.twilioToken, "twilio-token", "twilio-test-token", "Twilio: auth token (basic auth password, callback signing key)")
	fs.BoolVar(&o.twilioCallbacks, "twilio-callbacks", true, "Twilio: call each message's StatusCallback")
	fs.DurationVar(&o.twilioCallbackDelay, "twilio-callback-delay", 20*time.Millisecond, "Twilio: wait before the status callback")
	fs.StringVar(&o.twilioCallbackStatus, "twilio-callback-status", "delivered", "Twilio: MessageStatus the callback reports")
	fs.StringVar(&o.twilioInvalid, "twilio-invalid", "", "Twilio: comma-separated To numbers answered 400 (code 21211)")

	fs.StringVar(&o.sendgridKey, "sendgrid-key", "SG.test-key", "SendGrid: the API key (bearer)")

	fs.StringVar(&o.webhookSecret, "webhook-secret", "", "webhook receiver: Standard Webhooks secret (whsec_<base64>); empty: not verified")
	fs.IntVar(&o.webhookStatus, "webhook-status", 200, "webhook receiver: status of verified (or unchecked) deliveries")
	if err := fs.Parse(args); err != nil {
		os.Exit(2)
	}

	s, err := newServer(&o)
	if err != nil {
		log.Fatal(err)
	}
	if err := s.run(); err != nil {
		log.Fatal(err)
	}
}

// run listens, writes the ports, serves until SIGTERM/SIGINT.
func (s *server) run() error {
	o := s.opts
	lnTLS, err := net.Listen("tcp", o.listenTLS)
	if err != nil {
		return err
	}
	lnHTTP, err := net.Listen("tcp", o.listenHTTP)
	if err != nil {
		return err
	}
	lnCtl, err := net.Listen("tcp", o.listenControl)
	if err != nil {
		return err
	}
	s.tlsPort = lnTLS.Addr().(*net.TCPAddr).Port
	s.httpPort = lnHTTP.Addr().(*net.TCPAddr).Port
	ctlPort := lnCtl.Addr().(*net.TCPAddr).Port
	if err := s.setupFCM(); err != nil {
		return err
	}

	provider := http.HandlerFunc(s.serveProvider)
	tlsSrv := &http.Server{
		Handler:     provider,
		TLSConfig:   &tls.Config{Certificates: []tls.Certificate{s.cert}, MinVersion: tls.VersionTLS12},
		ConnState:   s.connState(true),
		ConnContext: s.connContext,
		ErrorLog:    log.New(os.Stderr, "fakeprov tls: ", 0),
	}
	configureHTTP2(tlsSrv, o.maxStreams)
	plainSrv := &http.Server{Handler: provider, ConnState: s.connState(false), ConnContext: s.connContext}
	ctlSrv := &http.Server{Handler: s.controlMux()}

	errc := make(chan error, 3)
	go func() { errc <- tlsSrv.ServeTLS(lnTLS, "", "") }()
	go func() { errc <- plainSrv.Serve(lnHTTP) }()
	go func() { errc <- ctlSrv.Serve(lnCtl) }()

	info := map[string]interface{}{
		"pid": os.Getpid(), "tls_port": s.tlsPort, "http_port": s.httpPort, "control_port": ctlPort,
		"ca_file": o.caOut, "fcm_sa": s.fcmSAPath,
	}
	if o.caOut != "" {
		if err := writeFileAtomic(o.caOut, s.caPEM, 0o644); err != nil {
			return err
		}
	}
	if o.portsFile != "" {
		var b strings.Builder
		fmt.Fprintf(&b, "FAKE_PID=%d\nFAKE_TLS_PORT=%d\nFAKE_HTTP_PORT=%d\nFAKE_CONTROL_PORT=%d\n",
			os.Getpid(), s.tlsPort, s.httpPort, ctlPort)
		fmt.Fprintf(&b, "FAKE_CA_FILE=%s\nFAKE_FCM_SA=%s\n", shellQuote(o.caOut), shellQuote(s.fcmSAPath))
		if err := writeFileAtomic(o.portsFile, []byte(b.String()), 0o644); err != nil {
			return err
		}
	}
	line, _ := json.Marshal(info)
	fmt.Println(string(line))

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-sig:
	case err := <-errc:
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, srv := range []*http.Server{tlsSrv, plainSrv, ctlSrv} {
		srv.Shutdown(ctx) //nolint: best effort at exit
	}
	return nil
}

// connInfo is attached to every provider connection's context: the
// streams in flight on it give "max concurrent streams".
type connInfo struct {
	id       int64
	tls      bool
	inflight atomic.Int64
}

type ctxKey struct{}

func (s *server) connContext(ctx context.Context, c net.Conn) context.Context {
	_, isTLS := c.(*tls.Conn)
	ci := &connInfo{id: s.connSeq.Add(1), tls: isTLS}
	return context.WithValue(ctx, ctxKey{}, ci)
}

func (s *server) connState(isTLS bool) func(net.Conn, http.ConnState) {
	return func(c net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			if isTLS {
				s.stats.tlsConns.Add(1)
			} else {
				s.stats.plainConns.Add(1)
			}
			s.stats.openConns.Add(1)
		case http.StateClosed, http.StateHijacked:
			s.stats.openConns.Add(-1)
		}
	}
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
