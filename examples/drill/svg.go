package main

import (
	"bytes"
	"fmt"
	"html"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/failsoft/failsoft"
)

// writeSVGFile writes the drill's chart to path.
func writeSVGFile(path string, res *result) error {
	var b bytes.Buffer
	writeSVG(&b, res)
	return os.WriteFile(path, b.Bytes(), 0o644)
}

// Chart geometry, in SVG user units.
const (
	svgW     = 960
	svgLeft  = 70
	svgRight = 20
	svgTop   = 50
	svgGap   = 45
)

// panel is one chart of the SVG: a title with an optional legend, a top
// edge and a height.
type panel struct {
	title  string
	legend []legendItem
	top    float64
	h      float64
}

// legendItem is a series' name, written in its colour after a panel's title.
type legendItem struct{ color, label string }

// y maps v on a linear scale from 0 to maxV onto the panel.
func (p panel) y(v, maxV float64) float64 { return p.top + p.h*(1-v/maxV) }

// layout stacks panels from top down, svgGap apart.
func layout(top float64, ps ...panel) []panel {
	for i := range ps {
		ps[i].top = top
		top += ps[i].h + svgGap
	}
	return ps
}

// chart draws panels over the drill's time line, one point per second.
type chart struct {
	w      io.Writer
	end    time.Duration // the drill's length
	plotW  float64
	panels []panel
}

func newChart(w io.Writer, end time.Duration, panels []panel) *chart {
	return &chart{w: w, end: end, plotW: float64(svgW - svgLeft - svgRight), panels: panels}
}

// x maps a time since the drill's start to the horizontal axis.
func (c *chart) x(t time.Duration) float64 { return svgLeft + c.plotW*t.Seconds()/c.end.Seconds() }

// bx is the middle of second i.
func (c *chart) bx(i int) float64 { return c.x(time.Duration(i)*time.Second + time.Second/2) }

// open writes the svg element, a white background and the title lines,
// the first one bold.
func (c *chart) open(titles ...string) {
	last := c.panels[len(c.panels)-1]
	height := int(last.top + last.h + 40)
	fmt.Fprintf(c.w, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", svgW, height, svgW, height)
	fmt.Fprintf(c.w, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	for i, t := range titles {
		if i == 0 {
			fmt.Fprintf(c.w, `<text x="%d" y="20" font-size="15" font-weight="bold">%s</text>`+"\n", svgLeft, html.EscapeString(t))
			continue
		}
		fmt.Fprintf(c.w, `<text x="%d" y="%d">%s</text>`+"\n", svgLeft, 20+16*i, html.EscapeString(t))
	}
}

// phases shades the fault windows (paused amber, killed red) in every
// panel and names every phase above the first.
func (c *chart) phases(phases []phaseResult) {
	for _, p := range phases {
		x0, x1 := c.x(p.start), c.x(p.start+p.dur)
		fill := map[string]string{phasePaused: "#fde2b8", phaseKilled: "#f8c4c4"}[p.name]
		for _, pn := range c.panels {
			if fill != "" {
				fmt.Fprintf(c.w, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.0f" fill="%s"/>`+"\n", x0, pn.top, x1-x0, pn.h, fill)
			}
			fmt.Fprintf(c.w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#999" stroke-dasharray="3,3"/>`+"\n", x0, pn.top, x0, pn.top+pn.h)
		}
		fmt.Fprintf(c.w, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", (x0+x1)/2, c.panels[0].top-8, p.name)
	}
}

// frames draws each panel's frame, its title and legend below it, and the
// time axis.
func (c *chart) frames() {
	for _, pn := range c.panels {
		fmt.Fprintf(c.w, `<rect x="%d" y="%.1f" width="%.1f" height="%.0f" fill="none" stroke="#333"/>`+"\n", svgLeft, pn.top, c.plotW, pn.h)
		var legend strings.Builder
		for _, l := range pn.legend {
			fmt.Fprintf(&legend, `  <tspan fill="%s">%s</tspan>`, l.color, html.EscapeString(l.label))
		}
		fmt.Fprintf(c.w, `<text x="%d" y="%.1f" font-weight="bold">%s%s</text>`+"\n", svgLeft, pn.top+pn.h+28, html.EscapeString(pn.title), legend.String())
		for s := 0; s <= int(c.end.Seconds()); s += 10 {
			fmt.Fprintf(c.w, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="#555">%ds</text>`+"\n", c.x(time.Duration(s)*time.Second), pn.top+pn.h+14, s)
		}
	}
}

// grid draws a horizontal grid line at y with its label on the axis.
func (c *chart) grid(y float64, label string) {
	fmt.Fprintf(c.w, `<line x1="%d" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", svgLeft, y, svgLeft+c.plotW, y)
	fmt.Fprintf(c.w, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", svgLeft-5, y+4, label)
}

// linearGrid draws the grid of pn for a linear scale up to maxV in steps.
func (c *chart) linearGrid(pn panel, maxV float64, steps int) {
	for i := 0; i <= steps; i++ {
		v := maxV * float64(i) / float64(steps)
		c.grid(pn.y(v, maxV), fmtRate(v))
	}
}

// level draws a dashed horizontal line across pn from t0 to the end at y,
// labelled at its right end, above the line or (below) under it.
func (c *chart) level(pn panel, t0 time.Duration, y float64, color, label string, below bool) {
	ly := y - 4
	if below && y+14 < pn.top+pn.h-3 { // else under the frame: above it
		ly = y + 14
	}
	fmt.Fprintf(c.w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-dasharray="6,4"/>`+"\n", c.x(t0), y, svgLeft+c.plotW, y, color)
	fmt.Fprintf(c.w, `<text x="%.1f" y="%.1f" text-anchor="end" fill="%s">%s</text>`+"\n", svgLeft+c.plotW-4, ly, color, html.EscapeString(label))
}

// marker draws a vertical line at t through every panel, labelled inside
// the first panel in row (0, 1, ...) of labels.
func (c *chart) marker(t time.Duration, color, label string, row int) {
	for _, pn := range c.panels {
		fmt.Fprintf(c.w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2"/>`+"\n", c.x(t), pn.top, c.x(t), pn.top+pn.h, color)
	}
	fmt.Fprintf(c.w, `<text x="%.1f" y="%.1f" fill="%s">%s</text>`+"\n", c.x(t)+4, c.panels[0].top+14+14*float64(row), color, html.EscapeString(label))
}

// Log scale of the latency panels: 0.1 ms to 10 s (log10 of milliseconds).
const latLo, latHi = -1.0, 4.0

// yLat maps a latency onto pn's log scale.
func yLat(pn panel, d time.Duration) float64 {
	ms := math.Max(float64(d)/float64(time.Millisecond), math.Pow(10, latLo))
	v := math.Min(math.Log10(ms), latHi)
	return pn.top + pn.h*(1-(v-latLo)/(latHi-latLo))
}

// latencyGrid draws the decades of a latency panel.
func (c *chart) latencyGrid(pn panel) {
	for e := latLo; e <= latHi; e++ {
		d := time.Duration(math.Pow(10, e) * float64(time.Millisecond))
		c.grid(yLat(pn, d), fmtTick(d))
	}
}

// writeSVG draws the drill's chart over its time line, one point per
// second, with the fault phases shaded. An open-loop run gets the cold-key
// chart (writeColdSVG). A closed-loop run gets three charts: requests per
// second, p99 latency (log scale, with the 100 ms goal), and failed
// requests per second (on its own scale, so that a few failures still
// show).
func writeSVG(w io.Writer, res *result) {
	if len(res.phases) == 0 {
		return
	}
	if res.cfg.rate > 0 {
		writeColdSVG(w, res)
		return
	}
	last := res.phases[len(res.phases)-1]
	end := last.start + last.dur
	bs := wholeSeconds(buckets(res.samples, nil, 0, end), end)
	ps := layout(svgTop,
		panel{title: "requests per second", h: 200},
		panel{title: "p99 latency per second (log scale)", h: 200},
		panel{title: "failed requests per second", h: 100})
	rate, lat, fail := ps[0], ps[1], ps[2]
	c := newChart(w, end, ps)

	maxRate, maxFail := 1.0, 1.0
	for _, b := range bs {
		maxRate = max(maxRate, float64(b.requests))
		maxFail = max(maxFail, float64(b.failed))
	}
	maxRate, maxFail = niceCeil(maxRate), niceCeil(maxFail)

	mode := "on"
	if !res.cfg.failsoft {
		mode = "off"
	}
	c.open(fmt.Sprintf("failsoft outage drill: FAILSOFT=%s, %d clients over %d keys, PRIMARY_LATENCY=%v", mode, res.cfg.clients, res.cfg.keys, res.cfg.latency))
	c.phases(res.phases)
	c.frames()
	c.linearGrid(rate, maxRate, 4)
	c.latencyGrid(lat)
	c.linearGrid(fail, maxFail, 2)
	c.level(lat, 0, yLat(lat, goalP99), "#2a7", "goal: p99 <= 100ms", false)

	// Series. A second in which no request ended has no latency: a gap.
	polyline(w, "#1f5fbf", len(bs), nil, func(i int) (float64, float64) { return c.bx(i), rate.y(float64(bs[i].requests), maxRate) })
	polyline(w, "#7b3fa0", len(bs), func(i int) bool { return bs[i].requests == 0 }, func(i int) (float64, float64) { return c.bx(i), yLat(lat, bs[i].p99) })
	polyline(w, "#d62728", len(bs), nil, func(i int) (float64, float64) { return c.bx(i), fail.y(float64(bs[i].failed), maxFail) })
	fmt.Fprintln(w, "</svg>")
}

// wholeSeconds drops the last bucket when the drill ended within it: a
// second cut short would show as a dip, and its point would lie past the
// end of the time axis.
func wholeSeconds(bs []bucket, end time.Duration) []bucket {
	return bs[:min(len(bs), int(end/time.Second))]
}

// Colours of the cold-key chart's series.
const (
	colorOK       = "#1f5fbf"
	colorShed     = "#e08a00"
	colorOther    = "#d62728"
	colorLatency  = "#7b3fa0"
	colorBack     = "#222"
	colorRecovery = "#2a7"
)

// writeColdSVG draws an open-loop run: answers per second split into 200s,
// 503s with Retry-After and every other failure, with the recovery
// threshold; p99 latency (log scale); the primary's overloads per second;
// and its concurrency, the highest 20 ms sample of each second, against
// its capacity. Vertical lines mark when the restarted Redis accepted
// connections and when the goodput was back for good (see [recovery]).
func writeColdSVG(w io.Writer, res *result) {
	last := res.phases[len(res.phases)-1]
	end := last.start + last.dur
	bs := wholeSeconds(buckets(res.samples, res.primary, 0, end), end)
	ps := layout(svgTop+16,
		panel{title: "answers per second:", h: 220, legend: []legendItem{
			{colorOK, "200"}, {colorShed, "503 with Retry-After"}, {colorOther, "other (500, timeout, ...)"}}},
		panel{title: "p99 latency per second (log scale)", h: 150},
		panel{title: "primary overloads per second (fetches failed over its capacity)", h: 100},
		panel{title: "primary fetches at once (highest 20 ms sample of each second)", h: 100})
	ans, lat, ovl, conc := ps[0], ps[1], ps[2], ps[3]
	c := newChart(w, end, ps)

	maxAns, maxOvl, maxConc := max(1, res.cfg.rate), 1.0, max(1, float64(res.cfg.capacity))
	for _, b := range bs {
		maxAns = max(maxAns, float64(b.ok), float64(b.shed), float64(b.other))
		maxOvl = max(maxOvl, b.overloads)
		maxConc = max(maxConc, b.peak)
	}
	maxAns, maxOvl, maxConc = niceCeil(maxAns), niceCeil(maxOvl), niceCeil(maxConc)

	c.open(fmt.Sprintf("failsoft cold-key drill: %s", budgetLabel(res.cfg)),
		fmt.Sprintf("open loop, %.0f requests/s over %d keys (%s); primary: %v per fetch, at most %d at once", res.cfg.rate, res.cfg.keys, res.cfg.dist, res.cfg.latency, res.cfg.capacity))
	c.phases(res.phases)
	c.frames()
	c.linearGrid(ans, maxAns, 4)
	c.latencyGrid(lat)
	c.linearGrid(ovl, maxOvl, 2)
	c.linearGrid(conc, maxConc, 2)
	if res.cfg.capacity > 0 {
		c.level(conc, 0, conc.y(float64(res.cfg.capacity), maxConc), colorOther, fmt.Sprintf("capacity %d", res.cfg.capacity), false)
	}

	polyline(w, colorShed, len(bs), nil, func(i int) (float64, float64) { return c.bx(i), ans.y(float64(bs[i].shed), maxAns) })
	polyline(w, colorOther, len(bs), nil, func(i int) (float64, float64) { return c.bx(i), ans.y(float64(bs[i].other), maxAns) })
	polyline(w, colorOK, len(bs), nil, func(i int) (float64, float64) { return c.bx(i), ans.y(float64(bs[i].ok), maxAns) })
	polyline(w, colorLatency, len(bs), func(i int) bool { return bs[i].requests == 0 }, func(i int) (float64, float64) { return c.bx(i), yLat(lat, bs[i].p99) })
	polyline(w, colorOther, len(bs), nil, func(i int) (float64, float64) { return c.bx(i), ovl.y(bs[i].overloads, maxOvl) })
	polyline(w, colorLatency, len(bs), nil, func(i int) (float64, float64) { return c.bx(i), conc.y(bs[i].peak, maxConc) })

	if res.redisBack >= 0 {
		r := res.recovery
		c.level(ans, r.back, ans.y(r.threshold, maxAns), colorRecovery, fmt.Sprintf("recovery threshold: %.0f%% of steady's 200/s (%.0f/s)", recoveryShare*100, r.threshold), true)
		c.marker(r.back, colorBack, "Redis back", 0)
		note := func(text string) {
			fmt.Fprintf(w, `<text x="%.1f" y="%.1f" fill="%s">%s</text>`+"\n", c.x(r.back)+4, ans.top+28, colorOther, html.EscapeString(text))
		}
		switch {
		case !r.judgeable(res.cfg.rate):
			note(fmt.Sprintf("recovery n/a: steady answered %.0f%% with 200", 100*r.ref/res.cfg.rate))
		case r.after >= 0:
			c.marker(r.back+r.after, colorRecovery, fmt.Sprintf("recovered (+%.0fs)", r.after.Seconds()), 1)
		case len(r.seconds) > 0:
			note("not recovered")
		}
	}
	fmt.Fprintln(w, "</svg>")
}

// budgetLabel describes the app's protection in a cold-key run.
func budgetLabel(cfg config) string {
	switch {
	case !cfg.failsoft:
		return "FAILSOFT=off (the handler unprotected)"
	case strings.EqualFold(cfg.missBudget, "off") || cfg.missBudget == "0":
		return "FAILSOFT=on, miss budget off"
	}
	n := cfg.missBudget
	if n == "" {
		n = strconv.Itoa(failsoft.DefaultMissBudget) + " (default)"
	}
	mode := "while Redis is unavailable (default mode)"
	if strings.EqualFold(cfg.budgetMode, "always") {
		mode = "always"
	}
	return fmt.Sprintf("FAILSOFT=on, miss budget %s, %s", n, mode)
}

// polyline draws n points as lines, leaving a gap at each point where skip
// is true (a second in which no request ended has no latency to draw).
func polyline(w io.Writer, color string, n int, skip func(i int) bool, pt func(i int) (float64, float64)) {
	var pts strings.Builder
	n1, lastX, lastY := 0, 0.0, 0.0 // points in the current segment, the last one
	flush := func() {
		if n1 == 1 { // a lone point: a dot
			fmt.Fprintf(w, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`+"\n", lastX, lastY, color)
		}
		n1 = 0
		if pts.Len() > 0 {
			fmt.Fprintf(w, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", color, strings.TrimSpace(pts.String()))
			pts.Reset()
		}
	}
	for i := range n {
		if skip != nil && skip(i) {
			flush()
			continue
		}
		px, py := pt(i)
		fmt.Fprintf(&pts, "%.1f,%.1f ", px, py)
		n1, lastX, lastY = n1+1, px, py
	}
	flush()
}

// niceCeil rounds v up to a round number for an axis: 1, 1.5, 2, 2.5, 3, 4,
// 5, 6 or 8 times a power of ten.
func niceCeil(v float64) float64 {
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 1.5, 2, 2.5, 3, 4, 5, 6, 8} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func fmtRate(v float64) string {
	if v >= 1000 {
		return fmt.Sprintf("%gk", v/1000)
	}
	return fmt.Sprintf("%g", v)
}

func fmtTick(d time.Duration) string {
	if d >= time.Second {
		return fmt.Sprintf("%gs", d.Seconds())
	}
	return fmt.Sprintf("%gms", float64(d)/float64(time.Millisecond))
}
