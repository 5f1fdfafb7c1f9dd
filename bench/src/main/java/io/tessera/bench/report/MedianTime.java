package io.tessera.bench.report;

import org.openjdk.jmh.results.Result;
import org.openjdk.jmh.util.Statistics;

/**
 * The time per call the main job reports for a JMH case run in sample mode: the median of the
 * timed calls, and the half-width of a distribution-free 95 % confidence interval of that median.
 *
 * <p>Why not JMH's default (the mean of a few iterations and its 99.9 % Student interval): a call
 * of 300 ms gives three iterations of three calls in the quick schedule, so one slow iteration (a GC,
 * a late compilation, another process) moves the mean by tens of percent and the interval is ±200 %
 * (Student's t for 2 degrees of freedom is 31.6). Sample mode times every call; the median of
 * nine or more is robust to the odd slow one, for Tessera and the peers alike.
 *
 * <p>The interval is the order-statistic one: with N calls, the ranks N/2 ± 1.96·√N/2 bound the
 * median with about 95 % confidence whatever the distribution (normal approximation of the
 * binomial), read here as the percentiles 50 ± 98/√N.
 */
public record MedianTime(double median, double halfWidth, long calls) {

    /** From a sample-mode primary result (its statistics hold every timed call). */
    public static MedianTime of(Result<?> sampled) {
        return of(sampled.getStatistics());
    }

    /** From individually timed calls (or any samples: the main job's per-round ratios too). */
    public static MedianTime of(double[] samples) {
        org.openjdk.jmh.util.ListStatistics s = new org.openjdk.jmh.util.ListStatistics();
        for (double x : samples) s.addValue(x);
        return of(s);
    }

    static MedianTime of(Statistics s) {
        long calls = s.getN();
        if (calls == 0) throw new IllegalArgumentException("no timed calls in the result");
        double spread = 98.0 / Math.sqrt(calls);
        double lo = s.getPercentile(Math.max(0.0, 50.0 - spread)), hi = s.getPercentile(Math.min(100.0, 50.0 + spread));
        return new MedianTime(s.getPercentile(50.0), (hi - lo) / 2, calls);
    }
}
