package main

import (
	"bytes"
	"strings"
	"testing"
)

type row struct {
	ID   string `json:"id"`
	Note string `json:"note,omitempty"`
}

func rowFields() []field[row] {
	return []field[row]{
		{name: "id", value: func(r row) string { return r.ID }},
		{name: "the note", optional: true, value: func(r row) string { return r.Note }},
	}
}

// TestListingFormats: one helper writes every list and show command's
// text, json and csv, and refuses any other format before writing.
func TestListingFormats(t *testing.T) {
	rows := []row{{ID: "a", Note: "x, \"quoted\""}, {ID: "bb"}}
	for _, tt := range []struct {
		format string
		list   string
		show   string
	}{
		{"text", "ID  THE NOTE\na   x, \"quoted\"\nbb  \n", "id:  bb\n"},
		{"csv", "id,the_note\na,\"x, \"\"quoted\"\"\"\nbb,\n", "id,the_note\nbb,\n"},
		{"json", "[\n  {\n    \"id\": \"a\",\n    \"note\": \"x, \\\"quoted\\\"\"\n  },\n  {\n    \"id\": \"bb\"\n  }\n]\n", "{\n  \"id\": \"bb\"\n}\n"},
	} {
		var list, show bytes.Buffer
		if err := printList(&list, tt.format, rows, rowFields(), nil); err != nil || list.String() != tt.list {
			t.Errorf("-o %s list: %v\n%q\nwant\n%q", tt.format, err, list.String(), tt.list)
		}
		if err := printRecord(&show, tt.format, rows[1], rowFields()); err != nil || show.String() != tt.show {
			t.Errorf("-o %s show: %v\n%q\nwant\n%q", tt.format, err, show.String(), tt.show)
		}
		// The streaming writer (cert list --all) writes what printList does, page by page.
		var paged bytes.Buffer
		l, err := newListWriter(&paged, tt.format, rowFields(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.write(rows[:1]); err != nil {
			t.Fatal(err)
		}
		if err := l.write(rows[1:]); err != nil {
			t.Fatal(err)
		}
		if err := l.close(); err != nil {
			t.Fatal(err)
		}
		if tt.format != "text" && paged.String() != tt.list { // a table aligns per page
			t.Errorf("-o %s paged: %q, want %q", tt.format, paged.String(), tt.list)
		}
	}
	var out bytes.Buffer
	if err := printList(&out, "yaml", rows, rowFields(), nil); err == nil || !strings.Contains(err.Error(), "want text, json or csv") || out.Len() != 0 {
		t.Errorf("-o yaml: %v, wrote %q", err, out.String())
	}
	if err := printRecord(&out, "xml", rows[0], rowFields()); err == nil || out.Len() != 0 {
		t.Errorf("-o xml show: %v, wrote %q", err, out.String())
	}
}
