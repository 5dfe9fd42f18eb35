package events

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/challenge"
	"github.com/scepd/scepd/internal/store"
	"github.com/scepd/scepd/internal/store/sqlite"
)

func TestFromAudit(t *testing.T) {
	hash := []byte{0xde, 0xad, 0xbe, 0xef, 1, 2, 3}
	tests := []struct {
		a    store.AuditEvent
		want Event
		ok   bool
	}{
		{store.AuditEvent{Seq: 7, Hash: hash, Action: "enroll", Outcome: "issued", Object: "certificate:0a",
			Details: map[string]string{"profile": "wifi", "subject": "CN=d", "transaction_id": "t1"}},
			Event{ID: "evt-7-deadbeef0102", Type: CertificateIssued, Profile: "wifi", Serial: "0a", Subject: "CN=d", TransactionID: "t1"}, true},
		{store.AuditEvent{Seq: 8, Action: "enroll", Outcome: "issued", Object: "certificate:0b",
			Details: map[string]string{"profile": "wifi", "renewed": "0a"}},
			Event{ID: "evt-8", Type: CertificateRenewed, Profile: "wifi", Serial: "0b", Details: map[string]string{"renewed": "0a"}}, true},
		{store.AuditEvent{Seq: 9, Action: "certificate.revoke", Outcome: "ok", Object: "certificate:0a", Details: map[string]string{"profile": "wifi", "reason": "keyCompromise"}},
			Event{ID: "evt-9", Type: CertificateRevoked, Profile: "wifi", Serial: "0a", Details: map[string]string{"reason": "keyCompromise"}}, true},
		// Audited before reasons were names: the event names it anyway.
		{store.AuditEvent{Seq: 14, Action: "certificate.revoke", Outcome: "ok", Object: "certificate:0d", Details: map[string]string{"reason": "1"}},
			Event{ID: "evt-14", Type: CertificateRevoked, Serial: "0d", Details: map[string]string{"reason": "keyCompromise"}}, true},
		{store.AuditEvent{Seq: 15, Action: "request.reject", Outcome: "ok", Object: "transaction:t3", Details: map[string]string{"profile": "p", "reason": "42"}},
			Event{ID: "evt-15", Type: RequestRejected, Profile: "p", TransactionID: "t3", Details: map[string]string{"reason": "42"}}, true},
		{store.AuditEvent{Seq: 10, Action: "enroll", Outcome: "pending", Object: "transaction:t2", Details: map[string]string{"profile": "p"}},
			Event{ID: "evt-10", Type: RequestPending, Profile: "p", TransactionID: "t2"}, true},
		{store.AuditEvent{Seq: 11, Action: "enroll.lockout", Outcome: "blocked", Object: "profile:p", Details: map[string]string{"profile": "p", "client_ip": "192.0.2.1"}},
			Event{ID: "evt-11", Type: RepeatedFailures, Profile: "p", Details: map[string]string{"client_ip": "192.0.2.1"}}, true},
		{store.AuditEvent{Seq: 12, Action: "certificate.expiring", Outcome: "notice", Object: "certificate:0c"},
			Event{ID: "evt-12", Type: CertificateExpiring, Serial: "0c"}, true},
		{store.AuditEvent{Seq: 13, Action: "token.create", Outcome: "ok"}, Event{}, false},
	}
	for _, tt := range tests {
		got, ok := FromAudit(tt.a)
		if ok != tt.ok {
			t.Errorf("%s/%s: ok = %v", tt.a.Action, tt.a.Outcome, ok)
			continue
		}
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(tt.want)
		if string(g) != string(w) {
			t.Errorf("%s/%s:\n got %s\nwant %s", tt.a.Action, tt.a.Outcome, g, w)
		}
	}
}

func TestFilter(t *testing.T) {
	f := Filter{Types: []string{CertificateExpiring}, Profiles: []string{"wifi"}}
	for _, tt := range []struct {
		e    Event
		want bool
	}{
		{Event{Type: CertificateExpiring, Profile: "wifi"}, true},
		{Event{Type: CertificateExpiring, Profile: "vpn"}, false},
		{Event{Type: CertificateIssued, Profile: "wifi"}, false},
		{Event{Type: CertificateExpiring}, true},
	} {
		if got := f.Match(tt.e); got != tt.want {
			t.Errorf("Match(%+v) = %v", tt.e, got)
		}
	}
	if !(Filter{}).Match(Event{Type: EnrollmentFailed}) {
		t.Error("the empty filter refuses an event")
	}
}

// receiver is an operator's webhook endpoint: it checks signatures, fails
// the first failFirst calls, and records what it accepted.
type receiver struct {
	t         *testing.T
	secret    []byte
	failFirst int32
	calls     atomic.Int32
	mu        sync.Mutex
	got       []Event
	keys      []string
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	if req.Header.Get(challenge.SignatureHeader) != challenge.Sign(r.secret, body) {
		r.t.Errorf("bad signature %q", req.Header.Get(challenge.SignatureHeader))
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	if n := r.calls.Add(1); n <= r.failFirst {
		http.Error(w, "try later", http.StatusServiceUnavailable)
		return
	}
	var e Event
	if err := json.Unmarshal(body, &e); err != nil {
		r.t.Errorf("body: %v", err)
	}
	if req.Header.Get(IdempotencyKeyHeader) != e.ID || req.Header.Get(EventTypeHeader) != e.Type {
		r.t.Errorf("headers %v do not match event %s %s", req.Header, e.ID, e.Type)
	}
	r.mu.Lock()
	r.got = append(r.got, e)
	r.keys = append(r.keys, e.ID)
	r.mu.Unlock()
}

func (r *receiver) events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.got...)
}

func openStore(t *testing.T) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "scepd.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func audit(t *testing.T, s store.Store, action, outcome, object string, details map[string]string) {
	t.Helper()
	if err := s.AppendAudit(context.Background(), store.AuditEvent{Time: time.Now(), Actor: "test", Action: action, Object: object, Outcome: outcome, Details: details}); err != nil {
		t.Fatal(err)
	}
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestDispatcherRetriesInOrderOnce(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	audit(t, s, "enroll", "issued", "certificate:00", nil) // before the sink existed: not sent
	secret := []byte("hook-secret")
	rcv := &receiver{t: t, secret: secret, failFirst: 2}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	route := Route{Name: "hook", Sink: &Webhook{URL: srv.URL, Secret: secret}, Filter: Filter{Types: []string{CertificateIssued, CertificateRevoked}}}
	// Two replicas share the sink.
	a := &Dispatcher{Store: s, Routes: []Route{route}, Holder: "a", Log: quiet(), MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}
	b := &Dispatcher{Store: s, Routes: []Route{route}, Holder: "b", Log: quiet(), MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}
	if _, err := a.Step(ctx, route); err != nil { // creates the sink at the newest event
		t.Fatal(err)
	}
	audit(t, s, "enroll", "issued", "certificate:01", map[string]string{"profile": "p"})
	audit(t, s, "token.create", "ok", "token:x", nil)       // not an event
	audit(t, s, "enroll", "rejected", "transaction:t", nil) // filtered out
	audit(t, s, "certificate.revoke", "ok", "certificate:01", nil)
	var wg sync.WaitGroup
	for _, d := range []*Dispatcher{a, b} {
		wg.Go(func() {
			for range 20 {
				if _, err := d.Step(ctx, route); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	got := rcv.events()
	if len(got) != 2 || got[0].Type != CertificateIssued || got[0].Serial != "01" || got[1].Type != CertificateRevoked {
		t.Fatalf("received %+v; want issued 01 then revoked 01, once each", got)
	}
	if n := rcv.calls.Load(); n != 4 {
		t.Errorf("%d calls; want 2 refused + 2 delivered", n)
	}
	if got[0].ID == got[1].ID {
		t.Error("two events share an ID")
	}
}

func TestDispatcherGivesUp(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	calls := atomic.Int32{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.Error(w, "no", http.StatusBadRequest)
	}))
	defer srv.Close()
	route := Route{Name: "hook", Sink: &Webhook{URL: srv.URL, Secret: []byte("k")}, GiveUpAfter: 20 * time.Millisecond}
	d := &Dispatcher{Store: s, Routes: []Route{route}, Holder: "a", Log: quiet(), MinBackoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond}
	d.Step(ctx, route)
	audit(t, s, "enroll", "issued", "certificate:01", nil)
	audit(t, s, "enroll", "issued", "certificate:02", nil)
	n, err := d.Step(ctx, route)
	if err != nil || n != 2 {
		t.Fatalf("Step = %d, %v; want both events passed (dropped after retrying)", n, err)
	}
	if calls.Load() < 4 {
		t.Errorf("%d attempts; want retries before giving up", calls.Load())
	}
}

func TestDispatcherLeaseLost(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	route := Route{Name: "hook", Sink: SinkFunc(func(context.Context, Event) error { return errors.New("down") })}
	d := &Dispatcher{Store: s, Routes: []Route{route}, Holder: "a", Log: quiet(), MinBackoff: time.Millisecond, Lease: time.Minute}
	d.Step(ctx, route)
	audit(t, s, "enroll", "issued", "certificate:01", nil)
	// Another replica holds the sink: a steps nothing.
	if _, ok, err := s.ClaimSink(ctx, "hook", "b", time.Now().Add(2*time.Minute), time.Now().Add(3*time.Minute)); err != nil || !ok {
		t.Fatalf("takeover: %v %v", ok, err)
	}
	if n, err := d.Step(ctx, route); n != 0 || err != nil {
		t.Fatalf("Step while b holds the sink = %d, %v", n, err)
	}
}

// SinkFunc adapts a function to Sink (tests).
type SinkFunc func(context.Context, Event) error

func (f SinkFunc) Deliver(ctx context.Context, e Event) error { return f(ctx, e) }

func TestExpiryScan(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	if err := s.CreateCA(ctx, store.CA{ID: "ca", CertDER: []byte{1}, KeyRef: "k", Created: now}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateProfile(ctx, store.Profile{ID: "p", CAID: "ca", RACertDER: []byte{1}, RAKeyRef: "k", ChallengeMode: store.ChallengeNone, Created: now}); err != nil {
		t.Fatal(err)
	}
	day := 24 * time.Hour
	for i, c := range []struct {
		serial            string
		lifetime, remains time.Duration
	}{
		{"01", 365 * day, 3 * day},  // inside 7d: one notice (7d), not also 30d
		{"02", 365 * day, 20 * day}, // inside 30d
		{"03", 5 * day, 2 * day},    // lifetime under 7d: no notice at all
		{"04", 365 * day, 90 * day}, // not yet
	} {
		rec := store.Issued{
			Certificate: store.Certificate{Serial: c.serial, ProfileID: "p", TransactionID: c.serial, Subject: "CN=d" + c.serial,
				NotBefore: now.Add(c.remains - c.lifetime), NotAfter: now.Add(c.remains), DER: []byte{byte(i)}, Status: store.CertValid, Created: now.Add(c.remains - c.lifetime)},
			Transaction: store.Transaction{ProfileID: "p", TransactionID: c.serial, Status: store.StatusIssued, CertSerial: c.serial, PublicKeySHA256: []byte{1}, CSRDER: []byte{1}, Created: now, Updated: now},
			Audit:       store.AuditEvent{Time: now, Actor: "t", Action: "enroll", Object: "certificate:" + c.serial, Outcome: "issued"},
		}
		if err := s.RecordIssued(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	x := &Expiry{Store: s, Log: quiet(), Now: func() time.Time { return now },
		Thresholds: func(store.Profile) []time.Duration { return []time.Duration{30 * day, 7 * day} }}
	n, err := x.Scan(ctx)
	if err != nil || n != 2 {
		t.Fatalf("Scan = %d, %v; want 2 notices", n, err)
	}
	if n, err := x.Scan(ctx); err != nil || n != 0 {
		t.Fatalf("second Scan = %d, %v; want none", n, err)
	}
	evs, _ := s.ListAudit(ctx, 100)
	notices := map[string]string{}
	for _, e := range evs {
		if e.Action == "certificate.expiring" {
			notices[e.Object] = e.Details["threshold"]
		}
	}
	if len(notices) != 2 || notices["certificate:01"] != "168h0m0s" || notices["certificate:02"] != "720h0m0s" {
		t.Fatalf("notices = %v", notices)
	}
	// Time passes: 02 enters the 7-day window and gets its second notice.
	now = now.Add(14 * day)
	if n, err := x.Scan(ctx); err != nil || n != 1 {
		t.Fatalf("Scan two weeks later = %d, %v; want 1 (02 at 7 days)", n, err)
	}
}

// countingStore counts lease claims (writes).
type countingStore struct {
	Store
	claims atomic.Int32
}

func (c *countingStore) ClaimSink(ctx context.Context, name, holder string, now, until time.Time) (int64, bool, error) {
	c.claims.Add(1)
	return c.Store.ClaimSink(ctx, name, holder, now, until)
}

func TestDispatcherIdleDoesNotWrite(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	cs := &countingStore{Store: s}
	route := Route{Name: "log", Sink: &Log{Logger: quiet()}}
	holder := &Dispatcher{Store: cs, Routes: []Route{route}, Holder: "a", Log: quiet()}
	other := &Dispatcher{Store: cs, Routes: []Route{route}, Holder: "b", Log: quiet()}
	holder.Step(ctx, route)
	other.Step(ctx, route) // refused, but learns the cursor
	audit(t, s, "enroll", "issued", "certificate:01", nil)
	if n, err := holder.Step(ctx, route); n != 1 || err != nil {
		t.Fatalf("Step = %d, %v", n, err)
	}
	before := cs.claims.Load()
	for range 10 {
		holder.Step(ctx, route)
	}
	if got := cs.claims.Load() - before; got != 0 {
		t.Errorf("the holder claimed %d times with nothing to send", got)
	}
	// The other replica sees events only after its cursor; it tries to
	// claim once per new event while the holder keeps the lease.
	other.Step(ctx, route)
	if got := cs.claims.Load() - before; got != 1 {
		t.Errorf("%d claims by the other replica for one new event, want 1", got)
	}
}

// TestWebhookRedirectIsNoDelivery: a webhook answering with a redirect
// has not received the event (Go would follow a 302 with a GET without
// it, whose 2xx counted as delivered): the delivery fails, naming where
// the redirect points, and the sink retries.
func TestWebhookRedirectIsNoDelivery(t *testing.T) {
	var posts, gets atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			posts.Add(1)
		} else {
			gets.Add(1)
		}
	}))
	defer target.Close()
	for _, code := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect} {
		moved := httptest.NewServer(http.RedirectHandler(target.URL+"/hook", code))
		err := (&Webhook{URL: moved.URL, Secret: []byte("k")}).Deliver(context.Background(), Event{ID: "evt-1", Type: CertificateIssued})
		moved.Close()
		if err == nil || !strings.Contains(err.Error(), target.URL+"/hook") {
			t.Errorf("a %d redirect: %v, want a failed delivery naming the new URL", code, err)
		}
	}
	if posts.Load() != 0 || gets.Load() != 0 {
		t.Fatalf("the redirect was followed: %d POSTs, %d GETs", posts.Load(), gets.Load())
	}
}

// TestWebhookErrorsHideURLSecrets: a failed delivery's error, which the
// dispatcher logs, names the sink without the key in its URL.
func TestWebhookErrorsHideURLSecrets(t *testing.T) {
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	refusing := httptest.NewServer(http.NotFoundHandler())
	defer refusing.Close()
	for _, base := range []string{closed.URL, refusing.URL} {
		err := (&Webhook{URL: base + "/in?token=QUERYTOKEN", Secret: []byte("k")}).Deliver(context.Background(), Event{ID: "evt-1", Type: CertificateIssued})
		if err == nil || strings.Contains(err.Error(), "QUERYTOKEN") || !strings.Contains(err.Error(), base) {
			t.Errorf("delivery to %s: %v, want an error naming the sink without its token", base, err)
		}
	}
}

// TestWebhookBasicAuth: a receiver that wants HTTP Basic (credentials no
// longer go in the URL) gets them from Username and Password.
func TestWebhookBasicAuth(t *testing.T) {
	var user, pass atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, _ := r.BasicAuth()
		user.Store(u)
		pass.Store(p)
	}))
	defer srv.Close()
	if err := (&Webhook{URL: srv.URL, Secret: []byte("k"), Username: "scepd", Password: "siem-pass"}).Deliver(context.Background(), Event{ID: "evt-1", Type: CertificateIssued}); err != nil {
		t.Fatal(err)
	}
	if user.Load() != "scepd" || pass.Load() != "siem-pass" {
		t.Fatalf("Basic credentials %v:%v", user.Load(), pass.Load())
	}
}
