// Package bench is a SCEP load generator for any SCEP server: requests are
// built before the clock starts (client crypto is not timed), sent with a
// chosen concurrency, and every answer is verified in full afterwards
// (signature, transactionID, recipientNonce, status, decrypted certificate
// carrying the request's key), so a fast wrong server cannot look good.
package bench

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scepd/scepd/internal/client"
	"github.com/scepd/scepd/internal/scep"
	"github.com/scepd/scepd/internal/scep/cms"
)

// Options configure a run.
type Options struct {
	URL         string
	Challenge   string
	N           int
	Concurrency int
	Cipher      cms.Cipher
	Digest      crypto.Hash
	GET         bool
	// Keys is the size of the client key pool (RSA-2048 keys are slow to make).
	Keys int
	// PID, when set, samples that process's CPU time and memory from /proc.
	PID int
	// Progress receives a line about once a second (nil: none).
	Progress func(done, total int, elapsed time.Duration)
	// Duration, when set, keeps sending for that long, cycling through the
	// N prepared requests (repeats are retransmissions the server answers
	// from its store): a flood without preparing millions of requests.
	Duration time.Duration
	// Rate, when set, replaces the fixed concurrency by arrivals: the N
	// requests are sent at Rate per second, evenly spaced, each as soon
	// as it is due whatever is still in flight (an MDM pushing a profile
	// to a fleet). Latency counts from when a request was due.
	Rate float64
}

// Result is a run's summary.
type Result struct {
	URL           string         `json:"url"`
	Requests      int            `json:"requests"`
	Concurrency   int            `json:"concurrency"`
	Succeeded     int            `json:"succeeded"`
	Failed        int            `json:"failed"`
	Failures      map[string]int `json:"failures_by_reason"`
	Seconds       float64        `json:"seconds"`
	PerSecond     float64        `json:"enrollments_per_second"`
	P50ms         float64        `json:"p50_ms"`
	P90ms         float64        `json:"p90_ms"`
	P99ms         float64        `json:"p99_ms"`
	ServerCPUms   float64        `json:"server_cpu_ms_per_enrollment,omitempty"`
	ServerPeakRSS int64          `json:"server_peak_rss_bytes,omitempty"`
	// With Rate: the arrival rate and the most requests in flight at once.
	Rate        float64 `json:"rate_per_second,omitempty"`
	MaxInFlight int64   `json:"max_in_flight,omitempty"`
	// With Duration: every request sent, and the answers by HTTP status.
	Sent    int            `json:"sent,omitempty"`
	Answers map[string]int `json:"answers_by_status,omitempty"`
}

type floodStats struct {
	mu       sync.Mutex
	byStatus map[string]int
}

func (f *floodStats) record(a answer) {
	key := strconv.Itoa(a.status)
	if a.err != nil {
		key = "error"
	}
	f.mu.Lock()
	f.byStatus[key]++
	f.mu.Unlock()
}

type prepared struct {
	msg   []byte
	txid  string
	nonce []byte
	key   *rsa.PrivateKey
	self  *x509.Certificate
}

type answer struct {
	status  int
	body    []byte
	err     error
	latency time.Duration
}

// Run executes a benchmark.
func Run(ctx context.Context, o Options) (*Result, error) {
	if o.N <= 0 || (o.Concurrency <= 0 && o.Rate <= 0) {
		return nil, errors.New("bench: -n and -c (or --rate) must be positive")
	}
	if o.Rate > 0 && o.Duration > 0 {
		return nil, errors.New("bench: --rate sends each request once; it does not go with --duration")
	}
	if o.Keys <= 0 {
		o.Keys = 8
	}
	c := client.New(o.URL)
	certs, err := c.GetCACert(ctx)
	if err != nil {
		return nil, err
	}
	ra, err := client.Recipient(certs)
	if err != nil {
		return nil, err
	}
	reqs, err := prepare(o, ra)
	if err != nil {
		return nil, err
	}

	idle := o.Concurrency
	if o.Rate > 0 {
		idle = 256
	}
	hc := &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: idle}}
	answers := make([]answer, o.N)
	var next, done atomic.Int64
	var deadline time.Time
	if o.Duration > 0 {
		deadline = time.Now().Add(o.Duration)
	}
	cpu0, _ := procCPU(o.PID)
	var peak atomic.Int64
	stopSampling := make(chan struct{})
	var sampler sync.WaitGroup
	if o.PID > 0 {
		sampler.Add(1)
		go func() {
			defer sampler.Done()
			for {
				if rss, err := procRSS(o.PID); err == nil && rss > peak.Load() {
					peak.Store(rss)
				}
				select {
				case <-stopSampling:
					return
				case <-time.After(50 * time.Millisecond):
				}
			}
		}()
	}
	flood := &floodStats{byStatus: map[string]int{}}
	start := time.Now()
	stopProgress := make(chan struct{})
	if o.Progress != nil {
		go func() {
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-stopProgress:
					return
				case <-t.C:
					o.Progress(int(done.Load()), o.N, time.Since(start))
				}
			}
		}()
	}
	var wg sync.WaitGroup
	var inFlight, maxInFlight atomic.Int64
	if o.Rate > 0 {
		// Open loop: request i is due at start + i/rate.
		due := Schedule(o.Rate)
		for i := range o.N {
			at := start.Add(due(i))
			if !sleepUntil(ctx, at) {
				break
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				n := inFlight.Add(1)
				for m := maxInFlight.Load(); n > m && !maxInFlight.CompareAndSwap(m, n); m = maxInFlight.Load() {
				}
				status, body, err := send(ctx, hc, o, reqs[i].msg)
				inFlight.Add(-1)
				answers[i] = answer{status, body, err, time.Since(at)}
				done.Add(1)
			}()
		}
	} else {
		// Closed loop: Concurrency clients, each sending its next request
		// when the last is answered.
		for range o.Concurrency {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					k := int(next.Add(1)) - 1
					if ctx.Err() != nil || (deadline.IsZero() && k >= o.N) || (!deadline.IsZero() && time.Now().After(deadline)) {
						return
					}
					i := k % o.N
					t0 := time.Now()
					status, body, err := send(ctx, hc, o, reqs[i].msg)
					a := answer{status, body, err, time.Since(t0)}
					flood.record(a)
					if k < o.N {
						answers[i] = a
					}
					done.Add(1)
				}
			}()
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(stopProgress)
	close(stopSampling)
	sampler.Wait()
	cpu1, cpuErr := procCPU(o.PID)
	if o.Progress != nil {
		o.Progress(int(done.Load()), o.N, elapsed)
	}

	res := &Result{URL: o.URL, Requests: o.N, Concurrency: o.Concurrency, Failures: map[string]int{}, Seconds: elapsed.Seconds()}
	if o.Rate > 0 {
		res.Concurrency, res.Rate, res.MaxInFlight = 0, o.Rate, maxInFlight.Load()
	}
	if o.Duration > 0 {
		res.Sent, res.Answers = int(done.Load()), flood.byStatus
	}
	var lat []time.Duration
	for i, a := range answers {
		if reason := verify(reqs[i], a, ra, o.Cipher); reason != "" {
			res.Failed++
			res.Failures[reason]++
			continue
		}
		res.Succeeded++
		lat = append(lat, a.latency)
	}
	res.PerSecond = float64(res.Succeeded) / elapsed.Seconds()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000
	}
	res.P50ms, res.P90ms, res.P99ms = pct(0.5), pct(0.9), pct(0.99)
	if o.PID > 0 && cpuErr == nil && res.Succeeded > 0 {
		res.ServerCPUms = float64((cpu1 - cpu0).Microseconds()) / 1000 / float64(res.Succeeded)
	}
	if o.PID > 0 {
		// Reported whatever the answers were: a flood's verified sample can
		// be all 503s, and the memory bound matters most then.
		res.ServerPeakRSS = peak.Load()
	}
	return res, nil
}

// Schedule returns when request i is due, counted from the start, for
// arrivals at rate per second evenly spaced: 10,000 devices within a
// minute is rate 10000/60.
func Schedule(rate float64) func(i int) time.Duration {
	return func(i int) time.Duration { return time.Duration(float64(i) * float64(time.Second) / rate) }
}

// ParseRate reads an arrival rate: "200", "200/s", "10000/m" or
// "10000/min", "36000/h"; it returns requests per second.
func ParseRate(s string) (float64, error) {
	num, unit, _ := strings.Cut(strings.TrimSpace(s), "/")
	n, err := strconv.ParseFloat(num, 64)
	if err != nil || n <= 0 || n > 1e6 {
		return 0, fmt.Errorf("bench: rate %q: want a positive number of requests per s, m or h, e.g. 10000/m", s)
	}
	switch unit {
	case "", "s", "sec":
		return n, nil
	case "m", "min":
		return n / 60, nil
	case "h":
		return n / 3600, nil
	}
	return 0, fmt.Errorf("bench: rate %q: the unit is s, m or h", s)
}

func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

// prepare builds every request before the clock starts.
func prepare(o Options, ra *x509.Certificate) ([]prepared, error) {
	keys := make([]*rsa.PrivateKey, o.Keys)
	selfs := make([]*x509.Certificate, o.Keys)
	for i := range keys {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, err
		}
		keys[i] = k
		if selfs[i], err = client.SelfSigned(k, pkix.Name{CommonName: "scepd-bench"}); err != nil {
			return nil, err
		}
	}
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	out := make([]prepared, o.N)
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	sem := make(chan struct{}, 4)
	for i := range out {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			k := keys[i%len(keys)]
			csr, err := scep.NewCSR(k, &x509.CertificateRequest{Subject: pkix.Name{CommonName: fmt.Sprintf("bench-%s-%d", run, i)}}, o.Challenge)
			if err != nil {
				select {
				case errs <- err:
				default:
				}
				return
			}
			txid := fmt.Sprintf("bench-%s-%d", run, i)
			msg, nonce, err := scep.Builder{Cert: selfs[i%len(keys)], Key: k}.NewRequest(scep.Request{
				Type: scep.PKCSReq, TransactionID: txid, Body: csr, Recipient: ra, Cipher: o.Cipher, Digest: o.Digest})
			if err != nil {
				select {
				case errs <- err:
				default:
				}
				return
			}
			out[i] = prepared{msg: msg, txid: txid, nonce: nonce, key: k, self: selfs[i%len(keys)]}
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		return nil, err
	default:
	}
	return out, nil
}

func send(ctx context.Context, hc *http.Client, o Options, msg []byte) (int, []byte, error) {
	u, err := url.Parse(o.URL)
	if err != nil {
		return 0, nil, err
	}
	var req *http.Request
	if o.GET {
		u.RawQuery = "operation=PKIOperation&message=" + url.QueryEscape(base64.StdEncoding.EncodeToString(msg))
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	} else {
		u.RawQuery = "operation=PKIOperation"
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(msg))
	}
	if err != nil {
		return 0, nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b, err
}

// verify checks an answer completely; it returns "" or a failure reason.
func verify(p prepared, a answer, ra *x509.Certificate, c cms.Cipher) string {
	switch {
	case a.err != nil:
		if errors.Is(a.err, context.DeadlineExceeded) || strings.Contains(a.err.Error(), "Timeout") {
			return "timeout"
		}
		return "transport error"
	case a.status != http.StatusOK:
		return "HTTP " + strconv.Itoa(a.status)
	}
	rep, err := scep.Parse(a.body, cms.FromX509(ra))
	switch {
	case err != nil:
		return "reply does not verify"
	case rep.Type != scep.CertRep || rep.TransactionID != p.txid || !bytes.Equal(rep.RecipientNonce, p.nonce):
		return "reply does not answer the request"
	case rep.Status == scep.StatusFailure:
		return "FAILURE " + rep.FailInfo.String()
	case rep.Status == scep.StatusPending:
		return "PENDING"
	case rep.Status != scep.StatusSuccess:
		return "unknown status"
	}
	env, err := rep.OpenEnvelope()
	if err != nil || env.Cipher != c {
		return "reply envelope wrong"
	}
	ders, err := rep.CertificatesOf(p.key, p.self)
	if err != nil || len(ders) == 0 {
		return "reply does not decrypt"
	}
	cert, err := x509.ParseCertificate(ders[0])
	if err != nil {
		return "issued certificate unparsable"
	}
	if pub, ok := cert.PublicKey.(*rsa.PublicKey); !ok || !pub.Equal(&p.key.PublicKey) {
		return "certificate for another key"
	}
	return ""
}

// procCPU returns a process's user+system CPU time from /proc/PID/stat.
func procCPU(pid int) (time.Duration, error) {
	if pid <= 0 {
		return 0, errors.New("no pid")
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// Fields after the parenthesised command name; utime and stime are
	// fields 14 and 15 (1-based), in clock ticks (100 per second on Linux).
	s := string(b)
	rest := strings.Fields(s[strings.LastIndex(s, ")")+2:])
	if len(rest) < 13 {
		return 0, errors.New("short /proc stat")
	}
	u, _ := strconv.ParseInt(rest[11], 10, 64)
	st, _ := strconv.ParseInt(rest[12], 10, 64)
	return time.Duration(u+st) * 10 * time.Millisecond, nil
}

// procRSS returns a process's resident set size.
func procRSS(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			return kb * 1024, err
		}
	}
	return 0, errors.New("no VmRSS")
}
