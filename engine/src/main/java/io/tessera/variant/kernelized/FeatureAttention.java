package io.tessera.variant.kernelized;

import io.tessera.backend.AttentionShape;
import io.tessera.backend.Backend;
import io.tessera.tensor.Tensor;
import io.tessera.variant.internal.Checks;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;

/**
 * The linear-time core shared by linear attention and the Performer: with a positive feature map
 * φ, {@code out_i = φ(q_i)ᵀ S / φ(q_i)ᵀ z} where {@code S = Σ_j φ(k_j) v_jᵀ} and {@code z = Σ_j φ(k_j)}
 * (sums over j ≤ i when causal). Rows are processed in chunks of at most {@link #CHUNK}, every
 * product is a {@link Backend#gemm}, and the causal case is the chunked prefix-sum form: the
 * previous chunks' state plus a masked product inside the chunk. Memory: O(chunk·m + m·Dv) per head.
 *
 * <p>Scaling, so that no feature underflows to 0/0 or overflows where the float64 ratio is finite:
 * key feature f is stored as φ_f(k)·e^(−σ_f), with σ_f the largest log φ_f over the keys folded so
 * far (so the stored features are ≤ 1 and the key reaching σ_f stores 1); a query weighs feature f
 * by ω_f = φ_f(q)·e^(σ_f − M) with M = max_f (log φ_f(q) + σ_f), so ω ≤ 1 with one ω = 1. The
 * factors cancel in the ratio, and its denominator is ≥ 1 for finite inputs. When σ_f rises, the
 * state is rescaled, as in an online softmax.
 *
 * <p>Causal attention never lets a later key or value reach an earlier row: σ of a chunk comes from
 * the keys before it and its own first key; a chunk ends before a key whose log-features exceed
 * that σ by more than {@link #MARGIN} (so in-chunk features stay ≤ e^MARGIN) and before a value row
 * that is not finite (the in-chunk product multiplies masked entries, exact zeros, by every value
 * row of the chunk, and 0·NaN would be NaN).
 */
final class FeatureAttention {
    private FeatureAttention() {}

    static final int CHUNK = 128;
    /** How far (in log units) a key inside a causal chunk may exceed the chunk's shift: its features are then at most e^20 ≈ 5e8. */
    static final double MARGIN = 20;
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;

    static void forward(Backend backend, FeatureMap phi, boolean causal, Tensor q, Tensor k, Tensor v, Tensor out) {
        AttentionShape s = Checks.attention(q, "k", k, "v", v, out);
        if (causal && s.qLen() != s.kvLen()) {
            throw new IllegalArgumentException("causal linear attention needs qLen == kvLen, got qLen=" + s.qLen() + ", kvLen=" + s.kvLen());
        }
        int m = phi.features(s.headDim()), dv = s.valueDim();
        Checks.intProduct("the feature state m·valueDim", m, dv);
        Checks.intProduct("a chunk's features " + CHUNK + "·m", CHUNK, m);
        boolean exponential = phi.exponential();
        try (Arena arena = Arena.ofShared()) {
            Tensor state = Tensor.zeros(arena, m, dv), z = Tensor.zeros(arena, 1, m), zColumn = Tensor.zeros(arena, m, 1);
            Tensor keyU = Tensor.zeros(arena, CHUNK, m), keyF = Tensor.zeros(arena, CHUNK, m);
            Tensor queryU = Tensor.zeros(arena, CHUNK, m), queryW = Tensor.zeros(arena, CHUNK, m);
            Tensor ones = Tensor.zeros(arena, 1, CHUNK);
            ones.fill(1f);
            Tensor scores = Tensor.zeros(arena, CHUNK, CHUNK), num = Tensor.zeros(arena, CHUNK, dv), den = Tensor.zeros(arena, CHUNK, 1);
            double[] sigma = new double[m], chunkSigma = new double[m];
            for (int b = 0; b < s.batch(); b++) {
                for (int h = 0; h < s.heads(); h++) {
                    int hk = s.kvHeadOf(h);
                    Tensor qh = q.select(0, b).select(0, h), kh = k.select(0, b).select(0, hk), vh = v.select(0, b).select(0, hk);
                    Tensor oh = out.select(0, b).select(0, h);
                    state.fill(0f);
                    z.fill(0f);
                    Arrays.fill(sigma, Double.NEGATIVE_INFINITY);
                    if (!causal) {
                        // σ over every key (all are attended), then the state, then every query.
                        for (int c0 = 0; c0 < s.kvLen(); c0 += CHUNK) {
                            int rows = Math.min(CHUNK, s.kvLen() - c0);
                            Tensor u = keyU.slice(0, 0, rows);
                            phi.preActivations(backend, kh.slice(0, c0, c0 + rows), u);
                            raiseToRowMaxima(u, rows, exponential, sigma);
                        }
                        for (int c0 = 0; c0 < s.kvLen(); c0 += CHUNK) {
                            int rows = Math.min(CHUNK, s.kvLen() - c0);
                            Tensor u = keyU.slice(0, 0, rows), f = keyF.slice(0, 0, rows);
                            phi.preActivations(backend, kh.slice(0, c0, c0 + rows), u);
                            scaledKeyFeatures(u, rows, exponential, sigma, f);
                            backend.gemm(f, true, vh.slice(0, c0, c0 + rows), false, state, 1f, 1f);
                            backend.gemm(ones.slice(1, 0, rows), false, f, false, z, 1f, 1f);
                        }
                        zColumn.copyFrom(z.transpose(0, 1));
                        for (int c0 = 0; c0 < s.qLen(); c0 += CHUNK) {
                            int rows = Math.min(CHUNK, s.qLen() - c0);
                            Tensor w = queryW.slice(0, 0, rows), n = num.slice(0, 0, rows), d = den.slice(0, 0, rows);
                            phi.preActivations(backend, qh.slice(0, c0, c0 + rows), queryU.slice(0, 0, rows));
                            queryWeights(queryU, rows, exponential, sigma, w);
                            backend.gemm(w, false, state, false, n, 1f, 0f);
                            backend.gemm(w, false, zColumn, false, d, 1f, 0f);
                            divideRows(n, d, oh.slice(0, c0, c0 + rows));
                        }
                        continue;
                    }
                    for (int c0 = 0; c0 < s.qLen(); ) {
                        int rows = Math.min(CHUNK, s.qLen() - c0);
                        Tensor u = keyU.slice(0, 0, rows);
                        phi.preActivations(backend, kh.slice(0, c0, c0 + rows), u);
                        // The chunk's shift: the keys before it and its first key, nothing later.
                        System.arraycopy(sigma, 0, chunkSigma, 0, m);
                        raiseToRowMaxima(u, 1, exponential, chunkSigma);
                        rows = fittingRows(u, rows, exponential, chunkSigma, vh, c0);
                        rescaleState(state, z, sigma, chunkSigma);
                        Tensor f = keyF.slice(0, 0, rows), vc = vh.slice(0, c0, c0 + rows);
                        scaledKeyFeatures(u, rows, exponential, sigma, f);
                        Tensor w = queryW.slice(0, 0, rows), n = num.slice(0, 0, rows), d = den.slice(0, 0, rows);
                        phi.preActivations(backend, qh.slice(0, c0, c0 + rows), queryU.slice(0, 0, rows));
                        queryWeights(queryU, rows, exponential, sigma, w);
                        zColumn.copyFrom(z.transpose(0, 1));
                        backend.gemm(w, false, state, false, n, 1f, 0f);
                        backend.gemm(w, false, zColumn, false, d, 1f, 0f);
                        // Inside the chunk: tril(W_c F_cᵀ) V_c, then fold the chunk into the state.
                        Tensor sc = scores.slice(0, 0, rows).slice(1, 0, rows);
                        backend.gemm(w, false, f, true, sc, 1f, 0f);
                        keepLowerTriangle(sc);
                        backend.gemm(sc, false, vc, false, n, 1f, 1f);
                        backend.gemm(sc, false, ones.slice(1, 0, rows).transpose(0, 1), false, d, 1f, 1f);
                        backend.gemm(f, true, vc, false, state, 1f, 1f);
                        backend.gemm(ones.slice(1, 0, rows), false, f, false, z, 1f, 1f);
                        // Keep stored features ≤ 1: σ rises to the chunk's largest key (all ≤ the next rows).
                        System.arraycopy(sigma, 0, chunkSigma, 0, m);
                        raiseToRowMaxima(u, rows, exponential, chunkSigma);
                        rescaleState(state, z, sigma, chunkSigma);
                        divideRows(n, d, oh.slice(0, c0, c0 + rows));
                        c0 += rows;
                    }
                }
            }
        }
    }

    /** log φ(u): u for exponential maps, log(elu(u) + 1) otherwise. */
    private static double logFeature(float u, boolean exponential) {
        return exponential || u <= 0 ? u : Math.log1p(u);
    }

    /** φ(u)·e^(−shift), without forming e^(−shift) alone where it could overflow. */
    private static float scaledFeature(float u, double shift, boolean exponential) {
        if (exponential || u <= 0) return (float) Math.exp(u - shift);
        return (float) ((1.0 + u) * Math.exp(-shift));   // u > 0: log φ > 0, so shift ≥ log φ > 0 here
    }

    /** sigma[f] = max(sigma[f], log φ(u[r][f])) over the first {@code rows} rows; NaN propagates. */
    private static void raiseToRowMaxima(Tensor u, int rows, boolean exponential, double[] sigma) {
        MemorySegment seg = u.segment();
        int m = sigma.length;
        for (int f = 0; f < m; f++) {
            // log φ is increasing in u: the log of the largest u is the largest log (one log per feature).
            float largest = Float.NEGATIVE_INFINITY;
            for (int r = 0; r < rows; r++) {
                float x = seg.getAtIndex(FLOAT, u.offset() + r * u.stride(0) + f);
                largest = x != x ? x : Math.max(largest, x);
                if (x != x) break;
            }
            sigma[f] = Math.max(sigma[f], logFeature(largest, exponential));
        }
    }

    /**
     * How many leading rows of the tentative chunk may share its shift: row 0 always; a later row
     * only while its log-features are within {@link #MARGIN} of the shift (or the shift is
     * already NaN: every later row then attends a NaN key) and its value row is finite.
     */
    private static int fittingRows(Tensor u, int rows, boolean exponential, double[] shift, Tensor v, int first) {
        MemorySegment seg = u.segment(), vs = v.segment();
        int m = shift.length, dv = (int) v.size(1);
        double[] limit = new double[m];   // log φ(u) > shift + MARGIN ⇔ u > limit (log φ is increasing)
        for (int f = 0; f < m; f++) {
            double bound = shift[f] + MARGIN;
            limit[f] = exponential || bound <= 0 ? bound : Math.expm1(bound);
        }
        for (int r = 1; r < rows; r++) {
            long o = u.offset() + r * u.stride(0);
            for (int f = 0; f < m; f++) {
                if (seg.getAtIndex(FLOAT, o + f) > limit[f]) return r;
            }
            long vr = v.offset() + (long) (first + r) * v.stride(0);
            for (int c = 0; c < dv; c++) if (!Float.isFinite(vs.getAtIndex(FLOAT, vr + c))) return r;
        }
        return rows;
    }

    /** Moves the state from shift {@code sigma} to the (not smaller) shift {@code raised}, then sigma = raised. */
    private static void rescaleState(Tensor state, Tensor z, double[] sigma, double[] raised) {
        MemorySegment st = state.segment(), zs = z.segment();
        int dv = (int) state.size(1);
        for (int f = 0; f < sigma.length; f++) {
            if (Double.compare(sigma[f], raised[f]) == 0) continue;   // also −∞ = −∞: nothing folded yet
            float factor = (float) Math.exp(sigma[f] - raised[f]);
            if (sigma[f] == Double.NEGATIVE_INFINITY) factor = 0f;    // the state of this feature is still empty
            long row = state.offset() + (long) f * state.stride(0);
            for (int c = 0; c < dv; c++) st.setAtIndex(FLOAT, row + c, st.getAtIndex(FLOAT, row + c) * factor);
            long zf = z.offset() + f;
            zs.setAtIndex(FLOAT, zf, zs.getAtIndex(FLOAT, zf) * factor);
            sigma[f] = raised[f];
        }
    }

    private static void scaledKeyFeatures(Tensor u, int rows, boolean exponential, double[] sigma, Tensor dst) {
        MemorySegment src = u.segment(), out = dst.segment();
        int m = sigma.length;
        for (int r = 0; r < rows; r++) {
            long i = u.offset() + r * u.stride(0), o = dst.offset() + r * dst.stride(0);
            for (int f = 0; f < m; f++) out.setAtIndex(FLOAT, o + f, scaledFeature(src.getAtIndex(FLOAT, i + f), sigma[f], exponential));
        }
    }

    /** w[r][f] = φ(u[r][f])·e^(σ_f − M_r), M_r = max_f (log φ(u[r][f]) + σ_f): at most 1, and 1 at the maximum. */
    private static void queryWeights(Tensor u, int rows, boolean exponential, double[] sigma, Tensor dst) {
        MemorySegment src = u.segment(), out = dst.segment();
        int m = sigma.length;
        for (int r = 0; r < rows; r++) {
            long i = u.offset() + r * u.stride(0), o = dst.offset() + r * dst.stride(0);
            double max = Double.NEGATIVE_INFINITY;
            for (int f = 0; f < m; f++) max = Math.max(max, logFeature(src.getAtIndex(FLOAT, i + f), exponential) + sigma[f]);
            for (int f = 0; f < m; f++) out.setAtIndex(FLOAT, o + f, scaledFeature(src.getAtIndex(FLOAT, i + f), max - sigma[f], exponential));
        }
    }

    private static void keepLowerTriangle(Tensor square) {
        MemorySegment seg = square.segment();
        int n = (int) square.size(0);
        for (int i = 0; i < n; i++) {
            long row = square.offset() + i * square.stride(0);
            for (int j = i + 1; j < n; j++) seg.setAtIndex(FLOAT, row + j, 0f);
        }
    }

    private static void divideRows(Tensor num, Tensor den, Tensor out) {
        int rows = (int) num.size(0), dv = (int) num.size(1);
        MemorySegment n = num.segment(), d = den.segment(), o = out.segment();
        for (int r = 0; r < rows; r++) {
            float inv = 1f / d.getAtIndex(FLOAT, den.offset() + r * den.stride(0));
            long nr = num.offset() + r * num.stride(0), or = out.offset() + r * out.stride(0);
            for (int c = 0; c < dv; c++) o.setAtIndex(FLOAT, or + c, n.getAtIndex(FLOAT, nr + c) * inv);
        }
    }
}
