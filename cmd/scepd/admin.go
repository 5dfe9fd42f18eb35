package main

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/scepd/scepd/internal/admin"
	"github.com/scepd/scepd/internal/ca"
	"github.com/scepd/scepd/internal/config"
	"github.com/scepd/scepd/internal/enroll"
	"github.com/scepd/scepd/internal/outbound"
	"github.com/scepd/scepd/internal/revocation"
	"github.com/scepd/scepd/internal/server"
	"github.com/scepd/scepd/internal/store"
)

// adminFlags are shared by the operator commands: where to act (a running
// server's API, or the data directory / database directly) and how to print.
type adminFlags struct {
	fs       *flag.FlagSet
	server   *string
	insecure *bool
	token    *string
	dataDir  *string
	database *string
	output   *string
}

func newAdminFlags(name string, stderr io.Writer) *adminFlags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return &adminFlags{
		fs:       fs,
		server:   fs.String("server", os.Getenv("SCEPD_SERVER"), "act through a running server's API at this base URL (env SCEPD_SERVER); default: on the data directory/database directly"),
		insecure: fs.Bool("insecure-http", false, "allow an http:// --server on another host than this one: the token, and what the command sends (a CA's private key with ca import), then cross the network unencrypted"),
		token:    fs.String("token", "", "API token for --server (default: env SCEPD_TOKEN; a flag value shows in ps)"),
		dataDir:  fs.String("data", envDefault("SCEPD_DATA", "./scepd-data"), "data directory (env SCEPD_DATA)"),
		database: fs.String("database", "", "postgres://... (env SCEPD_DATABASE, or the file SCEPD_DATABASE_FILE names; a password here shows in ps: use the file, or PGPASSFILE); empty: SQLite in the data directory"),
		output:   fs.String("o", "text", "output: text or json (list and show commands: also csv)"),
	}
}

// api opens the API the flags name. close releases a local store.
func (f *adminFlags) api(ctx context.Context) (api admin.API, closeFn func(), err error) {
	if *f.server != "" {
		tok := *f.token
		if tok == "" {
			tok = os.Getenv("SCEPD_TOKEN")
		}
		if tok == "" {
			return nil, nil, errors.New("--server needs a token: set SCEPD_TOKEN (or --token)")
		}
		if err := checkServerURL(*f.server, *f.insecure); err != nil {
			return nil, nil, err
		}
		return &admin.Client{BaseURL: *f.server, Token: tok}, func() {}, nil
	}
	sf, err := f.store()
	if err != nil {
		return nil, nil, err
	}
	st, err := openStore(ctx, sf)
	if err != nil {
		return nil, nil, err
	}
	ks, err := keySource(*f.dataDir, os.Getenv("SCEPD_CRYPTO"))
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	ks = withStoreKeys(ks, st, sf)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	svc := &admin.Service{Store: st, Keys: ks, Now: time.Now, Log: log}
	// Approvals and revocations need the CAs' keys: load what a server
	// would serve. A delegated challenge's secret is not needed for them;
	// other errors leave those operations unavailable (and named), not the
	// rest.
	serving, err := server.Load(ctx, st, ks, server.Overrides{PublicURL: os.Getenv("SCEPD_PUBLIC_URL"), DeferMissingSecrets: true})
	if err != nil {
		svc.Unavailable = err
	} else {
		byID := map[string]*enroll.Profile{}
		for _, p := range serving.Profiles {
			byID[p.ID()] = p.Enroll()
		}
		svc.Profile = func(id string) *enroll.Profile { return byID[id] }
		svc.Enroll = enroll.New(st, time.Now, log)
		svc.Revocation = &revocation.Service{Store: st, CAs: func() map[string]*ca.CA { return serving.CAs }, Now: time.Now, Log: log}
	}
	return svc.As(admin.LocalAdmin), func() { ks.Token.Close(); st.Close() }, nil
}

// checkServerURL refuses an http:// --server on another host than this
// one unless insecure: the token (and a CA's private key, for ca import)
// would cross the network in clear.
func checkServerURL(server string, insecure bool) error {
	u, err := url.Parse(server)
	if err != nil {
		return fmt.Errorf("--server: %w", err)
	}
	if u.Scheme != "http" || insecure {
		return nil
	}
	if outbound.IsLoopback(u.Hostname()) {
		return nil
	}
	return fmt.Errorf("--server %s: plain HTTP to another host would send the API token (and what the command sends, such as a CA's private key) unencrypted: use https://, or --insecure-http to send them anyway", server)
}

// store is where the flags say the store is: the data directory, and the
// database --database, SCEPD_DATABASE or SCEPD_DATABASE_FILE names.
func (f *adminFlags) store() (storeFlags, error) {
	db, err := databaseURL(f.fs, "")
	return storeFlags{dataDir: *f.dataDir, database: db, dbMaxConns: 2}, err
}

func (f *adminFlags) print(w io.Writer, v any, text func(w *tabwriter.Writer)) error {
	if *f.output == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	text(tw)
	return tw.Flush()
}

type command struct {
	usage string
	run   func(ctx context.Context, f *adminFlags, args []string, stdout io.Writer) error
}

// runAdmin dispatches "scepd GROUP VERB [flags] [args]".
func runAdmin(group string, cmds map[string]command, args []string, stdout, stderr io.Writer) int {
	usage := func() {
		fmt.Fprintf(stderr, "Usage:\n")
		for verb, c := range cmds {
			fmt.Fprintf(stderr, "  scepd %s %s %s\n", group, verb, c.usage)
		}
		fmt.Fprintf(stderr, "Common flags: --server URL (with SCEPD_TOKEN) | --data DIR --database URL, -o text|json|csv (list, show)\n")
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage()
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "scepd %s: unknown command %q\n", group, args[0])
		usage()
		return 2
	}
	f := newAdminFlags(group+" "+args[0], stderr)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := c.run(ctx, f, args[1:], stdout); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "scepd %s %s: %v\n", group, args[0], err)
		return 1
	}
	return 0
}

// parse parses flags, accepting positional arguments before or after them.
func (f *adminFlags) parse(args []string) ([]string, error) {
	var pos []string
	for {
		if err := f.fs.Parse(args); err != nil {
			return nil, err
		}
		args = f.fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func withAPI(ctx context.Context, f *adminFlags, fn func(api admin.API) error) error {
	api, closeFn, err := f.api(ctx)
	if err != nil {
		return err
	}
	defer closeFn()
	return fn(api)
}

func caCmd(args []string, stdout, stderr io.Writer) int {
	return runAdmin("ca", map[string]command{
		"list": {"", func(ctx context.Context, f *adminFlags, args []string, w io.Writer) error {
			if _, err := f.parse(args); err != nil {
				return err
			}
			return withAPI(ctx, f, func(api admin.API) error {
				cas, err := api.ListCAs(ctx)
				if err != nil {
					return err
				}
				return printList(w, *f.output, cas, []field[admin.CAView]{
					{name: "id", value: func(c admin.CAView) string { return c.ID }},
					{name: "subject", value: func(c admin.CAView) string { return c.Subject }},
					{name: "key", value: func(c admin.CAView) string { return c.KeyType }},
					{name: "not after", value: func(c admin.CAView) string { return c.NotAfter.Format("2006-01-02") }},
					{name: "root", value: func(c admin.CAView) string { return fmt.Sprint(c.Root) }},
				}, nil)
			})
		}},
		"show": {"ID", func(ctx context.Context, f *adminFlags, args []string, w io.Writer) error {
			pos, err := f.parse(args)
			if err != nil || len(pos) != 1 {
				return errOr(err, "want one CA id")
			}
			return withAPI(ctx, f, func(api admin.API) error {
				c, err := api.GetCA(ctx, pos[0])
				if err != nil {
					return err
				}
				return printRecord(w, *f.output, c, []field[admin.CAView]{
					{name: "id", value: func(c admin.CAView) string { return c.ID }},
					{name: "subject", value: func(c admin.CAView) string { return c.Subject }},
					{name: "issuer", value: func(c admin.CAView) string { return c.Issuer }},
					{name: "serial", value: func(c admin.CAView) string { return c.Serial }},
					{name: "key", value: func(c admin.CAView) string { return c.KeyType }},
					{name: "not before", value: func(c admin.CAView) string { return c.NotBefore.Format(time.RFC3339) }},
					{name: "not after", value: func(c admin.CAView) string { return c.NotAfter.Format(time.RFC3339) }},
					{name: "root", value: func(c admin.CAView) string { return fmt.Sprint(c.Root) }},
					{name: "chain length", value: func(c admin.CAView) string { return fmt.Sprint(c.ChainLen) }},
					{name: "sha256", value: func(c admin.CAView) string { return c.SHA256 }},
					{name: "CA mode capable", value: func(c admin.CAView) string { return fmt.Sprint(c.CAMode) }},
				})
			})
		}},
		"export": {"ID [--format pem|der] [--out FILE]", func(ctx context.Context, f *adminFlags, args []string, w io.Writer) error {
			format := f.fs.String("format", "pem", "pem: the whole chain; der: the CA certificate alone")
			out := f.fs.String("out", "", "write to FILE instead of stdout")
			pos, err := f.parse(args)
			if err != nil || len(pos) != 1 {
				return errOr(err, "want one CA id")
			}
			return withAPI(ctx, f, func(api admin.API) error {
				chain, err := api.CAChain(ctx, pos[0])
				if err != nil {
					return err
				}
				var b []byte
				switch *format {
				case "pem":
					for _, d := range chain {
						b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: d})...)
					}
				case "der":
					b = chain[0]
				default:
					return fmt.Errorf("--format %q: want pem or der", *format)
				}
				return writeOut(*out, w, b)
			})
		}},
		"create-root":         {"--id ID --subject DN [--key-type T] [--validity D] [--allow-ca-mode]", createCA(false)},
		"create-intermediate": {"--id ID --parent ID --subject DN [--key-type T] [--validity D] [--allow-ca-mode]", createCA(true)},
		"import": {"--id ID (--cert CHAIN.pem --key KEY.pem | --pkcs12 FILE.p12, password in env SCEPD_PKCS12_PASSWORD)", func(ctx context.Context, f *adminFlags, args []string, w io.Writer) error {
			id := f.fs.String("id", "", "CA id")
			certPath := f.fs.String("cert", "", "PEM chain, the CA certificate first")
			keyPath := f.fs.String("key", "", "PEM key (encrypted PKCS#8 needs SCEPD_KEY_PASSPHRASE)")
			p12 := f.fs.String("pkcs12", "", "PKCS#12 bundle instead of --cert and --key")
			if _, err := f.parse(args); err != nil {
				return err
			}
			spec := config.CA{ID: *id, Import: &config.CAImport{}}
			if *p12 != "" {
				// The bundle is converted to PEM here, so the API only ever
				// receives inline PEM.
				certs, keyPEM, err := pkcs12ToPEM(*p12, os.Getenv("SCEPD_PKCS12_PASSWORD"))
				if err != nil {
					return err
				}
				spec.Import.Cert, spec.Import.Key = certs, keyPEM
			} else {
				c, err := os.ReadFile(*certPath)
				if err != nil {
					return err
				}
				k, err := os.ReadFile(*keyPath)
				if err != nil {
					return err
				}
				spec.Import.Cert, spec.Import.Key = string(c), string(k)
			}
			return withAPI(ctx, f, func(api admin.API) error {
				c, err := api.CreateCA(ctx, spec)
				if err != nil {
					return err
				}
				return f.print(w, c, func(tw *tabwriter.Writer) { fmt.Fprintf(tw, "imported CA %s: %s\n", c.ID, c.Subject) })
			})
		}},
	}, args, stdout, stderr)
}

func createCA(intermediate bool) func(ctx context.Context, f *adminFlags, args []string, w io.Writer) error {
	return func(ctx context.Context, f *adminFlags, args []string, w io.Writer) error {
		id := f.fs.String("id", "", "CA id (lowercase letters, digits, dashes)")
		subject := f.fs.String("subject", "", `subject, e.g. "CN=Corp Devices CA,O=Corp"`)
		keyType := f.fs.String("key-type", string(ca.DefaultKeyType), ca.KeyTypeList(ca.KeyTypes()))
		validity := f.fs.Duration("validity", 0, "validity (default 20 years for a root, 10 for an intermediate)")
		allowCAMode := f.fs.Bool("allow-ca-mode", false, "add keyEncipherment so profiles can use the CA in CA mode (RSA only)")
		var parent *string
		if intermediate {
			parent = f.fs.String("parent", "", "issuing CA id")
		}
		if _, err := f.parse(args); err != nil {
			return err
		}
		spec := config.CA{ID: *id, Create: &config.CACreate{Subject: *subject, KeyType: *keyType, AllowCAMode: *allowCAMode}}
		spec.Create.Validity = ca.Duration(*validity)
		if parent != nil {
			if *parent == "" {
				return errors.New("--parent is required")
			}
			spec.Create.Parent = *parent
		}
		return withAPI(ctx, f, func(api admin.API) error {
			c, err := api.CreateCA(ctx, spec)
			if err != nil {
				return err
			}
			return f.print(w, c, func(tw *tabwriter.Writer) {
				fmt.Fprintf(tw, "created CA %s: %s (%s, until %s)\n", c.ID, c.Subject, c.KeyType, c.NotAfter.Format("2006-01-02"))
			})
		})
	}
}

func profileCmd(args []string, stdout, stderr io.Writer) int {
	return runAdmin("profile", map[string]command{
		"mobileconfig": mobileconfigCmd,
		"list": {"", func(ctx context.Context, f *adminFlags, args []string, w io.Writer) error {
			if _, err := f.parse(args); err != nil {
				return err
			}
			return withAPI(ctx, f, func(api admin.API) error {
				ps, err := api.ListProfiles(ctx)
				if err != nil {
					return err
				}
				return printList(w, *f.output, ps, []field[admin.ProfileView]{
					{name: "id", value: func(p admin.ProfileView) string { return p.ID }},
					{name: "ca", value: func(p admin.ProfileView) string { return p.CA }},
					{name: "challenge", value: func(p admin.ProfileView) string { return p.ChallengeMode }},
					{name: "source", value: func(p admin.ProfileView) string { return p.Source }},
					{name: "path", value: func(p admin.ProfileView) string { return p.Path }},
				}, nil)
			})
		}},
		"show": {"ID", func(ctx context.Context, f *adminFlags, args []string, w io.Writer) error {
			pos, err := f.parse(args)
			if err != nil || len(pos) != 1 {
				return errOr(err, "want one profile id")
			}
			return withAPI(ctx, f, func(api admin.API) error {
				p, err := api.GetProfile(ctx, pos[0])
				if err != nil {
					return err
				}
				// A profile is a tree: JSON is its readable form, whatever -o says.
				return printRecord(w, "json", p, nil)
			})
		}},
		"apply": {"--file PROFILE.yaml (a profiles entry; a static challenge from env SCEPD_PROFILE_CHALLENGE)", func(ctx context.Context, f *adminFlags, args []string, w io.Writer) error {
			file := f.fs.String("file", "", "YAML or JSON file holding one profile, as in the config file's profiles list")
			if _, err := f.parse(args); err != nil {
				return err
			}
			b, err := os.ReadFile(*file)
			if err != nil {
				return err
			}
			cf, err := config.Parse(append([]byte("profiles:\n"), indentAsItem(b)...))
			if err != nil || len(cf.Profiles) != 1 {
				return errOr(err, "the file must hold exactly one profile")
			}
			spec := cf.Profiles[0]
			if pw := os.Getenv("SCEPD_PROFILE_CHALLENGE"); pw != "" && (spec.Challenge.Mode == "" || spec.Challenge.Mode == store.ChallengeStatic) {
				spec.Challenge.Password = pw
			}
			return withAPI(ctx, f, func(api admin.API) error {
				p, err := api.PutProfile(ctx, spec)
				if err != nil {
					return err
				}
				return f.print(w, p, func(tw *tabwriter.Writer) { fmt.Fprintf(tw, "profile %s ready at %s\n", p.ID, p.Path) })
			})
		}},
	}, args, stdout, stderr)
}

// indentAsItem turns a YAML mapping into one item of a YAML list.
func indentAsItem(b []byte) []byte {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	for i, l := range lines {
		if i == 0 {
			lines[i] = "  - " + l
		} else {
			lines[i] = "    " + l
		}
	}
	return []byte(strings.Join(lines, "\n") + "\n")
}

func certCmd(args []string, stdout, stderr io.Writer) int {
	return runAdmin("cert", map[string]command{
		"list": {"[--profile P] [--subject S] [--san S] [--serial HEX|DECIMAL] [--status valid|expired|revoked] [--expiring-within D] [--sort newest|expiry] [--limit N] [--all] [--count] [-o text|json|csv]", func(ctx context.Context, f *adminFlags, args []string, w io.Writer) error {
			profile := f.fs.String("profile", "", "only this profile")
			subject := f.fs.String("subject", "", "subject contains (case-insensitive)")
			status := f.fs.String("status", "", "valid (not expired), expired or revoked")
			san := f.fs.String("san", "", "a SAN contains (case-insensitive)")
			serial := f.fs.String("serial", "", "a serial or its beginning: hex (colons, spaces, 0x allowed) or decimal")
			sort := f.fs.String("sort", "newest", "newest first, or expiry: the soonest to expire first")
			count := f.fs.Bool("count", false, "print only how many certificates match")
			within := f.fs.Duration("expiring-within", 0, "only certificates expiring within this duration, e.g. 720h")
			limit := f.fs.Int("limit", admin.DefaultListLimit, fmt.Sprintf("at most this many (at most %d); with --all, the page size (default %d)", admin.MaxListLimit, admin.MaxListLimit))
			all := f.fs.Bool("all", false, "every matching certificate, page after page, written as each page arrives")
			if _, err := f.parse(args); err != nil {
				return err
			}
			out, err := newListWriter(w, *f.output, certTable(), certCSV())
			if err != nil {
				return err
			}
			filter := store.CertificateFilter{ProfileID: *profile, Subject: *subject, SAN: *san, Status: *status, Limit: *limit}
			switch *sort {
			case "newest":
			case "expiry":
				filter.Order = store.CertOrderExpiry
			default:
				return fmt.Errorf("--sort %q: want newest or expiry", *sort)
			}
			if *serial != "" {
				if filter.SerialPrefixes, err = admin.SerialPrefixes(*serial); err != nil {
					return err
				}
			}
			if *all && !flagSet(f.fs, "limit") {
				filter.Limit = admin.MaxListLimit
			}
			if *within > 0 {
				filter.ExpiringBefore = time.Now().Add(*within)
			}
			return withAPI(ctx, f, func(api admin.API) error {
				if *count {
					n, err := api.CountCertificates(ctx, filter)
					if err == nil {
						_, err = fmt.Fprintln(w, n)
					}
					return err
				}
				for {
					page, err := api.ListCertificates(ctx, filter)
					if err != nil {
						if filter.Limit > admin.MaxListLimit {
							return fmt.Errorf("%w (--all lists everything, %d at a time)", err, admin.MaxListLimit)
						}
						return err
					}
					if err := out.write(page.Certificates); err != nil {
						return err
					}
					if !*all || page.Next.IsZero() {
						return out.close()
					}
					filter.After = page.Next
				}
			})
		}},
		"show": {"SERIAL", func(ctx context.Context, f *adminFlags, args []string, w io.Writer) error {
			pos, err := f.parse(args)
			if err != nil || len(pos) != 1 {
				return errOr(err, "want one serial")
			}
			return withAPI(ctx, f, func(api admin.API) error {
				c, err := api.GetCertificate(ctx, pos[0])
				if err != nil {
					return err
				}
				return printRecord(w, *f.output, c, []field[admin.CertView]{
					{name: "serial", value: func(c admin.CertView) string { return c.Serial }},
					{name: "profile", value: func(c admin.CertView) string { return c.Profile }},
					{name: "subject", value: func(c admin.CertView) string { return c.Subject }},
					{name: "SANs", value: func(c admin.CertView) string { return strings.Join(c.SANs, ", ") }},
					{name: "not before", value: func(c admin.CertView) string { return c.NotBefore.Format(time.RFC3339) }},
					{name: "not after", value: func(c admin.CertView) string { return c.NotAfter.Format(time.RFC3339) }},
					{name: "status", value: func(c admin.CertView) string { return c.Status }},
					{name: "transaction", value: func(c admin.CertView) string { return c.TransactionID }},
					{name: "revoked", optional: true, value: func(c admin.CertView) string {
						if c.Status != store.CertRevoked {
							return ""
						}
						return fmt.Sprintf("%s (%s)", c.RevokedAt.Format(time.RFC3339), c.RevocationReason)
					}},
				})
			})
		}},
		"revoke": {"SERIAL [--reason R] | --subject DN [--reason R]", func(ctx context.Context, f *adminFlags, args []string, w io.Writer) error {
			reason := f.fs.String("reason", "unspecified", "RFC 5280 reason: "+strings.Join(ca.ReasonNames(), ", "))
			subject := f.fs.String("subject", "", "revoke every valid certificate with exactly this subject")
			pos, err := f.parse(args)
			if err != nil || (len(pos) != 1) == (*subject == "") {
				return errOr(err, "want one serial, or --subject")
			}
			return withAPI(ctx, f, func(api admin.API) error {
				var list []admin.CertView
				if *subject != "" {
					if list, err = api.RevokeSubject(ctx, *subject, *reason); err != nil {
						return err
					}
				} else {
					c, err := api.Revoke(ctx, pos[0], *reason)
					if err != nil {
						return err
					}
					list = []admin.CertView{c}
				}
				return f.print(w, list, func(tw *tabwriter.Writer) {
					for _, c := range list {
						fmt.Fprintf(tw, "revoked %s (%s): %s\n", c.Serial, c.Subject, c.RevocationReason)
					}
				})
			})
		}},
		"export": {"SERIAL [--format pem|der] [--out FILE]", func(ctx context.Context, f *adminFlags, args []string, w io.Writer) error {
			format := f.fs.String("format", "pem", "pem or der")
			out := f.fs.String("out", "", "write to FILE instead of stdout")
			pos, err := f.parse(args)
			if err != nil || len(pos) != 1 {
				return errOr(err, "want one serial")
			}
			return withAPI(ctx, f, func(api admin.API) error {
				c, err := api.GetCertificate(ctx, pos[0])
				if err != nil {
					return err
				}
				b := c.DER
				if *format == "pem" {
					b = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.DER})
				}
				return writeOut(*out, w, b)
			})
		}},
	}, args, stdout, stderr)
}

func requestCmd(args []string, stdout, stderr io.Writer) int {
	return runAdmin("request", map[string]command{
		"list": {"[--profile P] [--status pending|issued|rejected]", func(ctx context.Context, f *adminFlags, args []string, w io.Writer) error {
			profile := f.fs.String("profile", "", "only this profile")
			status := f.fs.String("status", "pending", "pending, issued or rejected")
			if _, err := f.parse(args); err != nil {
				return err
			}
			return withAPI(ctx, f, func(api admin.API) error {
				rs, err := api.ListRequests(ctx, *profile, *status)
				if err != nil {
					return err
				}
				return printList(w, *f.output, rs, []field[admin.RequestView]{
					{name: "profile", value: func(r admin.RequestView) string { return r.Profile }},
					{name: "transaction", value: func(r admin.RequestView) string { return r.TransactionID }},
					{name: "status", value: func(r admin.RequestView) string { return r.Status }},
					{name: "waits_for", value: func(r admin.RequestView) string { return r.WaitsFor }},
					{name: "subject", value: func(r admin.RequestView) string { return r.Subject }},
					{name: "created", value: func(r admin.RequestView) string { return r.Created.Format(time.RFC3339) }},
				}, nil)
			})
		}},
		"approve": {"--profile P TRANSACTION", func(ctx context.Context, f *adminFlags, args []string, w io.Writer) error {
			profile := f.fs.String("profile", "default", "profile of the request")
			pos, err := f.parse(args)
			if err != nil || len(pos) != 1 {
				return errOr(err, "want one transaction id")
			}
			return withAPI(ctx, f, func(api admin.API) error {
				c, err := api.Approve(ctx, *profile, pos[0])
				if err != nil {
					return err
				}
				return f.print(w, c, func(tw *tabwriter.Writer) { fmt.Fprintf(tw, "issued %s (%s)\n", c.Serial, c.Subject) })
			})
		}},
		"reject": {"--profile P TRANSACTION [--reason TEXT]", func(ctx context.Context, f *adminFlags, args []string, w io.Writer) error {
			profile := f.fs.String("profile", "default", "profile of the request")
			reason := f.fs.String("reason", "", "told to the client in failInfoText")
			pos, err := f.parse(args)
			if err != nil || len(pos) != 1 {
				return errOr(err, "want one transaction id")
			}
			return withAPI(ctx, f, func(api admin.API) error { return api.Reject(ctx, *profile, pos[0], *reason) })
		}},
	}, args, stdout, stderr)
}

func tokenCmd(args []string, stdout, stderr io.Writer) int {
	return runAdmin("token", map[string]command{
		"create": {"--role admin|operator|mdm|auditor [--profile P]... [--name N]", func(ctx context.Context, f *adminFlags, args []string, w io.Writer) error {
			role := f.fs.String("role", "", "admin, operator, mdm or auditor")
			name := f.fs.String("name", "", "a label for the audit log")
			var profiles multiFlag
			f.fs.Var(&profiles, "profile", "limit the token to this profile (repeatable)")
			if _, err := f.parse(args); err != nil {
				return err
			}
			return withAPI(ctx, f, func(api admin.API) error {
				t, err := api.CreateToken(ctx, admin.TokenRequest{Name: *name, Role: admin.Role(*role), Profiles: profiles})
				if err != nil {
					return err
				}
				return f.print(w, t, func(tw *tabwriter.Writer) {
					fmt.Fprintf(tw, "%s\n", t.Token)
				})
			})
		}},
		"list": {"", func(ctx context.Context, f *adminFlags, args []string, w io.Writer) error {
			if _, err := f.parse(args); err != nil {
				return err
			}
			return withAPI(ctx, f, func(api admin.API) error {
				ts, err := api.ListTokens(ctx)
				if err != nil {
					return err
				}
				return printList(w, *f.output, ts, []field[admin.TokenView]{
					{name: "id", value: func(t admin.TokenView) string { return t.ID }},
					{name: "name", value: func(t admin.TokenView) string { return t.Name }},
					{name: "role", value: func(t admin.TokenView) string { return t.Role }},
					{name: "profiles", value: func(t admin.TokenView) string { return strings.Join(t.Profiles, ",") }},
					{name: "created", value: func(t admin.TokenView) string { return t.Created.Format(time.RFC3339) }},
					{name: "revoked", value: func(t admin.TokenView) string {
						if t.Revoked.IsZero() {
							return ""
						}
						return t.Revoked.Format(time.RFC3339)
					}},
				}, nil)
			})
		}},
		"revoke": {"ID", func(ctx context.Context, f *adminFlags, args []string, w io.Writer) error {
			pos, err := f.parse(args)
			if err != nil || len(pos) != 1 {
				return errOr(err, "want one token id")
			}
			return withAPI(ctx, f, func(api admin.API) error { return api.RevokeToken(ctx, pos[0]) })
		}},
	}, args, stdout, stderr)
}

func policyCmd(args []string, stdout, stderr io.Writer) int {
	return runAdmin("policy", map[string]command{
		"test": {"--profile P CSR.pem", func(ctx context.Context, f *adminFlags, args []string, w io.Writer) error {
			profile := f.fs.String("profile", "default", "profile whose policy to apply")
			pos, err := f.parse(args)
			if err != nil || len(pos) != 1 {
				return errOr(err, "want one CSR file (PEM or DER)")
			}
			b, err := os.ReadFile(pos[0])
			if err != nil {
				return err
			}
			if block, _ := pem.Decode(b); block != nil {
				b = block.Bytes
			}
			return withAPI(ctx, f, func(api admin.API) error {
				r, err := api.PolicyTest(ctx, *profile, b)
				if err != nil {
					return err
				}
				if err := f.print(w, r, func(tw *tabwriter.Writer) {
					if !r.Allowed {
						fmt.Fprintf(tw, "refused: %s\n", r.Reason)
						return
					}
					fmt.Fprintf(tw, "would issue: %s, SANs %s, until %s\n%s", r.Subject, strings.Join(r.SANs, ", "), r.NotAfter.Format(time.RFC3339), r.Certificate)
				}); err != nil {
					return err
				}
				if !r.Allowed {
					return errors.New("the policy refuses this request")
				}
				return nil
			})
		}},
	}, args, stdout, stderr)
}

func configCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) != 2 || args[0] != "validate" {
		fmt.Fprintln(stderr, "Usage: scepd config validate FILE")
		return 2
	}
	f, err := config.Load(args[1])
	if err == nil {
		err = f.Validate()
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s is not valid:\n%v\n", args[1], err)
		return 1
	}
	fmt.Fprintf(stdout, "%s is valid: %d CAs, %d profiles\n", args[1], len(f.CAs), len(f.Profiles))
	return 0
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func errOr(err error, msg string) error {
	if err != nil {
		return err
	}
	return errors.New(msg)
}

func writeOut(path string, w io.Writer, b []byte) error {
	if path == "" {
		_, err := w.Write(b)
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// flagSet reports whether the command line set the named flag.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// certTable is the text listing of certificates; certCSV the CSV one,
// with every field.
func certTable() []field[admin.CertView] {
	return []field[admin.CertView]{
		{name: "serial", value: func(v admin.CertView) string { return v.Serial }},
		{name: "profile", value: func(v admin.CertView) string { return v.Profile }},
		{name: "subject", value: func(v admin.CertView) string { return v.Subject }},
		{name: "not after", value: func(v admin.CertView) string { return v.NotAfter.Format("2006-01-02") }},
		{name: "status", value: func(v admin.CertView) string { return v.Status }},
	}
}

func certCSV() []field[admin.CertView] {
	utc := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	return []field[admin.CertView]{
		{name: "serial", value: func(v admin.CertView) string { return v.Serial }},
		{name: "profile", value: func(v admin.CertView) string { return v.Profile }},
		{name: "subject", value: func(v admin.CertView) string { return v.Subject }},
		{name: "sans", value: func(v admin.CertView) string { return strings.Join(v.SANs, " ") }},
		{name: "not_before", value: func(v admin.CertView) string { return utc(v.NotBefore) }},
		{name: "not_after", value: func(v admin.CertView) string { return utc(v.NotAfter) }},
		{name: "status", value: func(v admin.CertView) string { return v.Status }},
		{name: "created", value: func(v admin.CertView) string { return v.Created.UTC().Format(time.RFC3339Nano) }},
		{name: "transaction_id", value: func(v admin.CertView) string { return v.TransactionID }},
		{name: "renewed_serial", value: func(v admin.CertView) string { return v.RenewedSerial }},
		{name: "revoked_at", value: func(v admin.CertView) string {
			if v.RevokedAt.IsZero() {
				return ""
			}
			return utc(v.RevokedAt)
		}},
		{name: "revocation_reason", value: func(v admin.CertView) string { return v.RevocationReason }},
	}
}
