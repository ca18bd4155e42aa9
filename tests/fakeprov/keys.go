package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"log"
	"math/big"
	"net"
	"os"
	"strings"
	"time"
)

// makeCerts generates a test CA and a server certificate it signs for
// 127.0.0.1, ::1 and localhost. Returns the server's tls.Certificate and
// the CA certificate in PEM (what clients trust).
func makeCerts() (tls.Certificate, []byte, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "herald fakeprov test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(7 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "localhost"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(7 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, ca, &srvKey.PublicKey, caKey)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	cert := tls.Certificate{Certificate: [][]byte{srvDER}, PrivateKey: srvKey}
	return cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), nil
}

// loadECPublic reads an EC P-256 public key from a PEM file holding either
// a private key (PKCS#8 as in an APNs .p8, or SEC 1) or a public key.
func loadECPublic(path string) (*ecdsa.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(data)
	if blk == nil {
		return nil, errors.New("no PEM block")
	}
	var k interface{}
	switch blk.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(blk.Bytes)
	case "PUBLIC KEY":
		k, err = x509.ParsePKIXPublicKey(blk.Bytes)
	default:
		return nil, fmt.Errorf("unexpected PEM block %q", blk.Type)
	}
	if err != nil {
		return nil, err
	}
	switch v := k.(type) {
	case *ecdsa.PrivateKey:
		k = &v.PublicKey
	}
	pub, ok := k.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return nil, errors.New("not an EC P-256 key")
	}
	return pub, nil
}

func parseRSAPrivatePEM(p string) (*rsa.PrivateKey, error) {
	blk, _ := pem.Decode([]byte(p))
	if blk == nil {
		return nil, errors.New("no PEM block in private_key")
	}
	var k interface{}
	var err error
	if blk.Type == "RSA PRIVATE KEY" {
		k, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
	} else {
		k, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	}
	if err != nil {
		return nil, err
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New("private_key is not RSA")
	}
	return rk, nil
}

// ---------------------------------------------------------------- JWT

var b64url = base64.RawURLEncoding

type jwtParts struct {
	header map[string]interface{}
	claims map[string]interface{}
	signed string // header.claims
	sig    []byte
}

func splitJWT(tok string) (*jwtParts, error) {
	p := strings.Split(tok, ".")
	if len(p) != 3 {
		return nil, errors.New("not three parts")
	}
	var j jwtParts
	for i, dst := range []*map[string]interface{}{&j.header, &j.claims} {
		raw, err := b64url.DecodeString(p[i])
		if err != nil {
			return nil, fmt.Errorf("part %d: %v", i, err)
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			return nil, fmt.Errorf("part %d: %v", i, err)
		}
	}
	sig, err := b64url.DecodeString(p[2])
	if err != nil {
		return nil, fmt.Errorf("signature: %v", err)
	}
	j.signed = p[0] + "." + p[1]
	j.sig = sig
	return &j, nil
}

// verifyES256 checks a JWS ES256 signature: raw 64-byte r||s over SHA-256.
func verifyES256(pub *ecdsa.PublicKey, j *jwtParts) bool {
	if j.header["alg"] != "ES256" || len(j.sig) != 64 {
		return false
	}
	h := sha256.Sum256([]byte(j.signed))
	r := new(big.Int).SetBytes(j.sig[:32])
	s := new(big.Int).SetBytes(j.sig[32:])
	return ecdsa.Verify(pub, h[:], r, s)
}

func verifyRS256(pub *rsa.PublicKey, j *jwtParts) bool {
	if j.header["alg"] != "RS256" {
		return false
	}
	h := sha256.Sum256([]byte(j.signed))
	return rsa.VerifyPKCS1v15(pub, crypto.SHA256, h[:], j.sig) == nil
}

func claimInt(m map[string]interface{}, k string) (int64, bool) {
	f, ok := m[k].(float64)
	return int64(f), ok
}

func claimStr(m map[string]interface{}, k string) string {
	s, _ := m[k].(string)
	return s
}

// signJWT is for the Go tests: ES256 or RS256 by key type.
func signJWT(key crypto.Signer, header, claims map[string]interface{}) (string, error) {
	hb, _ := json.Marshal(header)
	cb, _ := json.Marshal(claims)
	signed := b64url.EncodeToString(hb) + "." + b64url.EncodeToString(cb)
	h := sha256.Sum256([]byte(signed))
	var sig []byte
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		r, s, err := ecdsa.Sign(rand.Reader, k, h[:])
		if err != nil {
			return "", err
		}
		sig = make([]byte, 64)
		r.FillBytes(sig[:32])
		s.FillBytes(sig[32:])
	case *rsa.PrivateKey:
		var err error
		if sig, err = rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, h[:]); err != nil {
			return "", err
		}
	default:
		return "", errors.New("unsupported key")
	}
	return signed + "." + b64url.EncodeToString(sig), nil
}

// ------------------------------------------------------- helper commands

func genP8() ([]byte, *ecdsa.PrivateKey, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), k, nil
}

// fakeprov gen-p8 -out key.p8: a fresh APNs-style signing key.
func genP8Main(args []string) {
	fs := flag.NewFlagSet("gen-p8", flag.ExitOnError)
	out := fs.String("out", "", "write the .p8 here (required)")
	fs.Parse(args)
	if *out == "" {
		log.Fatal("gen-p8: -out is required")
	}
	p, _, err := genP8()
	if err != nil {
		log.Fatal(err)
	}
	if err := writeFileAtomic(*out, p, 0o600); err != nil {
		log.Fatal(err)
	}
}

type serviceAccount struct {
	Type         string `json:"type"`
	ProjectID    string `json:"project_id"`
	PrivateKeyID string `json:"private_key_id"`
	PrivateKey   string `json:"private_key"`
	ClientEmail  string `json:"client_email"`
	ClientID     string `json:"client_id"`
	AuthURI      string `json:"auth_uri"`
	TokenURI     string `json:"token_uri"`
}

func genSA(project, tokenURI string) ([]byte, *rsa.PrivateKey, error) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, nil, err
	}
	sa := serviceAccount{
		Type: "service_account", ProjectID: project, PrivateKeyID: "fakeprov-test-key",
		PrivateKey:  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		ClientEmail: "herald-test@" + project + ".iam.gserviceaccount.com", ClientID: "1",
		AuthURI: "https://accounts.google.com/o/oauth2/auth", TokenURI: tokenURI,
	}
	b, err := json.MarshalIndent(sa, "", "  ")
	return b, k, err
}

func loadSA(path string) (*serviceAccount, *rsa.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	var sa serviceAccount
	if err := json.Unmarshal(data, &sa); err != nil {
		return nil, nil, err
	}
	k, err := parseRSAPrivatePEM(sa.PrivateKey)
	if err != nil {
		return nil, nil, err
	}
	return &sa, k, nil
}

// fakeprov gen-sa -out sa.json -token-uri URL -project P: a test service
// account with a fresh RSA key.
func genSAMain(args []string) {
	fs := flag.NewFlagSet("gen-sa", flag.ExitOnError)
	out := fs.String("out", "", "write the service account JSON here (required)")
	uri := fs.String("token-uri", "https://127.0.0.1/token", "token_uri")
	project := fs.String("project", "herald-test", "project_id")
	fs.Parse(args)
	if *out == "" {
		log.Fatal("gen-sa: -out is required")
	}
	b, _, err := genSA(*project, *uri)
	if err != nil {
		log.Fatal(err)
	}
	if err := writeFileAtomic(*out, b, 0o600); err != nil {
		log.Fatal(err)
	}
}
