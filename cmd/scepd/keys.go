package main

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/scepd/scepd/internal/audit"
	"github.com/scepd/scepd/internal/keys"
	"github.com/scepd/scepd/internal/store"
)

const keysUsage = "Usage: scepd keys migrate --to database|files [--data DIR] [--database URL]  (needs SCEPD_KEY_PASSPHRASE or SCEPD_KEY_PASSPHRASE_FILE)"

// keysCmd runs `scepd keys migrate --to database|files`: it moves every
// key scepd created (CA and RA keys, the audit key) between files in the
// data directory and the database, re-encrypting them, and rewrites their
// references in one transaction. Keys in a PKCS#11 token and key files
// outside the data directory stay where they are.
func keysCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "migrate" {
		fmt.Fprintln(stderr, keysUsage)
		return 2
	}
	f := newAdminFlags("keys migrate", stderr)
	to := f.fs.String("to", "", "where the keys go: database or files")
	if _, err := f.parse(args[1:]); err != nil {
		return 2
	}
	if *to != "database" && *to != "files" {
		fmt.Fprintln(stderr, keysUsage)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	sf, err := f.store()
	if err != nil {
		fmt.Fprintln(stderr, "scepd keys migrate:", err)
		return 1
	}
	moved, err := migrateKeys(ctx, sf, *to == "database", stdout)
	var left *leftBehind
	if err != nil && !errors.As(err, &left) {
		fmt.Fprintln(stderr, "scepd keys migrate:", err)
		return 1
	}
	if len(moved) == 0 {
		return 0
	}
	// The move is in the audit log, keyed with the audit key where it is now.
	st, err := openStore(ctx, sf)
	if err == nil {
		err = st.AppendAudit(ctx, store.AuditEvent{Time: time.Now(), Actor: "cli", Action: "keys.migrate", Object: *to, Outcome: "success",
			Details: map[string]string{"moved": strings.Join(moved, ", ")}})
		st.Close()
	}
	if err != nil {
		fmt.Fprintln(stderr, "scepd keys migrate: the keys moved, but the audit event was not written:", err)
		return 1
	}
	if left != nil {
		fmt.Fprintln(stderr, "scepd keys migrate:", left)
		return 1
	}
	return 0
}

// migrateKeys moves the keys; see keysCmd. Nothing changes unless every
// key to move could be read: files are written (to files) before the
// references change, and removed (to the database) only after.
func migrateKeys(ctx context.Context, f storeFlags, toDB bool, out io.Writer) ([]string, error) {
	pass, err := secretFromEnv("SCEPD_KEY_PASSPHRASE")
	if err != nil {
		return nil, err
	}
	if pass == "" {
		return nil, errors.New("moving keys needs the passphrase that encrypts them: set SCEPD_KEY_PASSPHRASE or SCEPD_KEY_PASSPHRASE_FILE")
	}
	st, err := openRaw(ctx, f)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	ks := keys.Source{Dir: f.dataDir, Passphrase: []byte(pass), DB: st}
	refs, err := keyRefs(ctx, st)
	if err != nil {
		return nil, err
	}
	var move store.KeyMove
	move.Refs = map[string]string{}
	var moved []string    // lines to print
	var obsolete []string // files to remove after the move (to the database)
	var written []string  // files to remove if the move fails (to files)
	defer func() {
		for _, p := range written {
			os.Remove(p)
		}
	}()
	now := time.Now()
	for _, ref := range refs {
		if toDB {
			path, ok := scepdKeyFile(ks, ref)
			if !ok {
				continue
			}
			k, err := ks.Load(ref)
			if err != nil {
				return nil, err
			}
			id := strings.TrimSuffix(strings.TrimPrefix(ref, "file:"), ".key")
			sealed, err := keys.Seal(id, k, ks.Passphrase, now)
			if err != nil {
				return nil, err
			}
			move.Put = append(move.Put, sealed)
			move.Refs[ref] = keys.DBRef(id)
			obsolete = append(obsolete, path)
			moved = append(moved, ref+" -> "+keys.DBRef(id))
			continue
		}
		id, ok := keys.ParseDBRef(ref)
		if !ok {
			continue
		}
		k, err := ks.Load(ref)
		if err != nil {
			return nil, err
		}
		name := id + ".key"
		if err := writeNewKeyFile(ks, name, k, &written); err != nil {
			return nil, err
		}
		move.Refs[ref] = "file:" + name
		move.Delete = append(move.Delete, id)
		moved = append(moved, ref+" -> file:"+name)
	}
	// The audit key: only the default one (SCEPD_AUDIT_KEY_FILE names a
	// file the operator placed, and then wins over the database).
	if os.Getenv("SCEPD_AUDIT_KEY_FILE") != "" {
		fmt.Fprintln(out, "audit key: SCEPD_AUDIT_KEY_FILE names it; left where it is")
	} else {
		line, err := moveAuditKey(ctx, st, ks, toDB, now, &move, &obsolete, &written)
		if err != nil {
			return nil, err
		}
		if line != "" {
			moved = append(moved, line)
		}
	}
	if len(moved) == 0 {
		fmt.Fprintf(out, "nothing to move: every key scepd created is in %s already\n", map[bool]string{true: "the database", false: "files"}[toDB])
		return nil, nil
	}
	if err := st.MoveKeys(ctx, move); err != nil {
		return nil, fmt.Errorf("nothing was changed: %w", err)
	}
	written = nil
	var left []string
	for _, p := range obsolete {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			fmt.Fprintf(out, "warning: %s is in the database now, but its file could not be removed: %v\n", p, err)
			left = append(left, p)
		}
	}
	for _, l := range moved {
		fmt.Fprintln(out, "moved", l)
	}
	fmt.Fprintf(out, "%d keys moved\n", len(moved))
	if len(left) > 0 {
		// The move stands (and is audited); the copies on disk are the
		// operator's to remove: a later run no longer sees them.
		return moved, &leftBehind{files: left}
	}
	return moved, nil
}

// leftBehind: key files moved into the database whose old copies could
// not be removed.
type leftBehind struct{ files []string }

func (e *leftBehind) Error() string {
	return fmt.Sprintf("%d key files moved into the database are still on disk, unencrypted as before: remove them (%s)", len(e.files), strings.Join(e.files, ", "))
}

// keyRefs returns the distinct key references of every CA and profile.
func keyRefs(ctx context.Context, st store.Store) ([]string, error) {
	cas, err := st.ListCAs(ctx)
	if err != nil {
		return nil, err
	}
	ps, err := st.ListProfiles(ctx)
	if err != nil {
		return nil, err
	}
	var refs []string
	for _, c := range cas {
		refs = append(refs, c.KeyRef)
	}
	for _, p := range ps {
		refs = append(refs, p.RAKeyRef, p.NextRAKeyRef)
	}
	slices.Sort(refs)
	refs = slices.Compact(refs)
	return slices.DeleteFunc(refs, func(r string) bool { return r == "" }), nil
}

// scepdKeyFile returns the file of a "file:" reference scepd wrote: one
// relative to the data directory (keys an operator named by an absolute
// path are theirs to place).
func scepdKeyFile(ks keys.Source, ref string) (string, bool) {
	rel, ok := strings.CutPrefix(ref, "file:")
	if !ok || filepath.IsAbs(rel) || !filepath.IsLocal(rel) {
		return "", false
	}
	p, err := ks.Path(ref)
	return p, err == nil
}

// writeNewKeyFile writes k as the key file name, encrypted with the
// passphrase, unless a file holding another key is there.
func writeNewKeyFile(ks keys.Source, name string, k crypto.Signer, written *[]string) error {
	path := filepath.Join(ks.Dir, name)
	if old, err := ks.Load("file:" + name); err == nil {
		if eq, ok := old.(interface{ Equal(crypto.PrivateKey) bool }); !ok || !eq.Equal(k) {
			return fmt.Errorf("%s exists and holds another key; move it away first (nothing was changed)", path)
		}
	} else if _, serr := os.Stat(path); serr == nil {
		return fmt.Errorf("%s exists and cannot be read (%v); move it away first (nothing was changed)", path, err)
	}
	if _, err := ks.SaveFile(name, k); err != nil {
		return err
	}
	*written = append(*written, path)
	return nil
}

// moveAuditKey adds the default audit key to the move: the file to the
// database when the database has none, the sealed key to the file.
func moveAuditKey(ctx context.Context, st store.Store, ks keys.Source, toDB bool, now time.Time,
	move *store.KeyMove, obsolete, written *[]string) (string, error) {
	path := filepath.Join(ks.Dir, audit.DefaultKeyFile)
	_, dbErr := st.GetKey(ctx, audit.SealedKeyID)
	if dbErr != nil && !errors.Is(dbErr, store.ErrNotFound) {
		return "", dbErr
	}
	inDB := dbErr == nil
	if toDB {
		if inDB {
			return "", nil // the sealed key is the one in use
		}
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return "", nil
		}
		k, err := ks.Load("file:" + audit.DefaultKeyFile)
		if err != nil {
			return "", fmt.Errorf("audit key: %w", err)
		}
		sealed, err := keys.Seal(audit.SealedKeyID, k, ks.Passphrase, now)
		if err != nil {
			return "", err
		}
		move.Put = append(move.Put, sealed)
		*obsolete = append(*obsolete, path)
		return "audit key " + path + " -> " + keys.DBRef(audit.SealedKeyID), nil
	}
	if !inDB {
		return "", nil
	}
	k, err := ks.Load(keys.DBRef(audit.SealedKeyID))
	if err != nil {
		return "", fmt.Errorf("audit key: %w", err)
	}
	if err := writeNewKeyFile(ks, audit.DefaultKeyFile, k, written); err != nil {
		return "", err
	}
	move.Delete = append(move.Delete, audit.SealedKeyID)
	return "audit key " + keys.DBRef(audit.SealedKeyID) + " -> " + path, nil
}
