package io.tessera.bench.report;

import java.awt.BasicStroke;
import java.awt.Color;
import java.io.IOException;
import java.nio.file.Path;
import java.text.DecimalFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.jfree.chart.ChartFactory;
import org.jfree.chart.ChartUtils;
import org.jfree.chart.JFreeChart;
import org.jfree.chart.axis.CategoryLabelPositions;
import org.jfree.chart.axis.LogAxis;
import org.jfree.chart.axis.NumberAxis;
import org.jfree.chart.plot.CategoryPlot;
import org.jfree.chart.plot.ValueMarker;
import org.jfree.chart.renderer.category.BarRenderer;
import org.jfree.chart.ui.Layer;
import org.jfree.chart.ui.RectangleAnchor;
import org.jfree.chart.ui.TextAnchor;
import org.jfree.chart.plot.PlotOrientation;
import org.jfree.chart.plot.XYPlot;
import org.jfree.chart.renderer.xy.XYLineAndShapeRenderer;
import org.jfree.data.category.DefaultCategoryDataset;
import org.jfree.data.xy.XYSeries;
import org.jfree.data.xy.XYSeriesCollection;

/** The report's charts, drawn with JFreeChart and saved as PNG. */
public final class Charts {
    private Charts() {}

    static final int WIDTH = 900, HEIGHT = 540;

    /** Time per call vs sequence length, log-log, one line per (engine, pattern). */
    public static void timeVsLength(List<Measurement> ms, Path file) throws IOException {
        XYSeriesCollection data = new XYSeriesCollection();
        Map<String, XYSeries> series = new LinkedHashMap<>();
        for (Measurement m : ms) {
            series.computeIfAbsent(m.engineLabel() + " · " + m.pattern() + " · " + m.threads() + "T", k -> new XYSeries(k, true, false))
                    .add(m.n(), m.msPerCall());
        }
        series.values().stream().filter(s -> s.getItemCount() > 0).forEach(data::addSeries);
        JFreeChart chart = ChartFactory.createXYLineChart("Time per call vs sequence length (B=1, H=8, D=64)",
                "sequence length n", "ms per call", data, PlotOrientation.VERTICAL, true, false, false);
        XYPlot plot = chart.getXYPlot();
        LogAxis x = new LogAxis("sequence length n");
        x.setBase(2);
        x.setStandardTickUnits(NumberAxis.createIntegerTickUnits());
        x.setNumberFormatOverride(new DecimalFormat("0"));
        plot.setDomainAxis(x);
        LogAxis y = new LogAxis("ms per call");
        y.setNumberFormatOverride(new DecimalFormat("0.#"));
        plot.setRangeAxis(y);
        XYLineAndShapeRenderer renderer = new XYLineAndShapeRenderer(true, true);
        for (int s = 0; s < data.getSeriesCount(); s++) renderer.setSeriesStroke(s, new BasicStroke(2f));
        plot.setRenderer(renderer);
        style(chart);
        ChartUtils.saveChartAsPNG(file.toFile(), chart, WIDTH, HEIGHT);
    }

    /**
     * Speed-ups as grouped bars on a log axis, growing up or down from a marked 1× line: ratios near 1
     * (the interesting ones) stay visible next to a 100× bar, and slower-than reads as a bar going down.
     */
    public static void speedups(String title, String valueAxis, Map<String, Map<String, Double>> values, Path file) throws IOException {
        DefaultCategoryDataset data = new DefaultCategoryDataset();
        double min = 1, max = 1;
        for (Map.Entry<String, Map<String, Double>> e : values.entrySet()) {
            for (Map.Entry<String, Double> s : e.getValue().entrySet()) {
                double v = s.getValue();
                if (!(v > 0) || Double.isInfinite(v)) continue;   // a log axis cannot show 0, NaN or ∞
                data.addValue(v, s.getKey(), e.getKey());
                min = Math.min(min, v);
                max = Math.max(max, v);
            }
        }
        JFreeChart chart = ChartFactory.createBarChart(title, null, valueAxis, data, PlotOrientation.VERTICAL, true, false, false);
        CategoryPlot plot = chart.getCategoryPlot();
        LogAxis axis = new LogAxis(valueAxis);
        axis.setBase(10);
        axis.setNumberFormatOverride(new DecimalFormat("0.##'×'"));
        axis.setRange(min / 1.5, max * 1.5);
        plot.setRangeAxis(axis);
        BarRenderer renderer = (BarRenderer) plot.getRenderer();
        renderer.setBase(1);   // bars start at 1×, not at 0 (which a log axis does not have)
        renderer.setShadowVisible(false);
        ValueMarker one = new ValueMarker(1, Color.BLACK, new BasicStroke(1.5f));
        one.setLabel("1×");
        one.setLabelAnchor(RectangleAnchor.TOP_LEFT);
        one.setLabelTextAnchor(TextAnchor.BOTTOM_LEFT);
        plot.addRangeMarker(one, Layer.FOREGROUND);
        plot.getDomainAxis().setCategoryLabelPositions(CategoryLabelPositions.UP_45);
        style(chart);
        ChartUtils.saveChartAsPNG(file.toFile(), chart, WIDTH, HEIGHT);
    }

    /** A line chart of value vs sequence length per series (linear axes). */
    public static void lines(String title, String valueAxis, Map<String, Map<Integer, Double>> values, Path file) throws IOException {
        XYSeriesCollection data = new XYSeriesCollection();
        values.forEach((name, points) -> {
            XYSeries s = new XYSeries(name, true, false);
            points.forEach(s::add);
            data.addSeries(s);
        });
        JFreeChart chart = ChartFactory.createXYLineChart(title, "sequence length n", valueAxis, data, PlotOrientation.VERTICAL, true, false, false);
        chart.getXYPlot().setRenderer(new XYLineAndShapeRenderer(true, true));
        style(chart);
        ChartUtils.saveChartAsPNG(file.toFile(), chart, WIDTH, HEIGHT);
    }

    private static void style(JFreeChart chart) {
        chart.setBackgroundPaint(Color.WHITE);
        chart.getPlot().setBackgroundPaint(new Color(0xf7f7f7));
    }
}
