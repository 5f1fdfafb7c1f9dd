package io.tessera.cpu;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assumptions.assumeThat;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicIntegerArray;
import org.junit.jupiter.api.Test;

/**
 * The pool's parallel-for (every item once, failures reach the caller) and its worker steering
 * (see {@link WorkerPool}): the caller's CPU is taken out of a worker's allowed set only while the
 * worker is being woken, never for longer, and {@code -Dtessera.workerAffinity=false} turns it off.
 */
class WorkerPoolTest {
    private static boolean linuxWithTwoCpus() {
        return System.getProperty("os.name", "").toLowerCase(java.util.Locale.ROOT).startsWith("linux")
                && Runtime.getRuntime().availableProcessors() >= 2;
    }

    @Test
    void everyItemRunsExactlyOnceForAnyThreadCount() {
        for (int threads = 2; threads <= 4; threads++) {
            for (int count : new int[] {0, 1, 2, 3, 17, 200}) {
                AtomicIntegerArray runs = new AtomicIntegerArray(Math.max(count, 1));
                WorkerPool.of(threads).forEach(count, runs::incrementAndGet);
                for (int i = 0; i < count; i++) assertThat(runs.get(i)).as("threads=%d count=%d item %d", threads, count, i).isEqualTo(1);
            }
        }
    }

    @Test
    void aFailureOnAWorkerReachesTheCaller() {
        Thread caller = Thread.currentThread();
        IllegalStateException boom = new IllegalStateException("item failed");
        // Item 0 waits until a worker has failed item 1, so the failure is the worker's.
        CountDownLatch failed = new CountDownLatch(1);
        assertThatThrownBy(() -> WorkerPool.of(2).forEach(2, item -> {
            if (Thread.currentThread() == caller) {
                try {
                    failed.await(30, TimeUnit.SECONDS);
                } catch (InterruptedException e) {
                    throw new AssertionError(e);
                }
            } else {
                failed.countDown();
                throw boom;
            }
        })).isSameAs(boom);
        AssertionError error = new AssertionError("an error");
        assertThatThrownBy(() -> WorkerPool.of(2).forEach(50, item -> {
            if (item == 7) throw error;
        })).isSameAs(error);
        // The pool still works after a failure.
        AtomicIntegerArray runs = new AtomicIntegerArray(10);
        WorkerPool.of(2).forEach(10, runs::incrementAndGet);
        for (int i = 0; i < 10; i++) assertThat(runs.get(i)).isEqualTo(1);
    }

    @Test
    void workersAreSteerableWhereTheLibcCallsAreAvailable() {
        assumeThat(linuxWithTwoCpus()).isTrue();
        // The test JVM runs with --enable-native-access and without the opt-out property.
        assertThat(CpuAffinity.describe()).isEqualTo("on");
        assertThat(WorkerPool.of(2).steerableWorkers()).isEqualTo(1);
    }

    /** Steering lasts only until the worker runs: its items see its full allowed set, and no worker is left steered after a call. */
    @Test
    void noWorkerStaysSteered() {
        assumeThat(linuxWithTwoCpus()).isTrue();
        MemorySegment processMask = CpuAffinity.newMask(Arena.ofAuto());
        assertThat(CpuAffinity.get(0, processMask)).isTrue();
        int allowed = CpuAffinity.count(processMask);
        for (int threads = 2; threads <= 4; threads++) {
            WorkerPool pool = WorkerPool.of(threads);
            for (int call = 0; call < 20; call++) {
                ConcurrentHashMap<Thread, Integer> cpusSeen = new ConcurrentHashMap<>();
                pool.forEach(64, item -> {
                    MemorySegment mask = CpuAffinity.newMask(Arena.ofAuto());
                    assertThat(CpuAffinity.get(0, mask)).isTrue();
                    cpusSeen.merge(Thread.currentThread(), CpuAffinity.count(mask), Math::min);
                    spin(20_000);
                });
                assertThat(cpusSeen.values()).as("allowed CPUs of each thread during its items").allMatch(n -> n == allowed);
                assertThat(pool.anyWorkerSteered()).as("a worker steered after call %d of a %d-thread pool", call, threads).isFalse();
            }
        }
    }

    @Test
    void takingOutTheCurrentCpuMovesTheThreadAndRestoringGivesEveryCpuBack() throws Exception {
        assumeThat(linuxWithTwoCpus()).isTrue();
        List<String> failures = new ArrayList<>();
        Thread probe = new Thread(() -> {
            Arena arena = Arena.ofAuto();
            MemorySegment home = CpuAffinity.newMask(arena), away = CpuAffinity.newMask(arena), now = CpuAffinity.newMask(arena);
            int tid = CpuAffinity.currentThreadId();
            if (tid <= 0 || !CpuAffinity.get(tid, home)) {
                failures.add("gettid/sched_getaffinity failed");
                return;
            }
            for (int round = 0; round < 10; round++) {
                int cpu = CpuAffinity.currentCpu();
                CpuAffinity.copyWithout(home, cpu, away);
                if (!CpuAffinity.set(tid, away)) failures.add("sched_setaffinity failed");
                int moved = CpuAffinity.currentCpu();
                if (moved == cpu || !CpuAffinity.contains(home, moved)) failures.add("still on or outside: cpu " + cpu + " -> " + moved);
                if (!CpuAffinity.set(0, home) || !CpuAffinity.get(0, now) || !now.asByteBuffer().equals(home.asByteBuffer())) failures.add("not restored");
            }
        });
        probe.start();
        probe.join(30_000);
        assertThat(failures).isEmpty();
    }

    @Test
    void thePropertyTurnsSteeringOffAndABadValueIsRejected() throws Exception {
        assumeThat(linuxWithTwoCpus()).isTrue();
        assertThat(child(List.of("--enable-native-access=ALL-UNNAMED", "-D" + CpuAffinity.PROPERTY + "=false")))
                .contains("steering=off (-Dtessera.workerAffinity=false) steerable=0");
        assertThat(child(List.of("--enable-native-access=ALL-UNNAMED", "-D" + CpuAffinity.PROPERTY + "=true")))
                .contains("steering=on steerable=1");
        assertThat(child(List.of("--enable-native-access=ALL-UNNAMED", "-D" + CpuAffinity.PROPERTY + "=yes")))
                .contains("tessera.workerAffinity must be true or false, got 'yes'");
    }

    /** Without native access the pool calls no native code, so the JDK has nothing to warn about. */
    @Test
    void withoutNativeAccessNothingIsCalledAndNothingIsPrinted() throws Exception {
        assumeThat(linuxWithTwoCpus()).isTrue();
        String output = child(List.of());
        assertThat(output).contains("steering=off (native access not enabled for the unnamed module) steerable=0");
        assertThat(output).doesNotContain("restricted method");
    }

    /** Runs {@link Child} in a fresh JVM with {@code flags}; its output and errors. */
    private static String child(List<String> flags) throws IOException, InterruptedException {
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        List<String> command = new ArrayList<>(List.of(java, "--add-modules=jdk.incubator.vector"));
        command.addAll(flags);
        command.addAll(List.of("-cp", System.getProperty("java.class.path"), Child.class.getName()));
        Process process = new ProcessBuilder(command).redirectErrorStream(true).start();
        if (!process.waitFor(60, TimeUnit.SECONDS)) {
            process.destroyForcibly();
            throw new AssertionError("the child JVM did not finish in 60 s");
        }
        return new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    }

    /** A 2-thread pool's steering state, printed after one call. */
    static final class Child {
        public static void main(String[] args) {
            try {
                WorkerPool pool = WorkerPool.of(2);
                pool.forEach(8, item -> spin(10_000));
                System.out.println("steering=" + CpuAffinity.describe() + " steerable=" + pool.steerableWorkers());
            } catch (Throwable t) {
                for (Throwable c = t; c != null; c = c.getCause()) System.out.println(c);
            }
        }
    }

    private static volatile float sink;

    private static void spin(int steps) {
        float x = 1;
        for (int i = 0; i < steps; i++) x = x * 0.999f + 1f;
        sink = x;
    }
}
