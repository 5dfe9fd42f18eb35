package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/scepd/scepd/internal/store"
)

const caColumns = `id, cert_der, chain_der, key_ref, created_at`

// CreateCA stores a CA.
func (s *Store) CreateCA(ctx context.Context, ca store.CA) (err error) {
	defer s.end("CreateCA", time.Now(), &err)
	chain := ca.ChainDER
	if chain == nil {
		chain = [][]byte{}
	}
	_, err = s.exec(ctx, nil, `INSERT INTO cas (`+caColumns+`) VALUES ($1, $2, $3, $4, $5)`,
		ca.ID, ca.CertDER, s.d.Blobs(chain), ca.KeyRef, s.d.Time(ca.Created))
	if err != nil {
		return fmt.Errorf("create CA %q: %w", ca.ID, err)
	}
	return nil
}

func (s *Store) scanCA(r scanner) (store.CA, error) {
	var ca store.CA
	err := r.Scan(&ca.ID, &ca.CertDER, s.d.ScanBlobs(&ca.ChainDER), &ca.KeyRef, s.tm(&ca.Created))
	if len(ca.ChainDER) == 0 {
		ca.ChainDER = nil
	}
	return ca, err
}

// GetCA returns a CA by id.
func (s *Store) GetCA(ctx context.Context, id string) (ca store.CA, err error) {
	defer s.end("GetCA", time.Now(), &err)
	ca, err = s.scanCA(s.row(ctx, nil, `SELECT `+caColumns+` FROM cas WHERE id = $1`, id))
	if err != nil {
		return ca, fmt.Errorf("get CA %q: %w", id, err)
	}
	return ca, nil
}

// ListCAs returns every CA ordered by id.
func (s *Store) ListCAs(ctx context.Context) (out []store.CA, err error) {
	defer s.end("ListCAs", time.Now(), &err)
	return list(ctx, s, `SELECT `+caColumns+` FROM cas ORDER BY id`, s.scanCA)
}

const profileColumns = `id, ca_id, ra_cert_der, ra_key_ref, challenge_mode, challenge_hash, challenge_config, challenge_prev_hash, challenge_prev_until,
	challenge_ttl_seconds, challenge_max_pending,
	allow_des, include_ca_cert, ca_mode, full_chain, policy, lifecycle, next_ra_cert_der, next_ra_key_ref, source, created_at, updated_at, upstream, challenge_env_hash`

// CreateProfile stores a profile.
func (s *Store) CreateProfile(ctx context.Context, p store.Profile) (err error) {
	defer s.end("CreateProfile", time.Now(), &err)
	_, err = s.exec(ctx, nil, `INSERT INTO profiles (`+profileColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24)`,
		p.ID, p.CAID, p.RACertDER, p.RAKeyRef, p.ChallengeMode, p.ChallengeHash, jsonText(p.ChallengeConfig), p.ChallengePrevHash, s.nullTime(p.ChallengePrevUntil),
		int64(p.ChallengeTTL/time.Second), p.ChallengeMaxPending,
		p.AllowDES, p.IncludeCACert, p.CAMode, p.FullChain, jsonText(p.Policy), jsonText(p.Lifecycle), p.NextRACertDER, p.NextRAKeyRef,
		p.Source, s.d.Time(p.Created), s.d.Time(updated(p)), jsonText(p.Upstream), nullString(p.ChallengeEnvHash))
	if err != nil {
		return fmt.Errorf("create profile %q: %w", p.ID, err)
	}
	return nil
}

// UpdateProfile replaces a profile's mutable fields.
func (s *Store) UpdateProfile(ctx context.Context, p store.Profile) (err error) {
	defer s.end("UpdateProfile", time.Now(), &err)
	n, err := s.exec(ctx, nil, `UPDATE profiles SET ca_id = $1, ra_cert_der = $2, ra_key_ref = $3, challenge_mode = $4, challenge_hash = $5,
		challenge_config = $6, challenge_prev_hash = $7, challenge_prev_until = $8, challenge_ttl_seconds = $9, challenge_max_pending = $10,
		allow_des = $11, include_ca_cert = $12, ca_mode = $13, full_chain = $14, policy = $15, lifecycle = $16,
		next_ra_cert_der = $17, next_ra_key_ref = $18, source = $19, updated_at = $20, upstream = $22, challenge_env_hash = $23 WHERE id = $21`,
		p.CAID, p.RACertDER, p.RAKeyRef, p.ChallengeMode, p.ChallengeHash, jsonText(p.ChallengeConfig), p.ChallengePrevHash, s.nullTime(p.ChallengePrevUntil),
		int64(p.ChallengeTTL/time.Second), p.ChallengeMaxPending, p.AllowDES, p.IncludeCACert,
		p.CAMode, p.FullChain, jsonText(p.Policy), jsonText(p.Lifecycle), p.NextRACertDER, p.NextRAKeyRef, p.Source, s.d.Time(updated(p)), p.ID, jsonText(p.Upstream), nullString(p.ChallengeEnvHash))
	if err != nil {
		return fmt.Errorf("update profile %q: %w", p.ID, err)
	}
	if n == 0 {
		return fmt.Errorf("update profile %q: %w", p.ID, store.ErrNotFound)
	}
	return nil
}

func (s *Store) scanProfile(r scanner) (store.Profile, error) {
	var p store.Profile
	var policy, lifecycle, chcfg, upstream string
	var ttl int64
	var envHash sql.NullString
	err := r.Scan(&p.ID, &p.CAID, &p.RACertDER, &p.RAKeyRef, &p.ChallengeMode, &p.ChallengeHash, &chcfg, &p.ChallengePrevHash, s.tm(&p.ChallengePrevUntil),
		&ttl, &p.ChallengeMaxPending,
		&p.AllowDES, &p.IncludeCACert, &p.CAMode, &p.FullChain, &policy, &lifecycle, &p.NextRACertDER, &p.NextRAKeyRef, &p.Source, s.tm(&p.Created), s.tm(&p.Updated), &upstream, &envHash)
	p.ChallengeEnvHash = envHash.String
	if upstream != "{}" {
		p.Upstream = []byte(upstream)
	}
	p.ChallengeTTL = time.Duration(ttl) * time.Second
	p.Policy, p.Lifecycle, p.ChallengeConfig = []byte(policy), []byte(lifecycle), []byte(chcfg)
	return p, err
}

// jsonText stores absent JSON settings as an empty object.
func jsonText(b []byte) string {
	if len(b) == 0 {
		return "{}"
	}
	return string(b)
}

func updated(p store.Profile) time.Time {
	if p.Updated.IsZero() {
		return p.Created
	}
	return p.Updated
}

// GetProfile returns a profile by id.
func (s *Store) GetProfile(ctx context.Context, id string) (p store.Profile, err error) {
	defer s.end("GetProfile", time.Now(), &err)
	p, err = s.scanProfile(s.row(ctx, nil, `SELECT `+profileColumns+` FROM profiles WHERE id = $1`, id))
	if err != nil {
		return p, fmt.Errorf("get profile %q: %w", id, err)
	}
	return p, nil
}

// ListProfiles returns every profile ordered by id.
func (s *Store) ListProfiles(ctx context.Context) (out []store.Profile, err error) {
	defer s.end("ListProfiles", time.Now(), &err)
	return list(ctx, s, `SELECT `+profileColumns+` FROM profiles ORDER BY id`, s.scanProfile)
}

const tokenColumns = `id, hash, name, role, profiles, created_at, revoked_at`

// CreateToken stores an API token.
func (s *Store) CreateToken(ctx context.Context, t store.Token) (err error) {
	defer s.end("CreateToken", time.Now(), &err)
	_, err = s.exec(ctx, nil, `INSERT INTO tokens (id, hash, name, role, profiles, created_at) VALUES ($1, $2, $3, $4, $5, $6)`,
		t.ID, t.Hash, t.Name, t.Role, s.d.Strings(nonNil(t.Profiles)), s.d.Time(t.Created))
	return err
}

func (s *Store) scanToken(r scanner) (store.Token, error) {
	var t store.Token
	err := r.Scan(&t.ID, &t.Hash, &t.Name, &t.Role, s.d.ScanStrings(&t.Profiles), s.tm(&t.Created), s.tm(&t.Revoked))
	if len(t.Profiles) == 0 {
		t.Profiles = nil
	}
	return t, err
}

// GetToken returns a token by id.
func (s *Store) GetToken(ctx context.Context, id string) (t store.Token, err error) {
	defer s.end("GetToken", time.Now(), &err)
	return s.scanToken(s.row(ctx, nil, `SELECT `+tokenColumns+` FROM tokens WHERE id = $1`, id))
}

// ListTokens returns every token, newest first.
func (s *Store) ListTokens(ctx context.Context) (out []store.Token, err error) {
	defer s.end("ListTokens", time.Now(), &err)
	return list(ctx, s, `SELECT `+tokenColumns+` FROM tokens ORDER BY created_at DESC, id`, s.scanToken)
}

// RevokeToken marks a token revoked.
func (s *Store) RevokeToken(ctx context.Context, id string, at time.Time) (err error) {
	defer s.end("RevokeToken", time.Now(), &err)
	n, err := s.exec(ctx, nil, `UPDATE tokens SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2`, s.d.Time(at), id)
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("revoke token %q: %w", id, store.ErrNotFound)
	}
	return nil
}

const entityColumns = `profile_id, username, code_hash, uses_left, expires_at, created_at`

// PutEntity creates or replaces an end entity registration.
func (s *Store) PutEntity(ctx context.Context, e store.Entity) (err error) {
	defer s.end("PutEntity", time.Now(), &err)
	_, err = s.exec(ctx, nil, `INSERT INTO entities (`+entityColumns+`) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (profile_id, username) DO UPDATE SET code_hash = excluded.code_hash, uses_left = excluded.uses_left,
		expires_at = excluded.expires_at, created_at = excluded.created_at`,
		e.ProfileID, e.Username, e.CodeHash, e.UsesLeft, s.d.Time(e.Expires), s.d.Time(e.Created))
	return err
}

func (s *Store) scanEntity(r scanner) (store.Entity, error) {
	var e store.Entity
	err := r.Scan(&e.ProfileID, &e.Username, &e.CodeHash, &e.UsesLeft, s.tm(&e.Expires), s.tm(&e.Created))
	return e, err
}

// GetEntity returns an end entity registration.
func (s *Store) GetEntity(ctx context.Context, profileID, username string) (e store.Entity, err error) {
	defer s.end("GetEntity", time.Now(), &err)
	return s.scanEntity(s.row(ctx, nil, `SELECT `+entityColumns+` FROM entities WHERE profile_id = $1 AND username = $2`, profileID, username))
}

// ListEntities returns a profile's end entities.
func (s *Store) ListEntities(ctx context.Context, profileID string) (out []store.Entity, err error) {
	defer s.end("ListEntities", time.Now(), &err)
	return list(ctx, s, `SELECT `+entityColumns+` FROM entities WHERE profile_id = $1 ORDER BY username`, s.scanEntity, profileID)
}

// CreateChallenge stores a pending challenge under the profile's cap. The
// profile row is locked (or, on SQLite, the write transaction is taken at
// BEGIN) for the count and the insert, so concurrent creators on any
// replica cannot exceed the cap together.
func (s *Store) CreateChallenge(ctx context.Context, c store.Challenge, maxPending int) (err error) {
	defer s.end("CreateChallenge", time.Now(), &err)
	return s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var one int
		if err := s.row(ctx, tx, `SELECT 1 FROM profiles WHERE id = $1`+s.d.ForUpdate, c.ProfileID).Scan(&one); err != nil {
			return fmt.Errorf("create challenge: profile %q: %w", c.ProfileID, err)
		}
		var n int
		if err := s.row(ctx, tx, `SELECT count(*) FROM challenges WHERE profile_id = $1 AND used_at IS NULL AND expires_at > $2`,
			c.ProfileID, s.d.Time(c.Created)).Scan(&n); err != nil {
			return err
		}
		if n >= maxPending {
			return fmt.Errorf("%w: %d pending challenges for profile %q", store.ErrLimit, n, c.ProfileID)
		}
		_, err := s.exec(ctx, tx, `INSERT INTO challenges (hash, profile_id, created_at, expires_at, bound_to, note) VALUES ($1, $2, $3, $4, $5, $6)`,
			c.Hash, c.ProfileID, s.d.Time(c.Created), s.d.Time(c.Expires), c.BoundTo, c.Note)
		return err
	})
}

// GetChallenge returns a profile's challenge by hash.
func (s *Store) GetChallenge(ctx context.Context, profileID string, hash []byte) (c store.Challenge, err error) {
	defer s.end("GetChallenge", time.Now(), &err)
	c = store.Challenge{Hash: hash, ProfileID: profileID}
	var serial, reserved sql.NullString
	err = s.row(ctx, nil, `SELECT created_at, expires_at, used_at, used_serial, reserved_by, bound_to, note FROM challenges WHERE hash = $1 AND profile_id = $2`,
		hash, profileID).Scan(s.tm(&c.Created), s.tm(&c.Expires), s.tm(&c.Used), &serial, &reserved, &c.BoundTo, &c.Note)
	c.UsedSerial, c.ReservedBy = serial.String, reserved.String
	return c, err
}

// PurgeChallenges deletes unused challenges that expired before t, but
// not one a pending request reserved: its approval (or an upstream's
// issuance found by a poll) consumes it past its expiry, and its
// rejection or expiry frees it for a later purge.
func (s *Store) PurgeChallenges(ctx context.Context, t time.Time) (n int, err error) {
	defer s.end("PurgeChallenges", time.Now(), &err)
	k, err := s.exec(ctx, nil, `DELETE FROM challenges WHERE used_at IS NULL AND reserved_by IS NULL AND expires_at < $1`, s.d.Time(t))
	return int(k), err
}

// ChallengeCounts counts a profile's one-time challenges by state.
func (s *Store) ChallengeCounts(ctx context.Context, profileID string, now time.Time) (pending, used, expired int, err error) {
	defer s.end("ChallengeCounts", time.Now(), &err)
	err = s.row(ctx, nil, `SELECT
		count(*) FILTER (WHERE used_at IS NULL AND expires_at > $2),
		count(*) FILTER (WHERE used_at IS NOT NULL),
		count(*) FILTER (WHERE used_at IS NULL AND expires_at <= $2)
		FROM challenges WHERE profile_id = $1`, profileID, s.d.Time(now)).Scan(&pending, &used, &expired)
	return
}

// NextCRLNumber increments (to floor at least) and returns the CA's CRL
// number; the row lock
// makes it monotonic across replicas.
func (s *Store) NextCRLNumber(ctx context.Context, caID string, gen, floor int64) (n int64, err error) {
	defer s.end("NextCRLNumber", time.Now(), &err)
	err = s.row(ctx, nil, `UPDATE cas SET crl_number = CASE WHEN crl_number + 1 > $3 THEN crl_number + 1 ELSE $3 END
		WHERE id = $1 AND revocation_gen = $2 RETURNING crl_number`, caID, gen, floor).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		// The CA is gone, or a revocation moved its generation past gen.
		var now int64
		if gerr := s.row(ctx, nil, `SELECT revocation_gen FROM cas WHERE id = $1`, caID).Scan(&now); gerr == nil {
			return 0, fmt.Errorf("CRL number of %q: the revocation generation moved from %d to %d: %w", caID, gen, now, store.ErrConflict)
		}
	}
	if err != nil {
		return 0, fmt.Errorf("CRL number of %q: %w", caID, err)
	}
	return n, nil
}

// SaveCRL stores a signed CRL.
func (s *Store) SaveCRL(ctx context.Context, c store.CRL) (err error) {
	defer s.end("SaveCRL", time.Now(), &err)
	if _, err := s.exec(ctx, nil, `INSERT INTO crls (ca_id, number, this_update, next_update, der, revocation_gen) VALUES ($1, $2, $3, $4, $5, $6)`,
		c.CAID, c.Number, s.d.Time(c.ThisUpdate), s.d.Time(c.NextUpdate), c.DER, c.Generation); err != nil {
		return fmt.Errorf("save CRL %s/%d: %w", c.CAID, c.Number, err)
	}
	return nil
}

// LatestCRL returns the CA's newest CRL.
func (s *Store) LatestCRL(ctx context.Context, caID string) (c store.CRL, err error) {
	defer s.end("LatestCRL", time.Now(), &err)
	c = store.CRL{CAID: caID}
	err = s.row(ctx, nil, `SELECT number, this_update, next_update, der, revocation_gen FROM crls WHERE ca_id = $1 ORDER BY number DESC LIMIT 1`, caID).
		Scan(&c.Number, s.tm(&c.ThisUpdate), s.tm(&c.NextUpdate), &c.DER, &c.Generation)
	if err != nil {
		return c, fmt.Errorf("latest CRL of %q: %w", caID, err)
	}
	return c, nil
}

// RevocationGeneration returns the CA's revocation generation.
func (s *Store) RevocationGeneration(ctx context.Context, caID string) (n int64, err error) {
	defer s.end("RevocationGeneration", time.Now(), &err)
	err = s.row(ctx, nil, `SELECT revocation_gen FROM cas WHERE id = $1`, caID).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return n, err
}
