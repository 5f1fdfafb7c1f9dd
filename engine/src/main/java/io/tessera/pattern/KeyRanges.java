package io.tessera.pattern;

import java.util.Arrays;

/** A reusable, small set of key intervals [lo, hi): sorted and merged on {@link #normalize}. */
final class KeyRanges {
    int[] lo = new int[8], hi = new int[8];
    int size;
    /** The key block size of the compile asking: patterns may answer coarser than this, never finer. */
    final int grain;

    KeyRanges() { this(1); }

    KeyRanges(int grain) { this.grain = grain; }

    void clear() { size = 0; }

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
        if (!sorted) {
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
        int[] nl = new int[size + other.size], nh = new int[size + other.size];
        int n = 0, a = 0, b = 0;
        while (a < size && b < other.size) {
            int l = Math.max(lo[a], other.lo[b]), h = Math.min(hi[a], other.hi[b]);
            if (l < h) { nl[n] = l; nh[n++] = h; }
            if (hi[a] < other.hi[b]) a++; else b++;
        }
        lo = nl.length >= 8 ? nl : Arrays.copyOf(nl, 8);
        hi = nh.length >= 8 ? nh : Arrays.copyOf(nh, 8);
        size = n;
    }
}
