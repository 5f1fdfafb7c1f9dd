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

    /** A grouped bar chart: category → series → value. */
    public static void bars(String title, String valueAxis, Map<String, Map<String, Double>> values, Path file) throws IOException {
        DefaultCategoryDataset data = new DefaultCategoryDataset();
        values.forEach((category, bySeries) -> bySeries.forEach((s, v) -> data.addValue(v, s, category)));
        JFreeChart chart = ChartFactory.createBarChart(title, null, valueAxis, data, PlotOrientation.VERTICAL, true, false, false);
        CategoryPlot plot = chart.getCategoryPlot();
        plot.getRangeAxis().setLowerBound(0);
        // Case names ("window256 n=4096") are longer than a bar group is wide: slant them.
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
