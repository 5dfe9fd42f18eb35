package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/scepd/scepd/internal/store"
)

// Sealed keys (store.SealedKey): the sealed_keys table of migration 0011.

const sealedKeyColumns = `id, kdf, iterations, salt, cipher, sealed, created_at`

// PutKey stores a sealed key; ErrConflict if its ID exists.
func (s *Store) PutKey(ctx context.Context, k store.SealedKey) error {
	return s.tx(ctx, "put key", func(tx *sql.Tx) error { return putKey(ctx, tx, k) })
}

func putKey(ctx context.Context, tx *sql.Tx, k store.SealedKey) error {
	if _, err := tx.ExecContext(ctx, `INSERT INTO sealed_keys (`+sealedKeyColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		k.ID, k.KDF, k.Iterations, k.Salt, k.Cipher, k.Sealed, fmtTime(k.Created)); err != nil {
		return fmt.Errorf("key %q: %w", k.ID, mapErr(err))
	}
	return nil
}

// GetKey returns a sealed key.
func (s *Store) GetKey(ctx context.Context, id string) (store.SealedKey, error) {
	k, err := scanSealedKey(s.db.QueryRowContext(ctx, `SELECT `+sealedKeyColumns+` FROM sealed_keys WHERE id = ?`, id))
	if err != nil {
		return k, fmt.Errorf("sqlite: get key %q: %w", id, err)
	}
	return k, nil
}

// ListKeys returns every sealed key, ordered by ID.
func (s *Store) ListKeys(ctx context.Context) ([]store.SealedKey, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+sealedKeyColumns+` FROM sealed_keys ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list keys: %w", mapErr(err))
	}
	defer rows.Close()
	var out []store.SealedKey
	for rows.Next() {
		k, err := scanSealedKey(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list keys: %w", err)
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list keys: %w", mapErr(err))
	}
	return out, nil
}

// DeleteKey removes a sealed key (a missing one is not an error).
func (s *Store) DeleteKey(ctx context.Context, id string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM sealed_keys WHERE id = ?`, id); err != nil {
		return fmt.Errorf("sqlite: delete key %q: %w", id, mapErr(err))
	}
	return nil
}

// MoveKeys stores, re-references and deletes keys in one transaction.
func (s *Store) MoveKeys(ctx context.Context, m store.KeyMove) error {
	return s.tx(ctx, "move keys", func(tx *sql.Tx) error {
		for _, k := range m.Put {
			if err := putKey(ctx, tx, k); err != nil {
				return err
			}
		}
		for from, to := range m.Refs {
			for _, q := range []string{
				`UPDATE cas SET key_ref = ? WHERE key_ref = ?`,
				`UPDATE profiles SET ra_key_ref = ? WHERE ra_key_ref = ?`,
				`UPDATE profiles SET next_ra_key_ref = ? WHERE next_ra_key_ref = ?`,
			} {
				if _, err := tx.ExecContext(ctx, q, to, from); err != nil {
					return mapErr(err)
				}
			}
		}
		for _, id := range m.Delete {
			if _, err := tx.ExecContext(ctx, `DELETE FROM sealed_keys WHERE id = ?`, id); err != nil {
				return mapErr(err)
			}
		}
		return nil
	})
}

func scanSealedKey(r scanner) (store.SealedKey, error) {
	var k store.SealedKey
	var created string
	if err := r.Scan(&k.ID, &k.KDF, &k.Iterations, &k.Salt, &k.Cipher, &k.Sealed, &created); err != nil {
		return k, mapErr(err)
	}
	var err error
	k.Created, err = parseTime(created)
	return k, err
}
