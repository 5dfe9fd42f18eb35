package audit

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/scepd/scepd/internal/store"
)

// ActionCheckpoint is the audit action of a signed checkpoint; the event
// carries the checkpoint in its details, so every event sink receives a
// copy that lives outside the database.
const ActionCheckpoint = "audit.checkpoint"

// Checkpoint is a signed statement that the audit log had Seq events,
// the newest with hash Head, at Time. Anyone holding the public key can
// check the signature: it is Ed25519 over SignedText.
type Checkpoint struct {
	Seq       int64     `json:"seq"`
	Head      string    `json:"head"` // hex
	Time      time.Time `json:"time"`
	KeyID     string    `json:"key_id"`
	PublicKey string    `json:"public_key"` // base64, raw Ed25519
	Signature string    `json:"signature"`  // base64
}

// SignedText is the exact text the signature covers.
func (c Checkpoint) SignedText() []byte {
	return fmt.Appendf(nil, "scepd audit checkpoint v1\nseq %d\nhead %s\ntime %s\n", c.Seq, c.Head, c.Time.UTC().Format(time.RFC3339Nano))
}

// Sign makes the checkpoint of a log whose newest event is seq with hash head.
func (k *Key) Sign(seq int64, head []byte, at time.Time) Checkpoint {
	c := Checkpoint{Seq: seq, Head: hex.EncodeToString(head), Time: at.UTC().Truncate(time.Microsecond), KeyID: k.ID(),
		PublicKey: base64.StdEncoding.EncodeToString(k.Public())}
	c.Signature = base64.StdEncoding.EncodeToString(ed25519.Sign(k.signer, c.SignedText()))
	return c
}

// Verify checks the checkpoint's signature with pub (which must be the
// key it names; the key embedded in the checkpoint is not trusted).
func (c Checkpoint) Verify(pub ed25519.PublicKey) error {
	if embedded, err := base64.StdEncoding.DecodeString(c.PublicKey); err == nil && len(embedded) > 0 && !bytes.Equal(embedded, pub) {
		return fmt.Errorf("the checkpoint was signed by audit key %s, not by this audit key (%s)", KeyID(embedded), KeyID(pub))
	}
	sig, err := base64.StdEncoding.DecodeString(c.Signature)
	if err != nil || !ed25519.Verify(pub, c.SignedText(), sig) {
		return errors.New("the checkpoint's signature is not valid: it was altered or not made with this audit key")
	}
	return nil
}

// HeadBytes returns the head hash.
func (c Checkpoint) HeadBytes() []byte {
	b, _ := hex.DecodeString(c.Head)
	return b
}

// Details are the checkpoint as audit event details.
func (c Checkpoint) Details() map[string]string {
	return map[string]string{"seq": strconv.FormatInt(c.Seq, 10), "head": c.Head, "time": c.Time.Format(time.RFC3339Nano),
		"key_id": c.KeyID, "public_key": c.PublicKey, "signature": c.Signature}
}

// Event is the audit event that records the checkpoint.
func (c Checkpoint) Event(actor string) store.AuditEvent {
	return store.AuditEvent{Time: c.Time, Actor: actor, Action: ActionCheckpoint, Object: "audit:" + strconv.FormatInt(c.Seq, 10), Outcome: "ok", Details: c.Details()}
}

// ParseCheckpoint reads a checkpoint file as `scepd audit checkpoint`
// writes it, or a copy a sink received: an event (webhook JSON) or an
// audit export line whose details carry the checkpoint.
func ParseCheckpoint(b []byte) (Checkpoint, error) {
	var f struct {
		Checkpoint
		Details map[string]string `json:"details"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return Checkpoint{}, fmt.Errorf("checkpoint: %w", err)
	}
	c := f.Checkpoint
	if d := f.Details; d["signature"] != "" {
		seq, err := strconv.ParseInt(d["seq"], 10, 64)
		if err != nil {
			return c, fmt.Errorf("checkpoint: seq: %w", err)
		}
		at, err := time.Parse(time.RFC3339Nano, d["time"])
		if err != nil {
			return c, fmt.Errorf("checkpoint: time: %w", err)
		}
		c = Checkpoint{Seq: seq, Head: d["head"], Time: at, KeyID: d["key_id"], PublicKey: d["public_key"], Signature: d["signature"]}
	}
	if c.Signature == "" || c.Seq <= 0 {
		return c, errors.New("checkpoint: no signed checkpoint found")
	}
	return c, nil
}
