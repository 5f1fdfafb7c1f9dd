package io.tessera.bench;

import io.tessera.bench.report.MedianTime;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.lang.management.ManagementFactory;
import java.lang.reflect.Field;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.TearDown;

/**
 * Several engines timed call by call in turns, in one fresh JVM: Tessera and its peers on the same
 * case take rounds (one call each, the order rotating), so every engine is measured in the same
 * seconds of the machine's life.
 *
 * <p>Why: this host runs in phases of seconds (the same call takes 33, 50 or 65 ms over a few
 * hundred consecutive calls, and the in-process FMA peak read 90 and 72 GFLOP/s minutes apart), so
 * two JMH forks minutes apart compare two phases, not two engines. Within a round the engines see
 * the same phase: the per-round ratio of a peer's time to the first engine's cancels it, and the
 * report gives the median of those ratios with its 95 % order-statistic interval ({@link MedianTime}).
 *
 * <p>Each contender is a JMH benchmark state class of this module ({@code AttentionBenchmark},
 * {@code PeerBenchmark}, {@code TrainingBenchmark}, {@code DecodeBenchmark}, …) with its
 * {@code @Param} fields set by name: its own {@code @Setup(Level.Trial)} prepares the inputs and
 * checks the output against the oracle, exactly as in a JMH fork, and the measured call is its
 * {@code @Benchmark} method. The child JVM is fresh (no other section's shapes in the JIT's
 * profiles) and gets the forks' flags. Between two calls the harness sleeps {@link #PAUSE_MS} ms and
 * then waits until the process is idle ({@link #settle}), so a runtime whose idle threads spin after
 * a parallel region (ONNX Runtime's pool, OpenMP in PyTorch) does not take CPU from the next engine's
 * call. Every engine's inputs are cold in cache at
 * its call (another engine ran in between): the same for all of them, and what a model layer sees.
 */
public final class Interleaved {
    private Interleaved() {}

    /** Sleep between two calls, before waiting for the process's other threads to go idle. */
    static final int PAUSE_MS = 20;
    /** How long the JIT must have compiled nothing before an engine's warm-up ends. */
    static final long JIT_QUIET_NANOS = 300_000_000L;
    /** The longest wait, after the pause, for the process's other threads to go idle. */
    static final long MAX_SETTLE_NANOS = 200_000_000L;

    /**
     * One engine of a match: a benchmark state class, its benchmark method and its parameters.
     *
     * @param label     the name the caller knows it by (not parsed)
     */
    public record Contender(String label, Class<?> benchmark, String method, Map<String, String> params) {
        public Contender {
            if (label.contains("\t") || label.contains("\n")) throw new IllegalArgumentException("label must be one line without tabs, got '" + label + "'");
            params = new LinkedHashMap<>(params);
        }

        /** {@code class#method?name=value&…}: the child's argument. */
        String encode() {
            StringBuilder sb = new StringBuilder(benchmark.getName()).append('#').append(method);
            char sep = '?';
            for (var e : params.entrySet()) {
                sb.append(sep).append(e.getKey()).append('=').append(e.getValue());
                sep = '&';
            }
            return sb.toString();
        }
    }

    /**
     * How long a match runs: each engine alone first, until it has run {@code warmupSeconds} and at
     * least {@code minWarmupCalls} calls (or twice the warm-up time in fewer, longer calls: a call
     * of seconds has given the JIT that long already); then measured rounds until their calls add
     * up to {@code measureSeconds} (all engines together: a peer 25× slower than Tessera does not
     * multiply the rounds) and there are at least {@code minRounds} — but no more than three times
     * {@code measureSeconds} once 3 rounds are in, so an engine whose call takes seconds (PyTorch's
     * SDPA on a 32K cache: 3 s) does not stretch the match to minutes.
     */
    public record Budget(double warmupSeconds, int minWarmupCalls, double measureSeconds, int minRounds) {
        public Budget {
            if (!(warmupSeconds >= 0) || !(measureSeconds >= 0) || minWarmupCalls < 1 || minRounds < 1) {
                throw new IllegalArgumentException("budget must be non-negative with at least one warm-up call and round, got "
                        + warmupSeconds + " s / " + minWarmupCalls + " calls, " + measureSeconds + " s / " + minRounds + " rounds");
            }
        }

        /**
         * The main job's forward, decode and options matches. Full: about JMH's full schedule (3×1 s,
         * 5×2 s) per engine. Quick: 1 s of warm-up each (its first, cold call included; then on until
         * the JIT is quiet, see the child's warm-up) and 4 s of calls for all engines, which keeps the paired
         * ratios' 95 % intervals within a few percent at n = 4096 (9–13 rounds) and gives small
         * calls a hundred rounds.
         */
        public static Budget forCalls(boolean full) {
            return full ? new Budget(3, 3, 20, 15) : new Budget(1, 3, 4, 9);
        }

        /** Training steps take seconds each: fewer calls. */
        public static Budget forSteps(boolean full) {
            return full ? new Budget(4, 3, 30, 9) : new Budget(1, 2, 6, 6);
        }

        String encode() {
            return String.format(Locale.ROOT, "%s,%d,%s,%d", warmupSeconds, minWarmupCalls, measureSeconds, minRounds);
        }

        /** Whether an engine that has made {@code calls} warm-up calls in {@code spent} seconds warms up further. */
        boolean warmsUp(int calls, double spent) {
            return spent < warmupSeconds || calls < minWarmupCalls && spent < 2 * warmupSeconds;
        }

        /** Whether a match with {@code rounds} measured rounds whose calls took {@code spent} seconds runs another. */
        boolean measuresMore(int rounds, double spent) {
            if (rounds >= 3 && spent >= 3 * measureSeconds) return false;
            return (rounds < minRounds || spent < measureSeconds) && rounds < 100_000;
        }

        static Budget decode(String s) {
            String[] f = s.split(",");
            return new Budget(Double.parseDouble(f[0]), Integer.parseInt(f[1]), Double.parseDouble(f[2]), Integer.parseInt(f[3]));
        }
    }

    /**
     * One engine's result.
     *
     * @param time      its median call and that median's interval
     * @param heapBytesPerCall median heap allocated per call by all threads
     * @param speedup   the median over rounds of (this engine's call / the first engine's call in the
     *                  same round), with its interval; for the first engine itself, null. Above 1: the first is faster.
     * @param rounds    this engine's call in each measured round, ms (the same rounds for every engine of the match)
     */
    public record Outcome(Contender contender, MedianTime time, double heapBytesPerCall, MedianTime speedup, double[] rounds) {
        /** The median over rounds of (this engine's call / {@code other}'s call in the same round), with its interval. */
        public MedianTime over(Outcome other) {
            if (other.rounds.length != rounds.length) throw new IllegalArgumentException("outcomes of different matches: " + rounds.length + " vs " + other.rounds.length + " rounds");
            double[] ratio = new double[rounds.length];
            for (int r = 0; r < ratio.length; r++) ratio[r] = rounds[r] / other.rounds[r];
            return MedianTime.of(ratio);
        }
    }

    /** Runs the match in a JVM of its own with the forks' flags and {@code extraJvmArgs}. */
    public static List<Outcome> run(List<Contender> contenders, Budget budget, List<String> extraJvmArgs) throws Exception {
        if (contenders.isEmpty()) throw new IllegalArgumentException("contenders must not be empty");
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString()));
        cmd.addAll(Quiet.forkFlags());
        cmd.addAll(extraJvmArgs);
        cmd.addAll(List.of("-cp", System.getProperty("java.class.path"), Interleaved.class.getName(), budget.encode()));
        for (Contender c : contenders) cmd.add(c.encode());
        Trace.mark("interleaved child starts: " + contenders.stream().map(Contender::label).toList());
        Process p = new ProcessBuilder(cmd).redirectError(ProcessBuilder.Redirect.PIPE).start();
        List<String> errors = new ArrayList<>();
        Thread drain = Thread.ofVirtual().start(() -> {
            try (var r = new BufferedReader(new InputStreamReader(p.getErrorStream(), StandardCharsets.UTF_8))) {
                // Messages, not stack frames: the report's note names what failed. The child's trace lines go to this JVM's trace.
                r.lines().filter(l -> !l.equals(Quiet.INCUBATOR_NOTICE) && !l.stripLeading().startsWith("at ") && !l.stripLeading().startsWith("..."))
                        .forEach(l -> {
                            if (Trace.isTraceLine(l)) System.err.println(l);
                            else errors.add(l);
                        });
            } catch (Exception ignored) {
                // the exit code reports the failure
            }
        });
        double[][] times = new double[contenders.size()][], heap = new double[contenders.size()][];
        try (var r = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
            for (String line; (line = r.readLine()) != null; ) {
                String[] f = line.split("\t");
                if (f.length != 4 || !f[0].equals("interleaved")) continue;   // a library's own output
                int c = Integer.parseInt(f[1]);
                times[c] = parse(f[2]);
                heap[c] = parse(f[3]);
            }
        }
        int exit = p.waitFor();
        drain.join();
        Trace.mark("interleaved child ended, exit " + exit);
        if (exit != 0 || java.util.Arrays.stream(times).anyMatch(t -> t == null)) {
            throw new IllegalStateException("interleaved match failed (exit " + exit + "): "
                    + String.join(" | ", errors.subList(Math.max(0, errors.size() - 6), errors.size())));
        }
        List<Outcome> outcomes = new ArrayList<>();
        for (int c = 0; c < contenders.size(); c++) {
            Outcome o = new Outcome(contenders.get(c), MedianTime.of(times[c]), MedianTime.of(heap[c]).median(), null, times[c]);
            outcomes.add(c == 0 ? o : new Outcome(o.contender(), o.time(), o.heapBytesPerCall(), o.over(outcomes.getFirst()), o.rounds()));
        }
        return outcomes;
    }

    private static double[] parse(String csv) {
        return java.util.Arrays.stream(csv.split(",")).mapToDouble(Double::parseDouble).toArray();
    }

    // ---------------------------------------------------------------- the child JVM

    /** Child: {@code budget contender…}; prints one {@code interleaved\tindex\tms,…\tbytes,…} line per contender. */
    public static void main(String[] args) throws Throwable {
        Budget budget = Budget.decode(args[0]);
        int m = args.length - 1;
        Object[] states = new Object[m];
        Method[] calls = new Method[m];
        for (int c = 0; c < m; c++) {
            String spec = args[c + 1];
            int hash = spec.indexOf('#'), query = spec.indexOf('?');
            Class<?> type = Class.forName(spec.substring(0, hash));
            states[c] = type.getConstructor().newInstance();
            defaults(states[c]);
            if (query > 0) {
                for (String kv : spec.substring(query + 1).split("&")) {
                    int eq = kv.indexOf('=');
                    set(states[c], kv.substring(0, eq), kv.substring(eq + 1));
                }
            }
            calls[c] = type.getMethod(spec.substring(hash + 1, query > 0 ? query : spec.length()));
            invokeAnnotated(states[c], Setup.class);
            Trace.mark("set up " + spec);
        }
        var threads = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        // Warm-up, each engine alone and back to back (no other engine's call to keep apart from):
        // the JIT compiles every engine's path before anything is kept. Past the budget, calls go on
        // until the JIT has compiled nothing for JIT_QUIET_NANOS (at most 5 warm-up budgets): C2's
        // compilation of the kernels runs in the background for seconds, and 1 s of 14-ms calls
        // ended before it did (Tessera's n = 1024 call measured 16.9 ms instead of 13.9).
        var jit = ManagementFactory.getCompilationMXBean();
        for (int c = 0; c < m; c++) {
            double spent = 0;
            long compiled = jit.getTotalCompilationTime(), quietSince = System.nanoTime();
            for (int call = 0; budget.warmsUp(call, spent) || System.nanoTime() - quietSince < JIT_QUIET_NANOS && spent < 5 * budget.warmupSeconds(); call++) {
                spent += time(states[c], calls[c], false) * 1e-3;
                long now = jit.getTotalCompilationTime();
                if (now != compiled) {
                    compiled = now;
                    quietSince = System.nanoTime();
                }
            }
            Trace.mark(String.format(Locale.ROOT, "warmed up contender %d: %.2f s of calls", c, spent));
        }
        // Measured rounds: every engine once per round, the order rotating.
        List<double[]> rounds = new ArrayList<>(), bytes = new ArrayList<>();
        double spent = 0;
        while (budget.measuresMore(rounds.size(), spent)) {
            int round = rounds.size();
            double[] ms = new double[m], heap = new double[m];
            for (int i = 0; i < m; i++) {
                int c = (round + i) % m;
                long before = threads.getTotalThreadAllocatedBytes();
                ms[c] = time(states[c], calls[c], true);
                heap[c] = threads.getTotalThreadAllocatedBytes() - before;
                spent += ms[c] * 1e-3;
            }
            rounds.add(ms);
            bytes.add(heap);
        }
        Trace.mark(String.format(Locale.ROOT, "measured %d rounds, %.2f s of calls", rounds.size(), spent));
        for (int c = 0; c < m; c++) {
            StringBuilder t = new StringBuilder(), h = new StringBuilder();
            for (int r = 0; r < rounds.size(); r++) {
                t.append(r == 0 ? "" : ",").append(rounds.get(r)[c]);
                h.append(r == 0 ? "" : ",").append(bytes.get(r)[c]);
            }
            System.out.println("interleaved\t" + c + "\t" + t + "\t" + h);
        }
        for (Object s : states) invokeAnnotated(s, TearDown.class);
        System.out.flush();
        System.exit(0);   // a peer's non-daemon threads must not keep the child alive
    }

    private static volatile Object sink;

    /** One call in ms, after the pause between engines if {@code pause}. */
    private static double time(Object state, Method call, boolean pause) throws Throwable {
        if (pause) settle();
        long t0 = System.nanoTime();
        try {
            sink = call.invoke(state);
        } catch (InvocationTargetException e) {
            throw e.getCause();
        }
        return (System.nanoTime() - t0) * 1e-6;
    }

    private static final com.sun.management.OperatingSystemMXBean OS = (com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean();

    /**
     * The pause, then until the process's threads use less than a quarter of a core over 2 ms (at
     * most {@link #MAX_SETTLE_NANOS}): ONNX Runtime's pool spins for about 20 ms after its call, a
     * full core, and a fixed 20 ms pause can let that spin overlap the next engine's two-thread
     * call (measured at load 5, n = 1024: Tessera's call 0.78× ONNX Runtime's with the fixed pause,
     * 1.24× with 100 ms; on a quiet machine both pauses gave the same ratio). Every engine starts
     * from an idle process; on a quiet machine the wait is rarely longer than the pause.
     */
    static void settle() throws InterruptedException {
        Thread.sleep(PAUSE_MS);
        long deadline = System.nanoTime() + MAX_SETTLE_NANOS;
        while (System.nanoTime() < deadline) {
            long cpu = OS.getProcessCpuTime(), t0 = System.nanoTime();
            Thread.sleep(2);
            if (OS.getProcessCpuTime() - cpu < (System.nanoTime() - t0) / 4) return;
        }
    }

    /** Every {@code @Param} field at its annotation's first value, as JMH would run it without the parameter given. */
    private static void defaults(Object state) throws ReflectiveOperationException {
        for (Field f : state.getClass().getFields()) {
            org.openjdk.jmh.annotations.Param p = f.getAnnotation(org.openjdk.jmh.annotations.Param.class);
            if (p != null && p.value().length > 0) set(state, f.getName(), p.value()[0]);
        }
    }

    private static void set(Object state, String name, String value) throws ReflectiveOperationException {
        Field f = state.getClass().getField(name);
        if (f.getType() == int.class) f.setInt(state, Integer.parseInt(value));
        else if (f.getType() == String.class) f.set(state, value);
        else if (f.getType() == boolean.class) f.setBoolean(state, Boolean.parseBoolean(value));
        else throw new IllegalArgumentException("parameter '" + name + "' of " + state.getClass().getSimpleName() + " has unsupported type " + f.getType());
    }

    /** Runs the state's trial-level {@code @Setup} or {@code @TearDown} methods. */
    private static void invokeAnnotated(Object state, Class<? extends java.lang.annotation.Annotation> kind) throws Throwable {
        for (Method method : state.getClass().getMethods()) {
            var a = method.getAnnotation(kind);
            if (a == null) continue;
            Level level = a instanceof Setup s ? s.value() : ((TearDown) a).value();
            if (level != Level.Trial) throw new IllegalStateException(state.getClass().getSimpleName() + "." + method.getName() + " is a " + level + "-level fixture: the harness runs trial-level ones only");
            try {
                method.invoke(state);
            } catch (InvocationTargetException e) {
                throw e.getCause();
            }
        }
    }
}
