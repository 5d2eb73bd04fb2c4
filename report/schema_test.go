package report

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/invopop/jsonschema"
)

// schemaDir is where the committed schemas live.
const schemaDir = "../docs/schema"

// schemas generates the JSON Schemas (2020-12) of connlimit's JSON from
// the Go types, with the field comments as descriptions: a run's summary
// (and a merged run's), a shard's (the same, shard required), and
// inspect's.
func schemas(t *testing.T) map[string][]byte {
	t.Helper()
	r := &jsonschema.Reflector{BaseSchemaID: "https://github.com/connlimit/connlimit/docs/schema"}
	// Each package's import path joined with its directory from here.
	for base, dir := range map[string]string{"github.com/connlimit/connlimit/report": ".", "github.com/connlimit/connlimit/limits": "../limits"} {
		if err := r.AddGoComments(base, dir); err != nil {
			t.Fatal(err)
		}
	}
	gen := func(v any, id, title string, also ...string) []byte {
		s := r.Reflect(v)
		nullable(s, reflect.TypeOf(v), map[reflect.Type]bool{})
		s.ID = jsonschema.ID("https://github.com/connlimit/connlimit/docs/schema/" + id)
		s.Title = title
		if len(also) > 0 {
			def := s.Definitions[string(s.Ref[len("#/$defs/"):])]
			def.Required = append(def.Required, also...)
		}
		b, err := json.MarshalIndent(s, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		return append(b, '\n')
	}
	return map[string][]byte{
		"summary.schema.json": gen(&Summary{}, "summary.schema.json", "connlimit run --json (and connlimit merge --json)"),
		"shard.schema.json":   gen(&Summary{}, "shard.schema.json", "connlimit run --shard I/S --json, --shard-out", "shard"),
		"inspect.schema.json": gen(&Inspection{}, "inspect.schema.json", "connlimit inspect --json"),
	}
}

// nullable lets a key be null where encoding/json writes null: a pointer,
// slice or map field without omitempty.
func nullable(s *jsonschema.Schema, t reflect.Type, seen map[reflect.Type]bool) {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || seen[t] {
		return
	}
	seen[t] = true
	def := s.Definitions[t.Name()]
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		nullable(s, f.Type, seen)
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if def == nil || name == "-" || strings.Contains(opts, "omitempty") {
			continue
		}
		switch f.Type.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Map:
			if p, ok := def.Properties.Get(name); ok {
				def.Properties.Set(name, &jsonschema.Schema{AnyOf: []*jsonschema.Schema{p, {Type: "null"}}, Description: p.Description})
				p.Description = ""
			}
		}
	}
}

// The committed schemas are what the types generate: a change to the
// types without `go test ./report -run TestSchemasCommitted -update` fails.
func TestSchemasCommitted(t *testing.T) {
	for name, b := range schemas(t) {
		path := filepath.Join(schemaDir, name)
		if *update {
			if err := os.MkdirAll(schemaDir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, b) {
			t.Errorf("%s differs from what the Go types generate: run go test ./report -run TestSchemasCommitted -update, and see docs/json.md on schema_version", path)
		}
	}
}
