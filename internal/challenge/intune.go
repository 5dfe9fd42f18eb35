package challenge

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/scepd/scepd/internal/outbound"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Intune delegates validation to Microsoft Intune's SCEP validation
// service (the "third-party CA" integration): the device's challenge is an
// opaque blob Intune made; scepd asks Intune whether the request is
// genuine, then reports the outcome. Intune has no pending state.
type Intune struct {
	ProfileID    string
	Tenant       string
	ClientID     string
	ClientSecret string
	// LoginURL and GraphURL default to Microsoft's public endpoints; tests
	// point them at a local server speaking the same protocol.
	LoginURL string
	GraphURL string
	Client   *http.Client
	Now      func() time.Time
	Log      *slog.Logger

	mu       sync.Mutex
	tokens   map[string]cachedToken
	endpoint string
}

var (
	_ Validator = (*Intune)(nil)
	_ Notifier  = (*Intune)(nil)
)

type cachedToken struct {
	value string
	until time.Time
}

// The Intune service principal and the name of its validation service.
const (
	intuneAppID        = "0000000a-0000-0000-c000-000000000000"
	intuneProviderName = "ScepRequestValidationFEService"
	intuneScope        = "https://api.manage.microsoft.com//.default" // the double slash is Microsoft's
	graphScope         = "https://graph.microsoft.com/.default"
	intuneAPIVersion   = "2018-02-20"
)

// intuneHTTP is the client of Intune's and Entra ID's endpoints: no
// redirect followed (see outbound), 15 s a call. It is never changed.
var intuneHTTP = &http.Client{Timeout: 15 * time.Second, CheckRedirect: outbound.CheckRedirect}

func (in *Intune) client() *http.Client {
	if in.Client != nil {
		return in.Client
	}
	return intuneHTTP
}

// token returns an OAuth2 client-credentials token for scope, cached
// until shortly before it expires.
func (in *Intune) token(ctx context.Context, scope string) (string, error) {
	in.mu.Lock()
	t, ok := in.tokens[scope]
	in.mu.Unlock()
	if ok && in.Now().Before(t.until) {
		return t.value, nil
	}
	login := strings.TrimRight(in.LoginURL, "/")
	if login == "" {
		login = "https://login.microsoftonline.com"
	}
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {in.ClientID}, "client_secret": {in.ClientSecret}, "scope": {scope}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, login+"/"+url.PathEscape(in.Tenant)+"/oauth2/v2.0/token", strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := in.client().Do(req)
	if err != nil {
		return "", fmt.Errorf("intune: token: %w", outbound.Err(err))
	}
	defer resp.Body.Close()
	var tr struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&tr) != nil || tr.AccessToken == "" {
		return "", fmt.Errorf("intune: token endpoint answered HTTP %d", resp.StatusCode)
	}
	in.mu.Lock()
	if in.tokens == nil {
		in.tokens = map[string]cachedToken{}
	}
	in.tokens[scope] = cachedToken{tr.AccessToken, in.Now().Add(time.Duration(tr.ExpiresIn)*time.Second - time.Minute)}
	in.mu.Unlock()
	return tr.AccessToken, nil
}

// serviceURL discovers the validation service's URL once (cached).
func (in *Intune) serviceURL(ctx context.Context) (string, error) {
	in.mu.Lock()
	u := in.endpoint
	in.mu.Unlock()
	if u != "" {
		return u, nil
	}
	tok, err := in.token(ctx, graphScope)
	if err != nil {
		return "", err
	}
	graph := strings.TrimRight(in.GraphURL, "/")
	if graph == "" {
		graph = "https://graph.microsoft.com"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, graph+"/v1.0/servicePrincipals/appId="+intuneAppID+"/endpoints", nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := in.client().Do(req)
	if err != nil {
		return "", fmt.Errorf("intune: discovery: %w", outbound.Err(err))
	}
	defer resp.Body.Close()
	var doc struct {
		Value []struct {
			ProviderName string `json:"providerName"`
			URI          string `json:"uri"`
		} `json:"value"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&doc) != nil {
		return "", fmt.Errorf("intune: discovery answered HTTP %d", resp.StatusCode)
	}
	for _, v := range doc.Value {
		if v.ProviderName == intuneProviderName && v.URI != "" {
			in.mu.Lock()
			in.endpoint = strings.TrimRight(v.URI, "/")
			in.mu.Unlock()
			return v.URI, nil
		}
	}
	return "", errors.New("intune: discovery lists no " + intuneProviderName)
}

func newGUID() string {
	b := make([]byte, 16)
	rand.Read(b)
	b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// call POSTs an action to the validation service.
func (in *Intune) call(ctx context.Context, action string, body any) (map[string]any, error) {
	base, err := in.serviceURL(ctx)
	if err != nil {
		return nil, err
	}
	tok, err := in.token(ctx, intuneScope)
	if err != nil {
		return nil, err
	}
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(base, "/")+"/ScepActions/"+action, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("api-version", intuneAPIVersion)
	req.Header.Set("client-request-id", newGUID())
	resp, err := in.client().Do(req)
	if err != nil {
		return nil, fmt.Errorf("intune: %s: %w", action, outbound.Err(err))
	}
	defer resp.Body.Close()
	var out map[string]any
	if resp.StatusCode != http.StatusOK || json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&out) != nil {
		return nil, fmt.Errorf("intune: %s answered HTTP %d", action, resp.StatusCode)
	}
	return out, nil
}

// Validate asks Intune whether the request is one it authorised.
func (in *Intune) Validate(ctx context.Context, r Request) (Grant, error) {
	out, err := in.call(ctx, "validateRequest", map[string]any{"request": map[string]any{
		"transactionId": r.TransactionID, "certificateRequest": base64.StdEncoding.EncodeToString(r.CSR.Raw), "callerInfo": "scepd",
	}})
	if err != nil {
		in.Log.Warn("Intune validation failed closed", "profile", in.ProfileID, "transaction_id", r.TransactionID, "error", err.Error())
		return Grant{}, &Rejected{Reason: "Intune could not be asked"}
	}
	if ok, reason := intuneVerdict(out); !ok {
		return Grant{}, &Rejected{Reason: reason}
	}
	return Grant{}, nil
}

// intuneVerdict reads validateRequest's answer: allowed only when "code"
// is "Success"; otherwise a printable reason for the device and the log.
func intuneVerdict(out map[string]any) (bool, string) {
	code, _ := out["code"].(string)
	if code == "Success" {
		return true, ""
	}
	desc, _ := out["errorDescription"].(string)
	return false, strings.TrimSpace("Intune refused the request: " + Printable(code, 64) + " " + Printable(desc, 200))
}

// Issued sends successNotification.
func (in *Intune) Issued(ctx context.Context, r Request, cert *x509.Certificate) {
	thumb := sha1.Sum(cert.Raw) // Intune identifies certificates by their SHA-1 thumbprint
	ca := cert.Issuer.CommonName
	if ca == "" {
		ca = cert.Issuer.String()
	}
	_, err := in.call(ctx, "successNotification", map[string]any{"notification": map[string]any{
		"transactionId": r.TransactionID, "certificateRequest": base64.StdEncoding.EncodeToString(r.CSR.Raw),
		"certificateThumbprint": strings.ToUpper(hex.EncodeToString(thumb[:])), "certificateSerialNumber": cert.SerialNumber.Text(16),
		"certificateExpirationDateUtc": cert.NotAfter.UTC().Format(time.RFC3339), "issuingCertificateAuthority": cert.Issuer.String(),
		// The CA that issued it (in RA mode the upstream's), by name.
		"caConfiguration": in.ProfileID, "certificateAuthority": ca, "callerInfo": "scepd",
	}})
	if err != nil {
		in.Log.Warn("Intune successNotification failed", "transaction_id", r.TransactionID, "error", err.Error())
	}
}

// Failed sends failureNotification.
func (in *Intune) Failed(ctx context.Context, r Request, reason string) {
	reason = intuneDescription(reason)
	_, err := in.call(ctx, "failureNotification", map[string]any{"notification": map[string]any{
		"transactionId": r.TransactionID, "certificateRequest": base64.StdEncoding.EncodeToString(r.CSR.Raw),
		"hResult":          int64(-2147467259), // E_FAIL
		"errorDescription": reason, "callerInfo": "scepd",
	}})
	if err != nil {
		in.Log.Warn("Intune failureNotification failed", "transaction_id", r.TransactionID, "error", err.Error())
	}
}

// intuneDescriptionMax is Intune's limit on failureNotification's
// errorDescription, in characters.
const intuneDescriptionMax = 255

// intuneDescription cuts reason to at most 255 bytes, leaving out whole a
// character the cut falls inside (cut in half it would reach Intune as
// U+FFFD, past the limit in bytes): within Intune's limit whether it
// counts bytes, UTF-16 units or characters.
func intuneDescription(reason string) string {
	if len(reason) <= intuneDescriptionMax {
		return reason
	}
	cut := intuneDescriptionMax
	for cut > 0 && !utf8.RuneStart(reason[cut]) {
		cut--
	}
	return reason[:cut]
}
