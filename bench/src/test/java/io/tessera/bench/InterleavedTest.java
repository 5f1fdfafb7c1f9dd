package io.tessera.bench;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Setup;

/** The harness that times engines in turns: in a real child JVM, on states whose call time is known. */
class InterleavedTest {

    /** A benchmark state whose call sleeps {@code ms}; its setup fails when asked to. */
    public static class Sleeper {
        @Param({"4"})
        public int ms;
        @Param({"false"})
        public boolean failInSetup;
        private boolean ready;

        @Setup(Level.Trial)
        public void setup() {
            if (failInSetup) throw new IllegalStateException("the sleeper's oracle check failed");
            ready = true;
        }

        public Object call() throws InterruptedException {
            if (!ready) throw new IllegalStateException("setup did not run");
            Thread.sleep(ms);
            return this;
        }
    }

    /** A state with an iteration-level fixture, which the harness does not run. */
    public static class PerIteration {
        @Setup(Level.Iteration)
        public void setup() {}

        public Object call() { return this; }
    }

    /**
     * A state that cannot share its process with another of its kind (as PyTorch's one intra-op
     * thread count per process): its call halts the JVM when a second instance was set up in it.
     */
    public static class OnePerProcess {
        private static final java.util.concurrent.atomic.AtomicInteger INSTANCES = new java.util.concurrent.atomic.AtomicInteger();

        @Setup(Level.Trial)
        public void setup() {
            INSTANCES.incrementAndGet();
        }

        public Object call() throws InterruptedException {
            if (INSTANCES.get() > 1) Runtime.getRuntime().halt(3);   // as a native crash: no output, no exception
            Thread.sleep(2);
            return this;
        }
    }

    private static final Interleaved.Budget SMALL = new Interleaved.Budget(0.05, 2, 0.1, 9);

    @Test
    void everyEngineIsTimedInEveryRoundAndThePairedRatioIsToTheFirst() throws Exception {
        List<Interleaved.Outcome> outcomes = Interleaved.run(List.of(
                new Interleaved.Contender("fast", Sleeper.class, "call", Map.of()),   // the @Param default: 4 ms
                new Interleaved.Contender("slow", Sleeper.class, "call", Map.of("ms", "16"))), SMALL, List.of());
        assertThat(outcomes).extracting(o -> o.contender().label()).containsExactly("fast", "slow");
        Interleaved.Outcome fast = outcomes.get(0), slow = outcomes.get(1);
        assertThat(fast.time().calls()).isEqualTo(slow.time().calls()).isGreaterThanOrEqualTo(9);
        assertThat(fast.speedup()).isNull();
        assertThat(fast.time().median()).isBetween(4.0, 12.0);   // a sleep never ends early; a loaded machine adds to it
        assertThat(slow.time().median()).isBetween(16.0, 30.0);
        assertThat(slow.speedup().median()).isBetween(16.0 / 12, 30.0 / 4);
    }

    @Test
    void matchesInOneJvmShareTheirContendersAndPairEachRoundWithinItsMatch() throws Exception {
        List<Interleaved.Contender> contenders = List.of(
                new Interleaved.Contender("plain", Sleeper.class, "call", Map.of()),
                new Interleaved.Contender("twice", Sleeper.class, "call", Map.of("ms", "8")),
                new Interleaved.Contender("five times", Sleeper.class, "call", Map.of("ms", "20")));
        List<Interleaved.MatchResult> results = Interleaved.runMatches(contenders, List.of(List.of(0, 1), List.of(0, 2), List.of(2, 1)), SMALL, List.of());
        assertThat(results).hasSize(3).allSatisfy(r -> assertThat(r.failure()).isNull());
        List<Interleaved.Outcome> first = results.get(0).outcomes(), second = results.get(1).outcomes(), third = results.get(2).outcomes();
        assertThat(first).extracting(o -> o.contender().label()).containsExactly("plain", "twice");
        assertThat(second).extracting(o -> o.contender().label()).containsExactly("plain", "five times");
        assertThat(third).extracting(o -> o.contender().label()).containsExactly("five times", "twice");
        // Each match its own rounds, its ratios to its own first contender.
        assertThat(first.get(0).time().calls()).isEqualTo(first.get(1).time().calls()).isGreaterThanOrEqualTo(9);
        assertThat(first.get(1).speedup().median()).isBetween(8.0 / 12, 16.0 / 4);
        assertThat(second.get(1).speedup().median()).isBetween(20.0 / 12, 34.0 / 4);
        assertThat(third.get(1).speedup().median()).isBetween(8.0 / 34, 16.0 / 20);
        assertThat(third.get(0).speedup()).isNull();
    }

    @Test
    void aBrokenContenderFailsOnlyItsOwnMatches() throws Exception {
        List<Interleaved.MatchResult> results = Interleaved.runMatches(List.of(
                new Interleaved.Contender("ok", Sleeper.class, "call", Map.of()),
                new Interleaved.Contender("also ok", Sleeper.class, "call", Map.of("ms", "6")),
                new Interleaved.Contender("broken", Sleeper.class, "call", Map.of("failInSetup", "true"))),
                List.of(List.of(0, 2), List.of(0, 1)), SMALL, List.of());
        assertThat(results.get(0).failure()).contains("setup of InterleavedTest$Sleeper#call?failInSetup=true failed").contains("the sleeper's oracle check failed");
        assertThat(results.get(0).outcomes()).isNull();
        assertThatThrownBy(results.get(0)::orThrow).hasMessageContaining("the sleeper's oracle check failed");
        assertThat(results.get(1).failure()).isNull();
        assertThat(results.get(1).outcomes()).extracting(o -> o.contender().label()).containsExactly("ok", "also ok");
    }

    @Test
    void whenTheSharedJvmDiesEachUnfinishedMatchRunsInAJvmOfItsOwn() throws Exception {
        List<Interleaved.MatchResult> results = Interleaved.runMatches(List.of(
                new Interleaved.Contender("sleeper", Sleeper.class, "call", Map.of()),
                new Interleaved.Contender("loner a", OnePerProcess.class, "call", Map.of()),
                new Interleaved.Contender("loner b", OnePerProcess.class, "call", Map.of())),
                List.of(List.of(0, 1), List.of(0, 2)), SMALL, List.of());
        assertThat(results).allSatisfy(r -> assertThat(r.failure()).isNull());
        assertThat(results.get(0).outcomes()).extracting(o -> o.contender().label()).containsExactly("sleeper", "loner a");
        assertThat(results.get(1).outcomes()).extracting(o -> o.contender().label()).containsExactly("sleeper", "loner b");
        // Alone, a match that kills its JVM fails with the exit code.
        assertThatThrownBy(() -> Interleaved.run(List.of(new Interleaved.Contender("a", OnePerProcess.class, "call", Map.of()),
                new Interleaved.Contender("b", OnePerProcess.class, "call", Map.of())), SMALL, List.of())).hasMessageContaining("exit 3");
    }

    @Test
    void badMatchesAreNamed() {
        List<Interleaved.Contender> one = List.of(new Interleaved.Contender("x", Sleeper.class, "call", Map.of()));
        assertThatThrownBy(() -> Interleaved.runMatches(one, List.of(), SMALL, List.of())).hasMessageContaining("matches must not be empty");
        assertThatThrownBy(() -> Interleaved.runMatches(one, List.of(List.of(0, 1)), SMALL, List.of())).hasMessageContaining("indexes below 1");
        assertThatThrownBy(() -> Interleaved.runMatches(one, List.of(List.of(0, 0)), SMALL, List.of())).hasMessageContaining("distinct");
        assertThat(Interleaved.decodeMatches(Interleaved.encodeMatches(List.of(List.of(0, 1), List.of(2))))).containsExactly(new int[] {0, 1}, new int[] {2});
    }

    @Test
    void slowEnginesWarmUpInFewerCallsAndRoundsStopAtThreeTimesTheMeasureTime() {
        var budget = new Interleaved.Budget(1.5, 3, 6, 9);
        assertThat(budget.warmsUp(0, 0)).isTrue();
        assertThat(budget.warmsUp(2, 1.6)).isTrue();       // fast calls: 3 of them at least
        assertThat(budget.warmsUp(3, 1.6)).isFalse();
        assertThat(budget.warmsUp(1, 1.0)).isTrue();       // under the warm-up time: always on
        assertThat(budget.warmsUp(1, 3.2)).isFalse();      // one 3.2 s call is twice the warm-up time
        assertThat(budget.measuresMore(8, 7)).isTrue();    // 9 rounds at least ...
        assertThat(budget.measuresMore(9, 5.9)).isTrue();  // ... and 6 s of calls
        assertThat(budget.measuresMore(9, 6)).isFalse();
        assertThat(budget.measuresMore(2, 19)).isTrue();   // 3-s rounds: 3 rounds at least ...
        assertThat(budget.measuresMore(3, 17.9)).isTrue();
        assertThat(budget.measuresMore(3, 18)).isFalse();  // ... then no more than 18 s
        var capped = new Interleaved.Budget(1, 3, 4, 9, 100);
        assertThat(capped.measuresMore(99, 0.2)).isTrue();   // short calls: rounds up to the cap ...
        assertThat(capped.measuresMore(100, 0.2)).isFalse();  // ... and no more
        assertThat(Interleaved.Budget.decode(capped.encode())).isEqualTo(capped);
    }

    @Test
    void aFailingSetupFailsTheMatchWithItsMessage() {
        assertThatThrownBy(() -> Interleaved.run(List.of(
                new Interleaved.Contender("ok", Sleeper.class, "call", Map.of()),
                new Interleaved.Contender("broken", Sleeper.class, "call", Map.of("failInSetup", "true"))), SMALL, List.of()))
                .hasMessageContaining("the sleeper's oracle check failed");
        assertThatThrownBy(() -> Interleaved.run(List.of(new Interleaved.Contender("x", PerIteration.class, "call", Map.of())), SMALL, List.of()))
                .hasMessageContaining("Iteration-level fixture");
    }

    @Test
    void badBudgetsAndLabelsAreNamed() {
        assertThatThrownBy(() -> new Interleaved.Budget(1, 0, 1, 1)).hasMessageContaining("at least one warm-up call");
        assertThatThrownBy(() -> new Interleaved.Budget(Double.NaN, 1, 1, 1)).hasMessageContaining("NaN");
        assertThatThrownBy(() -> new Interleaved.Budget(1, 1, 1, 9, 8)).hasMessageContaining("9–8 rounds");
        assertThatThrownBy(() -> new Interleaved.Contender("a\tb", Sleeper.class, "call", Map.of())).hasMessageContaining("label must be one line");
        assertThatThrownBy(() -> Interleaved.run(List.of(), SMALL, List.of())).hasMessageContaining("contenders must not be empty");
    }

    /**
     * The wait before a call sees a thread that spins after the previous call (as ONNX Runtime's pool
     * does for 30–45 ms): it returns only once the spin has ended. (How soon it returns in an idle
     * process is not asserted: the test JVM's compiler threads may still be busy.)
     */
    @Test
    void settleWaitsOutAThreadThatSpinsAfterACall() throws Exception {
        assumeTrue(Files.isReadable(Path.of("/proc/thread-self/schedstat")), "needs Linux's per-thread schedstat");
        long spinNanos = 80_000_000L, start = System.nanoTime(), spinEnd = start + spinNanos;
        Thread spinner = new Thread(() -> {
            long x = 0;
            while (System.nanoTime() < spinEnd) x += Long.numberOfTrailingZeros(x + System.nanoTime());
            if (x == 42) System.out.print("");
        }, "settle-test-spinner");
        spinner.start();
        Interleaved.settle();
        long settled = System.nanoTime();
        spinner.join();
        assertThat(settled).as("settle returned while the spinner ran").isGreaterThanOrEqualTo(spinEnd);
    }
}
