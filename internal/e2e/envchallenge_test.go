package e2e

import (
	"strings"
	"testing"

	"github.com/scepd/scepd/internal/sceptest"
)

// TestRotatedChallengeSurvivesRestart: the default profile's challenge
// rotated through the API (the environment's leaked) stays in force, with
// its overlap, when the server restarts with the same SCEPD_CHALLENGE, and
// the log says the environment's is not in force; a changed SCEPD_CHALLENGE
// is applied.
func TestRotatedChallengeSurvivesRestart(t *testing.T) {
	s := sceptest.Start(t, sceptest.Options{Env: []string{"SCEPD_CHALLENGE=sweep-1-secret"}})
	tok, err := cli(t, s, nil, "token", "create", "--role", "admin", "--data", s.DataDir)
	if err != nil {
		t.Fatalf("token create: %v\n%s", err, tok)
	}
	tok = strings.TrimSpace(tok)
	rotate := func(pw, overlap string) {
		t.Helper()
		if code, body := api(t, s, tok, "POST", "/api/v1/profiles/default/challenge/rotate", map[string]any{"password": pw, "overlap": overlap}); code != 200 {
			t.Fatalf("rotate: %d %v", code, body)
		}
	}
	enrolls := func(cn, pw string) bool {
		t.Helper()
		_, err := enrollWith(s, "default", cn, pw)
		return err == nil
	}

	rotate("mdm-rotated-2025", "24h")
	s.Restart()
	if !enrolls("rotated", "mdm-rotated-2025") || !enrolls("overlap", "sweep-1-secret") {
		t.Fatalf("after a restart with the same SCEPD_CHALLENGE, the rotated challenge or its overlap is gone\n%s", s.Log())
	}
	if !s.LogContains("changed since SCEPD_CHALLENGE was applied") || strings.Contains(s.Log(), "challenge settings changed") {
		t.Errorf("the log does not say the environment's challenge is not in force, or says it was applied:\n%s", s.Log())
	}

	rotate("mdm-rotated-2026", "")
	s.Restart()
	if enrolls("retired", "sweep-1-secret") || !enrolls("rotated-again", "mdm-rotated-2026") {
		t.Fatalf("after a restart with the retired SCEPD_CHALLENGE, it is in force again or the rotated one is not\n%s", s.Log())
	}

	s.Env = append(s.Env, "SCEPD_CHALLENGE=sweep-2-secret")
	s.Restart()
	if !enrolls("new-env", "sweep-2-secret") || enrolls("replaced", "mdm-rotated-2026") {
		t.Fatalf("a changed SCEPD_CHALLENGE was not applied\n%s", s.Log())
	}
}
