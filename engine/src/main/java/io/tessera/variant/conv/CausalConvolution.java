package io.tessera.variant.conv;

import io.tessera.backend.AttentionShape;
import io.tessera.backend.Backend;
import io.tessera.tensor.Tensor;
import io.tessera.variant.internal.Checks;
import io.tessera.variant.internal.HalfInputs;
import io.tessera.variant.AttentionOperator;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;

/**
 * Depthwise dilated causal 1-D convolution over the sequence, as an attention replacement
 * (van den Oord et al. 2016, WaveNet; long convolutions as in H3/Hyena, Fu et al. 2023, Poli et
 * al. 2023): for x {@code [B,H,N,D]}, {@code out[i, c] = Σ_t w[g(c)][t] · x[i − t·dilation, c]}
 * where channel c uses the filter of its group g(c) = c / (D/groups). Equivalently, attention with
 * the fixed lower-triangular Toeplitz matrix A[i][j] = w[(i−j)/dilation] on the taps.
 *
 * <p>Two paths: direct, O(N·K·D); and FFT, O(N log² N · D), for long filters. {@link Path#AUTO}
 * takes the FFT path when the filter has more taps than {@link #fftThresholdTaps()}, the crossover
 * measured on this machine at first use.
 *
 * <p>Causality holds on both paths exactly: {@code out[i]} is computed from {@code x[j], j ≤ i}
 * only, so changing a later input (to NaN, ±∞ or a huge value) leaves every earlier output
 * bit-identical. The FFT path gets this by divide and conquer (the left half of a range reaches
 * the right half through one FFT product, then each half recurses; short ranges are summed
 * directly), never transforming a later input together with an earlier output. Non-finite inputs
 * never enter a transform: they are added tap by tap, so (as on the direct path) they reach only
 * the outputs whose taps hold them.
 *
 * <p>x and out may be any views with the same shape (strided, transposed); out must not share
 * memory with x.
 *
 * <p>"Groups" here are convolution channel groups (channels sharing one filter), not attention
 * heads or SIMD lanes.
 */
public final class CausalConvolution implements AttentionOperator {
    public enum Path { AUTO, DIRECT, FFT }

    /**
     * Taps above which {@link Path#AUTO} takes the FFT path (direct costs K per output, FFT ~ 4·log2(2N) per level):
     * measured at N = 512 on this machine once per JVM (0.3 s), or {@code -Dtessera.conv.fftThresholdTaps}.
     */
    public static int fftThresholdTaps() { return FftCrossover.thresholdTaps(); }

    /** Ranges at most this long are summed directly inside the FFT path. */
    static final int DIRECT_RANGE = 64;

    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;

    private final float[][] weights;   // [groups][kernelSize]
    private final int dilation;

    private CausalConvolution(float[][] weights, int dilation) {
        this.weights = weights;
        this.dilation = dilation;
    }

    /** Filters {@code weights[g][t]} for g in groups, t in taps (tap 0 is the current position); every weight finite. */
    public static CausalConvolution of(float[][] weights, int dilation) {
        if (weights == null) throw new NullPointerException("weights");
        if (weights.length == 0) throw new IllegalArgumentException("weights must hold at least one group");
        for (int g = 0; g < weights.length; g++) if (weights[g] == null) throw new NullPointerException("weights[" + g + "]");
        int k = weights[0].length;
        if (k < 1) throw new IllegalArgumentException("kernel size must be >= 1, got " + k);
        for (int g = 0; g < weights.length; g++) {
            if (weights[g].length != k) throw new IllegalArgumentException("weights[" + g + "] has " + weights[g].length + " taps, weights[0] has " + k);
            for (int t = 0; t < k; t++) {
                if (!Float.isFinite(weights[g][t])) throw new IllegalArgumentException("weights[" + g + "][" + t + "]=" + weights[g][t] + " must be finite");
            }
        }
        if (dilation < 1) throw new IllegalArgumentException("dilation must be >= 1, got " + dilation);
        float[][] copy = new float[weights.length][];
        for (int g = 0; g < weights.length; g++) copy[g] = weights[g].clone();
        return new CausalConvolution(copy, dilation);
    }

    public int kernelSize() { return weights[0].length; }
    /** Channel groups: the channels c with c / (D/groups) = g share filter g. */
    public int groups() { return weights.length; }
    public int dilation() { return dilation; }

    /** The path AUTO takes, and why. */
    public String explain() {
        int threshold = fftThresholdTaps();
        return kernelSize() > threshold ? "FFT: " + kernelSize() + " taps > " + threshold : "direct: " + kernelSize() + " taps <= " + threshold;
    }

    /**
     * As an attention operator: the fixed causal Toeplitz matrix applied to the values, so
     * {@code out = conv(v)} on the path {@link Path#AUTO} picks. q and k carry no information here;
     * they fix the geometry as for any attention call, which must have qLen = kvLen and heads = kvHeads.
     */
    @Override
    public void forward(Tensor q, Tensor k, Tensor v, Tensor out) {
        AttentionShape s = AttentionShape.of(q, k, v);
        if (s.qLen() != s.kvLen()) throw new IllegalArgumentException("causal convolution needs qLen == kvLen, got qLen=" + s.qLen() + ", kvLen=" + s.kvLen());
        if (s.heads() != s.kvHeads()) throw new IllegalArgumentException("causal convolution needs heads == kvHeads, got heads=" + s.heads() + ", kvHeads=" + s.kvHeads());
        if (out == null) throw new NullPointerException("out");
        forward(v, out, Path.AUTO);
    }

    /**
     * This convolution: it runs as plain Java loops (direct) or a double-precision FFT on the calling
     * thread whatever the backend, because no backend offers a convolution kernel yet.
     */
    @Override
    public CausalConvolution on(Backend backend) {
        if (backend == null) throw new NullPointerException("backend");
        return this;
    }

    /**
     * x [B, H, N, D] → out of the same shape; any strides; out must not share memory with x. x and
     * out may each be F32, BF16 or F16: a half-precision x is widened (exactly) into a float32 copy,
     * the float32 path runs on it, and a half-precision out receives its float32 result rounded
     * once to nearest, ties to even (the same bits as this call on {@code x.to(arena, F32)} with the
     * output rounded), at the cost of a float32 copy of each half-precision tensor per call.
     */
    public void forward(Tensor x, Tensor out, Path path) {
        Checks.notNull("x", x);
        Checks.notNull("out", out);
        Checks.notNull("path", path);
        if (HalfInputs.any(x, out, null, null)) {
            checkShapes(x, out);
            HalfInputs.widened(new Tensor[] {x}, new Tensor[] {out}, (in, written) -> forward(in[0], written[0], path));
            return;
        }
        Checks.float32("x", x);
        Checks.float32("out", out);
        checkShapes(x, out);
        long length = x.size(2);
        boolean fft = path == Path.FFT || (path == Path.AUTO && kernelSize() > fftThresholdTaps());
        FilterSpectra spectra = fft ? new FilterSpectra((int) length) : null;
        for (int b = 0; b < x.size(0); b++) {
            for (int h = 0; h < x.size(1); h++) {
                Tensor xs = x.select(0, b).select(0, h), os = out.select(0, b).select(0, h);
                if (fft) fft(xs, os, spectra); else direct(xs, os);
            }
        }
    }

    /** Shapes, groups and aliasing of a convolution call, by name. */
    private void checkShapes(Tensor x, Tensor out) {
        if (x.rank() != 4) throw new IllegalArgumentException("x must be rank 4 [batch, heads, seq, channels], got " + Arrays.toString(x.shape()));
        if (!Arrays.equals(x.shape(), out.shape())) throw new IllegalArgumentException("out shape " + Arrays.toString(out.shape()) + " must equal x shape " + Arrays.toString(x.shape()));
        long channelCount = x.size(3), length = x.size(2);
        if (channelCount % groups() != 0) throw new IllegalArgumentException("groups=" + groups() + " must divide channels=" + channelCount);
        if (length > Integer.MAX_VALUE) throw new IllegalArgumentException("sequence length " + length + " exceeds int indexing");
        if (channelCount > Integer.MAX_VALUE - 8) throw new IllegalArgumentException("channels=" + channelCount + " exceeds int indexing");
        Checks.disjoint("out", out, "x", x);
    }

    /** The taps that can reach an output of a length-n sequence: t·dilation < n. */
    private int reachingTaps(int n) {
        long reach = (n - 1L) / dilation + 1;
        return (int) Math.min(kernelSize(), reach);
    }

    private void direct(Tensor x, Tensor out) {
        int n = (int) x.size(0), channels = (int) x.size(1), per = channels / groups(), taps = reachingTaps(n);
        MemorySegment xs = x.segment(), os = out.segment();
        long xRow = x.stride(0), xCol = x.stride(1), oRow = out.stride(0), oCol = out.stride(1);
        float[] acc = new float[channels], row = new float[channels];
        for (int i = 0; i < n; i++) {
            Arrays.fill(acc, 0f);
            for (int t = 0; t < taps; t++) {
                long src = i - (long) t * dilation;
                if (src < 0) break;
                readRow(xs, x.offset() + src * xRow, xCol, row);
                for (int g = 0; g < groups(); g++) {
                    float w = weights[g][t];
                    for (int c = g * per; c < (g + 1) * per; c++) acc[c] += w * row[c];
                }
            }
            long o = out.offset() + i * oRow;
            if (oCol == 1) MemorySegment.copy(acc, 0, os, FLOAT, o * Float.BYTES, channels);
            else for (int c = 0; c < channels; c++) os.setAtIndex(FLOAT, o + c * oCol, acc[c]);
        }
    }

    private static void readRow(MemorySegment seg, long base, long step, float[] row) {
        if (step == 1) MemorySegment.copy(seg, FLOAT, base * Float.BYTES, row, 0, row.length);
        else for (int c = 0; c < row.length; c++) row[c] = seg.getAtIndex(FLOAT, base + c * step);
    }

    /** Per-group filter spectra, one per transform length the recursion uses (at most log2 N of them). */
    private final class FilterSpectra {
        private final Map<Integer, double[][]> byLength = new HashMap<>();   // length → [2·groups][length]
        private final int taps;

        FilterSpectra(int n) { this.taps = reachingTaps(n); }

        double[][] of(int length) {
            return byLength.computeIfAbsent(length, size -> {
                double[][] spectra = new double[2 * groups()][];
                for (int g = 0; g < groups(); g++) {
                    double[] re = new double[size], im = new double[size];
                    for (int t = 0; t < taps && (long) t * dilation < size; t++) re[t * dilation] = weights[g][t];
                    Fft.transform(re, im, false);
                    spectra[2 * g] = re;
                    spectra[2 * g + 1] = im;
                }
                return spectra;
            });
        }
    }

    private void fft(Tensor x, Tensor out, FilterSpectra spectra) {
        int n = (int) x.size(0), channels = (int) x.size(1), per = channels / groups();
        long span = (long) (spectra.taps - 1) * dilation + 1;   // ≤ n: lags the reaching taps cover, plus one
        // The largest transform is that of the top level's cross product: ≤ n lags, so a length ≤ 2n.
        if (n > Fft.MAX_LENGTH / 2) throw new IllegalArgumentException("sequence length " + n + " exceeds the FFT path's limit " + Fft.MAX_LENGTH / 2 + "; use Path.DIRECT");
        MemorySegment xs = x.segment(), os = out.segment();
        double[] in = new double[n], acc = new double[n];
        int[] nonFinite = new int[n];
        for (int c = 0; c < channels; c++) {
            int g = c / per, count = 0;
            for (int i = 0; i < n; i++) {
                in[i] = xs.getAtIndex(FLOAT, x.offset() + i * x.stride(0) + c * x.stride(1));
                if (!Double.isFinite(in[i])) nonFinite[count++] = i;
            }
            Arrays.fill(acc, 0);
            causal(in, acc, 0, n, g, span, spectra, Arrays.copyOf(nonFinite, count));
            for (int i = 0; i < n; i++) os.setAtIndex(FLOAT, out.offset() + i * out.stride(0) + c * out.stride(1), (float) acc[i]);
        }
    }

    /**
     * acc[i] += Σ_{lo ≤ j ≤ i} w(i − j)·in[j] for i in [lo, hi), by divide and conquer. Non-finite
     * inputs (their indices sorted in {@code nonFinite}) never enter a transform: a cross product
     * transforms the finite ones and adds the others tap by tap, so they reach only the outputs
     * whose taps hold them, and every output's arithmetic depends on earlier inputs only.
     */
    private void causal(double[] in, double[] acc, int lo, int hi, int g, long span, FilterSpectra spectra, int[] nonFinite) {
        float[] w = weights[g];
        if (hi - lo <= DIRECT_RANGE) {
            for (int i = lo; i < hi; i++) {
                double sum = 0;
                for (int t = 0; t < spectra.taps; t++) {
                    long j = i - (long) t * dilation;
                    if (j < lo) break;
                    sum += w[t] * in[(int) j];
                }
                acc[i] += sum;
            }
            return;
        }
        int mid = (lo + hi) >>> 1;
        causal(in, acc, lo, mid, g, span, spectra, nonFinite);
        // Inputs of the left half within reach of the right half, into the right-half outputs they reach.
        int from = (int) Math.max(lo, mid - span + 1), to = (int) Math.min(hi, mid + span - 1);
        if (from < mid && mid < to) {
            int inputs = mid - from, lastLag = to - 1 - from;
            int size = Fft.paddedLength(lastLag + 1L);   // lags 1 … lastLag are read, none wraps
            double[][] filter = spectra.of(size);
            double[] re = new double[size], im = new double[size];
            System.arraycopy(in, from, re, 0, inputs);
            int first = lowerBound(nonFinite, from), end = lowerBound(nonFinite, mid);
            for (int e = first; e < end; e++) re[nonFinite[e] - from] = 0;
            Fft.transform(re, im, false);
            double[] fr = filter[2 * g], fi = filter[2 * g + 1];
            for (int f = 0; f < size; f++) {
                double r = re[f] * fr[f] - im[f] * fi[f];
                im[f] = re[f] * fi[f] + im[f] * fr[f];
                re[f] = r;
            }
            Fft.transform(re, im, true);
            // Output i gets Σ_j in[j]·w(i − j) = re[i − from]; i − from < size, and every lag i − j ≥ 1 (no wrap).
            for (int i = mid; i < to; i++) acc[i] += re[i - from];
            for (int e = first; e < end; e++) {
                int j = nonFinite[e];
                for (int t = 0; t < spectra.taps; t++) {
                    long i = j + (long) t * dilation;
                    if (i >= to) break;
                    if (i >= mid) acc[(int) i] += w[t] * in[j];
                }
            }
        }
        causal(in, acc, mid, hi, g, span, spectra, nonFinite);
    }

    /** The first index of the sorted {@code a} whose value is ≥ {@code key}. */
    private static int lowerBound(int[] a, int key) {
        int lo = 0, hi = a.length;
        while (lo < hi) {
            int m = (lo + hi) >>> 1;
            if (a[m] < key) lo = m + 1; else hi = m;
        }
        return lo;
    }
}
