package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/scepd/scepd/internal/store"
)

// auditCmd verifies the audit hash chain (naming the first event that was
// edited, inserted or deleted) or exports it as JSON lines.
func auditCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "verify" && args[0] != "export") {
		fmt.Fprintln(stderr, "Usage: scepd audit verify|export [--data DIR | --database URL]")
		return 2
	}
	f := newAdminFlags("audit "+args[0], stderr)
	if _, err := f.parse(args[1:]); err != nil {
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	st, err := openStore(ctx, storeFlags{dataDir: *f.dataDir, database: *f.database, dbMaxConns: 2})
	if err != nil {
		fmt.Fprintln(stderr, "scepd audit:", err)
		return 1
	}
	defer st.Close()
	var v store.ChainVerifier
	enc := json.NewEncoder(stdout)
	n, after := 0, int64(0)
	var lastSeq int64
	for {
		page, err := st.AuditAfter(ctx, after, 1000)
		if err != nil {
			fmt.Fprintln(stderr, "scepd audit:", err)
			return 1
		}
		if len(page) == 0 {
			break
		}
		for _, e := range page {
			if args[0] == "export" {
				enc.Encode(e)
				continue
			}
			if e.Seq != lastSeq+1 && lastSeq != 0 {
				fmt.Fprintf(stdout, "TAMPERED: events %d to %d are missing (deleted)\n", lastSeq+1, e.Seq-1)
				return 1
			}
			if problem := v.Next(e); problem != "" {
				fmt.Fprintf(stdout, "TAMPERED: %s\n", problem)
				return 1
			}
			lastSeq = e.Seq
			n++
		}
		after = page[len(page)-1].Seq
	}
	if args[0] == "verify" {
		fmt.Fprintf(stdout, "audit chain intact: %d events\n", n)
	}
	return 0
}
