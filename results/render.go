package results

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
)

// Renderer writes a report in one format.
type Renderer func(w io.Writer, r *Report) error

// Renderers are the report formats by name: the one table where the choice is made.
var Renderers = map[string]Renderer{
	"json":  JSON,
	"md":    Markdown,
	"junit": JUnit,
}

// DirRenderers are the formats that read the run directory as well as its report: the HTML page's plots
// read the records, reloads and socket-state series.
var DirRenderers = map[string]func(w io.Writer, r *Report, runDir string) error{
	"html": HTML,
}

// outputs are the files WriteOutputs writes into a run directory, and the renderer of each.
var outputs = []struct{ file, renderer string }{
	{ResultsFile, "json"},
	{TableFile, "md"},
}

// WriteOutputs writes results.json and table.md into the run directory, each atomically. Given the same
// report (Build of the same directory) it writes the same bytes.
func WriteOutputs(runDir string, r *Report) error {
	var errs []error
	for _, o := range outputs {
		var buf bytes.Buffer
		if err := Renderers[o.renderer](&buf, r); err != nil {
			errs = append(errs, fmt.Errorf("render %s: %w", o.file, err))
			continue
		}
		if err := writeFileAtomic(filepath.Join(runDir, o.file), buf.Bytes()); err != nil {
			errs = append(errs, fmt.Errorf("write %s: %w", o.file, err))
		}
	}
	return errors.Join(errs...)
}

// JSON renders the report as indented JSON, as ReadReport reads it (an empty Schema is written as Schema).
func JSON(w io.Writer, r *Report) error {
	c := *r
	if c.Schema == "" {
		c.Schema = Schema
	}
	b, err := json.MarshalIndent(&c, "", "  ")
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	if _, err := w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}
