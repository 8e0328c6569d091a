package flow

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// certCheckEvery is how often at most a CertReloader looks at its files.
// A variable so that tests need not wait a second per step.
var certCheckEvery = time.Second

// CertReloader holds a certificate and its key loaded from PEM files and
// loads them again when either file changes, so that a renewed certificate
// is served without a restart: install its GetCertificate as
// tls.Config.GetCertificate (or GetClientCertificate on a client). The
// files are looked at (stat, no read) at most once a second, when a
// handshake asks for the certificate; a new pair that does not load (a key
// not yet written, say) keeps the old one in use, with a warning, and is
// tried again at the next look.
type CertReloader struct {
	certFile, keyFile string
	log               *slog.Logger

	mu        sync.Mutex
	cert      *tls.Certificate
	stamp     [2]fileStamp // of certFile and keyFile when cert was loaded
	lastCheck time.Time
	lastWarn  string
	every     time.Duration // certCheckEvery when made
}

type fileStamp struct {
	mod  time.Time
	size int64
}

// NewCertReloader loads the certificate certFile and its key keyFile (PEM)
// and returns a reloader serving them; it fails if they do not load. log
// receives the reload lines; nil means slog.Default().
func NewCertReloader(certFile, keyFile string, log *slog.Logger) (*CertReloader, error) {
	if log == nil {
		log = slog.Default()
	}
	r := &CertReloader{certFile: certFile, keyFile: keyFile, log: log, every: certCheckEvery}
	cert, stamp, err := r.load()
	if err != nil {
		return nil, err
	}
	r.cert, r.stamp, r.lastCheck = cert, stamp, time.Now()
	return r, nil
}

func stampOf(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{fi.ModTime(), fi.Size()}, nil
}

// load reads both files; the stamps are taken before reading, so a write
// during the read shows as a change at the next look.
func (r *CertReloader) load() (*tls.Certificate, [2]fileStamp, error) {
	var st [2]fileStamp
	var err error
	for i, p := range []string{r.certFile, r.keyFile} {
		if st[i], err = stampOf(p); err != nil {
			return nil, st, fmt.Errorf("TLS certificate: %w", err)
		}
	}
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return nil, st, fmt.Errorf("TLS certificate %s with key %s: %w (want PEM files: the certificate, then its private key)", r.certFile, r.keyFile, err)
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, st, fmt.Errorf("TLS certificate %s: %w", r.certFile, err)
		}
	}
	return &cert, st, nil
}

// Certificate returns the current certificate, first loading the files
// again if they changed since they were last looked at (at most once a
// second).
func (r *CertReloader) Certificate() *tls.Certificate {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	if now.Sub(r.lastCheck) < r.every {
		return r.cert
	}
	r.lastCheck = now
	a, errA := stampOf(r.certFile)
	b, errB := stampOf(r.keyFile)
	if errA == nil && errB == nil && a == r.stamp[0] && b == r.stamp[1] {
		return r.cert
	}
	cert, stamp, err := r.load()
	if err != nil {
		if msg := err.Error(); msg != r.lastWarn { // once per distinct problem, not per handshake
			r.lastWarn = msg
			r.log.Warn("TLS certificate files changed but do not load; still serving the previous certificate", "err", err)
		}
		return r.cert
	}
	r.cert, r.stamp, r.lastWarn = cert, stamp, ""
	r.log.Info("TLS certificate reloaded", "cert", r.certFile, "subject", cert.Leaf.Subject.String(),
		"not_after", cert.Leaf.NotAfter.Format(time.RFC3339))
	return cert
}

// GetCertificate is for tls.Config.GetCertificate.
func (r *CertReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.Certificate(), nil
}

// GetClientCertificate is for tls.Config.GetClientCertificate.
func (r *CertReloader) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return r.Certificate(), nil
}

// loadCAs reads a PEM file of CA certificates.
func loadCAs(file, what string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s %s: no PEM certificate in it", what, file)
	}
	return pool, nil
}

// NewServerTLS returns a server configuration (for ListenTLS, or an HTTPS
// server) serving the certificate certFile with key keyFile, reloaded when
// the files change (CertReloader). With clientCAFile set, it is mutual
// TLS: every client must show a certificate issued by a CA of that PEM
// file, or its handshake fails. TLS 1.2 at least.
func NewServerTLS(certFile, keyFile, clientCAFile string, log *slog.Logger) (*tls.Config, error) {
	if certFile == "" || keyFile == "" {
		return nil, fmt.Errorf("a TLS server needs a certificate and its key (both PEM files)")
	}
	r, err := NewCertReloader(certFile, keyFile, log)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.GetCertificate}
	if clientCAFile != "" {
		if cfg.ClientCAs, err = loadCAs(clientCAFile, "TLS client CA file"); err != nil {
			return nil, err
		}
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// NewClientTLS returns a client configuration (Options.TLS of DialTCP)
// that trusts the CAs of caFile (PEM; "" means the system's roots) and,
// when certFile and keyFile are set, shows that certificate to servers
// that ask for one (mutual TLS), reloaded when the files change.
func NewClientTLS(caFile, certFile, keyFile string, log *slog.Logger) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		var err error
		if cfg.RootCAs, err = loadCAs(caFile, "TLS CA file"); err != nil {
			return nil, err
		}
	}
	if (certFile == "") != (keyFile == "") {
		return nil, fmt.Errorf("a TLS client certificate needs both the certificate and its key (PEM files)")
	}
	if certFile != "" {
		r, err := NewCertReloader(certFile, keyFile, log)
		if err != nil {
			return nil, err
		}
		cfg.GetClientCertificate = r.GetClientCertificate
	}
	return cfg, nil
}
