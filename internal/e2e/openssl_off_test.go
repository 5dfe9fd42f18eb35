//go:build !openssl

package e2e

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/sceptest"
)

// TestCryptoEngineUnavailable: a default (pure Go) binary asked for the
// OpenSSL engine refuses to start and says how to get it.
func TestCryptoEngineUnavailable(t *testing.T) {
	out, err := sceptest.Run(t, 30*time.Second, []string{"SCEPD_CRYPTO=openssl", "SCEPD_CHALLENGE=" + challenge}, "", sceptest.Binary(t),
		"serve", "--addr", "127.0.0.1:0", "--data", filepath.Join(t.TempDir(), "data"))
	if err == nil || !strings.Contains(out, "-tags openssl") {
		t.Fatalf("serve with SCEPD_CRYPTO=openssl in a default build: %v\n%s", err, out)
	}
}
