package io.tessera.variant.lowrank;

import io.tessera.backend.AttentionShape;
import io.tessera.backend.Backend;
import io.tessera.tensor.Tensor;
import io.tessera.variant.internal.Checks;
import io.tessera.variant.AttentionOperator;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Nyström attention (Xiong et al. 2021, "Nyströmformer"): with m landmarks (segment means of the
 * queries and keys), softmax(QKᵀ)V ≈ F·A⁺·(B·V) where F = softmax(Q K̃ᵀ), A = softmax(Q̃ K̃ᵀ),
 * B = softmax(Q̃ Kᵀ), and A⁺ comes from the paper's iterative Moore–Penrose scheme
 * Z ← ¼·Z(13I − AZ(15I − AZ(7I − AZ))) from Z₀ = Aᵀ/(‖A‖₁‖A‖∞). O(n·m·D + m³·iterations).
 * Segments are as even as the lengths allow: segment s covers [⌊s·n/m⌋, ⌊(s+1)·n/m⌋).
 */
public final class Nystromformer implements AttentionOperator.Scaled {
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;

    private final int landmarks, iterations;
    private final Backend backend;
    private final float scale;   // NaN: 1/√D

    private Nystromformer(int landmarks, int iterations, Backend backend) {
        this(landmarks, iterations, backend, Float.NaN);
    }

    private Nystromformer(int landmarks, int iterations, Backend backend, float scale) {
        if (landmarks < 1) throw new IllegalArgumentException("landmarks m must be >= 1, got " + landmarks);
        if (iterations < 1) throw new IllegalArgumentException("pseudo-inverse iterations must be >= 1, got " + iterations);
        this.landmarks = landmarks;
        this.iterations = iterations;
        this.backend = backend;
        this.scale = scale;
    }

    /** m landmarks, 6 pseudo-inverse iterations (the paper's default). */
    public static Nystromformer withLandmarks(int m) { return new Nystromformer(m, 6, null); }

    public Nystromformer iterations(int iterations) { return new Nystromformer(landmarks, iterations, backend, scale); }

    @Override
    public Nystromformer on(Backend backend) {
        if (backend == null) throw new NullPointerException("backend");
        return new Nystromformer(landmarks, iterations, backend, scale);
    }

    /** The same approximation of {@code softmax(scale·QKᵀ)V} (all three softmaxes) instead of scale 1/√D. */
    @Override
    public Nystromformer withScale(float scale) {
        if (!Float.isFinite(scale)) throw new IllegalArgumentException("scale must be finite, got " + scale);
        return new Nystromformer(landmarks, iterations, backend, scale);
    }

    @Override
    public void forward(Tensor q, Tensor k, Tensor v, Tensor out) {
        AttentionShape s = Checks.attention(q, "k", k, "v", v, out);
        if (landmarks > Math.min(s.qLen(), s.kvLen())) {
            throw new IllegalArgumentException("landmarks m=" + landmarks + " exceeds the sequence (qLen=" + s.qLen() + ", kvLen=" + s.kvLen() + ")");
        }
        Backend be = backend != null ? backend : Backend.best();
        int m = landmarks, d = s.headDim(), dv = s.valueDim();
        float scale = Float.isNaN(this.scale) ? s.defaultScale() : this.scale;
        try (Arena arena = Arena.ofShared()) {
            Tensor qL = Tensor.zeros(arena, m, d), kL = Tensor.zeros(arena, m, d);
            Tensor f = Tensor.zeros(arena, s.qLen(), m), a = Tensor.zeros(arena, m, m), bm = Tensor.zeros(arena, m, s.kvLen());
            Tensor z = Tensor.zeros(arena, m, m), zBest = Tensor.zeros(arena, m, m), az = Tensor.zeros(arena, m, m), t1 = Tensor.zeros(arena, m, m), t2 = Tensor.zeros(arena, m, m);
            Tensor bv = Tensor.zeros(arena, m, dv), zbv = Tensor.zeros(arena, m, dv);
            for (int b = 0; b < s.batch(); b++) {
                for (int h = 0; h < s.heads(); h++) {
                    Tensor qh = q.select(0, b).select(0, h), kh = k.select(0, b).select(0, s.kvHeadOf(h)), vh = v.select(0, b).select(0, s.kvHeadOf(h));
                    segmentMeans(qh, m, qL);
                    segmentMeans(kh, m, kL);
                    be.gemm(qh, false, kL, true, f, scale, 0f);
                    be.gemm(qL, false, kL, true, a, scale, 0f);
                    be.gemm(qL, false, kh, true, bm, scale, 0f);
                    softmaxRows(f);
                    softmaxRows(a);
                    softmaxRows(bm);
                    pseudoInverse(be, a, z, az, t1, t2, zBest);
                    be.gemm(bm, false, vh, false, bv, 1f, 0f);
                    be.gemm(z, false, bv, false, zbv, 1f, 0f);
                    be.gemm(f, false, zbv, false, out.select(0, b).select(0, h), 1f, 0f);
                }
            }
        }
    }

    /** Means of m near-equal segments of the rows of x. */
    static void segmentMeans(Tensor x, int m, Tensor dst) {
        int n = (int) x.size(0), d = (int) x.size(1);
        MemorySegment src = x.segment(), out = dst.segment();
        for (int sgm = 0; sgm < m; sgm++) {
            int from = (int) ((long) sgm * n / m), to = (int) ((long) (sgm + 1) * n / m);
            for (int c = 0; c < d; c++) {
                double sum = 0;
                for (int r = from; r < to; r++) sum += src.getAtIndex(FLOAT, x.offset() + r * x.stride(0) + c);
                out.setAtIndex(FLOAT, dst.offset() + (long) sgm * d + c, (float) (sum / (to - from)));
            }
        }
    }

    static void softmaxRows(Tensor x) {
        int rows = (int) x.size(0), cols = (int) x.size(1);
        MemorySegment seg = x.segment();
        for (int r = 0; r < rows; r++) {
            long o = x.offset() + r * x.stride(0);
            float max = Float.NEGATIVE_INFINITY;
            for (int c = 0; c < cols; c++) max = Math.max(max, seg.getAtIndex(FLOAT, o + c));
            float sum = 0;
            for (int c = 0; c < cols; c++) {
                float e = (float) Math.exp(seg.getAtIndex(FLOAT, o + c) - max);
                seg.setAtIndex(FLOAT, o + c, e);
                sum += e;
            }
            for (int c = 0; c < cols; c++) seg.setAtIndex(FLOAT, o + c, seg.getAtIndex(FLOAT, o + c) / sum);
        }
    }

    /**
     * The paper's iteration for A⁺ (Razavi et al. 2014), into z, stopped early when it no longer
     * helps: before each step the residual ‖A·Z·A − A‖_F is measured, and when it is not smaller
     * than the previous one (or not finite) the previous Z is kept. In exact arithmetic the residual
     * falls monotonically; in float32 on nearly rank-deficient A it reaches rounding level and then
     * the iteration amplifies the rounding in the near-null directions until Z overflows to NaN.
     */
    private void pseudoInverse(Backend be, Tensor a, Tensor z, Tensor az, Tensor t1, Tensor t2, Tensor best) {
        int m = (int) a.size(0);
        float[] values = a.toArray();
        double maxRow = 0, maxCol = 0;
        for (int r = 0; r < m; r++) {
            double row = 0, col = 0;
            for (int c = 0; c < m; c++) { row += Math.abs(values[r * m + c]); col += Math.abs(values[c * m + r]); }
            maxRow = Math.max(maxRow, row);
            maxCol = Math.max(maxCol, col);
        }
        z.copyFrom(a.transpose(0, 1));
        scale(z, (float) (1 / (maxRow * maxCol)));
        double previous = Double.POSITIVE_INFINITY;
        for (int it = 0; ; it++) {
            be.gemm(a, false, z, false, az, 1f, 0f);              // AZ
            be.gemm(az, false, a, false, t2, 1f, 0f);             // AZA
            double residual = distance(t2, values);
            if (!(residual < previous)) {                          // no progress, or NaN: keep the last good Z
                if (it > 0) z.copyFrom(best);                      // (a NaN A from NaN inputs keeps its NaN Z₀)
                return;
            }
            previous = residual;
            best.copyFrom(z);
            if (it == iterations) return;
            identityMinus(7f, az, t1);                             // 7I − AZ
            be.gemm(az, false, t1, false, t2, 1f, 0f);             // AZ(7I − AZ)
            identityMinus(15f, t2, t1);                            // 15I − AZ(7I − AZ)
            be.gemm(az, false, t1, false, t2, 1f, 0f);             // AZ(15I − …)
            identityMinus(13f, t2, t1);                            // 13I − AZ(15I − …)
            be.gemm(z, false, t1, false, t2, 0.25f, 0f);           // ¼ Z(13I − …)
            z.copyFrom(t2);
        }
    }

    /** ‖x − a‖_F in float64, with a given row-major. */
    private static double distance(Tensor x, float[] a) {
        float[] values = x.toArray();
        double sum = 0;
        for (int i = 0; i < values.length; i++) { double d = (double) values[i] - a[i]; sum += d * d; }
        return Math.sqrt(sum);
    }

    private static void identityMinus(float c, Tensor x, Tensor dst) {
        int m = (int) x.size(0);
        MemorySegment src = x.segment(), out = dst.segment();
        for (int r = 0; r < m; r++) {
            for (int col = 0; col < m; col++) {
                float v = -src.getAtIndex(FLOAT, x.offset() + (long) r * m + col) + (r == col ? c : 0f);
                out.setAtIndex(FLOAT, dst.offset() + (long) r * m + col, v);
            }
        }
    }

    private static void scale(Tensor x, float factor) {
        MemorySegment seg = x.segment();
        for (long i = 0, n = x.elementCount(); i < n; i++) seg.setAtIndex(FLOAT, x.offset() + i, seg.getAtIndex(FLOAT, x.offset() + i) * factor);
    }
}
