package main

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/scepd/scepd/internal/audit"
)

const auditUsage = `Usage:
  scepd audit verify [--checkpoint FILE] [--data DIR | --database URL]
  scepd audit checkpoint [--out FILE] [--data DIR | --database URL]
  scepd audit export [--data DIR | --database URL]
  scepd audit pubkey [--data DIR]                   the audit key's public key (PEM)
  scepd audit check-checkpoint --public-key PEM FILE
                                                    check a checkpoint's signature with only the public key`

// auditCmd verifies the audit chain (naming the first event that was
// edited, inserted or deleted, and with a checkpoint the events cut from
// the end), signs a checkpoint, or exports the log as JSON lines.
func auditCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || !slices.Contains([]string{"verify", "export", "checkpoint", "pubkey", "check-checkpoint"}, args[0]) {
		fmt.Fprintln(stderr, auditUsage)
		return 2
	}
	f := newAdminFlags("audit "+args[0], stderr)
	var cpFile, outFile, pubFile *string
	switch args[0] {
	case "verify":
		cpFile = f.fs.String("checkpoint", "", "a checkpoint file (from scepd audit checkpoint, or an audit.checkpoint event a sink received): also report events changed or cut from the end up to it")
	case "checkpoint":
		outFile = f.fs.String("out", "", "write the checkpoint to this file (default: stdout); keep a copy off this host")
	case "check-checkpoint":
		pubFile = f.fs.String("public-key", "", "the audit key's public key (PEM, from scepd audit pubkey)")
	}
	pos, err := f.parse(args[1:])
	if err != nil {
		return 2
	}
	if args[0] == "check-checkpoint" {
		if len(pos) != 1 || *pubFile == "" {
			fmt.Fprintln(stderr, auditUsage)
			return 2
		}
		return checkCheckpoint(pos[0], *pubFile, stdout, stderr)
	}
	if args[0] == "pubkey" {
		return printPublicKey(*f.dataDir, stdout, stderr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	sf, err := f.store()
	if err != nil {
		fmt.Fprintln(stderr, "scepd audit:", err)
		return 1
	}
	sf.readAudit = args[0] != "checkpoint"
	st, key, err := openAudited(ctx, sf)
	if err != nil {
		fmt.Fprintln(stderr, "scepd audit:", err)
		return 1
	}
	defer st.Close()
	switch args[0] {
	case "export":
		enc := json.NewEncoder(stdout)
		for after := int64(0); ; {
			page, err := st.AuditAfter(ctx, after, 1000)
			if err != nil {
				fmt.Fprintln(stderr, "scepd audit:", err)
				return 1
			}
			if len(page) == 0 {
				return 0
			}
			for _, e := range page {
				enc.Encode(e)
			}
			after = page[len(page)-1].Seq
		}
	case "checkpoint":
		c := &audit.Checkpointer{Log: st, Key: key, Actor: "cli", Now: time.Now}
		cp, r, err := c.Checkpoint(ctx, false)
		if err != nil {
			fmt.Fprintln(stderr, "scepd audit:", err)
			return 1
		}
		if r.Problem != "" {
			fmt.Fprintf(stdout, "TAMPERED at event %d: %s\nno checkpoint signed\n", r.BadSeq, r.Problem)
			return 1
		}
		b, _ := json.MarshalIndent(cp, "", "  ")
		b = append(b, '\n')
		if *outFile == "" {
			stdout.Write(b)
			return 0
		}
		if err := os.WriteFile(*outFile, b, 0o644); err != nil {
			fmt.Fprintln(stderr, "scepd audit:", err)
			return 1
		}
		fmt.Fprintf(stdout, "checkpoint of %d audit events written to %s\n", cp.Seq, *outFile)
		return 0
	}
	var cp *audit.Checkpoint
	if *cpFile != "" {
		b, err := os.ReadFile(*cpFile)
		if err != nil {
			fmt.Fprintln(stderr, "scepd audit:", err)
			return 1
		}
		c, err := audit.ParseCheckpoint(b)
		if err != nil {
			fmt.Fprintf(stderr, "scepd audit: %s: %v\n", *cpFile, err)
			return 1
		}
		if key == nil {
			fmt.Fprintln(stderr, "scepd audit: no audit key to check the checkpoint with (set SCEPD_AUDIT_KEY_FILE)")
			return 1
		}
		if err := c.Verify(key.Public()); err != nil {
			fmt.Fprintf(stdout, "CHECKPOINT REFUSED: %s: %v\n", *cpFile, err)
			return 1
		}
		cp = &c
	}
	v := &audit.Verifier{Log: st}
	if key != nil {
		v.Key = key.Chain()
	}
	r, err := v.Run(ctx, cp)
	if err != nil {
		fmt.Fprintln(stderr, "scepd audit:", err)
		return 1
	}
	if r.NoKey {
		fmt.Fprintf(stderr, "scepd audit: the log is keyed from event %d on and there is no audit key to check it (%s in the data directory, or the file SCEPD_AUDIT_KEY_FILE names)\n",
			r.BadSeq, audit.DefaultKeyFile)
		return 1
	}
	if r.Problem != "" {
		fmt.Fprintf(stdout, "TAMPERED at event %d: %s\n", r.BadSeq, r.Problem)
		return 1
	}
	switch {
	case key == nil:
		fmt.Fprintf(stdout, "audit chain intact: %d events, none keyed (no audit key: anyone with database access could have rewritten them)\n", r.Events)
	case r.Unkeyed > 0:
		fmt.Fprintf(stdout, "audit chain intact: %d events; events 1 to %d predate the keyed chain (their hashes are unkeyed: they are protected only since the keyed chain started)\n", r.Events, r.UnkeyedLast)
	default:
		fmt.Fprintf(stdout, "audit chain intact: %d events, keyed with audit key %s\n", r.Events, key.ID())
	}
	if cp != nil {
		fmt.Fprintf(stdout, "checkpoint of %s: all %d events it covers are present and unchanged\n", cp.Time.Format(time.RFC3339), cp.Seq)
	}
	return 0
}

// printPublicKey prints the audit key's public key as PEM, for whoever
// keeps or checks checkpoints.
func printPublicKey(dataDir string, stdout, stderr io.Writer) int {
	pass, err := secretFromEnv("SCEPD_KEY_PASSPHRASE")
	if err != nil {
		fmt.Fprintln(stderr, "scepd audit:", err)
		return 1
	}
	key, err := audit.LoadKey(dataDir, os.Getenv("SCEPD_AUDIT_KEY_FILE"), []byte(pass))
	if err != nil {
		fmt.Fprintln(stderr, "scepd audit:", err)
		return 1
	}
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		fmt.Fprintln(stderr, "scepd audit:", err)
		return 1
	}
	pem.Encode(stdout, &pem.Block{Type: "PUBLIC KEY", Bytes: der})
	return 0
}

// checkCheckpoint checks a checkpoint's signature with a public key
// alone: no database, no audit key.
func checkCheckpoint(file, pubFile string, stdout, stderr io.Writer) int {
	b, err := os.ReadFile(pubFile)
	if err != nil {
		fmt.Fprintln(stderr, "scepd audit:", err)
		return 1
	}
	block, _ := pem.Decode(b)
	if block == nil {
		fmt.Fprintf(stderr, "scepd audit: %s: no PEM block\n", pubFile)
		return 1
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	pub, ok := k.(ed25519.PublicKey)
	if err != nil || !ok {
		fmt.Fprintf(stderr, "scepd audit: %s: not an Ed25519 public key (%v)\n", pubFile, err)
		return 1
	}
	b, err = os.ReadFile(file)
	if err != nil {
		fmt.Fprintln(stderr, "scepd audit:", err)
		return 1
	}
	cp, err := audit.ParseCheckpoint(b)
	if err != nil {
		fmt.Fprintf(stderr, "scepd audit: %s: %v\n", file, err)
		return 1
	}
	if err := cp.Verify(pub); err != nil {
		fmt.Fprintf(stdout, "CHECKPOINT REFUSED: %s: %v\n", file, err)
		return 1
	}
	fmt.Fprintf(stdout, "checkpoint signature valid: %d events, newest hash %s, at %s, audit key %s\n", cp.Seq, cp.Head, cp.Time.Format(time.RFC3339), audit.KeyID(pub))
	return 0
}
