// Command docgen writes docs/reference/config.md to standard output:
//
//	go run ./internal/config/cmd/docgen > docs/reference/config.md
//
// Run it from the module root.
package main

import (
	"fmt"
	"os"

	"github.com/scepd/scepd/internal/config/reference"
)

func main() {
	b, err := reference.Markdown(".")
	if err != nil {
		fmt.Fprintln(os.Stderr, "docgen:", err)
		os.Exit(1)
	}
	os.Stdout.Write(b)
}
