package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/scepd/scepd/internal/bench"
)

func benchCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	u := fs.String("url", "", "SCEP URL of any SCEP server, e.g. http://127.0.0.1:8080/scep/default/pkiclient.exe")
	challenge := fs.String("challenge", os.Getenv("SCEPD_CHALLENGE"), "challenge password (env SCEPD_CHALLENGE)")
	n := fs.Int("n", 1000, "enrollments")
	c := fs.Int("c", 8, "concurrent clients")
	cipher := fs.String("cipher", "aes256", "content cipher: aes128, aes256, 3des or des")
	digest := fs.String("digest", "sha256", "digest: sha1, sha256, sha384 or sha512")
	get := fs.Bool("get", false, "PKIOperation by GET")
	keys := fs.Int("keys", 8, "RSA-2048 client keys to rotate through")
	pid := fs.Int("pid", 0, "the server's PID on this machine: report its CPU per enrollment and peak RSS from /proc")
	fs.IntVar(pid, "server-pid", 0, "the same as -pid")
	rate := fs.String("rate", "", "send at this arrival rate instead of with -c clients: N/s, N/m or N/h, e.g. 10000/m (a burst: a fleet enrolling at once)")
	total := fs.Int("total", 0, "with --rate: how many requests in all (default -n)")
	output := fs.String("o", "text", "output: text or json")
	duration := fs.Duration("duration", 0, "keep sending for this long, cycling through the -n prepared requests (a flood); 0: send each once")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *u == "" {
		fmt.Fprintln(stderr, "scepd bench: -url is required")
		return 2
	}
	ciph, ok := ciphers[*cipher]
	dig, ok2 := digests[*digest]
	if !ok || !ok2 {
		fmt.Fprintln(stderr, "scepd bench: unknown -cipher or -digest")
		return 2
	}
	var perSecond float64
	if *rate != "" {
		var err error
		if perSecond, err = bench.ParseRate(*rate); err != nil {
			fmt.Fprintln(stderr, "scepd bench:", err)
			return 2
		}
		if *total > 0 {
			*n = *total
		}
	}
	o := bench.Options{Rate: perSecond, URL: *u, Challenge: *challenge, N: *n, Concurrency: *c, Cipher: ciph, Digest: dig, GET: *get, Keys: *keys, PID: *pid, Duration: *duration}
	tty := false
	if fi, err := os.Stderr.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
		tty = true
	}
	o.Progress = func(done, total int, elapsed time.Duration) {
		rate := float64(done) / elapsed.Seconds()
		if tty {
			width := 30
			filled := width * done / total
			fmt.Fprintf(stderr, "\r[%s%s] %d/%d  %.0f/s ", strings.Repeat("=", filled), strings.Repeat(" ", width-filled), done, total, rate)
			if done == total {
				fmt.Fprintln(stderr)
			}
			return
		}
		fmt.Fprintf(stderr, "%d/%d enrollments, %.0f/s\n", done, total, rate)
	}
	fmt.Fprintf(stderr, "preparing %d requests (client crypto is not timed)...\n", *n)
	res, err := bench.Run(context.Background(), o)
	if err != nil {
		fmt.Fprintln(stderr, "scepd bench:", err)
		return 1
	}
	if *output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(res)
	} else {
		fmt.Fprintf(stdout, "URL              %s\n", res.URL)
		if res.Rate > 0 {
			fmt.Fprintf(stdout, "enrollments      %d ok, %d failed (arrivals at %.1f/s, at most %d in flight)\n", res.Succeeded, res.Failed, res.Rate, res.MaxInFlight)
		} else {
			fmt.Fprintf(stdout, "enrollments      %d ok, %d failed (%d clients)\n", res.Succeeded, res.Failed, res.Concurrency)
		}
		fmt.Fprintf(stdout, "throughput       %.1f enrollments/s over %.2f s\n", res.PerSecond, res.Seconds)
		fmt.Fprintf(stdout, "latency          p50 %.1f ms  p90 %.1f ms  p99 %.1f ms\n", res.P50ms, res.P90ms, res.P99ms)
		if res.ServerCPUms > 0 {
			fmt.Fprintf(stdout, "server CPU       %.2f ms per enrollment\n", res.ServerCPUms)
			fmt.Fprintf(stdout, "server peak RSS  %.1f MiB\n", float64(res.ServerPeakRSS)/(1<<20))
		}
		if res.Sent > 0 {
			fmt.Fprintf(stdout, "flood            %d requests sent, answers by status %v\n", res.Sent, res.Answers)
		}
		reasons := make([]string, 0, len(res.Failures))
		for r := range res.Failures {
			reasons = append(reasons, r)
		}
		sort.Strings(reasons)
		for _, r := range reasons {
			fmt.Fprintf(stdout, "failure          %-32s %d\n", r, res.Failures[r])
		}
	}
	if res.Failed > 0 && *duration == 0 {
		return 1
	}
	return 0
}
