// Package admin is the operator surface: the use cases behind the REST API
// and the CLI (CAs, profiles, certificates, tokens, challenges, audit),
// API token authentication and role checks, the HTTP handlers, and a
// client for the same API. The CLI drives either the Service directly (on
// the data directory or database) or a running server through Client.
package admin

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/scepd/scepd/internal/store"
)

// Role is what a token may do.
type Role string

// Roles, from most to least powerful.
const (
	// RoleAdmin may do everything.
	RoleAdmin Role = "admin"
	// RoleOperator reads everything but tokens and the audit log, mints
	// challenges, revokes certificates and decides pending requests.
	RoleOperator Role = "operator"
	// RoleMDM only creates challenges, for the profiles its token names.
	RoleMDM Role = "mdm"
	// RoleAuditor reads everything, changes nothing.
	RoleAuditor Role = "auditor"
)

// ValidRole reports whether r is a known role.
func ValidRole(r Role) bool {
	return r == RoleAdmin || r == RoleOperator || r == RoleMDM || r == RoleAuditor
}

// Action is a kind of operation, the unit of authorisation.
type Action int

// Actions.
const (
	ActRead       Action = iota // CAs, profiles, certificates, audit
	ActReadTokens               // the token list (never secrets)
	ActManage                   // create or change CAs and profiles
	ActTokens                   // create and revoke tokens
	ActChallenge                // mint one-time challenges
	ActOperate                  // revoke certificates, decide pending requests
)

// Actor is who performs an operation; it is recorded in the audit log.
type Actor struct {
	// Name identifies the actor in the audit log: "token:ID (name)" or "cli".
	Name string
	// TokenID is the API token's ID; empty for local CLI use.
	TokenID string
	Role    Role
	// Profiles limits the actor to these profiles; empty means all.
	Profiles []string
}

// LocalAdmin is the actor of CLI commands run on the data directory or
// database directly: whoever can read the keys is an administrator.
var LocalAdmin = Actor{Name: "cli", Role: RoleAdmin}

// Allowed reports whether a may perform act, on profile when it is not "".
func (a Actor) Allowed(act Action, profile string) bool {
	if profile != "" && len(a.Profiles) > 0 && !slices.Contains(a.Profiles, profile) {
		return false
	}
	switch a.Role {
	case RoleAdmin:
		return true
	case RoleOperator:
		return act == ActRead || act == ActChallenge || act == ActOperate
	case RoleAuditor:
		return act == ActRead || act == ActReadTokens
	case RoleMDM:
		return act == ActChallenge
	}
	return false
}

// ReadsAudit reports whether a may read the audit trail: admins and
// auditors (operators act; the trail is for those who check them).
func (a Actor) ReadsAudit() bool {
	return a.Allowed(ActRead, "") && a.Role != RoleOperator
}

// Errors the HTTP layer maps to status codes.
var (
	ErrUnauthenticated = errors.New("missing or invalid API token")
	ErrForbidden       = errors.New("this token's role does not allow that")
)

const tokenPrefix = "scepd_"

// NewToken makes a token: "scepd_<id>_<secret>", 256 random secret bits.
// The full token is returned once; the record holds only the secret's SHA-256.
func NewToken(name string, role Role, profiles []string) (string, store.Token, error) {
	id := make([]byte, 8)
	secret := make([]byte, 32)
	if _, err := rand.Read(id); err != nil {
		return "", store.Token{}, err
	}
	if _, err := rand.Read(secret); err != nil {
		return "", store.Token{}, err
	}
	s := base64.RawURLEncoding.EncodeToString(secret)
	h := sha256.Sum256([]byte(s))
	t := store.Token{ID: hex.EncodeToString(id), Hash: h[:], Name: name, Role: string(role), Profiles: profiles}
	return tokenPrefix + t.ID + "_" + s, t, nil
}

// TokenStore is what authentication needs.
type TokenStore interface {
	GetToken(ctx context.Context, id string) (store.Token, error)
}

// Authenticate turns a presented token into its actor. The secret is
// compared in constant time; every failure is ErrUnauthenticated, wrapped
// with why (for the server's log: the answer to the client says only
// ErrUnauthenticated's text, so that it learns nothing of which token IDs
// exist).
func Authenticate(ctx context.Context, st TokenStore, token string) (Actor, error) {
	if token == "" {
		return Actor{}, fmt.Errorf("%w: no token", ErrUnauthenticated)
	}
	rest, ok := strings.CutPrefix(token, tokenPrefix)
	id, secret, ok2 := strings.Cut(rest, "_")
	if !ok || !ok2 || len(id) != 16 || secret == "" {
		return Actor{}, fmt.Errorf("%w: not a scepd token", ErrUnauthenticated)
	}
	t, err := st.GetToken(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return Actor{}, fmt.Errorf("%w: no token with ID %q", ErrUnauthenticated, id)
	}
	if err != nil {
		return Actor{}, fmt.Errorf("admin: token lookup: %w", err)
	}
	h := sha256.Sum256([]byte(secret))
	if subtle.ConstantTimeCompare(h[:], t.Hash) != 1 {
		return Actor{}, fmt.Errorf("%w: wrong secret for token %s", ErrUnauthenticated, t.ID)
	}
	if !t.Revoked.IsZero() {
		return Actor{}, fmt.Errorf("%w: token %s was revoked at %s", ErrUnauthenticated, t.ID, t.Revoked.UTC().Format(time.RFC3339))
	}
	return ActorOf(t), nil
}

// ActorOf is the actor a valid token stands for (console sessions look
// the token up again on every request, so revoking it ends them).
func ActorOf(t store.Token) Actor {
	name := "token:" + t.ID
	if t.Name != "" {
		name += " (" + t.Name + ")"
	}
	return Actor{Name: name, TokenID: t.ID, Role: Role(t.Role), Profiles: t.Profiles}
}
