package main

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// compiled are the committed schemas, compiled once for every test.
var compiled sync.Map // name -> *jsonschema.Schema

// validate checks one JSON document against a committed schema under
// docs/schema: every summary the tests read passes through it.
func validate(t *testing.T, name string, b []byte) {
	t.Helper()
	v, ok := compiled.Load(name)
	if !ok {
		sch, err := jsonschema.NewCompiler().Compile(filepath.Join("docs", "schema", name))
		if err != nil {
			t.Fatalf("schema %s: %v", name, err)
		}
		v, _ = compiled.LoadOrStore(name, sch)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if err := v.(*jsonschema.Schema).Validate(doc); err != nil {
		t.Errorf("a JSON document does not validate against docs/schema/%s: %v", name, err)
	}
}

// schemaFor is the schema a summary's JSON is checked against.
func schemaFor(b []byte) string {
	var probe struct {
		Shard json.RawMessage `json:"shard"`
	}
	if json.Unmarshal(b, &probe) == nil && len(probe.Shard) > 0 {
		return "shard.schema.json"
	}
	return "summary.schema.json"
}

// The schema rejects what it must: a real summary passes, and fails with a
// key of another type, a key missing, or a key that is not the summary's.
func TestSchemaRejects(t *testing.T) {
	js := filepath.Join(t.TempDir(), "s.json")
	if _, errOut, code := cli(t, "run", "-q", "--connections", "20", "--hold", "0s", "--json", js); code != 0 {
		t.Fatalf("run: exit %d %s", code, errOut)
	}
	sch, err := jsonschema.NewCompiler().Compile("docs/schema/summary.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		change func(map[string]any)
		valid  bool
	}{
		{"as written", func(map[string]any) {}, true},
		{"attempted as a string", func(m map[string]any) { m["attempted"] = "20" }, false},
		{"first_limit missing", func(m map[string]any) { delete(m, "first_limit") }, false},
		{"a key it does not have", func(m map[string]any) { m["attempts"] = 20 }, false},
		{"an outcome count as a float", func(m map[string]any) { m["outcomes"].(map[string]any)["served"] = 1.5 }, false},
	} {
		var m map[string]any
		json.Unmarshal([]byte(readDoc(t, js)), &m)
		tc.change(m)
		b, _ := json.Marshal(m)
		doc, _ := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err := sch.Validate(doc); (err == nil) != tc.valid {
			t.Errorf("%s: validation %v, want valid %v", tc.name, err, tc.valid)
		}
	}
}
