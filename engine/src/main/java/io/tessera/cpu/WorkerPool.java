package io.tessera.cpu;

import java.lang.foreign.Arena;
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
 *
 * <p>Steering. A call that starts when the workers are parked (a model layer after other work, a
 * benchmark that waits for an idle process) wakes them with a futex; Linux places a woken thread on
 * its previous CPU or, by wake-affine, on the waker's, and looks for an idle CPU only within the
 * waker's last-level cache. Where no cache is shared (the 2-vCPU VM the main job runs on reports
 * none) a worker whose previous CPU is the caller's is queued behind the caller until the load
 * balancer moves it, about 1.5 ms (p75 3 ms) into a 7 ms call. So on Linux, before it wakes them, the
 * caller takes its own CPU out of each worker's allowed set ({@code sched_setaffinity}, one system
 * call a worker) and each worker puts its full set back as soon as it runs: the wake-up can only pick
 * another CPU, and no thread stays pinned. Nothing is changed for the caller's thread. The
 * alternatives do not reach the cause: a worker that spins on waking is still queued, and one that
 * spins after a call costs idle CPU and is parked again by the time an idle-waiting caller calls.
 * {@code -Dtessera.workerAffinity=false} turns steering off ({@link CpuAffinity}).
 */
final class WorkerPool {
    /** One unit of parallel work: item number and the segments it touches are the caller's business. */
    @FunctionalInterface
    interface ItemTask {
        void run(int item);
    }

    private static final ConcurrentHashMap<Integer, WorkerPool> POOLS = new ConcurrentHashMap<>();
    /** Read here, on the first caller's thread, so that a bad property value fails that call, not a worker. */
    private static final boolean STEERING = CpuAffinity.available();

    private final int threads;
    private final ExecutorService executor;
    private final Thread sampleWorker;
    /** Workers that can be steered (their allowed set has at least 2 CPUs), added as they start; an array, so a call iterates without allocating. */
    private volatile PoolThread[] steerable = new PoolThread[0];

    private WorkerPool(int threads) {
        this.threads = threads;
        AtomicInteger counter = new AtomicInteger();
        AtomicReference<Thread> first = new AtomicReference<>();
        this.executor = Executors.newFixedThreadPool(threads - 1, r -> {
            Thread t = new PoolThread(r, "tessera-worker-" + threads + "-" + counter.incrementAndGet(), this);
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
        steerOffCallersCpu();
        for (int w = 0; w < helpers; w++) {
            executor.execute(() -> {
                if (Thread.currentThread() instanceof PoolThread p) p.restoreAffinity();
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
        } finally {
            // A worker that got no task this call (another took two) would otherwise stay steered.
            for (PoolThread p : steerable) p.restoreAffinity();
        }
        Throwable t = failure.get();
        if (t instanceof RuntimeException re) throw re;
        if (t instanceof Error err) throw err;
        if (t != null) throw new IllegalStateException(t);
    }

    /** Takes the caller's CPU out of every steerable worker's allowed set (see the class comment). */
    private void steerOffCallersCpu() {
        PoolThread[] workers = steerable;
        if (workers.length == 0) return;
        int cpu = CpuAffinity.currentCpu();
        for (PoolThread p : workers) p.steerOff(cpu);
    }

    /** Whether any worker of this pool is steered now (tests: none may stay steered after a call). */
    boolean anyWorkerSteered() {
        for (PoolThread p : steerable) if (p.steered) return true;
        return false;
    }

    /** How many workers can be steered (0 where {@link CpuAffinity} is off or a worker may use one CPU only). */
    int steerableWorkers() {
        return steerable.length;
    }

    private synchronized void register(PoolThread worker) {
        PoolThread[] more = java.util.Arrays.copyOf(steerable, steerable.length + 1);
        more[more.length - 1] = worker;
        steerable = more;
    }

    /** A worker thread that knows its kernel thread id and its allowed CPUs, so the caller can steer it. */
    private static final class PoolThread extends Thread {
        private final WorkerPool pool;
        /** Set by this thread before it registers; read by callers after they see it registered. */
        private int tid;
        private MemorySegment home, away;
        private volatile boolean steered;

        PoolThread(Runnable work, String name, WorkerPool pool) {
            super(work, name);
            this.pool = pool;
        }

        @Override
        public void run() {
            if (STEERING) {
                Arena arena = Arena.ofAuto();
                MemorySegment mask = CpuAffinity.newMask(arena);
                int id = CpuAffinity.currentThreadId();
                if (id > 0 && CpuAffinity.get(0, mask) && CpuAffinity.count(mask) >= 2) {
                    tid = id;
                    home = mask;
                    away = CpuAffinity.newMask(arena);
                    pool.register(this);
                }
            }
            super.run();
        }

        /** Allowed set = home set without {@code cpu}, if {@code cpu} is in it. */
        synchronized void steerOff(int cpu) {
            if (!CpuAffinity.contains(home, cpu)) return;
            CpuAffinity.copyWithout(home, cpu, away);
            if (CpuAffinity.set(tid, away)) steered = true;
        }

        /** Back to the home set if steered; any thread may call it. */
        void restoreAffinity() {
            if (!steered) return;
            synchronized (this) {
                if (steered && CpuAffinity.set(tid, home)) steered = false;
            }
        }
    }
}
