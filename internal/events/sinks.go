package events

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/scepd/scepd/internal/outbound"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/scepd/scepd/internal/challenge"
)

// Sink delivers one event; an error means "not delivered, retry".
type Sink interface {
	Deliver(ctx context.Context, e Event) error
}

// Headers of a webhook delivery.
const (
	// IdempotencyKeyHeader carries Event.ID: the same for every retry.
	IdempotencyKeyHeader = "Idempotency-Key"
	// EventTypeHeader carries Event.Type.
	EventTypeHeader = "X-Scepd-Event"
	// TimestampHeader carries the Unix time of the attempt.
	TimestampHeader = "X-Scepd-Timestamp"
)

// Webhook posts events as JSON, signed like the challenge webhook:
// X-Scepd-Signature: sha256=<hex HMAC-SHA256(secret, body)>.
type Webhook struct {
	URL    string
	Secret []byte
	// Username and Password, when Username is set, go as HTTP Basic.
	Username, Password string
	// Timeout per attempt. Default 10s.
	Timeout time.Duration
	Client  *http.Client
	Now     func() time.Time
}

var (
	_ Sink = (*Webhook)(nil)
	_ Sink = (*Log)(nil)
)

// Deliver posts e; any 2xx answer is a delivery.
func (w *Webhook) Deliver(ctx context.Context, e Event) error {
	body, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("webhook: encoding event: %w", err)
	}
	timeout := w.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	now := time.Now
	if w.Now != nil {
		now = w.Now
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(IdempotencyKeyHeader, e.ID)
	req.Header.Set(EventTypeHeader, e.Type)
	req.Header.Set(TimestampHeader, strconv.FormatInt(now().Unix(), 10))
	req.Header.Set(challenge.SignatureHeader, challenge.Sign(w.Secret, body))
	if w.Username != "" {
		req.SetBasicAuth(w.Username, w.Password)
	}
	c := w.Client
	if c == nil {
		c = outbound.NoRedirects // a redirect is no delivery
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("webhook: %w", outbound.Err(err))
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if err := outbound.Redirected(resp); err != nil {
		return fmt.Errorf("webhook: %s %w", outbound.Redact(w.URL), err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook: %s answered %s", outbound.Redact(w.URL), resp.Status)
	}
	return nil
}

// Log writes events to the server log, one line each.
type Log struct {
	Logger *slog.Logger
}

// Deliver logs e.
func (l *Log) Deliver(ctx context.Context, e Event) error {
	attrs := []slog.Attr{slog.String("id", e.ID), slog.String("type", e.Type), slog.Time("at", e.Time)}
	for _, f := range [][2]string{{"profile", e.Profile}, {"serial", e.Serial}, {"subject", e.Subject}, {"transaction_id", e.TransactionID}, {"actor", e.Actor}} {
		if f[1] != "" {
			attrs = append(attrs, slog.String(f[0], f[1]))
		}
	}
	keys := make([]string, 0, len(e.Details))
	for k := range e.Details {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		attrs = append(attrs, slog.String("detail."+k, e.Details[k]))
	}
	l.Logger.LogAttrs(ctx, slog.LevelInfo, "event", attrs...)
	return nil
}
