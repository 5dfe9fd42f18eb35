package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
)

// Stmt is one statement of a batch (see Store.batch).
type Stmt struct {
	Query string
	Args  []any
	// Row, when set, reads the statement's one row: its Scan returns
	// sql.ErrNoRows when there is none. Row wraps its own errors.
	Row func(scanner) error
	// Done, when set, is given the number of rows the statement changed,
	// and returns the store's error when that is not what it must be.
	Done func(n int64) error
	// What names the statement in its driver error: "insert certificate 1A".
	What string
}

// Exec finishes a statement without Row, given the driver's answer: the
// rows it changed, or its error.
func (st Stmt) Exec(n int64, err error) error {
	if err != nil {
		return fmt.Errorf("%s: %w", st.What, err)
	}
	if st.Done != nil {
		return st.Done(n)
	}
	return nil
}

// one is a Stmt.Done that wants exactly one row changed, else err.
func one(err error) func(int64) error {
	return func(n int64) error {
		if n != 1 {
			return err
		}
		return nil
	}
}

// txConn is the connection a transaction of batchTx runs on, found in the
// context its function is given.
type txConn struct {
	tx   *sql.Tx
	conn *sql.Conn
}

type txConnKey struct{}

// batchTx is tx for a dialect that batches: the transaction runs on a
// connection of its own, which fn's statements reach through its context
// (database/sql has no way from a *sql.Tx to its driver connection).
func (s *Store) batchTx(ctx context.Context, fn func(context.Context, *sql.Tx) error) error {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return runTx(ctx, conn, func(ctx context.Context, tx *sql.Tx) error {
		return fn(context.WithValue(ctx, txConnKey{}, txConn{tx: tx, conn: conn}), tx)
	})
}

// batch runs stmts in tx, in order, stopping at the first error. Where the
// dialect batches (Dialect.Batch) and tx is batchTx's, they go to the
// database in one round trip; elsewhere one at a time. Either way a
// statement sees what the ones before it wrote, and (PostgreSQL, READ
// COMMITTED) reads with a snapshot taken when it starts, after the ones
// before it finished: a lock taken by one holds for the reads after it.
// With one round trip the statements after a failed one may have run
// (those after an error in the database have not): the caller rolls back.
func (s *Store) batch(ctx context.Context, tx *sql.Tx, stmts ...Stmt) error {
	if tc, ok := ctx.Value(txConnKey{}).(txConn); ok && tc.tx == tx && s.d.Batch != nil && len(stmts) > 1 {
		return s.d.Batch(ctx, tc.conn, stmts)
	}
	for _, st := range stmts {
		var err error
		if st.Row != nil {
			err = st.Row(s.row(ctx, tx, st.Query, st.Args...))
		} else {
			err = st.Exec(s.exec(ctx, tx, st.Query, st.Args...))
		}
		if err != nil {
			return err
		}
	}
	return nil
}
