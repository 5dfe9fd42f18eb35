package revocation

import (
	"crypto"
	"math/big"
	"testing"
	"time"
)

// TestAnswersBounded: serials nobody issued are answered too, so the
// requesters choose the keys; the answers kept stay bounded.
func TestAnswersBounded(t *testing.T) {
	var a answers
	now := time.Now()
	for i := range 3 * maxAnswers {
		a.put(newAnswerKey(nil, big.NewInt(int64(i)), crypto.SHA1, 0, time.Time{}, 0), OCSPResponse{}, now)
		if len(a.m) > maxAnswers {
			t.Fatalf("%d answers kept after %d, want at most %d", len(a.m), i+1, maxAnswers)
		}
	}
	k := newAnswerKey(nil, big.NewInt(-1), crypto.SHA1, 0, time.Time{}, 0)
	a.put(k, OCSPResponse{DER: []byte{1}}, now)
	if _, ok := a.get(k, now.Add(answerReuse)); ok {
		t.Error("an answer given again after answerReuse")
	}
	if _, ok := a.get(newAnswerKey(nil, big.NewInt(1), crypto.SHA1, 0, time.Time{}, 0), now); ok {
		t.Error("an answer put first still kept after three times the bound")
	}
}
