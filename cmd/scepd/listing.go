package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Every list and show command writes through these: -o text (a table for
// a listing, "name: value" lines for one object), json (the API's view)
// or csv (a header row named after the fields, then one row each).

// field is one column of a listing, one line of a show.
type field[T any] struct {
	// name labels a show's line; a table's heading upper-cases it, a CSV
	// header lower-cases it and replaces its spaces with underscores.
	name  string
	value func(T) string
	// optional leaves the line out of a show when the value is empty.
	optional bool
}

func headings[T any](fields []field[T], csvNames bool) []string {
	out := make([]string, len(fields))
	for i, f := range fields {
		if csvNames {
			out[i] = strings.ReplaceAll(strings.ToLower(f.name), " ", "_")
		} else {
			out[i] = strings.ToUpper(f.name)
		}
	}
	return out
}

func values[T any](fields []field[T], v T) []string {
	out := make([]string, len(fields))
	for i, f := range fields {
		out[i] = f.value(v)
	}
	return out
}

func checkFormat(format string) error {
	switch format {
	case "text", "json", "csv":
		return nil
	}
	return fmt.Errorf("-o %s: want text, json or csv", format)
}

// listWriter writes a listing a page at a time, so a listing of any size
// is never held whole: text as a table (aligned per page), json as one
// array, csv with a header row. table names the text columns, csvFields
// the CSV ones (nil: the table's).
type listWriter[T any] struct {
	w         io.Writer
	format    string
	table     []field[T]
	csvFields []field[T]
	tw        *tabwriter.Writer
	cw        *csv.Writer
	rows      int
}

func newListWriter[T any](w io.Writer, format string, table, csvFields []field[T]) (*listWriter[T], error) {
	if err := checkFormat(format); err != nil {
		return nil, err
	}
	if csvFields == nil {
		csvFields = table
	}
	l := &listWriter[T]{w: w, format: format, table: table, csvFields: csvFields}
	switch format {
	case "text":
		l.tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(l.tw, strings.Join(headings(table, false), "\t"))
	case "json":
		if _, err := io.WriteString(w, "["); err != nil {
			return nil, err
		}
	case "csv":
		l.cw = csv.NewWriter(w)
		if err := l.cw.Write(headings(csvFields, true)); err != nil {
			return nil, err
		}
	}
	return l, nil
}

func (l *listWriter[T]) write(page []T) error {
	for _, v := range page {
		switch l.format {
		case "text":
			fmt.Fprintln(l.tw, strings.Join(values(l.table, v), "\t"))
		case "json":
			b, err := json.MarshalIndent(v, "  ", "  ")
			if err != nil {
				return err
			}
			sep := ",\n  "
			if l.rows == 0 {
				sep = "\n  "
			}
			if _, err := io.WriteString(l.w, sep+string(b)); err != nil {
				return err
			}
		case "csv":
			if err := l.cw.Write(values(l.csvFields, v)); err != nil {
				return err
			}
		}
		l.rows++
	}
	return l.flush()
}

func (l *listWriter[T]) flush() error {
	switch {
	case l.tw != nil:
		return l.tw.Flush()
	case l.cw != nil:
		l.cw.Flush()
		return l.cw.Error()
	}
	return nil
}

// close ends the listing (the JSON array's bracket).
func (l *listWriter[T]) close() error {
	if l.format == "json" {
		end := "\n]\n"
		if l.rows == 0 {
			end = "]\n"
		}
		if _, err := io.WriteString(l.w, end); err != nil {
			return err
		}
	}
	return l.flush()
}

// printList writes a whole listing.
func printList[T any](w io.Writer, format string, rows []T, table, csvFields []field[T]) error {
	if format == "json" {
		return writeJSON(w, rows) // as the API answers it (null for none)
	}
	l, err := newListWriter(w, format, table, csvFields)
	if err != nil {
		return err
	}
	if err := l.write(rows); err != nil {
		return err
	}
	return l.close()
}

// printRecord writes one object: text as "name: value" lines, json as the
// object, csv as a header row and one row.
func printRecord[T any](w io.Writer, format string, v T, fields []field[T]) error {
	if err := checkFormat(format); err != nil {
		return err
	}
	switch format {
	case "json":
		return writeJSON(w, v)
	case "csv":
		cw := csv.NewWriter(w)
		cw.Write(headings(fields, true))
		cw.Write(values(fields, v))
		cw.Flush()
		return cw.Error()
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, f := range fields {
		if s := f.value(v); s != "" || !f.optional {
			fmt.Fprintf(tw, "%s:\t%s\n", f.name, s)
		}
	}
	return tw.Flush()
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
