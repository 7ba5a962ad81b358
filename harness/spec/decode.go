package spec

import (
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Limits that keep hostile input (alias bombs, self-referencing merges) cheap.
const (
	maxNodes      = 100000 // node visits, counting every expansion of an alias
	maxMergeDepth = 8      // nested "<<" merge keys
)

var durationType = reflect.TypeFor[time.Duration]()

// decoder walks a yaml.Node tree into the config structs. It records the line of every field it sets
// (keyed by field path, e.g. "hosts[1].sysctls[net.core.somaxconn]") and the paths whose value had the
// wrong type, so validation can name lines and stay quiet about values it never received.
type decoder struct {
	file     string
	lines    map[string]int
	bad      map[string]bool
	problems []Problem
	budget   int
	overrun  bool
}

func newDecoder(file string) *decoder {
	return &decoder{file: file, lines: map[string]int{}, bad: map[string]bool{}, budget: maxNodes}
}

func (d *decoder) add(line int, field, format string, args ...any) {
	d.problems = append(d.problems, Problem{File: d.file, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)})
}

// spend counts one node visit; it reports false (once, as a problem) when the document is too big.
func (d *decoder) spend(n *yaml.Node) bool {
	d.budget--
	if d.budget >= 0 {
		return true
	}
	if !d.overrun {
		d.overrun = true
		d.add(n.Line, "", "document too large: more than %d values after expanding aliases", maxNodes)
	}
	return false
}

// wrongType reports a value of the wrong type and marks the path so validation skips it.
func (d *decoder) wrongType(path string, n *yaml.Node, want string) {
	d.bad[path] = true
	d.add(n.Line, path, "want %s, got %s", want, describe(n))
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.ScalarNode:
		return strconv.Quote(n.Value)
	}
	return "nothing"
}

func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 8; i++ {
		n = n.Alias
	}
	if n != nil && n.Kind == yaml.AliasNode {
		return nil
	}
	return n
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// value decodes n into v, dispatching on v's type.
func (d *decoder) value(path string, n *yaml.Node, v reflect.Value) {
	n = resolve(n)
	if n == nil || !d.spend(n) || isNull(n) {
		return
	}
	switch {
	case v.Type() == durationType:
		d.duration(path, n, v)
	case v.Kind() == reflect.String:
		if n.Kind != yaml.ScalarNode {
			d.wrongType(path, n, "a string")
			return
		}
		v.SetString(n.Value)
	case v.Kind() == reflect.Int || v.Kind() == reflect.Int64:
		d.integer(path, n, v)
	case v.Kind() == reflect.Float64:
		d.float(path, n, v)
	case v.Kind() == reflect.Bool:
		d.boolean(path, n, v)
	case v.Kind() == reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		d.value(path, n, p.Elem())
		v.Set(p)
	case v.Kind() == reflect.Struct:
		d.structure(path, n, v)
	case v.Kind() == reflect.Slice:
		d.slice(path, n, v)
	case v.Kind() == reflect.Map:
		d.mapping(path, n, v)
	default:
		panic(fmt.Sprintf("spec: no decoder for %s", v.Type())) // a programming error in the types
	}
}

func (d *decoder) duration(path string, n *yaml.Node, v reflect.Value) {
	if n.Kind != yaml.ScalarNode {
		d.wrongType(path, n, "a duration such as 20s or 250ms")
		return
	}
	s := strings.TrimSpace(n.Value)
	dur, err := time.ParseDuration(s)
	if err == nil {
		v.SetInt(int64(dur))
		return
	}
	d.bad[path] = true
	if f, ferr := strconv.ParseFloat(s, 64); ferr == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
		d.add(n.Line, path, "%q has no unit; write e.g. %ss", s, s)
		return
	}
	d.add(n.Line, path, "want a duration such as 20s or 250ms, got %s", describe(n))
}

func (d *decoder) integer(path string, n *yaml.Node, v reflect.Value) {
	if n.Kind != yaml.ScalarNode {
		d.wrongType(path, n, "an integer")
		return
	}
	s := strings.TrimSpace(n.Value)
	i, err := strconv.ParseInt(s, 10, 64)
	if err != nil && len(s) > 2 && s[0] == '0' && strings.ContainsRune("xXoObB", rune(s[1])) {
		i, err = strconv.ParseInt(s, 0, 64)
	}
	if err != nil || v.OverflowInt(i) {
		d.wrongType(path, n, "an integer")
		return
	}
	v.SetInt(i)
}

// boolean accepts YAML 1.2's true and false only (not yes/no/on/off, which YAML 1.1 readers disagree on).
func (d *decoder) boolean(path string, n *yaml.Node, v reflect.Value) {
	switch strings.TrimSpace(n.Value) {
	case "true":
		v.SetBool(true)
	case "false":
		v.SetBool(false)
	default:
		d.wrongType(path, n, "true or false")
	}
}

func (d *decoder) float(path string, n *yaml.Node, v reflect.Value) {
	if n.Kind != yaml.ScalarNode {
		d.wrongType(path, n, "a number")
		return
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(n.Value), 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		d.wrongType(path, n, "a number")
		return
	}
	v.SetFloat(f)
}

func (d *decoder) slice(path string, n *yaml.Node, v reflect.Value) {
	if n.Kind != yaml.SequenceNode {
		d.wrongType(path, n, "a list")
		return
	}
	out := reflect.MakeSlice(v.Type(), 0, len(n.Content))
	for i, item := range n.Content {
		p := fmt.Sprintf("%s[%d]", path, i)
		d.lines[p] = item.Line
		e := reflect.New(v.Type().Elem()).Elem()
		d.value(p, item, e)
		out = reflect.Append(out, e)
	}
	v.Set(out)
}

func (d *decoder) mapping(path string, n *yaml.Node, v reflect.Value) {
	if n.Kind != yaml.MappingNode {
		d.wrongType(path, n, "a mapping")
		return
	}
	m := reflect.MakeMap(v.Type())
	seen := map[string]int{}
	for _, kv := range d.pairs(path, n, 0) {
		key, ok := d.key(path, kv.key)
		if !ok {
			continue
		}
		p := path + "[" + key + "]"
		if first, dup := seen[key]; dup {
			d.add(kv.key.Line, p, "duplicate key (first at line %d)", first)
			continue
		}
		seen[key] = kv.key.Line
		d.lines[p] = kv.key.Line
		e := reflect.New(v.Type().Elem()).Elem()
		d.value(p, kv.val, e)
		m.SetMapIndex(reflect.ValueOf(key), e)
	}
	v.Set(m)
}

func (d *decoder) structure(path string, n *yaml.Node, v reflect.Value) {
	if n.Kind != yaml.MappingNode {
		d.wrongType(path, n, "a mapping")
		return
	}
	names, index := fieldsOf(v.Type())
	seen := map[string]int{}
	for _, kv := range d.pairs(path, n, 0) {
		key, ok := d.key(path, kv.key)
		if !ok {
			continue
		}
		i, known := index[key]
		if !known {
			d.add(kv.key.Line, path, "unknown field %q; allowed: %s", key, strings.Join(names, ", "))
			continue
		}
		p := join(path, key)
		if first, dup := seen[key]; dup {
			d.add(kv.key.Line, p, "duplicate field (first at line %d)", first)
			continue
		}
		seen[key] = kv.key.Line
		d.lines[p] = kv.key.Line
		d.value(p, kv.val, v.FieldByIndex(i))
	}
}

// key returns the text of a mapping key, which must be a scalar.
func (d *decoder) key(path string, k *yaml.Node) (string, bool) {
	k = resolve(k)
	if k == nil {
		return "", false
	}
	if k.Kind != yaml.ScalarNode {
		d.add(k.Line, path, "want a name as key, got %s", describe(k))
		return "", false
	}
	return k.Value, true
}

// fieldsOf lists the yaml names of a struct's decoded fields in declaration order, with the index path of
// each; the fields of an embedded struct tagged `yaml:",inline"` count as the outer struct's own.
func fieldsOf(t reflect.Type) ([]string, map[string][]int) {
	var names []string
	index := map[string][]int{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if f.Anonymous && opts == "inline" && f.Type.Kind() == reflect.Struct {
			inner, innerIndex := fieldsOf(f.Type)
			for _, n := range inner {
				names = append(names, n)
				index[n] = append([]int{i}, innerIndex[n]...)
			}
			continue
		}
		if !f.IsExported() || name == "-" || name == "" {
			continue
		}
		names = append(names, name)
		index[name] = []int{i}
	}
	return names, index
}

type pair struct{ key, val *yaml.Node }

// pairs lists a mapping's entries with "<<" merge keys expanded: the mapping's own keys win over merged
// ones, and earlier merged mappings win over later ones, as YAML's merge key type specifies.
func (d *decoder) pairs(path string, n *yaml.Node, depth int) []pair {
	var own, merged []pair
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			merged = append(merged, d.merge(path, k, val, depth+1)...)
			continue
		}
		own = append(own, pair{k, val})
	}
	if len(merged) == 0 {
		return own
	}
	have := map[string]bool{}
	for _, p := range own {
		if k := resolve(p.key); k != nil && k.Kind == yaml.ScalarNode {
			have[k.Value] = true
		}
	}
	for _, p := range merged {
		k := resolve(p.key)
		if k == nil || k.Kind != yaml.ScalarNode || have[k.Value] {
			continue
		}
		have[k.Value] = true
		own = append(own, p)
	}
	return own
}

func (d *decoder) merge(path string, k, val *yaml.Node, depth int) []pair {
	if depth > maxMergeDepth {
		d.add(k.Line, path, "merge keys (<<) nested more than %d deep", maxMergeDepth)
		return nil
	}
	val = resolve(val)
	if val == nil || !d.spend(val) {
		return nil
	}
	switch val.Kind {
	case yaml.MappingNode:
		return d.pairs(path, val, depth)
	case yaml.SequenceNode:
		var out []pair
		for _, item := range val.Content {
			item = resolve(item)
			if item == nil || !d.spend(item) {
				return out
			}
			if item.Kind != yaml.MappingNode {
				d.add(item.Line, path, "merge key (<<) wants a mapping or a list of mappings, got %s", describe(item))
				continue
			}
			out = append(out, d.pairs(path, item, depth)...)
		}
		return out
	}
	d.add(val.Line, path, "merge key (<<) wants a mapping or a list of mappings, got %s", describe(val))
	return nil
}
