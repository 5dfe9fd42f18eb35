package console

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"net/http"
	"time"
)

// flash is what a POST leaves for the page it redirects to
// (POST/redirect/GET): a message, or a minted challenge shown once. It is
// kept with the session in the database, encrypted to the session's
// cookie, so only the browser that holds the cookie can have it shown,
// and a reload finds it gone.
type flash struct {
	Msg       string          `json:"msg,omitempty"`
	Challenge *shownChallenge `json:"challenge,omitempty"`
}

// shownChallenge is a one-time challenge just minted.
type shownChallenge struct {
	Profile string    `json:"profile"`
	Value   string    `json:"value"`
	Bind    string    `json:"bind,omitempty"`
	Expires time.Time `json:"expires"`
}

// flashKey is the AES-256 key of a session's flash: HMAC-SHA256 of a
// fixed label keyed by the cookie value. The database holds only the
// cookie's SHA-256, so the note it stores is unreadable there.
func flashKey(sessionID string) []byte {
	m := hmac.New(sha256.New, []byte(sessionID))
	m.Write([]byte("scepd console flash key"))
	return m.Sum(nil)
}

func sealFlash(key []byte, f flash) ([]byte, error) {
	plain, err := json.Marshal(f)
	if err != nil {
		return nil, err
	}
	aead, err := flashAEAD(key)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return aead.Seal(nonce, nonce, plain, nil), nil
}

func openFlash(key, sealed []byte) (flash, error) {
	var f flash
	aead, err := flashAEAD(key)
	if err != nil {
		return f, err
	}
	if len(sealed) < aead.NonceSize() {
		return f, errors.New("console: flash too short")
	}
	plain, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], nil)
	if err != nil {
		return f, err
	}
	return f, json.Unmarshal(plain, &f)
}

func flashAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// setFlash keeps f for the session's next page. A failure loses only the
// note (the operation it reports on is done), so it is logged, not shown.
func (h *Handler) setFlash(r *http.Request, s *session, f flash) {
	sealed, err := sealFlash(s.key, f)
	if err == nil {
		err = h.Store.PutSessionFlash(r.Context(), s.IDHash, sealed)
	}
	if err != nil {
		h.Log.Error("console flash not kept", "path", r.URL.Path, "error", err.Error())
	}
}

// takeFlash moves the session's flash, if any, into s.Flash: once.
func (h *Handler) takeFlash(r *http.Request, s *session) {
	if !s.HasFlash {
		return
	}
	sealed, err := h.Store.TakeSessionFlash(r.Context(), s.IDHash)
	if err != nil {
		h.Log.Error("console flash lookup failed", "error", err.Error())
		return
	}
	if sealed == nil {
		return // another request of this session took it
	}
	f, err := openFlash(s.key, sealed)
	if err != nil {
		h.Log.Error("console flash unreadable", "error", err.Error())
		return
	}
	s.Flash = &f
}

// redirectFlash leaves f for the page at path and sends the browser there.
func (h *Handler) redirectFlash(w http.ResponseWriter, r *http.Request, s *session, path string, f flash) {
	h.setFlash(r, s, f)
	http.Redirect(w, r, path, http.StatusSeeOther)
}
