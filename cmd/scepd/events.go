package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/scepd/scepd/internal/events"
	"github.com/scepd/scepd/internal/metrics"
	"github.com/scepd/scepd/internal/provision"
	"github.com/scepd/scepd/internal/store"
)

// eventRoutes builds the configured sinks. Without a config file, events
// go to the log (sink "log").
func eventRoutes(cfg serveConfig, log *slog.Logger) ([]events.Route, error) {
	if !cfg.configured || cfg.file == nil {
		return []events.Route{{Name: "log", Sink: &events.Log{Logger: log}}}, nil
	}
	var routes []events.Route
	for i, s := range cfg.file.Events.Sinks {
		r := events.Route{Name: s.Name, Filter: events.Filter{Types: s.Events, Profiles: s.Profiles}, GiveUpAfter: time.Duration(s.GiveUpAfter)}
		switch s.Type {
		case "webhook":
			secret := os.Getenv(s.SecretEnv)
			if secret == "" {
				return nil, fmt.Errorf("events.sinks[%d].secret_env: %s is not set", i, s.SecretEnv)
			}
			hook := &events.Webhook{URL: s.URL, Secret: []byte(secret), Timeout: time.Duration(s.Timeout), Username: s.Username}
			if s.Username != "" {
				if hook.Password = os.Getenv(s.PasswordEnv); hook.Password == "" {
					return nil, fmt.Errorf("events.sinks[%d].password_env: %s is not set", i, s.PasswordEnv)
				}
			}
			r.Sink = hook
		case "log":
			r.Sink = &events.Log{Logger: log}
		default:
			return nil, fmt.Errorf("events.sinks[%d].type: %q: want webhook or log", i, s.Type)
		}
		routes = append(routes, r)
	}
	return routes, nil
}

// startEvents runs the event dispatcher and the expiry scan, owned by own,
// when any sink is configured.
func startEvents(own *owner, cfg serveConfig, st store.Store, met *metrics.Metrics, log *slog.Logger) error {
	routes, err := eventRoutes(cfg, log)
	if err != nil || len(routes) == 0 {
		return err
	}
	lease := 30 * time.Second
	for _, r := range routes {
		if w, ok := r.Sink.(*events.Webhook); ok {
			lease = max(lease, 3*w.Timeout)
		}
	}
	host, _ := os.Hostname()
	var nonce [4]byte
	rand.Read(nonce[:])
	d := &events.Dispatcher{Store: st, Routes: routes, Holder: fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(nonce[:])),
		Lease: lease, Log: log, Observer: met}
	own.goLoop("event dispatch", d.Run)
	interval := time.Hour
	if cfg.file != nil && cfg.file.Events.ExpiryScan > 0 {
		interval = time.Duration(cfg.file.Events.ExpiryScan)
	}
	x := &events.Expiry{Store: st, Log: log, Thresholds: func(p store.Profile) []time.Duration {
		l, err := provision.StoredLifecycle(p)
		if err != nil {
			log.Error("profile lifecycle unreadable; default expiry notices apply", "profile", p.ID, "error", err.Error())
		}
		return l.Notices()
	}}
	own.goLoop("expiry scan", func(ctx context.Context) { x.Run(ctx, interval) })
	names := make([]string, len(routes))
	for i, r := range routes {
		names[i] = r.Name
	}
	log.Info("sending events", "sinks", names, "expiry_scan", interval.String())
	return nil
}
