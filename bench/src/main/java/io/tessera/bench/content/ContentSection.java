package io.tessera.bench.content;

import io.tessera.backend.Backend;
import io.tessera.layout.HeadLayouts;
import io.tessera.variant.content.InducedSparsity;
import io.tessera.tensor.Tensor;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Locale;
import java.util.SplittableRandom;

/**
 * Issue #19's measurement as a section of the main job: content-based sparsity (LSH with 1, 2 and 4
 * hash rounds, routing) against Tessera's dense and sliding-window attention, B = 1, H = 8, D = 64,
 * all in one process. Per length, the methods of {@link ContentSparsityBenchmark} are timed
 * round-robin on the clustered input (one call of each per round, so a change of the machine's load
 * hits all of them alike; the first round warms up) and the least of the rounds is kept, for the
 * whole call (layout build included) and for the layout build alone ({@code induce(q, k)}, or
 * compiling the pattern). Then each method runs once per input (clustered: shared-QK tokens from a
 * mixture; unstructured: independent normal q and k) and its output is compared with dense attention
 * computed in float64 for the same sampled queries.
 *
 * <p>Quick mode: n = 4096 (a few seconds). Full mode adds n = 16,384, where dense attention alone
 * takes seconds per call. {@code java ... io.tessera.bench.content.ContentSection [--full] [threads]}
 * prints the markdown.
 */
public final class ContentSection {
    private ContentSection() {}

    static final String[] METHODS = {"dense", "window", "lsh1", "lsh2", "lsh4", "routing"};
    static final String[] INPUTS = {"clustered", "unstructured"};
    /** Queries per head whose output is compared with float64 dense attention. */
    static final int SAMPLED = ContentSparsityBenchmark.SAMPLED_QUERIES;

    /** One method at one length: least build and call times of the rounds, and its error per input. */
    record Row(int n, String method, double buildMs, double callMs, double medianCallMs, double callCpuMs, double kernelMs, double[] relErr, double[] maxAbs) {}

    /** The section as markdown (also written to {@code out/content.md}). */
    public static String run(Path out, boolean full, int threads) throws IOException {
        Backend be = Backend.best().withThreads(threads);
        int[] lengths = full ? new int[] {4096, 16384} : new int[] {4096};
        int rounds = full ? 5 : 3;
        StringBuilder md = new StringBuilder(String.format(Locale.ROOT,
                "## Content-based sparsity: LSH and routing vs dense and sliding window (issue #19; B = 1, H = 8, D = 64, %s)%n%n", be));
        md.append(String.format(Locale.ROOT, "Least of %d round-robin rounds after one warm-up round, one process; load average %s at the start. "
                + "call = the whole forward pass (hashing or clustering, sort, layout, gather, fused kernel, LSE combine); build = the layout build alone "
                + "(`induce(q, k)`; dense and window: compiling the pattern); process CPU = CPU time of all the process's threads during the call (less sensitive to other "
                + "processes on the machine than wall time); kernel alone = the fused kernel over the induced slot layouts, on inputs gathered beforehand (partial tiles' masks "
                + "filled by the kernel included), one call per head as the operator runs it; rest = call − build − kernel: gathering q/k/v into slot order, scratch, "
                + "combining each query's slots by LSE. Timed on the clustered input. Error: mean over %d sampled queries × 8 heads of "
                + "‖out − dense‖ / ‖dense‖, dense in float64 (dense's own row is its fp32 error; above 1, the output is further from dense than 0 is: the method missed most of the attention mass, as any local or bucketed method must on unstructured inputs, where dense attention is spread over all n keys). Window: radius 64; LSH: n/64 buckets, chunks of 64, "
                + "1/2/4 rounds; routing: n/128 clusters of 128 (centroids from sampled tokens after one k-means step).%n%n", rounds, loadAverage(), SAMPLED));
        md.append("| n | method | build ms | call ms (min) | call ms (median) | call, process CPU ms (min) | kernel alone ms | rest ms | build % | × dense | error, clustered | error, unstructured |\n");
        md.append("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        for (int n : lengths) {
            Row[] rows = measure(be, n, rounds);
            double dense = rows[0].callMs();
            for (Row r : rows) {
                boolean content = !Double.isNaN(r.kernelMs());
                md.append(String.format(Locale.ROOT, "| %d | %s | %.2f | %.2f | %.2f | %.2f | %s | %s | %.1f %% | %.1f× | %.3g | %.3g |%n", r.n(), r.method(), r.buildMs(), r.callMs(),
                        r.medianCallMs(), r.callCpuMs(), content ? String.format(Locale.ROOT, "%.2f", r.kernelMs()) : "",
                        content ? String.format(Locale.ROOT, "%.2f", r.callMs() - r.buildMs() - r.kernelMs()) : "",
                        100 * r.buildMs() / r.callMs(), dense / r.callMs(), r.relErr()[0], r.relErr()[1]));
            }
            if (n == 16384) {
                Row lsh2 = rows[Arrays.asList(METHODS).indexOf("lsh2")];
                md.append(String.format(Locale.ROOT, "%nTargets at n = 16,384: LSH-2 %.1f× faster than dense (target ≥ 10×), layout build %.1f %% of its call (target ≤ 10 %%).%n%n",
                        dense / lsh2.callMs(), 100 * lsh2.buildMs() / lsh2.callMs()));
            }
        }
        String markdown = md.toString();
        Files.createDirectories(out);
        Files.writeString(out.resolve("content.md"), markdown);
        return markdown;
    }

    /** Every method at length n: times on the clustered input (round-robin, least of the rounds), then errors on both inputs. */
    static Row[] measure(Backend be, int n, int rounds) {
        int methods = METHODS.length;
        long[][] build = new long[methods][rounds], call = new long[methods][rounds], cpu = new long[methods][rounds], kernel = new long[methods][rounds];
        double[][] relErr = new double[methods][INPUTS.length], maxAbs = new double[methods][INPUTS.length];
        for (int in = 0; in < INPUTS.length; in++) {
            try (Arena arena = Arena.ofShared()) {
                Tensor[] qkv = ContentSparsityBenchmark.inputs(arena, INPUTS[in], n);
                Tensor[] outs = new Tensor[methods];
                ContentSparsityBenchmark.Runs[] runs = new ContentSparsityBenchmark.Runs[methods];
                for (int m = 0; m < methods; m++) {
                    outs[m] = Tensor.zeros(arena, 1, ContentSparsityBenchmark.HEADS, n, ContentSparsityBenchmark.HEAD_DIM);
                    runs[m] = ContentSparsityBenchmark.configure(METHODS[m], n, be, qkv[0], qkv[1], qkv[2], outs[m]);
                }
                if (in == 0) {
                    for (int r = -1; r < rounds; r++) {   // round −1 warms up
                        for (int m = 0; m < methods; m++) {
                            long t0 = System.nanoTime();
                            runs[m].build().run();
                            long t1 = System.nanoTime(), c1 = processCpuNanos();
                            runs[m].call().run();
                            long t2 = System.nanoTime(), c2 = processCpuNanos();
                            long k = runs[m].induce() == null ? 0 : kernelNanos(be, runs[m].induce().get(), qkv[0], qkv[1], qkv[2]);
                            if (r >= 0) {
                                build[m][r] = t1 - t0;
                                call[m][r] = t2 - t1;
                                cpu[m][r] = c2 - c1;
                                kernel[m][r] = k;
                            }
                        }
                    }
                } else {
                    for (int m = 0; m < methods; m++) runs[m].call().run();
                }
                double[][] reference = denseReference(qkv[0], qkv[1], qkv[2], 7);
                for (int m = 0; m < methods; m++) {
                    double[] e = errors(reference, outs[m], n, 7);
                    relErr[m][in] = e[0];
                    maxAbs[m][in] = e[1];
                }
            }
        }
        Row[] rows = new Row[methods];
        for (int m = 0; m < methods; m++) {
            long[] b = build[m].clone(), c = call[m].clone();
            Arrays.sort(b);
            Arrays.sort(c);
            double kernelMs = METHODS[m].startsWith("lsh") || METHODS[m].equals("routing") ? Arrays.stream(kernel[m]).min().orElseThrow() / 1e6 : Double.NaN;
            rows[m] = new Row(n, METHODS[m], b[0] / 1e6, c[0] / 1e6, c[rounds / 2] / 1e6, Arrays.stream(cpu[m]).min().orElseThrow() / 1e6, kernelMs, relErr[m], maxAbs[m]);
        }
        return rows;
    }

    /**
     * The fused kernel alone over the induced layouts of batch 0: per head, q/k/v gathered into slot
     * order beforehand (untimed), then {@link Backend#attention} over that head's slot layout with
     * LSEs, as {@code ContentAttention} runs it (one plan head per call); the sum of the calls' times.
     */
    static long kernelNanos(Backend be, InducedSparsity seen, Tensor q, Tensor k, Tensor v) {
        int d = (int) q.size(3);
        float scale = (float) (1 / Math.sqrt(d));
        long total = 0;
        for (int h = 0; h < seen.heads(); h++) {
            try (Arena arena = Arena.ofConfined()) {
                int[] qs = seen.querySlots(0, h), ks = seen.keySlots(0, h);
                Tensor qg = gathered(arena, q, h, qs), kg = gathered(arena, k, h, ks), vg = gathered(arena, v, h, ks);
                Tensor o = Tensor.zeros(arena, 1, 1, qs.length, d), l = Tensor.zeros(arena, 1, 1, qs.length);
                HeadLayouts layout = HeadLayouts.shared(seen.layout(0, h));
                long t0 = System.nanoTime();
                be.attention(qg, kg, vg, layout, scale, o, l);
                total += System.nanoTime() - t0;
            }
        }
        return total;
    }

    /** [1, 1, rows.length, D]: row s is t[0, head, rows[s], :]. */
    private static Tensor gathered(Arena arena, Tensor t, int head, int[] rows) {
        int d = (int) t.size(3);
        Tensor dst = Tensor.zeros(arena, 1, 1, rows.length, d);
        long base = t.offset() + head * t.stride(1), step = t.stride(2);
        for (int s = 0; s < rows.length; s++) {
            MemorySegment.copy(t.segment(), (base + rows[s] * step) * Float.BYTES, dst.segment(), (dst.offset() + (long) s * d) * Float.BYTES, (long) d * Float.BYTES);
        }
        return dst;
    }

    /** CPU time of every thread of this process so far (the kernel's workers included), or 0 when the platform does not say. */
    private static long processCpuNanos() {
        return java.lang.management.ManagementFactory.getOperatingSystemMXBean() instanceof com.sun.management.OperatingSystemMXBean os ? Math.max(0, os.getProcessCpuTime()) : 0;
    }

    /** Dense attention in float64 for {@link #SAMPLED} queries of every head drawn from {@code seed}: [head·SAMPLED + sample][D]. */
    static double[][] denseReference(Tensor q, Tensor k, Tensor v, long seed) {
        int heads = (int) q.size(1), n = (int) q.size(2), d = (int) q.size(3);
        double scale = 1 / Math.sqrt(d);
        float[] qa = q.toArray(), ka = k.toArray(), va = v.toArray();
        SplittableRandom random = new SplittableRandom(seed);
        double[][] ref = new double[heads * SAMPLED][];
        double[] scores = new double[n];
        for (int h = 0; h < heads; h++) {
            for (int sample = 0; sample < SAMPLED; sample++) {
                int i = random.nextInt(n);
                long qi = ((long) h * n + i) * d;
                double max = Double.NEGATIVE_INFINITY;
                for (int j = 0; j < n; j++) {
                    long kj = ((long) h * n + j) * d;
                    double dot = 0;
                    for (int x = 0; x < d; x++) dot += (double) qa[(int) (qi + x)] * ka[(int) (kj + x)];
                    scores[j] = dot * scale;
                    max = Math.max(max, scores[j]);
                }
                double sum = 0;
                double[] row = new double[d];
                for (int j = 0; j < n; j++) {
                    double w = Math.exp(scores[j] - max);
                    sum += w;
                    long vj = ((long) h * n + j) * d;
                    for (int x = 0; x < d; x++) row[x] += w * va[(int) (vj + x)];
                }
                for (int x = 0; x < d; x++) row[x] /= sum;
                ref[h * SAMPLED + sample] = row;
            }
        }
        return ref;
    }

    /** {mean relative L2 error, max absolute error} of {@code out} at the sampled queries (the same seed as the reference). */
    static double[] errors(double[][] reference, Tensor out, int n, long seed) {
        int heads = (int) out.size(1), d = (int) out.size(3);
        SplittableRandom random = new SplittableRandom(seed);
        double relSum = 0, maxAbs = 0;
        for (int h = 0; h < heads; h++) {
            for (int sample = 0; sample < SAMPLED; sample++) {
                int i = random.nextInt(n);
                double[] ref = reference[h * SAMPLED + sample];
                double diff = 0, norm = 0;
                for (int x = 0; x < d; x++) {
                    double got = out.get(0, h, i, x), e = got - ref[x];
                    diff += e * e;
                    norm += ref[x] * ref[x];
                    maxAbs = Math.max(maxAbs, Math.abs(e));
                }
                relSum += Math.sqrt(diff) / Math.max(Math.sqrt(norm), 1e-30);
            }
        }
        return new double[] {relSum / (heads * SAMPLED), maxAbs};
    }

    private static String loadAverage() {
        double load = java.lang.management.ManagementFactory.getOperatingSystemMXBean().getSystemLoadAverage();
        return load < 0 ? "unknown" : String.format(Locale.ROOT, "%.1f on %d cores", load, Runtime.getRuntime().availableProcessors());
    }

    public static void main(String[] args) throws IOException {
        boolean full = false;
        int threads = Runtime.getRuntime().availableProcessors();
        for (String a : args) {
            if (a.equals("--full")) full = true;
            else threads = Integer.parseInt(a);
        }
        long t0 = System.nanoTime();
        System.out.println(run(Path.of("target", "content-section"), full, threads));
        System.out.printf(Locale.ROOT, "(section took %.1f s)%n", (System.nanoTime() - t0) / 1e9);
    }
}
