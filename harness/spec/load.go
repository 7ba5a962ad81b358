package spec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// Load reads, decodes, defaults and validates the scenario file at path. A malformed or invalid file gives
// an *Error listing every problem as "path:line: field: message". Call Check next.
func Load(path string) (*Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read scenario: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes, defaults and validates a scenario; file names it in problems. Decoding is strict: unknown
// fields, values of the wrong type, durations without a unit and several documents in one file are errors.
// Anchors, aliases and "<<" merge keys are accepted. On error the result is nil and the error is an *Error
// holding all problems, sorted by line.
//
// Parse checks the scenario's structure (names, references between hosts, services and cells, durations,
// rates, impairments, probes, expectations, the matrix) and fills the defaults that do not depend on
// kinds. The kinds of services and workloads, reload strategies, mitigations, analyses, option keys,
// protocols and ports are the lab's registries' business: Check checks them against a Vocabulary, with
// the lines Parse recorded.
func Parse(file string, data []byte) (*Scenario, error) {
	d := newDecoder(file)
	root := d.parse(data)
	if root == nil {
		return nil, d.failed()
	}
	s := &Scenario{}
	d.value("", root, reflect.ValueOf(s).Elem())
	s.File = file
	s.lines = d.lines
	v := &validator{file: file, lines: d.lines, bad: d.bad}
	v.expandAxes(s)
	v.lines = s.rowLines()
	v.run(s)
	if len(d.problems)+len(v.problems) == 0 {
		v.crossKernels(s)
	}
	problems := s.located(append(d.problems, v.problems...))
	if len(problems) > 0 {
		sort.SliceStable(problems, func(i, j int) bool { return problems[i].Line < problems[j].Line })
		return nil, &Error{Problems: problems}
	}
	return s, nil
}

func (d *decoder) failed() error {
	return &Error{Problems: d.problems}
}

// parse reads the single YAML document of data and returns its top-level mapping, or nil after recording
// the problem.
func (d *decoder) parse(data []byte) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := decodeNode(dec, &doc); err != nil {
		if errors.Is(err, io.EOF) {
			d.add(1, "", "scenario file is empty")
		} else {
			d.syntax(err, data)
		}
		return nil
	}
	var next yaml.Node
	switch err := decodeNode(dec, &next); {
	case err == nil:
		d.add(max(firstLine(&next), 1), "", "several YAML documents; a scenario file holds exactly one")
		return nil
	case !errors.Is(err, io.EOF):
		d.syntax(err, data)
		return nil
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	root = resolve(root)
	if root == nil || isNull(root) {
		d.add(1, "", "scenario file is empty")
		return nil
	}
	if root.Kind != yaml.MappingNode {
		d.add(root.Line, "", "want a mapping of fields (name, hosts, services, ...) at the top level, got %s", describe(root))
		return nil
	}
	return root
}

// decodeNode decodes the next document; the yaml library is not trusted not to panic on hostile input.
func decodeNode(dec *yaml.Decoder, n *yaml.Node) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("yaml: malformed document (%v)", r)
		}
	}()
	return dec.Decode(n)
}

func firstLine(n *yaml.Node) int {
	if n.Line == 0 && len(n.Content) > 0 {
		return n.Content[0].Line
	}
	return n.Line
}

var (
	yamlLine      = regexp.MustCompile(`^yaml: (?:line (\d+): )?(.*)$`)
	unknownAnchor = regexp.MustCompile(`^unknown anchor '(.*)' referenced$`)
)

// parserProblems are the messages of the YAML parser (as opposed to its scanner). The library reports
// their line 0-based (the mark of the enclosing collection or of
// the problem), and omits it on the first line.
var parserProblems = map[string]bool{
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"did not find expected '-' indicator":    true,
	"did not find expected <document start>": true,
	"did not find expected <stream-start>":   true,
	"did not find expected key":              true,
	"did not find expected node content":     true,
	"found duplicate %TAG directive":         true,
	"found duplicate %YAML directive":        true,
	"found incompatible YAML document":       true,
	"found undefined tag handle":             true,
}

// syntax records a YAML syntax error with the best line it can find: the library's (corrected for parser
// errors), the line of an unknown alias, or the line of the first byte YAML refuses.
func (d *decoder) syntax(err error, data []byte) {
	m := yamlLine.FindStringSubmatch(err.Error())
	if m == nil {
		d.add(badByteLine(data), "", "invalid YAML: %s", err)
		return
	}
	msg := m[2]
	line, _ := strconv.Atoi(m[1])
	switch a := unknownAnchor.FindStringSubmatch(msg); {
	case parserProblems[msg]:
		line++
	case a != nil:
		line = lineOf(data, "*"+a[1])
	case line == 0:
		line = badByteLine(data)
	}
	d.add(max(line, 1), "", "invalid YAML: %s", msg)
}

// lineOf is the line of the first occurrence of s in data, or 1.
func lineOf(data []byte, s string) int {
	i := bytes.Index(data, []byte(s))
	if i < 0 {
		return 1
	}
	return 1 + bytes.Count(data[:i], []byte("\n"))
}

// badByteLine is the line of the first byte YAML refuses (invalid UTF-8 or a control character), or 1.
func badByteLine(data []byte) int {
	line := 1
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && size <= 1 || r < 0x20 && r != '\t' && r != '\n' && r != '\r' || r == 0x7f {
			return line
		}
		if r == '\n' {
			line++
		}
		i += size
	}
	return 1
}
