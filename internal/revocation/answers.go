package revocation

import (
	"crypto"
	"math/big"
	"sync"
	"time"

	"github.com/scepd/scepd/internal/ca"
)

// answerReuse is how long a signed OCSP answer is given again to those
// asking the same of the same CA: for that long its thisUpdate stays put,
// so an HTTP cache's conditional GET (its ETag) finds it unchanged, and a
// relying party asking again costs no signature. The status is read from
// the store at every request and is part of what is looked up: a
// revocation is answered at once, whichever replica recorded it.
const answerReuse = 5 * time.Minute

// maxAnswers bounds the answers kept (requests for serials nobody issued
// are answered too, so the keys are the requesters' to choose): once it
// is reached, those signed over half answerReuse ago go, then others
// until half are left.
const maxAnswers = 4096

// answerKey is everything an OCSP answer says: who signs, for which
// certificate, under which CertID hash, what status.
type answerKey struct {
	issuer    *ca.CA // a CA loaded again (rollover, import) is another key
	serial    string
	hash      crypto.Hash
	status    int
	revokedAt int64
	reason    int
}

func newAnswerKey(issuer *ca.CA, serial *big.Int, hash crypto.Hash, status int, revokedAt time.Time, reason int) answerKey {
	k := answerKey{issuer: issuer, serial: string(serial.Bytes()), hash: hash, status: status, reason: reason}
	if serial.Sign() < 0 {
		k.serial = "-" + k.serial
	}
	if !revokedAt.IsZero() {
		k.revokedAt = revokedAt.UnixNano()
	}
	return k
}

// answers holds OCSP answers signed within the last answerReuse.
type answers struct {
	mu sync.Mutex
	m  map[answerKey]answer
}

type answer struct {
	resp   OCSPResponse
	signed time.Time
}

func (a *answers) get(k answerKey, now time.Time) (OCSPResponse, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	got, ok := a.m[k]
	if !ok || now.Sub(got.signed) >= answerReuse || now.Before(got.signed) {
		return OCSPResponse{}, false
	}
	return got.resp, true
}

func (a *answers) put(k answerKey, resp OCSPResponse, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.m == nil {
		a.m = make(map[answerKey]answer)
	}
	if len(a.m) >= maxAnswers {
		for key, v := range a.m {
			if now.Sub(v.signed) >= answerReuse/2 || len(a.m) > maxAnswers/2 {
				delete(a.m, key)
			}
		}
	}
	a.m[k] = answer{resp: resp, signed: now}
}
