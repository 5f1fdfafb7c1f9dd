package io.tessera.bench;

import io.tessera.bench.report.MedianTime;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.lang.management.ManagementFactory;
import java.lang.reflect.Field;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
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

    /**
     * Sleep between two calls, before waiting for the process's other threads to go idle. Short: the
     * wait ({@link #settle}) is what keeps a spinning pool out of the next call; at 20 ms the pauses
     * of the quick main job's ~1,100 measured calls (a hundred rounds of three engines at n = 1024)
     * added up to about 25 s of its 5 minutes.
     */
    static final int PAUSE_MS = 5;
    /** How long the JIT must have compiled nothing before an engine's warm-up ends. */
    static final long JIT_QUIET_NANOS = 300_000_000L;

    /**
     * Whether the JIT has compiled nothing for {@link #JIT_QUIET_NANOS}, for a warm-up loop: made
     * when the loop starts, told after each call. Shared by this class's warm-up and the variants
     * section's (C2 compiles a kernel in the background for seconds after its first calls).
     */
    public static final class JitQuiet {
        private final java.lang.management.CompilationMXBean jit = ManagementFactory.getCompilationMXBean();
        private long compiled = jit.getTotalCompilationTime(), quietSince = System.nanoTime();

        /** Notes whether the JIT compiled anything during the call just made. */
        public void afterCall() {
            long total = jit.getTotalCompilationTime();
            if (total != compiled) {
                compiled = total;
                quietSince = System.nanoTime();
            }
        }

        /** Whether nothing was compiled for the last {@link #JIT_QUIET_NANOS}. */
        public boolean quiet() { return System.nanoTime() - quietSince >= JIT_QUIET_NANOS; }
    }
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
     * SDPA on a 32K cache: 3 s) does not stretch the match to minutes — and no more than
     * {@code maxRounds}, so a match of short calls (a decode step of 1.6 ms alone in its match) is
     * not hundreds of rounds of the pause between calls.
     */
    public record Budget(double warmupSeconds, int minWarmupCalls, double measureSeconds, int minRounds, int maxRounds) {
        public Budget {
            if (!(warmupSeconds >= 0) || !(measureSeconds >= 0) || minWarmupCalls < 1 || minRounds < 1 || maxRounds < minRounds) {
                throw new IllegalArgumentException("budget must be non-negative with at least one warm-up call and round and no fewer most rounds than least, got "
                        + warmupSeconds + " s / " + minWarmupCalls + " calls, " + measureSeconds + " s / " + minRounds + "–" + maxRounds + " rounds");
            }
        }

        /** Without a cap on the rounds beyond the time rules. */
        public Budget(double warmupSeconds, int minWarmupCalls, double measureSeconds, int minRounds) {
            this(warmupSeconds, minWarmupCalls, measureSeconds, minRounds, 100_000);
        }

        /**
         * The main job's forward, decode and options matches. Full: about JMH's full schedule (3×1 s,
         * 5×2 s) per engine. Quick: 1 s of warm-up each (its first, cold call included; then on until
         * the JIT is quiet, see the child's warm-up) and 4 s of calls for all engines, which keeps the paired
         * ratios' 95 % intervals within a few percent at n = 4096 (9–13 rounds) and gives small
         * calls a hundred rounds (n = 1024 on two threads made 94–110; at most 100).
         */
        public static Budget forCalls(boolean full) {
            return full ? new Budget(3, 3, 20, 15) : new Budget(1, 3, 4, 9, 100);
        }

        /** Training steps take seconds each: fewer calls. */
        public static Budget forSteps(boolean full) {
            return full ? new Budget(4, 3, 30, 9) : new Budget(1, 2, 6, 6);
        }

        String encode() {
            return String.format(Locale.ROOT, "%s,%d,%s,%d,%d", warmupSeconds, minWarmupCalls, measureSeconds, minRounds, maxRounds);
        }

        /** Whether an engine that has made {@code calls} warm-up calls in {@code spent} seconds warms up further. */
        boolean warmsUp(int calls, double spent) {
            return spent < warmupSeconds || calls < minWarmupCalls && spent < 2 * warmupSeconds;
        }

        /** Whether a match with {@code rounds} measured rounds whose calls took {@code spent} seconds runs another. */
        boolean measuresMore(int rounds, double spent) {
            if (rounds >= 3 && spent >= 3 * measureSeconds) return false;
            return (rounds < minRounds || spent < measureSeconds) && rounds < maxRounds;
        }

        static Budget decode(String s) {
            String[] f = s.split(",");
            return new Budget(Double.parseDouble(f[0]), Integer.parseInt(f[1]), Double.parseDouble(f[2]), Integer.parseInt(f[3]), Integer.parseInt(f[4]));
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

    /** Runs the match in a JVM of its own with the forks' flags and {@code extraJvmArgs}; throws when it fails. */
    public static List<Outcome> run(List<Contender> contenders, Budget budget, List<String> extraJvmArgs) throws Exception {
        if (contenders.isEmpty()) throw new IllegalArgumentException("contenders must not be empty");
        List<Integer> everyone = new ArrayList<>();
        for (int c = 0; c < contenders.size(); c++) everyone.add(c);
        return runMatches(contenders, List.of(everyone), budget, extraJvmArgs).getFirst().orThrow();
    }

    /**
     * One match of {@link #runMatches}: its outcomes in the match's order (the paired ratios to its
     * first contender), or why it failed.
     */
    public record MatchResult(List<Outcome> outcomes, String failure) {
        public List<Outcome> orThrow() {
            if (failure != null) throw new IllegalStateException(failure);
            return outcomes;
        }
    }

    /**
     * Several matches in one child JVM: {@code matches} lists each match's contenders by their index
     * in {@code contenders}, first the one the others' ratios are to. A contender in several matches
     * (the plain call every option is compared with; Tessera on each pattern's case) is set up and
     * warmed up once, which is what starting a JVM per match repeats: the JVM's start, the peers'
     * native libraries, the inputs and oracle checks of every setup, the JIT's compilation of the
     * same kernels. The matches are measured one after the other, each in rounds of its own
     * contenders only, right after they are warm (a contender warmed for an earlier match runs again
     * until the JIT is quiet), so a match is timed as in a JVM of its own, minus the repeated work.
     *
     * <p>Put together only contenders that can share a process: PyTorch's intra-op thread count is
     * one per process (the last setup's), so every match of one call runs at one thread count.
     *
     * <p>A contender whose setup fails fails only the matches it is in; if the child itself dies (a
     * peer's native crash), the matches it had not finished run again, each in a JVM of its own.
     */
    public static List<MatchResult> runMatches(List<Contender> contenders, List<List<Integer>> matches, Budget budget, List<String> extraJvmArgs) throws Exception {
        if (contenders.isEmpty()) throw new IllegalArgumentException("contenders must not be empty");
        if (matches.isEmpty()) throw new IllegalArgumentException("matches must not be empty");
        for (List<Integer> match : matches) {
            if (match.isEmpty() || match.stream().distinct().count() != match.size() || match.stream().anyMatch(c -> c < 0 || c >= contenders.size())) {
                throw new IllegalArgumentException("a match is a non-empty list of distinct contender indexes below " + contenders.size() + ", got " + match);
            }
        }
        Child child = child(contenders, matches, budget, extraJvmArgs);
        List<MatchResult> results = new ArrayList<>();
        for (int m = 0; m < matches.size(); m++) {
            if (child.outcomes[m] != null) {
                results.add(new MatchResult(child.outcomes[m], null));
            } else if (child.failures[m] != null) {
                results.add(new MatchResult(null, child.failures[m]));
            } else if (matches.size() > 1) {
                Trace.mark("match " + m + " unfinished by the shared child (" + child.error + "): again in a JVM of its own");
                List<Contender> own = matches.get(m).stream().map(contenders::get).toList();
                List<Integer> order = new ArrayList<>();
                for (int c = 0; c < own.size(); c++) order.add(c);
                Child alone = child(own, List.of(order), budget, extraJvmArgs);
                results.add(alone.outcomes[0] != null ? new MatchResult(alone.outcomes[0], null)
                        : new MatchResult(null, alone.failures[0] != null ? alone.failures[0] : alone.error));
            } else {
                results.add(new MatchResult(null, child.error));
            }
        }
        return results;
    }

    /** What a child JVM answered: per match its outcomes or its failure (both null if it never got there), and how it ended. */
    private record Child(List<Outcome>[] outcomes, String[] failures, String error) {}

    @SuppressWarnings("unchecked")
    private static Child child(List<Contender> contenders, List<List<Integer>> matches, Budget budget, List<String> extraJvmArgs) throws Exception {
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString()));
        cmd.addAll(Quiet.forkFlags());
        cmd.addAll(extraJvmArgs);
        cmd.addAll(List.of("-cp", System.getProperty("java.class.path"), Interleaved.class.getName(), budget.encode(), encodeMatches(matches)));
        for (Contender c : contenders) cmd.add(c.encode());
        Trace.mark("interleaved child starts: " + contenders.stream().map(Contender::label).toList() + " in matches " + matches);
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
        double[][][] times = new double[matches.size()][][], heap = new double[matches.size()][][];
        for (int m = 0; m < matches.size(); m++) {
            times[m] = new double[matches.get(m).size()][];
            heap[m] = new double[matches.get(m).size()][];
        }
        String[] failures = new String[matches.size()];
        try (var r = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
            for (String line; (line = r.readLine()) != null; ) {
                String[] f = line.split("\t");
                if (f.length == 5 && f[0].equals(RESULT)) {
                    int m = Integer.parseInt(f[1]), position = Integer.parseInt(f[2]);
                    times[m][position] = parse(f[3]);
                    heap[m][position] = parse(f[4]);
                } else if (f.length == 3 && f[0].equals(FAILED)) {
                    failures[Integer.parseInt(f[1])] = f[2];
                }
                // anything else is a library's own output
            }
        }
        int exit = p.waitFor();
        drain.join();
        Trace.mark("interleaved child ended, exit " + exit);
        List<Outcome>[] outcomes = new List[matches.size()];
        for (int m = 0; m < matches.size(); m++) {
            if (failures[m] != null || java.util.Arrays.stream(times[m]).anyMatch(t -> t == null)) continue;
            List<Outcome> match = new ArrayList<>();
            for (int i = 0; i < times[m].length; i++) {
                Outcome o = new Outcome(contenders.get(matches.get(m).get(i)), MedianTime.of(times[m][i]), MedianTime.of(heap[m][i]).median(), null, times[m][i]);
                match.add(i == 0 ? o : new Outcome(o.contender(), o.time(), o.heapBytesPerCall(), o.over(match.getFirst()), o.rounds()));
            }
            outcomes[m] = match;
        }
        String error = "interleaved match failed (exit " + exit + "): " + String.join(" | ", errors.subList(Math.max(0, errors.size() - 6), errors.size()));
        return new Child(outcomes, failures, error);
    }

    /** The first word of a child's result line: {@code interleaved\tmatch\tposition\tms,…\tbytes,…}. */
    static final String RESULT = "interleaved";
    /** The first word of a child's line for a match it could not measure: {@code interleaved-failed\tmatch\tmessage}. */
    static final String FAILED = "interleaved-failed";

    /** {@code 0,1;0,2}: each match's contender indexes. */
    static String encodeMatches(List<List<Integer>> matches) {
        StringBuilder sb = new StringBuilder();
        for (List<Integer> match : matches) {
            if (!sb.isEmpty()) sb.append(';');
            for (int i = 0; i < match.size(); i++) sb.append(i == 0 ? "" : ",").append(match.get(i));
        }
        return sb.toString();
    }

    static List<int[]> decodeMatches(String s) {
        List<int[]> matches = new ArrayList<>();
        for (String match : s.split(";")) matches.add(java.util.Arrays.stream(match.split(",")).mapToInt(Integer::parseInt).toArray());
        return matches;
    }

    private static double[] parse(String csv) {
        return java.util.Arrays.stream(csv.split(",")).mapToDouble(Double::parseDouble).toArray();
    }

    // ---------------------------------------------------------------- the child JVM

    /**
     * Child: {@code budget matches contender…}. Sets every contender up, then per match warms up its
     * contenders and measures its rounds; prints one {@link #RESULT} line per contender of a match,
     * or one {@link #FAILED} line for a match whose contender failed to set up or to run.
     */
    public static void main(String[] args) throws Throwable {
        Budget budget = Budget.decode(args[0]);
        List<int[]> matches = decodeMatches(args[1]);
        int count = args.length - 2;
        Object[] states = new Object[count];
        Method[] calls = new Method[count];
        String[] broken = new String[count];   // why a contender cannot run, or null
        for (int c = 0; c < count; c++) {
            String spec = args[c + 2];
            try {
                int hash = spec.indexOf('#'), query = spec.indexOf('?');
                Class<?> type = Class.forName(spec.substring(0, hash));
                Object state = type.getConstructor().newInstance();
                defaults(state);
                if (query > 0) {
                    for (String kv : spec.substring(query + 1).split("&")) {
                        int eq = kv.indexOf('=');
                        set(state, kv.substring(0, eq), kv.substring(eq + 1));
                    }
                }
                calls[c] = type.getMethod(spec.substring(hash + 1, query > 0 ? query : spec.length()));
                invokeAnnotated(state, Setup.class);
                states[c] = state;
                Trace.mark("set up " + spec);
            } catch (Throwable e) {
                broken[c] = "setup of " + spec.substring(spec.lastIndexOf('.', spec.indexOf('#')) + 1) + " failed: " + describe(e);
                Trace.mark("setup failed " + spec + ": " + broken[c]);
            }
        }
        boolean[] warm = new boolean[count];
        for (int m = 0; m < matches.size(); m++) {
            int[] match = matches.get(m);
            String failure = java.util.Arrays.stream(match).mapToObj(c -> broken[c]).filter(java.util.Objects::nonNull).findFirst().orElse(null);
            if (failure == null) {
                try {
                    measure(m, match, states, calls, warm, budget);
                } catch (Throwable e) {
                    failure = describe(e);
                }
            }
            if (failure != null) System.out.println(FAILED + "\t" + m + "\t" + failure);
            System.out.flush();
        }
        for (Object s : states) if (s != null) invokeAnnotated(s, TearDown.class);
        System.out.flush();
        System.exit(0);   // a peer's non-daemon threads must not keep the child alive
    }

    /** One line without tabs: the message of a failure and of its causes (a contender's oracle check says what it found). */
    private static String describe(Throwable e) {
        StringBuilder sb = new StringBuilder(e instanceof InvocationTargetException && e.getCause() != null ? "" : e.toString());
        for (Throwable c = e.getCause(); c != null && c != c.getCause(); c = c.getCause()) sb.append(sb.isEmpty() ? "" : " <- ").append(c);
        return sb.toString().replaceAll("\\s+", " ");
    }

    /** Warms up the match's contenders, measures its rounds and prints its result lines. */
    private static void measure(int m, int[] match, Object[] states, Method[] calls, boolean[] warm, Budget budget) throws Throwable {
        // Warm-up, each engine alone and back to back (no other engine's call to keep apart from):
        // the JIT compiles every engine's path before anything is kept. Past the budget, calls go on
        // until the JIT has compiled nothing for JIT_QUIET_NANOS (at most 5 warm-up budgets): C2's
        // compilation of the kernels runs in the background for seconds, and 1 s of 14-ms calls
        // ended before it did (Tessera's n = 1024 call measured 16.9 ms instead of 13.9). A contender
        // warmed up for an earlier match makes its minimum of calls again, and more until the JIT is
        // quiet: another match's engines may have made it recompile shared code since.
        for (int c : match) {
            double spent = 0;
            JitQuiet jit = new JitQuiet();
            int call = 0;
            for (; (warm[c] ? call < budget.minWarmupCalls() : budget.warmsUp(call, spent))
                    || !jit.quiet() && spent < 5 * budget.warmupSeconds(); call++) {
                spent += time(states[c], calls[c], false) * 1e-3;
                jit.afterCall();
            }
            Trace.mark(String.format(Locale.ROOT, "match %d: %s contender %d: %d calls, %.2f s", m, warm[c] ? "warmed again" : "warmed up", c, call, spent));
            warm[c] = true;
        }
        var threads = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        // Measured rounds: every engine of the match once per round, the order rotating.
        int size = match.length;
        List<double[]> rounds = new ArrayList<>(), bytes = new ArrayList<>();
        double spent = 0;
        while (budget.measuresMore(rounds.size(), spent)) {
            int round = rounds.size();
            double[] ms = new double[size], heap = new double[size];
            for (int i = 0; i < size; i++) {
                int position = (round + i) % size, c = match[position];
                long before = threads.getTotalThreadAllocatedBytes();
                ms[position] = time(states[c], calls[c], true);
                heap[position] = threads.getTotalThreadAllocatedBytes() - before;
                spent += ms[position] * 1e-3;
            }
            rounds.add(ms);
            bytes.add(heap);
        }
        Trace.mark(String.format(Locale.ROOT, "match %d: measured %d rounds, %.2f s of calls", m, rounds.size(), spent));
        for (int position = 0; position < size; position++) {
            StringBuilder t = new StringBuilder(), h = new StringBuilder();
            for (int r = 0; r < rounds.size(); r++) {
                t.append(r == 0 ? "" : ",").append(rounds.get(r)[position]);
                h.append(r == 0 ? "" : ",").append(bytes.get(r)[position]);
            }
            System.out.println(RESULT + "\t" + m + "\t" + position + "\t" + t + "\t" + h);
        }
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
     * The pause, then until the process's other threads used less than a tenth of a core over a
     * window of {@link #SETTLE_WINDOW_MS} ms (at most {@link #MAX_SETTLE_NANOS}), so every engine
     * starts from an idle process. ONNX Runtime's intra-op pool spins after its call: measured here
     * (Zen 5, 2 threads, its decode step of about 20 ms), its worker ran 30–45 ms past the call's
     * end, and the next engine's two-thread call ran on one and a half cores (Tessera's decode step
     * 15–17 ms after it, 11.6 ms after an idle process). The process CPU time of the
     * OperatingSystemMXBean (the sum of tick-based counters) did not show that spin in a 2 ms window,
     * so the wait adds up, thread by thread, each one's own run time over the window from
     * /proc/self/task/N/schedstat (nanoseconds; a thread running on another CPU is brought up to date
     * at every scheduler tick, hence a window of several ticks), this thread's excluded. Where /proc has no such files the process CPU time
     * over the window is used instead.
     */
    static void settle() throws InterruptedException {
        Thread.sleep(PAUSE_MS);
        String self = selfTask();
        long deadline = System.nanoTime() + MAX_SETTLE_NANOS;
        while (System.nanoTime() < deadline) {
            if (self == null) {
                long cpu = OS.getProcessCpuTime(), t0 = System.nanoTime();
                Thread.sleep(SETTLE_WINDOW_MS);
                if (OS.getProcessCpuTime() - cpu < (System.nanoTime() - t0) / 10) return;
                continue;
            }
            Map<String, Long> before = threadCpuNanos(self);
            long t0 = System.nanoTime();
            Thread.sleep(SETTLE_WINDOW_MS);
            Map<String, Long> after = threadCpuNanos(self);
            if (before != null && after != null && ranSince(before, after) < (System.nanoTime() - t0) / 10) return;
        }
    }

    /** The wait's window: 2.5 ticks at 250 Hz, ten at 1000 Hz. */
    static final int SETTLE_WINDOW_MS = 10;

    private static final Path TASKS = Path.of("/proc/self/task");

    /** The calling thread's task id in /proc/self/task, or null where /proc has no schedstat files. */
    private static String selfTask() {
        try {
            Path self = Files.readSymbolicLink(Path.of("/proc/thread-self"));   // "<pid>/task/<tid>"
            return Files.isReadable(TASKS.resolve(self.getFileName()).resolve("schedstat")) ? self.getFileName().toString() : null;
        } catch (IOException | UnsupportedOperationException e) {
            return null;
        }
    }

    /**
     * Run time in ns of every thread of the process but task {@code self} (native pools included), by
     * task id; null when the task directory could not be listed (that window is not judged).
     */
    private static Map<String, Long> threadCpuNanos(String self) {
        Map<String, Long> cpu = new HashMap<>();
        try (DirectoryStream<Path> tasks = Files.newDirectoryStream(TASKS)) {
            for (Path task : tasks) {
                String id = task.getFileName().toString();
                if (id.equals(self)) continue;
                try {
                    String stat = Files.readString(task.resolve("schedstat"));   // "<run ns> <wait ns> <slices>"
                    cpu.put(id, Long.parseLong(stat.substring(0, stat.indexOf(' '))));
                } catch (IOException | RuntimeException e) {
                    // the thread ended between the listing and the read: it runs no more
                }
            }
        } catch (IOException e) {
            return null;
        }
        return cpu;
    }

    /**
     * The run time the threads of {@code after} spent since {@code before}, thread by thread: a thread
     * that ended in between drops out without taking the others' time with it, and one that started
     * counts from zero.
     */
    private static long ranSince(Map<String, Long> before, Map<String, Long> after) {
        long ran = 0;
        for (Map.Entry<String, Long> thread : after.entrySet()) ran += thread.getValue() - before.getOrDefault(thread.getKey(), 0L);
        return ran;
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
