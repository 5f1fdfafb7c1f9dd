package io.tessera.bench.variants;

import io.tessera.attention.Attention;
import io.tessera.backend.AttentionShape;
import io.tessera.backend.Backend;
import io.tessera.reference.DenseReference;
import io.tessera.tensor.Tensor;
import io.tessera.variant.AttentionOperator;
import io.tessera.variant.kernelized.LinearAttention;
import io.tessera.variant.kernelized.Performer;
import io.tessera.variant.lowrank.Linformer;
import io.tessera.variant.lowrank.Nystromformer;
import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.function.DoubleSupplier;

/**
 * The linear-time variants against dense attention in one process (B = 1, H = 8, D = Dv = 64;
 * Linformer k = 256, Performer m = 256, Nyström m = 64): per variant and length, the time of one
 * forward pass (minimum and median of the timed calls after a warm-up by time), its own FLOP
 * count ({@code forwardFlops}), the GFLOP/s that gives, the rate of {@link Backend#gemm} on the
 * same products (the variant's GEMM shapes, heads in parallel as the variant runs them, nothing
 * else), and the speed-up over dense attention measured in the same run; then each variant's
 * error against the dense float64 oracle at a small length.
 *
 * <p>{@code java ... io.tessera.bench.variants.VariantsSection [seconds per measurement] [n ...]}
 * ({@code errors} alone: only the error table); dense attention is timed up to
 * {@code -Dtessera.variants.denseMaxN} (8192), beyond it scaled by n² from the longest timed length.
 */
public final class VariantsSection {
    private VariantsSection() {}

    static final int HEADS = 8, DIM = 64, PROJECTED = 256, FEATURES = 256, LANDMARKS = 64;

    /** One measured (variant, length). */
    public record Row(String variant, int n, double minMs, double medianMs, double flops, double gemmGflops, double denseMs) {
        public double gflops() { return flops / (minMs * 1e6); }

        /** Achieved rate over the GEMM's rate on the same products. */
        public double ofGemm() { return gflops() / gemmGflops; }

        public double speedUp() { return Math.abs(denseMs) / minMs; }

        /** Whether dense attention's time at this length is scaled by n² from a shorter one rather than measured. */
        public boolean denseExtrapolated() { return denseMs < 0; }
    }

    /** A product c[M×N] = op(a)·op(b) with depth K, run {@code times} per head. */
    record Product(int m, int n, int k, boolean transposeA, int times) {
        double flops() { return 2.0 * m * n * k * times; }
    }

    static final String[] VARIANTS = {"linformer", "performer", "performer-causal", "linear-attention", "linear-attention-causal", "nystrom"};

    static AttentionOperator create(String variant, int n, Backend be) {
        return switch (variant) {
            case "linformer" -> Linformer.random(n, PROJECTED, HEADS, Linformer.Sharing.PER_HEAD, 7).on(be);
            case "performer" -> Performer.withFeatures(FEATURES).on(be);
            case "performer-causal" -> Performer.withFeatures(FEATURES).causal(true).on(be);
            case "linear-attention" -> LinearAttention.bidirectional().on(be);
            case "linear-attention-causal" -> LinearAttention.causal().on(be);
            case "nystrom" -> Nystromformer.withLandmarks(LANDMARKS).on(be);
            default -> throw new IllegalArgumentException("unknown variant " + variant);
        };
    }

    static double flops(String variant, AttentionOperator op, AttentionShape s) {
        return switch (op) {
            case Linformer l -> l.forwardFlops(s);
            case Performer p -> p.forwardFlops(s);
            case LinearAttention l -> l.forwardFlops(s);
            case Nystromformer ny -> ny.forwardFlops(s);
            default -> throw new IllegalArgumentException(variant);
        };
    }

    /** The GEMMs each variant runs per head at length n. */
    static List<Product> products(String variant, int n) {
        List<Product> p = new ArrayList<>();
        switch (variant) {
            case "linformer" -> {
                p.add(new Product(PROJECTED, DIM, n, false, 2));           // E·K, F·V
                p.add(new Product(n, PROJECTED, DIM, false, 1));           // Q·K'ᵀ as a GEMM
                p.add(new Product(n, DIM, PROJECTED, false, 1));           // P·V'
            }
            case "performer", "performer-causal", "linear-attention", "linear-attention-causal" -> {
                // FeatureAttention's forward: chunks of 480 rows (60 when causal); every product has Dv
                // columns (the denominators W·z, and causal the in-chunk row sums, are computed outside
                // the GEMM).
                boolean performer = variant.startsWith("performer"), causal = variant.endsWith("causal");
                int m = performer ? FEATURES : DIM, rows = causal ? 60 : 480;
                int chunks = (n + rows - 1) / rows, c = Math.min(n, rows);
                if (performer) p.add(new Product(c, m, DIM, false, 2 * chunks));   // projections of key and query rows
                p.add(new Product(m, DIM, c, true, chunks));                       // S += Fᵀ·V
                p.add(new Product(c, DIM, m, false, chunks));                      // W·S
                if (causal) {
                    p.add(new Product(c, c, m, false, chunks));                    // W·Fᵀ inside the chunk
                    p.add(new Product(c, DIM, c, false, chunks));                  // tril(·)·V
                }
            }
            case "nystrom" -> {
                int m = LANDMARKS;
                p.add(new Product(n, m, DIM, false, 1));
                p.add(new Product(m, n, DIM, false, 1));
                p.add(new Product(m, m, DIM, false, 1));
                p.add(new Product(m, m, m, false, 2 + 5 * 6));
                p.add(new Product(m, DIM, n, false, 1));
                p.add(new Product(n, DIM, m, false, 1));
            }
            default -> throw new IllegalArgumentException(variant);
        }
        return p;
    }

    /**
     * Minimum and median milliseconds of {@code call} after warming it up for {@code warmupSeconds}
     * and then on until the JIT has been quiet ({@link io.tessera.bench.Interleaved.JitQuiet}, 300 ms)
     * (at most {@link #WARMUP_CAP_SECONDS} in all), over at least 5 calls (3 when a call takes more
     * than {@link #SLOW_CALL_MS}: a peer 20× slower than Tessera spent 10–20 s of the quick main job
     * in its minimum calls) and {@code seconds}. The quick main job's 0.3 s of warm-up ended while C2
     * still compiled the Performer's kernels: at n = 1024 its minimum over the next 0.7 s was 61–78 ms
     * in two runs, against 5.5–6 ms once compiled (a cap of 0.8 s still caught it at 29 ms; 3 s
     * made the quick section 41 → 66 s, run alone in a fresh JVM).
     */
    static double[] time(Runnable call, double warmupSeconds, double seconds) {
        io.tessera.bench.Interleaved.JitQuiet jit = new io.tessera.bench.Interleaved.JitQuiet();
        long start = System.nanoTime(), end = start + (long) (warmupSeconds * 1e9), cap = start + (long) (WARMUP_CAP_SECONDS * 1e9), now;
        do {
            call.run();
            jit.afterCall();
            now = System.nanoTime();
        } while (now < end || (!jit.quiet() && now < cap));
        List<Double> ms = new ArrayList<>();
        end = System.nanoTime() + (long) (seconds * 1e9);
        int minCalls = 5;
        while (ms.size() < minCalls || (System.nanoTime() < end && ms.size() < 200)) {
            long t = System.nanoTime();
            call.run();
            ms.add((System.nanoTime() - t) / 1e6);
            if (ms.size() == 1 && ms.get(0) > SLOW_CALL_MS) minCalls = 3;
        }
        double[] sorted = ms.stream().mapToDouble(Double::doubleValue).sorted().toArray();
        return new double[] {sorted[0], sorted[sorted.length / 2]};
    }

    /** A call this long (ms) needs fewer repetitions for a minimum within a few per cent. */
    static final double SLOW_CALL_MS = 200;

    /** The longest warm-up {@link #time} gives a call while the JIT is still compiling. */
    static final double WARMUP_CAP_SECONDS = 3;

    /** GFLOP/s of the products run per head, heads in parallel on {@code be}'s threads. */
    static double gemmRate(Backend be, List<Product> products, double warmup, double seconds) {
        try (Arena arena = Arena.ofShared()) {
            int count = products.size();
            Tensor[] a = new Tensor[count], b = new Tensor[count];
            Tensor[][] c = new Tensor[HEADS][count];
            double flops = 0;
            for (int i = 0; i < count; i++) {
                Product p = products.get(i);
                a[i] = p.transposeA() ? Tensor.randomNormal(arena, i, 1f, p.k(), p.m()) : Tensor.randomNormal(arena, i, 1f, p.m(), p.k());
                b[i] = Tensor.randomNormal(arena, 100 + i, 1f, p.k(), p.n());
                for (int h = 0; h < HEADS; h++) c[h][i] = Tensor.zeros(arena, p.m(), p.n());
                flops += p.flops() * HEADS;
            }
            Backend serial = be.withThreads(1);
            Runnable all = () -> be.forEachItem(HEADS, h -> {
                for (int i = 0; i < count; i++) {
                    for (int t = 0; t < products.get(i).times(); t++) serial.gemm(a[i], products.get(i).transposeA(), b[i], false, c[h][i], 1f, 0f);
                }
            });
            return flops / (time(all, warmup, seconds)[0] * 1e6);
        }
    }

    /**
     * Measures every variant at every length; dense attention at the same lengths in the same
     * process up to {@code denseMaxN}, beyond it scaled from the longest measured length by n²
     * (its FLOP count; {@link #print} marks such rows).
     */
    public static List<Row> measure(Backend be, int[] lengths, double warmup, double seconds, int denseMaxN) {
        List<Row> rows = new ArrayList<>();
        double lastDenseMs = Double.NaN;
        int lastDenseN = 0;
        for (int n : lengths) {
            try (Arena arena = Arena.ofShared()) {
                Tensor q = Tensor.randomNormal(arena, 1, 1f, 1, HEADS, n, DIM), k = Tensor.randomNormal(arena, 2, 1f, 1, HEADS, n, DIM);
                Tensor v = Tensor.randomNormal(arena, 3, 1f, 1, HEADS, n, DIM), out = Tensor.zeros(arena, 1, HEADS, n, DIM);
                Attention dense = Attention.dense().on(be);
                double denseMs;
                if (n <= denseMaxN || lastDenseN == 0) {
                    denseMs = time(() -> dense.forward(q, k, v, out), warmup, seconds)[0];
                    lastDenseMs = denseMs;
                    lastDenseN = n;
                } else {
                    denseMs = -lastDenseMs * ((double) n / lastDenseN) * ((double) n / lastDenseN);   // negative: extrapolated
                }
                AttentionShape shape = AttentionShape.of(q, k, v);
                for (String variant : VARIANTS) {
                    AttentionOperator op = create(variant, n, be);
                    double[] t = time(() -> op.forward(q, k, v, out), warmup, seconds);
                    double gemm = gemmRate(be, products(variant, n), warmup / 2, seconds / 2);
                    rows.add(new Row(variant, n, t[0], t[1], flops(variant, op, shape), gemm, denseMs));
                }
            }
        }
        return rows;
    }

    /** Max and mean |variant − dense float64 oracle| at length n (B = 1, H = 2, D = 64, inputs N(0, 1)). */
    public static List<double[]> errors(Backend be, int n) {
        List<double[]> errors = new ArrayList<>();
        try (Arena arena = Arena.ofShared()) {
            Tensor q = Tensor.randomNormal(arena, 11, 1f, 1, 2, n, DIM), k = Tensor.randomNormal(arena, 12, 1f, 1, 2, n, DIM);
            Tensor v = Tensor.randomNormal(arena, 13, 1f, 1, 2, n, DIM), out = Tensor.zeros(arena, 1, 2, n, DIM);
            double[] oracle = DenseReference.attention(q, k, v).output();
            for (String variant : VARIANTS) {
                AttentionOperator op = switch (variant) {
                    case "linformer" -> Linformer.random(n, Math.min(n, PROJECTED), 2, Linformer.Sharing.PER_HEAD, 7).on(be);
                    default -> create(variant, n, be);
                };
                op.forward(q, k, v, out);
                double[] causalOracle = variant.endsWith("causal") ? DenseReference.attention(q, k, v, io.tessera.pattern.MaskFunction.causal(io.tessera.pattern.CausalAlignment.TOP_LEFT, n, n), Double.NaN).output() : oracle;
                float[] got = out.toArray();
                double max = 0, sum = 0;
                for (int i = 0; i < got.length; i++) {
                    double e = Math.abs(got[i] - causalOracle[i]);
                    max = Math.max(max, e);
                    sum += e;
                }
                errors.add(new double[] {max, sum / got.length});
            }
        }
        return errors;
    }

    /**
     * The main job's variants section: time vs n for dense attention and every variant (quick: n =
     * 1024 and 4096, 0.7 s of calls (at least 5, or 3 of a slow call) after 0.3 s of warm-up each and on until the JIT is quiet (at most 3 s); full: up to 16,384, dense measured
     * there too), each one's error against the dense float64 oracle at n = 512, written to
     * {@code variants.md} and a log-log chart {@code charts/variants.png} in {@code out}. Timed in
     * this process, not JMH: a variant call allocates its own operator state, and the minimum of
     * the calls with their median beside it shows the spread.
     */
    public static String run(java.nio.file.Path out, boolean full, int threads) throws java.io.IOException {
        Backend be = Backend.best().withThreads(threads);
        int[] lengths = full ? new int[] {1024, 4096, 16384} : new int[] {1024, 4096};
        List<Row> rows = measure(be, lengths, full ? 2 : 0.3, full ? 3 : 0.7, full ? 16384 : 4096);
        io.tessera.bench.Trace.mark("variants timed");
        List<double[]> errors = errors(be, 512);
        io.tessera.bench.Trace.mark("variants' errors computed");
        StringBuilder md = new StringBuilder("## Linear-time variants vs dense attention (B = 1, H = 8, D = 64; Linformer k = 256, Performer m = 256, Nyström m = 64; ")
                .append(be).append(")\n\n");
        md.append("| variant | n | min ms | median ms | GFLOP/s (own count) | GEMM GFLOP/s, same products | of GEMM | × dense | max error, n = 512 | mean error |\n");
        md.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        java.util.Map<Integer, Double> dense = new java.util.TreeMap<>();
        for (Row r : rows) {
            dense.put(r.n(), Math.abs(r.denseMs()));
            double[] e = errors.get(Arrays.asList(VARIANTS).indexOf(r.variant()));
            md.append(String.format(Locale.ROOT, "| %s | %d | %.2f | %.2f | %.1f | %.1f | %.0f %% | %.1f×%s | %.3g | %.3g |%n", r.variant(), r.n(), r.minMs(), r.medianMs(),
                    r.gflops(), r.gemmGflops(), 100 * r.ofGemm(), r.speedUp(), r.denseExtrapolated() ? " (dense scaled by n²)" : "", e[0], e[1]));
        }
        dense.forEach((n, ms) -> md.append(String.format(Locale.ROOT, "| dense (fused kernel) | %d | %.2f | | | | | 1.0× | exact | |%n", n, ms)));
        List<io.tessera.bench.report.Measurement> points = new ArrayList<>();
        for (Row r : rows) points.add(new io.tessera.bench.report.Measurement("tessera", "Tessera", r.variant(), r.n(), threads, r.minMs(), 0, r.gflops(), Double.NaN));
        dense.forEach((n, ms) -> points.add(new io.tessera.bench.report.Measurement("tessera", "Tessera", "dense", n, threads, ms, 0, Double.NaN, Double.NaN)));
        java.nio.file.Path charts = out.resolve("charts");
        java.nio.file.Files.createDirectories(charts);
        io.tessera.bench.report.Charts.timeVsLength(points, charts.resolve("variants.png"));
        md.append("\n![time vs n, log-log](charts/variants.png)\n");
        md.append(peerTable(be, threads, full ? 3 : 0.5));
        String markdown = md.toString();
        java.nio.file.Files.writeString(out.resolve("variants.md"), markdown);
        return markdown;
    }

    /** The peer of the linear-time variants built into this bench ({@code -Ppeers}), or null. */
    public static LinearVariantPeer findPeer() {
        for (LinearVariantPeer p : java.util.ServiceLoader.load(LinearVariantPeer.class)) return p;
        return null;
    }

    /** Tessera's operator for a peer comparison, with projected length / features / landmarks {@code size}. */
    static AttentionOperator peerOperator(String variant, int heads, int n, int size, Backend be) {
        return switch (variant) {
            case "linformer" -> Linformer.random(n, size, heads, Linformer.Sharing.PER_HEAD, 7).on(be);
            case "performer" -> Performer.withFeatures(size).on(be);
            case "linear-attention" -> LinearAttention.bidirectional().on(be);
            case "nystrom" -> Nystromformer.withLandmarks(size).on(be);
            default -> throw new IllegalArgumentException("unknown variant " + variant);
        };
    }

    /** The parameters Tessera's operator uses, in {@link LinearVariantPeer#prepare}'s layout. */
    static float[][] peerParameters(String variant, AttentionOperator op, int size, int headDim) {
        return switch (op) {
            case Linformer l -> new float[][] {l.keyProjection().toArray(), l.valueProjection().toArray()};
            case Performer p -> {
                try (Arena arena = Arena.ofConfined()) {
                    yield new float[][] {p.projection(arena, headDim).toArray()};
                }
            }
            case Nystromformer ny -> new float[][] {{size}};
            default -> new float[0][];
        };
    }

    /** One variant against the peer: both timed in this process, and (small n) both checked against the float64 definition. */
    public record PeerRow(String variant, int n, double tesseraMs, double peerMs, double tesseraError, double peerError) {}

    /**
     * Each of {@link LinearVariantPeer#VARIANTS} at length n (B = 1, H = heads, D = 64, N(0, 1)
     * inputs scaled by {@code inputScale}; size: Linformer k, Performer m, Nyström m): with
     * {@code seconds > 0} both timed (minimum after a warm-up, Tessera and the peer alternately);
     * with {@code check} both compared with {@link VariantOracles} (max |error|).
     */
    public static List<PeerRow> comparePeer(LinearVariantPeer peer, Backend be, int heads, int n, int[] sizes, float inputScale, boolean check,
                                            double warmup, double seconds, int threads) throws Exception {
        List<PeerRow> rows = new ArrayList<>();
        try (Arena arena = Arena.ofShared()) {
            Tensor q = Tensor.randomNormal(arena, 21, inputScale, 1, heads, n, DIM), k = Tensor.randomNormal(arena, 22, inputScale, 1, heads, n, DIM);
            Tensor v = Tensor.randomNormal(arena, 23, 1f, 1, heads, n, DIM), out = Tensor.zeros(arena, 1, heads, n, DIM);
            float[] qa = q.toArray(), ka = k.toArray(), va = v.toArray();
            for (int i = 0; i < LinearVariantPeer.VARIANTS.size(); i++) {
                String variant = LinearVariantPeer.VARIANTS.get(i);
                AttentionOperator op = peerOperator(variant, heads, n, sizes[i], be);
                op.forward(q, k, v, out);
                float[][] parameters = peerParameters(variant, op, sizes[i], DIM);
                peer.prepare(variant, heads, n, DIM, qa, ka, va, parameters, threads);
                peer.run();
                io.tessera.bench.Trace.mark("variants' peer prepared: " + variant + " n=" + n);
                double tesseraError = Double.NaN, peerError = Double.NaN;
                if (check) {
                    double[] oracle = VariantOracles.output(variant, heads, n, DIM, qa, ka, va, parameters);
                    tesseraError = maxError(out.toArray(), oracle);
                    peerError = maxError(peer.output(), oracle);
                }
                double tMs = Double.NaN, pMs = Double.NaN;
                if (seconds > 0) {
                    Runnable peerCall = () -> {
                        try { peer.run(); } catch (Exception e) { throw new IllegalStateException(e); }
                    };
                    time(() -> op.forward(q, k, v, out), warmup / 2, 0);
                    time(peerCall, warmup / 2, 0);
                    tMs = time(() -> op.forward(q, k, v, out), 0, seconds / 2)[0];
                    pMs = time(peerCall, 0, seconds / 2)[0];
                    tMs = Math.min(tMs, time(() -> op.forward(q, k, v, out), 0, seconds / 2)[0]);
                    pMs = Math.min(pMs, time(peerCall, 0, seconds / 2)[0]);
                }
                io.tessera.bench.Trace.mark("variants' peer compared: " + variant + " n=" + n);
                rows.add(new PeerRow(variant, n, tMs, pMs, tesseraError, peerError));
            }
        }
        return rows;
    }

    private static double maxError(float[] got, double[] want) {
        double max = 0;
        for (int i = 0; i < got.length; i++) {
            double e = Math.abs(got[i] - want[i]);
            if (!(e <= max)) max = e;   // NaN sticks
        }
        return max;
    }

    /** The main job's peer table (quick: n = 4096 only, {@code seconds} 0.5: per engine a quarter second of warm-up and two passes of a quarter second, at least 5 calls each, 3 for a call over SLOW_CALL_MS), or a line saying why there is none. */
    static String peerTable(Backend be, int threads, double seconds) {
        LinearVariantPeer peer = findPeer();
        if (peer == null) return "\nNo peer of the linear-time variants on the class path (build the bench with -Ppeers).\n";
        try (peer) {
            String why = peer.unavailableReason();
            if (why != null) return "\nPeer " + peer.id() + " unavailable: " + why + "\n";
            List<PeerRow> check = comparePeer(peer, be, 2, 256, new int[] {64, 64, 0, 16}, 1f, true, 0, 0, threads);
            io.tessera.bench.Trace.mark("variants' peer checked");
            List<PeerRow> timed = comparePeer(peer, be, HEADS, 4096, new int[] {PROJECTED, FEATURES, 0, LANDMARKS}, 1f, false, seconds, seconds, threads);
            StringBuilder md = new StringBuilder("\n### The same variants written with PyTorch operations (" + peer.name() + "), n = 4096\n\n");
            md.append("| variant | Tessera min ms | PyTorch min ms | Tessera × PyTorch | max error vs float64 definition, n = 256: Tessera | PyTorch |\n|---|---:|---:|---:|---:|---:|\n");
            for (int i = 0; i < timed.size(); i++) {
                PeerRow t = timed.get(i), c = check.get(i);
                md.append(String.format(Locale.ROOT, "| %s | %.2f | %.2f | %.2f× | %.3g | %.3g |%n", t.variant(), t.tesseraMs(), t.peerMs(), t.peerMs() / t.tesseraMs(),
                        c.tesseraError(), c.peerError()));
            }
            return md.toString();
        } catch (Exception e) {
            return "\nPeer of the linear-time variants failed: " + e + "\n";
        }
    }

    public static void print(List<Row> rows) {
        System.out.printf(Locale.ROOT, "%-24s %7s %10s %10s %9s %9s %9s %7s %8s%n", "variant", "n", "min ms", "median ms", "GFLOP", "GFLOP/s",
                "GEMM GF/s", "of GEMM", "vs dense");
        for (Row r : rows) {
            System.out.printf(Locale.ROOT, "%-24s %7d %10.2f %10.2f %9.3f %9.1f %9.1f %6.0f%% %7.1fx%s%n", r.variant(), r.n(), r.minMs(), r.medianMs(),
                    r.flops() / 1e9, r.gflops(), r.gemmGflops(), 100 * r.ofGemm(), r.speedUp(), r.denseExtrapolated() ? " (dense scaled by n²)" : "");
        }
    }

    public static void main(String[] args) {
        if (args.length > 0 && args[0].equals("errors")) {
            printErrors(Backend.best(), 512);
            return;
        }
        double seconds = args.length > 0 ? Double.parseDouble(args[0]) : 2;
        int[] lengths = args.length > 1 ? Arrays.stream(args, 1, args.length).mapToInt(Integer::parseInt).toArray() : new int[] {1024, 4096};
        Backend be = Backend.best();
        System.out.println("backend: " + be);
        int denseMaxN = Integer.getInteger("tessera.variants.denseMaxN", 8192);
        print(measure(be, lengths, seconds, seconds, denseMaxN));
        printErrors(be, 512);
    }

    static void printErrors(Backend be, int n) {
        List<double[]> errors = errors(be, n);
        System.out.println("max and mean |error| vs the dense float64 oracle at n = " + n + " (B = 1, H = 2, D = 64, N(0,1) inputs; causal variants vs causal softmax):");
        for (int i = 0; i < VARIANTS.length; i++) System.out.printf(Locale.ROOT, "  %-24s max %.3g  mean %.3g%n", VARIANTS[i], errors.get(i)[0], errors.get(i)[1]);
    }
}
