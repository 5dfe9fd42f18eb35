package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/scepd/scepd/internal/store"
)

// Sealed keys (store.SealedKey): the sealed_keys table of migration 0011.

const sealedKeyColumns = `id, kdf, iterations, salt, cipher, sealed, created_at`

const qPutKey = `INSERT INTO sealed_keys (` + sealedKeyColumns + `) VALUES ($1, $2, $3, $4, $5, $6, $7)`

// PutKey stores a sealed key; ErrConflict if its ID exists.
func (s *Store) PutKey(ctx context.Context, k store.SealedKey) (err error) {
	defer s.end("PutKey", time.Now(), &err)
	return s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error { return s.putKey(ctx, tx, k) })
}

func (s *Store) putKey(ctx context.Context, tx *sql.Tx, k store.SealedKey) error {
	if _, err := s.exec(ctx, tx, qPutKey, k.ID, k.KDF, k.Iterations, k.Salt, k.Cipher, k.Sealed, s.d.Time(k.Created)); err != nil {
		return fmt.Errorf("key %q: %w", k.ID, err)
	}
	return nil
}

// GetKey returns a sealed key.
func (s *Store) GetKey(ctx context.Context, id string) (k store.SealedKey, err error) {
	defer s.end("GetKey", time.Now(), &err)
	return s.scanSealedKey(s.row(ctx, nil, `SELECT `+sealedKeyColumns+` FROM sealed_keys WHERE id = $1`, id))
}

// ListKeys returns every sealed key, ordered by ID.
func (s *Store) ListKeys(ctx context.Context) (out []store.SealedKey, err error) {
	defer s.end("ListKeys", time.Now(), &err)
	return list(ctx, s, `SELECT `+sealedKeyColumns+` FROM sealed_keys ORDER BY id`, s.scanSealedKey)
}

// DeleteKey removes a sealed key (a missing one is not an error).
func (s *Store) DeleteKey(ctx context.Context, id string) (err error) {
	defer s.end("DeleteKey", time.Now(), &err)
	_, err = s.exec(ctx, nil, `DELETE FROM sealed_keys WHERE id = $1`, id)
	return err
}

// MoveKeys stores, re-references and deletes keys in one transaction.
func (s *Store) MoveKeys(ctx context.Context, m store.KeyMove) (err error) {
	defer s.end("MoveKeys", time.Now(), &err)
	return s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		for _, k := range m.Put {
			if err := s.putKey(ctx, tx, k); err != nil {
				return err
			}
		}
		for from, to := range m.Refs {
			for _, q := range []string{
				`UPDATE cas SET key_ref = $1 WHERE key_ref = $2`,
				`UPDATE profiles SET ra_key_ref = $1 WHERE ra_key_ref = $2`,
				`UPDATE profiles SET next_ra_key_ref = $1 WHERE next_ra_key_ref = $2`,
			} {
				if _, err := s.exec(ctx, tx, q, to, from); err != nil {
					return err
				}
			}
		}
		for _, id := range m.Delete {
			if _, err := s.exec(ctx, tx, `DELETE FROM sealed_keys WHERE id = $1`, id); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *Store) scanSealedKey(r scanner) (store.SealedKey, error) {
	var k store.SealedKey
	err := r.Scan(&k.ID, &k.KDF, &k.Iterations, &k.Salt, &k.Cipher, &k.Sealed, s.tm(&k.Created))
	return k, err
}
