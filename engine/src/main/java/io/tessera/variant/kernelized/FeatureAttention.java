package io.tessera.variant.kernelized;

import io.tessera.backend.AttentionShape;
import io.tessera.backend.Backend;
import io.tessera.tensor.Tensor;
import io.tessera.variant.internal.Checks;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.function.IntConsumer;

/**
 * The linear-time core shared by linear attention and the Performer: with a positive feature map
 * φ, {@code out_i = φ(q_i)ᵀ S / φ(q_i)ᵀ z} where {@code S = Σ_j φ(k_j) v_jᵀ} and {@code z = Σ_j φ(k_j)}
 * (sums over j ≤ i when causal). Rows are processed in chunks ({@link #FORWARD_CHUNK}, {@link #CAUSAL_CHUNK}, {@link #CHUNK} in the backward pass), every
 * product is a {@link Backend#gemm}, and the causal case is the chunked prefix-sum form: the
 * previous chunks' state plus a masked product inside the chunk. The forward pass runs the
 * (batch, head) pairs in parallel ({@link Backend#forEachItem}), each on one thread. Memory:
 * O(chunk·m + m·Dv) per head in flight, kept by each thread that ran one for its next forward
 * pass with the same m and Dv (about 4 MiB a thread at m = 256, Dv = 64).
 *
 * <p>Scaling, so that no feature underflows to 0/0 or overflows where the float64 ratio is finite:
 * key feature f is stored as φ_f(k)·e^(−σ_f), with σ_f the largest log φ_f over the keys folded so
 * far (so the stored features are ≤ 1 and the key reaching σ_f stores 1); a query weighs feature f
 * by ω_f = φ_f(q)·e^(σ_f − M) with M = max_f (log φ_f(q) + σ_f), so ω ≤ 1 with one ω = 1 (the
 * bidirectional forward takes for elu + 1 a bound of log φ at most 0.06 above it: then the largest
 * ω is ≥ e^−0.06). The factors cancel in the ratio, and its denominator is ≥ e^−0.06 for finite
 * inputs. When σ_f rises, the state is rescaled, as in an online softmax (the bidirectional pass
 * too: it folds every key chunk once, raising σ as it goes).
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
    /**
     * Rows per chunk of the causal forward pass: its masked in-chunk products cost 2·c·(m + Dv)
     * per row, against one pass of products per chunk, so the chunk trades in-chunk work for
     * products of fewer rows. 128 made the causal pass three times the bidirectional one; 60 about
     * twice; 30 (a multiple of SimdGemm's 6-row micro-kernel, so no row is left to its 2- and 1-row
     * blocks) took causal linear attention (m = 64) from 10.8–11.9 to 10.2–11.2 ms at n = 4096 on
     * the 2-core AVX-512 Xeon (alternating JVMs, five pairs), the causal Performer (m = 256) within
     * its noise (38.6–43.0 against 40.9–41.1 ms); 24 and 42 (48 columns: a ragged panel) were slower.
     */
    static final int CAUSAL_CHUNK = 30;
    /**
     * Columns of the causal pass's in-chunk scores W·Fᵀ: {@link #CAUSAL_CHUNK} rounded up to whole
     * GEMM panels at every vector width (32 columns at 512 bits). The product runs over the chunk's
     * key features padded with zero rows to this count: with exactly the chunk's columns, its last
     * panel was stored element by element and packed with zero padding (at 60 columns, 28 of 32:
     * 4 % of the causal pass); the columns past the chunk are computed and never read.
     */
    static final int CAUSAL_COLUMNS = 32;
    /** How far (in log units) a key inside a causal chunk may exceed the chunk's shift: its features are then at most e^20 ≈ 5e8. */
    static final double MARGIN = 20;
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;

    /**
     * Floating-point operations of {@link #forward} on shape {@code s} with m features, a
     * multiply-add counted as 2 (the feature maps' own products are the caller's): per query head,
     * the state S and its column sums z over the keys (2·Nkv·m·Dv + Nkv·m), every query's numerator
     * and denominator (2·Nq·m·(Dv + 1)) and, when causal, each chunk's masked products
     * tril(W Fᵀ)·V and its row sums (counted as 2·c·(m + Dv + 1) per row, c = {@link #CAUSAL_CHUNK},
     * the chunks as long as they can be).
     */
    static double flops(AttentionShape s, int m, boolean causal) {
        double keys = s.kvLen(), queries = s.qLen(), dv = s.valueDim();
        double perHead = 2 * keys * m * dv + keys * m + 2 * queries * m * (dv + 1);
        if (causal) {
            for (long c0 = 0; c0 < s.qLen(); c0 += CAUSAL_CHUNK) {
                double c = Math.min(CAUSAL_CHUNK, s.qLen() - c0);
                perHead += 2 * c * c * (m + dv + 1);
            }
        }
        return perHead * s.batch() * s.heads();
    }

    static void forward(Backend backend, FeatureMap phi, boolean causal, Tensor q, Tensor k, Tensor v, Tensor out) {
        AttentionShape s = Checks.attention(q, "k", k, "v", v, out);
        if (causal && s.qLen() != s.kvLen()) {
            throw new IllegalArgumentException("causal linear attention needs qLen == kvLen, got qLen=" + s.qLen() + ", kvLen=" + s.kvLen());
        }
        int m = phi.features(s.headDim()), dv = s.valueDim();
        Checks.intProduct("the feature state m·valueDim", m, dv);
        Checks.intProduct("a chunk's features " + CHUNK + "·m", CHUNK, m);
        int heads = Checks.intProduct("batch·heads", s.batch(), s.heads());
        // Heads in parallel, each on one thread (its products are too thin to split further);
        // a single head splits its products instead. Either way the bits are the same: every
        // product and every sum has one order whatever the thread count.
        Backend perHead = heads > 1 ? backend.withThreads(1) : backend;
        IntConsumer head = bh -> {
            ForwardScratch w = ForwardScratch.forThread(m, dv);
            int b = bh / s.heads(), h = bh % s.heads(), hk = s.kvHeadOf(h);
            Tensor qh = q.select(0, b).select(0, h), kh = k.select(0, b).select(0, hk), vh = v.select(0, b).select(0, hk);
            Tensor oh = out.select(0, b).select(0, h);
            if (causal) causalHead(perHead, phi, w, qh, kh, vh, oh);
            else bidirectionalHead(perHead, phi, w, qh, kh, vh, oh);
        };
        if (heads > 1) backend.forEachItem(heads, head, q.segment(), k.segment(), v.segment(), out.segment());
        else head.accept(0);
    }

    /**
     * Rows per chunk of the bidirectional forward pass: 480 is {@code SimdGemm}'s rows per work
     * item for products of depth ≤ 64 (the Performer's projections, whose panels of ω are packed
     * once per item: at 120 rows packing was 8 % of the projection) and four of its items of 120
     * rows for the deeper products (a multiple of its 6-row micro-kernel: 128 split into 120 + 8
     * rows and packed every panel twice). Memory O(480·m) per head in flight.
     */
    static final int FORWARD_CHUNK = 480;

    /**
     * Per-thread buffers of the forward pass, kept by the thread for its next call with the same m
     * and Dv (allocating and zeroing them per call was 5 % of linear attention's forward at n =
     * 4096). The state S is m × Dv; z is kept on the heap ({@code keySums}) by both passes, and
     * every query chunk's denominators W·z (plus, causal, the in-chunk row sums) come from the
     * heap rows of W: as an extra column of S, z filled a GEMM panel of its own (65 columns are
     * three panels of 32 at 512 bits; the causal pass spent a quarter of its time on that panel).
     */
    private static final class ForwardScratch {
        final int m, dv;
        final Tensor state, keyU, keyF, queryU, queryW, scores, numDen;
        final float[] keySums, keyRows, queryRows, weights, largest, shift, raised, outRow, denominators, rowShifts, limit, valueRows, square;
        /**
         * Per feature, a pre-activation whose log-feature is ≤ the shift ({@link #raiseToColumnMaxima}
         * skips the logarithm of a column maximum not above it), and the shift {@code limit} was
         * computed for ({@link #fittingRows} recomputes only the limits whose shift moved): a log1p
         * per feature and chunk and an expm1 per feature and chunk were 5 % of the causal pass.
         */
        final float[] shiftArgument, limitShift;
        /** The map {@code limit} was computed for (the limit of a shift depends on it; the scratch serves both maps). */
        boolean limitsExponential;

        ForwardScratch(int m, int dv) {
            this.m = m;
            this.dv = dv;
            Arena arena = Arena.ofAuto();   // freed with the scratch when its thread drops it
            int rows = Math.max(FORWARD_CHUNK, CAUSAL_CHUNK);
            state = Tensor.zeros(arena, m, dv);
            keyU = Tensor.zeros(arena, rows, m);
            keyF = Tensor.zeros(arena, rows, m);
            queryU = Tensor.zeros(arena, rows, m);
            queryW = Tensor.zeros(arena, rows, m);
            scores = Tensor.zeros(arena, CAUSAL_CHUNK, CAUSAL_COLUMNS);
            numDen = Tensor.zeros(arena, rows, dv + 1);
            keySums = new float[m];
            keyRows = new float[rows * m];
            queryRows = new float[rows * m];
            weights = new float[rows * m];
            largest = new float[m];
            shift = new float[m];
            raised = new float[m];
            outRow = new float[rows * (dv + 1)];
            denominators = new float[rows];
            rowShifts = new float[rows];
            limit = new float[m];
            limitShift = new float[m];
            Arrays.fill(limit, Float.NaN);        // the limit of a NaN shift: limit and limitShift agree from the start
            Arrays.fill(limitShift, Float.NaN);
            shiftArgument = new float[m];
            valueRows = new float[CAUSAL_CHUNK * dv];
            square = new float[CAUSAL_CHUNK * CAUSAL_CHUNK];
        }

        /** This thread's scratch for m features and Dv value columns. */
        static ForwardScratch forThread(int m, int dv) {
            ForwardScratch w = CACHED.get();
            if (w == null || w.m != m || w.dv != dv) CACHED.set(w = new ForwardScratch(m, dv));
            return w;
        }

        private static final ThreadLocal<ForwardScratch> CACHED = new ThreadLocal<>();
    }

    /**
     * One bidirectional head in a single pass over the keys: each chunk raises σ to its largest
     * log-features (rescaling the state folded so far, as the causal pass does), then adds its
     * scaled features to S and z; then every query chunk is one product with S and row dot products with z.
     */
    private static void bidirectionalHead(Backend be, FeatureMap phi, ForwardScratch w, Tensor qh, Tensor kh, Tensor vh, Tensor oh) {
        boolean exponential = phi.exponential();
        int m = w.shift.length, dv = w.dv, kvLen = (int) kh.size(0), qLen = (int) qh.size(0);
        float[] shift = w.shift, raised = w.raised, z = w.keySums;
        w.state.fill(0f);
        Arrays.fill(z, 0f);
        Arrays.fill(shift, Float.NEGATIVE_INFINITY);
        Arrays.fill(w.shiftArgument, Float.NEGATIVE_INFINITY);
        // The element-wise passes run on heap copies of the chunk's rows (bulk-copied in and out):
        // scalar MemorySegment accesses cost a bounds and liveness check each. For elu + 1 (u = the
        // input rows) the copies are made by the first pass over the rows (the keys' column maxima,
        // the queries' row shifts), and the exponentials are written into the kernels' loops
        // (FeatureKernelsSimd.keyFeaturesElu). Measured on the 2-core AVX-512 Xeon, B = 1, H = 8,
        // D = 64, n = 4096, 2 threads, base and new in one JVM alternated, 8 JVMs: forward 0.936× the
        // time (SE 0.015); with the exponentials through FloatExpSimd.expInPlace still, the fused
        // copies alone measured 1.005× (SE 0.018), and the exponentials alone 0.969× (SE 0.019). With
        // the Performer run first in the same JVM (as in the variants section): 0.935× (4 JVMs, SE
        // 0.039) once the fused query kernel served elu + 1 only (serving both maps: 1.031×).
        for (int c0 = 0; c0 < kvLen; c0 += FORWARD_CHUNK) {
            int rows = Math.min(FORWARD_CHUNK, kvLen - c0);
            Tensor u = w.keyU.slice(0, 0, rows), f = w.keyF.slice(0, 0, rows), kc = kh.slice(0, c0, c0 + rows);
            Arrays.fill(w.largest, Float.NEGATIVE_INFINITY);
            if (phi.identity() && contiguousRows(kc, m)) {
                FeatureKernels.copyColumnMax(kc.segment(), kc.offset(), rows, m, w.keyRows, w.largest);   // the copy and the maxima in one pass
            } else {
                phi.preActivations(be, kc, u, w.keyRows);
                FeatureKernels.columnMax(w.keyRows, rows, m, w.largest);
            }
            raiseTo(w.largest, m, exponential, shift, raised, w.shiftArgument);
            rescaleState(w.state, z, shift, raised, w.outRow);
            FeatureKernels.keyFeatures(w.keyRows, rows, m, exponential, shift, z, f.segment(), f.offset());
            be.gemm(f, true, vh.slice(0, c0, c0 + rows), false, w.state, 1f, 1f);
        }
        // Denominators W·z on the heap rows of W (as one product with [S | z], the (Dv + 1)-th
        // column filled a GEMM panel of its own: a [480 × 256]·[256 × 65] product took 1.64× the
        // time of its 64 columns); each row of W divided by its denominator, so the product
        // (W/den)·S writes the output rows directly (dividing them afterwards, through a heap
        // copy, was 7 % of linear attention's forward).
        for (int c0 = 0; c0 < qLen; c0 += FORWARD_CHUNK) {
            int rows = Math.min(FORWARD_CHUNK, qLen - c0);
            Tensor u = w.queryU.slice(0, 0, rows), wq = w.queryW.slice(0, 0, rows), qc = qh.slice(0, c0, c0 + rows);
            if (phi.identity() && !exponential && contiguousRows(qc, m)) {   // the rows copied in the first pass over them
                FeatureKernels.normalizedQueryWeights(qc.segment(), qc.offset(), w.queryRows, rows, m, shift, z, w.weights, w.rowShifts, w.denominators, wq.segment(), wq.offset());
            } else {
                phi.queryPreActivations(be, qc, u, w.queryRows);
                FeatureKernels.normalizedQueryWeights(w.queryRows, rows, m, exponential, shift, z, w.weights, w.rowShifts, w.denominators, wq.segment(), wq.offset());
            }
            be.gemm(wq, false, w.state, false, oh.slice(0, c0, c0 + rows), 1f, 0f);   // out has unit-stride rows (checked)
        }
    }

    /** Whether the rows of matrix {@code t} are {@code cols} contiguous floats each, one after the other. */
    private static boolean contiguousRows(Tensor t, int cols) {
        return t.stride(1) == 1 && t.stride(0) == cols && t.size(1) == cols;
    }

    /** The first {@code count} elements of contiguous {@code t} into {@code dst}. */
    private static void toArray(Tensor t, int count, float[] dst) {
        MemorySegment.copy(t.segment(), FLOAT, t.offset() * Float.BYTES, dst, 0, count);
    }

    /** {@code src[0, count)} into contiguous {@code t}. */
    private static void fromArray(float[] src, int count, Tensor t) {
        MemorySegment.copy(src, 0, t.segment(), FLOAT, t.offset() * Float.BYTES, count);
    }

    /**
     * raised = max(shift, log φ of each feature's largest pre-activation over the rows); NaN
     * propagates. {@code argument[f]} is a pre-activation with log φ ≤ shift[f] (−∞ for a fresh
     * shift): log φ is non-decreasing (log1p is semi-monotonic, and so is rounding it to float), so a
     * largest value below it leaves raised[f] = shift[f] without its logarithm; any other
     * becomes the new argument. The values are those of max(shift, log φ(largest)) in every case.
     */
    private static void raiseToColumnMaxima(float[] u, int rows, int m, boolean exponential, float[] shift, float[] raised, float[] largest, float[] argument) {
        Arrays.fill(largest, Float.NEGATIVE_INFINITY);
        FeatureKernels.columnMax(u, rows, m, largest);
        raiseTo(largest, m, exponential, shift, raised, argument);
    }

    /** {@link #raiseToColumnMaxima} from the column maxima {@code largest}. */
    private static void raiseTo(float[] largest, int m, boolean exponential, float[] shift, float[] raised, float[] argument) {
        for (int f = 0; f < m; f++) {
            float x = largest[f];
            if (x < argument[f]) {   // strictly: at x = argument, log φ(x) = +0 with shift −0 would make Math.max +0
                raised[f] = shift[f];
                continue;
            }
            raised[f] = Math.max(shift[f], FeatureKernels.logFeature(x, exponential));
            if (raised[f] == raised[f]) argument[f] = x;   // log φ(x) ≤ raised, the shift from now on (not after a NaN)
        }
    }

    /**
     * Moves S and z ({@code sums}) from shift {@code shift} to the (not smaller) shift
     * {@code raised}, then shift = raised. A feature whose shift was −∞ has folded nothing yet.
     */
    private static void rescaleState(Tensor stateZ, float[] sums, float[] shift, float[] raised, float[] rowScratch) {
        MemorySegment st = stateZ.segment();
        int cols = (int) stateZ.size(1);
        for (int f = 0; f < shift.length; f++) {
            if (Float.compare(shift[f], raised[f]) == 0) continue;   // also −∞ = −∞
            float factor = shift[f] == Float.NEGATIVE_INFINITY ? 0f : (float) Math.exp((double) shift[f] - raised[f]);
            long row = (stateZ.offset() + (long) f * stateZ.stride(0)) * Float.BYTES;
            MemorySegment.copy(st, FLOAT, row, rowScratch, 0, cols);   // S rows are contiguous
            for (int c = 0; c < cols; c++) rowScratch[c] *= factor;
            MemorySegment.copy(rowScratch, 0, st, FLOAT, row, cols);
            sums[f] *= factor;
            shift[f] = raised[f];
        }
    }

    /** out[r][c] = nd[r][c]·(1/den[r]) for c < Dv (the last column of nd is unused), den[r] = {@code denominators[r]}. */
    private static void divideRows(Tensor nd, float[] denominators, float[] heap, Tensor out) {
        int rows = (int) nd.size(0), cols = (int) nd.size(1), dv = cols - 1;
        toArray(nd, rows * cols, heap);
        MemorySegment o = out.segment();
        for (int r = 0; r < rows; r++) {
            int at = r * cols;
            float inv = 1f / denominators[r];
            for (int c = 0; c < dv; c++) heap[at + c] *= inv;
            long row = out.offset() + r * out.stride(0);
            if (out.stride(1) == 1) {
                MemorySegment.copy(heap, at, o, FLOAT, row * Float.BYTES, dv);
            } else {
                for (int c = 0; c < dv; c++) o.setAtIndex(FLOAT, row + c * out.stride(1), heap[at + c]);
            }
        }
    }

    /**
     * One causal head: the chunked prefix sums described in the class comment. Per chunk three
     * products with Dv columns, W·S, tril(W·Fᵀ)·V and Fᵀ·V (into S), and tril(W·Fᵀ) itself; the
     * denominators are W·z (z before the chunk, from the heap rows of W) plus the row sums of
     * tril(W·Fᵀ), then the chunk's feature sums are added to z.
     */
    private static void causalHead(Backend backend, FeatureMap phi, ForwardScratch w, Tensor qh, Tensor kh, Tensor vh, Tensor oh) {
        boolean exponential = phi.exponential();
        int m = w.shift.length, dv = w.dv, qLen = (int) qh.size(0);
        float[] shift = w.shift, raised = w.raised, z = w.keySums;
        w.state.fill(0f);
        Arrays.fill(z, 0f);
        Arrays.fill(shift, Float.NEGATIVE_INFINITY);
        Arrays.fill(w.shiftArgument, Float.NEGATIVE_INFINITY);
        if (w.limitsExponential != exponential) {   // back to the limit of a NaN shift, NaN for either map
            Arrays.fill(w.limit, Float.NaN);
            Arrays.fill(w.limitShift, Float.NaN);
            w.limitsExponential = exponential;
        }
        for (int c0 = 0; c0 < qLen; ) {
            int rows = Math.min(CAUSAL_CHUNK, qLen - c0);
            Tensor u = w.keyU.slice(0, 0, rows);
            phi.preActivations(backend, kh.slice(0, c0, c0 + rows), u, w.keyRows);
            // The chunk's shift: the keys before it and its first key, nothing later.
            raiseToColumnMaxima(w.keyRows, 1, m, exponential, shift, raised, w.largest, w.shiftArgument);
            rows = fittingRows(w, rows, m, exponential, raised, vh, c0);
            rescaleState(w.state, z, shift, raised, w.outRow);
            Tensor wq = w.queryW.slice(0, 0, rows), nd = w.numDen.slice(0, 0, rows), num = nd.slice(1, 0, dv);
            phi.queryPreActivations(backend, qh.slice(0, c0, c0 + rows), w.queryU.slice(0, 0, rows), w.queryRows);
            FeatureKernels.queryWeights(w.queryRows, rows, m, exponential, shift, w.weights, w.rowShifts);
            fromArray(w.weights, rows * m, wq);
            FeatureKernels.rowDots(w.weights, rows, m, z, w.denominators);   // z of the keys before the chunk
            Tensor f = w.keyF.slice(0, 0, rows), vc = vh.slice(0, c0, c0 + rows);
            FeatureKernels.keyFeatures(w.keyRows, rows, m, exponential, shift, z, f.segment(), f.offset());   // then the chunk's keys join z
            backend.gemm(wq, false, w.state, false, num, 1f, 0f);
            // Inside the chunk: tril(W_c F_cᵀ) V_c, then fold the chunk into the state.
            Tensor sc = w.scores.slice(0, 0, rows).slice(1, 0, rows);
            w.keyF.slice(0, rows, CAUSAL_COLUMNS).fill(0f);   // the padding rows (the bidirectional pass shares keyF)
            backend.gemm(wq, false, w.keyF.slice(0, 0, CAUSAL_COLUMNS), true, w.scores.slice(0, 0, rows), 1f, 0f);
            keepLowerTriangle(sc, w.square, w.denominators);
            backend.gemm(sc, false, vc, false, num, 1f, 1f);
            backend.gemm(f, true, vc, false, w.state, 1f, 1f);
            // Keep stored features ≤ 1: σ rises to the chunk's largest key (all ≤ the next rows).
            raiseToColumnMaxima(w.keyRows, rows, m, exponential, shift, raised, w.largest, w.shiftArgument);
            rescaleState(w.state, z, shift, raised, w.outRow);
            divideRows(nd, w.denominators, w.outRow, oh.slice(0, c0, c0 + rows));
            c0 += rows;
        }
    }

    /**
     * Zeroes the square {@code sc} above its diagonal and adds each row's remaining entries, in
     * column order, to {@code rowSums} (on a heap copy: the square is at most
     * {@link #CAUSAL_CHUNK}² floats). Four rows at a time: each row's sum is one chain of dependent
     * additions, and one row after the other they were 5 % of the causal pass; interleaved, the
     * chains overlap and every row keeps its order.
     */
    private static void keepLowerTriangle(Tensor sc, float[] heap, float[] rowSums) {
        int n = (int) sc.size(0);
        MemorySegment seg = sc.segment();
        for (int i = 0; i < n; i++) {
            long row = (sc.offset() + i * sc.stride(0)) * Float.BYTES;
            MemorySegment.copy(seg, FLOAT, row, heap, i * n, i + 1);
            seg.asSlice(row + (i + 1L) * Float.BYTES, (long) (n - i - 1) * Float.BYTES).fill((byte) 0);
        }
        int i = 0;
        for (; i + 4 <= n; i += 4) {
            int r0 = i * n, r1 = r0 + n, r2 = r1 + n, r3 = r2 + n;
            float s0 = 0f, s1 = 0f, s2 = 0f, s3 = 0f;
            for (int j = 0; j <= i; j++) {   // the columns every row of the four has
                s0 += heap[r0 + j];
                s1 += heap[r1 + j];
                s2 += heap[r2 + j];
                s3 += heap[r3 + j];
            }
            s1 += heap[r1 + i + 1];
            s2 += heap[r2 + i + 1];
            s3 += heap[r3 + i + 1];
            s2 += heap[r2 + i + 2];
            s3 += heap[r3 + i + 2];
            s3 += heap[r3 + i + 3];
            rowSums[i] += s0;
            rowSums[i + 1] += s1;
            rowSums[i + 2] += s2;
            rowSums[i + 3] += s3;
        }
        for (; i < n; i++) {
            float sum = 0f;
            for (int j = 0, r = i * n; j <= i; j++) sum += heap[r + j];
            rowSums[i] += sum;
        }
    }

    /**
     * How many leading rows of the tentative chunk may share its shift: row 0 always; a later row
     * only while its log-features are within {@link #MARGIN} of the shift and its value row is
     * finite ({@link FeatureKernels#fittingRows}, on heap rows).
     */
    private static int fittingRows(ForwardScratch w, int rows, int m, boolean exponential, float[] shift, Tensor v, int first) {
        for (int f = 0; f < m; f++) {
            if (Float.compare(w.limitShift[f], shift[f]) == 0) continue;   // a function of the shift alone: unchanged
            w.limitShift[f] = shift[f];
            // log φ(u) > shift + MARGIN ⇔ u > bound (log φ is increasing), compared in float: u > the
            // largest float ≤ bound is u > bound exactly, for every float u.
            double bound = shift[f] + MARGIN;
            bound = exponential || bound <= 0 ? bound : Math.expm1(bound);
            float limit = (float) bound;
            if (limit > bound) limit = Math.nextDown(limit);
            w.limit[f] = limit;
        }
        int dv = (int) v.size(1);
        FeatureKernels.copyRows(v.slice(0, first, first + rows), rows, dv, w.valueRows);
        return FeatureKernels.fittingRows(w.keyRows, rows, m, w.limit, w.valueRows, dv);
    }

    /**
     * The gradients of {@link #forward} for {@code dOut = ∂L/∂out}, recomputing the forward's
     * features and state. With a = g/den' and b = (g·out)/den' per query row (g = dOut, den' the
     * scaled denominator), and W, F the scaled query and key features of the forward:
     * {@code ∂L/∂W = a·S'ᵀ − b·z'ᵀ} (plus, when causal, the in-chunk term tril(a·Vᵀ − b)·F),
     * {@code ∂L/∂F_j = V_j·dSᵀ + dz} with {@code dS = Σ_i W_iᵀ a_i}, {@code dz = −Σ_i b_i W_i} over the
     * queries that attend key j, {@code ∂L/∂v_j = dSᵀ F_j}; the shifts cancel exactly as in the
     * forward, and ∂W/∂u = W·(log φ)'(u) (the same for F) takes the features back to the
     * pre-activations, then {@link FeatureMap#preActivationsBackward} to q and k.
     *
     * <p>Bidirectional: per key/value head, one pass builds the state, one pass over each query
     * head's rows gives dq and sums dS, dz, one pass over the keys gives dk, dv. Causal: the same
     * chunks for every query head sharing the key/value head (cut like the forward's, and also
     * before a key whose pre-activations are NaN); a pass forward through the chunks gives dq (each
     * row from the state before its chunk and the keys of its chunk up to itself, nothing later), a
     * pass backward through them gives dk and dv, carrying dS and dz from later chunks down to each
     * chunk's shift (factors e^(σ_c − σ_later) ≤ 1). Every product is a {@link Backend#gemm} and
     * every sum has one order, so the gradients are bit-identical for any thread count.
     * Memory: O(chunk² + chunk·m + m·Dv + qLen) per thread, one shift vector of m doubles per causal
     * chunk of the pairs in flight.
     */
    static void backward(Backend backend, FeatureMap phi, boolean causal, Tensor q, Tensor k, Tensor v, Tensor dOut, Tensor dq, Tensor dk, Tensor dv) {
        AttentionShape s = Checks.backward(q, "k", k, "v", v, dOut, dq, dk, dv);
        if (causal && s.qLen() != s.kvLen()) {
            throw new IllegalArgumentException("causal linear attention needs qLen == kvLen, got qLen=" + s.qLen() + ", kvLen=" + s.kvLen());
        }
        int m = phi.features(s.headDim()), valueDim = s.valueDim();
        Checks.intProduct("the feature state m·valueDim", m, valueDim);
        Checks.intProduct("a chunk's features " + CHUNK + "·m", CHUNK, m);
        // (batch, key/value head) pairs in parallel, each on one thread with a scratch of its thread's
        // (a pair writes only its own dk, dv and its query heads' dq), as the forward runs its heads.
        // Before, the pairs ran one after the other with every chunk-sized product split over both
        // threads. Measured on the Intel Xeon (B = 1, H = 8, n = 4096, D = 64, two threads, one JVM
        // each): Performer (m = 256) 455 → 135 ms, causal 819 → 226 ms; linear attention 301 → 63 ms,
        // causal 636 → 120 ms.
        int items = s.batch() * s.kvHeads();
        Backend each = items > 1 ? backend.withThreads(1) : backend;
        try (Arena arena = Arena.ofShared()) {
            ThreadLocal<Scratch> scratch = ThreadLocal.withInitial(() -> new Scratch(arena, m, valueDim, s.qLen()));
            java.util.function.IntConsumer item = bh -> {
                int b = bh / s.kvHeads(), hk = bh % s.kvHeads();
                Scratch w = scratch.get();
                Tensor kh = k.select(0, b).select(0, hk), vh = v.select(0, b).select(0, hk);
                Tensor dkh = dk.select(0, b).select(0, hk), dvh = dv.select(0, b).select(0, hk);
                int firstHead = hk * s.queryHeadsPerKvHead(), lastHead = firstHead + s.queryHeadsPerKvHead();
                if (!causal) {
                    bidirectionalBackward(each, phi, w, q.select(0, b), kh, vh, dOut.select(0, b), dq.select(0, b), dkh, dvh, firstHead, lastHead);
                    return;
                }
                List<Chunk> chunks = causalChunks(each, phi, w, kh, vh);
                dkh.fill(0f);
                dvh.fill(0f);
                for (int h = firstHead; h < lastHead; h++) {
                    Tensor qh = q.select(0, b).select(0, h), gh = dOut.select(0, b).select(0, h);
                    causalQueryGradients(each, phi, w, chunks, qh, kh, vh, gh, dq.select(0, b).select(0, h));
                    causalKeyGradients(each, phi, w, chunks, qh, kh, vh, gh, dkh, dvh);
                }
            };
            if (items > 1) backend.forEachItem(items, item, q.segment(), k.segment(), v.segment(), dOut.segment(), dq.segment(), dk.segment(), dv.segment());
            else item.accept(0);
        }
    }

    /** Per-call buffers of the backward pass. */
    private static final class Scratch {
        final int m;
        final Tensor state, z, zColumn, dState, dz;
        final Tensor keyU, keyF, queryU, queryW, dFeatures, a, negB, num, den, scores, dScores, ones;
        final double[] sigma;
        final float[] rowDen, rowNegB;   // per query row of the current head: den' and −b

        Scratch(Arena arena, int m, int valueDim, int qLen) {
            this.m = m;
            state = Tensor.zeros(arena, m, valueDim);
            z = Tensor.zeros(arena, 1, m);
            zColumn = Tensor.zeros(arena, m, 1);
            dState = Tensor.zeros(arena, m, valueDim);
            dz = Tensor.zeros(arena, 1, m);
            keyU = Tensor.zeros(arena, CHUNK, m);
            keyF = Tensor.zeros(arena, CHUNK, m);
            queryU = Tensor.zeros(arena, CHUNK, m);
            queryW = Tensor.zeros(arena, CHUNK, m);
            dFeatures = Tensor.zeros(arena, CHUNK, m);
            a = Tensor.zeros(arena, CHUNK, valueDim);
            negB = Tensor.zeros(arena, CHUNK, 1);
            num = Tensor.zeros(arena, CHUNK, valueDim);
            den = Tensor.zeros(arena, CHUNK, 1);
            scores = Tensor.zeros(arena, CHUNK, CHUNK);
            dScores = Tensor.zeros(arena, CHUNK, CHUNK);
            ones = Tensor.zeros(arena, 1, CHUNK);
            ones.fill(1f);
            sigma = new double[m];
            rowDen = new float[qLen];
            rowNegB = new float[qLen];
        }

        Tensor onesRow(int rows) { return ones.slice(1, 0, rows); }

        Tensor onesColumn(int rows) { return ones.slice(1, 0, rows).transpose(0, 1); }
    }

    private static void bidirectionalBackward(Backend be, FeatureMap phi, Scratch w, Tensor qb, Tensor kh, Tensor vh, Tensor gb, Tensor dqb,
                                              Tensor dkh, Tensor dvh, int firstHead, int lastHead) {
        boolean exponential = phi.exponential();
        int kvLen = (int) kh.size(0), qLen = (int) qb.size(1);
        // The forward's state: σ over every key, then S' = Σ F_jᵀ v_j and z' = Σ F_j.
        Arrays.fill(w.sigma, Double.NEGATIVE_INFINITY);
        for (int c0 = 0; c0 < kvLen; c0 += CHUNK) {
            int rows = Math.min(CHUNK, kvLen - c0);
            Tensor u = w.keyU.slice(0, 0, rows);
            phi.preActivations(be, kh.slice(0, c0, c0 + rows), u);
            raiseToRowMaxima(u, rows, exponential, w.sigma);
        }
        w.state.fill(0f);
        w.z.fill(0f);
        for (int c0 = 0; c0 < kvLen; c0 += CHUNK) {
            int rows = Math.min(CHUNK, kvLen - c0);
            Tensor u = w.keyU.slice(0, 0, rows), f = w.keyF.slice(0, 0, rows);
            phi.preActivations(be, kh.slice(0, c0, c0 + rows), u);
            scaledKeyFeatures(u, rows, exponential, w.sigma, f);
            be.gemm(f, true, vh.slice(0, c0, c0 + rows), false, w.state, 1f, 1f);
            be.gemm(w.onesRow(rows), false, f, false, w.z, 1f, 1f);
        }
        w.zColumn.copyFrom(w.z.transpose(0, 1));
        // dq of every query head of the group; dS and dz summed over all of their rows.
        w.dState.fill(0f);
        w.dz.fill(0f);
        for (int h = firstHead; h < lastHead; h++) {
            Tensor qh = qb.select(0, h), gh = gb.select(0, h), dqh = dqb.select(0, h);
            for (int c0 = 0; c0 < qLen; c0 += CHUNK) {
                int rows = Math.min(CHUNK, qLen - c0);
                Tensor u = w.queryU.slice(0, 0, rows), wq = w.queryW.slice(0, 0, rows), n = w.num.slice(0, 0, rows), d = w.den.slice(0, 0, rows);
                Tensor a = w.a.slice(0, 0, rows), negB = w.negB.slice(0, 0, rows), dW = w.dFeatures.slice(0, 0, rows);
                Tensor qc = qh.slice(0, c0, c0 + rows);
                phi.preActivations(be, qc, u);
                queryWeights(w.queryU, rows, exponential, w.sigma, wq);
                be.gemm(wq, false, w.state, false, n, 1f, 0f);
                be.gemm(wq, false, w.zColumn, false, d, 1f, 0f);
                rowGradients(gh.slice(0, c0, c0 + rows), n, d, a, negB, w, c0);
                be.gemm(a, false, w.state, true, dW, 1f, 0f);
                be.gemm(negB, false, w.z, false, dW, 1f, 1f);
                toPreActivations(dW, wq, u, rows, exponential);
                phi.preActivationsBackward(be, qc, dW, dqh.slice(0, c0, c0 + rows), false);
                be.gemm(wq, true, a, false, w.dState, 1f, 1f);
                be.gemm(negB, true, wq, false, w.dz, 1f, 1f);
            }
        }
        // dk and dv: every key is attended by every query.
        for (int c0 = 0; c0 < kvLen; c0 += CHUNK) {
            int rows = Math.min(CHUNK, kvLen - c0);
            Tensor u = w.keyU.slice(0, 0, rows), f = w.keyF.slice(0, 0, rows), dF = w.dFeatures.slice(0, 0, rows);
            Tensor kc = kh.slice(0, c0, c0 + rows), vc = vh.slice(0, c0, c0 + rows);
            phi.preActivations(be, kc, u);
            scaledKeyFeatures(u, rows, exponential, w.sigma, f);
            be.gemm(vc, false, w.dState, true, dF, 1f, 0f);
            be.gemm(w.onesColumn(rows), false, w.dz, false, dF, 1f, 1f);
            be.gemm(f, false, w.dState, false, dvh.slice(0, c0, c0 + rows), 1f, 0f);
            toPreActivations(dF, f, u, rows, exponential);
            phi.preActivationsBackward(be, kc, dF, dkh.slice(0, c0, c0 + rows), false);
        }
    }

    /** One causal chunk: its rows and the shift σ its key and query features use. */
    private record Chunk(int start, int rows, double[] shift) {}

    /**
     * The causal chunks of one key/value head (they depend on its keys and values only): a chunk's
     * shift is the largest log-feature of the keys before it and its first key; it ends as
     * {@link #fittingRows} says.
     */
    private static List<Chunk> causalChunks(Backend be, FeatureMap phi, Scratch w, Tensor kh, Tensor vh) {
        boolean exponential = phi.exponential();
        int n = (int) kh.size(0);
        List<Chunk> chunks = new ArrayList<>();
        Arrays.fill(w.sigma, Double.NEGATIVE_INFINITY);
        for (int c0 = 0; c0 < n; ) {
            int rows = Math.min(CHUNK, n - c0);
            Tensor u = w.keyU.slice(0, 0, rows);
            phi.preActivations(be, kh.slice(0, c0, c0 + rows), u);
            double[] shift = w.sigma.clone();
            raiseToRowMaxima(u, 1, exponential, shift);
            rows = fittingRows(u, rows, exponential, shift, vh, c0, true);
            chunks.add(new Chunk(c0, rows, shift));
            System.arraycopy(shift, 0, w.sigma, 0, w.m);
            raiseToRowMaxima(u, rows, exponential, w.sigma);
            c0 += rows;
        }
        return chunks;
    }

    /**
     * dq of one causal query head, forward through the chunks; also keeps each row's den' and −b
     * for {@link #causalKeyGradients}.
     */
    private static void causalQueryGradients(Backend be, FeatureMap phi, Scratch w, List<Chunk> chunks, Tensor qh, Tensor kh, Tensor vh, Tensor gh, Tensor dqh) {
        boolean exponential = phi.exponential();
        w.state.fill(0f);
        w.z.fill(0f);
        Arrays.fill(w.sigma, Double.NEGATIVE_INFINITY);
        for (Chunk chunk : chunks) {
            int c0 = chunk.start(), rows = chunk.rows();
            Tensor uk = w.keyU.slice(0, 0, rows), f = w.keyF.slice(0, 0, rows), vc = vh.slice(0, c0, c0 + rows);
            phi.preActivations(be, kh.slice(0, c0, c0 + rows), uk);
            rescaleState(w.state, w.z, w.sigma, chunk.shift());
            scaledKeyFeatures(uk, rows, exponential, w.sigma, f);
            Tensor uq = w.queryU.slice(0, 0, rows), wq = w.queryW.slice(0, 0, rows), qc = qh.slice(0, c0, c0 + rows);
            phi.preActivations(be, qc, uq);
            queryWeights(w.queryU, rows, exponential, w.sigma, wq);
            // The forward's numerator and denominator: the state before the chunk, then tril(W Fᵀ).
            Tensor n = w.num.slice(0, 0, rows), d = w.den.slice(0, 0, rows), p = square(w.scores, rows), dp = square(w.dScores, rows);
            w.zColumn.copyFrom(w.z.transpose(0, 1));
            be.gemm(wq, false, w.state, false, n, 1f, 0f);
            be.gemm(wq, false, w.zColumn, false, d, 1f, 0f);
            be.gemm(wq, false, f, true, p, 1f, 0f);
            keepLowerTriangle(p);
            be.gemm(p, false, vc, false, n, 1f, 1f);
            be.gemm(p, false, w.onesColumn(rows), false, d, 1f, 1f);
            Tensor a = w.a.slice(0, 0, rows), negB = w.negB.slice(0, 0, rows), dW = w.dFeatures.slice(0, 0, rows);
            rowGradients(gh.slice(0, c0, c0 + rows), n, d, a, negB, w, c0);
            inChunkScoreGradients(be, w, a, negB, vc, dp, rows);
            be.gemm(a, false, w.state, true, dW, 1f, 0f);
            be.gemm(negB, false, w.z, false, dW, 1f, 1f);
            be.gemm(dp, false, f, false, dW, 1f, 1f);
            toPreActivations(dW, wq, uq, rows, exponential);
            phi.preActivationsBackward(be, qc, dW, dqh.slice(0, c0, c0 + rows), false);
            // Fold the chunk into the state, at its shift.
            be.gemm(f, true, vc, false, w.state, 1f, 1f);
            be.gemm(w.onesRow(rows), false, f, false, w.z, 1f, 1f);
        }
    }

    /**
     * dk and dv of one causal query head, added to {@code dkh} and {@code dvh}: backward through
     * the chunks, dS and dz hold what the queries of later chunks send to the keys before them.
     */
    private static void causalKeyGradients(Backend be, FeatureMap phi, Scratch w, List<Chunk> chunks, Tensor qh, Tensor kh, Tensor vh, Tensor gh,
                                           Tensor dkh, Tensor dvh) {
        boolean exponential = phi.exponential();
        w.dState.fill(0f);
        w.dz.fill(0f);
        for (int c = chunks.size() - 1; c >= 0; c--) {
            Chunk chunk = chunks.get(c);
            int c0 = chunk.start(), rows = chunk.rows();
            if (c < chunks.size() - 1) shiftDown(w.dState, w.dz, chunks.get(c + 1).shift(), chunk.shift());
            Tensor uk = w.keyU.slice(0, 0, rows), f = w.keyF.slice(0, 0, rows), kc = kh.slice(0, c0, c0 + rows), vc = vh.slice(0, c0, c0 + rows);
            phi.preActivations(be, kc, uk);
            scaledKeyFeatures(uk, rows, exponential, chunk.shift(), f);
            Tensor uq = w.queryU.slice(0, 0, rows), wq = w.queryW.slice(0, 0, rows);
            phi.preActivations(be, qh.slice(0, c0, c0 + rows), uq);
            queryWeights(w.queryU, rows, exponential, chunk.shift(), wq);
            Tensor a = w.a.slice(0, 0, rows), negB = w.negB.slice(0, 0, rows), p = square(w.scores, rows), dp = square(w.dScores, rows);
            storedRowGradients(gh.slice(0, c0, c0 + rows), w, c0, a, negB);
            be.gemm(wq, false, f, true, p, 1f, 0f);
            keepLowerTriangle(p);
            inChunkScoreGradients(be, w, a, negB, vc, dp, rows);
            Tensor dF = w.dFeatures.slice(0, 0, rows), dvc = dvh.slice(0, c0, c0 + rows);
            be.gemm(dp, true, wq, false, dF, 1f, 0f);
            be.gemm(vc, false, w.dState, true, dF, 1f, 1f);
            be.gemm(w.onesColumn(rows), false, w.dz, false, dF, 1f, 1f);
            be.gemm(p, true, a, false, dvc, 1f, 1f);
            be.gemm(f, false, w.dState, false, dvc, 1f, 1f);
            toPreActivations(dF, f, uk, rows, exponential);
            phi.preActivationsBackward(be, kc, dF, dkh.slice(0, c0, c0 + rows), true);
            // This chunk's queries attend every earlier key.
            be.gemm(wq, true, a, false, w.dState, 1f, 1f);
            be.gemm(negB, true, wq, false, w.dz, 1f, 1f);
        }
    }

    private static Tensor square(Tensor t, int rows) { return t.slice(0, 0, rows).slice(1, 0, rows); }

    /** dP = tril(a·Vᵀ − b·1ᵀ): the gradient of the in-chunk scores W Fᵀ (zero above the diagonal). */
    private static void inChunkScoreGradients(Backend be, Scratch w, Tensor a, Tensor negB, Tensor vc, Tensor dp, int rows) {
        be.gemm(a, false, vc, true, dp, 1f, 0f);
        be.gemm(negB, false, w.onesRow(rows), false, dp, 1f, 1f);
        keepLowerTriangle(dp);
    }

    /**
     * Per query row, from the forward's num' and den' and the loss gradient g: a = g/den',
     * −b = −(g·out)/den' with out = num'/den' as the forward computes it; den' and −b are kept.
     */
    private static void rowGradients(Tensor g, Tensor num, Tensor den, Tensor a, Tensor negB, Scratch w, int first) {
        int rows = (int) num.size(0), dv = (int) num.size(1);
        MemorySegment gs = g.segment(), ns = num.segment(), ds = den.segment(), as = a.segment(), bs = negB.segment();
        for (int r = 0; r < rows; r++) {
            float d = ds.getAtIndex(FLOAT, den.offset() + r * den.stride(0)), inv = 1f / d;
            long gr = g.offset() + r * g.stride(0), nr = num.offset() + r * num.stride(0), ar = a.offset() + r * a.stride(0);
            double dot = 0;
            for (int c = 0; c < dv; c++) {
                float gc = gs.getAtIndex(FLOAT, gr + c);
                dot += (double) gc * (ns.getAtIndex(FLOAT, nr + c) * inv);
                as.setAtIndex(FLOAT, ar + c, gc * inv);
            }
            float negativeB = (float) (-dot * inv);
            bs.setAtIndex(FLOAT, negB.offset() + r * negB.stride(0), negativeB);
            w.rowDen[first + r] = d;
            w.rowNegB[first + r] = negativeB;
        }
    }

    /** a and −b of {@link #rowGradients} again, from the kept den' and −b. */
    private static void storedRowGradients(Tensor g, Scratch w, int first, Tensor a, Tensor negB) {
        int rows = (int) a.size(0), dv = (int) a.size(1);
        MemorySegment gs = g.segment(), as = a.segment(), bs = negB.segment();
        for (int r = 0; r < rows; r++) {
            float inv = 1f / w.rowDen[first + r];
            long gr = g.offset() + r * g.stride(0), ar = a.offset() + r * a.stride(0);
            for (int c = 0; c < dv; c++) as.setAtIndex(FLOAT, ar + c, gs.getAtIndex(FLOAT, gr + c) * inv);
            bs.setAtIndex(FLOAT, negB.offset() + r * negB.stride(0), w.rowNegB[first + r]);
        }
    }

    /**
     * grad ∘= features·(log φ)'(u), in place: from the gradient of scaled features to that of
     * their pre-activations ((log φ)' is 1 for e^u and for elu+1 at u ≤ 0, 1/(1+u) above).
     */
    private static void toPreActivations(Tensor grad, Tensor features, Tensor u, int rows, boolean exponential) {
        MemorySegment gs = grad.segment(), fs = features.segment(), us = u.segment();
        int m = (int) grad.size(1);
        for (int r = 0; r < rows; r++) {
            long g = grad.offset() + r * grad.stride(0), fr = features.offset() + r * features.stride(0), ur = u.offset() + r * u.stride(0);
            for (int f = 0; f < m; f++) {
                float x = us.getAtIndex(FLOAT, ur + f), weight = fs.getAtIndex(FLOAT, fr + f);
                if (!exponential && x > 0) weight /= 1f + x;
                gs.setAtIndex(FLOAT, g + f, gs.getAtIndex(FLOAT, g + f) * weight);
            }
        }
    }

    /** Moves dS and dz from a later chunk's shift {@code from} to an earlier chunk's (not larger) shift {@code to}. */
    private static void shiftDown(Tensor dState, Tensor dz, double[] from, double[] to) {
        MemorySegment st = dState.segment(), zs = dz.segment();
        int dv = (int) dState.size(1);
        for (int f = 0; f < from.length; f++) {
            if (Double.compare(from[f], to[f]) == 0) continue;
            float factor = to[f] == Double.NEGATIVE_INFINITY ? 0f : (float) Math.exp(to[f] - from[f]);
            long row = dState.offset() + (long) f * dState.stride(0);
            for (int c = 0; c < dv; c++) st.setAtIndex(FLOAT, row + c, st.getAtIndex(FLOAT, row + c) * factor);
            long zf = dz.offset() + f;
            zs.setAtIndex(FLOAT, zf, zs.getAtIndex(FLOAT, zf) * factor);
        }
    }

    /** log φ(u): u for exponential maps, log(elu(u) + 1) otherwise. */
    private static double logFeature(float u, boolean exponential) {
        return exponential || u <= 0 ? u : Math.log1p(u);
    }

    /**
     * φ(u)·e^(−shift), without forming e^(−shift) alone where it could overflow, and without a
     * branch on the sign of u (it mispredicts half the time): for elu + 1,
     * e^(min(u,0) − shift)·(1 + max(u,0)) is e^(u − shift) at u ≤ 0 and (1 + u)·e^(−shift) above,
     * where shift ≥ log(1 + u) − {@link #MARGIN} keeps e^(−shift) ≤ e^MARGIN. NaN stays NaN.
     */
    private static float scaledFeature(float u, double shift, boolean exponential) {
        if (exponential) return exp(u - shift);
        return exp(Math.min(u, 0f) - shift) * (1f + Math.max(u, 0f));
    }

    private static final double LOG2E = 1.4426950408889634;
    /** Cephes' exp2f minimax coefficients: 2^f = 1 + f·P(f) on |f| ≤ ½ (relative error ~1e-7). */
    private static final float EXP2_P0 = 1.535336188319500e-4f, EXP2_P1 = 1.339887440266574e-3f, EXP2_P2 = 9.618437357674640e-3f;
    private static final float EXP2_P3 = 5.550332471162809e-2f, EXP2_P4 = 2.402264791363012e-1f, EXP2_P5 = 6.931472028550421e-1f;

    /**
     * e^x rounded to float, three times cheaper than {@code (float) Math.exp(x)} (it is most of the
     * feature maps' time): t = x·log₂e = k + f in double (k = rint(t), so the reduction is exact to
     * float precision), 2^f by the polynomial in float with fused multiply-adds, 2^k put into the
     * exponent field. About 1 ulp of float; results below the normal range (e^x < 2^−126) are
     * flushed to 0, above it overflow to +∞, NaN stays NaN. Every operation is exact IEEE
     * arithmetic (fma, rint, casts), so the bits are the same in every JIT tier.
     */
    static float exp(double x) {
        double t = x * LOG2E;
        if (t < -126) return 0f;                       // also −∞
        if (t >= 128) return Float.POSITIVE_INFINITY;
        double k = Math.rint(t);                       // NaN stays NaN, and so does f
        float f = (float) (t - k);
        float p = Math.fma(Math.fma(Math.fma(Math.fma(Math.fma(Math.fma(f, EXP2_P0, EXP2_P1), f, EXP2_P2), f, EXP2_P3), f, EXP2_P4), f, EXP2_P5), f, 1f);
        int e = (int) k;                               // −126 … 128
        return e > 127 ? p * 0x1p127f * 2f : p * Float.intBitsToFloat((e + 127) << 23);
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
     * already NaN: every later row then attends a NaN key) and its value row is finite; with
     * {@code cutBeforeNaNKeys} (the backward pass, whose in-chunk products multiply masked zeros by
     * later key features too) also only while its pre-activations are not NaN.
     */
    private static int fittingRows(Tensor u, int rows, boolean exponential, double[] shift, Tensor v, int first, boolean cutBeforeNaNKeys) {
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
                float x = seg.getAtIndex(FLOAT, o + f);
                if (x > limit[f] || (cutBeforeNaNKeys && x != x)) return r;
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
