package upstream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/scepd/scepd/internal/outbound"
	"io"
	"net/http"
	"regexp"
	"unicode/utf16"
)

// NDESPage fetches one-time challenges from an upstream's NDES admin page
// (/certsrv/mscep_admin/), as Jamf Pro does against NDES: one GET with
// HTTP Basic, one new challenge in the HTML, UTF-16LE (NDES) or UTF-8.
type NDESPage struct {
	URL      string
	Username string
	Password string
	HTTP     *http.Client
}

// maxNDESPage bounds the page read.
const maxNDESPage = 64 << 10

var ndesChallengeRE = regexp.MustCompile(`(?i)challenge password is:\s*<B>\s*([!-~]{4,128}?)\s*</B>`)

// Fetch returns a new one-time challenge of the upstream.
func (n *NDESPage) Fetch(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.URL, nil)
	if err != nil {
		return "", err
	}
	if n.Username != "" {
		req.SetBasicAuth(n.Username, n.Password)
	}
	hc := n.HTTP
	if hc == nil {
		hc = outbound.NoRedirects // the password goes where it was configured to, only
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("NDES page: %w", outbound.Err(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxNDESPage))
	if err != nil {
		return "", fmt.Errorf("NDES page: %w", err)
	}
	if err := outbound.Redirected(resp); err != nil {
		return "", fmt.Errorf("NDES page: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("NDES page: HTTP %d", resp.StatusCode)
	}
	return ParseNDESPage(body)
}

// ErrNoNDESChallenge: the page holds no challenge (NDES shows other
// pages when its cache of challenges is full or the account may not
// enroll).
var ErrNoNDESChallenge = errors.New("NDES page: no challenge password on the page")

// ParseNDESPage finds the challenge in an NDES admin page, UTF-16LE (with
// or without a byte order mark) or UTF-8.
func ParseNDESPage(body []byte) (string, error) {
	text := body
	if isUTF16LE(body) {
		b := bytes.TrimPrefix(body, []byte{0xff, 0xfe})
		u := make([]uint16, len(b)/2)
		for i := range u {
			u[i] = uint16(b[2*i]) | uint16(b[2*i+1])<<8
		}
		text = []byte(string(utf16.Decode(u)))
	}
	m := ndesChallengeRE.FindSubmatch(text)
	if m == nil {
		return "", ErrNoNDESChallenge
	}
	return string(m[1]), nil
}

// isUTF16LE: a byte order mark, or NULs in most odd positions of the start.
func isUTF16LE(b []byte) bool {
	if bytes.HasPrefix(b, []byte{0xff, 0xfe}) {
		return true
	}
	n, nul := 0, 0
	for i := 1; i < len(b) && i < 200; i += 2 {
		n++
		if b[i] == 0 {
			nul++
		}
	}
	return n > 0 && nul*2 > n
}
