package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/scepd/scepd/internal/store"
)

// Sealed keys (store.SealedKey): the sealed_keys table of migration 0011.

const sealedKeyColumns = `id, kdf, iterations, salt, cipher, sealed, created_at`

const qPutKey = `INSERT INTO sealed_keys (` + sealedKeyColumns + `) VALUES ($1, $2, $3, $4, $5, $6, $7)`

// PutKey stores a sealed key; ErrConflict if its ID exists.
func (s *Store) PutKey(ctx context.Context, k store.SealedKey) error {
	if _, err := s.pool.Exec(ctx, qPutKey, k.ID, k.KDF, k.Iterations, k.Salt, k.Cipher, k.Sealed, k.Created.UTC()); err != nil {
		return fmt.Errorf("postgres: put key %q: %w", k.ID, mapErr(err))
	}
	return nil
}

// GetKey returns a sealed key.
func (s *Store) GetKey(ctx context.Context, id string) (store.SealedKey, error) {
	k, err := scanSealedKey(s.pool.QueryRow(ctx, `SELECT `+sealedKeyColumns+` FROM sealed_keys WHERE id = $1`, id))
	if err != nil {
		return k, fmt.Errorf("postgres: get key %q: %w", id, err)
	}
	return k, nil
}

// ListKeys returns every sealed key, ordered by ID.
func (s *Store) ListKeys(ctx context.Context) ([]store.SealedKey, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+sealedKeyColumns+` FROM sealed_keys ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("postgres: list keys: %w", mapErr(err))
	}
	defer rows.Close()
	var out []store.SealedKey
	for rows.Next() {
		k, err := scanSealedKey(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: list keys: %w", err)
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: list keys: %w", mapErr(err))
	}
	return out, nil
}

// DeleteKey removes a sealed key (a missing one is not an error).
func (s *Store) DeleteKey(ctx context.Context, id string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM sealed_keys WHERE id = $1`, id); err != nil {
		return fmt.Errorf("postgres: delete key %q: %w", id, mapErr(err))
	}
	return nil
}

// MoveKeys stores, re-references and deletes keys in one transaction.
func (s *Store) MoveKeys(ctx context.Context, m store.KeyMove) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		for _, k := range m.Put {
			if _, err := tx.Exec(ctx, qPutKey, k.ID, k.KDF, k.Iterations, k.Salt, k.Cipher, k.Sealed, k.Created.UTC()); err != nil {
				return fmt.Errorf("key %q: %w", k.ID, err)
			}
		}
		for from, to := range m.Refs {
			for _, q := range []string{
				`UPDATE cas SET key_ref = $1 WHERE key_ref = $2`,
				`UPDATE profiles SET ra_key_ref = $1 WHERE ra_key_ref = $2`,
				`UPDATE profiles SET next_ra_key_ref = $1 WHERE next_ra_key_ref = $2`,
			} {
				if _, err := tx.Exec(ctx, q, to, from); err != nil {
					return err
				}
			}
		}
		if len(m.Delete) > 0 {
			if _, err := tx.Exec(ctx, `DELETE FROM sealed_keys WHERE id = ANY($1)`, m.Delete); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres: move keys: %w", mapErr(err))
	}
	return nil
}

func scanSealedKey(r pgx.Row) (store.SealedKey, error) {
	var k store.SealedKey
	if err := r.Scan(&k.ID, &k.KDF, &k.Iterations, &k.Salt, &k.Cipher, &k.Sealed, &k.Created); err != nil {
		return k, mapErr(err)
	}
	k.Created = k.Created.UTC()
	return k, nil
}
