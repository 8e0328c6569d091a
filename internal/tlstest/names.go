package tlstest

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"net/url"
	"testing"
)

// ClientNames issues a client certificate with common name cn (may be
// empty) and the DNS and URI subject alternative names given, its files
// named after file.
func (ca *CA) ClientNames(t testing.TB, file, cn string, dns, uris []string) *Issued {
	t.Helper()
	var us []*url.URL
	for _, s := range uris {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		us = append(us, u)
	}
	return ca.issueTemplate(t, file, &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		DNSNames:    dns,
		URIs:        us,
	})
}
