package revocation

import (
	"crypto"
	"math/big"
	"testing"
	"time"
)

// TestAnswersBounded: serials nobody issued are answered too, so the
// requesters choose the keys; the answers kept stay bounded, and a new
// period's answer pushes out the last period's.
func TestAnswersBounded(t *testing.T) {
	var a answers
	now := answerThisUpdate(time.Now())
	key := func(i int64, at time.Time) answerKey {
		return newAnswerKey(nil, big.NewInt(i), crypto.SHA1, 0, time.Time{}, 0, at)
	}
	for i := range 3 * maxAnswers {
		a.put(key(int64(i), now), OCSPResponse{})
		if len(a.m) > maxAnswers {
			t.Fatalf("%d answers kept after %d, want at most %d", len(a.m), i+1, maxAnswers)
		}
	}
	for i := int64(1 << 40); len(a.m) < maxAnswers; i++ { // full, with this period's
		a.put(key(i, now), OCSPResponse{})
	}
	next := now.Add(answerPeriod)
	a.put(key(-1, next), OCSPResponse{DER: []byte{1}})
	if len(a.m) != 1 {
		t.Errorf("%d answers kept once the next period's came to a full set, want only it", len(a.m))
	}
	if _, ok := a.get(key(-1, now)); ok {
		t.Error("the next period's answer found under this period's key")
	}
	if key(1, now).etag() == key(1, next).etag() || key(1, now).etag() != key(1, now).etag() {
		t.Error("ETags: the same for two periods, or not the same for one answer")
	}
}
