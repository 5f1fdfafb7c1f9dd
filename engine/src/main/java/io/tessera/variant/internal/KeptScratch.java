package io.tessera.variant.internal;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.function.Consumer;

/**
 * A variant's per-thread scratch memory, kept from one call to the next (fresh memory per call costs
 * its page faults every call) up to {@link #RETAINED_BYTES} a thread: the pool threads live as long
 * as the process, and one call on a huge input would otherwise leave each of them holding its scratch
 * for good. The same rule as the CPU kernels' per-thread buffers (and the same limit). Above it, a
 * call gets memory of its own ({@link #use}).
 */
public final class KeptScratch {
    private KeptScratch() {}

    /** Bytes a thread may keep in one such scratch after a call. */
    public static final long RETAINED_BYTES = 32L << 20;

    private final ThreadLocal<MemorySegment> local = new ThreadLocal<>();

    /** A scratch of its own for each use (a class's static field). */
    public static KeptScratch create() { return new KeptScratch(); }

    /**
     * This thread's kept segment of at least {@code bytes} (64-byte aligned, contents left by its last
     * user), grown when too small; null when {@code bytes} exceeds {@link #RETAINED_BYTES}: the caller
     * then allocates for this call only.
     */
    public MemorySegment get(long bytes) {
        if (bytes < 0) throw new IllegalArgumentException("bytes must be >= 0, got " + bytes);
        if (bytes > RETAINED_BYTES) return null;
        MemorySegment held = local.get();
        if (held == null || held.byteSize() < bytes) local.set(held = Arena.ofAuto().allocate(Math.max(bytes, 1), 64));   // freed when the thread drops it
        return held;
    }

    /**
     * Runs {@code work} on {@code bytes} of scratch: this thread's kept segment ({@link #get}), or,
     * above {@link #RETAINED_BYTES}, a segment of this call's own (64-byte aligned, shared: the work
     * may hand it to other threads), freed when the work returns.
     */
    public void use(long bytes, Consumer<MemorySegment> work) {
        MemorySegment kept = get(bytes);
        if (kept != null) {
            work.accept(kept);
            return;
        }
        try (Arena arena = Arena.ofShared()) {
            work.accept(arena.allocate(bytes, 64));
        }
    }
}
