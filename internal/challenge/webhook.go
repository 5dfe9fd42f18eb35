package challenge

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"github.com/scepd/scepd/internal/outbound"
	"github.com/scepd/scepd/internal/scep"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/scepd/scepd/internal/ca"
)

// Webhook delegates the decision to an operator's service: scepd POSTs the
// request as JSON, signed with HMAC-SHA256 over the exact body, and issues
// only on an explicit {"allow": true}. Anything else (deny, error, timeout,
// a malformed answer) refuses: it fails closed.
type Webhook struct {
	ProfileID string
	URL       string
	Secret    []byte
	// Timeout bounds each call; 0 means 5 s.
	Timeout time.Duration
	// Notify also POSTs the outcome (issued / failed) after the decision.
	Notify bool
	Client *http.Client
	Now    func() time.Time
	Log    *slog.Logger
}

var (
	_ Validator = (*Webhook)(nil)
	_ Notifier  = (*Webhook)(nil)
)

// SignatureHeader carries "sha256=<hex HMAC-SHA256 of the body>".
const SignatureHeader = "X-Scepd-Signature"

// WebhookRequest is what the operator's service receives.
type WebhookRequest struct {
	Event         string   `json:"event"` // "validate", "issued" or "failed"
	Timestamp     int64    `json:"timestamp"`
	Profile       string   `json:"profile"`
	TransactionID string   `json:"transaction_id"`
	Challenge     string   `json:"challenge,omitempty"`
	CSR           string   `json:"csr,omitempty"` // PEM
	Subject       string   `json:"subject"`
	SANs          []string `json:"sans"`
	ClientIP      string   `json:"client_ip"`
	Serial        string   `json:"serial,omitempty"`
	Reason        string   `json:"reason,omitempty"`
}

type webhookAnswer struct {
	Allow  bool   `json:"allow"`
	Reason string `json:"reason"`
}

// maxAnswer bounds what scepd reads of a delegated service's answer.
const maxAnswer = 64 << 10

// parseWebhookAnswer reads the operator's service's verdict: one JSON
// object within maxAnswer bytes whose "allow" is a boolean. The reason,
// which reaches the device and the logs, is made printable and cut to 200
// characters.
func parseWebhookAnswer(r io.Reader) (webhookAnswer, error) {
	var raw struct {
		Allow  *bool  `json:"allow"`
		Reason string `json:"reason"`
	}
	if err := json.NewDecoder(io.LimitReader(r, maxAnswer)).Decode(&raw); err != nil {
		return webhookAnswer{}, fmt.Errorf("webhook answer: %w", err)
	}
	if raw.Allow == nil {
		return webhookAnswer{}, errors.New("webhook answer: no \"allow\"")
	}
	return webhookAnswer{Allow: *raw.Allow, Reason: Printable(raw.Reason, 200)}, nil
}

// Sign returns the signature header value for a body.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func (w *Webhook) request(r Request, event string) WebhookRequest {
	req := WebhookRequest{Event: event, Timestamp: w.Now().Unix(), Profile: w.ProfileID, TransactionID: r.TransactionID, ClientIP: r.RemoteAddr, SANs: []string{}}
	if r.CSR != nil {
		req.Subject = r.CSR.Subject.String()
		der := r.CSR.Raw
		if event != "validate" {
			// Only validate carries the challenge; an outcome carries the
			// CSR as scepd stores it, without its challengePassword (or
			// none, should that fail).
			der, _ = scep.RedactChallenge(der)
		}
		if der != nil {
			req.CSR = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
		}
		if sans := ca.CSRSANs(r.CSR); sans != nil {
			req.SANs = sans
		}
	}
	return req
}

func (w *Webhook) post(ctx context.Context, body any) (*http.Response, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	timeout := w.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(b))
	if err != nil {
		cancel()
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(SignatureHeader, Sign(w.Secret, b))
	req.Header.Set("X-Scepd-Timestamp", strconv.FormatInt(w.Now().Unix(), 10))
	c := w.Client
	if c == nil {
		c = outbound.NoRedirects
	}
	resp, err := c.Do(req)
	if err != nil {
		cancel()
		return nil, outbound.Err(err)
	}
	orig := resp.Body
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.LimitReader(orig, 64<<10), closerFunc(func() error { defer cancel(); return orig.Close() })}
	return resp, nil
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

var (
	_ Validator = (*Webhook)(nil)
	_ Notifier  = (*Webhook)(nil)
)

// Validate asks the operator's service.
func (w *Webhook) Validate(ctx context.Context, r Request) (Grant, error) {
	req := w.request(r, "validate")
	req.Challenge = r.Password
	resp, err := w.post(ctx, req)
	if err != nil {
		w.Log.Warn("webhook validation failed closed", "profile", w.ProfileID, "transaction_id", r.TransactionID, "error", err.Error())
		return Grant{}, &Rejected{Reason: "the authorisation service did not answer"}
	}
	defer resp.Body.Close()
	a, err := parseWebhookAnswer(resp.Body)
	if resp.StatusCode != http.StatusOK || err != nil {
		w.Log.Warn("webhook validation failed closed", "profile", w.ProfileID, "transaction_id", r.TransactionID, "status", resp.StatusCode)
		return Grant{}, &Rejected{Reason: "the authorisation service gave no clear answer"}
	}
	if !a.Allow {
		reason := "the authorisation service denied the request"
		if a.Reason != "" {
			reason += ": " + a.Reason
		}
		return Grant{}, &Rejected{Reason: reason}
	}
	return Grant{}, nil
}

// Issued reports an issued certificate when Notify is set.
func (w *Webhook) Issued(ctx context.Context, r Request, cert *x509.Certificate) {
	if !w.Notify {
		return
	}
	req := w.request(r, "issued")
	req.Serial = cert.SerialNumber.Text(16)
	w.notify(ctx, req)
}

// Failed reports a request that was allowed but not issued.
func (w *Webhook) Failed(ctx context.Context, r Request, reason string) {
	if !w.Notify {
		return
	}
	req := w.request(r, "failed")
	req.Reason = reason
	w.notify(ctx, req)
}

func (w *Webhook) notify(ctx context.Context, req WebhookRequest) {
	resp, err := w.post(ctx, req)
	if err != nil {
		w.Log.Warn("webhook notification failed", "profile", w.ProfileID, "event", req.Event, "error", err.Error())
		return
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		w.Log.Warn("webhook notification refused", "profile", w.ProfileID, "event", req.Event, "status", resp.StatusCode)
	}
}
