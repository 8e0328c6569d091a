package main

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"strconv"
)

// curve is one case's histogram, drawn in panel 0 (round trips) or 1
// (one-way).
type curve struct {
	label string
	panel int
	h     *Hist
}

var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f"}

// writeSVG draws the percentile curves of cs in the HdrHistogram style:
// x is the percentile on a log scale of 1/(1-q) (50 %, 90 %, 99 %,
// 99.9 % ... equally spaced, so the tail gets the room), y is the latency
// on a log scale (the tail spans decades). Standard library only.
func writeSVG(path string, cs []curve) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("writing the SVG: %w", err)
	}
	w := bufio.NewWriter(f)
	const width, panelH = 1000, 420
	var panels [2][]curve
	for _, c := range cs {
		if c.h.Count() > 0 {
			panels[c.panel] = append(panels[c.panel], c)
		}
	}
	titles := [2]string{"Round trip, one outstanding (Send to the echo's reply in the Handler)",
		"One-way under load (receiving Handler - intended send time)"}
	n := 0
	for _, p := range panels {
		if len(p) > 0 {
			n++
		}
	}
	fmt.Fprintf(w, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n",
		width, panelH*max(n, 1))
	fmt.Fprintf(w, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	y0 := 0
	for i, p := range panels {
		if len(p) == 0 {
			continue
		}
		drawPanel(w, titles[i], p, 0, y0, width, panelH)
		y0 += panelH
	}
	fmt.Fprintln(w, "</svg>")
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("writing the SVG: %w", err)
	}
	return f.Close()
}

func drawPanel(w *bufio.Writer, title string, cs []curve, ox, oy, width, height int) {
	const left, right, top, bottom = 70, 230, 30, 45
	pw, ph := float64(width-left-right), float64(height-top-bottom)
	// Ranges: x to the rarest percentile any curve resolves, y over the
	// decades the values span.
	xmax, lo, hi := 1.0, math.Inf(1), 0.0
	for _, c := range cs {
		xmax = max(xmax, math.Log10(float64(c.h.Count())))
		lo = min(lo, float64(max(c.h.Min(), 1)))
		hi = max(hi, float64(c.h.Max()))
	}
	xmax = math.Ceil(min(xmax, 7))
	ylo, yhi := math.Floor(math.Log10(lo/1e3)), math.Ceil(math.Log10(hi/1e3))
	if yhi <= ylo {
		yhi = ylo + 1
	}
	px := func(x float64) float64 { return float64(ox+left) + pw*x/xmax }
	py := func(ns float64) float64 {
		v := math.Log10(max(ns, 1) / 1e3)
		return float64(oy+top) + ph*(1-(v-ylo)/(yhi-ylo))
	}
	fmt.Fprintf(w, `<text x="%d" y="%d" font-size="14" font-weight="bold">%s</text>`+"\n", ox+left, oy+20, title)
	// Grid and axes.
	for x := 0.0; x <= xmax; x++ {
		// 0%, 90%, 99%, 99.9%...: one more nine per step.
		label := strconv.FormatFloat(100*(1-math.Pow(10, -x)), 'f', max(0, int(x)-2), 64) + "%"
		fmt.Fprintf(w, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", px(x), oy+top, px(x), float64(oy+top)+ph)
		fmt.Fprintf(w, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", px(x), float64(oy+top)+ph+16, label)
	}
	// 50 % is where the median reads.
	fmt.Fprintf(w, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%.1f" stroke="#ddd" stroke-dasharray="3,3"/>`+"\n",
		px(math.Log10(2)), oy+top, px(math.Log10(2)), float64(oy+top)+ph)
	fmt.Fprintf(w, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="#999">50%%</text>`+"\n", px(math.Log10(2)), float64(oy+top)+ph+30)
	fmt.Fprintf(w, `<text x="%.1f" y="%d" text-anchor="middle">percentile</text>`+"\n", float64(ox+left)+pw/2, oy+height-4)
	for d := ylo; d <= yhi; d++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, d) * 1e3 // ns
			if math.Log10(v/1e3) > yhi {
				break
			}
			stroke := "#eee"
			if m == 1 {
				stroke = "#ccc"
			}
			fmt.Fprintf(w, `<line x1="%d" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s"/>`+"\n", ox+left, py(v), float64(ox+left)+pw, py(v), stroke)
			fmt.Fprintf(w, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", ox+left-6, py(v)+4, fmtDur(int64(v)))
		}
	}
	fmt.Fprintf(w, `<rect x="%d" y="%d" width="%.0f" height="%.0f" fill="none" stroke="#333"/>`+"\n", ox+left, oy+top, pw, ph)
	// Curves: a point every 0.01 of the x axis up to 1 - 1/n, then the max.
	for i, c := range cs {
		color := palette[i%len(palette)]
		end := math.Log10(float64(c.h.Count()))
		fmt.Fprintf(w, `<polyline fill="none" stroke="%s" stroke-width="1.6" points="`, color)
		for x := 0.0; x < end && x <= xmax; x += 0.01 {
			fmt.Fprintf(w, "%.1f,%.1f ", px(x), py(float64(c.h.Quantile(1-math.Pow(10, -x)))))
		}
		fmt.Fprintf(w, "%.1f,%.1f", px(min(end, xmax)), py(float64(c.h.Max())))
		fmt.Fprintln(w, `"/>`)
		ly := oy + top + 10 + 18*i
		fmt.Fprintf(w, `<line x1="%.0f" y1="%d" x2="%.0f" y2="%d" stroke="%s" stroke-width="3"/>`+"\n",
			float64(ox+left)+pw+10, ly, float64(ox+left)+pw+28, ly, color)
		fmt.Fprintf(w, `<text x="%.0f" y="%d">%s</text>`+"\n", float64(ox+left)+pw+33, ly+4, c.label)
	}
}
