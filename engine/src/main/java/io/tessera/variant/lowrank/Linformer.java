package io.tessera.variant.lowrank;

import io.tessera.attention.Attention;
import io.tessera.backend.AttentionShape;
import io.tessera.backend.Backend;
import io.tessera.tensor.Shapes;
import io.tessera.tensor.Tensor;
import io.tessera.variant.internal.Checks;
import io.tessera.variant.internal.HalfInputs;
import io.tessera.variant.internal.KeptScratch;
import io.tessera.variant.AttentionOperator;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.function.IntConsumer;

/**
 * Linformer (Wang et al. 2020, "Self-Attention with Linear Complexity"): keys and values are
 * projected along the sequence, K' = E·K and V' = F·V with E, F of shape k×n, and dense softmax
 * attention runs on the k projected positions: O(n·k·D). Projections are per head, shared between
 * keys and values ({@link Sharing#KEY_VALUE}), or one pair for every head ({@link Sharing#HEADWISE});
 * sharing across layers is passing the same instance to several layers. Initialization is a
 * seeded Johnson–Lindenstrauss projection (entries N(0, 1/k)) or user-supplied matrices.
 * Bidirectional only (projecting along the sequence mixes future positions).
 *
 * <p>Trainable: {@link #backward(Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)}
 * gives the gradients with respect to q, k, v and the projections E and F ({@link #keyProjection()},
 * {@link #valueProjection()}: the live matrices, which a training step may update in place).
 */
public final class Linformer implements AttentionOperator.Scaled, AttentionOperator.Differentiable {
    /** How projection matrices are shared (the paper's §4 options). */
    public enum Sharing { PER_HEAD, KEY_VALUE, HEADWISE }

    private final int n, k;
    private final Sharing sharing;
    private final Projections projections;   // E and F, [kvHeads or 1, k, n]
    private final Backend backend;
    private final float scale;   // NaN: 1/√D
    /** Dense attention over the k projected positions; kept so its compiled layout is cached across calls. */
    private final Attention dense = Attention.dense();

    private Linformer(int n, int k, Sharing sharing, Projections projections, Backend backend) {
        this(n, k, sharing, projections, backend, Float.NaN);
    }

    private Linformer(int n, int k, Sharing sharing, Projections projections, Backend backend, float scale) {
        this.n = n;
        this.k = k;
        this.sharing = sharing;
        this.projections = projections;
        this.backend = backend;
        this.scale = scale;
    }

    /**
     * E and F, given or drawn from a seed on first use: a call needs k·n·count entries and does
     * at least that much work with them, so drawing then costs no more than the call itself, while
     * building a Linformer costs nothing whatever k·n is. Shared by the instances {@link #on} and
     * {@link #withScale} derive, so they all use (and train) the same matrices.
     */
    private static final class Projections {
        final int count, k, n;
        private final boolean separate;
        private final long seed;
        private Tensor f;
        private volatile Tensor e;   // written last: a non-null e means f is set too

        Projections(Tensor e, Tensor f) {
            this.count = (int) e.size(0);
            this.k = (int) e.size(1);
            this.n = (int) e.size(2);
            this.separate = e != f;
            this.seed = 0;
            this.f = f;
            this.e = e;
        }

        Projections(int count, int k, int n, boolean separate, long seed) {
            this.count = count;
            this.k = k;
            this.n = n;
            this.separate = separate;
            this.seed = seed;
        }

        Tensor e() {
            Tensor drawn = e;
            if (drawn != null) return drawn;
            synchronized (this) {
                if (e == null) {
                    // Seeded JL projections (entries N(0, 1/k)), freed with the Linformer instances that share them.
                    Arena arena = Arena.ofAuto();
                    float std = (float) (1 / Math.sqrt(k));
                    Tensor first = Tensor.randomNormal(arena, seed, std, count, k, n);
                    f = separate ? Tensor.randomNormal(arena, seed + 1, std, count, k, n) : first;
                    e = first;
                }
                return e;
            }
        }

        Tensor f() {
            e();
            return f;
        }
    }

    /**
     * Seeded JL projections for sequences of length {@code n} projected to {@code k} positions, for
     * {@code kvHeads} key/value heads. The matrices are drawn on first use (the first call, or
     * {@link #keyProjection()}) in an automatic arena (freed with this object and the instances
     * derived from it): building one allocates nothing.
     */
    public static Linformer random(int n, int k, int kvHeads, Sharing sharing, long seed) {
        check(n, k, kvHeads, sharing);
        int count = sharing == Sharing.HEADWISE ? 1 : kvHeads;
        return new Linformer(n, k, sharing, new Projections(count, k, n, sharing == Sharing.PER_HEAD, seed), null);
    }

    /** User-supplied projections: {@code e} and {@code f} of shape [count, k, n] with count 1 (shared by heads) or kvHeads. */
    public static Linformer of(Tensor e, Tensor f) {
        if (e == null) throw new NullPointerException("e");
        if (f == null) throw new NullPointerException("f");
        if (e.rank() != 3 || !Arrays.equals(e.shape(), f.shape())) {
            throw new IllegalArgumentException("e and f must both be [count, k, n]; got e " + Arrays.toString(e.shape()) + ", f " + Arrays.toString(f.shape()));
        }
        int count = Shapes.checkedInt("e count (dim 0)", e.size(0));
        int k = Shapes.checkedInt("e projected length k (dim 1)", e.size(1)), n = Shapes.checkedInt("e sequence length n (dim 2)", e.size(2));
        return new Linformer(n, k, count == 1 ? Sharing.HEADWISE : Sharing.PER_HEAD, new Projections(e, f), null);
    }

    private static void check(int n, int k, int kvHeads, Sharing sharing) {
        if (n < 1) throw new IllegalArgumentException("n must be >= 1, got " + n);
        if (k < 1) throw new IllegalArgumentException("projected length k must be >= 1, got " + k);
        if (k > n) throw new IllegalArgumentException("projected length k=" + k + " exceeds n=" + n + ": a Linformer projection must shorten the sequence; use dense attention or supply your own k×n matrices");
        if (kvHeads < 1) throw new IllegalArgumentException("kvHeads must be >= 1, got " + kvHeads);
        if (sharing == null) throw new NullPointerException("sharing");
        long count = sharing == Sharing.HEADWISE ? 1 : kvHeads;
        if ((long) k * n > (Integer.MAX_VALUE - 8) / count) {
            throw new IllegalArgumentException("the projections would hold " + (sharing == Sharing.HEADWISE ? "" : "kvHeads=" + kvHeads + " × ") + "k=" + k + " × n=" + n
                    + " entries each, more than " + (Integer.MAX_VALUE - 8) + "; shorten k or n");
        }
    }

    @Override
    public Linformer on(Backend backend) {
        if (backend == null) throw new NullPointerException("backend");
        return new Linformer(n, k, sharing, projections, backend, scale);
    }

    /** The same Linformer with softmax scale {@code scale} over the projected positions instead of 1/√D. */
    @Override
    public Linformer withScale(float scale) {
        if (!Float.isFinite(scale)) throw new IllegalArgumentException("scale must be finite, got " + scale);
        return new Linformer(n, k, sharing, projections, backend, scale);
    }

    public int projectedLength() { return k; }

    public Sharing sharing() { return sharing; }

    /**
     * The key projection E, {@code [count, k, n]} (count 1: shared by every head), itself (not a
     * copy): the same tensor as {@link #valueProjection()} when keys and values share it.
     */
    public Tensor keyProjection() { return projections.e(); }

    /** The value projection F, {@code [count, k, n]}, itself (not a copy). */
    public Tensor valueProjection() { return projections.f(); }

    /**
     * Floating-point operations of one {@link #forward} on inputs of shape {@code s}, a multiply-add
     * counted as 2: the projections E·K and F·V per key/value head (2·k·n·(D + Dv)), then dense
     * attention of every query over the k projected positions (2·Nq·k·(D + Dv) per head).
     */
    public double forwardFlops(AttentionShape s) {
        if (s == null) throw new NullPointerException("s");
        double d = s.headDim(), dv = s.valueDim();
        return (double) s.batch() * (s.kvHeads() * 2.0 * k * s.kvLen() * (d + dv) + s.heads() * 2.0 * s.qLen() * k * (d + dv));
    }

    /** q [B,H,n,D], k [B,Hkv,n,D], v [B,Hkv,n,Dv] → out [B,H,n,Dv]. */
    @Override
    public void forward(Tensor q, Tensor keys, Tensor values, Tensor out) {
        if (HalfInputs.forward(q, "keys", keys, "values", values, out, this::forward)) return;
        AttentionShape s = Checks.attention(q, "keys", keys, "values", values, out);
        checkCall(s);
        Backend be = backend != null ? backend : Backend.best();
        long keyFloats = Math.multiplyExact((long) s.batch() * s.kvHeads() * k, s.headDim());
        long valueFloats = Math.multiplyExact((long) s.batch() * s.kvHeads() * k, s.valueDim());
        long bytes = Math.multiplyExact(keyFloats + valueFloats, (long) Float.BYTES);
        PROJECTED.use(bytes, scratch -> projectAndAttend(be, s, q, keys, values, out, scratch, keyFloats, valueFloats));
    }

    /** K' and V' into {@code scratch} (overwritten whole by the projections, beta = 0: no zeroing), then dense attention over them. */
    private void projectAndAttend(Backend be, AttentionShape s, Tensor q, Tensor keys, Tensor values, Tensor out, MemorySegment scratch, long keyFloats, long valueFloats) {
        Tensor kp = Tensor.wrap(scratch.asSlice(0, keyFloats * Float.BYTES), s.batch(), s.kvHeads(), k, s.headDim());
        Tensor vp = Tensor.wrap(scratch.asSlice(keyFloats * Float.BYTES, valueFloats * Float.BYTES), s.batch(), s.kvHeads(), k, s.valueDim());
        project(be, s, keys, values, kp, vp);
        attention(be).forward(q, kp, vp, out);
    }

    /**
     * Per thread, the projected keys and values of its last forward call, kept for the next (up to
     * {@link KeptScratch#RETAINED_BYTES}): fresh zeroed memory per call (1 MB at B = 1, 8 heads,
     * k = 256, D = 64) cost its page faults and a shared arena's close every call.
     */
    private static final KeptScratch PROJECTED = KeptScratch.create();

    /**
     * The gradients with respect to q, k and v (the projections held fixed); see
     * {@link #backward(Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)}.
     */
    @Override
    public void backward(Tensor q, Tensor keys, Tensor values, Tensor dOut, Tensor dq, Tensor dk, Tensor dv) {
        if (HalfInputs.backward(q, "k", keys, "v", values, dOut, dq, dk, dv, this::backward)) return;
        AttentionShape s = Checks.backward(q, "k", keys, "v", values, dOut, dq, dk, dv);
        checkCall(s);
        run(s, q, keys, values, dOut, dq, dk, dv, null, null);
    }

    /**
     * The gradients of {@link #forward} for {@code dOut = ∂L/∂out}: with K' = E·K, V' = F·V and the
     * fused kernel's backward pass over the k projected positions giving dq, dK' and dV',
     * {@code dk = Eᵀ·dK'}, {@code dv = Fᵀ·dV'}, {@code dE = Σ dK'·Kᵀ} and {@code dF = Σ dV'·Vᵀ} summed
     * over the batch (and over the key/value heads when one pair serves every head). {@code dE} is the
     * gradient through the keys and {@code dF} through the values: when one matrix serves both
     * ({@link Sharing#KEY_VALUE}, {@link Sharing#HEADWISE}, or the same tensor passed twice to
     * {@link #of}), its gradient is {@code dE + dF}. All of them overwritten; dE and dF shaped like
     * {@link #keyProjection()} and {@link #valueProjection()}; no output may share memory with
     * another or with any input or projection. Every sum has one order: bit-identical for any
     * thread count. Extra memory: the projected keys, values and their gradients, the output and
     * log-sum-exp the kernel's backward pass recomputes from. Half-precision storage as in
     * {@link AttentionOperator.Differentiable#backward}; dE and dF are F32 or the type of E and F.
     */
    public void backward(Tensor q, Tensor keys, Tensor values, Tensor dOut, Tensor dq, Tensor dk, Tensor dv, Tensor dE, Tensor dF) {
        if (HalfInputs.any(q, keys, values, dOut) || HalfInputs.any(dq, dk, dv, dE) || HalfInputs.any(dF, null, null, null)) {
            halfBackward(q, keys, values, dOut, dq, dk, dv, dE, dF);
            return;
        }
        AttentionShape s = Checks.backward(q, "k", keys, "v", values, dOut, dq, dk, dv);
        checkCall(s);
        checkProjectionGradients(s, q, keys, values, dOut, dq, dk, dv, dE, dF);
        run(s, q, keys, values, dOut, dq, dk, dv, dE, dF);
    }

    /**
     * Half-precision storage in the backward pass with the projections' gradients: every argument
     * checked up front (q, keys, values, dOut of any type; dq, dk, dv F32 or their input's type; dE
     * and dF F32 or the type of e and f), then the float32 backward on float32 copies of the
     * half-precision inputs, each half-precision gradient rounded once.
     */
    private void halfBackward(Tensor q, Tensor keys, Tensor values, Tensor dOut, Tensor dq, Tensor dk, Tensor dv, Tensor dE, Tensor dF) {
        AttentionShape s = Checks.backwardAnyType(q, "k", keys, "v", values, dOut, dq, dk, dv);
        checkCall(s);
        checkProjectionGradients(s, q, keys, values, dOut, dq, dk, dv, dE, dF);
        Checks.gradientType("dE", dE, "e (the key projection)", projections.e());
        Checks.gradientType("dF", dF, "f (the value projection)", projections.f());
        HalfInputs.widened(new Tensor[] {q, keys, values, dOut}, new Tensor[] {dq, dk, dv, dE, dF},
                (in, grad) -> backward(in[0], in[1], in[2], in[3], grad[0], grad[1], grad[2], grad[3], grad[4]));
    }

    /** dE and dF: not null, shaped like the projections, sharing no memory with any other argument or projection. */
    private void checkProjectionGradients(AttentionShape s, Tensor q, Tensor keys, Tensor values, Tensor dOut, Tensor dq, Tensor dk, Tensor dv,
                                          Tensor dE, Tensor dF) {
        Checks.notNull("dE", dE);
        Checks.notNull("dF", dF);
        long[] projectionShape = {projections.count, k, n};
        s.checkOutput("dE", dE, projectionShape);
        s.checkOutput("dF", dF, projectionShape);
        Tensor e = projections.e(), f = projections.f();
        Tensor[] others = {q, keys, values, dOut, dq, dk, dv, e, f};
        String[] names = {"q", "keys", "values", "dOut", "dq", "dk", "dv", "e (the key projection)", "f (the value projection)"};
        for (int i = 0; i < others.length; i++) {
            Checks.disjoint("dE", dE, names[i], others[i]);
            Checks.disjoint("dF", dF, names[i], others[i]);
        }
        Checks.disjoint("dE", dE, "dF", dF);
        for (int i = 4; i < 7; i++) {
            Checks.disjoint(names[i], others[i], "e (the key projection)", e);
            Checks.disjoint(names[i], others[i], "f (the value projection)", f);
        }
    }

    private void checkCall(AttentionShape s) {
        if (s.kvLen() != n) throw new IllegalArgumentException("this Linformer projects sequences of n=" + n + ", kv length is " + s.kvLen());
        if (projections.count != 1 && projections.count != s.kvHeads()) {
            throw new IllegalArgumentException("projections exist for " + projections.count + " heads, the call has kvHeads=" + s.kvHeads());
        }
    }

    private Attention attention(Backend be) {
        return Float.isNaN(scale) ? dense.on(be) : dense.on(be).withScale(scale);
    }

    /**
     * K' = E·K and V' = F·V per batch and key/value head, the (sequence, head) pairs in parallel,
     * each on one thread: a product of k × D outputs over n is too thin to split well (B = 1, 8
     * heads, n = 4096, k = 256, D = 64, two threads on the Intel Xeon: 14.2–14.6 ms with every
     * product split over both threads, 12.8–12.9 ms a head per thread). A product's bits do not
     * depend on its thread count.
     */
    private void project(Backend be, AttentionShape s, Tensor keys, Tensor values, Tensor kp, Tensor vp) {
        Tensor e = projections.e(), f = projections.f();
        int items = s.batch() * s.kvHeads();
        Backend each = items > 1 ? be.withThreads(1) : be;
        IntConsumer item = bh -> {
            int b = bh / s.kvHeads(), h = bh % s.kvHeads(), p = e.size(0) == 1 ? 0 : h;
            each.gemm(e.select(0, p), false, keys.select(0, b).select(0, h), false, kp.select(0, b).select(0, h), 1f, 0f);
            each.gemm(f.select(0, p), false, values.select(0, b).select(0, h), false, vp.select(0, b).select(0, h), 1f, 0f);
        };
        if (items > 1) be.forEachItem(items, item, e.segment(), f.segment(), keys.segment(), values.segment(), kp.segment(), vp.segment());
        else item.accept(0);
    }

    /** The backward pass; dE and dF null when the projections' gradients are not wanted. */
    private void run(AttentionShape s, Tensor q, Tensor keys, Tensor values, Tensor dOut, Tensor dq, Tensor dk, Tensor dv, Tensor dE, Tensor dF) {
        Backend be = backend != null ? backend : Backend.best();
        Tensor e = projections.e(), f = projections.f();
        try (Arena scratch = Arena.ofShared()) {
            Tensor kp = Tensor.zeros(scratch, s.batch(), s.kvHeads(), k, s.headDim());
            Tensor vp = Tensor.zeros(scratch, s.batch(), s.kvHeads(), k, s.valueDim());
            Tensor dkp = Tensor.zeros(scratch, kp.shape()), dvp = Tensor.zeros(scratch, vp.shape());
            Tensor out = Tensor.zeros(scratch, s.outputShape()), lse = Tensor.zeros(scratch, s.lseShape());
            project(be, s, keys, values, kp, vp);
            Attention attention = attention(be);
            attention.forwardWithLse(q, kp, vp, out, lse);
            attention.backward(q, kp, vp, out, lse, dOut, dq, dkp, dvp);
            if (dE != null) {
                dE.fill(0f);
                dF.fill(0f);
            }
            for (int b = 0; b < s.batch(); b++) {
                for (int h = 0; h < s.kvHeads(); h++) {
                    int p = e.size(0) == 1 ? 0 : h;
                    Tensor dkpHead = dkp.select(0, b).select(0, h), dvpHead = dvp.select(0, b).select(0, h);
                    be.gemm(e.select(0, p), true, dkpHead, false, dk.select(0, b).select(0, h), 1f, 0f);
                    be.gemm(f.select(0, p), true, dvpHead, false, dv.select(0, b).select(0, h), 1f, 0f);
                    if (dE == null) continue;
                    be.gemm(dkpHead, false, keys.select(0, b).select(0, h), true, dE.select(0, p), 1f, 1f);
                    be.gemm(dvpHead, false, values.select(0, b).select(0, h), true, dF.select(0, p), 1f, 1f);
                }
            }
        }
    }
}
