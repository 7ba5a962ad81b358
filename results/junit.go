package results

import (
	"encoding/xml"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

// JUnit XML as CI systems read it (Jenkins, GitLab, GitHub test reporters): one <testsuite> per scenario,
// one <testcase> per claim (a run) or per cell and metric (a comparison). A fails or void claim, or a worse
// comparison, is a <failure>; an inconclusive one is <skipped> with its detail, so CI shows it without
// failing; holds, same and better pass.

type junitSuites struct {
	XMLName xml.Name     `xml:"testsuites"`
	Suites  []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Skipped  int         `xml:"skipped,attr"`
	Time     string      `xml:"time,attr,omitempty"`
	Props    []junitProp `xml:"properties>property,omitempty"`
	Cases    []junitCase `xml:"testcase"`
}

type junitProp struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitCase struct {
	Class   string        `xml:"classname,attr"`
	Name    string        `xml:"name,attr"`
	Failure *junitMessage `xml:"failure,omitempty"`
	Skipped *junitMessage `xml:"skipped,omitempty"`
	Output  string        `xml:"system-out,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Text    string `xml:",chardata"`
}

func (s *junitSuite) add(c junitCase) {
	s.Tests++
	if c.Failure != nil {
		s.Failures++
	}
	if c.Skipped != nil {
		s.Skipped++
	}
	s.Cases = append(s.Cases, c)
}

func writeJUnit(w io.Writer, s junitSuite) error {
	b, err := xml.MarshalIndent(junitSuites{Suites: []junitSuite{s}}, "", "  ")
	if err != nil {
		return fmt.Errorf("encode junit: %w", err)
	}
	if _, err := fmt.Fprintf(w, "%s%s\n", xml.Header, b); err != nil {
		return fmt.Errorf("write junit: %w", err)
	}
	return nil
}

// JUnit renders a run's report as JUnit XML: one test case per claim (its cell and claim), plus one per cell
// that failed to run or that the load generator could not drive (a failure: the cell measured nothing
// trustworthy).
func JUnit(w io.Writer, r *Report) error {
	s := junitSuite{Name: "faultlab." + r.Scenario}
	if !r.Finished.IsZero() && !r.Started.IsZero() {
		s.Time = fmt.Sprintf("%.3f", r.Finished.Sub(r.Started).Seconds())
	}
	s.Props = envProps(r.Env)
	for _, c := range r.Cells {
		if c.Stats == nil || c.Behind() != "" {
			why := c.Behind()
			if c.Stats == nil {
				why = "the cell has no statistics: it failed before its load (see its notes)"
			}
			s.add(junitCase{Class: r.Scenario + "." + c.Name, Name: "cell ran as asked",
				Failure: &junitMessage{Message: why, Type: "cell", Text: strings.Join(c.Notes, "\n")}})
		}
	}
	for _, v := range r.Verdicts {
		c := junitCase{Class: r.Scenario + "." + v.Cell, Name: v.Claim,
			Output: fmt.Sprintf("%s\nfalse alarm: %s", v.Detail, v.FalseAlarm)}
		msg := &junitMessage{Message: string(v.Status) + ": " + v.Detail, Type: string(v.Status),
			Text: "false alarm: " + v.FalseAlarm}
		switch {
		case v.Status == StatusHolds:
		case v.Status == StatusInconclusive:
			c.Skipped = msg
		default:
			c.Failure = msg
		}
		s.add(c)
	}
	return writeJUnit(w, s)
}

// RegressionJUnit renders a comparison with a baseline as JUnit XML: one test case per cell and metric; worse
// is a failure, inconclusive skipped.
func RegressionJUnit(w io.Writer, g *Regression) error {
	s := junitSuite{Name: "faultlab.compare." + g.Scenario}
	s.Props = []junitProp{{"alpha", fmt.Sprint(g.Alpha)}, {"margin", fmt.Sprint(g.Margin)}, {"mode", g.Mode}}
	for _, w := range g.Warnings {
		s.Props = append(s.Props, junitProp{"warning", w})
	}
	for _, r := range g.Results {
		c := junitCase{Class: g.Scenario + "." + r.Cell, Name: r.Metric + " vs baseline",
			Output: r.Status + ": " + r.Detail + "\ntest: " + r.Test}
		msg := &junitMessage{Message: r.Status + ": " + r.Detail, Type: r.Status, Text: "test: " + r.Test}
		switch r.Status {
		case RegressWorse:
			c.Failure = msg
		case RegressInconclusive:
			c.Skipped = msg
		}
		s.add(c)
	}
	return writeJUnit(w, s)
}

// envProps are the report's environment as JUnit properties, in key order.
func envProps(env map[string]any) []junitProp {
	var ps []junitProp
	for _, k := range slices.Sorted(maps.Keys(env)) {
		ps = append(ps, junitProp{k, envValue(env[k])})
	}
	return ps
}
