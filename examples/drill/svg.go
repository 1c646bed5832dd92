package main

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"time"
)

// bucket is one second of the drill.
type bucket struct {
	requests, failed int
	p99              time.Duration
}

// buckets groups samples by the second they ended in.
func buckets(samples []sample, end time.Duration) []bucket {
	n := int(end/time.Second) + 1
	lats := make([][]time.Duration, n)
	out := make([]bucket, n)
	for _, s := range samples {
		i := int(s.end() / time.Second)
		if i < 0 || i >= n {
			continue
		}
		out[i].requests++
		if s.fail != failNone {
			out[i].failed++
		}
		lats[i] = append(lats[i], s.lat)
	}
	for i := range out {
		out[i].p99 = percentile(lats[i], 0.99)
	}
	return out
}

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

// panel is one chart of the SVG: a title, a top edge and a height.
type panel struct {
	title string
	top   float64
	h     float64
}

// writeSVG draws three charts over the drill's time line, one point per
// second, with the fault phases shaded: requests per second, p99 latency
// (log scale, with the 100 ms goal), and failed requests per second (on its
// own scale, so that a few failures still show).
func writeSVG(w io.Writer, res *result) {
	if len(res.phases) == 0 {
		return
	}
	last := res.phases[len(res.phases)-1]
	end := last.start + last.dur
	bs := buckets(res.samples, end)
	plotW := float64(svgW - svgLeft - svgRight)
	x := func(t time.Duration) float64 { return svgLeft + plotW*t.Seconds()/end.Seconds() }
	bx := func(i int) float64 { return x(time.Duration(i)*time.Second + time.Second/2) }

	rate := panel{title: "requests per second", top: svgTop, h: 200}
	lat := panel{title: "p99 latency per second (log scale)", top: rate.top + rate.h + svgGap, h: 200}
	fail := panel{title: "failed requests per second", top: lat.top + lat.h + svgGap, h: 100}
	panels := []panel{rate, lat, fail}
	height := int(fail.top + fail.h + 40)

	maxRate, maxFail := 1.0, 1.0
	for _, b := range bs {
		maxRate = max(maxRate, float64(b.requests))
		maxFail = max(maxFail, float64(b.failed))
	}
	maxRate, maxFail = niceCeil(maxRate), niceCeil(maxFail)
	yRate := func(v float64) float64 { return rate.top + rate.h*(1-v/maxRate) }
	yFail := func(v float64) float64 { return fail.top + fail.h*(1-v/maxFail) }
	const lo, hi = -1.0, 4.0 // log10 of milliseconds: 0.1 ms to 10 s
	yLat := func(d time.Duration) float64 {
		ms := math.Max(float64(d)/float64(time.Millisecond), math.Pow(10, lo))
		v := math.Min(math.Log10(ms), hi)
		return lat.top + lat.h*(1-(v-lo)/(hi-lo))
	}

	mode := "on"
	if !res.cfg.failsoft {
		mode = "off"
	}
	fmt.Fprintf(w, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", svgW, height, svgW, height)
	fmt.Fprintf(w, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(w, `<text x="%d" y="20" font-size="15" font-weight="bold">failsoft outage drill: FAILSOFT=%s, %d clients over %d keys, PRIMARY_LATENCY=%v</text>`+"\n",
		svgLeft, mode, res.cfg.clients, res.cfg.keys, res.cfg.latency)

	// Phases: the fault windows shaded (paused amber, killed red), every
	// phase named.
	for _, p := range res.phases {
		x0, x1 := x(p.start), x(p.start+p.dur)
		fill := map[string]string{phasePaused: "#fde2b8", phaseKilled: "#f8c4c4"}[p.name]
		for _, pn := range panels {
			if fill != "" {
				fmt.Fprintf(w, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.0f" fill="%s"/>`+"\n", x0, pn.top, x1-x0, pn.h, fill)
			}
			fmt.Fprintf(w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#999" stroke-dasharray="3,3"/>`+"\n", x0, pn.top, x0, pn.top+pn.h)
		}
		fmt.Fprintf(w, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", (x0+x1)/2, rate.top-8, p.name)
	}

	// Frames, titles, grids and the time axis.
	for _, pn := range panels {
		fmt.Fprintf(w, `<rect x="%d" y="%.1f" width="%.1f" height="%.0f" fill="none" stroke="#333"/>`+"\n", svgLeft, pn.top, plotW, pn.h)
		fmt.Fprintf(w, `<text x="%d" y="%.1f" font-weight="bold">%s</text>`+"\n", svgLeft, pn.top+pn.h+28, pn.title)
		for s := 0; s <= int(end.Seconds()); s += 10 {
			fmt.Fprintf(w, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="#555">%ds</text>`+"\n", x(time.Duration(s)*time.Second), pn.top+pn.h+14, s)
		}
	}
	grid := func(y float64, label string) {
		fmt.Fprintf(w, `<line x1="%d" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", svgLeft, y, svgLeft+plotW, y)
		fmt.Fprintf(w, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", svgLeft-5, y+4, label)
	}
	for i := 0; i <= 4; i++ {
		v := maxRate * float64(i) / 4
		grid(yRate(v), fmtRate(v))
	}
	for e := lo; e <= hi; e++ {
		d := time.Duration(math.Pow(10, e) * float64(time.Millisecond))
		grid(yLat(d), fmtTick(d))
	}
	for i := 0; i <= 2; i++ {
		v := maxFail * float64(i) / 2
		grid(yFail(v), fmtRate(v))
	}
	yGoal := yLat(goalP99)
	fmt.Fprintf(w, `<line x1="%d" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#2a7" stroke-dasharray="6,4"/>`+"\n", svgLeft, yGoal, svgLeft+plotW, yGoal)
	fmt.Fprintf(w, `<text x="%.1f" y="%.1f" text-anchor="end" fill="#2a7">goal: p99 &lt;= 100ms</text>`+"\n", svgLeft+plotW-4, yGoal-4)

	// Series. A second in which no request ended has no latency: a gap.
	polyline(w, "#1f5fbf", len(bs), nil, func(i int) (float64, float64) { return bx(i), yRate(float64(bs[i].requests)) })
	polyline(w, "#7b3fa0", len(bs), func(i int) bool { return bs[i].requests == 0 }, func(i int) (float64, float64) { return bx(i), yLat(bs[i].p99) })
	polyline(w, "#d62728", len(bs), nil, func(i int) (float64, float64) { return bx(i), yFail(float64(bs[i].failed)) })
	fmt.Fprintln(w, "</svg>")
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
