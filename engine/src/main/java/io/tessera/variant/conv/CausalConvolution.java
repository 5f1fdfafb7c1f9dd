package io.tessera.variant.conv;

import io.tessera.tensor.Tensor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;

/**
 * Depthwise dilated causal 1-D convolution over the sequence, as an attention replacement
 * (van den Oord et al. 2016, WaveNet; long convolutions as in H3/Hyena, Fu et al. 2023, Poli et
 * al. 2023): for x {@code [B,H,N,D]}, {@code out[i, c] = Σ_t w[g(c)][t] · x[i − t·dilation, c]}
 * where channel c uses the filter of its group g(c) = c / (D/groups). Equivalently, attention with
 * the fixed lower-triangular Toeplitz matrix A[i][j] = w[(i−j)/dilation] on the taps.
 *
 * <p>Two paths: direct, O(N·K·D), vectorizable across the channels of a group; and FFT,
 * O(N log N · D), for long filters. {@link Path#AUTO} takes the FFT path when the filter has more
 * taps than {@link #FFT_THRESHOLD_TAPS} (measured crossover on this machine's class of CPU).
 */
public final class CausalConvolution {
    public enum Path { AUTO, DIRECT, FFT }

    /** Taps above which the FFT path wins (direct costs K per output, FFT ~ 4·log2(2N)). */
    public static final int FFT_THRESHOLD_TAPS = 48;

    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;

    private final float[][] weights;   // [groups][kernelSize]
    private final int dilation;

    private CausalConvolution(float[][] weights, int dilation) {
        this.weights = weights;
        this.dilation = dilation;
    }

    /** Filters {@code weights[g][t]} for g in groups, t in taps (tap 0 is the current position). */
    public static CausalConvolution of(float[][] weights, int dilation) {
        if (weights == null || weights.length == 0) throw new IllegalArgumentException("weights must hold at least one group");
        int k = weights[0].length;
        if (k < 1) throw new IllegalArgumentException("kernel size must be >= 1, got " + k);
        for (int g = 0; g < weights.length; g++) {
            if (weights[g].length != k) throw new IllegalArgumentException("weights[" + g + "] has " + weights[g].length + " taps, weights[0] has " + k);
        }
        if (dilation < 1) throw new IllegalArgumentException("dilation must be >= 1, got " + dilation);
        float[][] copy = new float[weights.length][];
        for (int g = 0; g < weights.length; g++) copy[g] = weights[g].clone();
        return new CausalConvolution(copy, dilation);
    }

    public int kernelSize() { return weights[0].length; }
    public int groups() { return weights.length; }
    public int dilation() { return dilation; }

    /** The path AUTO takes, and why. */
    public String explain() {
        return kernelSize() > FFT_THRESHOLD_TAPS ? "FFT: " + kernelSize() + " taps > " + FFT_THRESHOLD_TAPS : "direct: " + kernelSize() + " taps <= " + FFT_THRESHOLD_TAPS;
    }

    public void forward(Tensor x, Tensor out, Path path) {
        if (x == null) throw new NullPointerException("x");
        if (x.rank() != 4) throw new IllegalArgumentException("x must be rank 4 [batch, heads, seq, channels], got " + Arrays.toString(x.shape()));
        if (!Arrays.equals(x.shape(), out.shape())) throw new IllegalArgumentException("out shape " + Arrays.toString(out.shape()) + " must equal x shape " + Arrays.toString(x.shape()));
        int channels = (int) x.size(3);
        if (channels % groups() != 0) throw new IllegalArgumentException("groups=" + groups() + " must divide channels=" + channels);
        boolean fft = path == Path.FFT || (path == Path.AUTO && kernelSize() > FFT_THRESHOLD_TAPS);
        for (int b = 0; b < x.size(0); b++) {
            for (int h = 0; h < x.size(1); h++) {
                Tensor xs = x.select(0, b).select(0, h), os = out.select(0, b).select(0, h);
                if (fft) fft(xs, os); else direct(xs, os);
            }
        }
    }

    private void direct(Tensor x, Tensor out) {
        int n = (int) x.size(0), channels = (int) x.size(1), per = channels / groups();
        MemorySegment xs = x.segment(), os = out.segment();
        float[] acc = new float[channels], row = new float[channels];
        for (int i = 0; i < n; i++) {
            Arrays.fill(acc, 0f);
            for (int t = 0; t < kernelSize(); t++) {
                long src = i - (long) t * dilation;
                if (src < 0) break;
                MemorySegment.copy(xs, FLOAT, (x.offset() + src * x.stride(0)) * Float.BYTES, row, 0, channels);
                for (int g = 0; g < groups(); g++) {
                    float w = weights[g][t];
                    for (int c = g * per; c < (g + 1) * per; c++) acc[c] += w * row[c];
                }
            }
            MemorySegment.copy(acc, 0, os, FLOAT, (out.offset() + i * out.stride(0)) * Float.BYTES, channels);
        }
    }

    private void fft(Tensor x, Tensor out) {
        int n = (int) x.size(0), channels = (int) x.size(1), per = channels / groups();
        int span = (kernelSize() - 1) * dilation + 1;
        int size = Fft.paddedLength(n + span - 1);
        double[][] filterRe = new double[groups()][], filterIm = new double[groups()][];
        for (int g = 0; g < groups(); g++) {
            filterRe[g] = new double[size];
            filterIm[g] = new double[size];
            for (int t = 0; t < kernelSize(); t++) if ((long) t * dilation < size) filterRe[g][t * dilation] = weights[g][t];
            Fft.transform(filterRe[g], filterIm[g], false);
        }
        double[] re = new double[size], im = new double[size];
        MemorySegment xs = x.segment(), os = out.segment();
        for (int c = 0; c < channels; c++) {
            int g = c / per;
            Arrays.fill(re, 0);
            Arrays.fill(im, 0);
            for (int i = 0; i < n; i++) re[i] = xs.getAtIndex(FLOAT, x.offset() + i * x.stride(0) + c);
            Fft.transform(re, im, false);
            for (int f = 0; f < size; f++) {
                double r = re[f] * filterRe[g][f] - im[f] * filterIm[g][f];
                im[f] = re[f] * filterIm[g][f] + im[f] * filterRe[g][f];
                re[f] = r;
            }
            Fft.transform(re, im, true);
            for (int i = 0; i < n; i++) os.setAtIndex(FLOAT, out.offset() + i * out.stride(0) + c, (float) re[i]);
        }
    }
}
