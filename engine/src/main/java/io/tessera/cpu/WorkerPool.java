package io.tessera.cpu;

import java.lang.foreign.MemorySegment;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;

/**
 * Persistent daemon threads shared by every backend instance with the same thread count, and a
 * dynamic parallel-for over numbered work items. Which thread runs an item never changes what the
 * item computes, so results are identical for any thread count.
 */
final class WorkerPool {
    /** One unit of parallel work: item number and the segments it touches are the caller's business. */
    @FunctionalInterface
    interface ItemTask {
        void run(int item);
    }

    private static final ConcurrentHashMap<Integer, WorkerPool> POOLS = new ConcurrentHashMap<>();

    private final int threads;
    private final ExecutorService executor;
    private final Thread sampleWorker;

    private WorkerPool(int threads) {
        this.threads = threads;
        AtomicInteger counter = new AtomicInteger();
        AtomicReference<Thread> first = new AtomicReference<>();
        this.executor = Executors.newFixedThreadPool(threads - 1, r -> {
            Thread t = new Thread(r, "tessera-worker-" + threads + "-" + counter.incrementAndGet());
            t.setDaemon(true);
            first.compareAndSet(null, t);
            return t;
        });
        // Start one worker now so confinement checks have a real foreign thread to ask about.
        try {
            executor.submit(() -> { }).get();
        } catch (Exception e) {
            throw new IllegalStateException("could not start worker threads", e);
        }
        this.sampleWorker = first.get();
    }

    static WorkerPool of(int threads) {
        if (threads < 2) throw new IllegalArgumentException("a pool needs threads >= 2, got " + threads);
        return POOLS.computeIfAbsent(threads, WorkerPool::new);
    }

    /**
     * Runs {@code task} for items 0 … count−1, items handed out in increasing order to whichever
     * thread is free (callers order items heavy-first). The calling thread works too. Segments of a
     * confined arena cannot be read from other threads, so such calls run on the caller alone.
     */
    void forEach(int count, ItemTask task, MemorySegment... touched) {
        boolean shareable = true;
        for (MemorySegment s : touched) {
            if (s != null && !s.isAccessibleBy(sampleWorker)) shareable = false;
        }
        if (count <= 1 || !shareable) {
            try {
                for (int i = 0; i < count; i++) task.run(i);
            } finally {
                ThreadScratch.trimCurrentThread();
            }
            return;
        }
        AtomicInteger next = new AtomicInteger();
        AtomicReference<Throwable> failure = new AtomicReference<>();
        int helpers = Math.min(threads - 1, count - 1);
        CountDownLatch done = new CountDownLatch(helpers);
        Runnable drain = () -> {
            try {
                for (int i; (i = next.getAndIncrement()) < count && failure.get() == null; ) task.run(i);
            } catch (Throwable t) {
                failure.compareAndSet(null, t);
            } finally {
                ThreadScratch.trimCurrentThread();   // this thread's share of the call is done
            }
        };
        for (int w = 0; w < helpers; w++) {
            executor.execute(() -> {
                try {
                    drain.run();
                } finally {
                    done.countDown();
                }
            });
        }
        drain.run();
        try {
            done.await();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while waiting for worker threads", e);
        }
        Throwable t = failure.get();
        if (t instanceof RuntimeException re) throw re;
        if (t instanceof Error err) throw err;
        if (t != null) throw new IllegalStateException(t);
    }
}
