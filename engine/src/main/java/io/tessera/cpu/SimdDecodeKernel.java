package io.tessera.cpu;

import static io.tessera.cpu.ScalarDecodeKernel.CHUNK;
import static io.tessera.cpu.ScalarDecodeKernel.PARTIALS;

import io.tessera.tensor.ElementType;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

/**
 * The decode kernel on the Vector API: few query rows against a long paged cache.
 *
 * <p>The rows of an item are the G query heads that share a key/value head times the qLen
 * queries, so each K/V row is read from the pool once for all of them. The keys are walked in
 * chunks of {@link ScalarDecodeKernel#CHUNK} ({@link DecodeCall.Chunks}: across page boundaries, so
 * pages of 16 tokens share one softmax step and one pass over the output), a block of up to
 * {@link #STAGE_BYTES} of chunks at a time: first a pass that only reads the block's K and V pool
 * rows (dense 8-byte loads, {@link #READ}: a pure read streams from memory at close to a plain read's
 * rate and leaves the rows in L1 and L2), then the arithmetic, which reads float32 and bfloat16 rows where they
 * lie in the pool (bfloat16 widened in registers). Measured on Zen 5 (decode step, 32k tokens,
 * D = 128, one thread): vector loads straight from DRAM inside the arithmetic stalled on memory at
 * 8–12 GB/s; copying each chunk into float scratch (the previous design) cost more than the
 * arithmetic, as a copy reads and writes. The read pass and the arithmetic do not overlap (Java has
 * no prefetch instruction), and a core reads at most about 13 GB/s on the Intel Xeon measured later
 * (any number of streams, 8- or 64-byte loads), so a step costs the read plus the arithmetic. Tried
 * there and slower: the next chunk's lines loaded among the P·V loop's FMAs, every line (two threads,
 * F32 16.8 → 20.1 ms) or every 8th to 32nd so that the L2 streamer would fetch the rest (20.2–24.6 ms):
 * a load that misses holds up retirement, and the streamer does not run ahead of sparse touches;
 * touching the first lines of each 4 KB page of the next block after the read pass changed nothing.
 * Other caches (float16, or widths that are not whole lane
 * blocks) are staged, widened and zero-padded, into float scratch rows a block at a time, keys
 * then values.
 *
 * <p>Scores: the head dimension in lanes, no transposition of keys. A block of 4 rows × 4 keys keeps
 * one accumulator vector per (row, key) for each L-lane part of the 16 interleaved partial sums of
 * the scalar twin's {@link ScalarDecodeKernel#dot} (dimension x into partial x mod 16), so each key
 * vector is loaded (and widened) once per quad of rows, front to back. The partials are folded in
 * the twin's halving-tree order by a
 * transposing reduction across L keys (blend, lane swap, add: log2 L steps), which leaves the L
 * keys' scores in the lanes of one vector: no horizontal add, the same bits at any vector width.
 *
 * <p>The softmax step is the fused kernel's base-2 one (same 2^x polynomial and constants, from the
 * scalar twin) per row over key lanes; its sum is kept in 16 interleaved partials. Values: blocks of
 * 4 rows × 4L output dimensions in registers, each value vector loaded once for the 4 rows, in key
 * order; a zero probability is skipped per row, as in the twin. Every float is the one
 * {@link ScalarDecodeKernel} computes.
 *
 * <p>No method here takes or returns a vector, and the bfloat16 widening (L shorts sign-extended to
 * ints, the sign bits shifted out again by the shift left by 16: exact) is written out at each of its
 * four loads. C2 inlines a call only when its heuristics agree at that compilation (the callee not
 * already compiled standalone into more than {@code InlineSmallCode} bytes, the call site hot in the
 * profile), and a vector that crosses a call that was not inlined is boxed on every call, for as
 * long as that compiled code lives. A 52-byte load helper did that in one JVM out of five: every
 * decode step allocated 0.4–31 MB for the whole 90 s of {@code DecodeAllocationTest};
 * {@code -XX:InlineSmallCode=100} reproduces it every time, and that test now also runs with it.
 */
final class SimdDecodeKernel {
    private SimdDecodeKernel() {}

    private static final VectorSpecies<Float> F = VectorConfig.FLOATS;
    private static final int L = F.length();
    /** Vectors per 16 interleaved partial sums of a dot product. */
    private static final int PARTS = PARTIALS / Math.min(L, PARTIALS);
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;
    /** L bfloat16 lanes: half the float species' bits. */
    private static final VectorSpecies<Short> SHORTS = VectorSpecies.of(short.class, VectorShape.forBitSize(F.vectorBitSize() / 2));
    private static final VectorSpecies<Integer> INTS = VectorConfig.INTS;
    private static final ByteOrder NATIVE = ByteOrder.nativeOrder();
    private static final float NEG_INF = Float.NEGATIVE_INFINITY;
    /**
     * Bytes of keys and values staged at a time: one chunk of D = 128 in float32 (64 keys, 32 KB of
     * keys and 32 KB of values), so the scores find the chunk's keys in L1 and the values find theirs
     * in L1 or L2. Staged 512 keys at a time (512 KB, in L2), the arithmetic read 1 KB from L2 per key
     * and KV head for 64 FMAs and waited on the L2: measured on an Intel Xeon (AVX-512, 48 KB L1,
     * 2 MB L2; DecodeProbe, 32k tokens, alternating runs) the F32 step took 15.8–16.0 ms on two
     * threads and 31.4–31.8 ms on one with 512 KB, 13.8–14.6 and 27.4–28.2 with one chunk (BF16,
     * half the bytes: 10.2–10.8 and 10.2–10.5 ms, unchanged). The read pass still streams: the
     * next chunk's lines follow the last one's.
     */
    static final long STAGE_BYTES = 64 * 1024;
    /** At most a split's keys ({@link DecodeCall#SPLIT_KEYS}) are staged at a time. */
    static final int STAGE_CHUNKS = DecodeCall.SPLIT_KEYS / CHUNK;

    static {
        // The interleaved partial sums are whole vectors, and a chunk a whole number of lane groups.
        if (PARTIALS % L != 0 || CHUNK % L != 0 || L < 4) throw new IllegalStateException(F + ": the decode kernel needs 4 to 16 lanes");
    }

    // The transposing reduction: at step st (segment s = L >> st, half h = s / 2), a and b give
    // a.blend(b, HIGH[st]) + b.blend(a, HIGH[st]).rearrange(SWAP[st]): lane i < h of each segment
    // holds a[i] + a[i + h] (a's key), lane i ≥ h holds b[i] + b[i − h] (b's key). NATURAL puts the
    // keys, which end up in a permuted lane order, back in order.
    private static final VectorMask<Float>[] HIGH;
    private static final VectorShuffle<Float>[] SWAP;
    private static final VectorShuffle<Float> NATURAL;
    /**
     * The steps as constants (C2 keeps a static final mask or shuffle in a register; one read from an
     * array it rebuilds each time). Steps 2 and 3 exist at L = 16 only (null otherwise).
     */
    private static final VectorMask<Float> HIGH0, HIGH1, HIGH2, HIGH3;
    private static final VectorShuffle<Float> SWAP0, SWAP1, SWAP2, SWAP3;

    static {
        int steps = Integer.numberOfTrailingZeros(L);
        @SuppressWarnings("unchecked") VectorMask<Float>[] high = new VectorMask[steps];
        @SuppressWarnings("unchecked") VectorShuffle<Float>[] swap = new VectorShuffle[steps];
        int[][] keyOf = new int[L][L];   // keyOf[vector][lane]
        for (int i = 0; i < L; i++) Arrays.fill(keyOf[i], i);
        for (int st = 0, count = L; count > 1; st++, count >>= 1) {
            int seg = L >> st, h = seg / 2, half = count / 2;
            boolean[] m = new boolean[L];
            int[] sw = new int[L];
            for (int lane = 0; lane < L; lane++) {
                m[lane] = lane % seg >= h;
                sw[lane] = lane ^ h;
            }
            high[st] = VectorMask.fromArray(F, m, 0);
            swap[st] = VectorShuffle.fromArray(F, sw, 0);
            for (int i = 0; i < half; i++) {
                for (int lane = 0; lane < L; lane++) keyOf[i][lane] = m[lane] ? keyOf[i + half][lane] : keyOf[i][lane];
            }
        }
        int[] natural = new int[L];
        for (int lane = 0; lane < L; lane++) natural[keyOf[0][lane]] = lane;
        HIGH = high;
        SWAP = swap;
        NATURAL = VectorShuffle.fromArray(F, natural, 0);
        HIGH0 = high[0]; HIGH1 = high[1]; SWAP0 = swap[0]; SWAP1 = swap[1];
        HIGH2 = steps == 4 ? high[2] : null; HIGH3 = steps == 4 ? high[3] : null;
        SWAP2 = steps == 4 ? swap[2] : null; SWAP3 = steps == 4 ? swap[3] : null;
    }

    static final class Scratch {
        float[] qRows = new float[0];   // [batch·kvHeads][rows rounded up to 4][dPad]  queries · scale · log2(e), zeros past d and past the rows
        /**
         * Per (sequence, key/value head): the id of the call whose query rows qRows holds for it. A
         * call's items are its splits × heads, so without this every split reloaded (and converted)
         * the same rows: 64 times per head in a 32k-token step (≈ 4 % of the JFR samples of its read pass).
         */
        long[] qLoadedFor = new long[0];
        /** Where this item's query rows start in qRows. */
        int qBase;
        /** Where qRows' blocks and p's rows start: their first cache line (see {@link LineAlignedArrays}). */
        int qRowsBase, pBase;
        MemorySegment qRowsBytes;   // qRows, for LineAlignedArrays (set where qRows is allocated)
        /** The call qRowsBase was asked for: every block of qRows is loaded anew for a new call. */
        long qRowsCall;
        MemorySegment pBytes;   // p, for LineAlignedArrays (set where p is allocated)
        float[] kRows = new float[0];   // [block·CHUNK][dPad]           the staged chunks' keys, widened, zeros past d
        float[] vRows = new float[0];   // [block·CHUNK][vPad]           the staged chunks' values, widened, zeros past dv
        /** Chunks staged at a time: as many as fit {@link #STAGE_BYTES}, at least one. */
        int block = 1;
        /** The read pass's loads summed: kept, so the JIT cannot drop them. */
        long sink;
        /**
         * The scores loop's stride, {@link ScalarDecodeKernel#PARTIALS}, read from a field. With a
         * constant stride C2 compiles that loop (8 trips at D = 128, entered once per 4 rows × 4
         * keys) as a counted loop: pre-, main and post-loop plus range-check elimination for the
         * long segment offsets, whose set-up (≈ 150 instructions per entry) cost more than the
         * loop's 16 fmas per trip. A stride C2 cannot see as a constant leaves one plain loop that
         * keeps its per-load bounds checks. Measured on Zen 5 (scores of 512 L2-resident keys, one
         * thread, same JVM): 10.4 → 9.0 ns per key and key/value head.
         */
        int partialStep = PARTIALS;
        float[] dots = new float[4 * L * PARTIALS];   // [4 rows][L keys][16 partials]
        float[] red = new float[L * L];               // the transposing reduction's vectors
        float[] p = new float[0];       // [rows rounded up to 4][CHUNK]  scores, then probabilities (0 in padded rows)
        float[] o = new float[0], m = new float[0], l = new float[0], alpha = new float[0];
        final float[] partial = new float[PARTIALS];
        long[] bits = new long[0];
        /** Byte offsets of the chunk's key rows in the key source (keys past n: key n − 1); values likewise. */
        final long[] kAt = new long[CHUNK], vAt = new long[CHUNK];
        /** kRows and vRows as segments: the source of the staged keys and values. */
        MemorySegment kSeg = MemorySegment.ofArray(kRows), vSeg = MemorySegment.ofArray(vRows);
        final DecodeCall.Chunks chunks = new DecodeCall.Chunks();

        void ensure(int rows, int d, int dv, int queryBlocks) {
            int quadRows = (rows + 3) / 4 * 4, dPad = ScalarDecodeKernel.paddedDim(d), vPad = valuePad(dv);
            long qFloats = (long) queryBlocks * quadRows * dPad;
            if (qFloats > Integer.MAX_VALUE - 8) throw new IllegalArgumentException("decode call too large: " + queryBlocks + " sequence × key/value heads of " + quadRows + " × " + dPad + " query floats");
            // qRows and p are read in full vectors: used from their first cache line on (see
            // LineAlignedArrays). qRows keeps converted queries across a call's items (qLoadedFor),
            // so its start is asked once per call (item); p is refilled by every item.
            int slack = LineAlignedArrays.SLACK_FLOATS;
            if (qRows.length < qFloats + slack) {
                qRowsBytes = MemorySegment.ofArray(qRows = new float[(int) qFloats + slack]);
                Arrays.fill(qLoadedFor, 0L);   // no call has id 0: nothing is loaded in the new array
            }
            if (qLoadedFor.length < queryBlocks) qLoadedFor = new long[queryBlocks];
            block = (int) Math.max(1, Math.min(STAGE_CHUNKS, STAGE_BYTES / ((long) CHUNK * (dPad + vPad) * Float.BYTES)));
            if (kRows.length < block * CHUNK * dPad) kSeg = MemorySegment.ofArray(kRows = new float[block * CHUNK * dPad]);
            if (vRows.length < block * CHUNK * vPad) vSeg = MemorySegment.ofArray(vRows = new float[block * CHUNK * vPad]);
            if (p.length < quadRows * CHUNK + slack) pBytes = MemorySegment.ofArray(p = new float[quadRows * CHUNK + slack]);
            pBase = LineAlignedArrays.floatsToLine(pBytes);
            if (o.length < quadRows * vPad) o = new float[quadRows * vPad];
            if (m.length < quadRows) { m = new float[quadRows]; l = new float[quadRows]; alpha = new float[quadRows]; bits = new long[quadRows]; }
        }
    }

    /** Value dimensions padded to whole blocks of 2 vectors (the padding is zeros and never stored). */
    private static int valuePad(int dv) { return (dv + 2 * L - 1) / (2 * L) * (2 * L); }

    private static final ThreadLocal<Scratch> SCRATCH = ThreadLocal.withInitial(Scratch::new);

    static void item(DecodeCall c, int item) {
        int run = item / c.kvHeads, hk = item % c.kvHeads, b = c.runSeq[run];
        int rows = c.rows, d = c.d, dv = c.dv, qLen = c.qLen;
        int quadRows = (rows + 3) / 4 * 4;
        int dPad = ScalarDecodeKernel.paddedDim(d), vPad = valuePad(dv);
        Scratch s = SCRATCH.get();
        s.ensure(rows, d, dv, c.batch * c.kvHeads);
        if (s.qRowsCall != c.id) {
            s.qRowsCall = c.id;
            int base = LineAlignedArrays.floatsToLine(s.qRowsBytes);
            if (base != s.qRowsBase) {   // rows loaded at the old start (another call's, on this thread) are not where they are looked for
                Arrays.fill(s.qLoadedFor, 0L);
                s.qRowsBase = base;
            }
        }
        int qBlock = b * c.kvHeads + hk, qBase = s.qBase = s.qRowsBase + qBlock * quadRows * dPad;
        if (s.qLoadedFor[qBlock] != c.id) {
            float qScale = c.scale * ScalarAttentionKernel.LOG2E;
            Arrays.fill(s.qRows, qBase, qBase + quadRows * dPad, 0f);
            for (int r = 0; r < rows; r++) {
                long row = c.queryRow(b, hk, r);
                for (int x = 0; x < d; x++) s.qRows[qBase + r * dPad + x] = c.qType.get(c.q, row + x) * qScale;
            }
            s.qLoadedFor[qBlock] = c.id;
        }
        Arrays.fill(s.m, 0, quadRows, NEG_INF);
        Arrays.fill(s.l, 0, quadRows, 0f);
        Arrays.fill(s.alpha, 0, quadRows, 1f);
        Arrays.fill(s.o, 0, quadRows * vPad, 0f);
        Arrays.fill(s.p, s.pBase + rows * CHUNK, s.pBase + quadRows * CHUNK, 0f);   // padded rows never attend
        DecodeCall.Chunks chunks = s.chunks;
        chunks.start(c, run);
        // Float32 and bfloat16 rows whose widths are whole lane blocks are read where they lie in the pool;
        // other caches are staged, widened, into float scratch rows (kSeg, vSeg).
        boolean direct = readsInPlace(c);
        MemorySegment kSrc = direct ? c.k : s.kSeg, vSrc = direct ? c.v : s.vSeg;
        boolean kHalf = direct && c.kType == ElementType.BF16, vHalf = direct && c.vType == ElementType.BF16;
        long kBytes = kHalf ? 2 : Float.BYTES, vBytes = vHalf ? 2 : Float.BYTES;
        int block = s.block;
        for (boolean more = true; more; ) {
            // A block of chunks: first read (direct) or staged (otherwise), then computed. The read pass
            // is a tight loop of independent loads, which the core runs far ahead: it fetches at a plain
            // read's rate, where the arithmetic's own loads from DRAM waited on each line in turn.
            chunks.mark();
            int staged = 0;
            while (staged < block && (more = chunks.next())) {
                if (attended(s, chunks, rows, qLen)) {
                    if (!direct) stageRows(c.k, c.kType, c, hk, chunks, staged * CHUNK, d, dPad, true, s.kRows);
                    else if (c.kT == d && c.vT == dv && d * kBytes == dv * vBytes) {
                        s.sink += touchBoth(c, hk, chunks, d * kBytes, kBytes, vBytes);
                    } else {
                        s.sink += touch(c.k, c, hk, chunks, true, d * kBytes, kBytes);
                        s.sink += touch(c.v, c, hk, chunks, false, dv * vBytes, vBytes);
                    }
                }
                staged++;
            }
            if (!direct) {
                chunks.reset();
                for (int ci = 0; ci < staged; ci++) {
                    chunks.next();
                    if (attended(s, chunks, rows, qLen)) stageRows(c.v, c.vType, c, hk, chunks, ci * CHUNK, dv, vPad, false, s.vRows);
                }
            }
            chunks.reset();
            for (int ci = 0; ci < staged; ci++) {
                chunks.next();
                if (!attended(s, chunks, rows, qLen)) continue;   // no row attends a key of this chunk: nothing is read
                int n = chunks.n, nPad = (n + L - 1) / L * L, base = ci * CHUNK;
                long chunkBits = n == 64 ? -1L : (1L << n) - 1;
                if (direct) {
                    for (int j = 0; j < nPad; j++) s.kAt[j] = c.keyRow(hk, chunks.slot[Math.min(j, n - 1)]) * kBytes;
                    for (int j = 0; j < n; j++) s.vAt[j] = c.valueRow(hk, chunks.slot[j]) * vBytes;
                } else {
                    for (int j = 0; j < nPad; j++) s.kAt[j] = (long) (base + Math.min(j, n - 1)) * dPad * Float.BYTES;
                    for (int j = 0; j < n; j++) s.vAt[j] = (long) (base + j) * vPad * Float.BYTES;
                }
                for (int jg = 0; jg < nPad; jg += L) scores(s, kSrc, kHalf, rows, quadRows, jg, dPad);
                if (c.mod != null) {   // the scalar twin's modifier, score by score, on the keys each row attends
                    for (int r = 0; r < rows; r++) c.modifyScores(b, hk, r, chunks.key, s.bits[r], s.p, s.pBase + r * CHUNK);
                }
                for (int r = 0; r < rows; r++) {
                    long bits = s.bits[r];
                    int pRow = s.pBase + r * CHUNK;
                    if (bits == 0) {   // no key of this chunk for this row: its state is unchanged
                        Arrays.fill(s.p, pRow, pRow + n, 0f);
                        s.alpha[r] = 1f;
                        continue;
                    }
                    if (bits != chunkBits) {
                        for (long blocked = chunkBits & ~bits; blocked != 0; blocked &= blocked - 1) s.p[pRow + Long.numberOfTrailingZeros(blocked)] = NEG_INF;
                    }
                    Arrays.fill(s.p, pRow + n, pRow + nPad, NEG_INF);   // padded lanes of the last vector
                    softmaxRow(s, r, pRow, nPad);
                }
                accumulate(s, vSrc, vHalf, quadRows, n, vPad);
            }
        }
        c.storePartial(item, s.o, vPad, s.m, s.l);
    }

    /** Sets s.bits[r] to the chunk's keys row r attends; whether any row attends one. */
    private static boolean attended(Scratch s, DecodeCall.Chunks chunks, int rows, int qLen) {
        long any = 0;
        for (int r = 0; r < rows; r++) any |= s.bits[r] = chunks.queryBits[r % qLen];
        return any != 0;
    }

    /**
     * The read pass's loads: every 8 bytes, as a plain read does, not one per 64-byte line. Measured
     * on Zen 5 (32k-token step, read pass alone, min of 30): one byte per line read the K/V at
     * 1.5–1.6× a plain read's time on one thread and 6.5–9.4 ms on two, a load every 16 or 32 bytes
     * as slowly, a long every 8 bytes 1.25–1.35× and 4.9–5.3 ms (likely: sparse loads miss faster than the
     * hardware prefetcher trains, dense ones let it stream ahead).
     */
    private static final ValueLayout.OfLong READ = ValueLayout.JAVA_LONG_UNALIGNED;

    /**
     * {@link #touch} of the keys and the values in one loop, 8 bytes of each per step, where both are
     * dense rows of the same byte width (the common cache): two streams in flight at once, as a plain
     * read of K and V keeps them, instead of the keys' stream and then the values'.
     */
    private static long touchBoth(DecodeCall c, int hk, DecodeCall.Chunks chunks, long rowBytes, long kBytes, long vBytes) {
        MemorySegment k = c.k, v = c.v;
        long sum = 0;
        for (int i = 0; i < chunks.spans; i++) {
            long length = (long) (chunks.spanStart[i + 1] - chunks.spanStart[i]) * rowBytes;
            long kAt = c.keyRow(hk, chunks.spanSlot[i]) * kBytes, vAt = c.valueRow(hk, chunks.spanSlot[i]) * vBytes;
            for (long o = 0; o < length; o += Long.BYTES) sum += k.get(READ, kAt + o) ^ v.get(READ, vAt + o);
        }
        return sum;
    }

    /** The read pass over the chunk's key (or value) rows of head hk (rowBytes each, a multiple of 8; elements of eb bytes): their sum. */
    private static long touch(MemorySegment src, DecodeCall c, int hk, DecodeCall.Chunks chunks, boolean keys, long rowBytes, long eb) {
        long stride = (keys ? c.kT : c.vT) * eb, sum = 0;
        for (int i = 0; i < chunks.spans; i++) {
            int rowsInSpan = chunks.spanStart[i + 1] - chunks.spanStart[i];
            long at = (keys ? c.keyRow(hk, chunks.spanSlot[i]) : c.valueRow(hk, chunks.spanSlot[i])) * eb;
            if (stride == rowBytes) {
                long end = at + rowsInSpan * rowBytes;
                for (long o = at; o < end; o += Long.BYTES) sum += src.get(READ, o);
            } else {
                for (int j = 0; j < rowsInSpan; j++, at += stride) for (long o = 0; o < rowBytes; o += Long.BYTES) sum += src.get(READ, at + o);
            }
        }
        return sum;
    }

    /**
     * Whether the call's key and value rows are read where they lie in the pool: float32 or bfloat16
     * rows whose widths are whole lane blocks (keys: the 16 partials, so no padding; values: the 2L
     * dimensions of an accumulator block). Then nothing is staged: staging cost more than the
     * arithmetic (a 64-key chunk's copy into scratch took two thirds of a 32k-token step).
     */
    private static boolean readsInPlace(DecodeCall c) {
        return (c.kType == ElementType.F32 || c.kType == ElementType.BF16) && (c.vType == ElementType.F32 || c.vType == ElementType.BF16)
                && c.d % PARTIALS == 0 && c.dv % (2 * L) == 0;
    }

    /**
     * The chunk's n key (or value) rows of head hk, widened, into dst rows {@code rowBase} … pad
     * floats apart with zeros past {@code width}: one bulk copy or widening per span of consecutive
     * pool rows when the rows are dense and need no padding (a per-row call costs more than its 512 bytes).
     */
    private static void stageRows(MemorySegment src, ElementType type, DecodeCall c, int hk, DecodeCall.Chunks chunks, int rowBase, int width, int pad, boolean keys, float[] dst) {
        long stride = keys ? c.kT : c.vT;
        boolean dense = stride == width && pad == width;
        for (int i = 0; i < chunks.spans; i++) {
            int j0 = chunks.spanStart[i], j1 = chunks.spanStart[i + 1];
            long slot = chunks.spanSlot[i];
            long row0 = keys ? c.keyRow(hk, slot) : c.valueRow(hk, slot);
            if (dense) {
                int count = (j1 - j0) * width, at = (rowBase + j0) * pad;
                if (type == ElementType.F32) MemorySegment.copy(src, FLOAT, row0 * Float.BYTES, dst, at, count);
                else HalfRows.widenRow(src, type, row0, count, dst, at);
                continue;
            }
            for (int j = j0; j < j1; j++) {
                long row = row0 + (j - j0) * stride;
                int at = (rowBase + j) * pad;
                if (type == ElementType.F32) MemorySegment.copy(src, FLOAT, row * Float.BYTES, dst, at, width);
                else HalfRows.widenRow(src, type, row, width, dst, at);
                Arrays.fill(dst, at + width, at + pad, 0f);
            }
        }
    }

    /**
     * Scores of every row quad against the chunk's keys jg … jg + L − 1 into p (rows CHUNK apart).
     * Keys go in groups of 4 — i, i + L/4, i + L/2, i + 3L/4 for i &lt; L/4, the four keys the first two
     * steps of the transposing reduction combine — and for each group and row quad the 16 (row, key)
     * accumulators of each lane part of the 16 partial sums are summed over the dimensions (x in steps
     * of 16), each key vector loaded (and widened) once for the 4 rows. With one part (L = 16: the
     * partials are the lanes) the group's first two reduction steps run on the accumulators in
     * registers and leave one vector per row, and the last two steps combine the row's 4 vectors.
     * Measured on Zen 5 (32k-token step, one thread): storing all 16 accumulators and reducing them
     * from memory took more time than the dot products' FMAs. With more parts (narrower vectors) the
     * parts are stored and {@link #reduceScores} folds them first.
     */
    static void scores(Scratch s, MemorySegment k, boolean half, int rows, int quadRows, int jg, int dPad) {
        float[] q = s.qRows, dots = s.dots, red = s.red;
        long[] kAt = s.kAt;
        long eb = half ? 2 : Float.BYTES;
        int quarter = L / 4, step = s.partialStep;
        for (int r0 = 0; r0 < quadRows; r0 += 4) {
            int q0 = s.qBase + r0 * dPad, q1 = q0 + dPad, q2 = q1 + dPad, q3 = q2 + dPad;
            for (int i = 0; i < quarter; i++) {
                long k0 = kAt[jg + i], k1 = kAt[jg + i + quarter], k2 = kAt[jg + i + 2 * quarter], k3 = kAt[jg + i + 3 * quarter];
                for (int part = 0; part < PARTS; part++) {
                    // a<row><key>: row r0 + row against key k<key>.
                    FloatVector a00 = FloatVector.zero(F), a01 = a00, a02 = a00, a03 = a00, a10 = a00, a11 = a00, a12 = a00, a13 = a00;
                    FloatVector a20 = a00, a21 = a00, a22 = a00, a23 = a00, a30 = a00, a31 = a00, a32 = a00, a33 = a00;
                    for (int x = part * L; x < dPad; x += step) {
                        long xb = x * eb;
                        FloatVector v0 = half ? ((IntVector) ShortVector.fromMemorySegment(SHORTS, k, k0 + xb, NATIVE).convertShape(VectorOperators.S2I, INTS, 0)).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats()
                                : FloatVector.fromMemorySegment(F, k, k0 + xb, NATIVE);
                        FloatVector v1 = half ? ((IntVector) ShortVector.fromMemorySegment(SHORTS, k, k1 + xb, NATIVE).convertShape(VectorOperators.S2I, INTS, 0)).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats()
                                : FloatVector.fromMemorySegment(F, k, k1 + xb, NATIVE);
                        FloatVector v2 = half ? ((IntVector) ShortVector.fromMemorySegment(SHORTS, k, k2 + xb, NATIVE).convertShape(VectorOperators.S2I, INTS, 0)).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats()
                                : FloatVector.fromMemorySegment(F, k, k2 + xb, NATIVE);
                        FloatVector v3 = half ? ((IntVector) ShortVector.fromMemorySegment(SHORTS, k, k3 + xb, NATIVE).convertShape(VectorOperators.S2I, INTS, 0)).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats()
                                : FloatVector.fromMemorySegment(F, k, k3 + xb, NATIVE);
                        FloatVector qv = FloatVector.fromArray(F, q, q0 + x);
                        a00 = qv.fma(v0, a00); a01 = qv.fma(v1, a01); a02 = qv.fma(v2, a02); a03 = qv.fma(v3, a03);
                        qv = FloatVector.fromArray(F, q, q1 + x);
                        a10 = qv.fma(v0, a10); a11 = qv.fma(v1, a11); a12 = qv.fma(v2, a12); a13 = qv.fma(v3, a13);
                        qv = FloatVector.fromArray(F, q, q2 + x);
                        a20 = qv.fma(v0, a20); a21 = qv.fma(v1, a21); a22 = qv.fma(v2, a22); a23 = qv.fma(v3, a23);
                        qv = FloatVector.fromArray(F, q, q3 + x);
                        a30 = qv.fma(v0, a30); a31 = qv.fma(v1, a31); a32 = qv.fma(v2, a32); a33 = qv.fma(v3, a33);
                    }
                    if (PARTS == 1) {
                        // Step 0 combines keys i and i + L/2 (and i + L/4 with i + 3L/4), step 1 the two results.
                        int at = i * L, rs = quarter * L;
                        FloatVector c0 = a00.blend(a02, HIGH0).add(a02.blend(a00, HIGH0).rearrange(SWAP0)), c1 = a01.blend(a03, HIGH0).add(a03.blend(a01, HIGH0).rearrange(SWAP0));
                        c0.blend(c1, HIGH1).add(c1.blend(c0, HIGH1).rearrange(SWAP1)).intoArray(red, at);
                        c0 = a10.blend(a12, HIGH0).add(a12.blend(a10, HIGH0).rearrange(SWAP0)); c1 = a11.blend(a13, HIGH0).add(a13.blend(a11, HIGH0).rearrange(SWAP0));
                        c0.blend(c1, HIGH1).add(c1.blend(c0, HIGH1).rearrange(SWAP1)).intoArray(red, at + rs);
                        c0 = a20.blend(a22, HIGH0).add(a22.blend(a20, HIGH0).rearrange(SWAP0)); c1 = a21.blend(a23, HIGH0).add(a23.blend(a21, HIGH0).rearrange(SWAP0));
                        c0.blend(c1, HIGH1).add(c1.blend(c0, HIGH1).rearrange(SWAP1)).intoArray(red, at + 2 * rs);
                        c0 = a30.blend(a32, HIGH0).add(a32.blend(a30, HIGH0).rearrange(SWAP0)); c1 = a31.blend(a33, HIGH0).add(a33.blend(a31, HIGH0).rearrange(SWAP0));
                        c0.blend(c1, HIGH1).add(c1.blend(c0, HIGH1).rearrange(SWAP1)).intoArray(red, at + 3 * rs);
                    } else {
                        // dots[row][key][16 partials]: this part's L lanes of them.
                        int rs = L * PARTIALS, d0 = (i * PARTIALS) + part * L, t = quarter * PARTIALS;
                        a00.intoArray(dots, d0); a01.intoArray(dots, d0 + t); a02.intoArray(dots, d0 + 2 * t); a03.intoArray(dots, d0 + 3 * t);
                        a10.intoArray(dots, d0 + rs); a11.intoArray(dots, d0 + rs + t); a12.intoArray(dots, d0 + rs + 2 * t); a13.intoArray(dots, d0 + rs + 3 * t);
                        a20.intoArray(dots, d0 + 2 * rs); a21.intoArray(dots, d0 + 2 * rs + t); a22.intoArray(dots, d0 + 2 * rs + 2 * t); a23.intoArray(dots, d0 + 2 * rs + 3 * t);
                        a30.intoArray(dots, d0 + 3 * rs); a31.intoArray(dots, d0 + 3 * rs + t); a32.intoArray(dots, d0 + 3 * rs + 2 * t); a33.intoArray(dots, d0 + 3 * rs + 3 * t);
                    }
                }
            }
            for (int r = r0; r < Math.min(r0 + 4, rows); r++) {
                if (PARTS == 1) {   // L = 16: steps 2 and 3 on the row's 4 group vectors, then the keys in natural order
                    int at = (r - r0) * quarter * L;
                    FloatVector g0 = FloatVector.fromArray(F, red, at), g1 = FloatVector.fromArray(F, red, at + L);
                    FloatVector g2 = FloatVector.fromArray(F, red, at + 2 * L), g3 = FloatVector.fromArray(F, red, at + 3 * L);
                    FloatVector c0 = g0.blend(g2, HIGH2).add(g2.blend(g0, HIGH2).rearrange(SWAP2)), c1 = g1.blend(g3, HIGH2).add(g3.blend(g1, HIGH2).rearrange(SWAP2));
                    c0.blend(c1, HIGH3).add(c1.blend(c0, HIGH3).rearrange(SWAP3)).rearrange(NATURAL).intoArray(s.p, s.pBase + r * CHUNK + jg);
                } else {
                    reduceScores(dots, r - r0, red, s.p, s.pBase + r * CHUNK + jg);
                }
            }
        }
    }

    /**
     * The scores of L keys of one row (its 16 partials per key in dots) into p[pOff, pOff + L):
     * the lane parts folded (p[i] + p[i + 8] … down to L partials), then the transposing reduction.
     */
    private static void reduceScores(float[] dots, int rowInQuad, float[] red, float[] p, int pOff) {
        int base = rowInQuad * L * PARTIALS;
        for (int i = 0; i < L; i++) {
            int at = base + i * PARTIALS;
            FloatVector v = FloatVector.fromArray(F, dots, at);
            if (PARTS == 2) v = v.add(FloatVector.fromArray(F, dots, at + L));
            else if (PARTS == 4) v = v.add(FloatVector.fromArray(F, dots, at + 2 * L)).add(FloatVector.fromArray(F, dots, at + L).add(FloatVector.fromArray(F, dots, at + 3 * L)));
            v.intoArray(red, i * L);
        }
        for (int st = 0, count = L; count > 1; st++, count >>= 1) {
            int half = count >> 1;
            VectorMask<Float> high = HIGH[st];
            VectorShuffle<Float> swap = SWAP[st];
            for (int i = 0; i < half; i++) {
                FloatVector a = FloatVector.fromArray(F, red, i * L), b = FloatVector.fromArray(F, red, (i + half) * L);
                a.blend(b, high).add(b.blend(a, high).rearrange(swap)).intoArray(red, i * L);
            }
        }
        FloatVector.fromArray(F, red, 0).rearrange(NATURAL).intoArray(p, pOff);
    }

    /**
     * o[r] = o[r]·α_r + Σ_j p_rj · v_j over the chunk's n keys in order, 4 rows × 4L dimensions of
     * accumulators at a time, each value vector loaded once for the 4 rows; a zero probability is
     * skipped per row, so a key a row does not attend contributes nothing even if its value holds a
     * NaN. (α·o then fmas: the twin's rescale-then-accumulate; multiplying by α = 1 changes no bit.)
     * Value j's row is at byte vAt[j] of {@code v}, bfloat16 when {@code half}.
     */
    private static void accumulate(Scratch s, MemorySegment v, boolean half, int quadRows, int n, int vPad) {
        float[] p = s.p, o = s.o;
        long[] vAt = s.vAt;
        long eb = half ? 2 : Float.BYTES;
        for (int r0 = 0; r0 < quadRows; r0 += 4) {
            int p0 = s.pBase + r0 * CHUNK, p1 = p0 + CHUNK, p2 = p1 + CHUNK, p3 = p2 + CHUNK;
            float al0 = s.alpha[r0], al1 = s.alpha[r0 + 1], al2 = s.alpha[r0 + 2], al3 = s.alpha[r0 + 3];
            // Keys every one of the 4 rows gives a nonzero probability (the common case) take the
            // unconditional path; the others test each row.
            long allNonzero = 0;
            for (int j = 0; j < n; j += L) {
                VectorMask<Float> nonzero = FloatVector.fromArray(F, p, p0 + j).compare(VectorOperators.NE, 0f)
                        .and(FloatVector.fromArray(F, p, p1 + j).compare(VectorOperators.NE, 0f))
                        .and(FloatVector.fromArray(F, p, p2 + j).compare(VectorOperators.NE, 0f))
                        .and(FloatVector.fromArray(F, p, p3 + j).compare(VectorOperators.NE, 0f));
                allNonzero |= nonzero.toLong() << j;
            }
            // Blocks of 4L output dimensions (16 accumulators: slack for the FMA latency, and each
            // probability broadcast serves 4 FMAs). vPad is a whole number of 2L: a last block of 2L
            // points its upper half at the lower half's dimensions (hi = 0) and does not store it.
            for (int x = 0; x < vPad; x += 4 * L) {
                boolean wide = x + 4 * L <= vPad;
                int hi = wide ? 2 * L : 0;
                long hiBytes = hi * eb, lBytes = L * eb;
                int o0 = r0 * vPad + x, o1 = o0 + vPad, o2 = o1 + vPad, o3 = o2 + vPad;
                FloatVector a00 = FloatVector.fromArray(F, o, o0).mul(al0), a01 = FloatVector.fromArray(F, o, o0 + L).mul(al0);
                FloatVector a02 = FloatVector.fromArray(F, o, o0 + hi).mul(al0), a03 = FloatVector.fromArray(F, o, o0 + hi + L).mul(al0);
                FloatVector a10 = FloatVector.fromArray(F, o, o1).mul(al1), a11 = FloatVector.fromArray(F, o, o1 + L).mul(al1);
                FloatVector a12 = FloatVector.fromArray(F, o, o1 + hi).mul(al1), a13 = FloatVector.fromArray(F, o, o1 + hi + L).mul(al1);
                FloatVector a20 = FloatVector.fromArray(F, o, o2).mul(al2), a21 = FloatVector.fromArray(F, o, o2 + L).mul(al2);
                FloatVector a22 = FloatVector.fromArray(F, o, o2 + hi).mul(al2), a23 = FloatVector.fromArray(F, o, o2 + hi + L).mul(al2);
                FloatVector a30 = FloatVector.fromArray(F, o, o3).mul(al3), a31 = FloatVector.fromArray(F, o, o3 + L).mul(al3);
                FloatVector a32 = FloatVector.fromArray(F, o, o3 + hi).mul(al3), a33 = FloatVector.fromArray(F, o, o3 + hi + L).mul(al3);
                for (int j = 0; j < n; j++) {
                    long at = vAt[j] + x * eb;
                    FloatVector v0 = half ? ((IntVector) ShortVector.fromMemorySegment(SHORTS, v, at, NATIVE).convertShape(VectorOperators.S2I, INTS, 0)).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats()
                            : FloatVector.fromMemorySegment(F, v, at, NATIVE);
                    FloatVector v1 = half ? ((IntVector) ShortVector.fromMemorySegment(SHORTS, v, at + lBytes, NATIVE).convertShape(VectorOperators.S2I, INTS, 0)).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats()
                            : FloatVector.fromMemorySegment(F, v, at + lBytes, NATIVE);
                    FloatVector v2 = half ? ((IntVector) ShortVector.fromMemorySegment(SHORTS, v, at + hiBytes, NATIVE).convertShape(VectorOperators.S2I, INTS, 0)).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats()
                            : FloatVector.fromMemorySegment(F, v, at + hiBytes, NATIVE);
                    FloatVector v3 = half ? ((IntVector) ShortVector.fromMemorySegment(SHORTS, v, at + hiBytes + lBytes, NATIVE).convertShape(VectorOperators.S2I, INTS, 0)).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats()
                            : FloatVector.fromMemorySegment(F, v, at + hiBytes + lBytes, NATIVE);
                    if ((allNonzero & (1L << j)) != 0) {
                        FloatVector b = FloatVector.broadcast(F, p[p0 + j]);
                        a00 = b.fma(v0, a00); a01 = b.fma(v1, a01); a02 = b.fma(v2, a02); a03 = b.fma(v3, a03);
                        b = FloatVector.broadcast(F, p[p1 + j]);
                        a10 = b.fma(v0, a10); a11 = b.fma(v1, a11); a12 = b.fma(v2, a12); a13 = b.fma(v3, a13);
                        b = FloatVector.broadcast(F, p[p2 + j]);
                        a20 = b.fma(v0, a20); a21 = b.fma(v1, a21); a22 = b.fma(v2, a22); a23 = b.fma(v3, a23);
                        b = FloatVector.broadcast(F, p[p3 + j]);
                        a30 = b.fma(v0, a30); a31 = b.fma(v1, a31); a32 = b.fma(v2, a32); a33 = b.fma(v3, a33);
                    } else {
                        float w0 = p[p0 + j], w1 = p[p1 + j], w2 = p[p2 + j], w3 = p[p3 + j];
                        if (w0 != 0f) { FloatVector b = FloatVector.broadcast(F, w0); a00 = b.fma(v0, a00); a01 = b.fma(v1, a01); a02 = b.fma(v2, a02); a03 = b.fma(v3, a03); }
                        if (w1 != 0f) { FloatVector b = FloatVector.broadcast(F, w1); a10 = b.fma(v0, a10); a11 = b.fma(v1, a11); a12 = b.fma(v2, a12); a13 = b.fma(v3, a13); }
                        if (w2 != 0f) { FloatVector b = FloatVector.broadcast(F, w2); a20 = b.fma(v0, a20); a21 = b.fma(v1, a21); a22 = b.fma(v2, a22); a23 = b.fma(v3, a23); }
                        if (w3 != 0f) { FloatVector b = FloatVector.broadcast(F, w3); a30 = b.fma(v0, a30); a31 = b.fma(v1, a31); a32 = b.fma(v2, a32); a33 = b.fma(v3, a33); }
                    }
                }
                a00.intoArray(o, o0); a01.intoArray(o, o0 + L);
                a10.intoArray(o, o1); a11.intoArray(o, o1 + L);
                a20.intoArray(o, o2); a21.intoArray(o, o2 + L);
                a30.intoArray(o, o3); a31.intoArray(o, o3 + L);
                if (wide) {
                    a02.intoArray(o, o0 + hi); a03.intoArray(o, o0 + hi + L);
                    a12.intoArray(o, o1 + hi); a13.intoArray(o, o1 + hi + L);
                    a22.intoArray(o, o2 + hi); a23.intoArray(o, o2 + hi + L);
                    a32.intoArray(o, o3 + hi); a33.intoArray(o, o3 + hi + L);
                }
            }
        }
    }

    /**
     * The online softmax step of row r over its chunk's scores p[pRow, pRow + width): chunk max,
     * probabilities in place, sum into the running sum, the output's rescale into alpha, exactly as the scalar
     * twin. The 2^x is written out inline, as in the fused kernel (as a method, C2 declined to
     * inline it and boxed a vector per call).
     */
    private static void softmaxRow(Scratch s, int r, int pRow, int width) {
        float[] p = s.p;
        FloatVector maxV = FloatVector.broadcast(F, NEG_INF);
        for (int j = 0; j < width; j += L) maxV = maxV.max(FloatVector.fromArray(F, p, pRow + j));
        float max = maxV.reduceLanes(VectorOperators.MAX);   // max is exact (Math.max's rules): any order gives the same
        float mOld = s.m[r], mNew = Math.max(mOld, max), shift = mNew == NEG_INF ? 0f : mNew;
        FloatVector shiftV = FloatVector.broadcast(F, shift);
        // The 16 interleaved partial sums: one vector in a register when L = 16, else in s.partial.
        FloatVector sumV = FloatVector.zero(F);
        if (PARTS > 1) Arrays.fill(s.partial, 0f);
        for (int j = 0; j < width; j += L) {
            FloatVector x = FloatVector.fromArray(F, p, pRow + j).sub(shiftV);
            // 2^x exactly as SimdAttentionKernel's and ScalarAttentionKernel.exp2: clamp at −127, k = round(x)
            // in the low bits of x + 1.5·2^23, f = x − k, 2^f by polynomial, 2^k shifted into the exponent field.
            x = x.blend(EXP2_MIN_ARGUMENT, x.compare(VectorOperators.LT, EXP2_MIN_ARGUMENT));
            FloatVector rounded = x.add(ROUND_MAGIC);
            FloatVector f = x.sub(rounded.sub(ROUND_MAGIC));
            FloatVector poly = f.fma(EXP2_P0, EXP2_P1).fma(f, EXP2_P2).fma(f, EXP2_P3).fma(f, EXP2_P4).fma(f, EXP2_P5);
            FloatVector e = f.fma(poly, ONE).mul(rounded.reinterpretAsInts().lanewise(VectorOperators.LSHL, 23).add(EXPONENT_BIAS_BITS).reinterpretAsFloats());
            e.intoArray(p, pRow + j);
            if (PARTS == 1) {
                sumV = sumV.add(e);
            } else {
                int part = j & (PARTIALS - 1);   // key j + lane goes to partial (j + lane) mod 16
                FloatVector.fromArray(F, s.partial, part).add(e).intoArray(s.partial, part);
            }
        }
        if (PARTS == 1) sumV.intoArray(s.partial, 0);
        float alpha = ScalarAttentionKernel.exp2(mOld - shift);
        s.l[r] = Math.fma(alpha, s.l[r], ScalarDecodeKernel.sumPartials(s.partial));
        s.m[r] = mNew;
        s.alpha[r] = alpha;   // the output's rescale, applied by accumulate
    }

    // The base-2 softmax constants of the fused kernels, from the scalar twin.
    private static final float ROUND_MAGIC = ScalarAttentionKernel.ROUND_MAGIC;
    private static final float EXP2_MIN_ARGUMENT = ScalarAttentionKernel.EXP2_MIN_ARGUMENT;
    private static final int EXPONENT_BIAS_BITS = ScalarAttentionKernel.EXPONENT_BIAS_BITS;
    private static final FloatVector ONE = FloatVector.broadcast(F, 1f);
    private static final FloatVector EXP2_P0 = FloatVector.broadcast(F, ScalarAttentionKernel.EXP2_P0), EXP2_P1 = FloatVector.broadcast(F, ScalarAttentionKernel.EXP2_P1);
    private static final FloatVector EXP2_P2 = FloatVector.broadcast(F, ScalarAttentionKernel.EXP2_P2), EXP2_P3 = FloatVector.broadcast(F, ScalarAttentionKernel.EXP2_P3);
    private static final FloatVector EXP2_P4 = FloatVector.broadcast(F, ScalarAttentionKernel.EXP2_P4), EXP2_P5 = FloatVector.broadcast(F, ScalarAttentionKernel.EXP2_P5);
}
