package e2e

import (
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/scepd/scepd/internal/sceptest"
)

// TestConsoleCopyOnPlainHTTP: on plain HTTP under a host name (not a
// secure context: no clipboard API), Copy selects the text and says to
// press Ctrl+C, so the operator can still copy it.
func TestConsoleCopyOnPlainHTTP(t *testing.T) {
	s := sceptest.Start(t, sceptest.Options{DataDir: filepath.Join(t.TempDir(), "data"), Env: []string{"SCEPD_CHALLENGE=" + challenge}})
	token := newToken(t, s, "auditor")
	_, port, _ := net.SplitHostPort(s.Addr)
	// scepd.test resolves to the server: an http:// origin that is not
	// loopback, so not a secure context.
	ctx := browser(t, chromedp.Flag("host-resolver-rules", "MAP scepd.test 127.0.0.1"))
	base := "http://scepd.test:" + port + "/console"
	var secure bool
	run(t, ctx, "sign in", chromedp.Navigate(base+"/profiles"), chromedp.WaitVisible("#token", chromedp.ByID),
		chromedp.SendKeys("#token", token, chromedp.ByID), chromedp.Submit("#token", chromedp.ByID),
		chromedp.WaitVisible("#profiles", chromedp.ByID), chromedp.Evaluate(`window.isSecureContext`, &secure))
	if secure {
		t.Fatal("the test page is a secure context; it must not be")
	}
	var want, selected, note string
	run(t, ctx, "copy", chromedp.AttributeValue(`#profiles button.copy`, "data-copy", &want, nil, chromedp.ByQuery),
		chromedp.Click(`#profiles button.copy`, chromedp.ByQuery),
		chromedp.WaitVisible(`.copy-note`, chromedp.ByQuery), chromedp.Text(`.copy-note`, &note, chromedp.ByQuery),
		chromedp.Evaluate(`(function () {
			var a = document.activeElement;
			if (a && a.tagName === 'INPUT') return a.value.substring(a.selectionStart, a.selectionEnd);
			return window.getSelection().toString();
		})()`, &selected))
	if want == "" || strings.TrimSpace(selected) != want {
		t.Errorf("after Copy the selection is %q, want %q", selected, want)
	}
	if !strings.Contains(note, "Ctrl+C") {
		t.Errorf("after Copy the page says %q, want it to say press Ctrl+C", note)
	}
}
