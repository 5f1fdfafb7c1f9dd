package io.tessera.planner;

import io.tessera.attention.Attention;
import io.tessera.backend.Backend;
import io.tessera.layout.CsrMatrix;
import io.tessera.pattern.Pattern;
import io.tessera.tensor.Tensor;
import io.tessera.variant.sparse.SparseAttention;
import java.lang.System.Logger.Level;
import java.lang.foreign.Arena;
import java.time.Duration;
import java.util.Optional;
import java.util.Locale;
import java.util.function.UnaryOperator;

/**
 * Measures the planner's cost constants on the machine at hand: each path runs on
 * {@link Backend#best()} on one shape, repeatedly within a time budget, and its fastest run gives ns
 * per unit of work — but only from compiled code. Until the JIT has compiled the Vector API kernels
 * (seconds on a cold JVM, more under load) every vector operation allocates and a call is 100 to
 * 1000 times slower, so a tiny probe call decides first whether the kernels are compiled, and an
 * unsettled measurement is rejected; the reference constants stand in for both.
 * System properties replace either constant for reproducible plans.
 */
final class Calibration {
    private Calibration() {}

    /** What the first use of {@link Planner.CostModel#measured()} may spend measuring both paths. */
    static final Duration FIRST_USE_BUDGET = Duration.ofMillis(400);

    private static final System.Logger LOG = System.getLogger("io.tessera.planner");

    private static final class Holder {
        static final Planner.CostModel MODEL = resolve(System::getProperty, FIRST_USE_BUDGET);
    }

    static Planner.CostModel model() { return Holder.MODEL; }

    /** The model from {@code properties} where they set a constant, else measured within {@code budget}, else {@link Planner.CostModel#REFERENCE}. */
    static Planner.CostModel resolve(UnaryOperator<String> properties, Duration budget) {
        Double fused = parse(properties, Planner.CostModel.FUSED_PROPERTY), csr = parse(properties, Planner.CostModel.CSR_PROPERTY);
        String source;
        if (fused == null || csr == null) {
            // First use: measure only if the kernels are compiled already (a cold JVM gets the reference constants at once).
            Optional<Planner.CostModel> measured = probeFusedNanos() <= PROBE_LIMIT_NANOS ? measure(budget) : Optional.empty();
            source = measured.isPresent() ? "measured on " + Backend.best().name() : "reference machine (timings had not settled within " + budget.toMillis() + " ms: the JIT was still compiling)";
            Planner.CostModel m = measured.orElse(Planner.CostModel.REFERENCE);
            if (fused == null) fused = m.fusedNsPerPairDim();
            if (csr == null) csr = m.csrNsPerNonZeroDim();
        } else {
            source = "system properties";
        }
        Planner.CostModel model = new Planner.CostModel(fused, csr);
        LOG.log(Level.DEBUG, () -> String.format(Locale.ROOT, "planner cost model: fused %.4f ns/(pair·dim), CSR %.4f ns/(non-zero·dim) (%s)",
                model.fusedNsPerPairDim(), model.csrNsPerNonZeroDim(), source));
        return model;
    }

    /**
     * Both constants measured within about {@code budget} (a cold JVM's first calls may overrun it),
     * or empty when the timings did not settle in time. Measuring is also what warms the kernels, so
     * it repeats in slices of at most a quarter second until both paths' timings have settled and a
     * tiny probe call shows compiled code (microseconds, not milliseconds), or the budget is spent.
     */
    static Optional<Planner.CostModel> measure(Duration budget) {
        long deadline = System.nanoTime() + budget.toNanos();
        while (true) {
            long slice = Math.min(250_000_000, Math.max(0, deadline - System.nanoTime()) / 2);
            double fused = measureFused(slice), csr = measureCsr(slice);
            if (!Double.isNaN(fused) && !Double.isNaN(csr) && probeFusedNanos() <= PROBE_LIMIT_NANOS) {
                return Optional.of(new Planner.CostModel(fused, csr));
            }
            if (System.nanoTime() >= deadline) return Optional.empty();
        }
    }

    private static Double parse(UnaryOperator<String> properties, String name) {
        String value = properties.apply(name);
        if (value == null || value.isBlank()) return null;
        double parsed;
        try {
            parsed = Double.parseDouble(value.trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(name + " must be a positive number of nanoseconds, got '" + value + "'");
        }
        if (!(parsed > 0) || Double.isInfinite(parsed)) throw new IllegalArgumentException(name + " must be a positive number of nanoseconds, got " + value);
        return parsed;
    }

    /**
     * A tiny call is compiled code when it takes less than this. Observed on the reference machine
     * under load: 5–20 µs compiled, 70–1700 µs while the JIT is still at work, milliseconds cold.
     */
    static final long PROBE_LIMIT_NANOS = 50_000;

    /** The fastest of three dense calls with H = 1, n = 32, D = 16. */
    static long probeFusedNanos() {
        try (Arena arena = Arena.ofShared()) {
            Tensor q = Tensor.randomNormal(arena, 1, 1f, 1, 1, 32, 16), out = Tensor.zeros(arena, 1, 1, 32, 16);
            Attention dense = Attention.dense().on(Backend.best());
            long best = Long.MAX_VALUE;
            for (int run = 0; run < 3; run++) {
                long t0 = System.nanoTime();
                dense.forward(q, q, q, out);
                best = Math.min(best, System.nanoTime() - t0);
            }
            return best;
        }
    }

    /** Dense fused attention, H = 2, n = 512, D = 64: ns per (pair · dim · head), NaN if unsettled. */
    static double measureFused(long budgetNanos) {
        int heads = 2, n = 512, d = 64;
        try (Arena arena = Arena.ofShared()) {
            Tensor q = Tensor.randomNormal(arena, 1, 1f, 1, heads, n, d), k = Tensor.randomNormal(arena, 2, 1f, 1, heads, n, d);
            Tensor v = Tensor.randomNormal(arena, 3, 1f, 1, heads, n, d), out = Tensor.zeros(arena, 1, heads, n, d);
            Attention dense = Attention.dense().on(Backend.best());
            return settled(() -> dense.forward(q, k, v, out), budgetNanos) / ((double) n * n * d * heads);
        }
    }

    /** The explicit CSR path on a ±32 window, H = 2, n = 1024, D = 64: ns per (non-zero · dim · head), NaN if unsettled. */
    static double measureCsr(long budgetNanos) {
        int heads = 2, n = 1024, d = 64;
        CsrMatrix window = CsrMatrix.fromLayout(Pattern.slidingWindow(32).compile(n, n, 64, 64));
        try (Arena arena = Arena.ofShared()) {
            Tensor q = Tensor.randomNormal(arena, 1, 1f, 1, heads, n, d), k = Tensor.randomNormal(arena, 2, 1f, 1, heads, n, d);
            Tensor v = Tensor.randomNormal(arena, 3, 1f, 1, heads, n, d), out = Tensor.zeros(arena, 1, heads, n, d);
            SparseAttention sparse = SparseAttention.of(window).on(Backend.best());
            return settled(() -> sparse.forward(q, k, v, out), budgetNanos) / ((double) window.nonZeros() * d * heads);
        }
    }

    /**
     * The fastest run, once timings have settled: runs until the budget is spent, and accepts the
     * fastest unless the second half of the runs was more than 20 % faster than the first (the JIT
     * was still making it faster). NaN then, or with fewer than {@link #MIN_RUNS} runs.
     */
    private static double settled(Runnable call, long budgetNanos) {
        long[] times = new long[4096];
        int runs = 0;
        long start = System.nanoTime();
        while (runs < times.length && System.nanoTime() - start < budgetNanos) {
            long t0 = System.nanoTime();
            call.run();
            times[runs++] = Math.max(1, System.nanoTime() - t0);
        }
        if (runs < MIN_RUNS) return Double.NaN;
        long first = Long.MAX_VALUE, second = Long.MAX_VALUE;
        for (int i = 0; i < runs / 2; i++) first = Math.min(first, times[i]);
        for (int i = runs / 2; i < runs; i++) second = Math.min(second, times[i]);
        return second >= 0.8 * first ? Math.min(first, second) : Double.NaN;
    }

    /** Fewest runs {@link #settled} judges. */
    private static final int MIN_RUNS = 10;
}
