package console

import (
	"fmt"
	"strings"
	"time"

	"github.com/scepd/scepd/internal/admin"
	"github.com/scepd/scepd/internal/store"
)

// setting is one thing that decides how a profile behaves, as the
// profile page shows it: its value, and whether that is the default
// (the profile does not set it).
type setting struct {
	Name, Value string
	Default     bool
}

type settingGroup struct {
	Title string
	Rows  []setting
}

// dur writes a duration as operators write it (24h, not 24h0m0s).
func dur(d time.Duration) string { return admin.ShortDuration(d) }

// profileSettings lists everything that decides what a profile does with
// a request, defaults written out (never an empty policy).
func profileSettings(p admin.ProfileView) []settingGroup {
	set := func(name, value, def string) setting {
		if value == "" {
			return setting{Name: name, Value: def, Default: true}
		}
		return setting{Name: name, Value: value}
	}
	list := func(v []string) string { return strings.Join(v, ", ") }
	d := func(v time.Duration) string {
		if v == 0 {
			return ""
		}
		return dur(v)
	}
	lc, pol := p.Lifecycle, p.Policy

	approval := []setting{set("Approval", lc.Approval, "auto: issued at once")}
	if lc.Approval == "manual" {
		approval = append(approval, set("Pending requests expire after", d(time.Duration(lc.PendingTTL)), "72h"))
	}

	r := lc.Renewal
	var renewal []setting
	if r.Disabled {
		renewal = append(renewal, setting{Name: "Renewal with the old certificate", Value: "refused"})
	} else {
		renewal = append(renewal, setting{Name: "Renewal with the old certificate", Value: "accepted", Default: true})
		window := ""
		if r.Window > 0 {
			window = fmt.Sprintf("after %.0f%% of the old certificate's lifetime", r.Window*100)
		}
		renewal = append(renewal, set("Renewal window", window, "any time"))
		reuse := ""
		if r.AllowKeyReuse != nil && !*r.AllowKeyReuse {
			reuse = "refused: a new key is required"
		}
		renewal = append(renewal, set("Key reuse", reuse, "allowed"))
		renewal = append(renewal, set("Old certificate after renewal", map[bool]string{true: "revoked (superseded)"}[r.RevokeOld], "kept until it expires"))
		renewal = append(renewal, set("Subject change on renewal", map[bool]string{true: "allowed"}[r.AllowSubjectChange], "refused"))
		renewal = append(renewal, set("Renews certificates of", list(r.FromProfiles), "this profile only"))
		if lc.Approval == "manual" {
			renewal = append(renewal, set("Renewal approval", r.Approval, "auto: the device was approved once"))
		}
	}

	var notices setting
	switch {
	case lc.ExpiryNotices == nil:
		notices = setting{Name: "Expiry notices", Value: "720h and 168h before notAfter", Default: true}
	case len(lc.ExpiryNotices) == 0:
		notices = setting{Name: "Expiry notices", Value: "off"}
	default:
		var ds []string
		for _, n := range lc.Notices() {
			ds = append(ds, dur(n))
		}
		notices = setting{Name: "Expiry notices", Value: strings.Join(ds, ", ") + " before notAfter"}
	}
	rollover := setting{Name: "CA rollover", Value: "none planned", Default: true}
	if lc.Rollover.NextCA != "" {
		rollover = setting{Name: "CA rollover", Value: "to " + lc.Rollover.NextCA + " at " + lc.Rollover.At.UTC().Format("2006-01-02 15:04 UTC")}
	}

	challenge := []setting{{Name: "Mode", Value: p.ChallengeMode}}
	if p.ChallengeMode == store.ChallengeDynamic {
		challenge = append(challenge, setting{Name: "One-time challenges live", Value: p.ChallengeTTL},
			setting{Name: "At most pending", Value: fmt.Sprint(p.MaxPending)})
	}

	requireCN := "yes"
	if pol.Subject.RequireCN != nil && !*pol.Subject.RequireCN {
		requireCN = "no"
	}
	rsa := ""
	switch {
	case pol.Keys.RSAMinBits < 0:
		rsa = "refused"
	case pol.Keys.RSAMinBits > 0:
		rsa = fmt.Sprintf("at least %d bits", pol.Keys.RSAMinBits)
	}
	curves := list(pol.Keys.Curves)
	if curves == "none" {
		curves = "refused"
	}
	policy := []setting{
		set("Validity", d(time.Duration(pol.Validity)), "8760h (one year), never past the CA's notAfter"),
		set("Backdate (clock skew)", d(time.Duration(pol.Backdate)), "5m"),
		set("Subject", list(pol.Subject.Template), "the CSR's subject, its allowed attributes"),
		set("Subject attributes allowed", list(pol.Subject.Allowed), "CN, O, OU, C, ST, L, SERIALNUMBER"),
		{Name: "Common name required", Value: requireCN, Default: pol.Subject.RequireCN == nil},
		set("Key usage", list(pol.KeyUsage), "digitalSignature, plus keyEncipherment for RSA keys"),
		set("Extended key usage", list(pol.ExtKeyUsage), "clientAuth"),
		sansAllowed(pol.SANs.DNS, pol.SANs.IP, pol.SANs.Email, pol.SANs.URI),
		set("RSA keys", rsa, "at least 2048 bits"),
		set("ECDSA curves", curves, "P-256, P-384"),
	}
	maxSANs := ""
	if pol.SANs.Max > 0 {
		maxSANs = fmt.Sprint(pol.SANs.Max)
	}
	policy = append(policy, set("At most SANs in a request", maxSANs, "32"), set("SANs added to every certificate", list(pol.SANs.Extra), "none"))
	if pol.SANs.AllowWildcard {
		policy = append(policy, setting{Name: "Wildcard DNS SANs", Value: "allowed"})
	}
	return []settingGroup{
		{"Approval", approval},
		{"Challenge", challenge},
		{"Renewal", renewal},
		{"Expiry and rollover", []setting{notices, rollover}},
		{"Certificate policy", policy},
	}
}

// sansAllowed says which SANs of a request pass: with no patterns, all;
// once any type has patterns, only matching values of the listed types.
func sansAllowed(dns, ip, email, uri []string) setting {
	var parts []string
	for _, t := range []struct {
		name string
		v    []string
	}{{"DNS", dns}, {"IP", ip}, {"email", email}, {"URI", uri}} {
		if len(t.v) > 0 {
			parts = append(parts, t.name+" matching "+strings.Join(t.v, ", "))
		}
	}
	if len(parts) == 0 {
		return setting{Name: "SANs that pass", Value: "every SAN of the request", Default: true}
	}
	return setting{Name: "SANs that pass", Value: strings.Join(parts, "; ") + " (no other type)"}
}
