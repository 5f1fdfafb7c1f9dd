package io.tessera.variant.lowrank;

import io.tessera.attention.Attention;
import io.tessera.backend.AttentionShape;
import io.tessera.backend.Backend;
import io.tessera.tensor.ElementType;
import io.tessera.tensor.Tensor;
import io.tessera.variant.internal.Checks;
import io.tessera.variant.internal.HalfInputs;
import io.tessera.variant.internal.KeptScratch;
import io.tessera.variant.internal.RowSoftmax;
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
 * {@link #backward} differentiates exactly this computation (the iterations the forward ran, its
 * initial scaling included), not softmax attention.
 */
public final class Nystromformer implements AttentionOperator.Scaled, AttentionOperator.Differentiable {
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;

    private final int landmarks, iterations;
    private final Backend backend;
    private final float scale;   // NaN: 1/√D
    /** The fused kernel for B·V and F·(ZBV); kept so its compiled layouts are cached across calls. */
    private final Attention dense = Attention.dense();

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

    /**
     * Floating-point operations of one {@link #forward} on inputs of shape {@code s}, a multiply-add
     * counted as 2, per head: the three score products Q·K̃ᵀ, Q̃·K̃ᵀ, Q̃·Kᵀ (2·D·m·(Nq + m + Nkv)),
     * B·V, Z·(BV) and F·(ZBV) (2·Dv·m·(Nkv + m + Nq)), and the pseudo-inverse at its full
     * iteration count (two m³ products for each of its iterations + 1 residual checks, three per step: 2m³·(2 + 5·iterations)).
     * Segment means, softmaxes and exponentials are not counted.
     */
    public double forwardFlops(AttentionShape s) {
        if (s == null) throw new NullPointerException("s");
        double m = landmarks, cube = 2 * m * m * m;
        double perHead = 2 * s.headDim() * m * (s.qLen() + m + s.kvLen()) + 2 * s.valueDim() * m * (s.kvLen() + m + s.qLen())
                + cube * (2 + 5.0 * iterations);
        return perHead * s.batch() * s.heads();
    }

    @Override
    public void forward(Tensor q, Tensor k, Tensor v, Tensor out) {
        if (HalfInputs.forward(q, "k", k, "v", v, out, this::forward)) return;
        AttentionShape s = Checks.attention(q, "k", k, "v", v, out);
        checkLandmarks(s);
        Backend be = backend != null ? backend : Backend.best();
        int m = landmarks, d = s.headDim(), dv = s.valueDim();
        float scale = Float.isNaN(this.scale) ? s.defaultScale() : this.scale;
        int heads = Math.multiplyExact(s.batch(), s.heads());
        // Heads in parallel, each on one thread: its m×m products are too small to split.
        // The bits do not depend on the thread count (every product has one order).
        Backend perHead = heads > 1 ? be.withThreads(1) : be;
        long[][] shapes = headShapes(m, d, dv);
        long bytes = headBytes(shapes);
        java.util.function.IntConsumer head = bh -> HEAD_SCRATCH.use(bytes, memory -> forwardHead(perHead, s, scale, m, views(memory, shapes), q, k, v, out, bh));
        if (heads > 1) be.forEachItem(heads, head, q.segment(), k.segment(), v.segment(), out.segment());
        else head.accept(0);
    }

    /**
     * Head {@code bh} (batch · heads + head) of {@link #forward}, its matrices in {@code t} ({@link #headShapes}).
     * B·V = softmax(scale·Q̃Kᵀ)·V and F·(ZBV) = softmax(scale·QK̃ᵀ)·(ZBV) are softmax attention of
     * the m landmark queries over the keys and of the queries over the m landmark keys, so the fused
     * kernel computes them: F and B (n × m each) are never written, and no GEMM of depth m feeds a
     * separate softmax pass. Measured on the Intel Xeon (B = 1, H = 8, n = 4096, D = 64, m = 64, two
     * threads, alternating JVMs): 9.19–9.25 ms with F and B materialized, 8.12–8.13 ms fused.
     */
    private void forwardHead(Backend perHead, AttentionShape s, float scale, int m, Tensor[] t, Tensor q, Tensor k, Tensor v, Tensor out, int bh) {
        Tensor qL = t[0], kL = t[1], a = t[2], z = t[3], zBest = t[4], az = t[5], t1 = t[6], t2 = t[7], bv = t[8], zbv = t[9];
        int b = bh / s.heads(), h = bh % s.heads(), hk = s.kvHeadOf(h);
        Tensor qh = q.select(0, b).select(0, h), kh = k.select(0, b).select(0, hk);
        landmarks(perHead, qh, kh, m, scale, qL, kL, a);
        Attention fused = dense.on(perHead).withScale(scale);
        fused.forward(qL.reshape(1, 1, m, s.headDim()), k.slice(0, b, b + 1).slice(1, hk, hk + 1), v.slice(0, b, b + 1).slice(1, hk, hk + 1), bv.reshape(1, 1, m, s.valueDim()));
        pseudoInverse(perHead, a, z, az, t1, t2, zBest, null);
        perHead.gemm(z, false, bv, false, zbv, 1f, 0f);
        fused.forward(q.slice(0, b, b + 1).slice(1, h, h + 1), kL.reshape(1, 1, m, s.headDim()), zbv.reshape(1, 1, m, s.valueDim()), out.slice(0, b, b + 1).slice(1, h, h + 1));
    }

    /**
     * Per thread, the memory of the forward pass's per-head matrices, kept for its next head and
     * call (up to {@link KeptScratch#RETAINED_BYTES}): a shared arena per call zeroed the matrices
     * and unmapped them again (2.2 MB a thread at n = 4096, m = 64 while F and B were among them;
     * system time of an 8 s run of forward calls on the Intel Xeon: 0.61–0.67 s with it, 0.51–0.55 s
     * without). Every matrix in it is overwritten
     * before it is read (products with beta = 0, copies), so nothing an earlier head left there is
     * ever read.
     */
    private static final KeptScratch HEAD_SCRATCH = KeptScratch.create();

    /** qL, kL [m, d]; A, Z, Z_best, AZ, T1, T2 [m, m]; BV, Z·BV [m, dv]: O(m·(d + m + dv)), nothing n long. */
    private static long[][] headShapes(int m, int d, int dv) {
        return new long[][] {{m, d}, {m, d}, {m, m}, {m, m}, {m, m}, {m, m}, {m, m}, {m, m}, {m, dv}, {m, dv}};
    }

    /** The bytes of float32 matrices of these shapes, overflow-checked. */
    private static long headBytes(long[][] shapes) {
        long floats = 0;
        for (long[] shape : shapes) floats = Math.addExact(floats, Math.multiplyExact(shape[0], shape[1]));
        return Math.multiplyExact(floats, (long) Float.BYTES);
    }

    /** The matrices of these shapes, one after the other in {@code memory}. */
    private static Tensor[] views(MemorySegment memory, long[][] shapes) {
        Tensor[] views = new Tensor[shapes.length];
        long at = 0;
        for (int i = 0; i < shapes.length; i++) {
            long size = shapes[i][0] * shapes[i][1] * Float.BYTES;
            views[i] = Tensor.wrap(memory.asSlice(at, size), shapes[i]);
            at += size;
        }
        return views;
    }

    /** The landmarks of one head (segment means of its query and key rows) and A = softmax(scale·Q̃K̃ᵀ). */
    private static void landmarks(Backend be, Tensor qh, Tensor kh, int m, float scale, Tensor qL, Tensor kL, Tensor a) {
        segmentMeans(qh, m, qL);
        segmentMeans(kh, m, kL);
        be.gemm(qL, false, kL, true, a, scale, 0f);
        RowSoftmax.softmaxRows(a);
    }

    /**
     * The pseudo-inverse steps {@link #forward} and {@link #backward} run on these inputs, per
     * (batch, head) at index {@code batch·heads + head}: {@link #iterations}, or fewer where the
     * iteration stopped early because its float32 residual stopped falling (see
     * {@link #pseudoInverse}). The same float32 computation as theirs (landmarks, A, the iteration),
     * so the same count for any thread count; v only fixes the shape checks. For tests and
     * diagnostics: near convergence, outputs of neighbouring step counts can differ by less than
     * float32 rounding while their gradients do not, so the count cannot be read off the output.
     */
    public int[] pseudoInverseSteps(Tensor q, Tensor k, Tensor v) {
        if (q == null) throw new NullPointerException("q");
        if (k == null) throw new NullPointerException("k");
        if (v == null) throw new NullPointerException("v");
        AttentionShape s = AttentionShape.of(q, k, v);
        checkLandmarks(s);
        Backend be = (backend != null ? backend : Backend.best()).withThreads(1);
        int m = landmarks, d = s.headDim();
        float scale = Float.isNaN(this.scale) ? s.defaultScale() : this.scale;
        int[] steps = new int[Math.multiplyExact(s.batch(), s.heads())];
        try (Arena arena = Arena.ofConfined()) {
            Tensor q32 = q.type() == ElementType.F32 ? q : q.to(arena, ElementType.F32);
            Tensor k32 = k.type() == ElementType.F32 ? k : k.to(arena, ElementType.F32);
            Tensor qL = Tensor.zeros(arena, m, d), kL = Tensor.zeros(arena, m, d), a = Tensor.zeros(arena, m, m);
            Tensor z = Tensor.zeros(arena, m, m), zBest = Tensor.zeros(arena, m, m), az = Tensor.zeros(arena, m, m), t1 = Tensor.zeros(arena, m, m), t2 = Tensor.zeros(arena, m, m);
            for (int b = 0; b < s.batch(); b++) {
                for (int h = 0; h < s.heads(); h++) {
                    landmarks(be, q32.select(0, b).select(0, h), k32.select(0, b).select(0, s.kvHeadOf(h)), m, scale, qL, kL, a);
                    steps[b * s.heads() + h] = pseudoInverse(be, a, z, az, t1, t2, zBest, null);
                }
            }
        }
        return steps;
    }

    private void checkLandmarks(AttentionShape s) {
        if (landmarks > Math.min(s.qLen(), s.kvLen())) {
            throw new IllegalArgumentException("landmarks m=" + landmarks + " exceeds the sequence (qLen=" + s.qLen() + ", kvLen=" + s.kvLen() + ")");
        }
    }

    /**
     * The gradients of {@link #forward}, recomputing it per head and keeping the pseudo-inverse's
     * iterates Z_0 … Z_T (T the iterations the forward ran): with out = F·Z·(B·V),
     * dF = dOut·(Z·B·V)ᵀ, dZ = Fᵀ·dOut·(B·V)ᵀ, dB = Zᵀ·Fᵀ·dOut·Vᵀ, dV = Bᵀ·Zᵀ·Fᵀ·dOut; dZ goes back
     * through each step Z' = ¼·Z(13I − X(15I − X(7I − X))), X = AZ, and through Z_0 = Aᵀ/(‖A‖₁‖A‖∞)
     * (the norms differentiated at their largest row and column) to dA; then the three row softmaxes,
     * their score products and the segment means. Every product is a {@link Backend#gemm}; dk and dv
     * sum over the query heads of a key/value head in head order: bit-identical for any thread count.
     * Memory, per thread: the forward's O(n·m) plus (iterations + 1)·m² floats.
     */
    @Override
    public void backward(Tensor q, Tensor k, Tensor v, Tensor dOut, Tensor dq, Tensor dk, Tensor dv) {
        if (HalfInputs.backward(q, "k", k, "v", v, dOut, dq, dk, dv, this::backward)) return;
        AttentionShape s = Checks.backward(q, "k", k, "v", v, dOut, dq, dk, dv);
        checkLandmarks(s);
        Backend be = backend != null ? backend : Backend.best();
        int m = landmarks, d = s.headDim(), valueDim = s.valueDim(), n = s.qLen(), nk = s.kvLen();
        float scale = Float.isNaN(this.scale) ? s.defaultScale() : this.scale;
        Checks.intProduct("the pseudo-inverse's iterates (iterations+1)·m²", (long) iterations + 1, (long) m * m);
        // (batch, key/value head) pairs in parallel, each on one thread with its thread's matrices
        // (a pair writes only its own dk, dv and its query heads' dq), as the forward runs its heads;
        // before, the pairs ran one after the other with every product split over both threads.
        // Measured on the Intel Xeon (B = 1, H = 8, n = 4096, D = 64, m = 64, two threads, one JVM
        // each): 118.7 → 29.5 ms.
        int items = s.batch() * s.kvHeads();
        Backend each = items > 1 ? be.withThreads(1) : be;
        try (Arena arena = Arena.ofShared()) {
            ThreadLocal<BackwardScratch> scratch = ThreadLocal.withInitial(() -> new BackwardScratch(arena, m, d, valueDim, n, nk, iterations));
            java.util.function.IntConsumer item = bh -> {
                int b = bh / s.kvHeads(), hk = bh % s.kvHeads();
                BackwardScratch w = scratch.get();
                Tensor qL = w.qL, kL = w.kL, dqL = w.dqL, dkL = w.dkL, f = w.f, a = w.a, bm = w.bm, dF = w.dF, dA = w.dA, dB = w.dB;
                Tensor z = w.z, zBest = w.zBest, az = w.az, t1 = w.t1, t2 = w.t2, history = w.history, bv = w.bv, zbv = w.zbv, dZbv = w.dZbv, dBv = w.dBv;
                Tensor[] work = w.work;
                Tensor kh = k.select(0, b).select(0, hk), vh = v.select(0, b).select(0, hk);
                Tensor dkh = dk.select(0, b).select(0, hk), dvh = dv.select(0, b).select(0, hk);
                dkh.fill(0f);
                dvh.fill(0f);
                for (int h = hk * s.queryHeadsPerKvHead(); h < (hk + 1) * s.queryHeadsPerKvHead(); h++) {
                    Tensor qh = q.select(0, b).select(0, h), g = dOut.select(0, b).select(0, h), dqh = dq.select(0, b).select(0, h);
                    // The forward, keeping the iterates.
                    landmarks(each, qh, kh, m, scale, qL, kL, a);
                    each.gemm(qh, false, kL, true, f, scale, 0f);
                    each.gemm(qL, false, kh, true, bm, scale, 0f);
                    RowSoftmax.softmaxRows(f);
                    RowSoftmax.softmaxRows(bm);
                    int steps = pseudoInverse(each, a, z, az, t1, t2, zBest, history);
                    each.gemm(bm, false, vh, false, bv, 1f, 0f);
                    each.gemm(z, false, bv, false, zbv, 1f, 0f);
                    // out = F·(Z·(B·V)).
                    each.gemm(g, false, zbv, true, dF, 1f, 0f);
                    each.gemm(f, true, g, false, dZbv, 1f, 0f);
                    Tensor dZ = work[0];
                    each.gemm(dZbv, false, bv, true, dZ, 1f, 0f);
                    each.gemm(z, true, dZbv, false, dBv, 1f, 0f);
                    each.gemm(dBv, false, vh, true, dB, 1f, 0f);
                    each.gemm(bm, true, dBv, false, dvh, 1f, 1f);
                    pseudoInverseBackward(each, a, history, steps, dZ, dA, work);
                    softmaxRowsBackward(f, dF);
                    softmaxRowsBackward(a, dA);
                    softmaxRowsBackward(bm, dB);
                    // Scores F = s·q·kLᵀ, A = s·qL·kLᵀ, B = s·qL·kᵀ.
                    each.gemm(dF, false, kL, false, dqh, scale, 0f);
                    each.gemm(dF, true, qh, false, dkL, scale, 0f);
                    each.gemm(dA, true, qL, false, dkL, scale, 1f);
                    each.gemm(dA, false, kL, false, dqL, scale, 0f);
                    each.gemm(dB, false, kh, false, dqL, scale, 1f);
                    each.gemm(dB, true, qL, false, dkh, scale, 1f);
                    segmentMeansBackward(dqL, m, dqh);
                    segmentMeansBackward(dkL, m, dkh);
                }
            };
            if (items > 1) be.forEachItem(items, item, q.segment(), k.segment(), v.segment(), dOut.segment(), dq.segment(), dk.segment(), dv.segment());
            else item.accept(0);
        }
    }

    /** One thread's matrices of {@link #backward}: the forward's O(n·m) plus (iterations + 1)·m² floats. */
    private static final class BackwardScratch {
        final Tensor qL, kL, dqL, dkL, f, a, bm, dF, dA, dB, z, zBest, az, t1, t2, history, bv, zbv, dZbv, dBv;
        final Tensor[] work = new Tensor[8];

        BackwardScratch(Arena arena, int m, int d, int valueDim, int n, int nk, int iterations) {
            qL = Tensor.zeros(arena, m, d); kL = Tensor.zeros(arena, m, d); dqL = Tensor.zeros(arena, m, d); dkL = Tensor.zeros(arena, m, d);
            f = Tensor.zeros(arena, n, m); a = Tensor.zeros(arena, m, m); bm = Tensor.zeros(arena, m, nk);
            dF = Tensor.zeros(arena, n, m); dA = Tensor.zeros(arena, m, m); dB = Tensor.zeros(arena, m, nk);
            z = Tensor.zeros(arena, m, m); zBest = Tensor.zeros(arena, m, m); az = Tensor.zeros(arena, m, m); t1 = Tensor.zeros(arena, m, m); t2 = Tensor.zeros(arena, m, m);
            history = Tensor.zeros(arena, iterations + 1, m, m);
            bv = Tensor.zeros(arena, m, valueDim); zbv = Tensor.zeros(arena, m, valueDim); dZbv = Tensor.zeros(arena, m, valueDim); dBv = Tensor.zeros(arena, m, valueDim);
            for (int i = 0; i < work.length; i++) work[i] = Tensor.zeros(arena, m, m);
        }
    }

    /**
     * dA (overwritten) from G = ∂L/∂Z_T back through the recorded iterates history[0 … steps]:
     * per step, with X = A·Z_t, P1 = 7I − X, P2 = 15I − X·P1, P3 = 13I − X·P2, Z_{t+1} = ¼·Z_t·P3.
     */
    private static void pseudoInverseBackward(Backend be, Tensor a, Tensor history, int steps, Tensor g, Tensor dA, Tensor[] work) {
        Tensor x = work[1], p1 = work[2], p2 = work[3], p3 = work[4], dX = work[5], dP = work[6], dZ = work[7];
        dA.fill(0f);
        for (int t = steps - 1; t >= 0; t--) {
            Tensor zt = history.select(0, t);
            be.gemm(a, false, zt, false, x, 1f, 0f);
            identityMinus(7f, x, p1);
            be.gemm(x, false, p1, false, p3, 1f, 0f);     // X·P1 (p3 as scratch)
            identityMinus(15f, p3, p2);
            be.gemm(x, false, p2, false, dX, 1f, 0f);     // X·P2 (dX as scratch)
            identityMinus(13f, dX, p3);
            be.gemm(g, false, p3, true, dZ, 0.25f, 0f);   // dZ_t = ¼·G·P3ᵀ
            be.gemm(zt, true, g, false, dP, 0.25f, 0f);   // dP3 = ¼·Z_tᵀ·G
            be.gemm(dP, false, p2, true, dX, -1f, 0f);    // dX = −dP3·P2ᵀ
            be.gemm(x, true, dP, false, p3, -1f, 0f);     // dP2 = −Xᵀ·dP3 (into p3, no longer needed)
            be.gemm(p3, false, p1, true, dX, -1f, 1f);    // dX −= dP2·P1ᵀ
            be.gemm(x, true, p3, false, dP, -1f, 0f);     // dP1 = −Xᵀ·dP2
            subtract(dX, dP);                             // dX −= dP1
            be.gemm(dX, false, zt, true, dA, 1f, 1f);     // dA += dX·Z_tᵀ
            be.gemm(a, true, dX, false, dZ, 1f, 1f);      // dZ_t += Aᵀ·dX
            g.copyFrom(dZ);
        }
        // Z_0 = c·Aᵀ, c = 1/(R·C) with R the largest row sum and C the largest column sum of |A|.
        int m = (int) a.size(0);
        float[] values = a.toArray(), grad = g.toArray();
        double maxRow = -1, maxCol = -1, gamma = 0;
        int row = 0, col = 0;
        for (int r = 0; r < m; r++) {
            double rs = 0, cs = 0;
            for (int c = 0; c < m; c++) { rs += Math.abs(values[r * m + c]); cs += Math.abs(values[c * m + r]); }
            if (rs > maxRow) { maxRow = rs; row = r; }
            if (cs > maxCol) { maxCol = cs; col = r; }
        }
        for (int i = 0; i < m; i++) for (int j = 0; j < m; j++) gamma += (double) grad[i * m + j] * values[j * m + i];   // ⟨G, Aᵀ⟩ = ∂L/∂c
        double c = 1 / (maxRow * maxCol);
        MemorySegment out = dA.segment();
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < m; j++) {
                double add = c * grad[j * m + i];                                                  // from c·Aᵀ
                if (i == row) add -= c / maxRow * gamma * Math.signum(values[i * m + j]);          // ∂c/∂R · ∂R/∂A
                if (j == col) add -= c / maxCol * gamma * Math.signum(values[i * m + j]);          // ∂c/∂C · ∂C/∂A
                long at = dA.offset() + (long) i * m + j;
                out.setAtIndex(FLOAT, at, (float) (out.getAtIndex(FLOAT, at) + add));
            }
        }
    }

    private static void subtract(Tensor dst, Tensor x) {
        MemorySegment d = dst.segment(), s = x.segment();
        for (long i = 0, n = dst.elementCount(); i < n; i++) d.setAtIndex(FLOAT, dst.offset() + i, d.getAtIndex(FLOAT, dst.offset() + i) - s.getAtIndex(FLOAT, x.offset() + i));
    }

    /** grad ← P ∘ (grad − rowsum(grad ∘ P)) in place: the softmax's backward, P its output. */
    static void softmaxRowsBackward(Tensor p, Tensor grad) {
        int rows = (int) p.size(0), cols = (int) p.size(1);
        MemorySegment ps = p.segment(), gs = grad.segment();
        for (int r = 0; r < rows; r++) {
            long po = p.offset() + r * p.stride(0), go = grad.offset() + r * grad.stride(0);
            double dot = 0;
            for (int c = 0; c < cols; c++) dot += (double) gs.getAtIndex(FLOAT, go + c) * ps.getAtIndex(FLOAT, po + c);
            float delta = (float) dot;
            for (int c = 0; c < cols; c++) gs.setAtIndex(FLOAT, go + c, ps.getAtIndex(FLOAT, po + c) * (gs.getAtIndex(FLOAT, go + c) - delta));
        }
    }

    /** dx[r] += dMeans[segment of r] / (length of that segment): the backward of {@link #segmentMeans}. */
    static void segmentMeansBackward(Tensor dMeans, int m, Tensor dx) {
        int n = (int) dx.size(0), d = (int) dx.size(1);
        MemorySegment src = dMeans.segment(), out = dx.segment();
        for (int sgm = 0; sgm < m; sgm++) {
            int from = (int) ((long) sgm * n / m), to = (int) ((long) (sgm + 1) * n / m);
            float inv = 1f / (to - from);
            for (int r = from; r < to; r++) {
                long o = dx.offset() + r * dx.stride(0);
                for (int c = 0; c < d; c++) out.setAtIndex(FLOAT, o + c, out.getAtIndex(FLOAT, o + c) + src.getAtIndex(FLOAT, dMeans.offset() + (long) sgm * d + c) * inv);
            }
        }
    }

    /**
     * Means of m near-equal segments of the rows of x: each column's sum over the segment's rows in
     * row order in double (rows copied out whole: the column-wise segment reads were strided; a
     * segment of contiguous rows in one copy: a copy per row of 64 floats was most of this method).
     */
    static void segmentMeans(Tensor x, int m, Tensor dst) {
        int n = (int) x.size(0), d = (int) x.size(1);
        MemorySegment src = x.segment(), out = dst.segment();
        boolean contiguous = x.stride(1) == 1 && x.stride(0) == d;
        float[] rows = new float[contiguous ? Math.multiplyExact((n + m - 1) / m, d) : d];
        double[] sums = new double[d];
        for (int sgm = 0; sgm < m; sgm++) {
            int from = (int) ((long) sgm * n / m), to = (int) ((long) (sgm + 1) * n / m);
            java.util.Arrays.fill(sums, 0);
            if (contiguous) MemorySegment.copy(src, FLOAT, (x.offset() + (long) from * d) * Float.BYTES, rows, 0, (to - from) * d);
            for (int r = from; r < to; r++) {
                int at = contiguous ? (r - from) * d : 0;
                long o = x.offset() + r * x.stride(0);
                if (!contiguous && x.stride(1) == 1) MemorySegment.copy(src, FLOAT, o * Float.BYTES, rows, 0, d);
                else if (!contiguous) for (int c = 0; c < d; c++) rows[c] = src.getAtIndex(FLOAT, o + c * x.stride(1));
                for (int c = 0; c < d; c++) sums[c] += rows[at + c];
            }
            for (int c = 0; c < d; c++) out.setAtIndex(FLOAT, dst.offset() + (long) sgm * d + c, (float) (sums[c] / (to - from)));
        }
    }

    /**
     * The paper's iteration for A⁺ (Razavi et al. 2014), into z, stopped early when it no longer
     * helps: before each step the residual ‖A·Z·A − A‖_F is measured, and when it is not smaller
     * than the previous one (or not finite) the previous Z is kept. In exact arithmetic the residual
     * falls monotonically; in float32 on nearly rank-deficient A it reaches rounding level and then
     * the iteration amplifies the rounding in the near-null directions until Z overflows to NaN.
     */
    private int pseudoInverse(Backend be, Tensor a, Tensor z, Tensor az, Tensor t1, Tensor t2, Tensor best, Tensor history) {
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
            if (history != null) history.select(0, it).copyFrom(z);   // Z_it, for the backward pass
            be.gemm(a, false, z, false, az, 1f, 0f);              // AZ
            be.gemm(az, false, a, false, t2, 1f, 0f);             // AZA
            double residual = distance(t2, values);
            if (!(residual < previous)) {                          // no progress, or NaN: keep the last good Z
                if (it > 0) z.copyFrom(best);                      // (a NaN A from NaN inputs keeps its NaN Z₀)
                return Math.max(0, it - 1);
            }
            previous = residual;
            best.copyFrom(z);
            if (it == iterations) return it;
            identityMinus(7f, az, t1);                             // 7I − AZ
            be.gemm(az, false, t1, false, t2, 1f, 0f);             // AZ(7I − AZ)
            identityMinus(15f, t2, t1);                            // 15I − AZ(7I − AZ)
            be.gemm(az, false, t1, false, t2, 1f, 0f);             // AZ(15I − …)
            identityMinus(13f, t2, t1);                            // 13I − AZ(15I − …)
            be.gemm(z, false, t1, false, t2, 0.25f, 0f);           // ¼ Z(13I − …)
            z.copyFrom(t2);
        }
    }

    /** A per-thread heap copy of the residual (one m × m array per call allocated 7·heads arrays per forward). */
    private static final ThreadLocal<float[]> RESIDUAL = ThreadLocal.withInitial(() -> new float[0]);

    /** ‖x − a‖_F in float64, with a given row-major. */
    private static double distance(Tensor x, float[] a) {
        float[] values = RESIDUAL.get();
        if (values.length < a.length) RESIDUAL.set(values = new float[a.length]);
        MemorySegment.copy(x.segment(), FLOAT, x.offset() * Float.BYTES, values, 0, a.length);   // x is a contiguous m × m scratch
        double sum = 0;
        for (int i = 0; i < a.length; i++) { double d = (double) values[i] - a[i]; sum += d * d; }
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
