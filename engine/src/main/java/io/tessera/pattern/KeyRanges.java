package io.tessera.pattern;

import java.util.Arrays;

/**
 * A reusable, small set of key intervals [lo, hi): sorted and merged on {@link #normalize}. Once
 * grown to a pattern's needs, nothing here allocates (a decode step classifies its pages with
 * these and must not allocate).
 */
final class KeyRanges {
    int[] lo = new int[8], hi = new int[8];
    private int[] spareLo = new int[8], spareHi = new int[8];   // intersect's output, swapped in
    int size;
    /** The key block size of the compile asking: patterns may answer coarser than this, never finer. */
    int grain;

    KeyRanges() { this(1); }

    KeyRanges(int grain) { this.grain = grain; }

    void clear() { size = 0; }

    /** Empty, for a compile of key block size {@code grain} (a per-thread instance reused by {@code and}). */
    KeyRanges reset(int grain) {
        this.grain = grain;
        size = 0;
        return this;
    }

    /** Adds [from, to) clipped to [0, kvLen). */
    void add(long from, long to, int kvLen) {
        int a = (int) Math.min(kvLen, Math.max(0, from)), b = (int) Math.max(0, Math.min(kvLen, to));
        if (a >= b) return;
        if (size == lo.length) {
            lo = Arrays.copyOf(lo, size * 2);
            hi = Arrays.copyOf(hi, size * 2);
        }
        lo[size] = a;
        hi[size++] = b;
    }

    void addAll(KeyRanges other) {
        for (int r = 0; r < other.size; r++) add(other.lo[r], other.hi[r], Integer.MAX_VALUE);
    }

    /** Sorts by start and merges overlapping or touching intervals. */
    void normalize() {
        if (size < 2) return;
        boolean sorted = true;
        for (int r = 1; r < size && sorted; r++) sorted = lo[r - 1] <= lo[r];
        if (!sorted && size <= 32) {   // the usual few ranges (an or of a window and global tokens): in place
            for (int r = 1; r < size; r++) {
                int l = lo[r], h = hi[r], at = r;
                while (at > 0 && (lo[at - 1] > l || (lo[at - 1] == l && hi[at - 1] > h))) { lo[at] = lo[at - 1]; hi[at] = hi[at - 1]; at--; }
                lo[at] = l;
                hi[at] = h;
            }
        } else if (!sorted) {
            long[] packed = new long[size];
            for (int r = 0; r < size; r++) packed[r] = ((long) lo[r] << 32) | hi[r];
            Arrays.sort(packed);
            for (int r = 0; r < size; r++) { lo[r] = (int) (packed[r] >>> 32); hi[r] = (int) packed[r]; }
        }
        int w = 0;
        for (int r = 1; r < size; r++) {
            if (lo[r] <= hi[w]) hi[w] = Math.max(hi[w], hi[r]);
            else { w++; lo[w] = lo[r]; hi[w] = hi[r]; }
        }
        size = w + 1;
    }

    /** this ∩= other; both normalized. */
    void intersect(KeyRanges other) {
        int capacity = Math.max(8, size + other.size);
        if (spareLo.length < capacity) { spareLo = new int[capacity]; spareHi = new int[capacity]; }
        int[] nl = spareLo, nh = spareHi;
        int n = 0, a = 0, b = 0;
        while (a < size && b < other.size) {
            int l = Math.max(lo[a], other.lo[b]), h = Math.min(hi[a], other.hi[b]);
            if (l < h) { nl[n] = l; nh[n++] = h; }
            if (hi[a] < other.hi[b]) a++; else b++;
        }
        spareLo = lo;
        spareHi = hi;
        lo = nl;
        hi = nh;
        size = n;
    }
}
