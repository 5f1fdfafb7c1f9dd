package io.tessera.bench;

import java.util.Locale;
import java.util.function.LongSupplier;

/**
 * The main job's progress line: {@code [ 3/31] tessera simd dense n=1024 D=64 2T   12.34 ms … eta 4m10s}.
 * The time left is the remaining cases times the mean duration of the finished ones (before the
 * first finishes, the planned duration per case).
 */
final class Progress {
    private final int total;
    private final double plannedSeconds;
    private final LongSupplier nanoClock;
    private final long startNanos;
    private int started, finished;

    Progress(int total, double plannedSecondsPerCase) {
        this(total, plannedSecondsPerCase, System::nanoTime);
    }

    Progress(int total, double plannedSecondsPerCase, LongSupplier nanoClock) {
        if (total < 0) throw new IllegalArgumentException("total must be >= 0, got " + total);
        this.total = total;
        this.plannedSeconds = plannedSecondsPerCase;
        this.nanoClock = nanoClock;
        this.startNanos = nanoClock.getAsLong();
    }

    /** The start of a case's line (printed before it runs). */
    String start(String name) {
        started++;
        int width = String.valueOf(total).length();
        return String.format(Locale.ROOT, "[%" + width + "d/%d] %-40s ", started, total, name);
    }

    /** The end of the line: the case's result and the estimated time left. */
    String done(String result) {
        finished++;
        double elapsed = (nanoClock.getAsLong() - startNanos) * 1e-9;
        if (finished >= total) return result + "  done in " + duration(elapsed);
        double perCase = finished > 0 ? elapsed / finished : plannedSeconds;
        return result + "  ~" + duration(perCase * (total - finished)) + " left";
    }

    /** {@code 45s}, {@code 4m05s}, {@code 1h02m}. */
    static String duration(double seconds) {
        long s = Math.round(seconds);
        if (s < 60) return s + "s";
        if (s < 3600) return String.format(Locale.ROOT, "%dm%02ds", s / 60, s % 60);
        return String.format(Locale.ROOT, "%dh%02dm", s / 3600, (s % 3600) / 60);
    }
}
