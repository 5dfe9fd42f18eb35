package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/scepd/scepd/internal/admin"
	"github.com/scepd/scepd/internal/audit"
	"github.com/scepd/scepd/internal/ca"
	"github.com/scepd/scepd/internal/config"
	"github.com/scepd/scepd/internal/console"
	"github.com/scepd/scepd/internal/enroll"
	"github.com/scepd/scepd/internal/keys"
	"github.com/scepd/scepd/internal/metrics"
	"github.com/scepd/scepd/internal/ossl"
	"github.com/scepd/scepd/internal/provision"
	"github.com/scepd/scepd/internal/ratelimit"
	"github.com/scepd/scepd/internal/revocation"
	"github.com/scepd/scepd/internal/server"
	"github.com/scepd/scepd/internal/store"
)

// setting resolves one setting: a flag given on the command line wins, then
// its SCEPD_* environment variable, then the config file, then the default.
func setting(fs *flag.FlagSet, name, env, fromFile, def string) string {
	if given(fs, name) {
		return fs.Lookup(name).Value.String()
	}
	if v, ok := os.LookupEnv(env); ok && v != "" {
		return v
	}
	if fromFile != "" {
		return fromFile
	}
	return def
}

// given reports whether the flag name was set on the command line.
func given(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// databaseURL resolves the database URL, which may hold a password: a
// --database flag wins (but shows in ps), then SCEPD_DATABASE or the file
// SCEPD_DATABASE_FILE names, then the config file's database.
func databaseURL(fs *flag.FlagSet, fromFile string) (string, error) {
	if given(fs, "database") {
		return fs.Lookup("database").Value.String(), nil
	}
	v, err := secretFromEnv("SCEPD_DATABASE")
	if err != nil || v != "" {
		return v, err
	}
	return fromFile, nil
}

func serve(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", os.Getenv("SCEPD_CONFIG"), "YAML config file declaring CAs and profiles (env SCEPD_CONFIG); see scepd.example.yaml")
	fs.String("addr", ":8080", "SCEP listen address (env SCEPD_ADDR; config listen.addr)")
	fs.String("admin-addr", "", "serve the REST API on this address instead of --addr (env SCEPD_ADMIN_ADDR; config listen.admin_addr)")
	fs.String("admin-tls-cert", "", "PEM certificate for the admin listener (env SCEPD_ADMIN_TLS_CERT)")
	fs.String("admin-tls-key", "", "PEM key for the admin listener (env SCEPD_ADMIN_TLS_KEY)")
	fs.String("data", "./scepd-data", "data directory: SQLite database and keys (env SCEPD_DATA; config data_dir)")
	fs.String("database", "", "postgres://... to share state between replicas; empty: SQLite in the data directory (env SCEPD_DATABASE, or the file SCEPD_DATABASE_FILE names; config database; a password here shows in ps: use the file, or PGPASSFILE)")
	fs.String("crypto", defaultEngine(), "where file-held private keys work: go, or openssl (binaries built with -tags openssl, where it is the default) (env SCEPD_CRYPTO; config crypto)")
	fs.String("public-url", "", "base URL for AIA caIssuers and CA downloads, e.g. https://pki.example.com (env SCEPD_PUBLIC_URL)")
	maxConcurrent := fs.Int("max-concurrent", envInt("SCEPD_MAX_CONCURRENT", 0), "PKIOperations processed at once; more get HTTP 503 with Retry-After; 0: one per CPU with SQLite, two per CPU with PostgreSQL (whose round trips leave a CPU idle) (env SCEPD_MAX_CONCURRENT)")
	queueWait := fs.Duration("queue-wait", 10*time.Second, "how long a PKIOperation waits for a free slot before the 503 (less than 25s, its whole time to an answer)")
	maxQueue := fs.Int("max-queue", envInt("SCEPD_MAX_QUEUE", 1024), "PKIOperations that may wait for a slot; one more gets HTTP 503 with Retry-After at once (env SCEPD_MAX_QUEUE)")
	challengeRate := fs.Float64("challenge-rate", envFloat("SCEPD_CHALLENGE_RATE", 10), "one-time challenges minted per second per profile (API, console, NDES page, Jamf webhook), on average; 0: unlimited (env SCEPD_CHALLENGE_RATE)")
	challengeBurst := fs.Int("challenge-burst", envInt("SCEPD_CHALLENGE_BURST", 100), "challenges a profile may mint at once above its rate (env SCEPD_CHALLENGE_BURST)")
	memLimit := fs.Int("memory-limit-mib", envInt("SCEPD_MEMORY_LIMIT_MIB", 18), "soft limit of the Go heap in MiB: the collector works harder near it instead of letting the heap double (GOMEMLIMIT, when set, wins; 0: none) (env SCEPD_MEMORY_LIMIT_MIB)")
	dbMaxConns := fs.Int("db-max-conns", envInt("SCEPD_DB_MAX_CONNS", 0), "PostgreSQL connection pool size; 0: max(4, CPUs) (env SCEPD_DB_MAX_CONNS)")
	caKeyType := fs.String("ca-key-type", envDefault("SCEPD_CA_KEY_TYPE", string(ca.DefaultKeyType)),
		fmt.Sprintf("without --config: key type of the created CA, one of %v; ecdsa-* only for fleets whose every client handles ECDSA (env SCEPD_CA_KEY_TYPE)", ca.KeyTypes()))
	raKeyType := fs.String("ra-key-type", envDefault("SCEPD_RA_KEY_TYPE", string(ca.RSA2048)),
		"without --config: key type of the default profile's RA, "+ca.KeyTypeList(ca.RAKeyTypes())+" (env SCEPD_RA_KEY_TYPE)")
	challengeMode := fs.String("challenge-mode", envDefault("SCEPD_CHALLENGE_MODE", store.ChallengeStatic),
		"without --config: the default profile's challenge, static (env SCEPD_CHALLENGE, or the file SCEPD_CHALLENGE_FILE names, e.g. a systemd credential) or dynamic (env SCEPD_CHALLENGE_MODE)")
	metricsToken := fs.Bool("metrics-token-required", os.Getenv("SCEPD_METRICS_TOKEN_REQUIRED") == "1",
		"/metrics answers only requests with an API token (admin, operator or auditor, not limited to profiles: the metrics cover every profile) (env SCEPD_METRICS_TOKEN_REQUIRED=1)")
	consoleInsecure := fs.Bool("console-insecure-http", os.Getenv("SCEPD_CONSOLE_INSECURE_HTTP") == "1",
		"let the console take sign-ins over plain HTTP from other machines, whose API tokens then cross the network unencrypted; without it only HTTPS (TLS here or at a trusted proxy) and this machine sign in (env SCEPD_CONSOLE_INSECURE_HTTP=1)")
	checkpointEvery := fs.Duration("audit-checkpoint-interval", envDuration("SCEPD_AUDIT_CHECKPOINT_INTERVAL", time.Hour),
		"sign a checkpoint of the audit log this often (and at shutdown), sent to the event sinks as audit.checkpoint; 0: only on demand (env SCEPD_AUDIT_CHECKPOINT_INTERVAL)")
	logFormat := fs.String("log-format", envDefault("SCEPD_LOG_FORMAT", "text"), "log format: text or json (env SCEPD_LOG_FORMAT)")
	grace := fs.Duration("shutdown-grace", envDuration("SCEPD_SHUTDOWN_GRACE", 25*time.Second),
		"on SIGTERM or SIGINT, how long requests in flight, background loops and outcome notifications get to finish before they are cancelled; a second signal stops at once (env SCEPD_SHUTDOWN_GRACE)")
	fs.String("trusted-proxies", "",
		"comma-separated CIDRs of reverse proxies whose X-Forwarded-For and X-Forwarded-Proto the console believes (env SCEPD_TRUSTED_PROXIES; config listen.trusted_proxies)")
	fs.Duration("console-idle-timeout", 30*time.Minute, "end a web console session unused this long, besides its 8-hour limit (env SCEPD_CONSOLE_IDLE_TIMEOUT; config console.idle_timeout)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	staticChallenge, err := secretFromEnv("SCEPD_CHALLENGE")
	if err != nil {
		fmt.Fprintf(stderr, "scepd: %v\n", err)
		return 1
	}
	// A soft heap limit keeps the footprint of an idle-to-busy server near
	// 40 MB: enrollment keeps little live data, so without it the heap
	// grows to twice the peak of a short burst (argon2id's 7 MiB, a CRL).
	// 18 MiB: with 256 clients the Go runtime needs about 13 MiB (their
	// connections' buffers and stacks, the collector's own), so the
	// collector still runs less often than with 20 MiB before PKIOperations
	// ran off the connections' goroutines; 17 doubles the collections and
	// 16 thrashes (CPU per enrollment +40 %, requests time out).
	if _, set := os.LookupEnv("GOMEMLIMIT"); !set && *memLimit > 0 {
		debug.SetMemoryLimit(int64(*memLimit) << 20)
	}
	var h slog.Handler = slog.NewTextHandler(stderr, nil)
	if *logFormat == "json" {
		h = slog.NewJSONHandler(stderr, nil)
	}
	log := slog.New(h)

	file := &config.File{}
	if *configPath != "" {
		var err error
		if file, err = config.Load(*configPath); err != nil {
			log.Error("scepd stopped", "error", err.Error())
			return 1
		}
		if err := file.Validate(); err != nil {
			fmt.Fprintf(stderr, "scepd: %s is not valid:\n%v\n", *configPath, err)
			return 1
		}
		if exposed := configExposed(*configPath, file.Database); exposed != "" {
			log.Warn(exposed, "file", *configPath)
		}
	}
	proxies, err := console.ParseProxies(setting(fs, "trusted-proxies", "SCEPD_TRUSTED_PROXIES", strings.Join(file.Listen.TrustedProxies, ","), ""))
	if err != nil {
		fmt.Fprintf(stderr, "scepd: --trusted-proxies: %v\n", err)
		return 2
	}
	database, err := databaseURL(fs, file.Database)
	if err != nil {
		fmt.Fprintf(stderr, "scepd: %v\n", err)
		return 1
	}
	idleFile := ""
	if file.Console.IdleTimeout > 0 {
		idleFile = time.Duration(file.Console.IdleTimeout).String()
	}
	idleTimeout, err := time.ParseDuration(setting(fs, "console-idle-timeout", "SCEPD_CONSOLE_IDLE_TIMEOUT", idleFile, "30m"))
	if err != nil || idleTimeout <= 0 {
		fmt.Fprintln(stderr, "scepd: --console-idle-timeout: want a positive duration such as 30m")
		return 2
	}
	if *queueWait >= server.DefaultAnswerWithin {
		// A request waiting that long for a slot is past its answer
		// deadline (counted from its arrival) before it starts.
		fmt.Fprintf(stderr, "scepd: --queue-wait %v: want less than %v, the time a PKIOperation has from its arrival to its answer\n", *queueWait, server.DefaultAnswerWithin)
		return 2
	}
	cfg := serveConfig{
		file:       file,
		configured: *configPath != "",
		addr:       setting(fs, "addr", "SCEPD_ADDR", file.Listen.Addr, ":8080"),
		adminAddr:  setting(fs, "admin-addr", "SCEPD_ADMIN_ADDR", file.Listen.AdminAddr, ""),
		adminCert:  setting(fs, "admin-tls-cert", "SCEPD_ADMIN_TLS_CERT", file.Listen.AdminTLSCert, ""),
		adminKey:   setting(fs, "admin-tls-key", "SCEPD_ADMIN_TLS_KEY", file.Listen.AdminTLSKey, ""),
		publicURL:  setting(fs, "public-url", "SCEPD_PUBLIC_URL", file.PublicURL, ""),
		crypto:     setting(fs, "crypto", "SCEPD_CRYPTO", file.Crypto, defaultEngine()),
		store: storeFlags{
			dataDir:    setting(fs, "data", "SCEPD_DATA", file.DataDir, "./scepd-data"),
			database:   database,
			dbMaxConns: *dbMaxConns,
		},
		caKeyType: ca.KeyType(*caKeyType), raKeyType: ca.KeyType(*raKeyType), maxConcurrent: *maxConcurrent, queueWait: *queueWait, maxQueue: *maxQueue,
		challengeRate: *challengeRate, challengeBurst: *challengeBurst,
		challengeMode: *challengeMode, challenge: staticChallenge, allowDES: os.Getenv("SCEPD_ALLOW_DES") == "1",
		metricsToken: *metricsToken, checkpointEvery: *checkpointEvery, shutdownGrace: *grace,
		trustedProxies: proxies, consoleIdle: idleTimeout, consoleInsecure: *consoleInsecure,
	}
	if cfg.store.dbMaxConns == 0 {
		cfg.store.dbMaxConns = file.DBMaxConns
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// After the first signal the default action returns: a second one
	// ends the process without waiting for the grace period.
	context.AfterFunc(ctx, stop)
	if err := runServer(ctx, cfg, stdout, log); err != nil {
		log.Error("scepd stopped", "error", err.Error())
		return 1
	}
	return 0
}

type serveConfig struct {
	file       *config.File
	configured bool
	addr       string
	adminAddr  string
	adminCert  string
	adminKey   string
	publicURL  string
	crypto     string
	store      storeFlags

	maxConcurrent int
	queueWait     time.Duration
	maxQueue      int
	// challengeRate and challengeBurst ration one-time challenge minting
	// per profile (per replica).
	challengeRate  float64
	challengeBurst int
	// metricsToken: /metrics requires an API token not limited to profiles.
	metricsToken bool
	// shutdownGrace bounds a graceful shutdown (see owner).
	shutdownGrace time.Duration
	// trustedProxies, consoleIdle and consoleInsecure: see console.Handler.
	trustedProxies  []netip.Prefix
	consoleIdle     time.Duration
	consoleInsecure bool

	// Zero-config (no --config) settings for the default CA and profile.
	caKeyType, raKeyType ca.KeyType
	challengeMode        string
	challenge            string
	allowDES             bool

	// checkpointEvery is the interval of signed audit checkpoints; 0: none.
	checkpointEvery time.Duration
}

// keySource returns the key store with the passphrase from
// SCEPD_KEY_PASSPHRASE or the file SCEPD_KEY_PASSPHRASE_FILE names (never
// a flag: flag values show in ps), and the PKCS#11 token SCEPD_PKCS11_MODULE
// and SCEPD_PKCS11_TOKEN name (PIN from SCEPD_PKCS11_PIN or
// SCEPD_PKCS11_PIN_FILE), where new CA and RA keys are then generated. The
// caller closes ks.Token.
func keySource(dataDir, engine string) (keys.Source, error) {
	ks := keys.Source{Dir: dataDir}
	switch engine = engineName(engine); engine {
	case "go":
	case "openssl":
		if !ossl.Available {
			return ks, ossl.ErrUnavailable
		}
		ks.Engine = ossl.Wrap
	default:
		return ks, fmt.Errorf("crypto %q: want go or openssl", engine)
	}
	if module := os.Getenv("SCEPD_PKCS11_MODULE"); module != "" {
		pin, err := secretFromEnv("SCEPD_PKCS11_PIN")
		if err != nil {
			return ks, err
		}
		if ks.Token, err = keys.OpenToken(keys.TokenConfig{Module: module, Label: os.Getenv("SCEPD_PKCS11_TOKEN"), PIN: pin}); err != nil {
			return ks, err
		}
	}
	pass, err := secretFromEnv("SCEPD_KEY_PASSPHRASE")
	if err != nil {
		ks.Token.Close()
		return ks, err
	}
	ks.Passphrase = []byte(pass)
	return ks, nil
}

// defaultEngine is the engine file-held keys use when none is chosen:
// OpenSSL's when this binary has it (scripts/build compiles it in where
// libcrypto 3 is installed), Go's otherwise.
func defaultEngine() string {
	if ossl.Available {
		return "openssl"
	}
	return "go"
}

// engineName is the engine a crypto setting selects ("" is the default).
func engineName(setting string) string {
	if setting == "" {
		return defaultEngine()
	}
	return setting
}

// secretFromEnv reads a secret from the variable name or from the file
// the variable name_FILE names (trailing newline removed), which other
// users must not be able to read (see keys.ReadSecretFile).
func secretFromEnv(name string) (string, error) {
	if v := os.Getenv(name); v != "" {
		return v, nil
	}
	f := os.Getenv(name + "_FILE")
	if f == "" {
		return "", nil
	}
	b, err := keys.ReadSecretFile(f)
	if err != nil {
		return "", fmt.Errorf("%s_FILE: %w", name, err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// runServer serves until ctx ends, then shuts down in order (see owner):
// every goroutine it started has returned when it returns.
func runServer(ctx context.Context, cfg serveConfig, stdout io.Writer, log *slog.Logger) (err error) {
	cfg.store.migrate = true // at start, under PostgreSQL's advisory lock (replicas starting together)
	raw, auditKey, err := openAudited(ctx, cfg.store)
	if err != nil {
		return err
	}
	own := newOwner(ctx, cfg.shutdownGrace, log)
	defer func() { err = errors.Join(err, own.shutdown()) }()
	own.closeLast("store", raw.Close)
	// Keep-alive connections to webhooks, Intune and event sinks (all on
	// the default transport) each hold goroutines.
	own.closeLast("idle outbound connections", func() error { http.DefaultClient.CloseIdleConnections(); return nil })
	var srv *server.Server
	met := metrics.New(metrics.Build{Version: version, GoVersion: runtime.Version(), CryptoEngine: engineName(cfg.crypto)}, raw, func() float64 { return float64(srv.Overloaded()) })
	raw.SetObserver(met)
	var st store.Store = raw
	ks, err := keySource(cfg.store.dataDir, cfg.crypto)
	if err != nil {
		return err
	}
	ks = withStoreKeys(ks, st, cfg.store)
	if ks.Token != nil {
		own.closeLast("PKCS#11 token", ks.Token.Close)
	}
	defaultProfile := provision.DefaultID
	if cfg.configured {
		if err := provision.ApplyConfig(ctx, st, ks, cfg.file, provision.FromFiles(), time.Now(), log); err != nil {
			return fmt.Errorf("applying %s: %w", "the config file", err)
		}
		defaultProfile = cfg.file.DefaultProfile
		if defaultProfile == "" && len(cfg.file.Profiles) > 0 {
			defaultProfile = cfg.file.Profiles[0].ID
		}
	} else if err := zeroConfig(ctx, cfg, st, ks, stdout, log); err != nil {
		return err
	}

	mintLimit := ratelimit.NewBuckets(cfg.challengeRate, cfg.challengeBurst)
	overrides := server.Overrides{AllowDES: map[string]bool{provision.DefaultID: cfg.allowDES && !cfg.configured}, PublicURL: cfg.publicURL, Log: log,
		MintLimit: mintLimit, ObserveUpstream: met.Upstream}
	// What Load reads, fingerprinted before it reads: a change committed
	// meanwhile (another replica's API, the CLI) moves the fingerprint,
	// and the refresh loop loads it.
	loaded, _ := profilesFingerprint(ctx, st)
	serving, err := server.Load(ctx, st, ks, overrides)
	if err != nil {
		return err
	}
	enroller := enroll.New(st, time.Now, log)
	enroller.OnLimit = func(p, kind string) { met.Limit(p, "enroll", kind) }
	own.drain("outcome notifications", enroller.Close)
	rev := &revocation.Service{Store: st, CAs: func() map[string]*ca.CA { return srv.CAs() }, Now: time.Now, Log: log}
	srv, err = server.New(server.Options{
		Profiles:       serving.Profiles,
		CAs:            serving.CAs,
		DefaultProfile: defaultProfile,
		Enroller:       enroller,
		Revocation:     rev,
		Logger:         log,
		Ready:          raw.Ready, // the database answers, would take a write, and writes are not failing
		MaxConcurrent:  maxConcurrent(cfg),
		QueueWait:      cfg.queueWait,
		MaxQueue:       cfg.maxQueue,
		Observe:        func(p, t, o string, d time.Duration) { met.Observe(p, t, o, d) },
		OnChallenge:    func(p, via string) { met.Challenge(p, via) },
		OnLimit:        met.Limit,
		Authorize: func(ctx context.Context, token, profile string) (string, bool, bool, error) {
			a, err := admin.Authenticate(ctx, st, token)
			if errors.Is(err, admin.ErrUnauthenticated) {
				return "", false, false, nil
			}
			if err != nil {
				// The store's (unavailable or other): the token was not
				// checked, and is no failed authentication.
				return "", false, false, err
			}
			return a.Name, true, a.Allowed(admin.ActChallenge, profile), nil
		},
		Audit: func(ctx context.Context, action, object, outcome string, details map[string]string) {
			if err := st.AppendAudit(ctx, store.AuditEvent{Time: time.Now(), Actor: "mdm", Action: action, Object: object, Outcome: outcome, Details: details}); err != nil {
				log.Error("audit append failed", "error", err.Error())
			}
		},
	})
	if err != nil {
		return err
	}
	reload := func(ctx context.Context) error {
		s, err := server.Load(ctx, st, ks, overrides)
		if err != nil {
			return err
		}
		return srv.SetProfiles(s.Profiles, s.CAs)
	}
	profileOf := func(id string) *enroll.Profile {
		if p := srv.Profile(id); p != nil {
			return p.Enroll()
		}
		return nil
	}
	adminSvc := &admin.Service{Store: st, Keys: ks, Now: time.Now, Log: log, Reload: reload, MintLimit: mintLimit,
		Profile: profileOf, Enroll: enroller, Revocation: rev}
	api := (&admin.Handler{Service: adminSvc, Log: log}).Routes()
	consoleH := &console.Handler{Admin: adminSvc, Store: st, PublicURL: cfg.publicURL, Log: log, IdleTimeout: cfg.consoleIdle, TrustedProxies: cfg.trustedProxies,
		InsecureHTTP: cfg.consoleInsecure}
	web, err := consoleH.Routes()
	if err != nil {
		return err
	}

	// The REST API and /metrics go on the admin listener when there is
	// one (the SCEP listener then answers 404 for them), else next to SCEP.
	metricsHandler := met.Handler()
	if cfg.metricsToken {
		metricsHandler = (&admin.Handler{Service: adminSvc, Log: log}).RequireToken(metricsHandler)
	}
	adminMux := http.NewServeMux()
	adminMux.Handle("/api/", api)
	adminMux.Handle("GET /metrics", metricsHandler)
	adminMux.Handle("/console/", web)
	adminMux.Handle("GET /{$}", console.Root())
	handler := srv.Handler()
	if cfg.adminAddr == "" {
		handler = server.Mount(handler, "/console/", web)
		handler = server.Mount(handler, "GET /{$}", console.Root())
		handler = server.Mount(handler, "/api/", api)
		handler = server.Mount(handler, "GET /metrics", metricsHandler)
	}
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return err
	}
	if cfg.adminAddr != "" {
		consoleH.SCEPAddr = ln.Addr().String() // before serving: the console shows SCEP URLs of this listener
	}
	own.serve(server.NewHTTPServer(cfg.addr, handler, log), ln, "", "")
	if cfg.adminAddr != "" {
		aln, err := net.Listen("tcp", cfg.adminAddr)
		if err != nil {
			return err
		}
		own.serve(server.NewHTTPServer(cfg.adminAddr, adminMux, log), aln, cfg.adminCert, cfg.adminKey)
		log.Info("serving the admin API", "addr", aln.Addr().String(), "tls", cfg.adminCert != "")
	}
	log.Info("private keys", "new_keys", ks.Where(), "crypto_engine", engineName(cfg.crypto))
	if isPostgres(cfg.store.database) && !ks.InDB && ks.Token == nil {
		log.Warn("new keys are written to the data directory, which every replica then needs: set SCEPD_KEY_PASSPHRASE to keep them in the database")
	}
	for _, p := range serving.Profiles {
		log.Info("serving SCEP", "profile", p.ID(), "url", scepURL(ln.Addr(), p.ID()))
	}
	if cfg.allowDES && !cfg.configured {
		log.Warn("single DES accepted on the default profile (SCEPD_ALLOW_DES=1)")
	}
	own.goLoop("profile refresh", func(ctx context.Context) { refreshProfiles(ctx, st, reload, log, profileRefresh, loaded) })
	own.goLoop("CRL refresh", func(ctx context.Context) { rev.Run(ctx, 10*time.Minute) })
	own.goLoop("pending expiry", func(ctx context.Context) { expirePending(ctx, st, log) })
	if err := startEvents(own, cfg, st, met, log); err != nil {
		return err
	}
	log.Info("audit log keyed", "key", auditKey.ID(), "at", auditKey.Where(), "checkpoint_interval", cfg.checkpointEvery.String())
	checkpoints := &audit.Checkpointer{Log: st, Key: auditKey, Actor: "scepd", Now: time.Now}
	own.goLoop("audit checkpoints", func(ctx context.Context) { auditCheckpoints(ctx, checkpoints, cfg.checkpointEvery, met, log) })
	if cfg.checkpointEvery > 0 {
		// The last checkpoint covers what this replica wrote, once its
		// requests and loops are done; sinks get it from whichever
		// replica delivers next.
		own.drain("final audit checkpoint", func(ctx context.Context) error {
			checkpoint(ctx, checkpoints, met, log)
			return nil
		})
	}
	return own.wait(ctx)
}

// auditCheckpoints verifies the whole audit log at start (so that a
// tampered log is reported then, and later runs verify only what was
// appended since) and signs a checkpoint every interval (none when
// nothing was written since the last one).
func auditCheckpoints(ctx context.Context, c *audit.Checkpointer, every time.Duration, met *metrics.Metrics, log *slog.Logger) {
	if every <= 0 {
		return
	}
	switch r, err := c.Verify(ctx); {
	case err != nil:
		if ctx.Err() == nil {
			log.Error("audit log verification failed", "error", err.Error())
		}
	case r.Problem != "":
		met.AuditVerified(r.Last, time.Now(), true)
		log.Error("AUDIT LOG TAMPERED", "event", r.BadSeq, "problem", r.Problem)
	default:
		log.Info("audit log verified", "events", r.Events, "unkeyed", r.Unkeyed)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			checkpoint(ctx, c, met, log)
		}
	}
}

// checkpoint signs one checkpoint; a broken log gets none, and an error
// in the log for the operator.
func checkpoint(ctx context.Context, c *audit.Checkpointer, met *metrics.Metrics, log *slog.Logger) {
	cp, r, err := c.Checkpoint(ctx, true)
	switch {
	case err != nil:
		if ctx.Err() == nil {
			log.Error("audit checkpoint failed", "error", err.Error())
		}
	case r.Problem != "":
		met.AuditVerified(r.Last, time.Now(), true)
		log.Error("AUDIT LOG TAMPERED: no checkpoint signed", "event", r.BadSeq, "problem", r.Problem)
	case cp != nil:
		met.AuditVerified(cp.Seq, cp.Time, false)
		log.Info("audit checkpoint signed", "seq", cp.Seq, "head", cp.Head)
	default: // the newest event is a checkpoint already
		met.AuditVerified(r.Last, time.Now(), false)
	}
}

// zeroConfig creates the default CA and profile on first start.
func zeroConfig(ctx context.Context, cfg serveConfig, st store.Store, ks keys.Source, stdout io.Writer, log *slog.Logger) error {
	if !cfg.caKeyType.Valid() {
		return fmt.Errorf("--ca-key-type %q: want one of %v", cfg.caKeyType, ca.KeyTypes())
	}
	if !cfg.raKeyType.RSA() {
		return fmt.Errorf("--ra-key-type %q: an RA key must be RSA (%s)", cfg.raKeyType, ca.KeyTypeList(ca.RAKeyTypes()))
	}
	if cfg.challenge != "" && len(cfg.challenge) < 8 {
		return errors.New("SCEPD_CHALLENGE must have at least 8 characters")
	}
	switch cfg.challengeMode {
	case store.ChallengeStatic, store.ChallengeDynamic:
	default:
		return fmt.Errorf("--challenge-mode %q: want static or dynamic", cfg.challengeMode)
	}
	res, err := provision.EnsureDefault(ctx, st, ks, provision.Options{
		CAKeyType: cfg.caKeyType, RAKeyType: cfg.raKeyType, ChallengeMode: cfg.challengeMode, Challenge: cfg.challenge, Now: time.Now, Log: log,
	})
	if err != nil {
		return fmt.Errorf("provisioning: %w", err)
	}
	if res.GeneratedChallenge != "" {
		// Shown once, on stdout, not in the log (stderr); only its hash is
		// stored. A service manager may keep stdout too: docs say to set
		// SCEPD_CHALLENGE(_FILE) there.
		fmt.Fprintf(stdout, "\nThe default profile's challenge password (shown only now; set SCEPD_CHALLENGE to choose your own):\n\n    %s\n\n", res.GeneratedChallenge)
	}
	return nil
}

// profileRefresh is how often a replica looks for profile and CA changes
// others made.
const profileRefresh = 15 * time.Second

// refreshProfiles picks up profile and CA changes other replicas (or the
// CLI on the database) made: every interval it compares a cheap
// fingerprint of the profile rows with loaded, the one taken before what
// is served was loaded, and reloads when they differ. A reload that fails
// (the database a moment away, a profile this replica cannot load) is
// tried again until one succeeds, less often the longer it fails:
// meanwhile the replica serves the profiles as they were, and says so.
func refreshProfiles(ctx context.Context, st store.Store, reload func(context.Context) error, log *slog.Logger, every time.Duration, loaded string) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	failures, next := 0, time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		fp, err := profilesFingerprint(ctx, st)
		if err != nil || fp == loaded || time.Now().Before(next) {
			continue
		}
		if err := reload(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			// Tried again, less often the longer it fails (a load
			// unseals keys: KDF work), at most maxReloadBackoff apart.
			failures++
			wait := min(every<<min(failures, 16), maxReloadBackoff)
			next = time.Now().Add(wait)
			log.Error("reloading profiles failed; serving them as they were until a reload succeeds", "error", err.Error(),
				"failures", failures, "retry_in", wait.String())
			continue
		}
		loaded, failures, next = fp, 0, time.Time{}
		log.Info("profiles reloaded")
	}
}

// maxReloadBackoff bounds the wait between reloads that keep failing.
const maxReloadBackoff = 5 * time.Minute

// expirePending rejects pending requests nobody decided in time and
// purges one-time challenges that expired unused.
func expirePending(ctx context.Context, st store.Store, log *slog.Logger) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		if n, err := st.ExpirePending(ctx, time.Now()); err != nil && ctx.Err() == nil {
			log.Error("expiring pending requests failed", "error", err.Error())
		} else if n > 0 {
			log.Info("pending requests expired", "count", n)
		}
		if n, err := st.PurgeChallenges(ctx, time.Now()); err != nil && ctx.Err() == nil {
			log.Error("purging expired challenges failed", "error", err.Error())
		} else if n > 0 {
			log.Info("expired challenges purged", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func profilesFingerprint(ctx context.Context, st store.Store) (string, error) {
	ps, err := st.ListProfiles(ctx)
	if err != nil {
		return "", err
	}
	cas, err := st.ListCAs(ctx)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	now := time.Now()
	for _, p := range ps {
		fmt.Fprintf(&b, "%s@%d%s;", p.ID, p.Updated.UnixNano(), provision.Phase(p, now))
	}
	for _, c := range cas {
		fmt.Fprintf(&b, "%s;", c.ID)
	}
	return b.String(), nil
}

func scepURL(a net.Addr, profile string) string {
	host, port, _ := net.SplitHostPort(a.String())
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		if h, err := os.Hostname(); err == nil {
			host = h
		}
	}
	return fmt.Sprintf("http://%s/scep/%s/pkiclient.exe", net.JoinHostPort(host, port), profile)
}

// maxConcurrent is how many PKIOperations run at once: one per CPU with
// SQLite (measured: more raise CPU per enrollment and tail latency), two
// per CPU with PostgreSQL, where each waits on network round trips.
func maxConcurrent(cfg serveConfig) int {
	if cfg.maxConcurrent > 0 {
		return cfg.maxConcurrent
	}
	if cfg.store.database != "" {
		return 2 * runtime.NumCPU()
	}
	return runtime.NumCPU()
}
