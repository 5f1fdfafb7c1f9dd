package io.tessera.bench;

import java.lang.management.ManagementFactory;
import java.time.LocalTime;
import java.time.format.DateTimeFormatter;
import java.util.Locale;

/**
 * Opt-in timestamps of the main job's phases on standard error, to see where its wall time goes:
 * set {@code TESSERA_BENCH_TRACE} (any value) in the environment. Child JVMs inherit the variable;
 * {@link Interleaved} forwards its children's trace lines, so one stream shows every JVM start,
 * setup, warm-up and measurement. Off, a call costs one boolean test: nothing is printed, so
 * ordinary runs and their output are unchanged.
 */
public final class Trace {
    private Trace() {}

    /** Whether tracing is on for this process. */
    public static final boolean ON = System.getenv("TESSERA_BENCH_TRACE") != null;

    /** What every trace line starts with: {@link Interleaved} recognises its children's lines by it. */
    static final String PREFIX = "[trace ";

    private static final DateTimeFormatter CLOCK = DateTimeFormatter.ofPattern("HH:mm:ss.SSS", Locale.ROOT);

    /**
     * Prints {@code [trace HH:mm:ss.SSS +uptime pid] what}: the wall clock lines up the lines of
     * several JVMs, the uptime (seconds since this JVM started) shows a child's start-up cost.
     */
    public static void mark(String what) {
        if (!ON) return;
        double uptime = ManagementFactory.getRuntimeMXBean().getUptime() / 1e3;
        System.err.printf(Locale.ROOT, "%s%s +%.3f s %d] %s%n", PREFIX, LocalTime.now().format(CLOCK), uptime, ProcessHandle.current().pid(), what);
        System.err.flush();
    }

    /** Whether a line of a child's standard error is one of its trace lines. */
    static boolean isTraceLine(String line) {
        return line.startsWith(PREFIX);
    }
}
