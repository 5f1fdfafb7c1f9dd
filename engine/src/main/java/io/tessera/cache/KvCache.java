package io.tessera.cache;

import io.tessera.tensor.ElementType;
import io.tessera.tensor.Tensor;
import java.lang.foreign.Arena;
import java.util.Arrays;
import java.util.Optional;

/**
 * The keys and values a decoder layer has seen, for a batch of sequences of different lengths, in
 * fixed-size pages (vLLM's PagedAttention, Kwon et al. 2023): a pool of {@code pages} pages of
 * {@code pageSize} tokens × {@code kvHeads} heads (fp32 keys of {@code headDim}, values of
 * {@code valueDim}), allocated once from the caller's arena, and a page table per sequence.
 *
 * <pre>{@code
 * KvCache cache = KvCache.allocate(arena, 8, 1024, 16, 8, 128, 128);  // 8 sequences, 1024 pages of 16 tokens
 * cache.append(seq, k, v);                       // k [1, kvHeads, n, headDim], v [1, kvHeads, n, valueDim]
 * PagedAttention.of(Pattern.causal()).forward(cache, seq, q, out, null);
 * cache.truncate(seq, n);                        // back to its first n tokens (rejected draft tokens)
 * cache.release(seq);                            // its pages go back to the pool
 * }</pre>
 *
 * <p>{@link #append} copies only the new tokens, into the free slots of the sequence's last page
 * and then into pages taken from the pool; tokens already cached are never moved. When the pool
 * cannot hold the new tokens, append throws before writing anything, naming the sequence, the
 * tokens requested and the tokens available.
 *
 * <p>Storage: all keys are one tensor {@code [1, kvHeads, pages·pageSize, headDim]} (see
 * {@link #keyStorage}) in which page {@code p} is the token range {@code [p·pageSize, (p+1)·pageSize)};
 * values likewise. So any run of consecutive pages is an ordinary tensor view, usable directly as
 * the k or v of {@code Attention}: {@link #keyPage} is always one, and {@link #keys} is one when
 * the sequence's pages happen to be consecutive in the pool (e.g. a sequence appended to alone).
 *
 * <p>Not thread-safe: a cache belongs to one decoder layer and is used by one thread at a time
 * (the kernels it runs may use worker threads; allocate it from a shared, global or automatic
 * arena when the backend is multi-threaded).
 */
public final class KvCache {
    private final Arena arena;
    private final int sequences, pages, pageSize, kvHeads, headDim, valueDim;
    private final Tensor keys, values;
    private final int[][] pageTables;   // per sequence: physical page of each logical page
    private final int[] pageCounts, lengths;
    private final int[] freeStack;      // top = next page handed out; initially 0, 1, 2, ...
    private int freeCount;
    /** Per pool page: changes whenever tokens already written to it may change (see {@link #pageGenerations}). */
    private final long[] pageGenerations;
    private long handouts;
    private final java.util.Map<Long, DecodeScratch> scratch = new java.util.HashMap<>();

    private KvCache(Arena arena, ElementType type, int sequences, int pages, int pageSize, int kvHeads, int headDim, int valueDim) {
        this.arena = arena;
        this.sequences = sequences;
        this.pages = pages;
        this.pageSize = pageSize;
        this.kvHeads = kvHeads;
        this.headDim = headDim;
        this.valueDim = valueDim;
        long tokens = (long) pages * pageSize;
        this.keys = Tensor.zeros(arena, type, 1, kvHeads, tokens, headDim);
        this.values = Tensor.zeros(arena, type, 1, kvHeads, tokens, valueDim);
        this.pageTables = new int[sequences][];
        this.pageCounts = new int[sequences];
        this.lengths = new int[sequences];
        this.freeStack = new int[pages];
        for (int i = 0; i < pages; i++) freeStack[i] = pages - 1 - i;
        this.freeCount = pages;
        this.pageGenerations = new long[pages];
    }

    /**
     * A cache for {@code sequences} sequences (ids 0 … sequences−1) sharing a pool of {@code pages}
     * pages of {@code pageSize} tokens, all memory allocated now from {@code arena}.
     */
    public static KvCache allocate(Arena arena, int sequences, int pages, int pageSize, int kvHeads, int headDim, int valueDim) {
        return allocate(arena, ElementType.F32, sequences, pages, pageSize, kvHeads, headDim, valueDim);
    }

    /**
     * A cache storing keys and values as {@code type}: {@link ElementType#BF16} or {@code F16} halve
     * the memory per cached token and the bytes a decode step reads; appended tokens are rounded to
     * the type (nearest, ties to even) and attention over them still accumulates in float32.
     */
    public static KvCache allocate(Arena arena, ElementType type, int sequences, int pages, int pageSize, int kvHeads, int headDim, int valueDim) {
        if (arena == null) throw new NullPointerException("arena");
        if (type == null) throw new NullPointerException("type");
        positive("sequences", sequences);
        positive("pages", pages);
        positive("pageSize", pageSize);
        positive("kvHeads", kvHeads);
        positive("headDim", headDim);
        positive("valueDim", valueDim);
        long tokens = (long) pages * pageSize;
        if (tokens > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("pages=" + pages + " × pageSize=" + pageSize + " = " + tokens + " tokens, more than the largest key length " + Integer.MAX_VALUE);
        }
        return new KvCache(arena, type, sequences, pages, pageSize, kvHeads, headDim, valueDim);
    }

    // ---------------------------------------------------------------- geometry

    public int sequences() { return sequences; }
    public int pages() { return pages; }
    public int pageSize() { return pageSize; }
    public int kvHeads() { return kvHeads; }
    public int headDim() { return headDim; }
    public int valueDim() { return valueDim; }

    /** Pages of the pool no sequence holds. */
    public int freePages() { return freeCount; }

    /** Tokens cached for {@code sequence}. */
    public int length(int sequence) { return lengths[checkSequence(sequence)]; }

    /** Pages {@code sequence} holds: ⌈length / pageSize⌉. */
    public int pageCount(int sequence) { return pageCounts[checkSequence(sequence)]; }

    /** The pool page holding the {@code index}-th page (tokens [index·pageSize, …)) of {@code sequence}. */
    public int page(int sequence, int index) {
        checkPageIndex(sequence, index);
        return pageTables[sequence][index];
    }

    // ---------------------------------------------------------------- views

    /**
     * All keys of the pool, {@code [1, kvHeads, pages·pageSize, headDim]}: pool page {@code p} is
     * the range {@code [p·pageSize, (p+1)·pageSize)} of dimension 2. Slots no sequence holds keep
     * whatever was last written there.
     */
    public Tensor keyStorage() { return keys; }

    /** All values of the pool, {@code [1, kvHeads, pages·pageSize, valueDim]}, laid out like {@link #keyStorage}. */
    public Tensor valueStorage() { return values; }

    /** The keys of the {@code index}-th page of {@code sequence}: a view {@code [1, kvHeads, tokens in that page, headDim]}. */
    public Tensor keyPage(int sequence, int index) { return pageView(keys, sequence, index); }

    /** The values of the {@code index}-th page of {@code sequence}: a view {@code [1, kvHeads, tokens in that page, valueDim]}. */
    public Tensor valuePage(int sequence, int index) { return pageView(values, sequence, index); }

    /**
     * All keys of {@code sequence} as one view {@code [1, kvHeads, length, headDim]}, present when its
     * pages are consecutive in the pool (always for one page); empty otherwise, or when the sequence
     * is empty. O(pages).
     */
    public Optional<Tensor> keys(int sequence) { return sequenceView(keys, sequence); }

    /** All values of {@code sequence} as one view, present under the same condition as {@link #keys}. */
    public Optional<Tensor> values(int sequence) { return sequenceView(values, sequence); }

    private Tensor pageView(Tensor storage, int sequence, int index) {
        checkPageIndex(sequence, index);
        long start = (long) pageTables[sequence][index] * pageSize;
        int tokens = Math.min(pageSize, lengths[sequence] - index * pageSize);
        return storage.slice(2, start, start + tokens);
    }

    private Optional<Tensor> sequenceView(Tensor storage, int sequence) {
        checkSequence(sequence);
        if (lengths[sequence] == 0) return Optional.empty();
        int[] table = pageTables[sequence];
        for (int i = 1; i < pageCounts[sequence]; i++) if (table[i] != table[0] + i) return Optional.empty();
        long start = (long) table[0] * pageSize;
        return Optional.of(storage.slice(2, start, start + lengths[sequence]));
    }

    // ---------------------------------------------------------------- updates

    /**
     * Appends the keys {@code k} {@code [1, kvHeads, n, headDim]} and values {@code v}
     * {@code [1, kvHeads, n, valueDim]} of {@code n} new tokens to {@code sequence}, copying only
     * them: O(n) plus O(1) per new page. Throws {@link IllegalStateException} before writing
     * anything when the pool has too few free pages. Returns the new length.
     */
    public int append(int sequence, Tensor k, Tensor v) {
        checkSequence(sequence);
        checkTokens("k", k, headDim);
        checkTokens("v", v, valueDim);
        if (k.size(2) != v.size(2)) throw new IllegalArgumentException("k has " + k.size(2) + " tokens but v has " + v.size(2));
        for (Tensor storage : new Tensor[] {keys, values}) {
            if (k.overlaps(storage)) throw new IllegalArgumentException("k is a view of this cache's storage; copy it first");
            if (v.overlaps(storage)) throw new IllegalArgumentException("v is a view of this cache's storage; copy it first");
        }
        long n = k.size(2);
        int length = lengths[sequence];
        long newLength = length + n;
        long room = (long) pageCounts[sequence] * pageSize - length;   // free slots in its last page
        long available = room + (long) freeCount * pageSize;
        if (n > available || newLength > Integer.MAX_VALUE) {
            throw new IllegalStateException("KV cache full: sequence " + sequence + " (length " + length + ") requested " + n
                    + " tokens but only " + Math.min(available, Integer.MAX_VALUE - (long) length) + " are available (" + room + " free in its last page + "
                    + freeCount + " free pages of " + pageSize + " tokens in a pool of " + pages + ")");
        }
        int needed = (int) ((newLength + pageSize - 1) / pageSize) - pageCounts[sequence];
        int[] table = pageTables[sequence];
        if (table == null || table.length < pageCounts[sequence] + needed) {
            int size = (int) Math.min(pages, Math.max(pageCounts[sequence] + needed, 2L * (table == null ? 4 : table.length)));
            table = pageTables[sequence] = table == null ? new int[size] : Arrays.copyOf(table, size);
        }
        for (int i = 0; i < needed; i++) {
            int page = freeStack[--freeCount];
            pageGenerations[page] = ++handouts;   // its earlier tokens are someone else's: a resident copy of them is stale
            table[pageCounts[sequence]++] = page;
        }
        // Copy page run by page run: the first run fills the last page's free slots.
        long done = 0;
        int position = length;
        while (done < n) {
            int slot = position % pageSize;
            long run = Math.min(pageSize - slot, n - done);
            long start = (long) table[position / pageSize] * pageSize + slot;
            keys.slice(2, start, start + run).copyFrom(k.slice(2, done, done + run));
            values.slice(2, start, start + run).copyFrom(v.slice(2, done, done + run));
            done += run;
            position += (int) run;
        }
        lengths[sequence] = (int) newLength;
        return (int) newLength;
    }

    /**
     * Shortens {@code sequence} to its first {@code length} tokens, {@code 0 ≤ length ≤ length(sequence)}:
     * what a speculative decoder does with the draft tokens the model rejected after one verifying
     * step over all of them. Pages wholly past the new length go back to the pool (their memory is not
     * cleared); the slots cut from the last page kept are written again by the next {@link #append}.
     * O(1) per page released, nothing copied. Returns the new length.
     */
    public int truncate(int sequence, int length) {
        checkSequence(sequence);
        int current = lengths[sequence];
        if (length < 0 || length > current) {
            throw new IllegalArgumentException("length=" + length + " is not in [0, " + current + "], the length of sequence " + sequence);
        }
        int keep = (int) (((long) length + pageSize - 1) / pageSize);
        int[] table = pageTables[sequence];
        for (int i = pageCounts[sequence] - 1; i >= keep; i--) freeStack[freeCount++] = table[i];
        // Slots of the last page kept will be written again: tokens a device holds of it are stale.
        if (length < current && length % pageSize != 0) pageGenerations[table[keep - 1]] = ++handouts;
        pageCounts[sequence] = keep;
        lengths[sequence] = length;
        return length;
    }

    /** Empties {@code sequence}, returning its pages to the pool (their memory is not cleared). */
    public void release(int sequence) {
        checkSequence(sequence);
        int[] table = pageTables[sequence];
        for (int i = pageCounts[sequence] - 1; i >= 0; i--) freeStack[freeCount++] = table[i];
        pageCounts[sequence] = 0;
        lengths[sequence] = 0;
    }

    // ---------------------------------------------------------------- internals

    /** Per (query heads, qLen) decode buffers, allocated once from the cache's arena. */
    DecodeScratch scratch(int heads, int qLen) {
        return scratch.computeIfAbsent(((long) heads << 32) | qLen, key -> new DecodeScratch(arena, heads, qLen, valueDim));
    }

    int[] pageTable(int sequence) { return pageTables[sequence]; }

    /**
     * The write record a device that keeps the pool resident checks (the caller must not modify
     * it): entry {@code p} changes when pool page {@code p} is handed out to a sequence or when
     * {@link #truncate} cuts tokens from it; between two changes the page's tokens are only appended
     * (token slots filled in order, none rewritten), so
     * a device holding the page's first n tokens at the same generation needs only the tokens after
     * them. Writes through {@link #keyStorage}/{@link #valueStorage} views bypass this record.
     */
    long[] pageGenerations() { return pageGenerations; }

    /** A decode step's per-sequence arguments, reused from step to step (the cache is used by one thread at a time). */
    static final class StepBuffers {
        final int[] sequence = new int[1];   // the single-sequence forward's batch
        int[] lengths = new int[0];
        int[][] tables = new int[0][];       // exactly the batch long: the decode SPI's pageTables
    }

    private final StepBuffers stepBuffers = new StepBuffers();

    /** The step buffers, {@code lengths} at least and {@code tables} exactly {@code batch} long. */
    StepBuffers stepBuffers(int batch) {
        StepBuffers s = stepBuffers;
        if (s.lengths.length < batch) s.lengths = new int[batch];
        if (s.tables.length != batch) s.tables = new int[batch][];
        return s;
    }

    /** Decode plans in use, most recent first: one per (pattern, modifier, heads, qLen); a few shapes alternate (speculative decoding). */
    private final DecodePlanSlot[] plans = new DecodePlanSlot[8];

    private record DecodePlanSlot(io.tessera.pattern.Pattern pattern, io.tessera.pattern.ScoreMod mod, int heads, int qLen, io.tessera.pattern.DecodePlan plan) {}

    /**
     * The decode plan of this cache for these (pattern aligned bottom-right, modifier or null, query
     * heads, qLen), made on first use and kept: refilled by each step, so a step compiles nothing.
     * Patterns are matched by equality (records), modifiers by identity.
     */
    io.tessera.pattern.DecodePlan decodePlan(io.tessera.pattern.Pattern pattern, io.tessera.pattern.ScoreMod mod, int heads, int qLen) {
        for (int i = 0; i < plans.length && plans[i] != null; i++) {
            DecodePlanSlot slot = plans[i];
            if (slot.heads == heads && slot.qLen == qLen && slot.mod == mod && (slot.pattern == pattern || slot.pattern.equals(pattern))) {
                if (i > 0) {   // most recent first
                    System.arraycopy(plans, 0, plans, 1, i);
                    plans[0] = slot;
                }
                return slot.plan;
            }
        }
        io.tessera.pattern.DecodePlan plan = io.tessera.pattern.DecodePlan.of(pattern, mod, heads, qLen, pageSize).reserve(Math.min(pages, 1 << 16));
        System.arraycopy(plans, 0, plans, 1, plans.length - 1);   // the least recent falls off
        plans[0] = new DecodePlanSlot(pattern, mod, heads, qLen, plan);
        return plan;
    }

    private void checkTokens(String name, Tensor t, int dim) {
        if (t == null) throw new NullPointerException(name);
        long[] s = t.shape();
        if (s.length != 4 || s[0] != 1 || s[1] != kvHeads || s[3] != dim) {
            throw new IllegalArgumentException(name + " must be [1, kvHeads=" + kvHeads + ", tokens, " + dim + "], got " + Arrays.toString(s));
        }
    }

    int checkSequence(int sequence) {
        if (sequence < 0 || sequence >= sequences) throw new IllegalArgumentException("sequence=" + sequence + " is not in [0, " + sequences + ")");
        return sequence;
    }

    private void checkPageIndex(int sequence, int index) {
        checkSequence(sequence);
        if (index < 0 || index >= pageCounts[sequence]) {
            throw new IllegalArgumentException("index=" + index + " is not a page of sequence " + sequence + ", which holds " + pageCounts[sequence] + " pages");
        }
    }

    private static void positive(String name, int value) {
        if (value < 1) throw new IllegalArgumentException(name + " must be >= 1, got " + value);
    }

    @Override
    public String toString() {
        return "KvCache[" + sequences + " sequences, " + pages + " pages of " + pageSize + " tokens, kvHeads=" + kvHeads
                + ", headDim=" + headDim + ", valueDim=" + valueDim + ", " + freeCount + " pages free]";
    }
}
