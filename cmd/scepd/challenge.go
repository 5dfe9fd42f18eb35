package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/scepd/scepd/internal/admin"
)

// challengeCmd mints one-time challenges, on the database or through a
// running server's API (the way an MDM would).
func challengeCmd(args []string, stdout, stderr io.Writer) int {
	return runAdmin("challenge", map[string]command{
		"create": {"--profile P [--bind CN-or-SAN]", func(ctx context.Context, f *adminFlags, args []string, w io.Writer) error {
			profile := f.fs.String("profile", "default", "profile the challenge is for")
			bind := f.fs.String("bind", "", "only a request carrying this CN or SAN value may use it")
			if _, err := f.parse(args); err != nil {
				return err
			}
			return withAPI(ctx, f, func(api admin.API) error {
				c, err := api.CreateChallenge(ctx, *profile, *bind)
				if err != nil {
					return err
				}
				return f.print(w, c, func(tw *tabwriter.Writer) { fmt.Fprintln(tw, c.Challenge) })
			})
		}},
		"pending": {"--profile P", func(ctx context.Context, f *adminFlags, args []string, w io.Writer) error {
			profile := f.fs.String("profile", "default", "profile")
			if _, err := f.parse(args); err != nil {
				return err
			}
			return withAPI(ctx, f, func(api admin.API) error {
				list, err := api.ListChallenges(ctx, *profile)
				if err != nil {
					return err
				}
				return f.print(w, list, func(tw *tabwriter.Writer) {
					fmt.Fprintln(tw, "ID\tBOUND TO\tCREATED\tEXPIRES\tBY")
					for _, c := range list {
						fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.ID, c.BoundTo, c.Created.Format(time.RFC3339), c.Expires.Format(time.RFC3339), c.By)
					}
				})
			})
		}},
		"cancel": {"--profile P ID", func(ctx context.Context, f *adminFlags, args []string, w io.Writer) error {
			profile := f.fs.String("profile", "default", "profile")
			pos, err := f.parse(args)
			if err != nil || len(pos) != 1 {
				return errOr(err, "want one challenge ID (see challenge pending)")
			}
			return withAPI(ctx, f, func(api admin.API) error {
				if err := api.CancelChallenge(ctx, *profile, pos[0]); err != nil {
					return err
				}
				_, err := fmt.Fprintln(w, "cancelled")
				return err
			})
		}},
		"rotate": {"--profile P [--overlap 24h] (new secret from env SCEPD_NEW_CHALLENGE, else generated and printed)", func(ctx context.Context, f *adminFlags, args []string, w io.Writer) error {
			profile := f.fs.String("profile", "default", "profile whose static challenge to replace")
			overlap := f.fs.Duration("overlap", 0, "how long the old challenge is still accepted")
			if _, err := f.parse(args); err != nil {
				return err
			}
			return withAPI(ctx, f, func(api admin.API) error {
				c, err := api.RotateChallenge(ctx, *profile, os.Getenv("SCEPD_NEW_CHALLENGE"), *overlap)
				if err != nil {
					return err
				}
				return f.print(w, c, func(tw *tabwriter.Writer) {
					if c.Challenge != "" {
						fmt.Fprintln(tw, c.Challenge)
					}
				})
			})
		}},
	}, args, stdout, stderr)
}

func entityCmd(args []string, stdout, stderr io.Writer) int {
	return runAdmin("entity", map[string]command{
		"register": {"--profile P --username CN [--uses N] [--ttl 168h] (code from env SCEPD_ENTITY_CODE, else generated and printed)", func(ctx context.Context, f *adminFlags, args []string, w io.Writer) error {
			profile := f.fs.String("profile", "default", "profile with challenge mode entity")
			username := f.fs.String("username", "", "the CN the certificate will carry")
			uses := f.fs.Int("uses", 1, "how many enrollments the code allows")
			ttl := f.fs.Duration("ttl", 7*24*time.Hour, "how long the code is valid")
			if _, err := f.parse(args); err != nil {
				return err
			}
			return withAPI(ctx, f, func(api admin.API) error {
				e, err := api.PutEntity(ctx, *profile, admin.EntityRequest{Username: *username, Code: os.Getenv("SCEPD_ENTITY_CODE"), Uses: *uses, TTL: ttl.String()})
				if err != nil {
					return err
				}
				return f.print(w, e, func(tw *tabwriter.Writer) {
					if e.Code != "" {
						fmt.Fprintln(tw, e.Code)
					} else {
						fmt.Fprintf(tw, "registered %s until %s\n", e.Username, e.Expires.Format(time.RFC3339))
					}
				})
			})
		}},
		"list": {"--profile P", func(ctx context.Context, f *adminFlags, args []string, w io.Writer) error {
			profile := f.fs.String("profile", "default", "profile")
			if _, err := f.parse(args); err != nil {
				return err
			}
			return withAPI(ctx, f, func(api admin.API) error {
				es, err := api.ListEntities(ctx, *profile)
				if err != nil {
					return err
				}
				return printList(w, *f.output, es, []field[admin.EntityView]{
					{name: "username", value: func(e admin.EntityView) string { return e.Username }},
					{name: "uses left", value: func(e admin.EntityView) string { return fmt.Sprint(e.UsesLeft) }},
					{name: "expires", value: func(e admin.EntityView) string { return e.Expires.Format(time.RFC3339) }},
				}, nil)
			})
		}},
	}, args, stdout, stderr)
}
