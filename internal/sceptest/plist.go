package sceptest

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"testing"
)

// PlistJSON parses a property list with Python's plistlib (a real plist
// parser, independent of scepd's writer) and returns it as JSON values;
// data becomes {"$data": base64}. Without python3 the test is skipped
// (failed in CI).
func PlistJSON(t testing.TB, b []byte) map[string]any {
	t.Helper()
	py := RequireTool(t, "python3", "python3")
	const script = `import sys, json, plistlib, base64
def conv(v):
    if isinstance(v, bytes): return {"$data": base64.b64encode(v).decode()}
    if isinstance(v, dict): return {k: conv(x) for k, x in v.items()}
    if isinstance(v, list): return [conv(x) for x in v]
    return v
json.dump(conv(plistlib.loads(sys.stdin.buffer.read(), fmt=plistlib.FMT_XML)), sys.stdout)`
	cmd := exec.Command(py, "-c", script)
	cmd.Stdin = bytes.NewReader(b)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("plistlib refused the property list: %v\n%s\n%s", err, stderr.String(), b)
	}
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	return m
}
