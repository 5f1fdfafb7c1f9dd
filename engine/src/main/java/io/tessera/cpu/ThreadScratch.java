package io.tessera.cpu;

import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.Supplier;
import java.util.function.ToLongFunction;

/**
 * A kernel's per-thread buffers: grown on demand, reused across calls, and dropped when a call
 * ends with more than {@link #RETAINED_BYTES} of them on a thread. Reuse matters (page faults are
 * expensive, and a call's scratch is needed again by the next call of the same shape); keeping
 * whatever the largest call ever needed does not: the pool threads live as long as the process,
 * and one call with huge blocks would otherwise leave them holding hundreds of MiB for good.
 *
 * <p>The limit is above what the default block sizes need at any head dimension the kernels take,
 * including the backward pass's per-head query cache (capped at 16 MiB a thread), so ordinary
 * training and inference never reallocate.
 */
final class ThreadScratch<T> {
    /** Per thread and kernel: what a finished call may leave allocated. */
    static final long RETAINED_BYTES = 32L << 20;

    private static final List<ThreadScratch<?>> ALL = new CopyOnWriteArrayList<>();

    private final ThreadLocal<T> local = new ThreadLocal<>();
    private final Supplier<T> fresh;
    private final ToLongFunction<T> bytes;

    private ThreadScratch(Supplier<T> fresh, ToLongFunction<T> bytes) {
        this.fresh = fresh;
        this.bytes = bytes;
    }

    /** Scratch made by {@code fresh} on first use in a thread; {@code bytes} says how much it holds now. */
    static <T> ThreadScratch<T> of(Supplier<T> fresh, ToLongFunction<T> bytes) {
        ThreadScratch<T> scratch = new ThreadScratch<>(fresh, bytes);
        ALL.add(scratch);
        return scratch;
    }

    /** This thread's buffers. */
    T get() {
        T t = local.get();
        if (t == null) {
            t = fresh.get();
            local.set(t);
        }
        return t;
    }

    /** What this thread's buffers hold now, 0 when it has none. */
    long retainedBytes() {
        T t = local.get();
        return t == null ? 0 : bytes.applyAsLong(t);
    }

    /**
     * Drops every scratch of the calling thread that holds more than {@link #RETAINED_BYTES}. The
     * worker pool calls it when a thread has finished its share of a call; single-threaded calls
     * too, on the caller's thread.
     */
    static void trimCurrentThread() {
        for (int i = 0, n = ALL.size(); i < n; i++) {   // by index: no iterator, so a decode step allocates nothing here
            ThreadScratch<?> s = ALL.get(i);
            if (s.retainedBytes() > RETAINED_BYTES) s.local.remove();
        }
    }

    /** What every kernel's scratch holds on the calling thread. */
    static long retainedByCurrentThread() {
        long total = 0;
        for (ThreadScratch<?> s : ALL) total += s.retainedBytes();
        return total;
    }

    /** Bytes of the arrays given (null counts 0): what a scratch's {@code bytes} function adds up. */
    static long bytesOf(float[]... arrays) {
        long total = 0;
        for (float[] a : arrays) total += a == null ? 0 : 4L * a.length;
        return total;
    }
}
