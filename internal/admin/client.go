package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/scepd/scepd/internal/config"
	"github.com/scepd/scepd/internal/outbound"
	"github.com/scepd/scepd/internal/store"
)

// Client drives a running server's API with a token: the CLI's --server
// mode. It follows no redirect (see doHeader).
type Client struct {
	BaseURL string
	Token   string
	// HTTP is the client requests go through (its CheckRedirect is not
	// used); nil: one with a one-minute timeout.
	HTTP *http.Client
}

var _ API = (*Client)(nil)

// APIError is an error answer of the API.
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%s (HTTP %d): %s", e.Code, e.Status, e.Message)
}

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	_, err := c.doHeader(ctx, method, path, body, out)
	return err
}

// doHeader is do, also returning the response headers.
func (c *Client) doHeader(ctx context.Context, method, path string, body, out any) (http.Header, error) {
	var rd io.Reader
	ct := ""
	switch b := body.(type) {
	case nil:
	case []byte:
		rd, ct = bytes.NewReader(b), "application/pkcs10"
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return nil, err
		}
		rd, ct = bytes.NewReader(j), "application/json"
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.BaseURL, "/")+path, rd)
	if err != nil {
		return nil, err
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	hc := http.Client{Timeout: time.Minute}
	if c.HTTP != nil {
		hc = *c.HTTP
	}
	// A redirect is an error, not followed: Go would re-send the token to
	// the same host and, on 307 and 308, the body (a CA's private key for
	// an import) to wherever it points.
	hc.CheckRedirect = outbound.CheckRedirect
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if err := outbound.Redirected(resp); err != nil {
		return nil, fmt.Errorf("admin: the server %w (the token and the request would go there)", err)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		var e apiError
		if json.Unmarshal(data, &e) == nil && e.Error.Code != "" {
			return nil, &APIError{Status: resp.StatusCode, Code: e.Error.Code, Message: e.Error.Message}
		}
		return nil, &APIError{Status: resp.StatusCode, Code: "http", Message: strings.TrimSpace(string(data))}
	}
	switch o := out.(type) {
	case nil:
		return resp.Header, nil
	case *[]byte:
		*o = data
		return resp.Header, nil
	default:
		return resp.Header, json.Unmarshal(data, out)
	}
}

func esc(s string) string { return url.PathEscape(s) }

func (c *Client) ListCAs(ctx context.Context) ([]CAView, error) {
	var v []CAView
	return v, c.do(ctx, "GET", "/api/v1/cas", nil, &v)
}

func (c *Client) GetCA(ctx context.Context, id string) (CAView, error) {
	var v CAView
	return v, c.do(ctx, "GET", "/api/v1/cas/"+esc(id), nil, &v)
}

func (c *Client) CAChain(ctx context.Context, id string) ([][]byte, error) {
	var b []byte
	if err := c.do(ctx, "GET", "/api/v1/cas/"+esc(id)+"/chain?format=pem", nil, &b); err != nil {
		return nil, err
	}
	var out [][]byte
	for {
		var block *pem.Block
		if block, b = pem.Decode(b); block == nil {
			break
		}
		out = append(out, block.Bytes)
	}
	if len(out) == 0 {
		return nil, errors.New("admin: the chain answer holds no certificate")
	}
	return out, nil
}

func (c *Client) CreateCA(ctx context.Context, spec config.CA) (CAView, error) {
	var v CAView
	return v, c.do(ctx, "POST", "/api/v1/cas", spec, &v)
}

func (c *Client) ListProfiles(ctx context.Context) ([]ProfileView, error) {
	var v []ProfileView
	return v, c.do(ctx, "GET", "/api/v1/profiles", nil, &v)
}

func (c *Client) GetProfile(ctx context.Context, id string) (ProfileView, error) {
	var v ProfileView
	return v, c.do(ctx, "GET", "/api/v1/profiles/"+esc(id), nil, &v)
}

func (c *Client) PutProfile(ctx context.Context, spec config.Profile) (ProfileView, error) {
	var v ProfileView
	return v, c.do(ctx, "PUT", "/api/v1/profiles/"+esc(spec.ID), spec, &v)
}

func (c *Client) PolicyTest(ctx context.Context, profile string, csrDER []byte) (PolicyResult, error) {
	var v PolicyResult
	return v, c.do(ctx, "POST", "/api/v1/profiles/"+esc(profile)+"/policy-test", csrDER, &v)
}

func (c *Client) CreateChallenge(ctx context.Context, profile, bind string) (ChallengeView, error) {
	var v ChallengeView
	q := ""
	if bind != "" {
		q = "?bind=" + url.QueryEscape(bind)
	}
	return v, c.do(ctx, "POST", "/api/v1/profiles/"+esc(profile)+"/challenges"+q, nil, &v)
}

func (c *Client) RotateChallenge(ctx context.Context, profile, secret string, overlap time.Duration) (ChallengeView, error) {
	var v ChallengeView
	body := map[string]string{"password": secret}
	if overlap > 0 {
		body["overlap"] = overlap.String()
	}
	return v, c.do(ctx, "POST", "/api/v1/profiles/"+esc(profile)+"/challenge/rotate", body, &v)
}

func (c *Client) PutEntity(ctx context.Context, profile string, e EntityRequest) (EntityView, error) {
	var v EntityView
	return v, c.do(ctx, "PUT", "/api/v1/profiles/"+esc(profile)+"/entities/"+esc(e.Username), e, &v)
}

func (c *Client) ListEntities(ctx context.Context, profile string) ([]EntityView, error) {
	var v []EntityView
	return v, c.do(ctx, "GET", "/api/v1/profiles/"+esc(profile)+"/entities", nil, &v)
}

// certValues is a certificate listing's filters as a query.
func certValues(f store.CertificateFilter) url.Values {
	q := url.Values{}
	for k, v := range map[string]string{"profile": f.ProfileID, "subject": f.Subject, "san": f.SAN, "status": f.Status, "sort": f.Order} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if !f.ExpiringBefore.IsZero() {
		q.Set("expiring_before", f.ExpiringBefore.UTC().Format(time.RFC3339))
	}
	for _, p := range f.SerialPrefixes {
		// Hex already: 0x says so to the server, which would take
		// digits alone as decimal too.
		q.Add("serial", "0x"+p)
	}
	return q
}

func (c *Client) CountCertificates(ctx context.Context, f store.CertificateFilter) (int, error) {
	var v countView
	err := c.do(ctx, "GET", "/api/v1/certificates/count?"+certValues(f).Encode(), nil, &v)
	return v.Count, err
}

func (c *Client) ListCertificates(ctx context.Context, f store.CertificateFilter) (CertPage, error) {
	q := certValues(f)
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	if f.Offset > 0 {
		q.Set("offset", strconv.Itoa(f.Offset))
	}
	if !f.After.IsZero() {
		q.Set("cursor", EncodeCursor(f.After))
	}
	var page CertPage
	h, err := c.doHeader(ctx, "GET", "/api/v1/certificates?"+q.Encode(), nil, &page.Certificates)
	if err != nil {
		return CertPage{}, err
	}
	page.Next, err = DecodeCursor(h.Get(NextCursorHeader))
	return page, err
}

func (c *Client) GetCertificate(ctx context.Context, serial string) (CertView, error) {
	var v CertView
	if err := c.do(ctx, "GET", "/api/v1/certificates/"+esc(serial), nil, &v); err != nil {
		return v, err
	}
	var der []byte
	if err := c.do(ctx, "GET", "/api/v1/certificates/"+esc(serial)+".der", nil, &der); err != nil {
		return v, err
	}
	v.DER = der
	return v, nil
}

func (c *Client) CreateToken(ctx context.Context, req TokenRequest) (NewTokenView, error) {
	var v NewTokenView
	return v, c.do(ctx, "POST", "/api/v1/tokens", req, &v)
}

func (c *Client) ListTokens(ctx context.Context) ([]TokenView, error) {
	var v []TokenView
	return v, c.do(ctx, "GET", "/api/v1/tokens", nil, &v)
}

func (c *Client) RevokeToken(ctx context.Context, id string) error {
	return c.do(ctx, "DELETE", "/api/v1/tokens/"+esc(id), nil, nil)
}

func (c *Client) ListAudit(ctx context.Context, limit int) ([]store.AuditEvent, error) {
	var v []store.AuditEvent
	return v, c.do(ctx, "GET", "/api/v1/audit?limit="+strconv.Itoa(limit), nil, &v)
}

func (c *Client) Revoke(ctx context.Context, serial, reason string) (CertView, error) {
	var v CertView
	return v, c.do(ctx, "POST", "/api/v1/certificates/"+esc(serial)+"/revoke", revokeRequest{Reason: reason}, &v)
}

func (c *Client) RevokeSubject(ctx context.Context, subject, reason string) ([]CertView, error) {
	var v []CertView
	return v, c.do(ctx, "POST", "/api/v1/certificates/revoke-subject", revokeRequest{Subject: subject, Reason: reason}, &v)
}

func (c *Client) ListRequests(ctx context.Context, profile, status string) ([]RequestView, error) {
	q := url.Values{}
	if profile != "" {
		q.Set("profile", profile)
	}
	if status != "" {
		q.Set("status", status)
	}
	var v []RequestView
	return v, c.do(ctx, "GET", "/api/v1/requests?"+q.Encode(), nil, &v)
}

func (c *Client) Approve(ctx context.Context, profile, transactionID string) (CertView, error) {
	var v CertView
	return v, c.do(ctx, "POST", "/api/v1/requests/"+esc(profile)+"/"+esc(transactionID)+"/approve", nil, &v)
}

func (c *Client) Reject(ctx context.Context, profile, transactionID, reason string) error {
	return c.do(ctx, "POST", "/api/v1/requests/"+esc(profile)+"/"+esc(transactionID)+"/reject", revokeRequest{Reason: reason}, nil)
}

func (c *Client) ListRequestPage(ctx context.Context, f store.TransactionFilter) (RequestPage, error) {
	q := url.Values{}
	for k, v := range map[string]string{"profile": f.ProfileID, "status": f.Status} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	if !f.Before.IsZero() {
		q.Set("cursor", EncodeRequestCursor(f.Before))
	}
	var page RequestPage
	h, err := c.doHeader(ctx, "GET", "/api/v1/requests/newest?"+q.Encode(), nil, &page.Requests)
	if err != nil {
		return RequestPage{}, err
	}
	page.Next, err = DecodeRequestCursor(h.Get(NextCursorHeader))
	return page, err
}

func (c *Client) GetRequest(ctx context.Context, profile, transactionID string) (RequestView, error) {
	var v RequestView
	return v, c.do(ctx, "GET", "/api/v1/requests/"+esc(profile)+"/"+esc(transactionID), nil, &v)
}

func (c *Client) ListChallenges(ctx context.Context, profile string) ([]PendingChallengeView, error) {
	var v []PendingChallengeView
	return v, c.do(ctx, "GET", "/api/v1/profiles/"+esc(profile)+"/challenges", nil, &v)
}

func (c *Client) CancelChallenge(ctx context.Context, profile, id string) error {
	return c.do(ctx, "DELETE", "/api/v1/profiles/"+esc(profile)+"/challenges/"+esc(id), nil, nil)
}
