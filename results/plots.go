package results

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"image/color"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

// Figure is one plot of the HTML report: an SVG image as a data URI, its title and what it shows.
type Figure struct {
	ID      string
	Title   string
	Caption string
	URI     string // data:image/svg+xml;base64,...
}

// svgFigure draws p into an SVG of the given size (in cm) and returns it as a Figure.
func svgFigure(id, title, caption string, p *plot.Plot, w, h vg.Length) (Figure, error) {
	c := vgsvg.New(w*vg.Centimeter, h*vg.Centimeter)
	p.Draw(draw.New(c))
	var buf bytes.Buffer
	if _, err := c.WriteTo(&buf); err != nil {
		return Figure{}, fmt.Errorf("plot %s: %w", id, err)
	}
	return Figure{ID: id, Title: title, Caption: caption,
		URI: "data:image/svg+xml;base64," + base64.StdEncoding.EncodeToString(buf.Bytes())}, nil
}

// valueErrs is a set of points with asymmetric vertical error bars (plotter.XYer and YErrorer).
type valueErrs struct {
	plotter.XYs
	lo, hi []float64
}

func (v valueErrs) YError(i int) (float64, float64) { return v.lo[i], v.hi[i] }

// rateFigure plots, per cell, a value with its interval as error bars (x: the cells, by name).
func rateFigure(id, title, caption, ylabel string, names []string, vals []float64, ivs []Interval,
	percent bool) (Figure, error) {
	if len(names) == 0 {
		return Figure{ID: id}, nil // nothing to plot: the caller says so
	}
	p := plot.New()
	p.Title.Text, p.Y.Label.Text = title, ylabel
	scale := 1.0
	if percent {
		scale = 100
	}
	v := valueErrs{XYs: make(plotter.XYs, len(vals))}
	for i := range vals {
		v.XYs[i] = plotter.XY{X: float64(i), Y: scale * vals[i]}
		v.lo = append(v.lo, scale*math.Max(0, vals[i]-ivs[i].Lo))
		v.hi = append(v.hi, scale*math.Max(0, ivs[i].Hi-vals[i]))
	}
	pts, err := plotter.NewScatter(v.XYs)
	if err != nil {
		return Figure{}, err
	}
	pts.GlyphStyle.Shape, pts.GlyphStyle.Radius = draw.CircleGlyph{}, vg.Points(3)
	bars, err := plotter.NewYErrorBars(v)
	if err != nil {
		return Figure{}, err
	}
	p.Add(plotter.NewGrid(), bars, pts)
	p.NominalX(names...)
	p.Y.Min = 0
	return svgFigure(id, title, caption, p, vg.Length(max(14, 2.2*float64(len(names)))), 9)
}

// lineSeries is one named line of a multi-line plot.
type lineSeries struct {
	name   string
	pts    plotter.XYs
	color  int // plotutil's palette index
	dashed bool
}

// linesFigure plots named series as lines (logX: a logarithmic x axis; every x must then be positive).
func linesFigure(id, title, caption, xlabel, ylabel string, series []lineSeries, logX bool) (Figure, error) {
	if len(series) == 0 {
		return Figure{ID: id}, nil
	}
	p := plot.New()
	p.Title.Text, p.X.Label.Text, p.Y.Label.Text = title, xlabel, ylabel
	if logX {
		p.X.Scale, p.X.Tick.Marker = plot.LogScale{}, plot.LogTicks{Prec: -1}
	}
	p.Add(plotter.NewGrid())
	for _, s := range series {
		if len(s.pts) == 0 {
			continue
		}
		l, err := plotter.NewLine(s.pts)
		if err != nil {
			return Figure{}, fmt.Errorf("plot %s, %s: %w", id, s.name, err)
		}
		l.Color, l.Width = plotutil.Color(s.color), vg.Points(1.5)
		if s.dashed {
			l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		}
		p.Add(l)
		p.Legend.Add(s.name, l)
	}
	p.Legend.Top, p.Legend.Left = true, false
	return svgFigure(id, title, caption, p, 16, 10)
}

// timelineRow is one cell's row of the reload timeline: reload starts and failure times, in seconds.
type timelineRow struct {
	name     string
	reloads  []float64
	failures []float64
}

// timelineFigure plots one row per cell: reloads as grey ticks above the row's line, failures as red crosses
// below it.
func timelineFigure(id, title, caption string, rows []timelineRow) (Figure, error) {
	if len(rows) == 0 {
		return Figure{ID: id}, nil
	}
	p := plot.New()
	p.Title.Text, p.X.Label.Text = title, "seconds into the first round"
	var names []string
	for i, r := range rows {
		names = append(names, r.name)
		if err := addGlyphs(p, r.reloads, float64(i)+0.15, color.Gray{Y: 120}, tickGlyph{}); err != nil {
			return Figure{}, err
		}
		red := color.RGBA{R: 220, A: 255}
		if err := addGlyphs(p, r.failures, float64(i)-0.15, red, draw.CrossGlyph{}); err != nil {
			return Figure{}, err
		}
	}
	p.NominalY(names...)
	return svgFigure(id, title, caption, p, 18, vg.Length(max(5, 1.4*float64(len(rows))+3)))
}

func addGlyphs(p *plot.Plot, xs []float64, y float64, c color.Color, shape draw.GlyphDrawer) error {
	if len(xs) == 0 {
		return nil
	}
	pts := make(plotter.XYs, len(xs))
	for i, x := range xs {
		pts[i] = plotter.XY{X: x, Y: y}
	}
	s, err := plotter.NewScatter(pts)
	if err != nil {
		return err
	}
	s.GlyphStyle.Color, s.GlyphStyle.Shape, s.GlyphStyle.Radius = c, shape, vg.Points(3)
	p.Add(s)
	return nil
}

// tickGlyph is a short vertical line: a reload's mark on the timeline.
type tickGlyph struct{}

func (tickGlyph) DrawGlyph(c *draw.Canvas, sty draw.GlyphStyle, pt vg.Point) {
	c.SetLineStyle(draw.LineStyle{Color: sty.Color, Width: vg.Points(0.8)})
	var p vg.Path
	p.Move(vg.Point{X: pt.X, Y: pt.Y - sty.Radius})
	p.Line(vg.Point{X: pt.X, Y: pt.Y + sty.Radius})
	c.Stroke(p)
}
