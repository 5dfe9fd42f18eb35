package revocation

import (
	"crypto"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math/big"
	"sync"
	"time"

	"github.com/scepd/scepd/internal/ca"
)

// answerPeriod is how long an OCSP answer stays the same: its thisUpdate
// is the start of the current period (less a minute for clocks behind
// ours), so every replica answers the same within one, a signed answer
// is given again to those asking the same of the same CA (a relying party
// asking again costs no signature), and an HTTP cache's conditional GET
// (its ETag) finds it unchanged whichever replica it reaches. The status
// is read from the store at every request and is part of what is looked
// up: a revocation is answered at once, whichever replica recorded it.
const answerPeriod = 5 * time.Minute

// answerThisUpdate is the thisUpdate of the answers signed at now.
func answerThisUpdate(now time.Time) time.Time {
	return now.Add(-time.Minute).Truncate(answerPeriod)
}

// maxAnswers bounds the answers kept (requests for serials nobody issued
// are answered too, so the keys are the requesters' to choose): once it
// is reached, those of earlier periods go, then others until half are
// left.
const maxAnswers = 4096

// answerKey is everything an OCSP answer says: who signs, for which
// certificate, under which CertID hash, what status, as of when.
type answerKey struct {
	issuer     *ca.CA // a CA loaded again (rollover, import) is another key
	serial     string
	hash       crypto.Hash
	status     int
	revokedAt  int64
	reason     int
	thisUpdate int64
}

func newAnswerKey(issuer *ca.CA, serial *big.Int, hash crypto.Hash, status int, revokedAt time.Time, reason int, thisUpdate time.Time) answerKey {
	k := answerKey{issuer: issuer, serial: string(serial.Bytes()), hash: hash, status: status, reason: reason, thisUpdate: thisUpdate.UnixNano()}
	if serial.Sign() < 0 {
		k.serial = "-" + k.serial
	}
	if !revokedAt.IsZero() {
		k.revokedAt = revokedAt.UnixNano()
	}
	return k
}

// etag names what an answer says, not its bytes (another replica's
// signature over the same differs): a weak validator (RFC 9110 §8.8.1),
// the same on every replica.
func (k answerKey) etag() string {
	h := sha256.New()
	if k.issuer != nil {
		h.Write(k.issuer.Cert.Raw)
	}
	var n [8]byte
	for _, v := range []int64{int64(len(k.serial)), int64(k.hash), int64(k.status), k.revokedAt, int64(k.reason), k.thisUpdate} {
		binary.BigEndian.PutUint64(n[:], uint64(v))
		h.Write(n[:])
	}
	h.Write([]byte(k.serial))
	return `W/"` + hex.EncodeToString(h.Sum(nil)[:16]) + `"`
}

// answers holds the OCSP answers of the current period.
type answers struct {
	mu sync.Mutex
	m  map[answerKey]OCSPResponse
}

func (a *answers) get(k answerKey) (OCSPResponse, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	got, ok := a.m[k]
	return got, ok
}

func (a *answers) put(k answerKey, resp OCSPResponse) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.m == nil {
		a.m = make(map[answerKey]OCSPResponse)
	}
	if len(a.m) >= maxAnswers {
		for key := range a.m {
			if key.thisUpdate < k.thisUpdate || len(a.m) > maxAnswers/2 {
				delete(a.m, key)
			}
		}
	}
	a.m[k] = resp
}
